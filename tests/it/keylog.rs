//! `analyze --keylog` on the project's own key-log recordings (captures/record-keylog.sh:
//! openssl s_server/s_client with `-keylogfile`, python's ssl asking for the device's
//! certificate after the handshake against `s_client -enable_pha`, in a private network
//! namespace): TLS 1.3 certificates decrypted and judged (valid, expired InternalCA, CA
//! mismatch after the handshake), KeyUpdate followed, TLS 1.2 encrypted alerts named, what a
//! session without keys still says, bad key-log lines, a wrong secret; and the certificates
//! found held against tshark's own decryption with the same key log.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{project_captures, sfdiag};

const VALID_CA: &str = "certs/valid/fmc/etc/sf/ca_root/cacert.pem";
const EXPIRED_CA: &str = "certs/expired-ca/fmc/etc/sf/ca_root/cacert.pem";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn capture(name: &str) -> PathBuf {
    project_captures().join(format!("{name}.pcap"))
}

fn keylog(name: &str) -> PathBuf {
    project_captures().join(format!("{name}.keylog"))
}

/// `sfdiag analyze --format jsonl` with the given extra arguments: exit code, records, stderr.
fn analyze(args: &[&std::ffi::OsStr]) -> (i32, Vec<Value>, String) {
    let out = sfdiag()
        .current_dir(root())
        .arg("analyze")
        .args(["--format", "jsonl"])
        .args(args)
        .output()
        .unwrap();
    let records = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        records,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_keys(name: &str, ca: &str) -> (i32, Vec<Value>, String) {
    let (c, k) = (capture(name), keylog(name));
    analyze(&[
        "--ca".as_ref(),
        ca.as_ref(),
        "--keylog".as_ref(),
        k.as_os_str(),
        c.as_os_str(),
    ])
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

fn only_session(records: &[Value]) -> &Value {
    let s = of_type(records, "session");
    assert_eq!(s.len(), 1, "{records:#?}");
    s[0]
}

/// Certificates in order: (role, chain_index, verdict code, verdict depth, decrypted,
/// post_handshake).
fn certs(records: &[Value]) -> Vec<(String, u64, i64, Value, bool, bool)> {
    of_type(records, "certificate")
        .iter()
        .map(|c| {
            (
                c["role"].as_str().unwrap().to_string(),
                c["chain_index"].as_u64().unwrap(),
                c["verdict"]["code"].as_i64().unwrap(),
                c["verdict"]["depth"].clone(),
                c["decrypted"] == true,
                c["post_handshake"] == true,
            )
        })
        .collect()
}

/// The client random of the key log's lines: the lookup key the session must name.
fn logged_random(name: &str) -> String {
    let text = fs::read_to_string(keylog(name)).unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("SERVER_HANDSHAKE_TRAFFIC_SECRET") || l.starts_with("CLIENT_RANDOM")
        })
        .unwrap();
    line.split(' ').nth(1).unwrap().to_lowercase()
}

#[test]
fn tls13_certificates_of_both_sides_are_decrypted_and_judged_valid_across_a_key_update() {
    let (code, records, stderr) = with_keys("tls13-valid", VALID_CA);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        certs(&records),
        [
            ("server".into(), 0, 0, Value::from(0), true, false),
            ("server".into(), 1, 0, Value::from(1), true, false),
            ("client".into(), 0, 0, Value::from(0), true, false),
            ("client".into(), 1, 0, Value::from(1), true, false),
        ]
    );
    let s = only_session(&records);
    assert_eq!(s["outcome"], "established");
    assert_eq!(s["reason"], "handshake completed");
    assert_eq!(s["client_cert"], true);
    assert_eq!(s["decrypted"], true);
    assert_eq!(s["client_random"], logged_random("tls13-valid"));
    assert!(s.get("missing_secrets").is_none(), "{s}");
    // Both close_notify alerts come after the KeyUpdates (s_client's `K`, and the server's
    // answer): they open only with the next-generation secrets.
    let alerts = of_type(&records, "alert");
    let named: Vec<_> = alerts
        .iter()
        .map(|a| {
            (
                a["role"].as_str().unwrap(),
                a["description"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [("server", "close_notify"), ("client", "close_notify")]
    );
    assert!(alerts.iter().all(|a| a["decrypted"] == true));
}

#[test]
fn the_other_tls13_suites_aes_128_gcm_and_chacha20_poly1305_decrypt_too() {
    let (code, records, stderr) = with_keys("tls13-suites", VALID_CA);
    assert_eq!(code, 0, "{stderr}");
    let sessions = of_type(&records, "session");
    let got: Vec<_> = sessions
        .iter()
        .map(|s| {
            (
                s["cipher"].as_str().unwrap(),
                s["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("TLS_AES_128_GCM_SHA256", "established"),
            ("TLS_CHACHA20_POLY1305_SHA256", "established")
        ]
    );
    let c = certs(&records);
    assert_eq!(c.len(), 8, "{c:?}");
    assert!(c.iter().all(|c| c.2 == 0 && c.4 && !c.5), "{c:?}");
}

#[test]
fn a_post_handshake_certificate_is_decrypted_after_key_updates_and_judged() {
    let (code, records, stderr) = with_keys("tls13-pha-valid", VALID_CA);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        certs(&records),
        [
            ("server".into(), 0, 0, Value::from(0), true, false),
            ("server".into(), 1, 0, Value::from(1), true, false),
            ("client".into(), 0, 0, Value::from(0), true, true),
            ("client".into(), 1, 0, Value::from(1), true, true),
        ]
    );
    let client: Vec<_> = of_type(&records, "certificate")
        .into_iter()
        .filter(|c| c["role"] == "client")
        .collect();
    // the device's identity, as python's server printed it (captures/*.server.log)
    let log = fs::read_to_string(project_captures().join("tls13-pha-valid.server.log")).unwrap();
    assert!(log.contains("post-handshake peer certificate"), "{log}");
    let uuid = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";
    assert!(log.contains(uuid));
    assert!(client[0]["subject"].as_str().unwrap().contains(uuid));
    let s = only_session(&records);
    assert_eq!(s["outcome"], "established");
    assert_eq!(s["client_cert"], true);
    assert_eq!(s["certificate_requested"], true);
}

#[test]
fn a_device_certificate_from_another_ca_after_the_handshake_fails_the_session() {
    let (code, records, stderr) = with_keys("tls13-pha-ca-mismatch", VALID_CA);
    assert_eq!(code, 1, "{stderr}");
    let c = certs(&records);
    assert_eq!(
        c[2],
        ("client".into(), 0, 20, Value::from(0), true, true),
        "{c:?}"
    );
    // python's server said the same (captures/tls13-pha-ca-mismatch.server.log)
    let log =
        fs::read_to_string(project_captures().join("tls13-pha-ca-mismatch.server.log")).unwrap();
    assert!(
        log.contains("unable to get local issuer certificate"),
        "{log}"
    );
    let alert = of_type(&records, "alert");
    assert_eq!(alert.len(), 1, "{alert:?}");
    assert_eq!(alert[0]["description"], "unknown_ca");
    assert_eq!(alert[0]["role"], "server");
    assert_eq!(alert[0]["decrypted"], true);
    let s = only_session(&records);
    assert_eq!(s["outcome"], "failed");
    assert_eq!(s["failed_by"], "server");
    assert_eq!(s["client_chain_verdict"]["code"], 20);
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .starts_with("server sent fatal unknown_ca after client post-handshake Certificate"),
        "{s}"
    );
}

#[test]
fn an_expired_internal_ca_in_tls13_is_err_10_at_depth_1_on_the_decrypted_chain() {
    let (code, records, stderr) = with_keys("tls13-ca-expired", EXPIRED_CA);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        certs(&records),
        [
            ("server".into(), 0, 0, Value::from(0), true, false),
            ("server".into(), 1, 10, Value::from(1), true, false),
        ]
    );
    let s = only_session(&records);
    assert_eq!(s["outcome"], "failed");
    assert_eq!(s["failed_by"], "client");
    assert_eq!(s["server_chain_verdict"]["code"], 10);
    assert_eq!(s["server_chain_verdict"]["depth"], 1);
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .starts_with("client sent fatal certificate_expired after server Certificate"),
        "{s}"
    );
    // The client failed before it had handshake keys of its own: nothing more to ask for.
    assert!(s.get("missing_secrets").is_none(), "{s}");
    let log = fs::read_to_string(project_captures().join("tls13-ca-expired.client.log")).unwrap();
    assert!(log.contains("num=10:certificate has expired"), "{log}");
}

#[test]
fn without_keys_a_tls13_session_says_what_its_records_show_and_which_lines_open_it() {
    let c = capture("tls13-pha-ca-mismatch");
    let (_, records, _) = analyze(&["--ca".as_ref(), VALID_CA.as_ref(), c.as_os_str()]);
    assert!(of_type(&records, "certificate").is_empty());
    let s = only_session(&records);
    assert_eq!(s["outcome"], "encrypted_certificates");
    let reason = s["reason"].as_str().unwrap();
    let random = logged_random("tls13-pha-ca-mismatch");
    for part in [
        "TLSv1.3 negotiated: certificates are encrypted; client sent ",
        "the handshake most likely completed",
        "closed the connection first",
        &format!(
            "add CLIENT_HANDSHAKE_TRAFFIC_SECRET, SERVER_HANDSHAKE_TRAFFIC_SECRET, \
             CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0 for client random {random}"
        ),
    ] {
        assert!(reason.contains(part), "{part:?} not in {reason:?}");
    }
    assert!(!reason.contains("none sent"));
    assert_eq!(s["client_random"], random);
    assert_eq!(s["missing_secrets"].as_array().unwrap().len(), 4);
    // the text report does not call an encrypted chain "none sent" either
    let out = sfdiag()
        .current_dir(root())
        .arg("analyze")
        .arg(&c)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("none sent"), "{text}");
    assert!(
        text.contains("certificates encrypted (TLS 1.3), not seen"),
        "{text}"
    );

    // The expired-CA handshake without keys: only the server sent encrypted records, so
    // only its handshake secret is asked for.
    let c = capture("tls13-ca-expired");
    let (_, records, _) = analyze(&[c.as_os_str()]);
    let s = only_session(&records);
    assert_eq!(s["outcome"], "failed");
    assert_eq!(
        s["missing_secrets"],
        serde_json::json!(["SERVER_HANDSHAKE_TRAFFIC_SECRET"])
    );
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .starts_with("client sent fatal certificate_expired after server encrypted records"),
        "{s}"
    );
}

#[test]
fn tls12_encrypted_alerts_are_named_with_client_random_lines_for_gcm_chacha_and_cbc() {
    let (code, records, stderr) = with_keys("tls12-alerts", VALID_CA);
    assert_eq!(code, 0, "{stderr}");
    let sessions = of_type(&records, "session");
    let ciphers: Vec<_> = sessions
        .iter()
        .map(|s| s["cipher"].as_str().unwrap())
        .collect();
    assert_eq!(
        ciphers,
        [
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        ]
    );
    let alerts = of_type(&records, "alert");
    assert_eq!(alerts.len(), 8);
    for a in &alerts {
        assert_eq!(a["description"], "close_notify", "{a}");
        assert_eq!(a["level"], "warning");
        assert_eq!(a["encrypted"], true);
        assert_eq!(a["decrypted"], true);
    }
    // the same capture without the key log: sent, content unknown
    let c = capture("tls12-alerts");
    let (_, records, _) = analyze(&[c.as_os_str()]);
    let alerts = of_type(&records, "alert");
    assert_eq!(alerts.len(), 8);
    assert!(
        alerts
            .iter()
            .all(|a| a["description"].is_null() && a.get("decrypted").is_none())
    );
}

/// A private copy of a key log with `edit` applied, mode 0600.
fn edited_keylog(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = fs::read_to_string(keylog(name)).unwrap();
    let path = dir.join(format!("{name}.keylog"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    f.write_all(edit(&text).as_bytes()).unwrap();
    path
}

#[test]
fn bad_key_log_lines_are_named_by_file_and_line_and_the_rest_still_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let k = edited_keylog(dir.path(), "tls13-pha-valid", |t| {
        format!("CLIENT_RANDOM not-hex\n{t}SERVER_HANDSHAKE_TRAFFIC_SECRET 00\nGARBAGE\u{7}LINE\n")
    });
    let c = capture("tls13-pha-valid");
    let (code, records, stderr) = analyze(&[
        "--keylog".as_ref(),
        k.as_os_str(),
        "--ca".as_ref(),
        VALID_CA.as_ref(),
        c.as_os_str(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lines = fs::read_to_string(&k).unwrap().lines().count();
    let shown = k.display().to_string();
    for want in [
        format!(
            "{shown}:1: expected 3 fields (label, client random, secret), found 2; line ignored"
        ),
        format!("{shown}:{}: expected 3 fields", lines - 1),
        format!("{shown}:{lines}: unknown label \"GARBAGE\\u{{7}}LINE\"; line ignored"),
    ] {
        assert!(stderr.contains(&want), "{want:?} not in {stderr}");
    }
    assert_eq!(of_type(&records, "certificate").len(), 4);
    assert!(
        of_type(&records, "certificate")
            .iter()
            .all(|c| c["decrypted"] == true)
    );
}

#[test]
fn a_wrong_secret_is_reported_and_nothing_is_guessed() {
    let dir = tempfile::tempdir().unwrap();
    // flip the last hex digit of the server's handshake secret
    let k = edited_keylog(dir.path(), "tls13-valid", |t| {
        t.lines()
            .map(|l| {
                if l.starts_with("SERVER_HANDSHAKE_TRAFFIC_SECRET") {
                    let (head, last) = l.split_at(l.len() - 1);
                    format!("{head}{}\n", if last == "0" { "1" } else { "0" })
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    });
    let c = capture("tls13-valid");
    let (_, records, _) = analyze(&["--keylog".as_ref(), k.as_os_str(), c.as_os_str()]);
    let certs = certs(&records);
    assert!(
        certs.iter().all(|c| c.0 == "client"),
        "no server certificate without its key: {certs:?}"
    );
    let notes = of_type(&records, "note");
    assert!(
        notes.iter().any(|n| n["kind"] == "tls_error"
            && n["text"]
                .as_str()
                .unwrap()
                .contains("does not decrypt with the key log's secret")),
        "{notes:?}"
    );
    let s = only_session(&records);
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("records from the server did not decrypt with the key log's secrets"),
        "{s}"
    );
}

/// tshark, or `None` with a line saying why the check is skipped (a failure instead when
/// `SFDIAG_REQUIRE_PEERS=1`, as CI sets).
fn tshark() -> Option<&'static str> {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("tshark");
    }
    if std::env::var("SFDIAG_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("tshark is required (SFDIAG_REQUIRE_PEERS=1) but not found");
    }
    eprintln!(
        "skipped: no tshark (apt-get install tshark) to cross-check the decrypted certificates"
    );
    None
}

#[test]
fn decrypted_certificates_are_the_ones_tshark_finds_with_the_same_key_log() {
    let Some(tshark) = tshark() else {
        return;
    };
    for name in [
        "tls13-valid",
        "tls13-suites",
        "tls13-ca-expired",
        "tls13-pha-valid",
        "tls13-pha-ca-mismatch",
    ] {
        let (c, k) = (capture(name), keylog(name));
        let out = Command::new(tshark)
            .arg("-r")
            .arg(&c)
            .arg("-o")
            .arg(format!("tls.keylog_file:{}", k.display()))
            .args(["-Y", "tls.handshake.certificate", "-T", "fields"])
            .args(["-e", "frame.number", "-e", "tls.handshake.certificate"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: tshark failed");
        // (frame, sha256 of each DER) per tshark
        let mut theirs = BTreeSet::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let (frame, ders) = line.split_once('\t').unwrap();
            for der in ders.split(',') {
                let bytes = hex::decode(der).unwrap();
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
                theirs.insert((frame.parse::<u64>().unwrap(), hex::encode(digest.as_ref())));
            }
        }
        let (_, records, _) = analyze(&["--keylog".as_ref(), k.as_os_str(), c.as_os_str()]);
        let ours: BTreeSet<_> = of_type(&records, "certificate")
            .iter()
            .map(|c| {
                (
                    c["frame"].as_u64().unwrap(),
                    c["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(!ours.is_empty(), "{name}: nothing decrypted");
        assert_eq!(ours, theirs, "{name}: ours vs tshark's");
    }
}
