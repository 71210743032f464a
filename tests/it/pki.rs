//! `sfdiag pki init`: the files it writes, cross-checked with the `openssl` command.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{have_openssl, sfdiag};

const FMC: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
const FTD: &str = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";

fn need_openssl() {
    assert!(
        have_openssl(),
        "these tests cross-check with the openssl command (.ci/run installs it)"
    );
}

/// Runs openssl and returns stdout (panics with stderr on failure).
pub(crate) fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn init(root: &Path, extra: &[&str]) -> Output {
    sfdiag()
        .args(["pki", "init", "--root", s(root)])
        .args(extra)
        .output()
        .unwrap()
}

fn init_ok(root: &Path, extra: &[&str]) {
    let out = init(root, extra);
    assert!(
        out.status.success(),
        "pki init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                m.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
    }
    m
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn rfc2253(kind: &str, cert: &Path) -> String {
    let o = openssl(&[
        "x509",
        "-noout",
        kind,
        "-nameopt",
        "RFC2253",
        "-in",
        s(cert),
    ]);
    o.trim()
        .split_once('=')
        .map(|(_, v)| v.to_string())
        .unwrap()
}

fn modulus_matches(cert: &Path, key: &Path) {
    let c = openssl(&["x509", "-noout", "-modulus", "-in", s(cert)]);
    let k = openssl(&["rsa", "-noout", "-modulus", "-in", s(key)]);
    assert_eq!(
        c,
        k,
        "{} does not belong to {}",
        key.display(),
        cert.display()
    );
}

#[test]
fn init_writes_the_appliance_layout_that_openssl_accepts() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init_ok(
        &root,
        &[
            "--fmc-uuid",
            FMC,
            "--device",
            &format!("ftd1={FTD}"),
            "--device",
            "branch",
            "--ha-secondary",
            "fmc2",
        ],
    );
    let fmc = root.join("fmc");
    let ca = fmc.join("etc/sf/ca_root/cacert.pem");

    // The InternalCA: v1, serial 0, sha256WithRSAEncryption, RSA 2048, the appliance's DN.
    let text = openssl(&["x509", "-noout", "-text", "-in", s(&ca)]);
    assert!(text.contains("Version: 1 (0x0)"), "{text}");
    assert!(text.contains("Serial Number: 0 (0x0)"), "{text}");
    assert!(text.contains("Signature Algorithm: sha256WithRSAEncryption"));
    assert!(text.contains("Public-Key: (2048 bit)"));
    assert!(
        !text.contains("X509v3"),
        "a v1 certificate has no extensions"
    );
    let ca_dn =
        format!("O=Cisco Systems\\, Inc,CN={FMC},OU=Intrusion Management System,title=InternalCA");
    assert_eq!(rfc2253("-subject", &ca), ca_dn);
    assert_eq!(rfc2253("-issuer", &ca), ca_dn);
    // The DER order, as `openssl x509 -subject` prints it by default.
    assert_eq!(
        openssl(&["x509", "-noout", "-subject", "-in", s(&ca)]).trim(),
        format!(
            "subject=title = InternalCA, OU = Intrusion Management System, CN = {FMC}, O = \"Cisco Systems, Inc\""
        )
    );
    modulus_matches(&ca, &fmc.join("etc/sf/ca_root/cakey.pem"));

    // The FMC's own certificate.
    let fmc_cert = fmc.join("etc/sf/keys/sftunnel-cert.pem");
    assert_eq!(
        openssl(&["x509", "-noout", "-subject", "-in", s(&fmc_cert)]).trim(),
        format!(
            "subject=generationQualifier = sftunnel, title = {FMC}, O = \"Cisco Systems, Inc\", OU = Intrusion Management System, CN = localhost"
        )
    );
    modulus_matches(&fmc_cert, &fmc.join("etc/sf/keys/sftunnel-key.pem"));

    // Every peer: the device's copy and the FMC's pushed copy, the same bytes.
    let conf = fs::read_to_string(fmc.join("etc/sf/sftunnel.conf")).unwrap();
    assert!(
        conf.contains("proxy_cert /etc/sf/keys/sftunnel-cert.pem;"),
        "{conf}"
    );
    assert!(
        conf.contains("proxy_ca /etc/sf/ca_root/cacert.pem;"),
        "{conf}"
    );
    assert!(conf.contains("proxy_tls_version TLSv1.2;"), "{conf}");
    let mut serials = vec![openssl(&["x509", "-noout", "-serial", "-in", s(&fmc_cert)])];
    for name in ["ftd1", "branch", "fmc2"] {
        let ims = fs::read_to_string(root.join(name).join("etc/sf/ims.conf")).unwrap();
        assert!(ims.contains(&format!("APPLIANCE_NAME={name}\n")), "{ims}");
        let uuid = ims
            .lines()
            .find_map(|l| l.strip_prefix("APPLIANCE_UUID="))
            .unwrap()
            .to_string();
        if name == "ftd1" {
            assert_eq!(uuid, FTD);
        }
        let role = if name == "fmc2" {
            "ha-secondary"
        } else {
            "device"
        };
        assert!(ims.contains(&format!("APPLIANCE_ROLE={role}\n")), "{ims}");
        assert!(conf.contains(&format!("uuid {uuid};")), "{conf}");

        let own = root.join(name).join("var/sf/peers").join(FMC);
        let pushed = fmc.join("var/sf/peers").join(&uuid).join("certs_pushed");
        for f in ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"] {
            assert_eq!(
                fs::read(own.join(f)).unwrap(),
                fs::read(pushed.join(f)).unwrap()
            );
        }
        assert_eq!(
            fs::read(own.join("cacert.pem")).unwrap(),
            fs::read(&ca).unwrap()
        );
        let cert = own.join("sftunnel-cert.pem");
        let v = openssl(&["verify", "-CAfile", s(&ca), s(&cert)]);
        assert_eq!(v.trim(), format!("{}: OK", cert.display()));
        assert_eq!(
            rfc2253("-subject", &cert),
            format!(
                "OU=Intrusion Management System,O=Cisco Systems\\, Inc,title={uuid},generationQualifier=sftunnel_{uuid}"
            )
        );
        assert_eq!(rfc2253("-issuer", &cert), ca_dn);
        modulus_matches(&cert, &own.join("sftunnel-key.pem"));
        let text = openssl(&["x509", "-noout", "-text", "-in", s(&cert)]);
        assert!(text.contains("Version: 3 (0x2)"));
        assert!(text.contains("Digital Signature, Key Encipherment"));
        assert!(text.contains("CA:FALSE"));
        assert!(text.contains("X509v3 Subject Key Identifier"));
        assert_eq!(
            text.matches("X509v3 ").count() - 1,
            3,
            "three extensions: {text}"
        );
        serials.push(openssl(&["x509", "-noout", "-serial", "-in", s(&cert)]));
        for k in [
            own.join("sftunnel-key.pem"),
            pushed.join("sftunnel-key.pem"),
        ] {
            assert_eq!(mode(&k), 0o600, "{}", k.display());
            assert_eq!(mode(k.parent().unwrap()), 0o700, "{}", k.display());
        }
    }
    let v = openssl(&["verify", "-CAfile", s(&ca), s(&fmc_cert)]);
    assert!(v.trim().ends_with(": OK"));
    // Small serials, issued in order, and the counter that continues them.
    assert_eq!(
        serials,
        ["serial=01\n", "serial=02\n", "serial=03\n", "serial=04\n"]
    );
    assert_eq!(
        fs::read_to_string(fmc.join("etc/sf/ca_root/serial")).unwrap(),
        "05\n"
    );
    for k in ["etc/sf/ca_root/cakey.pem", "etc/sf/keys/sftunnel-key.pem"] {
        assert_eq!(mode(&fmc.join(k)), 0o600, "{k}");
        assert_eq!(mode(fmc.join(k).parent().unwrap()), 0o700, "{k}");
    }
    // No staging or temporary files left behind.
    let names: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["branch", "fmc", "fmc2", "ftd1"]);
    assert!(
        snapshot(&root)
            .keys()
            .all(|p| !p.to_string_lossy().contains(".sfdiag-"))
    );
}

#[test]
fn refuses_an_existing_pki_without_force_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    init_ok(d.path(), &["--devices", "1"]);
    let before = snapshot(d.path());
    let out = init(d.path(), &["--devices", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn force_replaces_the_pki_and_keeps_old_files_as_backup() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    init_ok(d.path(), &["--devices", "2"]);
    let ca = d.path().join("fmc/etc/sf/ca_root/cacert.pem");
    let old_ca = fs::read(&ca).unwrap();
    let old_ftd2 = snapshot(&d.path().join("ftd2"));
    init_ok(d.path(), &["--devices", "1", "--force"]);
    assert_ne!(fs::read(&ca).unwrap(), old_ca);
    let backup = d.path().join("fmc/etc/sf/ca_root/cacert.pem.backup");
    assert_eq!(fs::read(&backup).unwrap(), old_ca);
    assert_eq!(
        mode(&d.path().join("fmc/etc/sf/ca_root/cakey.pem.backup")),
        0o600
    );
    // ftd2 is not in the new PKI: its old files are retired as backups too.
    let now_ftd2 = snapshot(&d.path().join("ftd2"));
    assert_eq!(now_ftd2.len(), old_ftd2.len());
    for (p, bytes) in &old_ftd2 {
        let mut b = p.clone().into_os_string();
        b.push(".backup");
        assert_eq!(now_ftd2.get(&PathBuf::from(b)), Some(bytes));
    }
    // The new set verifies.
    let conf = fs::read_to_string(d.path().join("fmc/etc/sf/sftunnel.conf")).unwrap();
    assert!(!conf.contains("name ftd2;"), "{conf}");
    let ims = fs::read_to_string(d.path().join("fmc/etc/sf/ims.conf")).unwrap();
    let fmc = ims
        .lines()
        .find_map(|l| l.strip_prefix("APPLIANCE_UUID="))
        .unwrap();
    let cert = d
        .path()
        .join("ftd1/var/sf/peers")
        .join(fmc)
        .join("sftunnel-cert.pem");
    openssl(&["verify", "-CAfile", s(&ca), s(&cert)]);
}

/// Audit finding 6: `init --force` over a root with numbered backups (its own and the user's)
/// and a folder named like a backup leaves every one of them where it is, under its name.
#[test]
fn force_leaves_numbered_backups_and_backup_folders_alone() {
    let d = tempfile::tempdir().unwrap();
    init_ok(d.path(), &["--devices", "1"]);
    let ca_root = d.path().join("fmc/etc/sf/ca_root");
    let keys = d.path().join("fmc/etc/sf/keys");
    for (f, bytes) in [
        ("cakey.pem.backup.1", "one"),
        ("cakey.pem.backup.5", "five"),
    ] {
        fs::write(ca_root.join(f), bytes).unwrap();
    }
    fs::create_dir(keys.join("sftunnel-key.pem.backup")).unwrap();
    fs::write(keys.join("sftunnel-key.pem.backup/mine.pem"), "mine").unwrap();
    init_ok(d.path(), &["--devices", "1", "--force"]);
    assert_eq!(
        fs::read_to_string(ca_root.join("cakey.pem.backup.1")).unwrap(),
        "one"
    );
    assert_eq!(
        fs::read_to_string(ca_root.join("cakey.pem.backup.5")).unwrap(),
        "five"
    );
    assert_eq!(
        fs::read_to_string(keys.join("sftunnel-key.pem.backup/mine.pem")).unwrap(),
        "mine"
    );
    let names: Vec<String> = fs::read_dir(&ca_root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains(".backup.1.backup") || n.contains(".backup.5.backup")),
        "{names:?}"
    );
    assert!(ca_root.join("cakey.pem.backup").is_file(), "{names:?}");
}

/// Audit finding 10: a `--root` that is a link to a folder is named as a link, with where it
/// leads.
#[test]
fn init_on_a_root_that_is_a_link_says_so() {
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = d.path().join("rootlink");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = init(&link, &["--devices", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a symbolic link to"), "{err}");
    assert!(err.contains(s(&real)), "{err}");
    assert_eq!(fs::read_dir(&real).unwrap().count(), 0);
}

#[test]
fn a_failure_halfway_leaves_no_half_pki() {
    let d = tempfile::tempdir().unwrap();
    // ftd2's folder name is taken by a plain file: ftd1 and fmc are moved in before the
    // install reaches ftd2 and fails, and must be moved back out.
    fs::write(d.path().join("ftd2"), b"not a folder").unwrap();
    let out = init(d.path(), &["--devices", "3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ftd2"), "{err}");
    let left: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["ftd2"]);
    assert_eq!(fs::read(d.path().join("ftd2")).unwrap(), b"not a folder");
}

#[test]
fn validity_flags_set_the_ca_and_peer_windows() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    init_ok(
        d.path(),
        &[
            "--fmc-uuid",
            FMC,
            "--device",
            &format!("ftd1={FTD}"),
            "--not-before",
            "2014-06-01T00:00:00Z",
            "--days",
            "3650",
            "--peer-not-before",
            "2045-01-01T00:00:00Z",
            "--peer-days",
            "3650",
        ],
    );
    let ca = d.path().join("fmc/etc/sf/ca_root/cacert.pem");
    assert_eq!(
        openssl(&["x509", "-noout", "-dates", "-in", s(&ca)]),
        "notBefore=Jun  1 00:00:00 2014 GMT\nnotAfter=May 29 00:00:00 2024 GMT\n"
    );
    let cert = d
        .path()
        .join("ftd1/var/sf/peers")
        .join(FMC)
        .join("sftunnel-cert.pem");
    assert_eq!(
        openssl(&["x509", "-noout", "-dates", "-in", s(&cert)]),
        "notBefore=Jan  1 00:00:00 2045 GMT\nnotAfter=Dec 30 00:00:00 2054 GMT\n"
    );
    // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
    let asn1 = openssl(&["asn1parse", "-in", s(&cert)]);
    assert!(asn1.contains("UTCTIME           :450101000000Z"), "{asn1}");
    assert!(
        asn1.contains("GENERALIZEDTIME   :20541230000000Z"),
        "{asn1}"
    );
    // The windows do not overlap; with time checks off the chain itself verifies.
    let v = openssl(&["verify", "-no_check_time", "-CAfile", s(&ca), s(&cert)]);
    assert!(v.trim().ends_with(": OK"), "{v}");
}

#[test]
fn bad_requests_are_usage_errors_naming_the_argument() {
    let d = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--device", "fmc"], "fmc"),
        (vec!["--device", "a/b"], "a/b"),
        (vec!["--device", "x=not-a-uuid"], "not-a-uuid"),
        (vec!["--device", "x", "--device", "x"], "given twice"),
        (vec!["--not-before", "tomorrow"], "--not-before"),
        (
            vec![
                "--not-before",
                "2030-01-01T00:00:00Z",
                "--not-after",
                "2029-01-01T00:00:00Z",
            ],
            "notBefore 2030-01-01T00:00:00Z is after notAfter 2029-01-01T00:00:00Z",
        ),
        (vec!["--key-bits", "1024"], "1024"),
        (vec!["--devices", "2", "--device", "x"], "--device"),
    ] {
        let out = init(d.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn names_match_the_openssl_reference_pki() {
    // certs/openssl-pki.sh builds an sftunnel-shaped PKI with openssl alone, using these
    // two UUIDs. With the same UUIDs our InternalCA and device names are the same.
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let reference = d.path().join("ref");
    crate::common::openssl_pki(&reference, None);
    let ours = d.path().join("ours");
    init_ok(
        &ours,
        &["--fmc-uuid", FMC, "--device", &format!("ftd1={FTD}")],
    );
    let our_ca = ours.join("fmc/etc/sf/ca_root/cacert.pem");
    let our_ftd = ours
        .join("ftd1/var/sf/peers")
        .join(FMC)
        .join("sftunnel-cert.pem");
    let their_ca = reference.join("ca.pem");
    assert_eq!(rfc2253("-subject", &our_ca), rfc2253("-subject", &their_ca));
    assert_eq!(
        rfc2253("-subject", &our_ftd),
        rfc2253("-subject", &reference.join("ftd.pem"))
    );
    let ca_text = |p: &Path| {
        let t = openssl(&["x509", "-noout", "-text", "-in", s(p)]);
        (
            t.contains("Version: 1 (0x0)"),
            t.contains("Serial Number: 0 (0x0)"),
            t.contains("Public-Key: (2048 bit)"),
            t.contains("sha256WithRSAEncryption"),
        )
    };
    assert_eq!(ca_text(&our_ca), ca_text(&their_ca));
    assert_eq!(ca_text(&our_ca), (true, true, true, true));
    // Their CA and our CA hold the same name: each one's leaf does not verify under the
    // other's key, which proves the check looks at signatures, not just names.
    let out = Command::new("openssl")
        .args(["verify", "-CAfile", s(&their_ca), s(&our_ftd)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signature failure")
            || String::from_utf8_lossy(&out.stderr).contains("signature failure")
    );
}

#[test]
fn show_decodes_pem_bundles_der_and_keys_without_printing_secrets() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init_ok(
        &root,
        &["--fmc-uuid", FMC, "--device", &format!("ftd1={FTD}")],
    );
    let own = root.join("ftd1/var/sf/peers").join(FMC);
    let ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
    let leaf = own.join("sftunnel-cert.pem");
    let key = own.join("sftunnel-key.pem");
    let bundle = d.path().join("chain.pem");
    let mut b = fs::read(&leaf).unwrap();
    b.extend(fs::read(&ca).unwrap());
    fs::write(&bundle, b).unwrap();
    let der = d.path().join("ca.der");
    openssl(&["x509", "-in", s(&ca), "-outform", "DER", "-out", s(&der)]);
    let garbage = d.path().join("garbage.pem");
    fs::write(&garbage, b"hello").unwrap();

    let out = sfdiag()
        .args(["pki", "show", s(&bundle), s(&der), s(&garbage), s(&key)])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "garbage makes it fail: {err}");
    assert!(err.contains(s(&garbage)), "{err}");

    assert!(text.contains(&format!("== {} [certificate 1 of 2]", bundle.display())));
    assert!(text.contains(&format!("== {} [certificate 2 of 2]", bundle.display())));
    assert!(text.contains(&format!("== {}\n", der.display())));
    // The leaf: v3, serial 2, names with title and generationQualifier spelled out.
    assert!(
        text.contains("Version:     3 (0x2)\nSerial:      2 (0x2)\n"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "RFC 4514: OU=Intrusion Management System,O=Cisco Systems\\, Inc,title={FTD},generationQualifier=sftunnel_{FTD}"
    )), "{text}");
    assert!(text.contains("keyUsage (critical): Digital Signature, Key Encipherment"));
    assert!(text.contains("basicConstraints (critical): CA:FALSE"));
    // The CA, from the bundle and from DER: v1, serial 0, no extensions.
    assert_eq!(
        text.matches("Version:     1 (0x0)\nSerial:      0 (0x0)\n")
            .count(),
        2
    );
    assert_eq!(text.matches("Extensions:  none").count(), 2);
    assert!(text.contains("Signature:   sha256WithRSAEncryption"));
    assert!(text.contains("Key:         RSA 2048"));
    let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", s(&ca)]);
    let fp = fp
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(text.matches(&format!("SHA-256:     {fp}")).count(), 2);

    // The key: described by its public half, matched to its certificate, never printed.
    assert!(text.contains("Private key: PRIVATE KEY (the private part is never shown)"));
    assert!(
        text.contains(&format!("Matches:     {}#1", bundle.display())),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY-----"), "{text}");
    let public = openssl(&["pkey", "-in", s(&key), "-pubout"]);
    assert!(text.contains(&public), "{text}");
}
