//! Seed corpora for the fuzz targets, made from real captures and certificates at run time
//! (the third-party captures are never copied into the repository).
//!
//! `seeds OUT_DIR FILE...`: for each capture, a small copy of it (capture_reader, analyze),
//! its frames in net_frames' format, each TLS connection's two directions in tls_session's
//! format, and every certificate chain seen (cert_judge); PEM files become cert_judge seeds;
//! tunnel_proto gets one frame of each message type. Seeds are cut to `MAX_SEED` bytes so
//! libFuzzer's default input length stays small.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sfdiag::capture::{self, Linktype};
use sfdiag::net::{self, ConnId, EventKind, Tracker};
use sfdiag::sftunnel::Role;
use sfdiag::tls::{self, Side};
use sfdiag::tunnel::proto::{self, Message, PushAck, PushFile};

const MAX_SEED: usize = 64 << 10;

/// Must match LINKTYPES in fuzz/src/lib.rs.
const LINKTYPES: [u32; 10] = [1, 113, 276, 0, 108, 101, 228, 229, 12, 147];

struct Out {
    dir: PathBuf,
    n: usize,
}

impl Out {
    fn put(&mut self, target: &str, stem: &str, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        let data = &data[..data.len().min(MAX_SEED)];
        fs::write(dir.join(format!("{stem}-{}", self.n)), data).expect("write seed");
        self.n += 1;
    }
}

/// Frames of one link type, as an in-memory list.
struct Frames {
    linktype: Linktype,
    frames: Vec<(i64, u32, Vec<u8>)>,
}

fn read_frames(path: &Path) -> Option<Frames> {
    let mut r = capture::open(path).ok()?;
    let mut out: Option<Frames> = None;
    let mut size = 0;
    while let Ok(Some(f)) = r.next_frame() {
        let fr = out.get_or_insert_with(|| Frames {
            linktype: f.linktype,
            frames: Vec::new(),
        });
        if f.linktype != fr.linktype {
            continue;
        }
        size += f.data.len() + 16;
        if size > MAX_SEED {
            break;
        }
        fr.frames
            .push((f.ts.secs, f.ts.nanos / 1000, f.data.to_vec()));
    }
    out
}

fn pcap_of(f: &Frames) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&f.linktype.0.to_le_bytes());
    for (secs, usecs, data) in &f.frames {
        b.extend_from_slice(&(*secs as u32).to_le_bytes());
        b.extend_from_slice(&usecs.to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
    }
    b
}

fn net_frames_of(f: &Frames) -> Option<Vec<u8>> {
    let lt = LINKTYPES.iter().position(|&l| l == f.linktype.0)? as u8;
    let mut b = vec![lt];
    for (_, _, data) in &f.frames {
        let n = data.len().min(usize::from(u16::MAX));
        b.extend_from_slice(&(n as u16).to_be_bytes());
        b.extend_from_slice(&data[..n]);
    }
    Some(b)
}

/// Appends `bytes` of `side` in tls_session's control-byte format.
fn put_chunk(out: &mut Vec<u8>, side: Side, mut bytes: &[u8]) {
    let s = if side == Side::A { 0 } else { 0x40 };
    while !bytes.is_empty() {
        if bytes.len() >= 64 {
            // 0xfe/0xff are gap markers: side B's long chunks stop at 61 * 64.
            let max = if side == Side::A { 63 } else { 61 };
            let n = (bytes.len() / 64).min(max);
            out.push(0x80 | s | n as u8);
            out.extend_from_slice(&bytes[..n * 64]);
            bytes = &bytes[n * 64..];
        } else {
            out.push(s | bytes.len() as u8);
            out.extend_from_slice(bytes);
            bytes = &[];
        }
    }
}

/// Per TCP connection: tls_session input, and the certificate chains its TLS carried.
fn tls_seeds(f: &Frames) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut tracker = Tracker::new(net::Config::default());
    let mut streams: BTreeMap<ConnId, Vec<u8>> = BTreeMap::new();
    for (i, (secs, usecs, data)) in f.frames.iter().enumerate() {
        let frame = capture::Frame {
            index: i as u64 + 1,
            ts: capture::Timestamp::new(*secs, u64::from(*usecs) * 1000),
            linktype: f.linktype,
            data,
            orig_len: data.len() as u32,
            interface: 0,
        };
        tracker.push(&frame, &mut |ev| match ev.kind {
            EventKind::Data {
                conn, dir, bytes, ..
            } => {
                let side = if dir.index() == 0 { Side::A } else { Side::B };
                put_chunk(streams.entry(conn).or_default(), side, bytes);
            }
            EventKind::Gap { conn, dir, .. } => {
                streams
                    .entry(conn)
                    .or_default()
                    .push(if dir.index() == 0 { 0xff } else { 0xfe });
            }
            _ => {}
        });
    }
    let mut chains = Vec::new();
    let mut seeds = Vec::new();
    for stream in streams.into_values() {
        // Replay through the session to find certificate chains.
        let mut session: tls::Session<u64> = tls::Session::new(tls::Limits::default());
        let mut events = Vec::new();
        let mut rest = &stream[..];
        while let Some((&c, tail)) = rest.split_first() {
            if c >= 0xfe {
                rest = tail;
                continue;
            }
            let side = if c & 0x40 == 0 { Side::A } else { Side::B };
            let n = usize::from(c & 0x3f) * if c & 0x80 != 0 { 64 } else { 1 };
            let n = n.min(tail.len());
            session.feed(side, &tail[..n], 0, &mut events);
            rest = &tail[n..];
        }
        for e in events {
            if let tls::EventKind::Certificate { ders, .. } = e.kind {
                chains.push(ders.concat());
            }
        }
        if session.is_tls() {
            seeds.push(stream);
        }
    }
    (seeds, chains)
}

fn tunnel_seeds() -> Vec<Vec<u8>> {
    let msgs = [
        Message::Hello {
            role: Role::Device,
            uuid: "c8d5d5c6-87c9-11ef-a993-b9831565bc4e".into(),
            name: "ftd1".into(),
            version: "sfdiag 0.1".into(),
            channel: sfdiag::sftunnel::Channel::Control,
        },
        Message::Hello {
            role: Role::Fmc,
            uuid: "0f3e1d3a-0000-4000-8000-000000000001".into(),
            name: "fmc".into(),
            version: "sfdiag 0.1".into(),
            channel: sfdiag::sftunnel::Channel::Events,
        },
        Message::Heartbeat {
            seq: 1,
            unix_ms: 1_700_000_000_000,
        },
        Message::HeartbeatAck {
            seq: 1,
            unix_ms: 1_700_000_000_001,
        },
        Message::Push {
            id: 7,
            files: vec![
                PushFile {
                    name: "cacert.pem".into(),
                    mode: 0o644,
                    data: b"-----BEGIN CERTIFICATE-----\n".to_vec(),
                },
                PushFile {
                    name: "sftunnel-key.pem".into(),
                    mode: 0o600,
                    data: vec![1, 2, 3],
                },
            ],
        },
        Message::PushAck {
            id: 7,
            ack: PushAck {
                ok: true,
                message: "installed".into(),
            },
        },
    ];
    let all: Vec<u8> = msgs.iter().flat_map(proto::encode).collect();
    let mut seeds: Vec<Vec<u8>> = msgs.iter().map(proto::encode).collect();
    seeds.push(all);
    seeds
}

/// An FMC's ims.conf and sftunnel.conf as `pki init` writes them, joined by a zero byte.
fn conf_seed() -> Vec<u8> {
    use sfdiag::pki::conf::{self, ImsConf, PeerEntry, ProxySsl, SftunnelConf};
    use sfdiag::pki::layout::Identity;
    use sfdiag::sftunnel::Role as PkiRole;
    let id = |name: &str, uuid: &str, ip: &str, role| Identity {
        name: name.into(),
        uuid: uuid.parse().expect("uuid"),
        ip: ip.parse().expect("ip"),
        role,
    };
    let fmc = id(
        "fmc",
        "0f3e1d3a-0000-4000-8000-000000000001",
        "127.0.0.1",
        PkiRole::Fmc,
    );
    let ims = conf::render_ims_conf(&ImsConf {
        identity: fmc,
        manager_uuid: None,
    });
    let sft = conf::render_sftunnel_conf(&SftunnelConf {
        proxy: ProxySsl {
            cert: "/etc/sf/keys/sftunnel-cert.pem".into(),
            key: "/etc/sf/keys/sftunnel-key.pem".into(),
            ca: "/etc/sf/ca_root/cacert.pem".into(),
            tls_version: conf::TLS_VERSION.into(),
        },
        peers: vec![
            PeerEntry {
                identity: id(
                    "ftd1",
                    "c8d5d5c6-87c9-11ef-a993-b9831565bc4e",
                    "127.1.0.1",
                    PkiRole::Device,
                ),
                port: conf::SFTUNNEL_PORT,
            },
            PeerEntry {
                identity: id(
                    "fmc2",
                    "c8d5d5c6-87c9-11ef-a993-b9831565bc4f",
                    "::1",
                    PkiRole::HaSecondary,
                ),
                port: 8306,
            },
        ],
    });
    let mut b = ims.into_bytes();
    b.push(0);
    b.extend(sft.into_bytes());
    b
}

/// tls13_decrypt inputs that walk a whole connection with the right secrets and sequence
/// numbers (see the harness for the op format): the server's flight, the client's, a
/// post-handshake CertificateRequest and its answer, a KeyUpdate, an alert under the next
/// generation; once per suite.
fn tls13_decrypt_seeds() -> Vec<(&'static str, Vec<u8>)> {
    fn hs(typ: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![typ, 0, (body.len() >> 8) as u8, body.len() as u8];
        m.extend_from_slice(body);
        m
    }
    fn cert(context: &[u8]) -> Vec<u8> {
        let der = [0x30, 3, 1, 2, 3];
        let mut b = vec![context.len() as u8];
        b.extend_from_slice(context);
        b.extend_from_slice(&[0, 0, der.len() as u8 + 5, 0, 0, der.len() as u8]);
        b.extend_from_slice(&der);
        b.extend_from_slice(&[0, 0]);
        hs(11, &b)
    }
    // (side: 0 client 1 server, secret, inner type index, seq, data)
    let walk = |fin: usize| -> Vec<u8> {
        let mut server = hs(8, &[0, 0]);
        server.extend(hs(13, &[0, 0, 0]));
        server.extend(cert(&[]));
        server.extend(hs(15, &[8, 4, 0, 2, 0, 0]));
        server.extend(hs(20, &vec![0x5a; fin]));
        let mut client = cert(&[]);
        client.extend(hs(20, &vec![0xa5; fin]));
        let mut answer = cert(&[7]);
        answer.extend(hs(15, &[8, 4, 0, 2, 0, 0]));
        answer.extend(hs(20, &vec![0x77; fin]));
        let ops: Vec<(u8, u8, u8, u8, Vec<u8>)> = vec![
            (1, 1, 0, 0, server),
            (0, 0, 0, 0, client),
            (1, 3, 0, 0, hs(13, &[1, 7, 0, 0])),
            (0, 2, 0, 0, answer),
            (0, 2, 2, 1, b"hello".to_vec()),
            (1, 3, 0, 1, hs(24, &[0])),
            (1, 5, 1, 0, vec![2, 48]),
        ];
        let mut b = Vec::new();
        for (side, secret, typ, seq, data) in ops {
            b.push(side | secret << 1);
            b.push(typ | seq << 2);
            b.push(data.len() as u8);
            b.extend(data);
        }
        b
    };
    let mut seeds = Vec::new();
    for (name, first, fin) in [("aes128", 0u8, 32), ("aes256", 1, 48), ("chacha", 2, 32)] {
        let mut s = vec![first];
        s.extend(walk(fin));
        seeds.push((name, s));
    }
    seeds
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: seeds OUT_DIR FILE..."));
    let mut out = Out { dir, n: 0 };
    for path in args.map(PathBuf::from) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let stem: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if name.ends_with(".keylog") {
            if let Ok(bytes) = fs::read(&path) {
                out.put("keylog", &stem, &bytes);
            }
            continue;
        }
        if name.ends_with(".pem") || name.ends_with(".der") || name.ends_with(".crt") {
            if let Ok(bytes) = fs::read(&path) {
                out.put("cert_judge", &stem, &bytes);
            }
            continue;
        }
        let Some(frames) = read_frames(&path) else {
            eprintln!("skipped (not a capture): {}", path.display());
            continue;
        };
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX);
        if size <= MAX_SEED as u64 {
            // Small files as they are: pcapng and gzip framing too.
            let bytes = fs::read(&path).expect("read capture");
            out.put("capture_reader", &stem, &bytes);
            out.put("analyze", &stem, &bytes);
        }
        let pcap = pcap_of(&frames);
        out.put("capture_reader", &stem, &pcap);
        out.put("analyze", &stem, &pcap);
        if let Some(b) = net_frames_of(&frames) {
            out.put("net_frames", &stem, &b);
        }
        let (streams, chains) = tls_seeds(&frames);
        for s in streams.iter().take(4) {
            out.put("tls_session", &stem, s);
        }
        for c in chains.iter().take(4) {
            out.put("cert_judge", &stem, c);
        }
    }
    for s in tunnel_seeds() {
        out.put("tunnel_proto", "msg", &s);
    }
    out.put("pki_conf", "lab", &conf_seed());
    for (name, seed) in tls13_decrypt_seeds() {
        out.put("tls13_decrypt", name, &seed);
    }
    eprintln!("{} seeds in {}", out.n, out.dir.display());
}
