//! `sfdiag analyze` end to end on the project's own recordings (`captures/`, made by stock
//! openssl peers, see captures/README.md) and a few shared ones: verdicts per certificate and
//! per chain, alerts, session outcomes and reasons, flags, formats, exit codes, bad input.
//! Golden reports (`tests/golden/`) pin the whole text and JSON output for a few captures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::common::{corpus, project_captures, sfdiag};

fn cap(name: &str) -> PathBuf {
    project_captures().join(name)
}

fn run(args: &[&str]) -> Output {
    sfdiag()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("analyze")
        .args(args)
        .output()
        .expect("sfdiag runs")
}

/// `--format jsonl` records of one run, and its exit code.
fn jsonl(args: &[&str]) -> (Vec<Value>, i32) {
    let mut a = vec!["--format", "jsonl"];
    a.extend_from_slice(args);
    let out = run(&a);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let records = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (records, out.status.code().unwrap())
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

fn one<'a>(records: &'a [Value], t: &str) -> &'a Value {
    let v = of_type(records, t);
    assert_eq!(v.len(), 1, "one {t} record expected: {records:#?}");
    v[0]
}

fn notes_of<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    of_type(records, "note")
        .into_iter()
        .filter(|n| n["kind"] == kind)
        .collect()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn valid_sftunnel_handshake_exits_0_with_both_chains_ok_and_identities() {
    let ca = cap("valid.ca.pem");
    let (r, code) = jsonl(&["--ca", path(&ca), path(&cap("sftunnel-valid.pcap"))]);
    assert_eq!(code, 0);
    let s = one(&r, "session");
    assert_eq!(s["outcome"], "established");
    assert_eq!(s["version"], "TLSv1.2");
    assert_eq!(s["client_cert"], true);
    assert_eq!(s["server"].as_str().unwrap(), "127.0.0.1:8305");
    assert_eq!(s["server_chain_verdict"]["code"], 0);
    assert_eq!(s["client_chain_verdict"]["code"], 0);
    assert_eq!(s["server_identity"]["role"], "fmc");
    assert_eq!(
        s["server_identity"]["uuid"],
        "cdb123c8-4347-11ef-aca1-f3aa241412a1"
    );
    assert_eq!(s["client_identity"]["role"], "ftd");
    assert_eq!(
        s["client_identity"]["uuid"],
        "c8d5d5c6-87c9-11ef-a993-b9831565bc4e"
    );
    let certs = of_type(&r, "certificate");
    assert_eq!(certs.len(), 4);
    for c in &certs {
        assert_eq!(c["verdict"]["code"], 0, "{c}");
        let sha = c["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64
                && sha
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
    let ftd = certs.iter().find(|c| c["role"] == "client").unwrap();
    assert_eq!(ftd["serial"], "f");
    assert_eq!(
        ftd["subject"],
        "OU=Intrusion Management System,O=Cisco Systems\\, Inc,title=c8d5d5c6-87c9-11ef-a993-b9831565bc4e,generationQualifier=sftunnel_c8d5d5c6-87c9-11ef-a993-b9831565bc4e"
    );
}

#[test]
fn expired_internal_ca_is_err_10_on_the_ca_record_while_the_leaf_stays_0() {
    let ca = cap("ca-expired.ca.pem");
    for args in [
        vec![path(&cap("sftunnel-ca-expired.pcap"))],
        vec!["--ca", path(&ca), path(&cap("sftunnel-ca-expired.pcap"))],
    ] {
        let (r, code) = jsonl(&args);
        assert_eq!(code, 1, "{args:?}");
        let certs = of_type(&r, "certificate");
        let leaf = certs.iter().find(|c| c["chain_index"] == 0).unwrap();
        let internal_ca = certs.iter().find(|c| c["chain_index"] == 1).unwrap();
        assert_eq!(leaf["verdict"]["code"], 0);
        assert_eq!(internal_ca["verdict"]["code"], 10);
        assert_eq!(internal_ca["verdict"]["depth"], 1);
        assert_eq!(internal_ca["verdict"]["text"], "certificate has expired");
        assert_eq!(internal_ca["version"], 1);
        assert_eq!(internal_ca["serial"], "0");
        assert_eq!(internal_ca["not_after"], "2024-06-01T00:00:00Z");
        // judged at the packet's own time
        assert_eq!(internal_ca["verdict"]["at"], internal_ca["ts"]);
        let alert = one(&r, "alert");
        assert_eq!(alert["code"], 45);
        assert_eq!(alert["description"], "certificate_expired");
        assert_eq!(alert["level"], "fatal");
        let s = one(&r, "session");
        assert_eq!(s["outcome"], "failed");
        assert!(
            s["reason"]
                .as_str()
                .unwrap()
                .starts_with("client sent fatal certificate_expired after server Certificate"),
            "{s}"
        );
        assert_eq!(s["server_chain_verdict"]["code"], 10);
        assert_eq!(s["server_chain_verdict"]["depth"], 1);
    }
    let text = String::from_utf8(run(&[path(&cap("sftunnel-ca-expired.pcap"))]).stdout).unwrap();
    assert!(text.contains(
        "sftunnel:sf_ssl [ERROR] err 10:certificate has expired (depth 1, issuer=/title=InternalCA/OU=Intrusion Management System/CN=cdb123c8-4347-11ef-aca1-f3aa241412a1/O=Cisco Systems, Inc)"
    ), "{text}");
}

#[test]
fn expired_device_cert_is_rejected_by_the_fmc_after_the_client_certificate() {
    let (r, code) = jsonl(&[path(&cap("sftunnel-ftd-expired.pcap"))]);
    assert_eq!(code, 1);
    let ftd = of_type(&r, "certificate")
        .into_iter()
        .find(|c| c["role"] == "client")
        .unwrap();
    assert_eq!(ftd["verdict"]["code"], 10);
    assert_eq!(ftd["verdict"]["depth"], 0);
    let alert = one(&r, "alert");
    assert_eq!(
        (alert["code"].as_u64(), alert["role"].as_str()),
        (Some(45), Some("server"))
    );
    let s = one(&r, "session");
    assert_eq!(s["failed_by"], "server");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .starts_with("server sent fatal certificate_expired after client Certificate")
    );
    assert_eq!(s["client_chain_verdict"]["code"], 10);
    assert_eq!(s["server_chain_verdict"]["code"], 0);
}

#[test]
fn a_regenerated_ca_gives_signature_failure_only_against_the_new_ca() {
    let capture = cap("sftunnel-ca-regenerated.pcap");
    let (r, _) = jsonl(&[path(&capture)]);
    assert!(
        of_type(&r, "certificate")
            .iter()
            .all(|c| c["verdict"]["code"] == 0)
    );
    let ca = cap("regenerated.ca.pem");
    let (r, code) = jsonl(&["--ca", path(&ca), path(&capture)]);
    assert_eq!(code, 1);
    let leaf = of_type(&r, "certificate")
        .into_iter()
        .find(|c| c["chain_index"] == 0)
        .unwrap();
    assert_eq!(leaf["verdict"]["code"], 7);
    assert_eq!(leaf["verdict"]["text"], "certificate signature failure");
    assert_eq!(one(&r, "alert")["description"], "decrypt_error");
    assert_eq!(one(&r, "session")["server_chain_verdict"]["code"], 7);
}

#[test]
fn a_ca_that_is_not_the_internal_ca_leaves_the_sent_one_untrusted() {
    if !crate::common::have_openssl() {
        eprintln!("skipped: no openssl command");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        ])
        .args(["-subj", "/CN=Some Other CA", "-keyout"])
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok);
    // The FMC sends its leaf and the InternalCA; with another CA as the only anchor, the path
    // ends in the self-signed InternalCA that is not trusted: OpenSSL's 19 at depth 1.
    let (r, code) = jsonl(&["--ca", path(&other), path(&cap("sftunnel-valid.pcap"))]);
    assert_eq!(code, 1);
    let v = &one(&r, "session")["server_chain_verdict"];
    assert_eq!(v["code"], 19, "{v}");
    assert_eq!(v["depth"], 1);
    assert_eq!(v["text"], "self-signed certificate in certificate chain");
}

#[test]
fn not_yet_valid_fmc_cert_is_err_9_and_openssl_answers_bad_certificate() {
    let (r, code) = jsonl(&[path(&cap("sftunnel-fmc-not-yet-valid.pcap"))]);
    assert_eq!(code, 1);
    let leaf = of_type(&r, "certificate")
        .into_iter()
        .find(|c| c["role"] == "server" && c["chain_index"] == 0)
        .unwrap();
    assert_eq!(leaf["verdict"]["code"], 9);
    assert_eq!(one(&r, "alert")["code"], 42);
}

#[test]
fn no_client_certificate_is_named_in_the_reason() {
    let (r, code) = jsonl(&[path(&cap("sftunnel-no-client-cert.pcap"))]);
    assert_eq!(code, 1);
    let s = one(&r, "session");
    assert_eq!(s["client_cert"], false);
    assert_eq!(s["certificate_requested"], true);
    assert_eq!(
        s["reason"],
        "server sent fatal handshake_failure after an empty client Certificate"
    );
    assert!(s["client_chain_verdict"].is_null());
}

#[test]
fn at_judges_as_if_the_clock_showed_that_time() {
    let capture = cap("sftunnel-valid.pcap");
    let (r, code) = jsonl(&["--at", "2035-01-01T00:00:00Z", path(&capture)]);
    assert_eq!(code, 1);
    for c in of_type(&r, "certificate") {
        assert_eq!(c["verdict"]["code"], 10, "{c}");
        assert_eq!(c["verdict"]["at"], "2035-01-01T00:00:00Z");
    }
    let (r, _) = jsonl(&["--at", "2023-06-01T00:00:00Z", path(&capture)]);
    assert!(
        of_type(&r, "certificate")
            .iter()
            .all(|c| c["verdict"]["code"] == 9)
    );
    assert_eq!(
        run(&["--at", "yesterday", path(&capture)]).status.code(),
        Some(2)
    );
    // A negative offset is a time, not a flag (CLI.md: `--at +90d/-3h`).
    let (r, code) = jsonl(&["--at", "-3h", path(&capture)]);
    let certs = of_type(&r, "certificate");
    assert!(!certs.is_empty());
    let at = certs[0]["verdict"]["at"].as_str().unwrap().to_owned();
    let at =
        time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    let ago = time::OffsetDateTime::now_utc() - at;
    assert!(
        ago > time::Duration::minutes(170) && ago < time::Duration::minutes(190),
        "{ago}"
    );
    assert_eq!(code, 0, "the lab certificates are valid three hours ago");
}

#[test]
fn port_restricts_which_connections_are_looked_at() {
    let capture = cap("sftunnel-valid.pcap");
    let (r, code) = jsonl(&["--port", "443", path(&capture)]);
    assert_eq!(code, 0);
    assert!(of_type(&r, "session").is_empty());
    let (r, _) = jsonl(&["--port", "443", "--port", "8305", path(&capture)]);
    assert_eq!(of_type(&r, "session").len(), 1);
}

#[test]
fn link_types_and_file_formats_give_the_same_certificates() {
    let shas = |name: &str| {
        let (r, code) = jsonl(&[path(&cap(name))]);
        assert_eq!(code, 0, "{name}");
        assert_eq!(one(&r, "session")["outcome"], "established", "{name}");
        let mut v: Vec<String> = of_type(&r, "certificate")
            .iter()
            .map(|c| format!("{} {} {}", c["role"], c["chain_index"], c["sha256"]))
            .collect();
        v.sort();
        v
    };
    let reference = shas("sftunnel-valid.pcap");
    assert_eq!(reference.len(), 4);
    for name in [
        "sftunnel-valid.pcapng",
        "sftunnel-valid-ipv6.pcap",
        "sftunnel-valid-any-sll2.pcap",
    ] {
        assert_eq!(shas(name), reference, "{name}");
    }
    let (r, _) = jsonl(&[path(&cap("sftunnel-valid-ipv6.pcap"))]);
    assert_eq!(one(&r, "session")["server"], "[::1]:8305");
}

#[test]
fn a_truncated_capture_reports_what_came_before_the_cut_and_names_the_frame() {
    let bytes = std::fs::read(cap("sftunnel-valid.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..5000]).unwrap();
    let (r, code) = jsonl(&[path(&cut)]);
    assert_eq!(code, 0);
    assert_eq!(
        of_type(&r, "certificate").len(),
        2,
        "the server chain came before the cut"
    );
    let note = one(&r, "note");
    assert_eq!(note["frame"], 9);
    assert_eq!(note["kind"], "read_error");
    assert!(
        note["text"]
            .as_str()
            .unwrap()
            .contains("truncated after frame 9")
    );
    assert_eq!(one(&r, "session")["outcome"], "incomplete");
    assert!(one(&r, "capture")["read_error"].is_string());
}

/// `capture` as `editcap -s snaplen` (or `tcpdump -s snaplen`) writes it: every record keeps
/// at most `snaplen` bytes and its length on the wire; the file header says the snap length.
fn snap_cut(capture: &str, snaplen: u32, dir: &Path) -> PathBuf {
    let bytes = std::fs::read(cap(capture)).unwrap();
    assert_eq!(
        &bytes[..4],
        &0xa1b2_c3d4_u32.to_le_bytes(),
        "a little-endian pcap"
    );
    let mut out = bytes[..24].to_vec();
    out[16..20].copy_from_slice(&snaplen.to_le_bytes());
    let mut at = 24;
    while at < bytes.len() {
        let field = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
        let incl = usize::try_from(field(8)).unwrap();
        let keep = incl.min(usize::try_from(snaplen).unwrap());
        out.extend_from_slice(&bytes[at..at + 8]);
        out.extend_from_slice(&u32::try_from(keep).unwrap().to_le_bytes());
        out.extend_from_slice(&bytes[at + 12..at + 16]);
        out.extend_from_slice(&bytes[at + 16..at + 16 + keep]);
        at += 16 + incl;
    }
    let file = dir.join(format!("{capture}.s{snaplen}.pcap"));
    std::fs::write(&file, out).unwrap();
    file
}

#[test]
fn a_snap_length_cut_handshake_is_incomplete_not_failed_and_the_snap_length_is_named() {
    // The valid handshake, its 1448-byte segments cut at 1200 bytes: the certificates and
    // both Finished messages fall into the holes. It succeeded; the capture cannot say so.
    let dir = tempfile::tempdir().unwrap();
    let cut = snap_cut("sftunnel-valid.pcap", 1200, dir.path());
    let ca = cap("valid.ca.pem");
    let (r, code) = jsonl(&["--ca", path(&ca), path(&cut)]);
    assert_eq!(code, 0, "nothing captured failed: {r:#?}");
    let s = one(&r, "session");
    assert_eq!(s["outcome"], "incomplete");
    assert_eq!(
        s["reason"],
        "handshake partly not captured (314 bytes from the client cut by the snap length of \
         1200 bytes, 723 bytes from the server cut by the snap length of 1200 bytes); the last \
         message read is ServerHello; then the client closed the connection (FIN)"
    );
    assert_eq!(s["server_certificates"], "partly_captured");
    assert_eq!(s["client_certificates"], "partly_captured");
    assert_eq!(s["failed_by"], Value::Null);
    assert_eq!(s["remedy"], Value::Null);
    let gaps = notes_of(&r, "tcp_gap");
    assert_eq!(gaps.len(), 4, "{gaps:#?}");
    assert!(
        gaps.iter().all(|g| g["text"]
            .as_str()
            .unwrap()
            .contains("(frames cut by the capture's snap length of 1200 bytes)")),
        "{gaps:#?}"
    );
    let snap = notes_of(&r, "snap_length");
    assert_eq!(snap.len(), 1, "{r:#?}");
    assert_eq!(
        snap[0]["text"],
        "4 TCP segments were cut by the capture's snap length of 1200 bytes (the bytes they \
         lost are holes in their streams); capture with `-s 0` (tcpdump, dumpcap: whole \
         packets) to see the handshakes whole"
    );
    let out = run(&["--ca", path(&ca), path(&cut)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("client cert: unknown (bytes of the handshake not captured)"),
        "{text}"
    );
    assert!(!text.contains("not asked for"), "{text}");
    assert!(!text.contains("SSL handshake failed"), "{text}");
}

#[test]
fn with_the_hellos_cut_an_alert_is_placed_by_tcp_and_its_remedy_is_about_the_alert() {
    // The FMC (server) rejects the expired device certificate with certificate_expired;
    // `-s 120` leaves 54 bytes of each hello, so the TLS roles come from the SYN.
    let dir = tempfile::tempdir().unwrap();
    let cut = snap_cut("sftunnel-ftd-expired.pcap", 120, dir.path());
    let (r, code) = jsonl(&[path(&cut)]);
    assert_eq!(code, 1, "the fatal alert is a problem");
    let a = one(&r, "alert");
    assert_eq!(a["description"], "certificate_expired");
    assert_eq!(a["src"], "127.0.0.1:8305");
    assert_eq!(a["role"], "server");
    let s = one(&r, "session");
    assert_eq!(s["outcome"], "failed");
    assert_eq!(s["reason"], "server sent fatal certificate_expired");
    assert_eq!(s["failed_by"], "server");
    assert_eq!(s["server"], "127.0.0.1:8305");
    let remedy = s["remedy"]["text"].as_str().unwrap();
    assert!(
        remedy.starts_with("the server ended the handshake with certificate_expired"),
        "{remedy}"
    );
    assert!(!remedy.contains("without an alert"), "{remedy}");
}

#[test]
fn unreadable_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    for p in [junk, dir.path().join("missing.pcap")] {
        let out = run(&[path(&p)]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(path(&p)), "{err}");
    }
}

/// How a writer into `sfdiag analyze -` ended.
#[derive(Debug, PartialEq)]
enum Fed {
    /// The analyzer closed its stdin (it exited) after this many copies.
    Epipe(usize),
    /// The writer gave up (count or time) and closed the stream itself.
    GaveUp,
}

/// `tcpdump -w - | sfdiag analyze - | head -1`: stdin never ends (a recorded handshake
/// written again and again, bounded here in count and time), stdout is closed after its
/// first line. The analyzer must notice and exit on its own, which the writer sees as EPIPE
/// long before it would give up. The text report writes nothing after the first
/// certificates (the same session again is only counted), so the run must stop on a closed
/// stdout even when it has nothing to write; JSON lines meet the closed pipe on a write.
#[test]
fn a_closed_stdout_ends_the_analysis_of_an_endless_stdin() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    const MAX_COPIES: usize = 200_000;
    const GIVE_UP: Duration = Duration::from_secs(60);
    let bytes = std::fs::read(cap("sftunnel-valid.pcap")).unwrap();
    for format in ["text", "jsonl"] {
        let mut child = sfdiag()
            .args(["analyze", "--format", format, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let (header, records) = {
            let (h, r) = bytes.split_at(24);
            (h.to_vec(), r.to_vec())
        };
        let writer = std::thread::spawn(move || {
            let started = Instant::now();
            stdin.write_all(&header).unwrap();
            for n in 0..MAX_COPIES {
                if started.elapsed() > GIVE_UP {
                    return Fed::GaveUp;
                }
                match stdin.write_all(&records) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Fed::Epipe(n),
                    Err(e) => panic!("writing the capture: {e}"),
                }
            }
            Fed::GaveUp
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // Up to the client's certificate: after it the text report has nothing more to say
        // about the same session repeated, so only asking the pipe can end that run.
        // Bounded: if the line never comes, the writer gives up, stdin ends and so does this.
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("{format}: the report ended early: {seen:?}");
            }
            let client_cert = line.contains("] sftunnel:sf_ssl [INFO] client ")
                || line.contains("\"type\":\"certificate\"")
                    && line.contains("\"role\":\"client\"");
            seen.push(line);
            if client_cert {
                break;
            }
        }
        drop(stdout);
        let deadline = Instant::now() + GIVE_UP + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("{format}: sfdiag still running with its stdout closed");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let fed = writer.join().unwrap();
        assert!(
            matches!(fed, Fed::Epipe(_)),
            "{format}: the analyzer kept reading: {fed:?}"
        );
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        // A reader that left is not an error: nothing on stderr, the exit code of what was
        // found so far (nothing wrong in this capture).
        assert_eq!(status.code(), Some(0), "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
    }
}

#[test]
fn a_write_error_other_than_a_closed_pipe_is_reported() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full on this system");
        return;
    };
    let out = sfdiag()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["analyze", path(&cap("sftunnel-valid.pcap"))])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("writing the report"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// `-v` tells what was read per file, `-vv` the decisions per connection; both on stderr,
/// and the report on stdout stays exactly what it is without them.
#[test]
fn verbose_tells_the_tools_story_on_stderr_and_leaves_the_report_alone() {
    let capture = cap("sftunnel-ftd-expired.pcap");
    let quiet = run(&[path(&capture)]);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let frames = jsonl(&[path(&capture)]).0.last().unwrap()["frames"].clone();
    for (flag, want) in [
        (
            "-v",
            vec![
                "capture analyzed",
                &format!("frames={frames}"),
                "tls_sessions=1",
                "ms=",
            ],
        ),
        (
            "-vv",
            vec![
                "capture analyzed",
                "chain judged",
                "session reported",
                "outcome=\"failed\"",
            ],
        ),
    ] {
        let out = sfdiag()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([flag, "analyze", path(&capture)])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        for w in want {
            assert!(stderr.contains(w), "{flag}: {w:?} missing from {stderr}");
        }
        assert_eq!(out.stdout, quiet.stdout, "{flag}: the report is the same");
        assert_eq!(out.status.code(), quiet.status.code());
    }
}

#[test]
fn gzip_on_stdin_is_read() {
    let raw = std::fs::read(cap("sftunnel-ftd-expired.pcap")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let mut child = sfdiag()
        .args(["analyze", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"file\":\"-\""));
    assert_eq!(text.matches("\"type\":\"certificate\"").count(), 4);
}

#[test]
fn json_is_one_array_of_the_jsonl_records() {
    let capture = cap("sftunnel-ftd-expired.pcap");
    let (lines, _) = jsonl(&[path(&capture)]);
    let out = run(&["--format", "json", path(&capture)]);
    let array: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(array.as_array().unwrap(), &lines);
}

#[test]
fn several_files_are_reported_in_turn() {
    let (r, code) = jsonl(&[
        path(&cap("sftunnel-valid.pcap")),
        path(&cap("sftunnel-ca-expired.pcap")),
    ]);
    assert_eq!(code, 1);
    let files: Vec<_> = of_type(&r, "capture")
        .iter()
        .map(|c| c["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 2);
    assert!(files[1].ends_with("sftunnel-ca-expired.pcap"));
}

#[test]
fn tls13_sessions_say_their_certificates_are_encrypted() {
    let Some(shared) = corpus!("captures") else {
        return;
    };
    let hrr = shared.join("zeek/hrr.pcap");
    let (r, code) = jsonl(&[path(&hrr)]);
    assert_eq!(code, 0);
    assert!(of_type(&r, "certificate").is_empty());
    let s = one(&r, "session");
    assert_eq!(s["outcome"], "encrypted_certificates");
    assert_eq!(s["version"], "TLSv1.3");
}

/// Golden reports: the whole output for a few captures. Refresh with
/// `INSTA_UPDATE=always cargo test --test it analyze::golden` (tests/golden/README.md).
mod golden {
    use super::*;

    fn check(name: &str, args: &[&str]) {
        let out = run(args);
        let mut text = String::from_utf8(out.stdout).unwrap();
        text.push_str(&format!("[exit {}]\n", out.status.code().unwrap()));
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../golden");
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(format!("sfdiag analyze {}", args.join(" ")));
        settings.bind(|| insta::assert_snapshot!(name, text));
    }

    #[test]
    fn ca_expired_text() {
        check("ca-expired.txt", &["captures/sftunnel-ca-expired.pcap"]);
    }

    #[test]
    fn ca_expired_with_anchor_jsonl() {
        check(
            "ca-expired.jsonl",
            &[
                "--format",
                "jsonl",
                "--ca",
                "captures/ca-expired.ca.pem",
                "captures/sftunnel-ca-expired.pcap",
            ],
        );
    }

    #[test]
    fn ftd_expired_text() {
        check("ftd-expired.txt", &["captures/sftunnel-ftd-expired.pcap"]);
    }

    #[test]
    fn ca_regenerated_with_anchor_text() {
        check(
            "ca-regenerated.txt",
            &[
                "--ca",
                "captures/regenerated.ca.pem",
                "captures/sftunnel-ca-regenerated.pcap",
            ],
        );
    }

    #[test]
    fn valid_sll2_text() {
        check(
            "valid-any-sll2.txt",
            &[
                "--ca",
                "captures/valid.ca.pem",
                "captures/sftunnel-valid-any-sll2.pcap",
            ],
        );
    }

    #[test]
    fn ftp_ccc_and_mid_session_text() {
        check(
            "ccc-and-mid-session.txt",
            &[
                "--ca",
                "captures/ccc.ca.pem",
                "captures/ftp-ccc.pcap",
                "captures/tls-mid-session.pcap",
            ],
        );
    }

    #[test]
    fn wrong_ca_text() {
        check(
            "wrong-ca.txt",
            &[
                "--ca",
                "captures/ca-expired.ca.pem",
                "captures/sftunnel-valid.pcap",
            ],
        );
    }

    #[test]
    fn shared_tls_early_alert_jsonl() {
        if corpus!("captures").is_none() {
            return;
        }
        check(
            "zeek-tls-early-alert.jsonl",
            &[
                "--format",
                "jsonl",
                "../shared/captures/zeek/tls-early-alert.pcap",
            ],
        );
    }
}

#[test]
fn mangled_captures_give_findings_or_notes_never_a_crash() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    let mut files = vec![
        cap("sftunnel-valid.pcap"),
        cap("sftunnel-ftd-expired.pcap"),
        cap("sftunnel-valid.pcapng"),
        cap("sftunnel-valid-any-sll2.pcap"),
    ];
    // Two third-party captures add shapes ours lack (STARTTLS, a ClientHello split over
    // 300-byte segments); without the corpus the project's own four are still mangled.
    if let Some(shared) = corpus!(
        "captures",
        "the 2 third-party captures; the project's own 4 ran"
    ) {
        files.push(shared.join("zeek/xmpp-dialback-starttls.pcap"));
        files.push(shared.join("suricata-verify/tls-client-hello-frag-01/dump_mtu300.pcap"));
    }
    for file in &files {
        let original = std::fs::read(file).unwrap();
        for _ in 0..30 {
            let mut b = original.clone();
            // Leave the file header alone so the capture is read at all; mangle the rest.
            for _ in 0..1 + rand(40) {
                let i = 24 + rand(b.len() - 24);
                b[i] = rand(256) as u8;
            }
            b.truncate(b.len() - rand(b.len() / 3));
            let Ok(mut reader) = sfdiag::capture::Reader::new(std::io::Cursor::new(b)) else {
                continue;
            };
            let mut n = 0;
            let summary = sfdiag::analysis::analyze_reader(
                &mut reader,
                "mangled",
                &sfdiag::analysis::Options::default(),
                &mut |_| n += 1,
            )
            .expect("a counting sink never fails");
            assert!(summary.net.frames > 0 || summary.read_error.is_some());
        }
    }
}

#[test]
fn an_unreadable_file_among_several_is_reported_and_the_others_still_are() {
    let good = cap("sftunnel-ca-expired.pcap");
    let missing = "/nonexistent/missing.pcap";
    let (r, code) = jsonl(&[path(&good), missing]);
    // grep's convention: an input that could not be read makes it 2, findings or not.
    assert_eq!(code, 2);
    assert!(
        !of_type(&r, "certificate").is_empty(),
        "the good file is analyzed"
    );
    let captures = of_type(&r, "capture");
    assert_eq!(captures.len(), 2, "one record per input: {captures:?}");
    assert!(captures[0]["read_error"].is_null());
    assert_eq!(captures[1]["file"], missing);
    assert_eq!(captures[1]["frames"], 0);
    assert!(
        captures[1]["read_error"]
            .as_str()
            .unwrap()
            .contains("cannot open"),
        "{}",
        captures[1]
    );
    let text = run(&[missing]);
    assert_eq!(text.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("capture could not be read: cannot open"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}
