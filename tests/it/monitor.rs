//! `sfdiag check` as a monitoring plugin (status ranking, usage errors, perfdata, order,
//! PKCS#12, `--ca` against `openssl verify -attime`, the peer cross-check of a renewed root,
//! the appliance's own messages) and `sfdiag inventory` (roots, a lab capture, the CSV that
//! `pki copy` reads). Certificates are made by openssl or by our own `pki init`/`renew`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::common::{have_openssl, sfdiag};

const FMC: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = sfdiag().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out
}

fn openssl(args: &[&str]) -> String {
    assert!(
        have_openssl(),
        "the openssl command is needed (.ci/run installs it)"
    );
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed certificate (and its key) from `openssl req -x509`, valid from now.
fn openssl_cert(dir: &Path, name: &str, days: u32) -> PathBuf {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha256",
        "-subj",
        &format!("/CN={name}"),
        "-days",
        &days.to_string(),
        "-keyout",
        s(&key),
        "-out",
        s(&cert),
    ]);
    cert
}

fn not_before(cert: &Path) -> OffsetDateTime {
    let text = openssl(&[
        "x509",
        "-noout",
        "-startdate",
        "-dateopt",
        "iso_8601",
        "-in",
        s(cert),
    ]);
    let v = text
        .trim()
        .trim_start_matches("notBefore=")
        .replacen(' ', "T", 1);
    OffsetDateTime::parse(&v, &Rfc3339).unwrap()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The perfdata of a status line: `(label, days, warn, crit)`.
fn perfdata(status_line: &str) -> Vec<(String, i64, String, String)> {
    let (_, perf) = status_line.split_once(" | ").expect("perfdata after ` | `");
    let mut out = Vec::new();
    let mut rest = perf;
    while let Some(r) = rest.strip_prefix('\'') {
        // Labels are quoted; '' is a quote inside.
        let mut label = String::new();
        let mut chars = r.char_indices().peekable();
        let end = loop {
            let (i, c) = chars.next().expect("closing quote");
            if c == '\'' {
                if let Some((_, '\'')) = chars.peek() {
                    chars.next();
                    label.push('\'');
                    continue;
                }
                break i;
            }
            label.push(c);
        };
        let after = &r[end + 1..];
        let after = after.strip_prefix('=').expect("label=value");
        let (item, next) = after.split_once(' ').unwrap_or((after, ""));
        let f: Vec<&str> = item.split(';').collect();
        assert_eq!(f.len(), 3, "{item}");
        let days: i64 = f[0].strip_suffix('d').expect("days in d").parse().unwrap();
        out.push((label, days, f[1].to_string(), f[2].to_string()));
        rest = next;
    }
    assert!(rest.is_empty(), "unparsed perfdata: {rest}");
    out
}

#[test]
fn critical_outranks_unknown_and_the_worst_is_named_first_with_perfdata() {
    let d = tempfile::tempdir().unwrap();
    let long = openssl_cert(d.path(), "long", 3650);
    openssl_cert(d.path(), "short", 20);
    fs::write(d.path().join("broken.pem"), b"not a certificate\n").unwrap();
    // Judged 400.5 days after the certificates were made: "short" ended 380.5 days before,
    // day -381 (days left round down), "expired 381 days ago".
    let at = rfc3339(not_before(&long) + Duration::days(400) + Duration::hours(12));
    let (code, out, _) = run(&["check", "--at", &at, s(d.path())]);
    assert_eq!(
        code, 2,
        "an expired certificate beside an unreadable file is CRITICAL: {out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("CRITICAL: CN=short expired 381 days ago (short.pem); 2 certificates: 1 critical, 0 warning, 1 ok, 1 unknown"),
        "{out}"
    );
    // Worst first: CRITICAL, then UNKNOWN, then OK.
    assert!(
        lines[1].starts_with("CRITICAL CN=short: notAfter="),
        "{out}"
    );
    assert!(
        lines[2].starts_with("UNKNOWN  ") && lines[2].contains("broken.pem"),
        "{out}"
    );
    assert!(lines[3].starts_with("OK       CN=long: notAfter="), "{out}");
    // One perfdata item per certificate, labelled by the path under the folder, days left
    // (negative once expired) and the thresholds as "alert below" ranges.
    let perf = perfdata(lines[0]);
    assert_eq!(
        perf,
        vec![
            (
                "short.pem".to_string(),
                -381,
                "90:".to_string(),
                "30:".to_string()
            ),
            (
                "long.pem".to_string(),
                3249,
                "90:".to_string(),
                "30:".to_string()
            ),
        ]
    );
    // The same command line gives the same labels (a moment later, other days would too).
    let (_, again, _) = run(&["check", "--at", &at, s(d.path())]);
    assert_eq!(perfdata(again.lines().next().unwrap()), perf);
    // Thresholds follow the flags.
    let (_, out, _) = run(&[
        "check",
        "--at",
        &at,
        "--warn-days",
        "60",
        "--critical-days",
        "10",
        s(&long),
    ]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with(&format!("'{}'=3249d;60:;10:", long.display())),
        "{out}"
    );
}

#[test]
fn usage_errors_are_unknown_for_check_only() {
    for args in [
        &["check", "--no-such-flag", "x.pem"][..],
        &["check"][..],
        &["-v", "check", "--warn-days", "many", "x.pem"][..],
        &["check", "--format", "xml", "x.pem"][..],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(out.starts_with("UNKNOWN: usage error: "), "{args:?}: {out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            err.contains("error:"),
            "clap's message stays on stderr: {err}"
        );
    }
    // --help is not an error.
    let (code, out, _) = run(&["check", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--warn-days"), "{out}");
    // Other commands keep clap's 2.
    for args in [
        &["analyze", "--no-such-flag", "x"][..],
        &["inventory"][..],
        &["analyze", "--format", "xml", "x"][..],
    ] {
        let (code, out, _) = run(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{out}");
    }
    // A bad --at is a usage error too.
    let (code, out, _) = run(&["check", "--at", "soon", "x.pem"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("UNKNOWN: usage error: --at: "), "{out}");
}

#[test]
fn among_many_certificates_the_critical_ones_come_first() {
    let d = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let ok_cert = openssl_cert(src.path(), "ok", 3650);
    // Half a day on, so whole days do not depend on how fast the test runs.
    let at = rfc3339(not_before(&ok_cert) + Duration::hours(12));
    let ok = fs::read(&ok_cert).unwrap();
    let warn = fs::read(openssl_cert(src.path(), "warn", 60)).unwrap();
    let crit = fs::read(openssl_cert(src.path(), "crit", 20)).unwrap();
    // 1,000 files; the critical ones sit in the middle of the sorted names, as they would in
    // a big tree.
    for i in 0..1000 {
        let body = match i {
            333 | 666 => &crit,
            500 => &warn,
            _ => &ok,
        };
        fs::write(d.path().join(format!("c{i:04}.pem")), body).unwrap();
    }
    let (code, out, _) = run(&["check", "--at", &at, s(d.path())]);
    assert_eq!(code, 2, "{}", &out[..out.len().min(2000)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1001);
    assert!(lines[0].starts_with("CRITICAL: CN=crit valid for 19 more days (c0333.pem); 1000 certificates: 2 critical, 1 warning, 997 ok"), "{}", lines[0]);
    assert!(lines[1].starts_with("CRITICAL CN=crit") && lines[1].ends_with("c0333.pem)"));
    assert!(lines[2].starts_with("CRITICAL CN=crit") && lines[2].ends_with("c0666.pem)"));
    assert!(lines[3].starts_with("WARNING  CN=warn"), "{}", lines[3]);
    assert!(lines[4..].iter().all(|l| l.starts_with("OK       CN=ok")));
    assert_eq!(perfdata(lines[0]).len(), 1000);
}

#[test]
fn pkcs12_bundles_are_read_without_a_password_and_named_when_they_need_one() {
    let d = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let cert = openssl_cert(src.path(), "bundled", 20);
    let at = rfc3339(not_before(&cert) + Duration::hours(12));
    let key = src.path().join("bundled.key");
    let p12 = |name: &str, extra: &[&str]| {
        let out = d.path().join(name);
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            s(&cert),
            "-inkey",
            s(&key),
            "-out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        openssl(&args);
        out
    };
    let empty = p12("empty.p12", &["-passout", "pass:"]);
    let clear = p12(
        "clear.pfx",
        &[
            "-passout", "pass:", "-certpbe", "NONE", "-keypbe", "NONE", "-nomac",
        ],
    );
    let locked = p12("locked.p12", &["-passout", "pass:s3cret"]);
    // Keys and requests beside them are passed over, and listed once with -v.
    fs::copy(&key, d.path().join("bundled.key")).unwrap();
    openssl(&[
        "req",
        "-new",
        "-key",
        s(&key),
        "-subj",
        "/CN=req",
        "-out",
        s(&d.path().join("bundled.csr")),
    ]);
    fs::copy(&key, d.path().join("key-only.pem")).unwrap();

    let (code, out, err) = run(&["-v", "check", "--at", &at, s(d.path())]);
    assert_eq!(code, 2, "{out}");
    for f in [&empty, &clear] {
        assert!(
            out.contains("CRITICAL CN=bundled: notAfter=")
                && out.contains(&format!("({})", f.display())),
            "{}: {out}",
            f.display()
        );
    }
    assert!(
        out.contains(&format!(
            "UNKNOWN  {}: a PKCS#12 bundle protected by a password",
            locked.display()
        )),
        "{out}"
    );
    for skipped in ["bundled.key", "bundled.csr", "key-only.pem"] {
        let n = err
            .lines()
            .filter(|l| l.contains("skipped") && l.contains(skipped))
            .count();
        assert_eq!(n, 1, "{skipped} listed once with -v: {err}");
    }
    let (_, quiet_out, quiet_err) = run(&["check", s(d.path())]);
    assert!(!quiet_err.contains("skipped"), "{quiet_err}");
    assert!(!quiet_out.contains("bundled.key"), "{quiet_out}");
    assert!(!out.contains("PRIVATE"), "no key is ever printed");
    // Named on the command line, a bundle is read, not taken for a private key.
    let (code, out, _) = run(&["check", "--at", &at, "--format", "json", s(&empty)]);
    assert_eq!(code, 2, "{out}");
    let v = json(&out);
    assert_eq!(v["certificates"][0]["subject"], "CN=bundled");
    assert_eq!(v["certificates"][0]["days_left"], 19);
    let (code, out, _) = run(&["check", s(&locked)]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("protected by a password"), "{out}");
    assert!(!out.contains("private key"), "{out}");
}

fn pki_init(root: &Path, extra: &[&str]) {
    let mut args = vec!["pki", "init", "--root", s(root)];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{out}{err}");
}

/// `openssl verify -attime` on one certificate: its error code (0 when OK).
fn openssl_verify(ca: &Path, cert: &Path, at: OffsetDateTime) -> i32 {
    assert!(have_openssl());
    let out = Command::new("openssl")
        .args([
            "verify",
            "-attime",
            &at.unix_timestamp().to_string(),
            "-CAfile",
            s(ca),
            s(cert),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        return 0;
    }
    // "error 20 at 0 depth lookup: unable to get local issuer certificate"
    let i = text.find("error ").unwrap_or_else(|| panic!("{text}"));
    text[i + 6..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{text}"))
}

#[test]
fn check_ca_judges_each_chain_like_openssl_verify_attime() {
    let d = tempfile::tempdir().unwrap();
    let nb = "2025-01-01T00:00:00Z";
    let a = d.path().join("a");
    let b = d.path().join("b");
    pki_init(
        &a,
        &[
            "--fmc-uuid",
            FMC,
            "--devices",
            "1",
            "--not-before",
            nb,
            "--days",
            "3650",
        ],
    );
    pki_init(
        &b,
        &["--devices", "1", "--not-before", nb, "--days", "3650"],
    );
    let files = d.path().join("files");
    fs::create_dir(&files).unwrap();
    let dev = |root: &Path| {
        let peers = root.join("ftd1/var/sf/peers");
        let fmc = fs::read_dir(&peers)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        fmc.join("sftunnel-cert.pem")
    };
    fs::copy(dev(&a), files.join("a-device.pem")).unwrap();
    fs::copy(dev(&b), files.join("b-device.pem")).unwrap();
    fs::copy(
        a.join("fmc/etc/sf/keys/sftunnel-cert.pem"),
        files.join("a-fmc.pem"),
    )
    .unwrap();
    // The same FMC's CA regenerated: same DN, another key.
    pki_init(
        &a,
        &[
            "--fmc-uuid",
            FMC,
            "--devices",
            "1",
            "--not-before",
            nb,
            "--days",
            "3650",
            "--force",
        ],
    );
    fs::copy(dev(&a), files.join("a-device-new.pem")).unwrap();
    let ca = a.join("fmc/etc/sf/ca_root/cacert.pem");
    let at0 = OffsetDateTime::parse("2026-06-01T00:00:00Z", &Rfc3339).unwrap();
    let mut codes_seen = std::collections::BTreeSet::new();
    for at in [at0, at0 + Duration::days(3650)] {
        let (code, out, _) = run(&[
            "check",
            "--format",
            "json",
            "--at",
            &rfc3339(at),
            "--ca",
            s(&ca),
            s(&files),
        ]);
        let v = json(&out);
        let certs = v["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 4, "{out}");
        for c in certs {
            let file = PathBuf::from(c["file"].as_str().unwrap());
            let ours = c["chain_verdict"]["code"].as_i64().unwrap() as i32;
            let theirs = openssl_verify(&ca, &file, at);
            assert_eq!(ours, theirs, "{} at {at}: {c}", file.display());
            codes_seen.insert(ours);
            if ours != 0 {
                assert_eq!(c["status"], "CRITICAL", "{c}");
            }
        }
        assert_eq!(code, 2, "a device of another CA is CRITICAL: {out}");
    }
    // Another CA's device (20), the regenerated CA's old devices (7), the current ones (0),
    // and ten years on, expiry (10).
    for code in [0, 7, 10, 20] {
        assert!(codes_seen.contains(&code), "{codes_seen:?}");
    }
    // The text says it with OpenSSL's words.
    let (_, out, _) = run(&[
        "check",
        "--at",
        &rfc3339(at0),
        "--ca",
        s(&ca),
        s(&files.join("b-device.pem")),
    ]);
    assert!(
        out.contains("chain: err 20:unable to get local issuer certificate (depth 0)"),
        "{out}"
    );
    assert!(out.starts_with("CRITICAL: "), "{out}");
}

/// The device folders of a root (`ftd1`, ...) and their peer folder for the FMC.
fn device_dir(root: &Path, name: &str) -> PathBuf {
    let peers = root.join(name).join("var/sf/peers");
    fs::read_dir(&peers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn a_renewed_root_reports_ca_mismatch_for_each_device_not_copied_and_inventory_feeds_pki_copy() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    pki_init(&root, &["--devices", "3"]);
    // `pki renew` with no server running: nothing can be pushed, every device is in
    // FAILED_PUSH.
    let (code, out, err) = run(&["pki", "renew", "--root", s(&root), "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    // Copy to ftd1 only.
    let csv = d.path().join("ftd1.csv");
    fs::write(&csv, "fmc,127.0.0.1,,\nftd1,127.1.0.1,,\n").unwrap();
    ok(&["pki", "copy", "--root", s(&root), "--devices", s(&csv)]);

    let (code, out, _) = run(&["check", "--format", "json", s(&root)]);
    assert_eq!(code, 2, "{out}");
    let v = json(&out);
    let problems = v["problems"].as_array().unwrap();
    let mut kinds: Vec<(String, String)> = problems
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().into(),
                p["peer"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("ca_mismatch".to_string(), "ftd2".to_string()),
            ("ca_mismatch".into(), "ftd3".into())
        ]
    );
    let p = &problems[0];
    assert_eq!(p["status"], "CRITICAL");
    assert_ne!(p["trusted_ca"]["sha256"], p["current_ca"]["sha256"]);
    assert_eq!(p["fmc"], "fmc");
    // Every certificate is still in date: the problems alone make it CRITICAL.
    assert_eq!(v["status"], "CRITICAL");
    assert!(
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "OK")
    );
    let (_, text, _) = run(&["check", s(&root)]);
    assert!(
        text.starts_with("CRITICAL: ca_mismatch: device ftd2 trusts another InternalCA than FMC fmc's current one; 14 certificates: 0 critical, 0 warning, 14 ok, 0 unknown, 2 peer problems"),
        "{text}"
    );

    // inventory: copy for the two, nothing for the others; the CSV lists them after the FMC.
    let (code, out, _) = run(&["inventory", "--format", "json", s(&root)]);
    assert_eq!(code, 1, "{out}");
    let v = json(&out);
    let actions: Vec<(String, String, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["role"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("fmc".to_string(), "fmc".to_string(), "none".to_string()),
            ("ftd1".into(), "device".into(), "none".into()),
            ("ftd2".into(), "device".into(), "copy".into()),
            ("ftd3".into(), "device".into(), "copy".into()),
        ]
    );
    let (code, csv_text, _) = run(&["inventory", "--format", "csv", s(&root)]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = csv_text.lines().collect();
    assert_eq!(lines[0], "#device_name,ipaddr,login,password");
    assert_eq!(lines[1], "fmc,127.0.0.1,,");
    assert_eq!(&lines[2..4], ["ftd2,127.1.0.2,,", "ftd3,127.1.0.3,,"]);
    assert!(lines[4].starts_with("#ftd1,127.1.0.1,,"), "{csv_text}");
    let plan = d.path().join("devices.csv");
    fs::write(&plan, &csv_text).unwrap();
    let copied = ok(&["pki", "copy", "--root", s(&root), "--devices", s(&plan)]);
    assert!(
        copied.contains("Successfully copied certificates to ftd2"),
        "{copied}"
    );
    assert!(
        copied.contains("Successfully copied certificates to ftd3"),
        "{copied}"
    );
    assert!(!copied.contains("to ftd1"), "{copied}");
    let (code, out, _) = run(&["check", "--format", "json", s(&root)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json(&out)["problems"].as_array().unwrap().len(), 0);
    assert_eq!(run(&["inventory", s(&root)]).0, 0);
    // An input that cannot be read is 2, whatever the rest says.
    let missing = d.path().join("missing.pcap");
    let (code, out, _) = run(&["inventory", s(&root), s(&missing)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("UNREADABLE {}", missing.display())),
        "{out}"
    );
    // Fifty days before the InternalCA's end, the plan is a renewal that pushes to everyone.
    let (code, out, _) = run(&["inventory", "--at", "+3600d", "--format", "json", s(&root)]);
    assert_eq!(code, 1, "{out}");
    let v = json(&out);
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["renew", "push", "push", "push"], "{out}");
    assert_eq!(v["entries"][0]["health_alert"], true);
    assert_eq!(v["entries"][0]["critical"], false);

    // Crossed files: ftd1 given ftd2's key, ftd3 given another root's certificate.
    let other = d.path().join("other");
    pki_init(&other, &["--devices", "1"]);
    fs::copy(
        device_dir(&root, "ftd2").join("sftunnel-key.pem"),
        device_dir(&root, "ftd1").join("sftunnel-key.pem"),
    )
    .unwrap();
    fs::copy(
        device_dir(&other, "ftd1").join("sftunnel-cert.pem"),
        device_dir(&root, "ftd3").join("sftunnel-cert.pem"),
    )
    .unwrap();
    let (code, out, _) = run(&["check", "--format", "json", s(&root)]);
    assert_eq!(code, 2, "{out}");
    let v = json(&out);
    let mut kinds: Vec<(String, String)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().into(),
                p["peer"].as_str().unwrap().into(),
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("chain".to_string(), "ftd3".to_string()),
            ("key_mismatch".into(), "ftd1".into()),
            ("key_mismatch".into(), "ftd3".into()),
        ]
    );
    let chain = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "chain")
        .unwrap();
    assert_eq!(chain["verdict"]["code"], 20, "{chain}");
    assert!(!out.contains("PRIVATE KEY"), "no key is printed");
}

#[test]
fn the_appliances_own_messages_word_for_word() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    // The InternalCA ends 2034-10-05T12:16:56Z.
    pki_init(
        &root,
        &[
            "--devices",
            "1",
            "--not-before",
            "2024-10-07T12:16:56Z",
            "--days",
            "3650",
        ],
    );
    let cases = [
        (
            "2034-10-08T00:00:00Z",
            2,
            "\nThe certificate has expired 2 days ago.\nIn case the sftunnel communication with the FTD is not yet lost, you need to take action immediately in renewing the certificate.\n\n",
            "Firewall Management Center's internal root certificate has expired. As a result, Firewall Threat Defense cannot be managed and may experience degradation. Review the Field Notice FN #74214 and regenerate the certificate.\n",
        ),
        (
            "2034-09-20T00:00:00Z",
            2,
            "\nThe certificate will expire within the next 30 days!\nIt is ONLY valid for 15 more days.\nIt is recommended to take action in renewing the certificate as quickly as possible.\n\n",
            "Firewall Management Center's internal root certificate is expiring in 15 days. If it expires, Firewall Threat Defense cannot be managed and might experience degradation. Review the Field Notice FN #74214 and regenerate the certificate.\n",
        ),
        (
            "2034-08-01T00:00:00Z",
            1,
            "\nThe certificate is valid for more than 30 days.\nIt is valid for 65 more days.\nThere is no immediate need to perform action but this depends on how far the expiry date is in the future.\n\n",
            "Firewall Management Center's internal root certificate is expiring in 65 days. If it expires, Firewall Threat Defense cannot be managed and might experience degradation. Review the Field Notice FN #74214 and regenerate the certificate.\n",
        ),
        (
            "2030-01-01T00:00:00Z",
            0,
            "\nThe certificate is valid for more than 30 days.\nIt is valid for 1738 more days.\nThere is no immediate need to perform action but this depends on how far the expiry date is in the future.\n\n",
            "",
        ),
    ];
    for (at, code, oneliner, health) in cases {
        let (c, out, _) = run(&["check", "--at", at, "--format", "oneliner", s(&root)]);
        assert_eq!((c, out.as_str()), (code, oneliner), "oneliner at {at}");
        let (c, out, _) = run(&["check", "--at", at, "--format", "health", s(&root)]);
        assert_eq!((c, out.as_str()), (code, health), "health at {at}");
    }
    // A device's copy of the same CA gives the same one message, not two.
    let (_, out, _) = run(&[
        "check",
        "--at",
        "2034-10-08T00:00:00Z",
        "--format",
        "oneliner",
        s(&root),
    ]);
    assert_eq!(out.matches("has expired").count(), 1, "{out}");
}

#[test]
fn inventory_of_a_lab_capture_lists_the_fmc_and_three_devices_with_the_rebooted_ones_failures() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pcap = d.path().join("lab.pcap");
    let (code, out, err) = run(&[
        "lab",
        "--root",
        s(&root),
        "--pcap",
        s(&pcap),
        "--no-analysis",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The story's clock ends on 2034-10-04; the renewed InternalCA runs ten more years.
    let at = "2034-10-04T13:00:00Z";
    let (code, out, _) = run(&["inventory", "--at", at, "--format", "json", s(&pcap)]);
    assert_eq!(code, 0, "everyone is connected again at the end: {out}");
    let v = json(&out);
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{out}");
    let by_uuid = |u: &str| {
        entries
            .iter()
            .find(|e| e["uuid"] == u)
            .unwrap_or_else(|| panic!("{u} missing: {out}"))
    };
    let fmc = by_uuid(FMC);
    assert_eq!(fmc["role"], "fmc");
    assert_eq!(entries[0]["uuid"], FMC, "the FMC first");
    let devices = [
        ("c8d5d5c6-87c9-11ef-a993-b9831565bc4e", "127.1.0.1"),
        ("d1e2f3a4-87c9-11ef-a993-b9831565bc4e", "127.1.0.2"),
        ("e4f5a6b7-87c9-11ef-a993-b9831565bc4e", "127.1.0.3"),
    ];
    for (uuid, ip) in devices {
        let e = by_uuid(uuid);
        assert_eq!(e["role"], "device", "{e}");
        assert_eq!(e["ip"], ip, "the address from the flows: {e}");
        assert_eq!(e["action"], "none", "{e}");
        assert!(e["handshakes"]["ok"].as_u64().unwrap() >= 1, "{e}");
        assert_eq!(e["ca_not_after"], fmc["ca_not_after"], "{e}");
    }
    // ftd3 rebooted after the CA expired: its handshakes failed (err 10) until `pki copy`.
    // Its last failure is one of two, by how its retries (wall-clock backoff) fell on a
    // loaded machine: before the renewal it refuses the expired chain (certificate_expired);
    // between the renewal and the copy its old InternalCA cannot check the new FMC
    // certificate's signature (OpenSSL's decrypt_error). Judged at `at` by the old, expired
    // InternalCA, both are err 10.
    let ftd3 = by_uuid(devices[2].0);
    assert!(
        ftd3["handshakes"]["failed"].as_u64().unwrap() >= 1,
        "{ftd3}"
    );
    let last = ftd3["handshakes"]["last_error"].as_str().unwrap();
    assert!(
        (last.contains("certificate_expired") || last.contains("decrypt_error"))
            && last.contains("err 10"),
        "{last}"
    );
    for (uuid, _) in &devices[..2] {
        assert_eq!(by_uuid(uuid)["handshakes"]["failed"], 0, "{out}");
    }
    // With the root beside it, the names come from the root.
    let (_, text, _) = run(&["inventory", "--at", at, s(&root), s(&pcap)]);
    let rows: Vec<&str> = text.lines().skip(2).take(4).collect();
    for (row, name) in rows.iter().zip(["fmc", "ftd1", "ftd2", "ftd3"]) {
        assert!(row.starts_with(&format!("{name} ")), "{text}");
    }
    assert!(text.contains("ftd3: last failed handshake: "), "{text}");
}

/// The three files a device offers: the CA it trusts and a certificate of its own.
fn side(ca: PathBuf, dir: &Path) -> crate::tunnel::Side {
    crate::tunnel::Side {
        ca,
        cert: dir.join("sftunnel-cert.pem"),
        key: dir.join("sftunnel-key.pem"),
    }
}

/// One TLS 1.2 session between `sfdiag serve` as the FMC of `certs/valid` and `sfdiag connect
/// --once` as `device`, recorded by the FMC's own `--pcap` (the real TLS bytes it sent and got).
fn record_refusal(pcap: &Path, device: &crate::tunnel::Side) -> String {
    let fmc = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/valid/fmc/etc/sf");
    let fmc_side = crate::tunnel::Side {
        ca: fmc.join("ca_root/cacert.pem"),
        cert: fmc.join("keys/sftunnel-cert.pem"),
        key: fmc.join("keys/sftunnel-key.pem"),
    };
    let mut args = fmc_side.args();
    args.extend(["--tls-version", "1.2", "--pcap", s(pcap)].map(String::from));
    let (srv, addr) = crate::tunnel::serve(&args);
    let (st, log) = crate::tunnel::connect_once(&addr, device, &["--tls-version", "1.2"]);
    assert!(!st.success(), "the FMC must refuse it: {log}");
    drop(srv);
    log
}

/// `inventory --format json` of `pcap` with these `--ca`: the exit code and the entries.
fn inventory_json(pcap: &Path, cas: &[&Path]) -> (i32, Vec<Value>) {
    let mut args = vec!["inventory", "--format", "json"];
    for c in cas {
        args.extend(["--ca", s(c)]);
    }
    args.push(s(pcap));
    let (code, out, err) = run(&args);
    let v = json(&out);
    assert_eq!(v["exit_code"], code, "{out}{err}");
    (code, v["entries"].as_array().unwrap().clone())
}

#[test]
fn inventory_plans_a_copy_for_a_device_its_fmc_refuses_for_a_certificate_of_another_fmcs_ca() {
    // ftd1 of certs/expired-ca (FMC 6a0e4d52...) dials the FMC of certs/valid (cdb123c8...),
    // trusting that FMC: the FMC sends unknown_ca after the device's Certificate.
    let d = tempfile::tempdir().unwrap();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let valid_ca = certs.join("valid/fmc/etc/sf/ca_root/cacert.pem");
    let other_ca = certs.join("expired-ca/fmc/etc/sf/ca_root/cacert.pem");
    let other = "6a0e4d52-0c1f-4b8e-a1d3-5e6f7a8b9c0d";
    let dev = "9b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b";
    let pcap = d.path().join("wrong-fmc.pcap");
    let device = side(
        valid_ca.clone(),
        &certs.join(format!("expired-ca/ftd1/var/sf/peers/{other}")),
    );
    record_refusal(&pcap, &device);
    // Whatever `--ca` says of its chain (nothing, err 20, or fine with both PKIs' CAs), the
    // FMC it talked to refused it, and its certificate is not of that FMC's InternalCA.
    for cas in [vec![], vec![&*valid_ca], vec![&*valid_ca, &*other_ca]] {
        let (code, entries) = inventory_json(&pcap, &cas);
        assert_eq!(code, 1, "--ca {cas:?}: {entries:?}");
        let e = entries.iter().find(|e| e["uuid"] == dev).unwrap();
        assert_eq!(e["action"], "copy", "--ca {cas:?}: {e}");
        assert_eq!(e["problems"], serde_json::json!(["ca_mismatch"]), "{e}");
        assert_eq!(
            e["manager"], FMC,
            "the FMC it talked to, not its issuer: {e}"
        );
        assert_eq!(
            e["reason"],
            format!(
                "its certificate was issued by the InternalCA of {other}, not of the FMC {FMC} it talked to"
            )
        );
        let h = &e["handshakes"];
        assert_eq!((&h["ok"], &h["failed"]), (&0.into(), &1.into()), "{e}");
        assert_eq!(
            h["last_alert"],
            serde_json::json!({"code": 48, "description": "unknown_ca", "sender": "fmc", "side": "server"}),
        );
        let last = h["last_error"].as_str().unwrap();
        assert!(
            last.starts_with("server sent fatal unknown_ca after client Certificate"),
            "{last}"
        );
        let fmc = entries.iter().find(|e| e["uuid"] == FMC).unwrap();
        assert_eq!(fmc["action"], "none", "{fmc}");
    }
    let (_, text, _) = run(&["inventory", s(&pcap)]);
    assert!(
        text.contains(&format!("1. copy the FMC's files to {dev} ")),
        "{text}"
    );
}

#[test]
fn inventory_plans_a_copy_for_a_device_whose_certificate_its_fmc_refuses_by_alert_alone() {
    // The device of an openssl-made PKI whose InternalCA has the same CN (cdb123c8...) as the
    // FMC's, but another key: the wire of a renewed InternalCA whose files were not copied.
    // Its issuer names the FMC it talks to; only the FMC's alert says it was refused.
    let d = tempfile::tempdir().unwrap();
    let pki = crate::tunnel::openssl_pki(&d.path().join("pki"), None);
    let valid_ca =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/valid/fmc/etc/sf/ca_root/cacert.pem");
    let dev = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";
    let pcap = d.path().join("renewed.pcap");
    let device = crate::tunnel::Side {
        ca: valid_ca.clone(),
        ..pki.ftd.clone()
    };
    record_refusal(&pcap, &device);
    for cas in [vec![], vec![&*valid_ca], vec![&*valid_ca, &*pki.fmc.ca]] {
        let (code, entries) = inventory_json(&pcap, &cas);
        assert_eq!(code, 1, "--ca {cas:?}: {entries:?}");
        let e = entries.iter().find(|e| e["uuid"] == dev).unwrap();
        assert_eq!(e["action"], "copy", "--ca {cas:?}: {e}");
        assert_eq!(
            e["problems"],
            serde_json::json!([]),
            "same CN: no wire mismatch: {e}"
        );
        let alert = &e["handshakes"]["last_alert"];
        assert_eq!(alert["sender"], "fmc", "{e}");
        assert_eq!(alert["side"], "server", "{e}");
        let desc = alert["description"].as_str().unwrap();
        assert!(matches!(desc, "unknown_ca" | "decrypt_error"), "{e}");
        let reason = e["reason"].as_str().unwrap();
        if cas.is_empty() {
            assert_eq!(
                reason,
                format!(
                    "its last handshake failed: the FMC refused its certificate (fatal {desc})"
                )
            );
        }
    }
}

#[test]
fn inventory_plans_a_copy_for_a_device_that_refuses_a_regenerated_fmc_certificate() {
    // openssl's device refuses the FMC's chain with decrypt_error (err 7 by --ca): without
    // --ca only its alert says so; it sent no certificate, so it is known by its address.
    let pcap = crate::common::project_captures().join("sftunnel-ca-regenerated.pcap");
    let ca = crate::common::project_captures().join("regenerated.ca.pem");
    for (cas, reason) in [
        (
            vec![],
            "its last handshake failed: it refused the FMC's certificate (fatal decrypt_error)",
        ),
        (
            vec![&*ca],
            "its last handshake failed: err 7:certificate signature failure",
        ),
    ] {
        let (code, entries) = inventory_json(&pcap, &cas);
        assert_eq!(code, 1, "{entries:?}");
        let e = entries.iter().find(|e| e["role"] == "device").unwrap();
        assert_eq!(e["uuid"], Value::Null, "{e}");
        assert_eq!(e["action"], "copy", "{e}");
        assert_eq!(e["reason"], reason, "{e}");
        assert_eq!(
            e["handshakes"]["last_alert"],
            serde_json::json!({"code": 51, "description": "decrypt_error", "sender": "ftd", "side": "client"})
        );
    }
}

#[test]
fn inventory_leaves_a_refusal_of_an_expired_certificate_to_renewal() {
    // The FMC refuses the device's expired certificate (45): its FMC renews (the device's
    // certificate ends), the device is not connected, so it needs a copy after the renewal;
    // the alert does not make a copy on its own where dates explain it.
    let pcap = crate::common::project_captures().join("sftunnel-ftd-expired.pcap");
    let (code, entries) = inventory_json(&pcap, &[]);
    assert_eq!(code, 1, "{entries:?}");
    let fmc = entries.iter().find(|e| e["role"] == "fmc").unwrap();
    assert_eq!(fmc["action"], "renew", "{fmc}");
    let e = entries.iter().find(|e| e["role"] == "device").unwrap();
    assert_eq!(e["action"], "copy", "{e}");
    assert_eq!(
        e["reason"],
        "its FMC renews; not connected, so the push will fail (FAILED_PUSH): copy its files"
    );
    assert_eq!(
        e["handshakes"]["last_alert"]["description"],
        "certificate_expired"
    );
    assert_eq!(e["handshakes"]["last_alert"]["sender"], "fmc");
}
