//! Tunnels around real sftunnel sessions: what `analyze` reports through them must be what it
//! reports on the same session unwrapped, plus the encapsulation note and the JSON `outer`.
//!
//! Two sources of tunneled bytes:
//! - real kernel VXLAN tunnels (`captures/record-tunnel.sh`, see captures/README.md): each
//!   session was recorded on the underlay and, at the same time, on the innermost device;
//! - every other kind, which this machine's kernel cannot create (no ipip, sit, gre, erspan,
//!   ip6tnl or geneve in it): the real frames of `sftunnel-valid.pcap` and
//!   `sftunnel-valid-ipv6.pcap` wrapped one by one in headers built here field by field after
//!   their RFCs (IPv4 RFC 791, IPv6 RFC 8200, GRE RFC 2784/2890, ERSPAN draft-foschiano-erspan,
//!   UDP RFC 768, Geneve RFC 8926), checksums computed. The frame count and times are kept, so
//!   every record must come out identical. Set `SFDIAG_ENCAP_DUMP=DIR` to keep the wrapped
//!   captures and read them with `tshark -r DIR/NAME.pcap -V` as an independent check.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sfdiag::capture;

use crate::common::{project_captures, sfdiag};

fn cap(name: &str) -> PathBuf {
    project_captures().join(name)
}

/// `sfdiag analyze --format jsonl ARGS` records.
fn jsonl(args: &[&Path]) -> Vec<Value> {
    let out = sfdiag()
        .args(["analyze", "--format", "jsonl"])
        .args(args)
        .output()
        .expect("sfdiag runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn analyze(ca: &str, capture: &Path) -> Vec<Value> {
    let ca = cap(ca);
    jsonl(&[Path::new("--ca"), &ca, capture])
}

/// `v` without the keys in `drop`, at any depth.
fn without(v: &Value, drop: &[&str]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !drop.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), without(v, drop)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| without(v, drop)).collect()),
        other => other.clone(),
    }
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == t).collect()
}

fn notes(records: &[Value]) -> Vec<String> {
    of_type(records, "note")
        .iter()
        .map(|n| n["text"].as_str().unwrap().to_string())
        .collect()
}

/// `[{"encapsulation", "src", "dst", "id"?}]` as compact tuples.
fn outer(session: &Value) -> Vec<(String, String, String, Option<u64>)> {
    session["outer"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    (
                        h["encapsulation"].as_str().unwrap().to_string(),
                        h["src"].as_str().unwrap().to_string(),
                        h["dst"].as_str().unwrap().to_string(),
                        h["id"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn hop(kind: &str, src: &str, dst: &str, id: Option<u64>) -> (String, String, String, Option<u64>) {
    (kind.into(), src.into(), dst.into(), id)
}

// ---- real kernel VXLAN tunnels ----------------------------------------------------------

/// The same session read on the underlay and on the innermost device: the certificates,
/// chains, alerts and sessions agree in everything but frame numbers and times (the two
/// devices saw the packets at different instants, and the underlay file has its own frames).
fn same_session_both_ways(name: &str, ca: &str) -> (Vec<Value>, Vec<Value>) {
    let wrapped = analyze(ca, &cap(name));
    let inner = analyze(ca, &cap(&format!("{name}.inner.pcap")));
    let drop = [
        "file",
        "frame",
        "ts",
        "at",
        "first_frame",
        "last_frame",
        "first_ts",
        "last_ts",
        "outer",
    ];
    for t in ["certificate", "chain", "alert", "session"] {
        let a: Vec<Value> = of_type(&wrapped, t)
            .iter()
            .map(|v| without(v, &drop))
            .collect();
        let b: Vec<Value> = of_type(&inner, t)
            .iter()
            .map(|v| without(v, &drop))
            .collect();
        assert!(!b.is_empty() || t == "alert", "{name}: no {t} unwrapped");
        assert_eq!(a, b, "{name}: {t} records differ through the tunnel");
    }
    assert!(notes(&inner).is_empty(), "{:?}", notes(&inner));
    assert!(of_type(&inner, "session")[0].get("outer").is_none());
    (wrapped, inner)
}

#[test]
fn vxlan_over_ipv4_reports_the_inner_session_and_the_outer_vteps() {
    let (w, _) = same_session_both_ways("sftunnel-vxlan.pcap", "tunnel-valid.ca.pem");
    let s = of_type(&w, "session")[0];
    assert_eq!(s["outcome"], "established");
    assert!(s["client"].as_str().unwrap().starts_with("198.51.100.2:"));
    assert_eq!(s["server"], "198.51.100.1:8305");
    assert_eq!(s["server_chain_verdict"]["code"], 0);
    assert_eq!(s["client_chain_verdict"]["code"], 0);
    assert_eq!(of_type(&w, "certificate").len(), 4);
    // The client's VTEP sent the SYN.
    assert_eq!(outer(s), [hop("VXLAN", "192.0.2.2", "192.0.2.1", Some(42))]);
    let n = notes(&w);
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(n[0].starts_with("encapsulations: VXLAN ("), "{}", n[0]);
    let c = of_type(&w, "capture")[0];
    assert_eq!(c["tcp_connections"], 1);
}

#[test]
fn vxlan_over_ipv6_with_ipv6_inside() {
    let (w, _) = same_session_both_ways("sftunnel-vxlan6.pcap", "tunnel-valid.ca.pem");
    let s = of_type(&w, "session")[0];
    assert_eq!(s["outcome"], "established");
    assert_eq!(s["server"], "[2001:db8:1::1]:8305");
    assert_eq!(s["client_cert"], true);
    assert_eq!(
        outer(s),
        [hop("VXLAN", "2001:db8::2", "2001:db8::1", Some(42))]
    );
    // The IPv6 overlay's own router solicitations and MLD reports are unwrapped too (not TCP).
    let c = of_type(&w, "capture")[0];
    assert!(c["frames"].as_u64().unwrap() > c["tcp_connections"].as_u64().unwrap());
    assert!(notes(&w)[0].starts_with("encapsulations: VXLAN"));
}

#[test]
fn vxlan_in_vxlan_keeps_the_failure_openssl_saw() {
    let name = "sftunnel-vxlan-in-vxlan-ca-expired.pcap";
    let (w, _) = same_session_both_ways(name, "tunnel-ca-expired.ca.pem");
    let s = of_type(&w, "session")[0];
    assert_eq!(s["outcome"], "failed");
    assert_eq!(s["server"], "203.0.113.1:8305");
    // What the openssl client logged while recording: num=10 at depth 1, then alert 45.
    let log = fs::read_to_string(cap(&format!("{name}.client.log"))).unwrap();
    assert!(
        log.contains("verify error:num=10:certificate has expired"),
        "{log}"
    );
    assert_eq!(s["server_chain_verdict"]["code"], 10);
    assert_eq!(s["server_chain_verdict"]["depth"], 1);
    let alerts = of_type(&w, "alert");
    assert_eq!(alerts[0]["code"], 45);
    assert_eq!(
        outer(s),
        [
            hop("VXLAN", "192.0.2.2", "192.0.2.1", Some(42)),
            hop("VXLAN", "2001:db8:1::2", "2001:db8:1::1", Some(43)),
        ]
    );
}

// ---- wrappers built after the RFCs around real recorded frames ---------------------------

/// RFC 1071: the ones' complement of the ones' complement sum of 16-bit words.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in p.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(hi) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An endpoint pair of one tunnel layer: (side A, side B); A is the client's side.
#[derive(Clone, Copy)]
enum Ends {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

impl Ends {
    fn v4(a: &str, b: &str) -> Ends {
        let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
            (a.parse().unwrap(), b.parse().unwrap());
        Ends::V4(a.octets(), b.octets())
    }
    fn v6(a: &str, b: &str) -> Ends {
        let (a, b): (std::net::Ipv6Addr, std::net::Ipv6Addr) =
            (a.parse().unwrap(), b.parse().unwrap());
        Ends::V6(a.octets(), b.octets())
    }
    fn text(self) -> (String, String) {
        match self {
            Ends::V4(a, b) => (
                std::net::Ipv4Addr::from(a).to_string(),
                std::net::Ipv4Addr::from(b).to_string(),
            ),
            Ends::V6(a, b) => (
                std::net::Ipv6Addr::from(a).to_string(),
                std::net::Ipv6Addr::from(b).to_string(),
            ),
        }
    }
}

/// An IP header (RFC 791 without options, DF set; RFC 8200 without extensions) from one end
/// of `ends` to the other, carrying `payload` as `protocol`.
fn ip(ends: Ends, from_a: bool, protocol: u8, id: u16, payload: &[u8]) -> Vec<u8> {
    match ends {
        Ends::V4(a, b) => {
            let (src, dst) = if from_a { (a, b) } else { (b, a) };
            let mut h = vec![0x45, 0x00];
            h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
            h.extend_from_slice(&id.to_be_bytes());
            h.extend_from_slice(&[0x40, 0x00, 64, protocol, 0, 0]);
            h.extend_from_slice(&src);
            h.extend_from_slice(&dst);
            let sum = checksum(&[&h]);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h.extend_from_slice(payload);
            h
        }
        Ends::V6(a, b) => {
            let (src, dst) = if from_a { (a, b) } else { (b, a) };
            let mut h = vec![0x60, 0x00, 0x00, 0x00];
            h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            h.extend_from_slice(&[protocol, 64]);
            h.extend_from_slice(&src);
            h.extend_from_slice(&dst);
            h.extend_from_slice(payload);
            h
        }
    }
}

/// UDP (RFC 768) with its checksum over the pseudo-header of `ends` (RFC 768 / RFC 8200 8.1).
fn udp(ends: Ends, from_a: bool, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let pseudo: Vec<u8> = match ends {
        Ends::V4(a, b) => {
            let (s, d) = if from_a { (a, b) } else { (b, a) };
            [&s[..], &d[..], &[0, 17], &len.to_be_bytes()].concat()
        }
        Ends::V6(a, b) => {
            let (s, d) = if from_a { (a, b) } else { (b, a) };
            [
                &s[..],
                &d[..],
                &u32::from(len).to_be_bytes(),
                &[0, 0, 0, 17],
            ]
            .concat()
        }
    };
    let sum = match checksum(&[&pseudo, &u]) {
        0 => 0xffff,
        s => s,
    };
    u[6..8].copy_from_slice(&sum.to_be_bytes());
    u
}

/// GRE (RFC 2784, RFC 2890): C, K, S flags as asked, version 0; the checksum covers the GRE
/// header and payload with the field zeroed, followed by 16 reserved bits.
fn gre(csum: bool, key: Option<u32>, seq: Option<u32>, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let flags = (if csum { 0x80 } else { 0 })
        | (if key.is_some() { 0x20 } else { 0 })
        | (if seq.is_some() { 0x10 } else { 0 });
    let mut g = vec![flags, 0x00];
    g.extend_from_slice(&protocol.to_be_bytes());
    if csum {
        g.extend_from_slice(&[0, 0, 0, 0]);
    }
    if let Some(k) = key {
        g.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        g.extend_from_slice(&s.to_be_bytes());
    }
    if csum {
        let sum = checksum(&[&g, payload]);
        g[4..6].copy_from_slice(&sum.to_be_bytes());
    }
    g.extend_from_slice(payload);
    g
}

/// ERSPAN type II header (8 bytes): Ver=1, VLAN, COS, En=3 (frames kept their tags), T=0,
/// Session ID; Reserved, Index.
fn erspan2(session: u16, index: u32, frame: &[u8]) -> Vec<u8> {
    // VLAN 0 and COS 0 are the zero bits between Ver and En.
    let word0 = (1u32 << 28) | (0b11 << 11) | u32::from(session & 0x3ff);
    let mut e = word0.to_be_bytes().to_vec();
    e.extend_from_slice(&(index & 0xf_ffff).to_be_bytes());
    e.extend_from_slice(frame);
    e
}

/// ERSPAN type III header (12 bytes, + 8 with the platform sub-header): Ver=2, VLAN, COS,
/// BSO, T, Session ID; Timestamp; SGT, P, FT, Hw ID, D, Gra, O.
fn erspan3(
    session: u16,
    timestamp: u32,
    ft: u8,
    platform: Option<[u8; 8]>,
    frame: &[u8],
) -> Vec<u8> {
    let word0 = (2u32 << 28) | (5 << 16) | u32::from(session & 0x3ff);
    let mut e = word0.to_be_bytes().to_vec();
    e.extend_from_slice(&timestamp.to_be_bytes());
    let sgt: u16 = 0x0102;
    let hw_id: u16 = 0x2a;
    // P=1 with FT=0 for an Ethernet frame, as Linux's erspan_build_header_v2 writes it.
    let tail: u16 = (u16::from(ft == 0) << 15)
        | (u16::from(ft & 0x1f) << 10)
        | ((hw_id & 0x3f) << 4)
        | (1 << 3) // D: egress
        | (0b11 << 1) // Gra: IEEE 1588
        | u16::from(platform.is_some()); // O
    e.extend_from_slice(&sgt.to_be_bytes());
    e.extend_from_slice(&tail.to_be_bytes());
    if let Some(p) = platform {
        e.extend_from_slice(&p);
    }
    e.extend_from_slice(frame);
    e
}

/// Geneve (RFC 8926): Ver=0, Opt Len, O=0, C=0, Protocol Type, VNI; one option TLV (class
/// 0x0102, type 0x01, 4 bytes of data) so that options are skipped by their length.
fn geneve(vni: u32, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let options = [0x01, 0x02, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef];
    let mut g = vec![(options.len() / 4) as u8, 0x00];
    g.extend_from_slice(&protocol.to_be_bytes());
    g.extend_from_slice(&(vni << 8).to_be_bytes());
    g.extend_from_slice(&options);
    g.extend_from_slice(payload);
    g
}

fn ethernet(from_a: bool, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let (a, b) = ([0x02, 0, 0, 0, 0xaa, 0x01], [0x02, 0, 0, 0, 0xbb, 0x02]);
    let (src, dst) = if from_a { (a, b) } else { (b, a) };
    [&dst[..], &src[..], &ethertype.to_be_bytes(), payload].concat()
}

/// One recorded frame to wrap: its Ethernet frame, its IP packet, and whether the client sent
/// it.
struct Inner<'a> {
    index: u64,
    eth: &'a [u8],
    ip: &'a [u8],
    from_client: bool,
}

type Wrap = fn(&Inner<'_>) -> Vec<u8>;

/// Writes the frames of `source` wrapped by `wrap` as a microsecond pcap (Ethernet) at `out`,
/// with the original times.
fn wrap_capture(source: &Path, out: &Path, wrap: Wrap) -> usize {
    let mut r = capture::open(source).unwrap();
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&262_144u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    let mut n = 0;
    while let Some(f) = r.next_frame().unwrap() {
        assert_eq!(f.linktype, capture::Linktype::ETHERNET);
        let ethertype = u16::from_be_bytes([f.data[12], f.data[13]]);
        let ip = &f.data[14..];
        let tcp_at = match ethertype {
            0x0800 => usize::from(ip[0] & 0x0f) * 4,
            0x86dd => 40,
            other => panic!("frame {}: EtherType {other:#x}", f.index),
        };
        let sport = u16::from_be_bytes([ip[tcp_at], ip[tcp_at + 1]]);
        let inner = Inner {
            index: f.index,
            eth: f.data,
            ip,
            from_client: sport != 8305,
        };
        let frame = wrap(&inner);
        pcap.extend_from_slice(&(f.ts.secs as u32).to_le_bytes());
        pcap.extend_from_slice(&(f.ts.nanos / 1000).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
        n += 1;
    }
    fs::write(out, pcap).unwrap();
    n
}

const V4_A: &str = "192.0.2.10";
const V4_B: &str = "192.0.2.20";
const V6_A: &str = "2001:db8:ff::10";
const V6_B: &str = "2001:db8:ff::20";

fn u4() -> Ends {
    Ends::v4(V4_A, V4_B)
}
fn u6() -> Ends {
    Ends::v6(V6_A, V6_B)
}

/// Wraps `source` with `wrap`, analyzes both, and holds them to each other: every record
/// equal but the wrapped session's `outer` (which must be `hops`) and the encapsulation note
/// (which must name `kinds`).
fn check_wrapper(
    name: &str,
    source: &str,
    wrap: Wrap,
    hops: &[(String, String, String, Option<u64>)],
    kinds: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{name}.pcap"));
    let frames = wrap_capture(&cap(source), &out, wrap);
    if let Some(keep) = std::env::var_os("SFDIAG_ENCAP_DUMP") {
        fs::create_dir_all(&keep).unwrap();
        fs::copy(&out, Path::new(&keep).join(format!("{name}.pcap"))).unwrap();
    }
    let plain = analyze("valid.ca.pem", &cap(source));
    let wrapped = analyze("valid.ca.pem", &out);
    let strip = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| {
                !(r["type"] == "note" && r["text"].as_str().unwrap().starts_with("encapsulations:"))
            })
            .map(|r| without(r, &["file", "outer"]))
            .collect()
    };
    assert_eq!(
        strip(&wrapped),
        strip(&plain),
        "{name}: records differ from the bare session"
    );
    let sessions = of_type(&wrapped, "session");
    assert_eq!(sessions.len(), 1, "{name}");
    assert_eq!(sessions[0]["outcome"], "established", "{name}");
    assert_eq!(outer(sessions[0]), hops, "{name}: outer layers");
    let note = notes(&wrapped)
        .into_iter()
        .find(|n| n.starts_with("encapsulations:"))
        .unwrap_or_else(|| panic!("{name}: no encapsulation note"));
    assert_eq!(
        note.split(" (").next().unwrap(),
        format!("encapsulations: {kinds}"),
        "{name}"
    );
    assert!(
        note.contains(&format!("({frames} frames unwrapped")),
        "{name}: {note}"
    );
}

fn h(kind: &str, ends: Ends, id: Option<u64>) -> (String, String, String, Option<u64>) {
    let (a, b) = ends.text();
    hop(kind, &a, &b, id)
}

const V4_SESSION: &str = "sftunnel-valid.pcap";
const V6_SESSION: &str = "sftunnel-valid-ipv6.pcap";

#[test]
fn ip_in_ip_all_four_ways() {
    check_wrapper(
        "ipip",
        V4_SESSION,
        |f| {
            ethernet(
                f.from_client,
                0x0800,
                &ip(u4(), f.from_client, 4, f.index as u16, f.ip),
            )
        },
        &[h("IPv4-in-IPv4", u4(), None)],
        "IPv4-in-IPv4",
    );
    check_wrapper(
        "sit",
        V6_SESSION,
        |f| {
            ethernet(
                f.from_client,
                0x0800,
                &ip(u4(), f.from_client, 41, f.index as u16, f.ip),
            )
        },
        &[h("IPv6-in-IPv4", u4(), None)],
        "IPv6-in-IPv4",
    );
    check_wrapper(
        "4in6",
        V4_SESSION,
        |f| ethernet(f.from_client, 0x86dd, &ip(u6(), f.from_client, 4, 0, f.ip)),
        &[h("IPv4-in-IPv6", u6(), None)],
        "IPv4-in-IPv6",
    );
    check_wrapper(
        "ip6ip6",
        V6_SESSION,
        |f| ethernet(f.from_client, 0x86dd, &ip(u6(), f.from_client, 41, 0, f.ip)),
        &[h("IPv6-in-IPv6", u6(), None)],
        "IPv6-in-IPv6",
    );
}

#[test]
fn gre_plain_with_every_optional_field_and_bridging_ethernet() {
    check_wrapper(
        "gre",
        V4_SESSION,
        |f| {
            let g = gre(false, None, None, 0x0800, f.ip);
            ethernet(
                f.from_client,
                0x0800,
                &ip(u4(), f.from_client, 47, f.index as u16, &g),
            )
        },
        &[h("GRE", u4(), None)],
        "GRE",
    );
    check_wrapper(
        "ip6gre-csum-key-seq",
        V6_SESSION,
        |f| {
            let g = gre(true, Some(0x0001_0203), Some(f.index as u32), 0x86dd, f.ip);
            ethernet(f.from_client, 0x86dd, &ip(u6(), f.from_client, 47, 0, &g))
        },
        &[h("GRE", u6(), Some(0x0001_0203))],
        "GRE",
    );
    check_wrapper(
        "gretap",
        V4_SESSION,
        |f| {
            let g = gre(false, Some(77), None, 0x6558, f.eth);
            ethernet(
                f.from_client,
                0x0800,
                &ip(u4(), f.from_client, 47, f.index as u16, &g),
            )
        },
        &[h("GRE", u4(), Some(77))],
        "GRE",
    );
}

#[test]
fn erspan_types_one_two_and_three() {
    check_wrapper(
        "erspan1",
        V4_SESSION,
        |f| {
            let g = gre(false, None, None, 0x88be, f.eth);
            ethernet(true, 0x0800, &ip(u4(), true, 47, f.index as u16, &g))
        },
        &[h("ERSPAN type I", u4(), None)],
        "ERSPAN type I",
    );
    // A SPAN session copies both directions from one switch to one collector: A -> B always.
    check_wrapper(
        "erspan2",
        V4_SESSION,
        |f| {
            let e = erspan2(100, 3, f.eth);
            let g = gre(false, None, Some(f.index as u32), 0x88be, &e);
            ethernet(true, 0x0800, &ip(u4(), true, 47, f.index as u16, &g))
        },
        &[h("ERSPAN type II", u4(), Some(100))],
        "ERSPAN type II",
    );
    check_wrapper(
        "erspan3-platform-subheader",
        V6_SESSION,
        |f| {
            let platform = [0x18, 0x00, 0x00, 0x07, 0x00, 0x00, 0x12, 0x34];
            let e = erspan3(513, f.index as u32 * 1000, 0, Some(platform), f.eth);
            let g = gre(false, None, Some(f.index as u32), 0x22eb, &e);
            ethernet(true, 0x86dd, &ip(u6(), true, 47, 0, &g))
        },
        &[h("ERSPAN type III", u6(), Some(513))],
        "ERSPAN type III",
    );
    check_wrapper(
        "erspan3-ip-frame",
        V4_SESSION,
        |f| {
            let e = erspan3(7, 0, 2, None, f.ip);
            let g = gre(false, None, Some(f.index as u32), 0x22eb, &e);
            ethernet(true, 0x0800, &ip(u4(), true, 47, f.index as u16, &g))
        },
        &[h("ERSPAN type III", u4(), Some(7))],
        "ERSPAN type III",
    );
}

#[test]
fn geneve_with_options_carrying_ethernet_or_ip() {
    check_wrapper(
        "geneve-ethernet",
        V4_SESSION,
        |f| {
            let g = geneve(0x00_1234, 0x6558, f.eth);
            let u = udp(u4(), f.from_client, 49152 + (f.index as u16 % 64), 6081, &g);
            ethernet(
                f.from_client,
                0x0800,
                &ip(u4(), f.from_client, 17, f.index as u16, &u),
            )
        },
        &[h("Geneve", u4(), Some(0x1234))],
        "Geneve",
    );
    check_wrapper(
        "geneve6-ip",
        V6_SESSION,
        |f| {
            let g = geneve(9, 0x86dd, f.ip);
            let u = udp(u6(), f.from_client, 50000, 6081, &g);
            ethernet(f.from_client, 0x86dd, &ip(u6(), f.from_client, 17, 0, &u))
        },
        &[h("Geneve", u6(), Some(9))],
        "Geneve",
    );
}

#[test]
fn nested_gre_in_geneve_in_6in4() {
    fn inner_ends() -> Ends {
        Ends::v4("198.51.100.10", "198.51.100.20")
    }
    check_wrapper(
        "gre-in-geneve-in-6in4",
        V4_SESSION,
        |f| {
            let c = f.from_client;
            let g = gre(false, Some(7), None, 0x0800, f.ip);
            let l3 = ethernet(c, 0x0800, &ip(inner_ends(), c, 47, f.index as u16, &g));
            let gv = geneve(5, 0x6558, &l3);
            let u = udp(u6(), c, 50001, 6081, &gv);
            let v6 = ip(u6(), c, 17, 0, &u);
            ethernet(c, 0x0800, &ip(u4(), c, 41, f.index as u16, &v6))
        },
        &[
            h("IPv6-in-IPv4", u4(), None),
            h("Geneve", u6(), Some(5)),
            h("GRE", inner_ends(), Some(7)),
        ],
        "IPv6-in-IPv4, GRE, Geneve",
    );
}

#[test]
fn a_cut_or_bad_tunnel_header_is_a_note_naming_the_frame_and_the_rest_is_analyzed() {
    // Frame 3 (the client's bare ACK of the TCP handshake) loses its tunnel header's end;
    // frame 5 (another bare ACK) claims ERSPAN version 3. Every other frame is whole.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("damaged.pcap");
    wrap_capture(&cap(V4_SESSION), &out, |f| {
        let e = erspan2(100, 3, f.eth);
        let mut g = gre(false, None, Some(f.index as u32), 0x88be, &e);
        match f.index {
            3 => g.truncate(10),
            5 => g[8] = 0x30,
            _ => {}
        }
        ethernet(true, 0x0800, &ip(u4(), true, 47, f.index as u16, &g))
    });
    let r = analyze("valid.ca.pem", &out);
    let n = notes(&r);
    let cut = n
        .iter()
        .find(|t| t.contains("ERSPAN type II header cut short (2 of 8 bytes)"));
    assert!(cut.is_some(), "{n:?}");
    assert!(
        n.iter()
            .any(|t| t.contains("malformed ERSPAN type II header: version is not 1")),
        "{n:?}"
    );
    let framed: Vec<u64> = of_type(&r, "note")
        .iter()
        .filter(|v| v["text"].as_str().unwrap().starts_with("frame not decoded"))
        .map(|v| v["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(framed, [3, 5]);
    let s = of_type(&r, "session");
    assert_eq!(s[0]["outcome"], "established");
    assert_eq!(of_type(&r, "certificate").len(), 4);
}
