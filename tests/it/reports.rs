//! Sessions as they really end, reports that say only what the bytes show, and several files
//! on every core - on real bytes: the project's own recordings (`captures/`, see its README:
//! an FTP CCC session, a capture cut mid-session, the sftunnel scenarios) and third-party
//! captures with ground truth (`../shared/captures-new/`, skipped with a line when absent).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{corpus, have_openssl, project_captures, sfdiag, shared_captures, shared_dir};

fn cap(name: &str) -> String {
    project_captures().join(name).to_str().unwrap().to_string()
}

/// A capture of `../shared/captures-new/`, or `None` (and the corpus's `SKIPPED` line naming
/// the calling test) without it; a failure instead under `SFDIAG_REQUIRE_CORPUS`.
macro_rules! new_capture {
    ($rel:expr) => {
        corpus!("captures-new").map(|d| d.join($rel).to_str().unwrap().to_string())
    };
}

fn run(args: &[&str]) -> Output {
    sfdiag()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("analyze")
        .args(args)
        .output()
        .expect("sfdiag runs")
}

/// The text report and the exit code.
fn text(args: &[&str]) -> (String, i32) {
    let out = run(args);
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code().unwrap(),
    )
}

/// `--format jsonl` records and the exit code.
fn jsonl(args: &[&str]) -> (Vec<Value>, i32) {
    let mut a = vec!["--format", "jsonl"];
    a.extend_from_slice(args);
    let (out, code) = text(&a);
    let records = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (records, code)
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

fn notes_of<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    of_type(records, "note")
        .into_iter()
        .filter(|n| n["kind"] == kind)
        .collect()
}

mod sessions {
    use super::*;

    #[test]
    fn a_session_that_leaves_tls_for_cleartext_is_a_session_with_client_cert_no() {
        // Our own recording: AUTH TLS, an empty client Certificate, CCC, cleartext NOOP/QUIT.
        let (r, code) = jsonl(&["--ca", &cap("ccc.ca.pem"), &cap("ftp-ccc.pcap")]);
        assert_eq!(code, 0, "{r:#?}");
        let s = of_type(&r, "session");
        assert_eq!(s.len(), 1, "{r:#?}");
        let s = s[0];
        assert_eq!(s["outcome"], "established");
        assert_eq!(s["version"], "TLSv1.2");
        assert_eq!(s["certificate_requested"], true);
        assert_eq!(s["client_cert"], false);
        assert_eq!(s["client_certificates"], "empty");
        assert_eq!(s["server_chain_verdict"]["code"], 0);
        assert!(
            s["reason"].as_str().unwrap().contains(
                "the client and the server closed TLS (encrypted alerts) and went on in cleartext"
            ),
            "{s}"
        );
        assert!(
            notes_of(&r, "tls_error").is_empty(),
            "cleartext after CCC is no TLS error: {r:#?}"
        );
        let capture = of_type(&r, "capture")[0];
        assert_eq!(capture["tls_sessions"], 1);
        assert_eq!(capture["not_tls_connections"], 0);
        assert_eq!(
            of_type(&r, "alert").len(),
            2,
            "both close_notify, encrypted"
        );

        let (t, _) = text(&["--ca", &cap("ccc.ca.pem"), &cap("ftp-ccc.pcap")]);
        assert!(
            t.contains("client cert: no (asked for; an empty Certificate sent)"),
            "{t}"
        );
        assert!(
            t.contains("client: no certificate (an empty Certificate message)"),
            "{t}"
        );
    }

    #[test]
    fn ndpi_ftp_start_tls_is_a_session_with_its_certificate_request_answered_empty() {
        let Some(f) = new_capture!("ndpi/ftp-start-tls.pcap") else {
            return;
        };
        let (r, code) = jsonl(&[&f]);
        assert_eq!(code, 0);
        let s = of_type(&r, "session");
        assert_eq!(s.len(), 1, "{r:#?}");
        assert_eq!(s[0]["outcome"], "established");
        assert_eq!(s[0]["version"], "TLSv1.0");
        assert_eq!(s[0]["certificate_requested"], true);
        assert_eq!(s[0]["client_certificates"], "empty");
        assert_eq!(s[0]["first_frame"], 1);
        assert!(notes_of(&r, "tls_error").is_empty(), "{r:#?}");
        // The truth: one server certificate at frame 17, two encrypted alerts (40, 43).
        let certs = of_type(&r, "certificate");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0]["frame"], 17);
        let alerts: Vec<_> = of_type(&r, "alert")
            .iter()
            .map(|a| (a["frame"].as_u64().unwrap(), a["encrypted"].clone()))
            .collect();
        assert_eq!(alerts, [(40, Value::Bool(true)), (43, Value::Bool(true))]);
    }

    #[test]
    fn our_capture_cut_mid_session_is_handshake_not_in_the_capture_and_exits_0() {
        let (r, code) = jsonl(&[&cap("tls-mid-session.pcap")]);
        assert_eq!(code, 0, "{r:#?}");
        let s = of_type(&r, "session");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["outcome"], "incomplete");
        assert_eq!(
            s[0]["reason"],
            "handshake not in the capture (it began before the capture started)"
        );
        assert_eq!(s[0]["server_certificates"], "not_captured");
        assert_eq!(s[0]["remedy"], Value::Null);
        assert_eq!(
            of_type(&r, "alert").len(),
            2,
            "the closing alerts are counted"
        );
        let (t, _) = text(&[&cap("tls-mid-session.pcap")]);
        assert!(!t.contains("SSL handshake failed"), "{t}");
        assert!(t.contains("server: handshake not in the capture"), "{t}");
    }

    /// The session of `conn` in a run.
    fn session_of(r: &[Value], conn: u64) -> &Value {
        of_type(r, "session")
            .into_iter()
            .find(|s| s["conn"] == conn)
            .unwrap_or_else(|| panic!("no session for conn {conn}: {r:#?}"))
    }

    #[test]
    fn a_lone_closing_encrypted_alert_mid_session_is_not_a_failed_handshake() {
        let Some(alert) = new_capture!("ndpi/tls_alert.pcap") else {
            return;
        };
        let (r, code) = jsonl(&[&alert]);
        assert_eq!(code, 1, "the plaintext protocol_version alert is a problem");
        // frame 12: the mid-session connection (tcp.stream 1), only an encrypted alert + FIN.
        let mid = session_of(&r, 1);
        assert_eq!(mid["first_frame"], 12);
        assert_eq!(mid["outcome"], "incomplete");
        assert_eq!(
            mid["reason"],
            "handshake not in the capture (it began before the capture started)"
        );
        assert_eq!(session_of(&r, 0)["outcome"], "failed");
        let encrypted = of_type(&r, "alert")
            .into_iter()
            .filter(|a| a["encrypted"] == true)
            .count();
        assert_eq!(encrypted, 1);

        let Some(long) = new_capture!("ndpi/tls_certificate_too_long.pcap") else {
            return;
        };
        let (r, _) = jsonl(&[&long]);
        let s6 = session_of(&r, 6);
        assert_eq!(s6["outcome"], "incomplete", "{s6}");
        assert_eq!(s6["server_certificates"], "not_captured");
        let (t, _) = text(&[&long]);
        assert!(!t.contains("one side sent an encrypted alert"), "{t}");
    }

    #[test]
    fn a_tls13_draft_server_hello_without_session_id_is_tls13_not_malformed() {
        let Some(f) = new_capture!("suricata-verify/tls13-draft14/tls13_draft14.pcap") else {
            return;
        };
        let (r, code) = jsonl(&[&f]);
        assert_eq!(code, 0, "application data followed: nothing failed");
        assert!(notes_of(&r, "tls_error").is_empty(), "{r:#?}");
        let s = of_type(&r, "session");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0]["outcome"], "encrypted_certificates");
        assert_eq!(s[0]["version"], "TLSv1.3");
        assert_eq!(s[0]["server_certificates"], "encrypted");
        assert_eq!(s[0]["client_certificates"], "encrypted");
        let (t, _) = text(&[&f]);
        assert!(
            t.contains("server: certificates encrypted (TLS 1.3)"),
            "{t}"
        );
        assert!(t.contains("client cert: unknown (encrypted)"), "{t}");
        assert!(!t.contains("none sent"), "{t}");
    }
}

mod wording {
    use super::*;

    #[test]
    fn without_ca_a_chain_is_dates_ok_not_verified_and_the_report_hints_at_ca() {
        // The client rejected the server's chain (decrypt_error); its dates are fine.
        let regenerated = cap("sftunnel-ca-regenerated.pcap");
        let (t, code) = text(&[&regenerated]);
        assert_eq!(code, 1);
        assert!(
            t.contains(
                "server: FMC cdb123c8-4347-11ef-aca1-f3aa241412a1, dates ok; chain not verified (no --ca)"
            ),
            "{t}"
        );
        assert!(!t.contains("chain ok"), "{t}");
        assert!(
            t.lines()
                .any(|l| l.starts_with("hint: without --ca only the certificates' dates")),
            "{t}"
        );
        let (r, _) = jsonl(&[&regenerated]);
        for c in of_type(&r, "chain") {
            assert_eq!(c["checked"], "dates");
            assert_eq!(c["trusted"], false);
        }
        assert_eq!(of_type(&r, "session")[0]["remedy"]["action"], "rerun");

        // With the CA the client trusted, the whole chain is judged and there is no hint.
        let (t, _) = text(&["--ca", &cap("regenerated.ca.pem"), &regenerated]);
        assert!(
            t.contains("chain err 7:certificate signature failure (depth 0)"),
            "{t}"
        );
        assert!(!t.contains("hint:") && !t.contains("not verified"), "{t}");
    }

    #[test]
    fn a_wrong_ca_is_named_as_not_the_ca_on_the_wire_with_both_fingerprints() {
        let ca = cap("ca-expired.ca.pem");
        let (r, code) = jsonl(&["--ca", &ca, &cap("sftunnel-valid.pcap")]);
        assert_eq!(code, 1);
        // The fingerprints as openssl prints them: the --ca file and the CA the server sent.
        let anchor = if have_openssl() {
            let out = Command::new("openssl")
                .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", &ca])
                .output()
                .unwrap();
            let s = String::from_utf8(out.stdout).unwrap();
            s.trim()
                .rsplit('=')
                .next()
                .unwrap()
                .replace(':', "")
                .to_lowercase()
        } else {
            eprintln!("openssl missing: the fingerprint is not cross-checked");
            "9437b18dac230df63746d9c8793e71e3b1c17607b4741b82b5bb8dc2fbe906c3".to_string()
        };
        let sent = of_type(&r, "certificate")
            .into_iter()
            .find(|c| c["role"] == "server" && c["chain_index"] == 1)
            .unwrap()["sha256"]
            .clone();
        let chains = of_type(&r, "chain");
        assert_eq!(chains.len(), 2);
        for c in chains {
            assert_eq!(c["verdict"]["code"], 10);
            assert_eq!(c["trusted"], false, "never true beside a failed verdict");
            let m = &c["anchor_mismatch"];
            assert_eq!(m["depth"], 1, "{c}");
            assert_eq!(m["anchor"]["sha256"], anchor.as_str());
            assert_eq!(m["anchor"]["not_after"], "2024-06-01T00:00:00Z");
            assert_eq!(m["sent"]["sha256"], sent);
            assert_eq!(m["sent"]["not_after"], "2034-01-01T00:00:00Z");
            assert_eq!(m["anchor"]["subject"], m["sent"]["subject"]);
        }
        let s = of_type(&r, "session")[0];
        assert_eq!(s["remedy"]["action"], "rerun");
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .contains("against a --ca anchor that is not the CA the server sent"),
            "{s}"
        );
        let (t, _) = text(&["--ca", &ca, &cap("sftunnel-valid.pcap")]);
        let warn = t
            .lines()
            .find(|l| l.contains("[WARN] the --ca anchor at depth 1 is not the CA the server sent"))
            .unwrap_or_else(|| panic!("{t}"));
        assert!(warn.contains(&format!("sha256={anchor}")), "{warn}");
        assert!(
            warn.contains(&format!(
                "the server sent sha256={}",
                sent.as_str().unwrap()
            )),
            "{warn}"
        );
    }

    #[test]
    fn trusted_is_true_only_beside_a_good_verdict_judged_to_an_anchor() {
        let mut seen_true = false;
        for (ca, file) in [
            ("valid.ca.pem", "sftunnel-valid.pcap"),
            ("ca-expired.ca.pem", "sftunnel-ca-expired.pcap"),
            ("ca-expired.ca.pem", "sftunnel-valid.pcap"),
            ("regenerated.ca.pem", "sftunnel-ca-regenerated.pcap"),
            ("ftd-expired.ca.pem", "sftunnel-ftd-expired.pcap"),
        ] {
            for args in [vec!["--ca", ca, file], vec![file]] {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| {
                        if a.starts_with("--") {
                            a.to_string()
                        } else {
                            cap(a)
                        }
                    })
                    .collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let (r, _) = jsonl(&args);
                let chains = of_type(&r, "chain");
                assert!(!chains.is_empty());
                for c in chains {
                    let good = c["verdict"]["code"] == 0 && c["checked"] == "chain";
                    assert_eq!(c["trusted"], good, "{args:?}: {c}");
                    seen_true |= good;
                }
            }
        }
        assert!(seen_true, "a good chain is trusted");
    }

    /// RFC 4514 attributes of a name, in its order, unescaped (`\,` -> `,`).
    fn rfc4514_parts(s: &str) -> Vec<String> {
        let mut parts = vec![String::new()];
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => parts.last_mut().unwrap().extend(chars.next()),
                ',' => parts.push(String::new()),
                c => parts.last_mut().unwrap().push(c),
            }
        }
        parts
    }

    #[test]
    fn each_format_prints_names_in_one_order_text_openssl_oneline_json_rfc4514_reversed() {
        let files = [
            cap("sftunnel-valid.pcap"),
            shared_captures()
                .join("zeek/tls-early-alert.pcap")
                .to_str()
                .unwrap()
                .to_string(),
        ];
        let mut checked = 0;
        for f in files.iter().filter(|f| Path::new(f).exists()) {
            let (r, _) = jsonl(&[f]);
            let (t, _) = text(&[f]);
            for c in of_type(&r, "certificate") {
                let sha = c["sha256"].as_str().unwrap();
                let line = t
                    .lines()
                    .find(|l| l.contains(&format!("sha256={sha}")))
                    .unwrap_or_else(|| panic!("no text line for {sha}"));
                for (field, next) in [("subject", " issuer="), ("issuer", " serial=")] {
                    let start = line.find(&format!(" {field}=/")).unwrap() + field.len() + 2;
                    let end = start + line[start..].find(next).unwrap();
                    // Values may hold '/' (a URL in an OU): compare whole strings.
                    let oneline = &line[start..end];
                    let mut json = rfc4514_parts(c[field].as_str().unwrap());
                    json.reverse();
                    assert_eq!(oneline, format!("/{}", json.join("/")), "{field} of {sha}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 8, "{checked} names compared");
    }

    #[test]
    fn text_gives_the_year_once_per_file_and_on_each_session() {
        let early = shared_captures().join("zeek/tls-early-alert.pcap");
        let mut files = vec![cap("sftunnel-ca-expired.pcap")];
        if early.exists() {
            files.push(early.to_str().unwrap().to_string());
        }
        let args: Vec<&str> = files.iter().map(String::as_str).collect();
        let (t, _) = text(&args);
        let (r, _) = jsonl(&args);
        for f in &files {
            let header: Vec<&str> = t
                .lines()
                .filter(|l| l.starts_with(&format!("-- {f}: stamps are UTC, year ")))
                .collect();
            assert_eq!(header.len(), 1, "{t}");
            let first_ts = of_type(&r, "certificate")
                .into_iter()
                .chain(of_type(&r, "alert"))
                .filter(|x| x["file"] == f.as_str())
                .map(|x| x["ts"].as_str().unwrap().to_string())
                .min()
                .unwrap();
            let year = &first_ts[..4];
            assert!(
                header[0].contains(&format!("year {year} (first line at {first_ts})")),
                "{}",
                header[0]
            );
            // Before any stamped line of that file.
            let at = t.find(header[0]).unwrap();
            let file_block = &t[at..];
            let first_stamped = file_block.lines().nth(1).unwrap();
            assert!(first_stamped.contains("SF-IMS[analyze]"), "{first_stamped}");
        }
        for s in of_type(&r, "session") {
            let first = &s["first_ts"].as_str().unwrap()[..19];
            assert!(
                t.lines()
                    .any(|l| l.starts_with("session ") && l.contains(&format!("{first}Z"))),
                "no session line with {first}: {t}"
            );
        }
    }

    #[test]
    fn an_undecodable_certificate_is_described_not_given_code_minus_1() {
        let Some(f) = new_capture!("suricata-verify/bug-1450-04/tls_DER-incomplete-header.pcap")
        else {
            return;
        };
        let (t, _) = text(&[&f]);
        assert!(!t.contains("err -1"), "{t}");
        assert!(
            t.contains("[ERROR] certificate could not be decoded:"),
            "{t}"
        );
        let (r, _) = jsonl(&[&f]);
        let s = of_type(&r, "session")[0];
        assert_eq!(s["server_chain_verdict"]["code"], -1);
        assert_eq!(s["remedy"]["action"], "renew");
    }

    #[test]
    fn port_filter_that_leaves_nothing_says_so() {
        let (t, code) = text(&["--port", "443", &cap("sftunnel-valid.pcap")]);
        assert_eq!(code, 0);
        assert!(
            t.contains(
                "0 TCP connections (0 not TLS; 21 TCP segments on other ports left out by --port)"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "note: every TCP segment of this capture (21) is on other ports than --port 443"
            ),
            "{t}"
        );
        let (r, _) = jsonl(&["--port", "443", &cap("sftunnel-valid.pcap")]);
        let c = of_type(&r, "capture")[0];
        assert_eq!(c["filtered_segments"], 21);
        assert_eq!(c["ports"], serde_json::json!([443]));
        // The right port: nothing left out, nothing said.
        let (t, _) = text(&["--port", "8305", &cap("sftunnel-valid.pcap")]);
        assert!(!t.contains("left out") && !t.contains("note: every"), "{t}");
    }
}

mod remedies {
    use super::*;

    /// The session's remedy: (action, text).
    fn remedy(args: &[&str]) -> (String, String) {
        let (r, _) = jsonl(args);
        let s = of_type(&r, "session");
        assert_eq!(s.len(), 1, "{args:?}");
        let m = &s[0]["remedy"];
        (
            m["action"]
                .as_str()
                .unwrap_or_else(|| panic!("{args:?}: {}", s[0]))
                .to_string(),
            m["text"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn each_sftunnel_failure_gets_the_step_that_fixes_it() {
        let (action, text) = remedy(&[&cap("sftunnel-ca-expired.pcap")]);
        assert_eq!(action, "renew");
        assert!(
            text.starts_with("the InternalCA expired at 2024-06-01T00:00:00Z: renew it on the FMC"),
            "{text}"
        );
        assert!(
            text.contains("generate_certs.pl") && text.contains("`sfdiag pki renew`"),
            "{text}"
        );
        assert!(
            text.contains("devices that were down") && text.contains("`sfdiag pki copy`"),
            "{text}"
        );

        let (action, text) = remedy(&[&cap("sftunnel-ftd-expired.pcap")]);
        assert_eq!(action, "renew");
        assert!(
            text.starts_with("the device c8d5d5c6-87c9-11ef-a993-b9831565bc4e's sftunnel certificate expired at 2025-01-01T00:00:00Z"),
            "{text}"
        );

        let (action, text) = remedy(&[&cap("sftunnel-fmc-not-yet-valid.pcap")]);
        assert_eq!(action, "clock");
        assert!(
            text.contains("valid only from 2030-01-01T00:00:00Z"),
            "{text}"
        );

        let (action, text) = remedy(&[&cap("sftunnel-no-client-cert.pcap")]);
        assert_eq!(action, "copy");
        assert!(
            text.contains("sftunnel-cert.pem/sftunnel-key.pem"),
            "{text}"
        );

        let (action, text) = remedy(&[
            "--ca",
            &cap("regenerated.ca.pem"),
            &cap("sftunnel-ca-regenerated.pcap"),
        ]);
        assert_eq!(action, "copy");
        assert!(text.contains("FMC's current InternalCA"), "{text}");

        let (action, _) = remedy(&[
            "--ca",
            &cap("ca-expired.ca.pem"),
            &cap("sftunnel-valid.pcap"),
        ]);
        assert_eq!(action, "rerun");
    }

    #[test]
    fn every_problem_session_of_every_capture_has_a_remedy_and_no_other_does() {
        let mut files: Vec<PathBuf> = fs::read_dir(project_captures())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
            .collect();
        for dir in [shared_captures(), shared_dir().join("captures-new")] {
            if !dir.exists() {
                eprintln!("skipped: {} not found", dir.display());
                continue;
            }
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                for e in fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.to_string_lossy().ends_with(".truth.json") {
                        let s = p.to_string_lossy();
                        files.push(PathBuf::from(s.trim_end_matches(".truth.json")));
                    }
                }
            }
        }
        files.sort();
        let args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
        let (r, _) = jsonl(&args);
        let mut actions = BTreeSet::new();
        let mut problems = 0;
        for s in of_type(&r, "session") {
            let failed_chain = ["server_chain_verdict", "client_chain_verdict"]
                .iter()
                .any(|k| s[k]["code"].as_i64().is_some_and(|c| c != 0));
            let problem = s["outcome"] == "failed" || failed_chain;
            if problem {
                problems += 1;
                let text = s["remedy"]["text"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{s}"));
                assert!(text.len() > 40, "{s}");
                actions.insert(s["remedy"]["action"].as_str().unwrap().to_string());
            } else {
                assert_eq!(s["remedy"], Value::Null, "{s}");
            }
        }
        assert!(problems >= 8, "{problems} problem sessions");
        assert!(actions.len() >= 4, "{actions:?}");
    }
}

mod parallel {
    use super::*;

    /// The project's captures, in a fixed order.
    fn captures() -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(project_captures())
            .unwrap()
            .map(|e| e.unwrap().path().to_str().unwrap().to_string())
            .filter(|p| p.ends_with(".pcap") || p.ends_with(".pcapng"))
            .collect();
        v.sort();
        v
    }

    fn stdout(args: &[&str]) -> Vec<u8> {
        let out = run(args);
        assert!(out.status.code().is_some());
        out.stdout
    }

    #[test]
    fn files_on_every_core_report_in_the_order_given_the_same_bytes_as_one_by_one() {
        let mut files = captures();
        files.reverse(); // not the order of the folder
        files.push(files[0].clone()); // a file twice
        for format in ["text", "jsonl"] {
            let mut one_by_one = Vec::new();
            for f in &files {
                one_by_one.extend(stdout(&["--format", format, f]));
            }
            for jobs in ["1", "2", "3"] {
                let mut args = vec!["--format", format, "--jobs", jobs];
                args.extend(files.iter().map(String::as_str));
                assert!(
                    stdout(&args) == one_by_one,
                    "--format {format} --jobs {jobs} differs from one by one"
                );
            }
        }
        // One JSON array: the items of every file's own array, in order.
        let mut items = Vec::new();
        for f in &files {
            let v: Value = serde_json::from_slice(&stdout(&["--format", "json", f])).unwrap();
            items.extend(v.as_array().unwrap().clone());
        }
        let mut args = vec!["--format", "json", "--jobs", "2"];
        args.extend(files.iter().map(String::as_str));
        let all: Value = serde_json::from_slice(&stdout(&args)).unwrap();
        assert_eq!(all.as_array().unwrap(), &items);
    }

    #[test]
    fn outputs_larger_than_their_memory_share_are_spooled_and_come_out_whole() {
        // A recorded handshake repeated 400 times after its file header (one device
        // reconnecting): ~2.8 MB of JSON lines per file, more than a file's share of memory
        // when 12 files run at once (16 MB / 24 files ahead).
        let bytes = fs::read(cap("sftunnel-valid.pcap")).unwrap();
        let (header, records) = bytes.split_at(24);
        let mut big = header.to_vec();
        for _ in 0..400 {
            big.extend_from_slice(records);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reconnecting.pcap");
        fs::write(&path, &big).unwrap();
        let p = path.to_str().unwrap();
        let one = stdout(&["--format", "jsonl", p]);
        assert!(one.len() > 1 << 20, "{} bytes", one.len());
        let mut args = vec!["--format", "jsonl", "--jobs", "12"];
        args.extend(std::iter::repeat_n(p, 12));
        let all = stdout(&args);
        assert_eq!(all.len(), 12 * one.len());
        for part in all.chunks(one.len()) {
            assert!(part == one.as_slice(), "a spooled part differs");
        }
    }
}
