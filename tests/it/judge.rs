//! cert + judge on real certificates: sftunnel-shaped PKIs made by stock openssl
//! (`certs/openssl-pki.sh`) and by rcgen, judged by us and by `openssl verify -attime`,
//! which must agree on every error line (code, depth, text) in order; CertInfo fields against
//! `openssl x509`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sfdiag::cert::{self, CertError, CertInfo};
use sfdiag::judge::{self, ChainVerdict, Policy, Purpose, Source, VerifyCode};
use sfdiag::sftunnel::{self, SubjectRole};
use sfdiag::tls::AlertDescription;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::common::{self, corpus};

const CA_UUID: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
const FTD_UUID: &str = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";

fn openssl(args: &[&str], cwd: &Path) -> std::process::Output {
    assert!(
        common::have_openssl(),
        "these tests need the openssl command"
    );
    Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run openssl")
}

fn openssl_ok(args: &[&str], cwd: &Path) {
    let out = openssl(args, cwd);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PKI made by certs/openssl-pki.sh in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new(dates: Option<(&str, &str)>) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        common::openssl_pki(&dir.path().join("p"), dates);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("p").join(name)
    }

    fn cert(&self, name: &str) -> CertInfo {
        one(&self.path(name))
    }

    /// A new key + certificate signed by `issuer` (a cert/key pair in this PKI) with openssl.
    fn issue(&self, name: &str, subj: &str, issuer: &str, days: u32, ext: &str) -> CertInfo {
        let d = self.path("");
        std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
        openssl_ok(
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subj,
            ],
            &d,
        );
        openssl_ok(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{issuer}.pem"),
                "-CAkey",
                &format!("{issuer}.key"),
                "-set_serial",
                "77",
                "-days",
                &days.to_string(),
                "-sha256",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
            &d,
        );
        self.cert(&format!("{name}.pem"))
    }
}

fn one(path: &Path) -> CertInfo {
    let mut v = cert::read_certs(path).unwrap();
    assert_eq!(v.len(), 1, "{}", path.display());
    v.remove(0)
}

/// A self-signed root with another DN (openssl req -x509).
fn other_root(dir: &Path) -> PathBuf {
    openssl_ok(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-subj",
            "/CN=Other Root/O=Elsewhere",
            "-days",
            "36500",
        ],
        dir,
    );
    dir.join("other.pem")
}

fn write_pem(dir: &Path, name: &str, certs: &[&CertInfo]) -> PathBuf {
    let mut s = String::new();
    for c in certs {
        let out = Command::new("openssl")
            .args(["x509", "-inform", "der"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut ch| {
                use std::io::Write;
                ch.stdin.take().unwrap().write_all(c.der())?;
                ch.wait_with_output()
            })
            .unwrap();
        s.push_str(&String::from_utf8(out.stdout).unwrap());
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

/// The errors `openssl verify` prints: (code, depth, text), and whether it said OK.
fn openssl_verify(
    at: OffsetDateTime,
    ca: &Path,
    untrusted: Option<&Path>,
    leaf: &Path,
    extra: &[&str],
) -> (Vec<(i32, usize, String)>, bool) {
    let at_s = at.unix_timestamp().to_string();
    let mut args = vec![
        "verify",
        "-no-CApath",
        "-no-CAstore",
        "-attime",
        &at_s,
        "-CAfile",
        ca.to_str().unwrap(),
    ];
    if let Some(u) = untrusted {
        args.extend(["-untrusted", u.to_str().unwrap()]);
    }
    args.extend(extra);
    args.push(leaf.to_str().unwrap());
    let out = openssl(&args, Path::new("."));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut errors = Vec::new();
    for line in text.lines() {
        // "error 10 at 1 depth lookup: certificate has expired"
        if let Some(rest) = line.strip_prefix("error ")
            && let Some((head, msg)) = rest.split_once(" depth lookup: ")
        {
            let mut it = head.split(" at ");
            let code = it.next().unwrap().parse().unwrap();
            let depth = it.next().unwrap().parse().unwrap();
            errors.push((code, depth, msg.to_string()));
        }
    }
    (errors, out.status.success() && text.contains(": OK"))
}

/// The error codes `openssl verify`'s callback lets it continue past (apps/verify.c).
fn verify_app_continues(code: i32) -> bool {
    matches!(code, 43 | 10 | 18 | 37 | 25 | 12 | 11 | 34 | 26) || code >= 79
}

/// Our errors cut where `openssl verify` stops, as (code, depth, text).
fn ours_as_openssl_prints(v: &ChainVerdict) -> Vec<(i32, usize, String)> {
    let mut out = Vec::new();
    for e in &v.errors {
        let c = e.code.code();
        out.push((c, e.depth.unwrap(), e.text().to_string()));
        if !verify_app_continues(c) {
            break;
        }
    }
    out
}

/// Judges with us and with openssl and asserts both report the same errors in order.
fn agree(
    at: OffsetDateTime,
    chain: &[CertInfo],
    anchors: &[CertInfo],
    policy: &Policy,
    extra: &[&str],
) -> ChainVerdict {
    let tmp = tempfile::tempdir().unwrap();
    let ca = write_pem(tmp.path(), "ca.pem", &anchors.iter().collect::<Vec<_>>());
    let leaf = write_pem(tmp.path(), "leaf.pem", &[&chain[0]]);
    let untrusted = (chain.len() > 1).then(|| {
        write_pem(
            tmp.path(),
            "untrusted.pem",
            &chain[1..].iter().collect::<Vec<_>>(),
        )
    });
    let (theirs, ok) = openssl_verify(at, &ca, untrusted.as_deref(), &leaf, extra);
    let ours = judge::verify_with(chain, anchors, at, policy);
    assert_eq!(
        ours_as_openssl_prints(&ours),
        theirs,
        "ours: {:#?}",
        ours.errors
    );
    assert_eq!(ours.overall.is_ok(), ok);
    ours
}

fn day_after(t: OffsetDateTime) -> OffsetDateTime {
    t + time::Duration::days(1)
}

#[test]
fn valid_sftunnel_pki_verifies_both_ways() {
    let pki = Pki::new(None);
    let (ca, fmc, ftd) = (pki.cert("ca.pem"), pki.cert("fmc.pem"), pki.cert("ftd.pem"));
    let at = day_after(ftd.not_before.unwrap());
    for leaf in [&fmc, &ftd] {
        let v = agree(
            at,
            std::slice::from_ref(leaf),
            std::slice::from_ref(&ca),
            &Policy::default(),
            &[],
        );
        assert_eq!(v.overall.code, VerifyCode::Ok);
        assert!(v.trusted);
        assert_eq!(v.path, vec![Source::Chain(0), Source::Anchor(0)]);
        assert_eq!(v.per_cert[0].code, VerifyCode::Ok);
        assert_eq!(v.per_cert[0].depth, Some(0));
        assert_eq!(v.anchors.len(), 1);
        assert_eq!(v.anchors[0].depth, Some(1));
        assert!(v.result().is_ok());
    }
    // As TLS peers judge each other: sslclient / sslserver purposes at security level 1.
    for (leaf, purpose, name) in [
        (&ftd, Purpose::SslClient, "sslclient"),
        (&fmc, Purpose::SslServer, "sslserver"),
    ] {
        let v = agree(
            at,
            std::slice::from_ref(leaf),
            std::slice::from_ref(&ca),
            &Policy::tls(purpose),
            &["-purpose", name, "-auth_level", "1"],
        );
        assert!(v.overall.is_ok(), "{:?}", v.errors);
    }
}

#[test]
fn expired_internal_ca_is_code_10_at_depth_1_and_the_leaf_stays_0() {
    let pki = Pki::new(Some(("20140601000000Z", "20240601000000Z")));
    let (ca, ftd) = (pki.cert("ca.pem"), pki.cert("ftd.pem"));
    assert_eq!(ca.version, Some(1));
    let at = day_after(ftd.not_before.unwrap());
    let v = agree(
        at,
        std::slice::from_ref(&ftd),
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(v.overall.code, VerifyCode::CertHasExpired);
    assert_eq!(v.overall.depth, Some(1));
    assert_eq!(
        v.overall.not_after,
        Some(datetime!(2024-06-01 00:00:00 UTC))
    );
    assert_eq!(
        v.overall.issuer_oneline.as_deref(),
        Some(
            format!(
                "/title=InternalCA/OU=Intrusion Management System/CN={CA_UUID}/O=Cisco Systems, Inc"
            )
            .as_str()
        )
    );
    assert_eq!(v.per_cert[0].code, VerifyCode::Ok);
    assert_eq!(v.anchors[0].code, VerifyCode::CertHasExpired);
    assert_eq!(v.anchors[0].depth, Some(1));
    let err = v.result().unwrap_err();
    assert_eq!(err.code(), VerifyCode::CertHasExpired);
    assert_eq!(err.alert(), AlertDescription::CERTIFICATE_EXPIRED);
    assert!(
        matches!(err, judge::VerifyError::Expired { depth: 1, .. }),
        "{err}"
    );

    // The same CA also sent by the peer: its own record carries the 10.
    let v = agree(
        at,
        &[ftd.clone(), ca.clone()],
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(v.per_cert[1].code, VerifyCode::CertHasExpired);
    assert_eq!(v.per_cert[1].depth, Some(1));
    assert_eq!(v.per_cert[0].code, VerifyCode::Ok);
    assert!(v.anchors.is_empty());

    // Without anchors only dates are judged, each at its chain index.
    let v = judge::verify(&[ftd.clone(), ca.clone()], &[], at);
    assert_eq!(
        (v.per_cert[0].code, v.per_cert[0].depth),
        (VerifyCode::Ok, Some(0))
    );
    assert_eq!(
        (v.per_cert[1].code, v.per_cert[1].depth),
        (VerifyCode::CertHasExpired, Some(1))
    );
    assert_eq!(v.overall.depth, Some(1));
}

#[test]
fn not_yet_valid_leaf_is_code_9_at_depth_0() {
    // CA valid 2014-2024; the leaf was issued now, so in 2020 it is not yet valid.
    let pki = Pki::new(Some(("20140601000000Z", "20240601000000Z")));
    let (ca, ftd) = (pki.cert("ca.pem"), pki.cert("ftd.pem"));
    let at = datetime!(2020-01-01 00:00:00 UTC);
    let v = agree(
        at,
        std::slice::from_ref(&ftd),
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::CertNotYetValid, Some(0))
    );
    assert_eq!(
        v.overall.alert(),
        AlertDescription::BAD_CERTIFICATE,
        "OpenSSL sends bad_certificate, not rustls' 45"
    );
    assert_eq!(v.anchors[0].code, VerifyCode::Ok);
}

#[test]
fn expired_leaf_is_code_10_at_depth_0() {
    let pki = Pki::new(None);
    let ca = pki.cert("ca.pem");
    let ext = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n";
    let short = pki.issue("short", "/CN=short-lived", "ca", 1, ext);
    let at = day_after(short.not_after.unwrap());
    let v = agree(
        at,
        std::slice::from_ref(&short),
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::CertHasExpired, Some(0))
    );
    assert_eq!(v.anchors[0].code, VerifyCode::Ok);
}

#[test]
fn expiry_boundary_matches_openssl_to_the_second() {
    let pki = Pki::new(None);
    let ca = pki.cert("ca.pem");
    let ext = "basicConstraints=CA:FALSE\n";
    let short = pki.issue("edge", "/CN=edge", "ca", 1, ext);
    let na = short.not_after.unwrap();
    let nb = short.not_before.unwrap();
    for at in [
        na - time::Duration::seconds(1),
        na,
        na + time::Duration::seconds(1),
        nb - time::Duration::seconds(1),
        nb,
        // Sub-second packet times compare as whole seconds.
        na - time::Duration::milliseconds(500),
    ] {
        agree(
            at,
            std::slice::from_ref(&short),
            std::slice::from_ref(&ca),
            &Policy::default(),
            &[],
        );
    }
}

#[test]
fn regenerated_ca_same_dn_other_key_is_signature_failure_on_the_leaf() {
    let old = Pki::new(None);
    let new = Pki::new(None);
    let (old_ftd, new_ca) = (old.cert("ftd.pem"), new.cert("ca.pem"));
    assert_eq!(
        old_ftd.issuer, new_ca.subject,
        "lab-pki.sh uses fixed UUIDs: same DN"
    );
    let at = day_after(new_ca.not_before.unwrap());
    let v = agree(
        at,
        std::slice::from_ref(&old_ftd),
        std::slice::from_ref(&new_ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::CertSignatureFailure, Some(0))
    );
    assert_eq!(v.per_cert[0].code, VerifyCode::CertSignatureFailure);
    assert_eq!(v.anchors[0].code, VerifyCode::Ok);
    assert_eq!(v.overall.alert(), AlertDescription::DECRYPT_ERROR);
}

#[test]
fn missing_ca_and_self_signed_chains() {
    let pki = Pki::new(None);
    let (ca, ftd) = (pki.cert("ca.pem"), pki.cert("ftd.pem"));
    let other = one(&other_root(&pki.path("")));
    let at = day_after(ftd.not_before.unwrap());
    // The leaf's issuer is nowhere: 20 on the leaf.
    let v = agree(
        at,
        std::slice::from_ref(&ftd),
        std::slice::from_ref(&other),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::UnableToGetIssuerCertLocally, Some(0))
    );
    assert!(!v.trusted);
    assert_eq!(v.overall.alert(), AlertDescription::UNKNOWN_CA);
    // A lone self-signed certificate that is not an anchor: 18.
    let v = agree(
        at,
        std::slice::from_ref(&ca),
        std::slice::from_ref(&other),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::DepthZeroSelfSignedCert, Some(0))
    );
    // The peer sends its CA, which we do not trust: 19 at the CA.
    let v = agree(
        at,
        &[ftd.clone(), ca.clone()],
        std::slice::from_ref(&other),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::SelfSignedCertInChain, Some(1))
    );
    assert_eq!(v.per_cert[1].code, VerifyCode::SelfSignedCertInChain);
    assert_eq!(v.per_cert[0].code, VerifyCode::Ok);
    // A self-signed certificate that is itself the anchor is fine.
    let v = agree(
        at,
        std::slice::from_ref(&ca),
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert!(v.overall.is_ok());
    assert_eq!(v.path, vec![Source::Anchor(0)]);
    assert_eq!(v.per_cert[0].depth, Some(0));
}

#[test]
fn three_level_chains_and_invalid_intermediates() {
    let pki = Pki::new(None);
    let ca = pki.cert("ca.pem");
    let inter = pki.issue(
        "inter",
        "/CN=Intermediate/O=Lab",
        "ca",
        365,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
    );
    let leaf = pki.issue(
        "leaf3",
        "/CN=leaf3/O=Lab",
        "inter",
        30,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n",
    );
    let at = day_after(leaf.not_before.unwrap());
    let v = agree(
        at,
        &[leaf.clone(), inter.clone()],
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert!(v.overall.is_ok());
    assert_eq!(
        v.path,
        vec![Source::Chain(0), Source::Chain(1), Source::Anchor(0)]
    );
    // Intermediate missing from the chain: 20 on the leaf.
    let v = agree(
        at,
        std::slice::from_ref(&leaf),
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::UnableToGetIssuerCertLocally, Some(0))
    );
    // Only the intermediate trusted (no partial chains): 2 at the intermediate.
    let v = agree(
        at,
        std::slice::from_ref(&leaf),
        std::slice::from_ref(&inter),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::UnableToGetIssuerCert, Some(1))
    );
    // Wrong purpose: the leaf is serverAuth only.
    let v = agree(
        at,
        &[leaf.clone(), inter.clone()],
        std::slice::from_ref(&ca),
        &Policy {
            purpose: Some(Purpose::SslClient),
            ..Policy::default()
        },
        &["-purpose", "sslclient"],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::InvalidPurpose, Some(0))
    );
    // A CA:FALSE end-entity certificate used as an intermediate: 79, then its missing
    // keyCertSign (32) stops openssl.
    let ftd_pair = pki.issue(
        "under_ftd",
        "/CN=under-ftd",
        "ftd",
        30,
        "basicConstraints=CA:FALSE\n",
    );
    let v = agree(
        at,
        &[ftd_pair, pki.cert("ftd.pem")],
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::InvalidCa, Some(1))
    );
}

#[test]
fn rcgen_chains_with_ecdsa_and_ed25519_and_a_forged_signature() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let ca_key = KeyPair::generate_for(alg).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "rcgen root");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        ca_params.not_after = rcgen::date_time_ymd(2034, 1, 1);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate_for(alg).unwrap();
        let mut p = CertificateParams::new(vec!["localhost".into()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "rcgen leaf");
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2026, 1, 1);
        let leaf_cert = p.signed_by(&leaf_key, &issuer).unwrap();
        let ca = cert::parse(ca_cert.der());
        let leaf = cert::parse(leaf_cert.der());
        assert!(
            ca.is_complete() && leaf.is_complete(),
            "{:?}",
            leaf.parse_error
        );
        let at = datetime!(2025-06-01 00:00:00 UTC);
        let v = agree(
            at,
            std::slice::from_ref(&leaf),
            std::slice::from_ref(&ca),
            &Policy::default(),
            &[],
        );
        assert!(v.overall.is_ok(), "{:?} {:?}", leaf.key, v.errors);
        // After the leaf's end: 10 at 0 on both sides.
        agree(
            datetime!(2026-06-01 00:00:00 UTC),
            std::slice::from_ref(&leaf),
            std::slice::from_ref(&ca),
            &Policy::default(),
            &[],
        );
        // Flip one bit of the signature: 7 at 0.
        let mut der = leaf.der().to_vec();
        let n = der.len();
        der[n - 3] ^= 0x01;
        let forged = cert::parse(&der);
        let v = agree(
            at,
            std::slice::from_ref(&forged),
            std::slice::from_ref(&ca),
            &Policy::default(),
            &[],
        );
        assert_eq!(
            (v.overall.code, v.overall.depth),
            (VerifyCode::CertSignatureFailure, Some(0))
        );
    }
}

#[test]
fn unreadable_not_after_gives_a_record_and_openssl_order() {
    let pki = Pki::new(None);
    let (ca, ftd) = (pki.cert("ca.pem"), pki.cert("ftd.pem"));
    // Break the notAfter UTCTime's final 'Z' (same length): the signature no longer matches.
    let mut der = ftd.der().to_vec();
    let na = format!(
        "{}Z",
        ftd.not_after
            .unwrap()
            .format(time::macros::format_description!(
                "[year repr:last_two][month][day][hour][minute][second]"
            ))
            .unwrap()
    );
    let pos = der
        .windows(13)
        .position(|w| w == na.as_bytes())
        .expect("notAfter bytes");
    der[pos + 12] = b'0';
    let broken = cert::parse(&der);
    assert!(broken.not_after.is_none());
    assert!(broken.subject.is_some() && broken.serial.is_some() && broken.not_before.is_some());
    assert!(
        broken.parse_error.as_deref().unwrap().contains("notAfter"),
        "{:?}",
        broken.parse_error
    );
    let at = day_after(ftd.not_before.unwrap());
    let v = agree(
        at,
        std::slice::from_ref(&broken),
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        v.errors.iter().map(|e| e.code.code()).collect::<Vec<_>>(),
        vec![7, 14]
    );
}

/// `openssl x509 -noout -serial -subject -issuer -nameopt RFC2253 -dates -fingerprint -sha256`
fn openssl_fields(pem: &Path) -> std::collections::HashMap<String, String> {
    let out = openssl(
        &[
            "x509",
            "-in",
            pem.to_str().unwrap(),
            "-noout",
            "-serial",
            "-subject",
            "-issuer",
            "-nameopt",
            "RFC2253",
            "-dates",
            "-fingerprint",
            "-sha256",
        ],
        Path::new("."),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn openssl_date(s: &str) -> OffsetDateTime {
    // "Nov 26 15:24:19 2026 GMT"
    let fmt = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    time::PrimitiveDateTime::parse(s, &fmt)
        .unwrap()
        .assume_utc()
}

#[test]
fn cert_info_matches_openssl_x509_for_sftunnel_certs() {
    let pki = Pki::new(None);
    let tmp = tempfile::tempdir().unwrap();
    let root = other_root(tmp.path());
    for path in [
        pki.path("ca.pem"),
        pki.path("fmc.pem"),
        pki.path("ftd.pem"),
        root,
    ] {
        let c = one(&path);
        let f = openssl_fields(&path);
        let serial = f["serial"].to_ascii_lowercase();
        let serial = serial.trim_start_matches('0');
        assert_eq!(
            c.serial.as_deref().unwrap(),
            if serial.is_empty() { "0" } else { serial }
        );
        assert_eq!(c.subject.as_ref().unwrap().rfc4514(), f["subject"]);
        assert_eq!(c.issuer.as_ref().unwrap().rfc4514(), f["issuer"]);
        assert_eq!(c.not_before.unwrap(), openssl_date(&f["notBefore"]));
        assert_eq!(c.not_after.unwrap(), openssl_date(&f["notAfter"]));
        assert_eq!(
            c.sha256,
            f["sha256 Fingerprint"]
                .replace(':', "")
                .to_ascii_lowercase()
        );
        assert!(c.is_complete(), "{:?}", c.parse_error);
        assert_eq!(c.sig_alg.as_deref(), Some("sha256WithRSAEncryption"));
        assert_eq!(c.key.as_deref(), Some("RSA 2048"));
    }
    let ca = pki.cert("ca.pem");
    assert_eq!((ca.version, ca.serial.as_deref()), (Some(1), Some("0")));
    assert!(ca.self_signed && ca.self_issued && ca.extensions.is_empty());
    let id = ca.sftunnel_identity();
    assert_eq!(
        (id.role, id.uuid.as_deref()),
        (SubjectRole::InternalCa, Some(CA_UUID))
    );

    let fmc = pki.cert("fmc.pem");
    assert_eq!((fmc.version, fmc.serial.as_deref()), (Some(3), Some("e")));
    assert_eq!(fmc.title(), Some(CA_UUID));
    assert_eq!(fmc.generation_qualifier(), Some("sftunnel"));
    assert_eq!(fmc.common_name(), Some("localhost"));
    assert_eq!(fmc.sftunnel_identity().role, SubjectRole::Fmc);
    let bc = fmc
        .extensions
        .iter()
        .find(|e| e.name == Some("basicConstraints"))
        .unwrap();
    assert_eq!(bc.value.as_deref(), Some("CA:FALSE"));
    let eku = fmc
        .extensions
        .iter()
        .find(|e| e.name == Some("extendedKeyUsage"))
        .unwrap();
    assert_eq!(eku.value.as_deref(), Some("serverAuth, clientAuth"));
    let ku = fmc
        .extensions
        .iter()
        .find(|e| e.name == Some("keyUsage"))
        .unwrap();
    assert_eq!(
        ku.value.as_deref(),
        Some("Digital Signature, Key Encipherment")
    );

    let ftd = pki.cert("ftd.pem");
    let id = ftd.sftunnel_identity();
    assert_eq!(
        (id.role, id.uuid.as_deref()),
        (SubjectRole::Ftd, Some(FTD_UUID))
    );
    assert_eq!(
        id.generation_qualifier.as_deref(),
        Some(format!("sftunnel_{FTD_UUID}").as_str())
    );
    assert_eq!(ftd.common_name(), None);
    assert_eq!(
        ftd.subject.as_ref().unwrap().rfc4514(),
        format!(
            "OU=Intrusion Management System,O=Cisco Systems\\, Inc,title={FTD_UUID},generationQualifier=sftunnel_{FTD_UUID}"
        )
    );

    // The JSON a report embeds.
    let j = serde_json::to_value(&ftd).unwrap();
    assert_eq!(j["serial"], "f");
    assert_eq!(j["version"], 3);
    assert_eq!(j["not_after"], sftunnel::rfc3339(&ftd.not_after.unwrap()));
    assert_eq!(
        j["issuer"],
        format!(
            "O=Cisco Systems\\, Inc,CN={CA_UUID},OU=Intrusion Management System,title=InternalCA"
        )
    );
}

#[test]
fn pem_files_errors_name_the_file_and_never_print_keys() {
    let pki = Pki::new(None);
    let key = pki.path("ca.key");
    let e = cert::read_certs(&key).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CertError::PrivateKey { .. }), "{msg}");
    assert!(
        msg.contains(key.to_str().unwrap()) && msg.contains("private key"),
        "{msg}"
    );
    let secret = std::fs::read_to_string(&key).unwrap();
    let body_line = secret.lines().nth(1).unwrap();
    assert!(!msg.contains(body_line));

    let missing = pki.path("nope.pem");
    let e = cert::read_certs(&missing).unwrap_err();
    assert!(matches!(e, CertError::Io { .. }) && e.to_string().contains("nope.pem"));

    // A bundle: the cert + key file and a CA bundle of two.
    let mut bundle = std::fs::read(pki.path("fmc.pem")).unwrap();
    bundle.extend(std::fs::read(pki.path("fmc.key")).unwrap());
    bundle.extend(std::fs::read(pki.path("ca.pem")).unwrap());
    let certs = cert::parse_pem_bundle(&bundle).unwrap();
    assert_eq!(certs.len(), 2);
    // DER works too.
    let der = pki.cert("ca.pem").der().to_vec();
    assert_eq!(
        cert::parse_pem_bundle(&der).unwrap()[0].sha256,
        pki.cert("ca.pem").sha256
    );
}

#[test]
fn anchors_are_parsed_once_and_judging_needs_no_clock() {
    // The same parsed anchors judge many chains at many times; nothing here reads the clock.
    let pki = Pki::new(Some(("20140601000000Z", "20240601000000Z")));
    let (ca, ftd) = (pki.cert("ca.pem"), pki.cert("ftd.pem"));
    let anchors = vec![ca];
    let before = judge::verify(
        std::slice::from_ref(&ftd),
        &anchors,
        datetime!(2023-01-01 00:00:00 UTC),
    );
    let after = judge::verify(
        std::slice::from_ref(&ftd),
        &anchors,
        day_after(ftd.not_before.unwrap()),
    );
    assert_eq!(before.overall.code, VerifyCode::CertNotYetValid);
    assert_eq!(
        (after.overall.code, after.overall.depth),
        (VerifyCode::CertHasExpired, Some(1))
    );
    let j = serde_json::to_value(&after.overall).unwrap();
    assert_eq!(j["code"], 10);
    assert_eq!(j["text"], "certificate has expired");
    assert_eq!(j["depth"], 1);
}

#[test]
fn undecodable_basic_constraints_never_chains_like_openssl() {
    let pki = Pki::new(None);
    let ca = pki.cert("ca.pem");
    let good = pki.issue("bc", "/CN=bad-bc", "ca", 30, "basicConstraints=CA:FALSE\n");
    // basicConstraints' inner SEQUENCE becomes a SET, then the CA re-signs the TBS.
    let mut der = good.der().to_vec();
    let oid = [0x06, 0x03, 0x55, 0x1d, 0x13];
    let at_oid = der.windows(5).position(|w| w == oid).unwrap();
    let octets = at_oid + 5 + der[at_oid + 5..].iter().position(|&b| b == 0x04).unwrap();
    assert_eq!(der[octets + 2], 0x30);
    der[octets + 2] = 0x31;
    let tbs = cert::parse(&der).tbs().unwrap().to_vec();
    let d = pki.path("");
    std::fs::write(d.join("tbs.bin"), &tbs).unwrap();
    let sig = openssl(&["dgst", "-sha256", "-sign", "ca.key", "tbs.bin"], &d).stdout;
    assert_eq!(sig.len(), 256);
    let n = der.len();
    der[n - 256..].copy_from_slice(&sig);
    let bad = cert::parse(&der);
    assert!(bad.v3.invalid.is_some(), "{:?}", bad.extensions);
    assert!(bad.subject.is_some() && bad.not_after.is_some());
    let at = day_after(bad.not_before.unwrap());
    let v = agree(
        at,
        std::slice::from_ref(&bad),
        std::slice::from_ref(&ca),
        &Policy::default(),
        &[],
    );
    assert_eq!(
        (v.overall.code, v.overall.depth),
        (VerifyCode::UnableToGetIssuerCertLocally, Some(0))
    );
}

#[test]
fn damaged_certificates_give_records_and_verdicts_never_panics() {
    let pki = Pki::new(None);
    let (ca, ftd) = (pki.cert("ca.pem"), pki.cert("ftd.pem"));
    let at = day_after(ftd.not_before.unwrap());
    let der = ftd.der().to_vec();
    let mut partial = 0;
    for i in 0..der.len() {
        for damaged in [der[..i].to_vec(), {
            let mut d = der.clone();
            d[i] ^= 0xff;
            d
        }] {
            let c = cert::parse(&damaged);
            assert_eq!(c.len, damaged.len());
            if c.parse_error.is_some() && c.subject.is_some() {
                partial += 1;
            }
            // As a leaf and as an anchor: a verdict, whatever the bytes.
            let v = judge::verify(std::slice::from_ref(&c), std::slice::from_ref(&ca), at);
            assert_eq!(v.per_cert.len(), 1);
            if i > 0 {
                assert!(!v.overall.is_ok(), "damaged at {i} yet verified");
            }
            let v = judge::verify(std::slice::from_ref(&ftd), std::slice::from_ref(&c), at);
            assert!(!v.overall.is_ok(), "a damaged leaf is no anchor for ftd");
        }
    }
    assert!(
        partial > 100,
        "damaged certificates still yield their names ({partial})"
    );
    let v = judge::verify(&[], std::slice::from_ref(&ca), at);
    assert_eq!(v.overall.code, VerifyCode::Unspecified);
}

#[test]
fn rfc4514_names_match_openssl_rfc2253_including_escapes_and_multivalued_rdns() {
    let tmp = tempfile::tempdir().unwrap();
    let subjects = [
        r#"/DC=com/DC=example/C=US/ST=CA/L=Berkeley/O=Org, Inc.+OU=Unit/CN=\#hash; semi "q" <a> \+plus\\back /emailAddress=x@y.z/serialNumber=123/UID=u1/street=Main St/postalCode=94720/SN=Doe/GN=John/initials=JD/dnQualifier=q1/pseudonym=ps/description=d/businessCategory=bc/name=nm/title=InternalCA/generationQualifier=sftunnel"#,
        "/CN=Zürich Straße/O=Ünïcode",
        "/CN= leading and trailing /O=#x",
    ];
    for (i, subj) in subjects.iter().enumerate() {
        let pem = format!("n{i}.pem");
        openssl_ok(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "n.key",
                "-out",
                &pem,
                "-days",
                "1",
                "-multivalue-rdn",
                "-utf8",
                "-subj",
                subj,
            ],
            tmp.path(),
        );
        let theirs = openssl_fields(&tmp.path().join(&pem))["subject"].clone();
        let ours = one(&tmp.path().join(&pem)).subject.unwrap().rfc4514();
        // OpenSSL escapes every non-ASCII byte as \XX (ASN1_STRFLGS_ESC_MSB); RFC 4514 allows
        // UTF-8 as is, which we print. Undo that one difference, compare the rest exactly.
        assert_eq!(ours, unescape_msb(&theirs), "{subj}");
    }
}

/// Turns OpenSSL's `\C3\A9` escapes of bytes >= 0x80 back into UTF-8.
fn unescape_msb(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) if v >= 0x80 => {
                    out.push(v);
                    i += 3;
                }
                _ => {
                    // Any other escape (`\,`, `\\`, `\00`) is kept as written.
                    out.extend_from_slice(&b[i..i + 2]);
                    i += 2;
                }
            }
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn analyze_jsonl(capture: &Path) -> Vec<serde_json::Value> {
    let out = common::sfdiag()
        .args(["analyze", "--format", "jsonl"])
        .arg(capture)
        .output()
        .expect("run sfdiag analyze");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_undecodable_certificate_is_a_decode_failure_not_a_date_problem() {
    // Suricata's bug-1450-04/05: 9 bytes that no parser reads as a certificate.
    let Some(new) = corpus!("captures-new") else {
        return;
    };
    let dir = new.join("suricata-verify");
    for capture in [
        "bug-1450-04/tls_DER-incomplete-header.pcap",
        "bug-1450-05/tls_DER-incomplete-content.pcap",
    ] {
        let records = analyze_jsonl(&dir.join(capture));
        let cert = records
            .iter()
            .find(|r| r["type"] == "certificate")
            .unwrap_or_else(|| panic!("{capture}: no certificate record"));
        assert_eq!(cert["der_len"], 9, "{capture}");
        let v = &cert["verdict"];
        assert_eq!(v["code"], -1, "{capture}: {v}");
        let text = v["text"].as_str().unwrap();
        assert!(
            text.starts_with("certificate could not be decoded: ") && !text.contains("notBefore"),
            "{capture}: {text}"
        );
        let session = records.iter().find(|r| r["type"] == "session").unwrap();
        assert_eq!(session["server_chain_verdict"]["code"], -1, "{capture}");
    }
    // The same on our own bytes: a certificate cut short does not decode; a TLS peer answers
    // decode_error (50) and verifies nothing, so neither dates nor issuers are judged.
    let pki = Pki::new(None);
    let (ca, ftd) = (pki.cert("ca.pem"), pki.cert("ftd.pem"));
    let cut = cert::parse(&ftd.der()[..ftd.der().len() - 10]);
    let reason = cut
        .decode_error
        .clone()
        .expect("a cut certificate does not decode");
    let at = day_after(ftd.not_before.unwrap());
    let v = judge::verify(&[cut, ca.clone()], std::slice::from_ref(&ca), at);
    assert_eq!(v.overall.code, VerifyCode::NotDecoded);
    assert_eq!(v.overall.alert().0, 50);
    assert_eq!(
        v.overall.text(),
        format!("certificate could not be decoded: {reason}")
    );
    assert_eq!(v.overall.describe(), v.overall.text());
    assert_eq!(v.errors.len(), 1);
    assert!(v.per_cert[1].is_ok() && v.per_cert[1].depth.is_none());
    assert!(
        v.per_cert[1]
            .note
            .as_deref()
            .unwrap()
            .contains("not judged")
    );
    assert!(matches!(
        v.result(),
        Err(judge::VerifyError::NotDecoded { .. })
    ));
    // A certificate with an odd field still decodes (OpenSSL reads it and judges it).
    assert!(ftd.decode_error.is_none());
}

#[test]
fn each_verdict_is_stamped_with_its_own_packet_time() {
    // Certificates repeat within one second here: the verdict cache must not hand the
    // first packet's time to the later ones.
    let Some(shared) = corpus!("captures") else {
        return;
    };
    let records = analyze_jsonl(&shared.join("zeek/google-cert-repeat.pcap"));
    let certs: Vec<_> = records
        .iter()
        .filter(|r| r["type"] == "certificate")
        .collect();
    assert!(certs.len() > 10, "{} certificate records", certs.len());
    let second = |ts: &str| ts.split('.').next().unwrap().to_string();
    let mut shared_second = 0;
    for (i, c) in certs.iter().enumerate() {
        let ts = c["ts"].as_str().unwrap();
        assert_eq!(c["verdict"]["at"].as_str().unwrap(), ts, "record {i}");
        shared_second += certs[..i]
            .iter()
            .filter(|o| o["ts"] != c["ts"] && second(o["ts"].as_str().unwrap()) == second(ts))
            .count();
    }
    assert!(
        shared_second > 0,
        "no two records in one second: the test proves nothing"
    );
}
