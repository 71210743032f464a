//! `sfdiag check`: exit codes 0/1/2/3 on certificates made by openssl and by us, roles in a
//! PKI root, text and JSON.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::common::{have_openssl, sfdiag};

const FMC: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
const FTD: &str = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn check(args: &[&str]) -> (i32, String, String) {
    let out: Output = sfdiag().arg("check").args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A self-signed certificate from `openssl req -x509`, valid from now for `days`.
fn openssl_cert(dir: &Path, name: &str, days: u32) -> PathBuf {
    assert!(
        have_openssl(),
        "the openssl command is needed (.ci/run installs it)"
    );
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256"])
        .args(["-subj", &format!("/CN={name}"), "-days", &days.to_string()])
        .args(["-keyout", s(&key), "-out", s(&cert)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert
}

fn pki_init(root: &Path, extra: &[&str]) {
    let out = sfdiag()
        .args(["pki", "init", "--root", s(root)])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// notBefore of a certificate, as openssl reads it.
fn not_before(cert: &Path) -> OffsetDateTime {
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-startdate",
            "-dateopt",
            "iso_8601",
            "-in",
            s(cert),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // notBefore=2026-11-26 15:30:54Z
    let v = text
        .trim()
        .trim_start_matches("notBefore=")
        .replacen(' ', "T", 1);
    OffsetDateTime::parse(&v, &Rfc3339).unwrap()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

#[test]
fn exit_codes_for_openssl_made_certificates() {
    let d = tempfile::tempdir().unwrap();
    let ten_years = openssl_cert(d.path(), "ten-years", 3650);
    let sixty = openssl_cert(d.path(), "sixty-days", 60);
    let twenty = openssl_cert(d.path(), "twenty-days", 20);
    let garbage = d.path().join("garbage.pem");
    fs::write(&garbage, b"this is not a certificate\n").unwrap();
    // Judge half a day after each certificate was made, so the day counts are exact.
    let at = |cert: &Path, offset: Duration| rfc3339(not_before(cert) + offset);
    let half = Duration::hours(12);

    let (code, out, _) = check(&["--at", &at(&ten_years, half), s(&ten_years)]);
    assert_eq!(code, 0, "{out}");
    // The status line names the worst (here the only) certificate, then counts.
    assert!(
        out.starts_with(&format!(
            "OK: CN=ten-years valid for 3649 more days ({}); 1 certificate: 0 critical, 0 warning, 1 ok",
            ten_years.display()
        )),
        "{out}"
    );
    assert!(out.contains("CN=ten-years: notAfter="), "{out}");
    assert!(out.contains("valid for 3649 more days"), "{out}");

    let (code, out, _) = check(&["--at", &at(&sixty, half), s(&sixty)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("WARNING  CN=sixty-days: notAfter="), "{out}");
    assert!(out.contains("valid for 59 more days"), "{out}");

    let (code, out, _) = check(&["--at", &at(&twenty, half), s(&twenty)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("CRITICAL CN=twenty-days"), "{out}");
    assert!(out.contains("valid for 19 more days"), "{out}");

    // Expired: the ten-year certificate judged eleven years on. 365.5 days past notAfter is
    // day -366 (days left round down, as 12 hours left is day 0), "expired 366 days ago".
    let (code, out, _) = check(&[
        "--at",
        &at(&ten_years, Duration::days(4015) + half),
        s(&ten_years),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("expired 366 days ago"), "{out}");
    assert!(out.contains("=-366d;"), "{out}");

    // Not yet valid: judged before it was made.
    let (code, out, _) = check(&["--at", &at(&ten_years, -half), s(&ten_years)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not yet valid, starts in 0 days"), "{out}");

    let (code, out, _) = check(&[s(&garbage)]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.starts_with(&format!("UNKNOWN: {}: ", garbage.display())),
        "{out}"
    );
    assert!(out.contains("; 0 certificates: "), "{out}");
    assert!(
        out.contains(&format!("UNKNOWN  {}: ", garbage.display())),
        "{out}"
    );

    // Thresholds are flags.
    let (code, _, _) = check(&[
        "--at",
        &at(&sixty, half),
        "--warn-days",
        "30",
        "--critical-days",
        "10",
        s(&sixty),
    ]);
    assert_eq!(code, 0);
    // Thresholds the wrong way round leave no WARNING window: a usage error, not a silent OK,
    // and UNKNOWN (3) with a status line, as a monitoring system expects of a plugin.
    let (code, out, err) = check(&["--warn-days", "10", "--critical-days", "30", s(&sixty)]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("UNKNOWN: usage error: --warn-days 10 is less than --critical-days 30"),
        "{out}"
    );
    assert!(
        err.contains("--warn-days 10 is less than --critical-days 30"),
        "{err}"
    );
    // Relative --at works against the clock (any 60-day cert is expired in 61 days).
    let (code, out, _) = check(&["--at", "+61d", s(&sixty)]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn exit_codes_for_our_own_certificates_at_a_fixed_time() {
    let d = tempfile::tempdir().unwrap();
    let at = "2026-11-26T00:00:00Z";
    for (days, code) in [("3650", 0), ("60", 1), ("20", 2)] {
        let root = d.path().join(days);
        pki_init(
            &root,
            &["--not-before", at, "--days", days, "--devices", "1"],
        );
        let ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
        let (c, out, _) = check(&["--at", at, s(&ca)]);
        assert_eq!(c, code, "{days} days: {out}");
        assert!(out.contains("InternalCA: notAfter="), "{days} days: {out}");
        assert!(
            out.contains(&format!("valid for {days} more days")),
            "{out}"
        );
    }
}

#[test]
fn one_bad_file_is_unknown_and_the_others_are_still_checked() {
    let d = tempfile::tempdir().unwrap();
    let good = openssl_cert(d.path(), "good", 3650);
    let empty = d.path().join("empty.pem");
    fs::write(&empty, b"").unwrap();
    let key = d.path().join("good.key");
    let missing = d.path().join("missing.pem");
    let (code, out, _) = check(&[s(&empty), s(&good), s(&key), s(&missing)]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("OK       CN=good: notAfter="), "{out}");
    assert!(
        out.contains(&format!("UNKNOWN  {}", empty.display())),
        "{out}"
    );
    assert!(out.contains("private key"), "{out}");
    assert!(!out.contains("BEGIN"), "a key must never be printed: {out}");
    assert!(
        out.contains(&format!("UNKNOWN  {}: ", missing.display())),
        "{out}"
    );
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("; 1 certificate: 0 critical, 0 warning, 1 ok, 3 unknown"),
        "{out}"
    );
    assert!(out.starts_with("UNKNOWN: "), "{out}");
}

#[test]
fn a_pki_root_is_recognised_and_each_cert_named_by_role() {
    let d = tempfile::tempdir().unwrap();
    // The field story: the InternalCA (2014, ten years) has expired, the peer certs (issued
    // in 2020) have not.
    pki_init(
        d.path(),
        &[
            "--fmc-uuid",
            FMC,
            "--device",
            &format!("ftd1={FTD}"),
            "--ha-secondary",
            "fmc2",
            "--not-before",
            "2014-06-01T00:00:00Z",
            "--days",
            "3650",
            "--peer-not-before",
            "2020-06-01T00:00:00Z",
            "--peer-days",
            "3650",
        ],
    );
    let (code, out, err) = check(&["--at", "2026-11-26T00:00:00Z", s(d.path())]);
    assert_eq!(code, 2, "{out}{err}");
    let root = d.path().display().to_string();
    let line = |status: &str, name: &str, rest: &str| {
        format!("{status:<8} {name}: notAfter={rest} ({root}/")
    };
    let ca_end = "May 29 00:00:00 2024 GMT, expired 911 days ago";
    let peer_end = "May 30 00:00:00 2030 GMT, valid for 1281 more days";
    for expected in [
        line("CRITICAL", "InternalCA", ca_end),
        line("CRITICAL", "InternalCA (ftd1's copy)", ca_end),
        line("CRITICAL", "InternalCA (pushed to ftd1)", ca_end),
        line("CRITICAL", "InternalCA (fmc2's copy)", ca_end),
        line("CRITICAL", "InternalCA (pushed to fmc2)", ca_end),
        line("OK", "FMC sftunnel cert", peer_end),
        line("OK", "device ftd1's cert", peer_end),
        line("OK", "device ftd1's cert (FMC's pushed copy)", peer_end),
        line("OK", "HA secondary fmc2's cert", peer_end),
        line(
            "OK",
            "HA secondary fmc2's cert (FMC's pushed copy)",
            peer_end,
        ),
        // FMC HA: the secondary's own InternalCA and the tunnels it signed.
        line("CRITICAL", "InternalCA of HA secondary fmc2", ca_end),
        line("OK", "FMC sftunnel cert of HA secondary fmc2", peer_end),
        line(
            "CRITICAL",
            "InternalCA of HA secondary fmc2 (pushed to ftd1)",
            ca_end,
        ),
        line("OK", "device ftd1's cert (fmc2's pushed copy)", peer_end),
        line(
            "CRITICAL",
            "InternalCA of HA secondary fmc2 (ftd1's copy)",
            ca_end,
        ),
        line("OK", "device ftd1's cert for HA secondary fmc2", peer_end),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in\n{out}");
    }
    assert!(
        out.starts_with(
            "CRITICAL: InternalCA expired 911 days ago (fmc/etc/sf/ca_root/cacert.pem); \
             16 certificates: 8 critical, 0 warning, 8 ok, 0 unknown"
        ),
        "{out}"
    );

    // JSON: the same facts.
    let (code, json, _) = check(&[
        "--at",
        "2026-11-26T00:00:00Z",
        "--format",
        "json",
        s(d.path()),
    ]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["status"], "CRITICAL");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["at"], "2026-11-26T00:00:00Z");
    let certs = v["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 16);
    let ca = certs
        .iter()
        .find(|c| c["role"] == "internal_ca")
        .expect("the InternalCA is named");
    assert_eq!(ca["name"], "InternalCA");
    assert_eq!(ca["not_after"], "2024-05-29T00:00:00Z");
    assert_eq!(ca["days_left"], -911);
    assert_eq!(ca["standing"], "expired");
    assert_eq!(ca["message"], "expired 911 days ago");
    assert_eq!(ca["status"], "CRITICAL");
    assert_eq!(ca["serial"], "0");
    assert_eq!(
        ca["subject"],
        format!("O=Cisco Systems\\, Inc,CN={FMC},OU=Intrusion Management System,title=InternalCA")
    );
    let dev = certs
        .iter()
        .find(|c| c["role"] == "device_cert" && c["peer"] == "ftd1")
        .unwrap();
    assert_eq!(dev["days_left"], 1281);
    assert_eq!(dev["status"], "OK");
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn backups_are_skipped_in_folders_but_named_when_given() {
    let d = tempfile::tempdir().unwrap();
    pki_init(d.path(), &["--devices", "1"]);
    pki_init(d.path(), &["--devices", "1", "--force"]);
    let (code, out, _) = check(&[s(d.path())]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("backup"), "{out}");
    assert!(
        out.lines().next().unwrap().contains("; 6 certificates: "),
        "{out}"
    );
    let backup = d.path().join("fmc/etc/sf/ca_root/cacert.pem.backup");
    let (code, out, _) = check(&[s(&backup)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("InternalCA [backup]: notAfter="), "{out}");
}

#[test]
fn an_empty_folder_is_unknown() {
    let d = tempfile::tempdir().unwrap();
    let (code, out, _) = check(&[s(d.path())]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("no certificate found under this folder"),
        "{out}"
    );
}

#[test]
fn the_openssl_reference_pki_with_an_expired_ca() {
    // certs/openssl-pki.sh makes a v1 InternalCA with `openssl ca` between two given dates.
    let d = tempfile::tempdir().unwrap();
    crate::common::openssl_pki(d.path(), Some(("20140601000000Z", "20240601000000Z")));
    let (code, out, _) = check(&["--at", "2026-11-26T00:00:00Z", s(d.path())]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!(
            "CRITICAL O=Cisco Systems\\, Inc,CN={FMC},OU=Intrusion Management System,title=InternalCA: notAfter=Jun  1 00:00:00 2024 GMT, expired 908 days ago"
        )),
        "{out}"
    );
    // Keys beside the certificates are passed over in a folder, not reported.
    assert!(out.contains(", 0 unknown"), "{out}");
}

#[test]
fn committed_lab_pkis_check_as_documented() {
    // certs/README.md: certs/valid runs 2025-01-01 + 3650 days; certs/expired-ca's
    // InternalCA ended 2024-05-29 while its peer certs run to 2030.
    let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs");
    let (code, out, _) = check(&["--at", "2026-11-26T00:00:00Z", s(&certs.join("valid"))]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = check(&["--at", "2026-11-26T00:00:00Z", s(&certs.join("expired-ca"))]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "CRITICAL InternalCA: notAfter=May 29 00:00:00 2024 GMT, expired 911 days ago"
        ),
        "{out}"
    );
}

/// notAfter itself is expired, as `openssl verify -attime` says (err 10), and the first day
/// after it counts -1, never 0: the perfdata of a certificate that expired 12 hours ago is
/// not that of one with 12 hours left.
#[test]
fn expiry_counts_from_not_after_on_and_never_shows_zero_once_expired() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("pki");
    pki_init(
        &root,
        &[
            "--not-before",
            "2026-11-25T00:00:00Z",
            "--days",
            "2",
            "--devices",
            "1",
        ],
    );
    let ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
    let label = format!("'{}'", ca.display());
    for (at, standing, perf) in [
        ("2026-11-26T12:00:00Z", "valid for 0 more days", "=0d;"),
        ("2026-11-26T23:59:59Z", "valid for 0 more days", "=0d;"),
        ("2026-11-27T00:00:00Z", "expired 1 day ago", "=-1d;"),
        ("2026-11-27T12:00:00Z", "expired 1 day ago", "=-1d;"),
        ("2026-11-28T00:00:00Z", "expired 1 day ago", "=-1d;"),
        ("2026-11-28T00:00:01Z", "expired 2 days ago", "=-2d;"),
    ] {
        let (code, out, _) = check(&["--at", at, s(&ca)]);
        assert_eq!(code, 2, "{at}: {out}");
        let first = out.lines().next().unwrap();
        assert!(first.contains(standing), "{at}: {out}");
        assert!(first.contains(&format!("{label}{perf}")), "{at}: {out}");
    }
    // At notAfter the chain check and the expiry agree: no "valid" beside err 10.
    let (_, out, _) = check(&["--at", "2026-11-27T00:00:00Z", "--ca", s(&ca), s(&ca)]);
    assert!(out.contains("expired 1 day ago, chain: err 10:"), "{out}");
    assert!(!out.contains("valid for"), "{out}");
    let (_, json, _) = check(&["--format", "json", "--at", "2026-11-27T00:00:00Z", s(&ca)]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let c = &v["certificates"][0];
    assert_eq!(
        (&c["days_left"], &c["standing"], &c["standing_days"]),
        (&(-1).into(), &"expired".into(), &1.into()),
        "{json}"
    );
}

/// The same certificate named twice, however spelled (or inside a folder also given), is
/// checked once: one count, one perfdata label (plugin parsers reject duplicates).
#[test]
fn a_file_given_twice_is_counted_once() {
    let d = tempfile::tempdir().unwrap();
    let a = openssl_cert(d.path(), "a", 3650);
    let dotted = d.path().join(".").join("a.pem");
    let (code, out, _) = check(&[s(&a), s(&a), s(&dotted)]);
    assert_eq!(code, 0, "{out}");
    let first = out.lines().next().unwrap();
    assert!(first.contains("; 1 certificate: 0 critical"), "{out}");
    assert_eq!(first.matches("'=").count(), 1, "one perfdata item: {out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    // A symbolic link is an entry of its own (it may play another part in a tree).
    let link = d.path().join("b.pem");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let (_, out, _) = check(&[s(&a), s(&link)]);
    assert!(out.contains("; 2 certificates: 0 critical"), "{out}");
}

/// Runs sfdiag with `args` and no stdin, killing it after 20 s: a read that blocks on a FIFO
/// fails the test instead of hanging it. (exit code, stdout and stderr)
fn bounded(args: &[&str]) -> (i32, String) {
    use std::time::{Duration as Wait, Instant};
    let mut child = sfdiag()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Wait::from_secs(20) {
            child.kill().unwrap();
            panic!("sfdiag {args:?} still ran after 20 s");
        }
        std::thread::sleep(Wait::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn mkfifo(p: &Path) {
    let _ = fs::remove_file(p);
    let ok = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(ok.success(), "mkfifo {}", p.display());
}

/// Audit #3: a FIFO or a character device given as input, or found where a root keeps a file
/// sfdiag reads, is refused at once, naming it; nothing waits for a writer or reads forever.
#[test]
fn fifos_and_devices_as_inputs_are_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo.pem");
    mkfifo(&fifo);
    for args in [
        vec!["check", s(&fifo)],
        vec!["check", "/dev/zero"],
        vec!["inventory", s(&fifo)],
        vec!["inventory", "/dev/zero"],
        vec!["pki", "show", s(&fifo)],
        vec!["pki", "show", "/dev/zero"],
    ] {
        let (code, out) = bounded(&args);
        assert_ne!(code, 0, "{args:?}: {out}");
        // (inventory's text table writes the comma as `_`)
        assert!(
            out.contains("is a FIFO") || out.contains("is a character device"),
            "{args:?}: {out}"
        );
    }
    let root = d.path().join("lab");
    pki_init(&root, &["--devices", "1"]);
    for devices in [s(&fifo), "/dev/zero"] {
        let (code, out) = bounded(&["pki", "copy", "--root", s(&root), "--devices", devices]);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains("--devices") && out.contains(", not a file"),
            "{out}"
        );
    }
    // A Latin-1 password: the line is named.
    let csv = d.path().join("latin.csv");
    fs::write(
        &csv,
        b"# device_name,ipaddr,login,password\nftd1,127.1.0.1,admin,\xff\xfe\n",
    )
    .unwrap();
    let (code, out) = bounded(&["pki", "copy", "--root", s(&root), "--devices", s(&csv)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("line 2 is not UTF-8 text"), "{out}");
    // A FIFO where the renewal looks for the appliance's critical-operation lock.
    let lock = root.join("fmc/var/tmp/critical_operation.lock");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    mkfifo(&lock);
    let (code, out) = bounded(&["pki", "renew", "--root", s(&root), "--yes"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("critical_operation.lock") && out.contains("is a FIFO"),
        "{out}"
    );
    fs::remove_file(&lock).unwrap();
    // A FIFO in the place of the FMC's sftunnel.conf: check cannot read the root (UNKNOWN),
    // renew refuses it.
    let conf = root.join("fmc/etc/sf/sftunnel.conf");
    mkfifo(&conf);
    let (code, out) = bounded(&["check", s(&root)]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("sftunnel.conf: is a FIFO, not a file"),
        "{out}"
    );
    let (code, out) = bounded(&["pki", "renew", "--root", s(&root), "--yes"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("sftunnel.conf: is a FIFO, not a file"),
        "{out}"
    );
}

/// Audit #4: a device's `cacert.pem`, `sftunnel-cert.pem` or `sftunnel-key.pem` missing from
/// a lab root is a CRITICAL `missing` problem and a `copy` in the inventory; one that is a
/// FIFO is an input that cannot be read (UNKNOWN).
#[test]
fn a_missing_or_unusable_tunnel_file_of_a_device_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base");
    pki_init(&base, &["--devices", "2", "--fmc-uuid", FMC]);
    for file in ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"] {
        for fifo in [false, true] {
            let root = d.path().join(format!("{file}-{fifo}"));
            let o = Command::new("cp")
                .args(["-a", s(&base), s(&root)])
                .status()
                .unwrap();
            assert!(o.success());
            let p = root.join(format!("ftd1/var/sf/peers/{FMC}/{file}"));
            fs::remove_file(&p).unwrap();
            if fifo {
                mkfifo(&p);
            }
            let (code, out) = bounded(&["check", s(&root)]);
            let (icode, inv) = bounded(&["inventory", "--format", "json", s(&root)]);
            let v: serde_json::Value =
                serde_json::from_str(&inv).unwrap_or_else(|e| panic!("{e}: {inv}"));
            let ftd1 = v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "ftd1")
                .unwrap_or_else(|| panic!("{file} {fifo}: no ftd1 in {inv}"))
                .clone();
            if fifo {
                assert_eq!(code, 3, "{file}: {out}");
                assert!(out.starts_with("UNKNOWN: "), "{file}: {out}");
                assert!(
                    out.contains(&format!("{file}: is a FIFO, not a file")),
                    "{out}"
                );
                assert_eq!(icode, 2, "{file}: {inv}");
            } else {
                assert_eq!(code, 2, "{file}: {out}");
                assert!(
                    out.starts_with(&format!("CRITICAL: missing: device ftd1 lacks {file}")),
                    "{out}"
                );
                assert!(out.contains(s(&p)), "the line names the file: {out}");
                assert_eq!(icode, 1, "{file}: {inv}");
                assert_eq!(ftd1["action"], "copy", "{file}: {ftd1}");
                assert_eq!(ftd1["problems"], serde_json::json!(["missing"]), "{ftd1}");
                assert_eq!(ftd1["ip"], "127.1.0.1", "{ftd1}");
            }
        }
    }
    // A partial copy without ftd2's folder is not a broken ftd2.
    let root = d.path().join("sftunnel-key.pem-false");
    fs::remove_dir_all(root.join("ftd2")).unwrap();
    let (_, out) = bounded(&["check", s(&root)]);
    assert!(!out.contains("device ftd2 lacks"), "{out}");
    assert!(out.contains("device ftd1 lacks sftunnel-key.pem"), "{out}");
}
