//! capture + net on the shared third-party corpus: every capture is read, tracked and
//! reassembled, and held against its `*.truth.json` (packet counts, link types, and every
//! truth certificate found whole, by SHA-256, in the reassembled bytes of the direction the
//! truth names, completed in the frame the truth names).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sfdiag::capture::{self, CaptureError, Format, Timestamp};
use sfdiag::net::{ConnId, Dir, Event, EventKind, Tracker};

use crate::common::{corpus, shared_captures};

/// Every capture file under the shared corpus (.pcap, .pcapng, .pcap.gz).
fn captures(shared: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("shared captures are readable") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.ends_with(".pcap")
                    || name.ends_with(".pcapng")
                    || name.ends_with(".pcap.gz")
                {
                    out.push(path);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(shared, &mut out);
    out.sort();
    // Any number: the corpus grows, and another one may be laid beside the project.
    assert!(
        !out.is_empty(),
        "no capture files under {}",
        shared.display()
    );
    out
}

/// The truth next to a capture (a .gz shares the truth of its original).
fn truth(path: &Path) -> Value {
    let name = path.to_string_lossy();
    let base = name.strip_suffix(".gz").unwrap_or(&name);
    let text = fs::read_to_string(format!("{base}.truth.json")).expect("truth file");
    serde_json::from_str(&text).expect("truth is JSON")
}

fn rel(path: &Path) -> String {
    path.strip_prefix(shared_captures())
        .unwrap()
        .display()
        .to_string()
}

/// One direction of one connection, reassembled: bytes and the frame of each byte.
#[derive(Default)]
struct Stream {
    src: String,
    dst: String,
    bytes: Vec<u8>,
    frames: Vec<u64>,
    data_frames: BTreeSet<u64>,
    gaps: u64,
    gap_bytes: u64,
}

/// Reads a capture through the tracker, keeping every direction's bytes.
fn reassemble(path: &Path) -> (BTreeMap<(ConnId, usize), Stream>, u64) {
    let mut reader = capture::open(path).expect("capture opens");
    let mut tracker = Tracker::default();
    let mut streams: BTreeMap<(ConnId, usize), Stream> = BTreeMap::new();
    let mut sink = |e: Event<'_>| match e.kind {
        EventKind::Opened {
            conn,
            client,
            server,
            ..
        } => {
            for (dir, src, dst) in [
                (Dir::ClientToServer, client, server),
                (Dir::ServerToClient, server, client),
            ] {
                let s = streams.entry((conn, dir as usize)).or_default();
                s.src = src.to_string();
                s.dst = dst.to_string();
            }
        }
        EventKind::Data {
            conn,
            dir,
            offset,
            bytes,
        } => {
            let frame = e.mark.frame;
            let s = streams
                .get_mut(&(conn, dir as usize))
                .expect("data after open");
            assert_eq!(
                offset,
                s.bytes.len() as u64 + s.gap_bytes,
                "contiguous offsets"
            );
            s.bytes.extend_from_slice(bytes);
            s.frames.extend(std::iter::repeat_n(frame, bytes.len()));
            s.data_frames.insert(frame);
        }
        EventKind::Gap { conn, dir, len, .. } => {
            let s = streams.get_mut(&(conn, dir as usize)).unwrap();
            s.gaps += 1;
            s.gap_bytes += len;
        }
        _ => {}
    };
    let mut frames = 0;
    while let Some(frame) = reader.next_frame().expect("corpus captures are whole") {
        frames = frame.index;
        tracker.push(&frame, &mut sink);
    }
    tracker.finish(&mut sink);
    (streams, frames)
}

/// The first offset that looks like a TLS handshake record carrying a Client/ServerHello
/// (so STARTTLS and database upgrades are skipped, as the truth's own script does).
fn tls_start(buf: &[u8]) -> Option<usize> {
    (0..buf.len().saturating_sub(6)).find(|&i| {
        let len = usize::from(u16::from_be_bytes([buf[i + 3], buf[i + 4]]));
        buf[i] == 0x16
            && buf[i + 1] == 3
            && buf[i + 2] <= 4
            && len > 0
            && len <= 18432
            && matches!(buf[i + 5], 1 | 2)
    })
}

/// Handshake-record payloads of a direction, concatenated (a certificate may span records),
/// with, for each byte, the frame in which its record was complete.
fn handshake_bytes(s: &Stream) -> (Vec<u8>, Vec<u64>) {
    let (mut out, mut frames) = (Vec::new(), Vec::new());
    let Some(mut i) = tls_start(&s.bytes) else {
        return (out, frames);
    };
    while i + 5 <= s.bytes.len() {
        let ct = s.bytes[i];
        let len = usize::from(u16::from_be_bytes([s.bytes[i + 3], s.bytes[i + 4]]));
        if !(20..=24).contains(&ct) || s.bytes[i + 1] != 3 {
            break;
        }
        let end = (i + 5 + len).min(s.bytes.len());
        if ct == 22 {
            // A message is complete when the last record holding it is: each byte takes
            // the frame completing its record.
            let record_done = s.frames[i..end].iter().copied().max().unwrap_or(0);
            out.extend_from_slice(&s.bytes[i + 5..end]);
            frames.extend(std::iter::repeat_n(record_done, end - (i + 5)));
        }
        i = end;
    }
    (out, frames)
}

/// Where a DER certificate with this length and SHA-256 starts in `hs`.
fn find_der(hs: &[u8], der_len: usize, sha256: &str) -> Option<usize> {
    (0..hs.len().saturating_sub(der_len - 1)).find(|&j| {
        if hs[j] != 0x30 {
            return false;
        }
        let b = hs[j + 1];
        let (hdr, len) = if b < 0x80 {
            (2, usize::from(b))
        } else {
            let n = usize::from(b & 0x7f);
            if n == 0 || n > 4 || j + 2 + n > hs.len() {
                return false;
            }
            let len = hs[j + 2..j + 2 + n]
                .iter()
                .fold(0usize, |a, &x| a << 8 | usize::from(x));
            (2 + n, len)
        };
        hdr + len == der_len
            && hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                &hs[j..j + der_len],
            )) == sha256
    })
}

#[test]
fn every_capture_reads_with_the_truth_packet_count_link_type_and_format() {
    let Some(shared) = corpus!("captures") else {
        return;
    };
    for path in captures(&shared) {
        let t = truth(&path);
        let mut reader = capture::open(&path).unwrap_or_else(|e| panic!("{}: {e}", rel(&path)));
        let mut count = 0u64;
        let mut linktypes = BTreeSet::new();
        let mut last_ts = Timestamp {
            secs: i64::MIN,
            nanos: 0,
        };
        let mut monotonic = true;
        while let Some(f) = reader
            .next_frame()
            .unwrap_or_else(|e| panic!("{}: {e}", rel(&path)))
        {
            count += 1;
            assert_eq!(f.index, count, "{}: frames are numbered from 1", rel(&path));
            assert!(
                f.data.len() as u64 <= u64::from(f.orig_len),
                "{}",
                rel(&path)
            );
            linktypes.insert(f.linktype.name());
            monotonic &= f.ts >= last_ts;
            last_ts = f.ts;
        }
        assert_eq!(
            count,
            t["packets"].as_u64().unwrap(),
            "{}: packet count",
            rel(&path)
        );
        assert_eq!(
            linktypes.into_iter().collect::<Vec<_>>(),
            [t["link_type"].as_str().unwrap()],
            "{}: link type",
            rel(&path)
        );
        let pcapng = t["file_type"].as_str().unwrap().ends_with("pcapng");
        assert_eq!(
            reader.format() == Format::PcapNg,
            pcapng,
            "{}: format",
            rel(&path)
        );
        assert_eq!(reader.compressed(), path.extension().unwrap() == "gz");
        let _ = monotonic; // third-party captures need not be time-ordered; nothing to assert
    }
}

/// A certificate message in the truth: (frame, src, dst).
type MessageKey = (u64, String, String);

#[test]
fn every_truth_certificate_is_whole_in_its_direction_and_complete_in_its_frame() {
    let Some(shared) = corpus!("captures") else {
        return;
    };
    let (mut checked, mut listed) = (0, 0);
    for path in captures(&shared)
        .into_iter()
        .filter(|p| p.extension().unwrap() != "gz")
    {
        let t = truth(&path);
        let (streams, _) = reassemble(&path);
        listed += t["certificates"].as_array().unwrap().len();
        // Certificates grouped by message: (frame, src, dst) -> [(chain_index, cert)].
        let mut messages: BTreeMap<MessageKey, Vec<(u64, &Value)>> = BTreeMap::new();
        for c in t["certificates"].as_array().unwrap() {
            let key = (
                c["frame"].as_u64().unwrap(),
                c["src"].as_str().unwrap().to_string(),
                c["dst"].as_str().unwrap().to_string(),
            );
            messages
                .entry(key)
                .or_default()
                .push((c["chain_index"].as_u64().unwrap(), c));
        }
        for ((frame, src, dst), mut certs) in messages {
            certs.sort_by_key(|(i, _)| *i);
            let candidates: Vec<(&(ConnId, usize), &Stream)> = streams
                .iter()
                .filter(|(_, s)| s.src == src && s.dst == dst)
                .collect();
            assert!(
                !candidates.is_empty(),
                "{}: no TCP connection {src} -> {dst} with payload",
                rel(&path)
            );
            // The stream holding this message: the one in which all its certificates appear.
            let found = candidates.iter().find_map(|((conn, _), s)| {
                let (hs, frames) = handshake_bytes(s);
                let mut span: Option<(usize, usize)> = None;
                for (_, c) in &certs {
                    let len = c["der_len"].as_u64().unwrap() as usize;
                    let at = find_der(&hs, len, c["sha256_der"].as_str().unwrap())?;
                    span = Some(match span {
                        None => (at, at + len),
                        Some((a, _)) => (a, at + len),
                    });
                }
                let (a, b) = span?;
                let complete_at = frames[a..b].iter().copied().max().unwrap();
                (complete_at == frame).then_some((*conn, s))
            });
            let Some((conn, s)) = found else {
                panic!(
                    "{}: certificate message of frame {frame} {src} -> {dst} not found whole, \
                     completed in frame {frame}",
                    rel(&path)
                );
            };
            assert!(s.data_frames.contains(&frame));
            assert_eq!(s.gaps, 0, "{}: no gaps in the corpus", rel(&path));
            assert_eq!(
                conn.0,
                certs[0].1["tcp_stream"].as_u64().unwrap(),
                "{}: connection ids follow tshark's tcp.stream",
                rel(&path)
            );
            checked += certs.len();
        }
        for a in t["alerts"].as_array().unwrap() {
            let (frame, src, dst) = (
                a["frame"].as_u64().unwrap(),
                a["src"].as_str().unwrap(),
                a["dst"].as_str().unwrap(),
            );
            assert!(
                streams
                    .values()
                    .any(|s| s.src == src && s.dst == dst && s.data_frames.contains(&frame)),
                "{}: alert frame {frame} carries no data {src} -> {dst}",
                rel(&path)
            );
        }
    }
    assert_eq!(checked, listed);
    assert!(checked > 0);
}

/// Frames as owned (index, ts, linktype, data) for comparing two readings.
fn frames_of(path: &Path) -> Vec<(u64, Timestamp, u32, Vec<u8>)> {
    let mut r = capture::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.push((f.index, f.ts, f.linktype.0, f.data.to_vec()));
    }
    out
}

#[test]
fn gzip_copy_reads_the_same_frames_as_its_original() {
    let Some(shared) = corpus!("captures") else {
        return;
    };
    let dir = shared.join("zeek");
    let plain = frames_of(&dir.join("tls-fragmented-handshake.pcap"));
    let gz = frames_of(&dir.join("tls-fragmented-handshake.pcap.gz"));
    assert_eq!(plain.len(), 416);
    assert!(plain == gz, "gzip and plain readings differ");
}

#[test]
fn pcapng_copy_reads_the_same_frames_as_the_pcap() {
    let Some(shared) = corpus!("captures") else {
        return;
    };
    let pcap = frames_of(&shared.join("zeek/client-certificate.pcap"));
    let ng = frames_of(&shared.join("derived/client-certificate.pcapng"));
    assert_eq!(pcap.len(), 31);
    assert!(pcap == ng, "pcapng and pcap readings differ");
}

#[test]
fn truncated_copy_keeps_the_frames_before_the_cut_and_names_the_frame() {
    let Some(shared) = corpus!("captures") else {
        return;
    };
    let original = fs::read(shared.join("zeek/tls-fragmented-handshake.pcap")).unwrap();
    // Walk the record headers to find where frame 200 starts (little-endian pcap).
    assert_eq!(original[..4], [0xd4, 0xc3, 0xb2, 0xa1]);
    let mut at = 24;
    for _ in 1..200 {
        let caplen = u32::from_le_bytes(original[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    fs::File::create(&cut)
        .unwrap()
        .write_all(&original[..at + 30])
        .unwrap();

    let mut reader = capture::open(&cut).unwrap();
    let mut tracker = Tracker::default();
    let mut delivered = 0usize;
    let mut last = 0;
    let err = loop {
        match reader.next_frame() {
            Ok(Some(f)) => {
                last = f.index;
                tracker.push(&f, &mut |e| {
                    if let EventKind::Data { bytes, .. } = e.kind {
                        delivered += bytes.len()
                    }
                });
            }
            Ok(None) => panic!("a truncated file must end in an error"),
            Err(e) => break e,
        }
    };
    assert_eq!(last, 199);
    match &err {
        CaptureError::Truncated {
            after_frame,
            offset,
        } => {
            assert_eq!(*after_frame, 199);
            assert_eq!(*offset, at as u64);
        }
        other => panic!("expected truncation, got {other}"),
    }
    assert!(err.to_string().contains("after frame 199"), "{err}");
    assert!(
        delivered > 100_000,
        "the frames before the cut were analyzed"
    );
    assert!(reader.next_frame().unwrap().is_none());
}

#[test]
fn a_file_that_is_not_a_capture_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    fs::write(&p, "hello, this is not a pcap\n").unwrap();
    let err = capture::open(&p).unwrap_err();
    assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
    assert!(err.to_string().contains("68 65 6c 6c"), "{err}");
    let err = capture::open(dir.path().join("missing.pcap")).unwrap_err();
    assert!(matches!(err, CaptureError::Open { .. }), "{err}");
}

#[test]
fn six_in_four_capture_reassembles_its_inner_ipv6_flows() {
    // nDPI's 6in4tunnel.pcap: every frame is IPv6 inside IPv4 (protocol 41). Each truth
    // certificate (inner addresses) must be found whole in the inner flow's bytes, and every
    // frame counted as unwrapped.
    let Some(new) = corpus!("captures-new") else {
        return;
    };
    let path = new.join("ndpi/6in4tunnel.pcap");
    let t = truth(&path);
    let (streams, frames) = reassemble(&path);
    assert_eq!(frames, t["packets"].as_u64().unwrap());
    let certs = t["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 6);
    for c in certs {
        let (src, dst) = (c["src"].as_str().unwrap(), c["dst"].as_str().unwrap());
        let whole = streams
            .values()
            .filter(|s| s.src == src && s.dst == dst)
            .any(|s| {
                let (hs, _) = handshake_bytes(s);
                find_der(
                    &hs,
                    c["der_len"].as_u64().unwrap() as usize,
                    c["sha256_der"].as_str().unwrap(),
                )
                .is_some()
            });
        assert!(
            whole,
            "certificate {} not found {src} -> {dst}",
            c["sha256_der"]
        );
    }
    let mut tracker = Tracker::default();
    let mut reader = capture::open(&path).unwrap();
    while let Some(f) = reader.next_frame().unwrap() {
        tracker.push(&f, &mut |_| {});
    }
    let s = tracker.stats();
    assert_eq!(s.tunneled, frames, "every frame is 6in4");
    assert_eq!(s.encapsulations.to_string(), "IPv6-in-IPv4");
    assert_eq!(s.undecodable, 0);
}
