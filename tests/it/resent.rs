//! Segments seen late or twice, made from the project's own recordings (`captures/`) the
//! way it happens in the world: a segment lost before the tap and retransmitted after both
//! FINs (the frame moved after them), and every packet written on two pcapng interfaces
//! (`dumpcap -i any -i X`), one interface's buffer after the other's or interleaved. The
//! report must be the one of the capture as recorded.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::{project_captures, sfdiag};

/// A classic little-endian microsecond pcap: its file header and its records (record
/// header included).
fn records(name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = fs::read(project_captures().join(name)).unwrap();
    assert_eq!(bytes[..4], [0xd4, 0xc3, 0xb2, 0xa1], "{name}: LE µs pcap");
    let (header, mut rest) = bytes.split_at(24);
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let (rec, tail) = rest.split_at(16 + len);
        out.push(rec.to_vec());
        rest = tail;
    }
    (header.to_vec(), out)
}

/// The capture with frame `frame` (1-based) moved to just after frame `after`: lost before
/// the tap, its retransmission seen there, 1 µs after the frame before it.
fn moved(name: &str, frame: usize, after: usize) -> Vec<u8> {
    let (header, mut recs) = records(name);
    let mut rec = recs.remove(frame - 1);
    let prev = &recs[after - 2];
    let (secs, micros) = (
        u32::from_le_bytes(prev[0..4].try_into().unwrap()),
        u32::from_le_bytes(prev[4..8].try_into().unwrap()) + 1,
    );
    let (secs, micros) = (secs + micros / 1_000_000, micros % 1_000_000);
    rec[0..4].copy_from_slice(&secs.to_le_bytes());
    rec[4..8].copy_from_slice(&micros.to_le_bytes());
    recs.insert(after - 1, rec);
    let mut out = header;
    recs.iter().for_each(|r| out.extend_from_slice(r));
    out
}

/// A pcapng block: type, body padded to 4 bytes, total length before and after.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().next_multiple_of(4), 0);
    let total = u32::try_from(body.len() + 12).unwrap();
    let mut b = kind.to_le_bytes().to_vec();
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(&body);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// The capture as a pcapng with two interfaces of its link type, each packet on both:
/// `batched` writes interface 0's packets, then interface 1's (dumpcap flushing one
/// buffer after the other), else each packet twice in a row.
fn on_two_interfaces(name: &str, batched: bool) -> Vec<u8> {
    let (header, recs) = records(name);
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]); // version 1.0
    shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
    let mut out = block(0x0A0D_0D0A, &shb);
    let mut idb = header[20..22].to_vec(); // link type
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&header[16..20]); // snap length
    for _ in 0..2 {
        out.extend(block(1, &idb));
    }
    let epb = |iface: u32, rec: &[u8]| {
        let secs = u64::from(u32::from_le_bytes(rec[0..4].try_into().unwrap()));
        let micros = u64::from(u32::from_le_bytes(rec[4..8].try_into().unwrap()));
        let ts = secs * 1_000_000 + micros;
        let mut body = iface.to_le_bytes().to_vec();
        body.extend_from_slice(&u32::try_from(ts >> 32).unwrap().to_le_bytes());
        body.extend_from_slice(&u32::try_from(ts & 0xffff_ffff).unwrap().to_le_bytes());
        body.extend_from_slice(&rec[8..16]); // captured and original length
        body.extend_from_slice(&rec[16..]);
        block(6, &body)
    };
    if batched {
        for iface in 0..2 {
            recs.iter().for_each(|r| out.extend(epb(iface, r)));
        }
    } else {
        for r in &recs {
            out.extend(epb(0, r));
            out.extend(epb(1, r));
        }
    }
    out
}

/// `sfdiag analyze --format jsonl` of `capture` with these arguments before it.
fn analyze(args: &[&str], capture: &Path) -> Vec<Value> {
    let out = sfdiag()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["analyze", "--format", "jsonl"])
        .args(args)
        .arg(capture)
        .output()
        .expect("sfdiag runs");
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

/// The fields of a record that do not depend on where the file is or its frame numbers.
fn gist(r: &Value, drop: &[&str]) -> Value {
    let mut r = r.clone();
    for key in ["file", "frame", "first_frame", "last_frame", "alerts"]
        .iter()
        .chain(drop)
    {
        r.as_object_mut().unwrap().remove(*key);
    }
    r
}

/// Writes `bytes` as `name` in a fresh folder and analyzes it.
fn analyze_bytes(args: &[&str], name: &str, bytes: &[u8]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    analyze(args, &path)
}

#[test]
fn a_tls12_alert_retransmitted_after_both_fins_is_still_the_reason() {
    // Frame 13 is the FMC's fatal certificate_expired, 14-16 the FINs and the last ACK.
    let name = "sftunnel-ftd-expired.pcap";
    let args = ["--ca", "captures/ftd-expired.ca.pem"];
    let recorded = analyze(&args, &project_captures().join(name));
    let late = analyze_bytes(&args, name, &moved(name, 13, 16));

    let alerts = of_type(&late, "alert");
    assert_eq!(alerts.len(), 1, "{late:#?}");
    assert_eq!(
        (&alerts[0]["frame"], &alerts[0]["code"], &alerts[0]["role"]),
        (&Value::from(16), &Value::from(45), &Value::from("server"))
    );
    let s = of_type(&late, "session");
    assert_eq!(s.len(), 1, "{late:#?}");
    assert_eq!(s[0]["outcome"], "failed");
    assert_eq!(s[0]["failed_by"], "server");
    assert!(
        s[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("server sent fatal certificate_expired after client Certificate"),
        "{}",
        s[0]
    );
    let was = of_type(&recorded, "session");
    assert_eq!(gist(s[0], &["last_ts"]), gist(was[0], &["last_ts"]));
    let capture = of_type(&late, "capture");
    assert_eq!(capture[0]["tcp_gaps"], 0);
}

#[test]
fn a_tls13_alert_retransmitted_after_both_fins_makes_the_session_failed() {
    // Frame 10 is the device's plaintext fatal certificate_expired, 11-13 the FINs and the
    // last ACK.
    let name = "tls13-ca-expired.pcap";
    let args = [
        "--ca",
        "certs/expired-ca/fmc/etc/sf/ca_root/cacert.pem",
        "--keylog",
        "captures/tls13-ca-expired.keylog",
    ];
    let recorded = analyze(&args, &project_captures().join(name));
    let late = analyze_bytes(&args, name, &moved(name, 10, 13));

    let alerts = of_type(&late, "alert");
    assert_eq!(alerts.len(), 1, "{late:#?}");
    assert_eq!(
        (&alerts[0]["frame"], &alerts[0]["code"], &alerts[0]["role"]),
        (&Value::from(13), &Value::from(45), &Value::from("client"))
    );
    let s = of_type(&late, "session");
    assert_eq!(s.len(), 1, "{late:#?}");
    assert_eq!(
        (&s[0]["outcome"], &s[0]["failed_by"]),
        (&"failed".into(), &"client".into())
    );
    assert!(
        s[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("client sent fatal certificate_expired after server Certificate"),
        "{}",
        s[0]
    );
    let was = of_type(&recorded, "session");
    assert_eq!(gist(s[0], &["last_ts"]), gist(was[0], &["last_ts"]));
}

#[test]
fn a_connection_on_two_pcapng_interfaces_is_reported_once() {
    let name = "sftunnel-valid.pcap";
    let args = ["--ca", "captures/valid.ca.pem"];
    let recorded = analyze(&args, &project_captures().join(name));
    let (_, recs) = records(name);
    for batched in [true, false] {
        let got = analyze_bytes(&args, "two.pcapng", &on_two_interfaces(name, batched));
        for t in ["certificate", "chain", "alert", "session"] {
            let (was, now) = (of_type(&recorded, t), of_type(&got, t));
            assert_eq!(now.len(), was.len(), "batched {batched}: {t}: {got:#?}");
            for (a, b) in was.iter().zip(&now) {
                assert_eq!(gist(a, &[]), gist(b, &[]), "batched {batched}: {t}");
            }
        }
        let capture = of_type(&got, "capture");
        assert_eq!(capture[0]["frames"], 2 * recs.len(), "batched {batched}");
        assert_eq!(capture[0]["tcp_connections"], 1, "batched {batched}");
        assert_eq!(capture[0]["tcp_gaps"], 0, "batched {batched}");
    }
}
