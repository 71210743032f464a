//! Hostile input: damaged, cut, crafted and oversized captures and certificates, through the
//! library and through the binary. Each must end in a clear error or partial results, with
//! the exit code CLI.md gives (`analyze`: 2 unreadable, else 0/1 on what was read; `check`: 3
//! UNKNOWN), without a panic, a hang (every run is bounded by a thread or child timeout) or
//! unbounded memory (the tracker's and TLS session's live state is measured; the binary runs
//! under `ulimit -v`). Inputs are made here: a tiny pcap writer, real captures from
//! `captures/` rewritten (cut, flipped, re-segmented), and TLS records by hand.
//!
//! The fuzz targets' crash inputs live in `fuzz/regressions/<target>/` and are replayed here
//! through the very harness the fuzzer runs (`fuzz/src/lib.rs`, included below).

use std::io::{Cursor, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sfdiag::analysis::{self, Finding, Options, Summary};
use sfdiag::capture::{self, CaptureError, Linktype, Timestamp};
use sfdiag::net::{self, EventKind, Mark, TcpFlags, TcpSegment, Tracker};
use sfdiag::tls::{self, Limits, Side, TlsError};

use crate::common::{project_captures, sfdiag};

// The fuzz crate's public API, included here as a private module.
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

/// Long enough for a debug build on a busy machine; only a hang takes this long.
const HANG: Duration = Duration::from_secs(300);

/// Runs `f` on its own thread; a panic is re-raised, a hang fails the test after [`HANG`].
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    match rx.recv_timeout(HANG) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("sender dropped without a value or a panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: no answer in {HANG:?} (hang)"),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*): inputs replay exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------
// A tiny pcap writer and TCP/IP frame builder.

const SNAPLEN: u32 = 262_144;

fn pcap_header(linktype: Linktype, snaplen: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&snaplen.to_le_bytes());
    b.extend_from_slice(&linktype.0.to_le_bytes());
    b
}

/// One pcap record; `caplen`/`orig_len` as given (they may lie).
fn pcap_record(b: &mut Vec<u8>, ts: Timestamp, caplen: u32, orig_len: u32, data: &[u8]) {
    b.extend_from_slice(&(ts.secs as u32).to_le_bytes());
    b.extend_from_slice(&(ts.nanos / 1000).to_le_bytes());
    b.extend_from_slice(&caplen.to_le_bytes());
    b.extend_from_slice(&orig_len.to_le_bytes());
    b.extend_from_slice(data);
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4/IPv6 + TCP frame (TCP checksum left 0: the decoder does not check it).
fn tcp_frame(src: SocketAddr, dst: SocketAddr, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(flags);
    tcp.extend_from_slice(&0xffffu16.to_be_bytes());
    tcp.extend_from_slice(&[0; 4]);
    tcp.extend_from_slice(payload);
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            ip.extend_from_slice(&s.ip().octets());
            ip.extend_from_slice(&d.ip().octets());
            let sum = ip_checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&s.ip().octets());
            f.extend_from_slice(&d.ip().octets());
        }
        _ => panic!("mixed address families"),
    }
    f.extend_from_slice(&tcp);
    f
}

/// A capture's frames, owned.
#[derive(Clone)]
struct Frames {
    linktype: Linktype,
    frames: Vec<(Timestamp, Vec<u8>)>,
}

fn read_frames(path: &Path) -> Frames {
    let mut r = capture::open(path).expect("capture opens");
    let mut out = Frames {
        linktype: Linktype::ETHERNET,
        frames: Vec::new(),
    };
    while let Some(f) = r.next_frame().expect("capture reads") {
        out.linktype = f.linktype;
        out.frames.push((f.ts, f.data.to_vec()));
    }
    out
}

fn to_pcap(f: &Frames) -> Vec<u8> {
    let mut b = pcap_header(f.linktype, SNAPLEN);
    for (ts, data) in &f.frames {
        pcap_record(&mut b, *ts, data.len() as u32, data.len() as u32, data);
    }
    b
}

/// Where the TCP payload lies in a frame, if it is a TCP segment with payload.
fn payload_range(linktype: Linktype, frame: &[u8]) -> Option<std::ops::Range<usize>> {
    match net::decode(linktype, frame) {
        Ok(net::Packet::Tcp(seg)) if !seg.payload.is_empty() => {
            let start = seg.payload.as_ptr() as usize - frame.as_ptr() as usize;
            Some(start..start + seg.payload.len())
        }
        _ => None,
    }
}

fn project(name: &str) -> PathBuf {
    project_captures().join(name)
}

// ---------------------------------------------------------------------------------------
// Running the analyzer.

/// What an analysis of in-memory capture bytes gave.
struct Analysis {
    summary: Summary,
    findings: Vec<Finding>,
}

fn analyze_bytes(bytes: Vec<u8>, opts: Options) -> Result<Analysis, CaptureError> {
    bounded("analyze", move || {
        let mut reader = capture::Reader::new(Cursor::new(bytes))?;
        let mut findings = Vec::new();
        let summary = analysis::analyze_reader(&mut reader, "hostile.pcap", &opts, &mut |f| {
            findings.push(f)
        })
        .expect("a collecting sink never fails");
        // Every finding must render in every format.
        for format in [
            sfdiag::report::Format::Text,
            sfdiag::report::Format::Json,
            sfdiag::report::Format::Jsonl,
        ] {
            let mut out = Vec::new();
            let mut r = sfdiag::report::renderer(format, &mut out);
            for f in &findings {
                r.finding(f).unwrap();
            }
            r.file_done(&summary).unwrap();
            r.finish().unwrap();
        }
        Ok(Analysis { summary, findings })
    })
}

/// (certificate SHA-256, verdict code) of every certificate finding, sorted.
fn cert_verdicts(a: &Analysis) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = a
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Certificate(c) => {
                let j = serde_json::to_value(c).unwrap();
                Some((
                    j["sha256"].as_str().unwrap_or_default().to_string(),
                    j["verdict"]["code"].to_string(),
                ))
            }
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// (outcome, reason) of every session finding, sorted.
fn sessions(a: &Analysis) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = a
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Session(s) => {
                let j = serde_json::to_value(s).unwrap();
                Some((j["outcome"].to_string(), j["reason"].to_string()))
            }
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn notes(a: &Analysis) -> Vec<String> {
    a.findings
        .iter()
        .filter_map(|f| match f {
            Finding::Note(n) => Some(serde_json::to_string(n).unwrap()),
            _ => None,
        })
        .collect()
}

/// The binary's answer.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sfdiag ARGS` under a 256 MiB address-space limit (a 2 GB allocation fails instead of
/// succeeding quietly) with a timeout; the output is drained on threads so a chatty child
/// cannot block.
fn run_limited(args: &[&str]) -> Run {
    let bin = sfdiag().get_program().to_owned();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" \"$@\"")
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sfdiag");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + HANG;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sfdiag {args:?}: no exit in {HANG:?} (hang)");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code(),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "sfdiag {args:?} panicked: {}",
        run.stderr
    );
    run
}

fn analyze_file(path: &Path) -> Run {
    run_limited(&["analyze", "--format", "jsonl", path.to_str().unwrap()])
}

fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------------------------------
// Fuzz regressions.

#[test]
fn every_fuzz_regression_input_runs_through_its_harness_without_a_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut ran = 0;
    for (target, _) in harness::TARGETS {
        let dir = root.join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let name = format!("{target}/{}", file.file_name().unwrap().to_string_lossy());
            bounded(&name, move || {
                harness::run(target, &data).expect("known target")
            });
            ran += 1;
        }
    }
    assert!(
        ran > 0,
        "no regression inputs found under {}",
        root.display()
    );
}

#[test]
fn every_harness_takes_a_real_capture_without_a_panic() {
    // The same real bytes read as each harness's input shape.
    let pcap = std::fs::read(project("sftunnel-valid.pcap")).unwrap();
    for (target, _) in harness::TARGETS {
        let data = pcap.clone();
        bounded(target, move || harness::run(target, &data).unwrap());
    }
    assert!(harness::run("no_such_target", b"").is_none());
}

// ---------------------------------------------------------------------------------------
// Files that are not captures, or barely.

#[test]
fn an_empty_file_is_unreadable_with_a_message_saying_so() {
    let err = capture::Reader::new(Cursor::new(Vec::new())).unwrap_err();
    assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(&dir, "empty.pcap", b"");
    let run = analyze_file(&path);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("empty.pcap"), "names the file: {run:?}");
    // The report still has the file's record, saying why nothing was read.
    let record: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(record["type"], "capture", "{run:?}");
    assert_eq!(record["frames"], 0, "{run:?}");
    assert!(
        record["read_error"].as_str().unwrap().contains("empty"),
        "{run:?}"
    );
}

#[test]
fn random_bytes_are_unreadable_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed);
    for len in [1, 3, 4, 24, 1000, 100_000] {
        let bytes = rng.bytes(len);
        let err = capture::Reader::new(Cursor::new(bytes.clone())).unwrap_err();
        assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
        let path = write_temp(&dir, &format!("random-{len}.pcap"), &bytes);
        let run = analyze_file(&path);
        assert_eq!(run.code, Some(2), "{len} random bytes: {run:?}");
        assert!(run.stderr.contains("not a pcap or pcapng"), "{run:?}");
    }
}

#[test]
fn a_capture_with_a_bad_magic_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(project("sftunnel-valid.pcap")).unwrap();
    bytes[..4].copy_from_slice(b"PCAP");
    let path = write_temp(&dir, "bad-magic.pcap", &bytes);
    let run = analyze_file(&path);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr.contains("50 43 41 50"),
        "shows the bytes it found: {run:?}"
    );
}

#[test]
fn a_header_only_capture_is_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = pcap_header(Linktype::ETHERNET, SNAPLEN);
    let a = analyze_bytes(pcap.clone(), Options::default()).unwrap();
    assert_eq!(a.summary.net.frames, 0);
    assert!(a.summary.read_error.is_none());
    assert!(cert_verdicts(&a).is_empty() && sessions(&a).is_empty());
    let run = analyze_file(&write_temp(&dir, "header-only.pcap", &pcap));
    assert_eq!(run.code, Some(0), "{run:?}");

    // pcapng: a section header alone (28 bytes).
    let ng = std::fs::read(project("sftunnel-valid.pcapng")).unwrap();
    let shb_len = u32::from_le_bytes(ng[4..8].try_into().unwrap()) as usize;
    let a = analyze_bytes(ng[..shb_len].to_vec(), Options::default()).unwrap();
    assert_eq!(a.summary.net.frames, 0);
    let run = analyze_file(&write_temp(&dir, "shb-only.pcapng", &ng[..shb_len]));
    assert_eq!(run.code, Some(0), "{run:?}");

    // A file header cut short is a truncation, not an empty capture.
    let run = analyze_file(&write_temp(&dir, "half-header.pcap", &pcap[..13]));
    assert_eq!(run.code, Some(2), "{run:?}");
}

// ---------------------------------------------------------------------------------------
// Damaged captures: partial results.

#[test]
fn a_capture_cut_inside_a_packet_keeps_the_frames_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(project("sftunnel-ca-expired.pcap")).unwrap();
    let full = analyze_bytes(whole.clone(), Options::default()).unwrap();
    let n_full = full.summary.net.frames;
    // Record boundaries, to cut in the middle of each packet's bytes.
    let mut starts = Vec::new();
    let mut at = 24;
    while at + 16 <= whole.len() {
        starts.push(at);
        at += 16 + u32::from_le_bytes(whole[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    assert_eq!(starts.len() as u64, n_full);
    for (i, &start) in starts.iter().enumerate() {
        for cut in [start + 7, start + 16 + 10] {
            if cut >= whole.len() {
                continue;
            }
            let a = analyze_bytes(whole[..cut].to_vec(), Options::default()).unwrap();
            assert_eq!(a.summary.net.frames, i as u64, "cut at {cut}");
            let err = a
                .summary
                .read_error
                .as_deref()
                .expect("the cut is reported");
            assert!(err.contains(&format!("after frame {i}")), "{err}");
            let covers = if i == 0 {
                "no frame could be read".to_string()
            } else {
                format!("findings cover frames 1-{i}")
            };
            assert!(
                notes(&a).iter().any(|n| n.contains(&covers)),
                "a note says what the findings cover: {:?}",
                notes(&a)
            );
        }
    }
    // The binary: partial results are results (0 or 1 by what they show), never "unreadable".
    let cut = starts[starts.len() - 2] + 20;
    let run = analyze_file(&write_temp(&dir, "cut.pcap", &whole[..cut]));
    assert_eq!(run.code, Some(1), "the expired CA is still found: {run:?}");
    assert!(run.stdout.contains("truncated after frame"), "{run:?}");
    assert!(run.stdout.contains("\"type\":\"certificate\""), "{run:?}");
}

#[test]
fn a_gzip_stream_cut_short_or_corrupt_keeps_what_came_before() {
    use std::io::Write;
    let whole = std::fs::read(project("sftunnel-ca-expired.pcap")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&whole).unwrap();
    let gz = gz.finish().unwrap();
    let full = analyze_bytes(whole, Options::default()).unwrap();
    let a = analyze_bytes(gz.clone(), Options::default()).unwrap();
    assert_eq!(
        a.summary.net.frames, full.summary.net.frames,
        "gzip reads the same"
    );

    let cut = analyze_bytes(gz[..gz.len() * 2 / 3].to_vec(), Options::default()).unwrap();
    assert!(cut.summary.net.frames < full.summary.net.frames);
    assert!(cut.summary.read_error.is_some(), "the cut is reported");

    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let broken = analyze_bytes(bad.clone(), Options::default()).unwrap();
    assert!(
        broken.summary.read_error.is_some(),
        "corruption is reported"
    );
    assert!(broken.summary.net.frames < full.summary.net.frames);

    let dir = tempfile::tempdir().unwrap();
    let run = analyze_file(&write_temp(&dir, "broken.pcap.gz", &bad));
    if broken.summary.net.frames > 0 {
        assert!(matches!(run.code, Some(0 | 1)), "partial results: {run:?}");
        assert!(run.stdout.contains("\"read_error\":\""), "{run:?}");
    } else {
        assert_eq!(run.code, Some(2), "nothing analyzed: {run:?}");
    }
}

#[test]
fn records_claiming_two_gigabytes_are_corruption_not_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let frames = read_frames(&project("sftunnel-valid.pcap"));
    // Every record claims 2 GB captured.
    let mut every = pcap_header(frames.linktype, SNAPLEN);
    for (ts, data) in &frames.frames {
        pcap_record(&mut every, *ts, 0x8000_0000, 0x8000_0000, data);
    }
    let a = analyze_bytes(every.clone(), Options::default()).unwrap();
    assert_eq!(a.summary.net.frames, 0);
    let err = a.summary.read_error.clone().expect("corrupt");
    assert!(err.contains("claims 2147483648 bytes"), "{err}");
    let run = analyze_file(&write_temp(&dir, "every-2gb.pcap", &every));
    assert_eq!(run.code, Some(2), "nothing could be analyzed: {run:?}");

    // Only the tenth claims 2 GB: the nine before are analyzed.
    let mut tenth = pcap_header(frames.linktype, SNAPLEN);
    for (i, (ts, data)) in frames.frames.iter().enumerate() {
        let len = if i == 9 {
            0x8000_0000
        } else {
            data.len() as u32
        };
        pcap_record(&mut tenth, *ts, len, len, data);
    }
    let a = analyze_bytes(tenth.clone(), Options::default()).unwrap();
    assert_eq!(a.summary.net.frames, 9);
    let run = analyze_file(&write_temp(&dir, "tenth-2gb.pcap", &tenth));
    assert!(matches!(run.code, Some(0 | 1)), "{run:?}");
    assert!(run.stdout.contains("after frame 9"), "{run:?}");
}

#[test]
fn snaplen_96_loses_the_certificates_but_still_reports_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let frames = read_frames(&project("sftunnel-ca-expired.pcap"));
    let mut cut = pcap_header(frames.linktype, 96);
    for (ts, data) in &frames.frames {
        let caplen = data.len().min(96);
        pcap_record(
            &mut cut,
            *ts,
            caplen as u32,
            data.len() as u32,
            &data[..caplen],
        );
    }
    let a = analyze_bytes(cut.clone(), Options::default()).unwrap();
    assert!(a.summary.read_error.is_none());
    assert!(a.summary.net.cut_segments > 0);
    assert!(
        cert_verdicts(&a).is_empty(),
        "no certificate survives 96 bytes"
    );
    assert_eq!(sessions(&a).len(), 1, "the session is still reported");
    let run = analyze_file(&write_temp(&dir, "snap96.pcap", &cut));
    assert!(matches!(run.code, Some(0 | 1)), "{run:?}");
    assert!(run.stdout.contains("\"type\":\"session\""), "{run:?}");
}

#[test]
fn bit_flips_in_tls_payloads_give_reports_not_crashes() {
    let mut rng = Rng(0xb17f_11b5);
    for name in ["sftunnel-valid.pcap", "sftunnel-ca-expired.pcap"] {
        let frames = read_frames(&project(name));
        let payloads: Vec<(usize, std::ops::Range<usize>)> = frames
            .frames
            .iter()
            .enumerate()
            .filter_map(|(i, (_, d))| payload_range(frames.linktype, d).map(|r| (i, r)))
            .collect();
        assert!(payloads.len() >= 3, "{name}");
        for round in 0..24 {
            let mut f = frames.clone();
            let flips = 1 + round % 8;
            for _ in 0..flips {
                let (i, r) = &payloads[rng.below(payloads.len())];
                let at = r.start + rng.below(r.len());
                f.frames[*i].1[at] ^= 1 << rng.below(8);
            }
            let a = analyze_bytes(to_pcap(&f), Options::default()).unwrap();
            // The capture layer is untouched: every frame is still read and analyzed.
            assert_eq!(a.summary.net.frames, frames.frames.len() as u64);
            assert!(a.summary.read_error.is_none());
            assert!(!sessions(&a).is_empty(), "{name} round {round}: a session");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Crafted TLS.

const CLIENT: &str = "192.0.2.1:40000";
const SERVER: &str = "192.0.2.2:8305";

/// A capture of one connection: SYN, SYN-ACK, then `client` and `server` bytes in 1400-byte
/// segments (client first), then FINs.
fn one_connection(client: &[u8], server: &[u8]) -> Vec<u8> {
    let (c, s): (SocketAddr, SocketAddr) = (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
    let mut frames = Frames {
        linktype: Linktype::ETHERNET,
        frames: Vec::new(),
    };
    let mut t = 0u64;
    let mut push = |frames: &mut Frames, data: Vec<u8>| {
        t += 1;
        frames
            .frames
            .push((Timestamp::new(1_750_000_000, t * 1000), data));
    };
    let (cisn, sisn) = (1000u32, 50_000u32);
    push(&mut frames, tcp_frame(c, s, cisn, TcpFlags::SYN, &[]));
    push(
        &mut frames,
        tcp_frame(s, c, sisn, TcpFlags::SYN | TcpFlags::ACK, &[]),
    );
    let mut seq = [cisn + 1, sisn + 1];
    for (dir, bytes) in [(0, client), (1, server)] {
        let (src, dst) = if dir == 0 { (c, s) } else { (s, c) };
        for chunk in bytes.chunks(1400) {
            push(
                &mut frames,
                tcp_frame(src, dst, seq[dir], TcpFlags::ACK | TcpFlags::PSH, chunk),
            );
            seq[dir] = seq[dir].wrapping_add(chunk.len() as u32);
        }
    }
    push(
        &mut frames,
        tcp_frame(c, s, seq[0], TcpFlags::FIN | TcpFlags::ACK, &[]),
    );
    push(
        &mut frames,
        tcp_frame(s, c, seq[1], TcpFlags::FIN | TcpFlags::ACK, &[]),
    );
    to_pcap(&frames)
}

fn record(content_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3];
    r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    r.extend_from_slice(payload);
    r
}

/// A ClientHello record good enough to be taken for TLS.
fn client_hello() -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0xc0, 0x2f]);
    body.extend_from_slice(&[1, 0]);
    let mut hs = vec![1, 0, 0, body.len() as u8];
    hs.extend_from_slice(&body);
    record(22, &hs)
}

/// A handshake message header claiming 16 MB, then `records` full records of its "body".
fn sixteen_mb_claim(records: usize) -> Vec<u8> {
    let mut out = record(22, &[11, 0xff, 0xff, 0xff, 0, 0, 0]);
    for _ in 0..records {
        out.extend(record(22, &[0xab; 16384]));
    }
    out
}

#[test]
fn a_handshake_message_claiming_16_mb_is_skipped_with_bounded_buffers() {
    let limits = Limits::default();
    let mut session: tls::Session<u64> = tls::Session::new(limits);
    let mut events = Vec::new();
    session.feed(Side::A, &client_hello(), 1, &mut events);
    let stream = sixteen_mb_claim(200); // 3.2 MB of claimed body
    let mut peak = 0;
    for (i, chunk) in stream.chunks(1400).enumerate() {
        session.feed(Side::B, chunk, 2 + i as u64, &mut events);
        peak = peak.max(session.buffered());
    }
    // One partial record per side (Vec capacity may be up to twice what it holds) and the
    // ClientHello's message buffer: not the 16 MB the message claims.
    assert!(
        peak <= 2 * (tls::HEADER_LEN + tls::MAX_RECORD_LEN) + 4096,
        "at most one record buffered, not the message: {peak}"
    );
    assert!(
        events.iter().any(|e| matches!(
            &e.kind,
            tls::EventKind::Error(TlsError::HandshakeTooLarge {
                claimed: 0xff_ffff,
                ..
            })
        )),
        "the oversized message is reported"
    );

    // Through the binary: a report, not a 16 MB buffer.
    let dir = tempfile::tempdir().unwrap();
    let pcap = one_connection(&client_hello(), &sixteen_mb_claim(64));
    let run = analyze_file(&write_temp(&dir, "16mb.pcap", &pcap));
    assert!(matches!(run.code, Some(0 | 1)), "{run:?}");
    assert!(
        run.stdout.contains("16777215"),
        "the claim is named: {run:?}"
    );
}

#[test]
fn where_tls_may_start_does_not_depend_on_how_tcp_cut_the_bytes() {
    // Found by the fuzzer (fuzz/regressions/tls_session/alert-past-scan-window-in-one-chunk):
    // a record past the scan window was taken for TLS when it came in one chunk, not in many.
    let limits = Limits {
        max_handshake: 2048,
        scan_window: 512,
    };
    let starts = |plaintext: usize, chunk: usize| {
        let mut stream = vec![b'x'; plaintext];
        stream.extend(record(21, &[2, 40]));
        let mut session: tls::Session<u64> = tls::Session::new(limits);
        let mut events = Vec::new();
        for c in stream.chunks(chunk) {
            session.feed(Side::A, c, 0, &mut events);
        }
        events.iter().find_map(|e| match e.kind {
            tls::EventKind::Start { plaintext } => Some(plaintext),
            _ => None,
        })
    };
    for chunk in [1, 7, 100, 4096] {
        assert_eq!(
            starts(600, chunk),
            None,
            "past the window, chunks of {chunk}"
        );
        assert_eq!(
            starts(512, chunk),
            Some(512),
            "at the window, chunks of {chunk}"
        );
        assert_eq!(
            starts(300, chunk),
            Some(300),
            "inside it, chunks of {chunk}"
        );
    }
}

#[test]
fn endless_zero_length_records_cost_time_not_memory() {
    let zero: Vec<u8> = [22u8, 23, 21, 20]
        .iter()
        .flat_map(|&t| record(t, &[]))
        .collect();
    let stream: Vec<u8> = zero
        .iter()
        .copied()
        .cycle()
        .take(zero.len() * 100_000)
        .collect();
    let s2 = stream.clone();
    let peak = bounded("zero-length records", move || {
        let mut session: tls::Session<u64> = tls::Session::new(Limits::default());
        let mut events = Vec::new();
        session.feed(Side::A, &client_hello(), 0, &mut events);
        let mut peak = 0;
        for (i, chunk) in s2.chunks(1400).enumerate() {
            session.feed(Side::B, chunk, i as u64, &mut events);
            peak = peak.max(session.buffered());
            // What the analyzer would do with the events: consume them as they come.
            events.clear();
        }
        peak
    });
    assert!(peak <= 64, "zero-length records buffer nothing: {peak}");

    let dir = tempfile::tempdir().unwrap();
    let pcap = one_connection(&client_hello(), &stream[..stream.len().min(2 << 20)]);
    let run = analyze_file(&write_temp(&dir, "zero-records.pcap", &pcap));
    assert!(matches!(run.code, Some(0 | 1)), "{run:?}");
    assert!(run.stdout.contains("\"type\":\"session\""), "{run:?}");
}

// ---------------------------------------------------------------------------------------
// Many flows, duplicates, overlaps.

#[test]
fn a_million_tiny_flows_keep_the_tracker_within_its_caps() {
    let config = net::Config::default();
    let (max_conns, max_buf) = (config.max_connections, config.max_buffered_total);
    let (live, buffered, evicted) = bounded("million flows", move || {
        let mut t = Tracker::new(config);
        let server: SocketAddr = "198.51.100.1:8305".parse().unwrap();
        let payload = [0x16u8; 1200];
        let mut peak_live = 0;
        let mut peak_buf = 0;
        for i in 0..1_000_000u32 {
            let client = SocketAddr::from((
                [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
                40000 + (i % 20000) as u16,
            ));
            // A segment after a hole: the tracker must buffer it (out of order).
            let seg = TcpSegment {
                src: client,
                dst: server,
                seq: i.wrapping_mul(7919),
                ack: 0,
                flags: TcpFlags(TcpFlags::SYN),
                payload: &[],
                missing: 0,
            };
            let at = Mark::new(u64::from(i) * 2 + 1, Timestamp::new(i64::from(i), 0));
            t.push_segment(&seg, at, &mut |_| {});
            let ahead = TcpSegment {
                seq: i.wrapping_mul(7919).wrapping_add(100),
                flags: TcpFlags(TcpFlags::ACK),
                payload: &payload,
                ..seg
            };
            let at = Mark::new(u64::from(i) * 2 + 2, Timestamp::new(i64::from(i), 1));
            t.push_segment(&ahead, at, &mut |_| {});
            peak_live = peak_live.max(t.connections());
            peak_buf = peak_buf.max(t.buffered());
        }
        let evicted = t.stats().evicted;
        let mut closed = 0u64;
        t.finish(&mut |e| {
            if matches!(e.kind, EventKind::Closed { .. }) {
                closed += 1;
            }
        });
        assert_eq!(t.connections(), 0);
        assert_eq!(closed, max_conns as u64, "the live ones close at the end");
        (peak_live, peak_buf, evicted)
    });
    assert!(live <= max_conns, "{live} live connections");
    assert!(buffered <= max_buf, "{buffered} bytes buffered");
    assert!(
        buffered > max_buf / 2,
        "the total cap was reached: {buffered}"
    );
    assert_eq!(evicted, 1_000_000 - max_conns as u64);
}

#[test]
fn a_hundred_thousand_tls_flows_through_the_analyzer_stay_within_the_table() {
    // Each flow opens and sends half a ClientHello, then is never heard from again.
    let server: SocketAddr = "198.51.100.1:8305".parse().unwrap();
    let hello = client_hello();
    let mut pcap = pcap_header(Linktype::ETHERNET, SNAPLEN);
    for i in 0..100_000u32 {
        let client = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 50000));
        let ts = Timestamp::new(1_750_000_000 + i64::from(i / 1000), 0);
        let f = tcp_frame(client, server, 1, TcpFlags::SYN, &[]);
        pcap_record(&mut pcap, ts, f.len() as u32, f.len() as u32, &f);
        let f = tcp_frame(client, server, 2, TcpFlags::ACK, &hello[..20]);
        pcap_record(&mut pcap, ts, f.len() as u32, f.len() as u32, &f);
    }
    let a = analyze_bytes(pcap, Options::default()).unwrap();
    let net = a.summary.net;
    assert_eq!(net.connections, 100_000);
    assert!(net.peak_connections <= net::Config::default().max_connections);
    assert!(net.peak_buffered <= net::Config::default().max_buffered_total);
}

/// Re-segments every data segment of a capture: a duplicate, an overlapping front half, a
/// back piece overlapping the front by 7 bytes, all sent before the original, with adjacent
/// segments swapped.
fn resegment(f: &Frames) -> Frames {
    let mut out = Frames {
        linktype: Linktype::ETHERNET,
        frames: Vec::new(),
    };
    // The last data segment's group, held back to be swapped with the next one of its
    // direction (swapping across directions would change what the TLS sides saw first).
    type Group = Vec<(Timestamp, Vec<u8>)>;
    let mut pending: Option<(SocketAddr, Group)> = None;
    for (ts, data) in &f.frames {
        let seg = match net::decode(f.linktype, data) {
            Ok(net::Packet::Tcp(seg)) => seg,
            _ => continue,
        };
        let flags = seg.flags.0;
        let mut group = Vec::new();
        let p = seg.payload;
        if p.len() > 16 {
            let half = p.len() / 2;
            let back = half.saturating_sub(7);
            group.push(tcp_frame(seg.src, seg.dst, seg.seq, flags & !1, &p[..half]));
            group.push(tcp_frame(
                seg.src,
                seg.dst,
                seg.seq.wrapping_add(back as u32),
                flags & !1,
                &p[back..],
            ));
        }
        group.push(tcp_frame(seg.src, seg.dst, seg.seq, flags, p));
        if !p.is_empty() {
            group.push(tcp_frame(seg.src, seg.dst, seg.seq, flags, p));
        }
        let group: Group = group.into_iter().map(|g| (*ts, g)).collect();
        let plain = p.is_empty() || seg.flags.syn() || seg.flags.fin() || seg.flags.rst();
        match pending.take() {
            Some((src, prev)) if !plain && src == seg.src => {
                out.frames.extend(group);
                out.frames.extend(prev);
            }
            other => {
                if let Some((_, prev)) = other {
                    out.frames.extend(prev);
                }
                if plain {
                    out.frames.extend(group);
                } else {
                    pending = Some((seg.src, group));
                }
            }
        }
    }
    if let Some((_, prev)) = pending {
        out.frames.extend(prev);
    }
    out
}

#[test]
fn duplicate_overlapping_and_swapped_segments_give_the_same_findings() {
    for name in [
        "sftunnel-valid.pcap",
        "sftunnel-ca-expired.pcap",
        "sftunnel-ftd-expired.pcap",
        "sftunnel-valid-ipv6.pcap",
    ] {
        let frames = read_frames(&project(name));
        let plain = analyze_bytes(to_pcap(&frames), Options::default()).unwrap();
        let messy = resegment(&frames);
        assert!(messy.frames.len() > frames.frames.len() + 3, "{name}");
        let a = analyze_bytes(to_pcap(&messy), Options::default()).unwrap();
        assert!(!cert_verdicts(&plain).is_empty(), "{name} has certificates");
        assert_eq!(cert_verdicts(&a), cert_verdicts(&plain), "{name}");
        assert_eq!(sessions(&a), sessions(&plain), "{name}");
        assert!(a.summary.net.retransmitted_bytes > 0, "{name}");
        assert_eq!(a.summary.net.conflicts, 0, "{name}: duplicates agree");
    }
}

// ---------------------------------------------------------------------------------------
// A PKI root's configuration is input too.

#[test]
fn a_peer_name_that_would_leave_the_pki_root_is_refused() {
    // Peer names in sftunnel.conf become folder names (ROOT/<name>/var/sf/peers/...), read by
    // validate/serve and written by renewal. Kept as fuzz/regressions/pki_conf/.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lab");
    let out = sfdiag()
        .args([
            "pki",
            "init",
            "--root",
            root.to_str().unwrap(),
            "--device",
            "ftd1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = root.join("fmc/etc/sf/sftunnel.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    assert!(sfdiag::pki::layout::PkiRoot::load(&root).is_ok());
    for bad in ["../../outside", "/etc", "fmc", "..", "a/b"] {
        std::fs::write(
            &conf,
            good.replace("name ftd1;", &format!("name \"{bad}\";")),
        )
        .unwrap();
        let err = sfdiag::pki::layout::PkiRoot::load(&root).unwrap_err();
        assert!(
            matches!(&err, sfdiag::pki::PkiError::InvalidName { name, .. } if name == bad),
            "{bad}: {err}"
        );
        let run = run_limited(&["validate", "--root", root.to_str().unwrap()]);
        assert_eq!(run.code, Some(2), "{bad}: {run:?}");
        assert!(run.stderr.contains("invalid device name"), "{bad}: {run:?}");
        assert!(
            run.stderr.contains("sftunnel.conf"),
            "names the file: {run:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// check: unreadable certificate files are UNKNOWN (3).

#[test]
fn check_calls_unreadable_certificate_files_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(project("valid.ca.pem")).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let body_start = text.find('\n').unwrap() + 1;
    let mut rng = Rng(0xce47);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.pem", Vec::new()),
        ("random.der", rng.bytes(700)),
        ("cut.pem", good[..good.len() / 2].to_vec()),
        ("bad-base64.pem", {
            let mut b = good.clone();
            b[body_start + 10] = b'!';
            b
        }),
        ("der-cut.der", {
            let der = &sfdiag::cert::parse_pem_bundle(&good).unwrap()[0];
            der.der()[..der.der().len() - 40].to_vec()
        }),
        (
            "key.pem",
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
                .to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let path = write_temp(&dir, name, &bytes);
        let run = run_limited(&["check", path.to_str().unwrap()]);
        assert_eq!(run.code, Some(3), "{name}: {run:?}");
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(said.contains(name), "{name}: the file is named: {run:?}");
        assert!(
            !said.contains("MC4CAQAwBQYDK2VwBCIEIA"),
            "never prints key bytes"
        );
    }
}

/// A self-signed certificate whose subject is `CN=cn,O=org`, whatever characters they hold.
fn named_cert(cn: &str, org: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    // Ending within the health alert's 90 days, so `--format health` speaks of it too.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(10);
    params.self_signed(&key).unwrap().pem()
}

/// A subject and file names made to forge lines and drive or reorder the terminal (C0, C1's
/// 8-bit CSI and NEL, bidirectional overrides, isolates and marks): every format of `check`,
/// `pki show`, and the errors for a missing file of such a name print them escaped.
#[test]
fn names_cannot_forge_lines_or_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cn = "x\u{1b}[31m\u{9b}2J\u{202e}gpj.exe\u{2066}\u{200f}\u{61c}\nCRITICAL: spoof";
    let org = "O\u{85}WARNING: x\u{7f}";
    // Two certificates of that name (distinct, so the one-liner and health formats name each).
    let evil = write_temp(
        &dir,
        "evil\u{1b}[2J\u{9b}1m\u{202e}|x\nCRITICAL: spoof.pem",
        named_cert(cn, org).as_bytes(),
    );
    let plain = write_temp(&dir, "plain.pem", named_cert(cn, org).as_bytes());
    let (d, evil, plain) = (
        dir.path().to_str().unwrap(),
        evil.to_str().unwrap(),
        plain.to_str().unwrap(),
    );
    let missing = format!("{d}/gone\u{1b}[2J\u{9b}\u{202e}\nCRITICAL: spoof.pem");
    let runs: Vec<Vec<&str>> = vec![
        vec!["check", d],
        vec!["check", "--format", "json", d],
        vec!["check", "--format", "oneliner", d],
        vec!["check", "--format", "health", d],
        vec!["check", "--ca", plain, d],
        vec!["check", &missing],
        vec!["pki", "show", evil, plain],
        vec!["pki", "show", d],
        vec!["pki", "show", &missing],
    ];
    for args in &runs {
        let run = run_limited(args);
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            for line in text.split('\n') {
                assert!(
                    !line
                        .chars()
                        .any(|c| c != '\t' && sfdiag::sftunnel::is_unsafe(c)),
                    "{args:?} {stream}: raw {line:?}"
                );
                assert!(
                    !line.starts_with("CRITICAL: spoof") && !line.starts_with("WARNING: x"),
                    "{args:?} {stream}: forged {line:?}"
                );
            }
        }
        assert!(
            run.stdout.contains("spoof") || run.stderr.contains("spoof"),
            "{args:?}: the name is still shown: {run:?}"
        );
    }
    // RFC 4514 writes the UTF-8 bytes of what it escapes; the JSON keeps the very string.
    let show = run_limited(&["pki", "show", plain]);
    assert!(
        show.stdout.contains(
            "RFC 4514: O=O\\C2\\85WARNING: x\\7F,CN=x\\1B[31m\\C2\\9B2J\\E2\\80\\AEgpj.exe"
        ),
        "{show:?}"
    );
    let json = run_limited(&["check", "--format", "json", evil]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["certificates"][0]["file"], evil, "{}", json.stdout);
}
