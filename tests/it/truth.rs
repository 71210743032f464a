//! `analyze` held against the ground truth of every third-party capture in the shared corpus
//! (`*.truth.json`, made independently with tshark + openssl, see the corpus README).
//!
//! For each capture: every certificate by SHA-256, role, chain index, frame, time, src, dst,
//! serial and dates, with nothing extra; plaintext alerts by frame and code; encrypted alerts
//! counted; expiry and not-yet-valid at capture time as our verdict codes 10/9 (no `--ca`); and
//! TLS 1.3 honesty (an `encrypted_certificates` session, no certificates listed for it). One
//! test, every capture checked, all failures reported together.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sfdiag::analysis::{self, Finding, Options, Outcome};

use crate::common::corpus;

/// Captures under `../shared/captures-new/` that the analyzer does not match yet: other items
/// of issue 14, owned by other engineers. Drop an entry when its fix lands (the test fails
/// while a listed capture agrees, so the list stays true).
const EXPECTED_TO_FAIL_FOR_NOW: &[&str] = &[];

fn truth_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("shared captures are readable") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.to_string_lossy().ends_with(".truth.json") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// openssl's `-serial` (upper case, zero-padded) in our form: lowercase, no leading zeros.
fn serial(s: &str) -> String {
    let t = s.to_ascii_lowercase();
    let t = t.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.into() }
}

fn analyze(path: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    analysis::analyze_path(path, &Options::default(), &mut |f| out.push(f))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

/// What one certificate must match: (frame, sha256, role, chain_index, src, dst).
type CertKey = (u64, String, String, u64, String, String);

/// Checks one capture; returns what disagrees.
fn check(truth_path: &Path) -> Vec<String> {
    let capture = PathBuf::from(
        truth_path
            .to_string_lossy()
            .trim_end_matches(".truth.json")
            .to_string(),
    );
    let truth: Value = serde_json::from_slice(&fs::read(truth_path).unwrap()).unwrap();
    let findings = analyze(&capture);
    let mut bad = Vec::new();

    // Certificates: the same multiset of keys, and matching details.
    let mut want: BTreeMap<CertKey, &Value> = BTreeMap::new();
    for c in truth["certificates"].as_array().unwrap() {
        let key = (
            c["frame"].as_u64().unwrap(),
            c["sha256_der"].as_str().unwrap().to_string(),
            c["role"].as_str().unwrap().to_string(),
            c["chain_index"].as_u64().unwrap(),
            c["src"].as_str().unwrap().to_string(),
            c["dst"].as_str().unwrap().to_string(),
        );
        want.insert(key, c);
    }
    let mut got: BTreeMap<CertKey, &analysis::CertificateFinding> = BTreeMap::new();
    for f in &findings {
        if let Finding::Certificate(c) = f {
            let key = (
                c.frame,
                c.sha256.clone(),
                c.role.map_or("unknown".to_string(), |r| r.to_string()),
                c.chain_index as u64,
                c.src.to_string(),
                c.dst.to_string(),
            );
            if got.insert(key.clone(), c).is_some() {
                bad.push(format!("certificate listed twice: {key:?}"));
            }
        }
    }
    for (key, t) in &want {
        let Some(c) = got.get(key) else {
            bad.push(format!("missing certificate {key:?}"));
            continue;
        };
        if c.ts.to_string() != t["ts"].as_str().unwrap() {
            bad.push(format!("{key:?}: ts {} != {}", c.ts, t["ts"]));
        }
        if let Some(s) = t["serial_hex"].as_str()
            && c.serial.as_deref() != Some(serial(s).as_str())
        {
            bad.push(format!("{key:?}: serial {:?} != {s}", c.serial));
        }
        for (field, ours) in [("not_before", &c.not_before), ("not_after", &c.not_after)] {
            if let Some(want) = t[field].as_str() {
                let ours = ours.as_ref().map(sfdiag::sftunnel::rfc3339);
                if ours.as_deref() != Some(want) {
                    bad.push(format!("{key:?}: {field} {ours:?} != {want}"));
                }
            }
        }
        let code = c.verdict.code.code();
        let expired = t["expired_at_capture_time"].as_bool().unwrap();
        let not_yet = t["not_yet_valid_at_capture_time"].as_bool().unwrap();
        if expired != (code == 10) || not_yet != (code == 9) {
            bad.push(format!(
                "{key:?}: verdict {code} but truth expired={expired} not_yet_valid={not_yet}"
            ));
        }
        if c.der_len as u64 != t["der_len"].as_u64().unwrap() {
            bad.push(format!("{key:?}: der_len {}", c.der_len));
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        bad.push(format!("extra certificate {key:?}"));
    }

    // Alerts: plaintext ones by frame + code, encrypted ones counted.
    let mut want_plain = Vec::new();
    let mut want_encrypted = 0;
    for a in truth["alerts"].as_array().unwrap() {
        if a["encrypted"].as_bool().unwrap() {
            want_encrypted += 1;
        } else {
            want_plain.push((a["frame"].as_u64().unwrap(), a["code"].as_u64().unwrap()));
        }
    }
    let mut got_plain = Vec::new();
    let mut got_encrypted = 0;
    for f in &findings {
        if let Finding::Alert(a) = f {
            match a.code {
                Some(code) => got_plain.push((a.frame, u64::from(code))),
                None => got_encrypted += 1,
            }
        }
    }
    want_plain.sort();
    got_plain.sort();
    if want_plain != got_plain {
        bad.push(format!(
            "plaintext alerts {got_plain:?}, truth {want_plain:?}"
        ));
    }
    if want_encrypted != got_encrypted {
        bad.push(format!(
            "{got_encrypted} encrypted alerts, truth {want_encrypted}"
        ));
    }

    // TLS 1.3: said, not guessed.
    let tls13 = truth["tls13_or_encrypted_certs"].as_bool().unwrap();
    let encrypted_sessions = findings
        .iter()
        .filter(|f| matches!(f, Finding::Session(s) if s.outcome == Outcome::EncryptedCertificates))
        .count();
    if tls13 != (encrypted_sessions > 0) {
        bad.push(format!(
            "truth tls13_or_encrypted_certs={tls13}, our encrypted_certificates sessions: {encrypted_sessions}"
        ));
    }
    bad
}

#[test]
fn analyze_agrees_with_the_ground_truth_of_every_shared_capture() {
    let Some(shared) = corpus!("captures") else {
        return;
    };
    let files = truth_files(&shared);
    assert_eq!(files.len(), 35, "the shared corpus has 35 truth files");
    let mut failures = Vec::new();
    for t in &files {
        let bad = check(t);
        if !bad.is_empty() {
            let name = t.strip_prefix(&shared).unwrap_or(t).display();
            failures.push(format!("{name}:\n  {}", bad.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{}/{} captures agree with their truth; disagreements:\n{}",
        files.len() - failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn analyze_agrees_with_the_ground_truth_of_the_new_shared_captures() {
    let Some(root) = corpus!("captures-new") else {
        return;
    };
    let files = truth_files(&root);
    assert_eq!(files.len(), 7, "captures-new has 7 truth files");
    println!("expected to fail for now (issue 14, other engineers): {EXPECTED_TO_FAIL_FOR_NOW:?}");
    let mut failures = Vec::new();
    for t in &files {
        let name = t.strip_prefix(&root).unwrap_or(t).display().to_string();
        let name = name.trim_end_matches(".truth.json");
        let bad = check(t);
        match (EXPECTED_TO_FAIL_FOR_NOW.contains(&name), bad.is_empty()) {
            (false, false) => failures.push(format!("{name}:\n  {}", bad.join("\n  "))),
            (true, true) => failures.push(format!(
                "{name} now agrees with its truth: drop it from EXPECTED_TO_FAIL_FOR_NOW"
            )),
            (true, false) => println!("{name}: still disagrees: {}", bad.join("; ")),
            (false, true) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
