//! The fuzz harnesses: one function per target, taking arbitrary bytes, driving one public
//! entry point of sfdiag and checking what must hold whatever the input (no panic, bounded
//! memory, stream offsets that add up, codecs that round-trip).
//!
//! The cargo-fuzz targets in `fuzz_targets/` are one-line calls into this file, and the
//! integration tests include this same file (`tests/it/hostile.rs`) to replay every input in
//! `fuzz/regressions/<target>/`, so a crash found here stays a test in `cargo test` without
//! libFuzzer. It depends on sfdiag, `time` and aws-lc-rs (to seal TLS 1.3 records
//! the way a peer does, for `tls13_decrypt`), and it never prints.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use sfdiag::analysis::{self, Finding, Options};
use sfdiag::capture::{self, Frame, Linktype, Timestamp};
use sfdiag::cert::{self, CertInfo};
use sfdiag::judge;
use sfdiag::net::{self, ConnId, Dir, Event, EventKind, Mark, TcpFlags, TcpSegment, Tracker};
use sfdiag::report::{self, Format};
use sfdiag::tls::{self, Limits, Side};
use sfdiag::tunnel::proto;

/// A harness: arbitrary bytes in, a panic when something that must hold does not.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its directory under `fuzz/regressions` and `fuzz/corpus`.
pub const TARGETS: &[(&str, Harness)] = &[
    ("capture_reader", capture_reader),
    ("net_frames", net_frames),
    ("net_reassembly", net_reassembly),
    ("tls_session", tls_session),
    ("cert_judge", cert_judge),
    ("analyze", analyze),
    ("tunnel_proto", tunnel_proto),
    ("pki_conf", pki_conf),
    ("keylog", keylog),
    ("tls13_decrypt", tls13_decrypt),
];

/// Runs the named target on `data` (None: no such target).
pub fn run(target: &str, data: &[u8]) -> Option<()> {
    let (_, f) = TARGETS.iter().find(|(name, _)| *name == target)?;
    f(data);
    Some(())
}

/// Hands out its bytes a few at a time, the way a pipe or a gzip stream does, so the
/// reader's refill paths are exercised and not only the one-big-read case.
struct Dribble {
    data: Arc<[u8]>,
    pos: usize,
    step: usize,
}

impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The read size for `data`: it depends on the length only, so a crash replays exactly.
fn read_step(data: &[u8]) -> usize {
    match data.len() % 4 {
        0 => usize::MAX,
        1 => 1,
        2 => 7,
        _ => 4093,
    }
}

fn reader_with_step(data: &[u8], step: usize) -> Result<capture::Reader, capture::CaptureError> {
    capture::Reader::new(Dribble {
        data: data.into(),
        pos: 0,
        step,
    })
}

fn reader_over(data: &[u8]) -> Result<capture::Reader, capture::CaptureError> {
    reader_with_step(data, read_step(data))
}

fn check_frame(frame: &Frame<'_>, expect_index: u64) {
    assert_eq!(frame.index, expect_index, "frames are numbered 1, 2, 3...");
    assert!(frame.ts.nanos < 1_000_000_000, "nanos within the second");
    assert!(frame.data.len() <= capture::MAX_BLOCK_LEN);
}

/// What a reader made of an input: each frame (owned) and how reading ended.
type ReadResult = (
    Vec<(u64, Timestamp, Linktype, u32, u32, Vec<u8>)>,
    Option<String>,
);

fn read_all(data: &[u8], step: usize) -> ReadResult {
    let mut reader = match reader_with_step(data, step) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut frames = Vec::new();
    let mut end = None;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                let n = frames.len() as u64 + 1;
                check_frame(&frame, n);
                // A gzip member can expand a lot, but not without limit per input byte.
                assert!(n <= 1 + data.len() as u64 * 1100, "more frames than bytes");
                frames.push((
                    frame.index,
                    frame.ts,
                    frame.linktype,
                    frame.orig_len,
                    frame.interface,
                    frame.data.to_vec(),
                ));
            }
            Ok(None) => break,
            Err(e) => {
                assert!(
                    e.after_frame() <= frames.len() as u64,
                    "error names a frame not yet read"
                );
                end = Some(e.to_string());
                break;
            }
        }
    }
    assert_eq!(reader.frames_read(), frames.len() as u64);
    // After the end (or an error) the reader stays ended.
    assert!(matches!(reader.next_frame(), Ok(None)));
    (frames, end)
}

/// pcap / pcapng / gzip bytes through `capture::Reader`: frames numbered in order, no frame
/// bigger than the block limit, the loop ends (each frame costs at least a record header),
/// and the same frames and the same ending whether the input comes in one read or dribbles
/// in (a pipe, a gzip stream; for damaged gzip see below).
pub fn capture_reader(data: &[u8]) {
    let whole = read_all(data, usize::MAX);
    let step = read_step(data);
    if step == usize::MAX {
        return;
    }
    let dribbled = read_all(data, step);
    if data.starts_with(&[0x1f, 0x8b]) {
        // flate2 drops the output of a read that meets corruption, so how much of a damaged
        // gzip stream survives depends on the read sizes: the frames must agree as far as both go.
        let n = whole.0.len().min(dribbled.0.len());
        assert!(
            whole.0[..n] == dribbled.0[..n],
            "gzip: frames differ by read size"
        );
        if whole.0.len() != dribbled.0.len() {
            assert!(
                whole.1.is_some() && dribbled.1.is_some(),
                "only a damaged stream differs"
            );
        }
        return;
    }
    assert!(
        whole == dribbled,
        "reads of {step} bytes give other frames or another ending: {:?} vs {:?}",
        whole.1,
        dribbled.1
    );
}

/// Per-direction bookkeeping for the stream invariants of `net` events.
#[derive(Default)]
struct StreamCheck {
    /// Next offset each (connection, direction) must continue at.
    next: HashMap<(ConnId, usize), u64>,
    open: HashMap<ConnId, ()>,
    closed: u64,
    opened: u64,
    /// Low byte of the sequence number at stream offset 0, learnt from the first byte seen,
    /// per (connection, direction).
    seq_low: HashMap<(ConnId, usize), u8>,
    /// (client, server) of each open connection.
    endpoints: HashMap<ConnId, (SocketAddr, SocketAddr)>,
    /// (source, destination) pairs that were sent garbage bytes: no content check for them.
    tainted: HashSet<(SocketAddr, SocketAddr)>,
}

impl StreamCheck {
    fn offset(&mut self, conn: ConnId, dir: Dir, offset: u64, len: u64) {
        let next = self.next.entry((conn, dir.index())).or_insert(offset);
        assert_eq!(
            *next, offset,
            "{conn:?} {dir:?}: stream continues where it left off"
        );
        *next = offset.checked_add(len).expect("offsets do not overflow");
    }

    fn event(&mut self, ev: &Event<'_>, content_oracle: bool) {
        match ev.kind {
            EventKind::Opened {
                conn,
                client,
                server,
                ..
            } => {
                assert!(self.open.insert(conn, ()).is_none(), "opened twice");
                self.endpoints.insert(conn, (client, server));
                self.opened += 1;
            }
            EventKind::Data {
                conn,
                dir,
                offset,
                bytes,
            } => {
                assert!(
                    self.open.contains_key(&conn),
                    "data of a connection not open"
                );
                assert!(!bytes.is_empty(), "empty data event");
                self.offset(conn, dir, offset, bytes.len() as u64);
                let (client, server) = self.endpoints[&conn];
                let pair = match dir {
                    Dir::ClientToServer => (client, server),
                    Dir::ServerToClient => (server, client),
                };
                if content_oracle && !self.tainted.contains(&pair) {
                    // net_reassembly writes byte (seq & 0xff) at each sequence number, so the
                    // byte at stream offset o is (base + o) & 0xff for one base per direction.
                    let base = *self
                        .seq_low
                        .entry((conn, dir.index()))
                        .or_insert_with(|| bytes[0].wrapping_sub(offset as u8));
                    for (i, &b) in bytes.iter().enumerate() {
                        let want = base.wrapping_add((offset + i as u64) as u8);
                        assert_eq!(
                            b,
                            want,
                            "{conn:?} {dir:?}: byte at stream offset {} is from another place",
                            offset + i as u64
                        );
                    }
                }
            }
            EventKind::Gap {
                conn,
                dir,
                offset,
                len,
                ..
            } => {
                assert!(
                    self.open.contains_key(&conn),
                    "gap of a connection not open"
                );
                assert!(len > 0, "empty gap");
                self.offset(conn, dir, offset, len);
            }
            EventKind::Fin { conn, .. } | EventKind::Rst { conn, .. } => {
                assert!(
                    self.open.contains_key(&conn),
                    "FIN/RST of a connection not open"
                );
            }
            EventKind::Closed { conn, .. } => {
                assert!(
                    self.open.remove(&conn).is_some(),
                    "closed a connection not open"
                );
                self.closed += 1;
            }
            EventKind::Note { conn, note } => {
                if let Some(conn) = conn {
                    assert!(
                        self.open.contains_key(&conn),
                        "note on a connection not open"
                    );
                }
                if let net::Note::Conflict { dir, offset, len } = note
                    && let Some(conn) = conn
                    && content_oracle
                {
                    // Every copy of a sequence number carries the same byte unless the input
                    // asked for garbage: a conflict elsewhere is a misplaced segment.
                    let (client, server) = self.endpoints[&conn];
                    let pair = match dir {
                        Dir::ClientToServer => (client, server),
                        Dir::ServerToClient => (server, client),
                    };
                    assert!(
                        self.tainted.contains(&pair),
                        "{conn:?} {dir:?}: conflict at offset {offset} (+{len}) without garbage"
                    );
                }
            }
        }
    }
}

/// Small limits, so that eviction and the buffering caps are reached by small inputs.
fn small_config() -> net::Config {
    net::Config {
        max_connections: 8,
        max_closed_remembered: 4,
        max_buffered_per_conn: 4096,
        max_buffered_total: 12 * 1024,
        ports: Vec::new(),
    }
}

fn check_bounds(t: &Tracker, config: &net::Config) {
    assert!(t.connections() <= config.max_connections, "connection cap");
    assert!(t.buffered() <= config.max_buffered_total, "buffer cap");
}

const LINKTYPES: [Linktype; 10] = [
    Linktype::ETHERNET,
    Linktype::LINUX_SLL,
    Linktype::LINUX_SLL2,
    Linktype::NULL,
    Linktype::LOOP,
    Linktype::RAW,
    Linktype::IPV4,
    Linktype::IPV6,
    Linktype::RAW_12,
    Linktype(147),
];

/// Frames through `net::Tracker::push` (link, IP and TCP decoding, tracking, reassembly).
/// Input: one byte choosing the link type, then frames as `len:u16be bytes`. Checks the
/// stream invariants and the memory caps after every frame.
pub fn net_frames(data: &[u8]) {
    let Some((&lt, mut rest)) = data.split_first() else {
        return;
    };
    let linktype = LINKTYPES[usize::from(lt) % LINKTYPES.len()];
    let config = small_config();
    let mut tracker = Tracker::new(config.clone());
    let mut check = StreamCheck::default();
    let mut index = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (bytes, tail) = rest[2..].split_at(len);
        rest = tail;
        index += 1;
        let frame = Frame {
            index,
            ts: Timestamp::new(1_700_000_000 + index as i64, 0),
            linktype,
            data: bytes,
            orig_len: len as u32,
            interface: 0,
        };
        tracker.push(&frame, &mut |ev| check.event(&ev, false));
        check_bounds(&tracker, &config);
        // The decoder alone, too: every path that does not reach the tracker.
        let _ = net::decode(linktype, bytes);
    }
    tracker.finish(&mut |ev| check.event(&ev, false));
    assert!(check.open.is_empty(), "finish closes every connection");
    assert_eq!(check.opened, check.closed);
    assert_eq!(tracker.connections(), 0);
    assert_eq!(tracker.buffered(), 0);
}

/// Reads fields from the front of the input; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// TCP segments straight into `Tracker::push_segment`: the fuzzer picks the flow (four
/// address pairs, both directions), flags, sequence numbers (near each direction's initial
/// number, so segments overlap, repeat and leave holes; or anywhere, to cross 2^32) and
/// lengths, including snap-length-cut ones. Payload byte at sequence number s is `s & 0xff`
/// unless the op asks for garbage, so every byte handed on can be checked against where the
/// reassembler says it belongs.
pub fn net_reassembly(data: &[u8]) {
    let mut input = Bytes(data);
    let config = net::Config {
        // The ports filter is exercised too: port 9 is never tracked.
        ports: if data.first().is_some_and(|b| b & 1 == 1) {
            vec![8305, 443]
        } else {
            Vec::new()
        },
        ..small_config()
    };
    let mut tracker = Tracker::new(config.clone());
    let mut check = StreamCheck::default();
    // Initial sequence numbers per (flow, direction); chosen by the input, near 2^32 often.
    let isn: [u32; 2] = [input.u32(), input.u32()];
    let addrs = [
        ("10.0.0.1:40000", "10.0.0.2:8305"),
        ("10.0.0.1:40001", "10.0.0.2:8305"),
        ("[fd00::1]:50000", "[fd00::2]:443"),
        ("10.0.0.3:9", "10.0.0.4:9"),
    ];
    let mut payload = Vec::new();
    let mut frame = 0u64;
    while !input.0.is_empty() {
        let op = input.u8();
        let flow = usize::from(op & 3);
        let dir = usize::from((op >> 2) & 1);
        let garbage = op & 0x08 != 0;
        let far = op & 0x10 != 0;
        let flags = TcpFlags(input.u8() & 0x17);
        let seq = if far {
            input.u32()
        } else {
            isn[dir].wrapping_add(u32::from(input.u16()))
        };
        let len = usize::from(input.u16() % 2048);
        let missing = if op & 0x20 != 0 {
            u32::from(input.u8())
        } else {
            0
        };
        // SYN occupies the first sequence number; its payload (rare, legal) follows it.
        let first = seq.wrapping_add(u32::from(flags.syn()));
        payload.clear();
        payload.extend((0..len as u32).map(|i| first.wrapping_add(i) as u8));
        let (a, b) = addrs[flow];
        let (src, dst) = if dir == 0 { (a, b) } else { (b, a) };
        let (src, dst): (SocketAddr, SocketAddr) =
            (src.parse().expect("address"), dst.parse().expect("address"));
        if garbage && !payload.is_empty() {
            // Bytes that disagree with the sequence numbers: whichever copy came first is
            // kept, so what this direction delivers can no longer be predicted.
            for b in payload.iter_mut().step_by(3) {
                *b ^= input.u8() | 1;
            }
            check.tainted.insert((src, dst));
        }
        let seg = TcpSegment {
            src,
            dst,
            seq,
            ack: 0,
            flags,
            payload: &payload,
            missing,
        };
        frame += 1;
        let ts = Timestamp::new(1_700_000_000, frame);
        tracker.push_segment(&seg, Mark::new(frame, ts), &mut |ev| check.event(&ev, true));
        check_bounds(&tracker, &config);
        if op & 0xc0 == 0xc0 {
            // The consumer is done with some connection: drop its buffers.
            tracker.stop_buffering(ConnId(u64::from(op & 7)));
            check_bounds(&tracker, &config);
        }
    }
    tracker.finish(&mut |ev| check.event(&ev, true));
    assert!(check.open.is_empty(), "finish closes every connection");
    assert_eq!(check.opened, check.closed);
    assert_eq!(tracker.buffered(), 0);
}

/// What a TLS session may hold (tls::reader): per side a partial record, a partial handshake
/// message under the limit and a scan tail no longer than one fed chunk (at most 63 * 64
/// bytes here), each in a Vec whose capacity may be up to twice its length.
fn tls_bound(limits: &Limits) -> usize {
    2 * 2 * (tls::HEADER_LEN + tls::MAX_RECORD_LEN + 4 + limits.max_handshake + 63 * 64)
}

/// Two directions of bytes through `tls::Session` (records, handshake reassembly, hellos,
/// alerts, the state machine), plus the message parsers on the raw input. Input: control
/// bytes `c` then `c & 0x3f` bytes (times 64 when `c & 0x80`) of data for side A
/// (`c & 0x40 == 0`) or B; `c == 0xff` is a TCP gap on side A, `0xfe` on B.
///
/// The stream is fed three ways: as the chunks say, skimming once the session is finished
/// (as the analyzer does); as the chunks say without skimming; and one byte at a time without
/// skimming. TCP may cut a stream anywhere, so the last two must give the same events, marks
/// and progress; skimming may lose what it skips (a record split across feeds), so the first
/// must agree with them up to the point where it started skimming.
pub fn tls_session(data: &[u8]) {
    let _ = tls::ClientHello::parse(data);
    let _ = tls::ClientHello::parse_sslv2(data);
    let _ = tls::ServerHello::parse(data);
    let _ = tls::ServerHello::parse_retry_request(data);
    let _ = tls::CertificateRequest::parse(data, true);
    let _ = tls::CertificateRequest::parse(data, false);
    let (ders, _) = tls::certificate_list(data);
    assert!(ders.iter().map(|d| d.len() + 3).sum::<usize>() <= data.len());
    let _ = tls::find_start(data);

    let skimming = tls_feed(data, false, true);
    for e in &skimming.events {
        let _ = format!("{:?}", e.kind);
        if let tls::EventKind::Error(err) = &e.kind {
            let _ = err.to_string();
        }
    }
    let chunked = tls_feed(data, false, false);
    let bytewise = tls_feed(data, true, false);
    assert_eq!(
        chunked.events, bytewise.events,
        "events depend on where TCP cut the stream"
    );
    assert_eq!(
        chunked.progress, bytewise.progress,
        "progress depends on the cuts"
    );
    let k = skimming.skimmed_at.unwrap_or(skimming.events.len());
    assert_eq!(
        skimming.events[..k],
        chunked.events[..k.min(chunked.events.len())],
        "skimming changed what came before it"
    );
}

/// What one feeding of `tls_session`'s input gave.
struct TlsRun {
    events: Vec<tls::Event<u64>>,
    progress: tls::Progress,
    /// How many events there were when skimming started.
    skimmed_at: Option<usize>,
}

/// Runs `tls_session`'s input through a session; `bytewise` feeds each chunk byte by byte,
/// `skim` skims once the session is finished.
fn tls_feed(data: &[u8], bytewise: bool, skim: bool) -> TlsRun {
    // Small limits so 16 MB claims and the scan window are reached by small inputs.
    let limits = Limits {
        max_handshake: 2048,
        scan_window: 512,
    };
    let mut session: tls::Session<u64> = tls::Session::new(limits);
    let mut events = Vec::new();
    let mut rest = data;
    let mut mark = 0u64;
    let mut skimmed_at = None;
    while let Some((&c, tail)) = rest.split_first() {
        mark += 1;
        rest = tail;
        match c {
            0xff => session.gap(Side::A, mark, &mut events),
            0xfe => session.gap(Side::B, mark, &mut events),
            _ => {
                let side = if c & 0x40 == 0 { Side::A } else { Side::B };
                let n = usize::from(c & 0x3f) * if c & 0x80 != 0 { 64 } else { 1 };
                let (chunk, after) = tail.split_at(n.min(tail.len()));
                rest = after;
                if bytewise {
                    for b in chunk.chunks(1) {
                        session.feed(side, b, mark, &mut events);
                    }
                } else {
                    session.feed(side, chunk, mark, &mut events);
                }
                assert!(
                    session.buffered() <= tls_bound(&limits),
                    "tls buffering bound"
                );
                if skim && session.is_finished() && skimmed_at.is_none() {
                    session.skim();
                    skimmed_at = Some(events.len());
                }
            }
        }
    }
    session.finish(mark, &mut events);
    let progress = session.progress().clone();
    let _ = (
        progress.role(Side::A),
        progress.role(Side::B),
        progress.is_tls13(),
    );
    TlsRun {
        events,
        progress,
        skimmed_at,
    }
}

/// Fixed instants to judge at besides the certificates' own boundaries.
fn instants() -> [time::OffsetDateTime; 3] {
    [
        time::OffsetDateTime::UNIX_EPOCH,
        time::macros::datetime!(2024-06-01 12:00 UTC),
        time::macros::datetime!(2050-01-01 0:00 UTC),
    ]
}

/// Splits concatenated DER TLVs (as a TLS Certificate message lists them, lengths aside).
fn split_der(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 8 {
        let (len, head) = match data[1] {
            n if n < 0x80 => (usize::from(n), 2),
            0x81 if data.len() >= 3 => (usize::from(data[2]), 3),
            0x82 if data.len() >= 4 => (usize::from(u16::from_be_bytes([data[2], data[3]])), 4),
            _ => (data.len(), 0),
        };
        let end = (head + len).min(data.len()).max(1);
        out.push(&data[..end]);
        data = &data[end..];
    }
    out
}

fn render_cert(c: &CertInfo) {
    let _ = serde_json::to_string(c);
    let _ = c.sftunnel_identity();
    let _ = (
        c.common_name(),
        c.title(),
        c.generation_qualifier(),
        c.is_ca(),
    );
    for name in [&c.subject, &c.issuer].into_iter().flatten() {
        let _ = (name.to_string(), name.rfc4514(), name.oneline());
    }
}

/// Certificates through `cert::parse` / `cert::parse_pem_bundle` and what parses through
/// `judge::verify` as a chain (leaf first), against its own last certificate and against all
/// of them as anchors, at fixed times and at each certificate's validity boundaries.
pub fn cert_judge(data: &[u8]) {
    let chain: Vec<CertInfo> = if data.starts_with(b"-----") {
        match cert::parse_pem_bundle(data) {
            Ok(certs) => certs,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    } else {
        if let Err(e) = cert::parse_pem_bundle(data) {
            let _ = e.to_string();
        }
        split_der(data).into_iter().map(cert::parse).collect()
    };
    for c in &chain {
        render_cert(c);
        for other in &chain {
            let _ = c.akid_check(other);
            let _ = c.signature_fits_key_of(other);
        }
    }
    let mut at: Vec<time::OffsetDateTime> = instants().to_vec();
    for c in chain.iter().take(2) {
        at.extend(c.not_before);
        at.extend(c.not_after);
    }
    let anchors_last: Vec<CertInfo> = chain.last().cloned().into_iter().collect();
    for t in at {
        for anchors in [&[][..], &anchors_last[..], &chain[..]] {
            let v = judge::verify(&chain, anchors, t);
            let _ = v.result();
            for d in 0..chain.len() + 1 {
                if let Some(verdict) = v.at_depth(d) {
                    let _ = (verdict.text(), verdict.alert(), verdict.is_ok());
                }
            }
            let _ = judge::verify_with(
                &chain,
                anchors,
                t,
                &judge::Policy::tls(judge::Purpose::SslServer),
            );
        }
    }
}

/// The whole `analyze` pipeline on arbitrary bytes as a capture file: reader, tracker, TLS,
/// certificates, judge, and all three renderers. Findings must render, and a read error must
/// still give a summary.
pub fn analyze(data: &[u8]) {
    let Ok(mut reader) = reader_over(data) else {
        return;
    };
    let opts = Options {
        limits: Limits {
            max_handshake: 64 << 10,
            scan_window: 4096,
        },
        ..Options::default()
    };
    let mut findings: Vec<Finding> = Vec::new();
    let mut sink = |f: Finding| {
        if findings.len() < 256 {
            findings.push(f);
        }
    };
    let summary = analysis::analyze_reader(&mut reader, "fuzz.pcap", &opts, &mut sink)
        .expect("a collecting sink never fails");
    // Findings point at frames that were read, sessions span forwards, and there are no more
    // sessions than TCP connections.
    let frames = summary.net.frames;
    for f in &findings {
        let j = serde_json::to_value(f).expect("findings serialise");
        for key in ["frame", "first_frame", "last_frame"] {
            if let Some(n) = j.get(key).and_then(|v| v.as_u64()) {
                assert!(n >= 1 && n <= frames, "{key} {n} of {frames} frames: {j}");
            }
        }
        if let (Some(a), Some(b)) = (
            j.get("first_frame").and_then(|v| v.as_u64()),
            j.get("last_frame").and_then(|v| v.as_u64()),
        ) {
            assert!(a <= b, "session runs backwards: {j}");
        }
    }
    assert!(summary.counts.sessions <= summary.net.connections);
    for format in [Format::Text, Format::Json, Format::Jsonl] {
        let mut out = Vec::new();
        let mut r = report::renderer(format, &mut out);
        for f in &findings {
            r.finding(f).expect("rendering to memory");
        }
        r.file_done(&summary).expect("rendering to memory");
        r.finish().expect("rendering to memory");
        drop(r);
        if !matches!(format, Format::Text) {
            assert!(std::str::from_utf8(&out).is_ok(), "JSON output is UTF-8");
        }
    }
}

/// The tunnel's frame codec: `proto::decode` over a stream of frames, as `Framed` reads
/// them. Every decoded message (other than an unknown type) must encode to a frame of the
/// same length that decodes to the same message (decode is lenient on the `ok` byte, so the
/// bytes themselves may differ).
pub fn tunnel_proto(data: &[u8]) {
    let mut rest = data;
    loop {
        match proto::decode(rest) {
            Ok(Some((msg, used))) => {
                assert!(
                    used >= 5 && used <= rest.len(),
                    "used {used} of {}",
                    rest.len()
                );
                if !matches!(msg, proto::Message::Unknown { .. }) {
                    let again = proto::encode(&msg);
                    assert_eq!(again.len(), used, "re-encoded length of {msg:?}");
                    assert_eq!(
                        proto::decode(&again),
                        Ok(Some((msg.clone(), used))),
                        "round trip"
                    );
                }
                rest = &rest[used..];
            }
            Ok(None) => {
                // Needs more: only when the frame is really incomplete.
                if rest.len() >= 4 {
                    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    assert!(rest.len() < 4 + len, "asked for more with a whole frame");
                }
                break;
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
}

/// The appliance's identity and tunnel configuration files: `pki::conf`'s parsers (what
/// parses renders back to text that parses the same) and `pki::layout::PkiRoot::load` on them (every
/// peer's folder stays under the root: names come from a file, paths are built from them).
/// Input: `ims.conf`, a zero byte, `sftunnel.conf` (without a zero byte: the same text for both).
pub fn pki_conf(data: &[u8]) {
    use sfdiag::pki::{self, conf};
    let (ims, sft) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let (ims, sft) = (String::from_utf8_lossy(ims), String::from_utf8_lossy(sft));
    let path = std::path::Path::new("fuzz.conf");
    if let Ok(c) = conf::parse_ims_conf(&ims, path) {
        let again = conf::parse_ims_conf(&conf::render_ims_conf(&c), path);
        assert_eq!(again.ok().as_ref(), Some(&c), "ims.conf round trip");
    }
    if let Ok(c) = conf::parse_sftunnel_conf(&sft, path) {
        let again = conf::parse_sftunnel_conf(&conf::render_sftunnel_conf(&c), path);
        assert_eq!(again.ok().as_ref(), Some(&c), "sftunnel.conf round trip");
    }

    // A root of its own per run, removed afterwards (the tests run this too).
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let sf = root.join("fmc/etc/sf");
    std::fs::create_dir_all(&sf).expect("fmc/etc/sf");
    std::fs::write(sf.join("ims.conf"), ims.as_bytes()).expect("write ims.conf");
    std::fs::write(sf.join("sftunnel.conf"), sft.as_bytes()).expect("write sftunnel.conf");
    let Ok(loaded) = pki::layout::PkiRoot::load(root) else {
        return;
    };
    let under_root = |p: &std::path::Path| {
        p.strip_prefix(root).is_ok_and(|rel| {
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
    };
    for peer in &loaded.peers {
        let dir = loaded.layout.appliance_dir(&peer.name);
        assert!(
            under_root(&dir) && dir != root,
            "peer {:?} has its folder outside the root: {}",
            peer.name,
            dir.display()
        );
        if let Some(files) = loaded.device_files(&peer.name) {
            for p in [&files.ca, &files.cert, &files.key] {
                assert!(under_root(p), "{}", p.display());
            }
        }
    }
}

/// An NSS key log (`tls::KeyLog::parse`): any bytes. What must hold: at most 20 errors kept
/// and the rest counted, line numbers rising and within the text, a secret or an error for no
/// more lines than there are, the same secrets whether the text is added whole or in two
/// parts cut after a newline, and `Debug` that never shows a secret.
pub fn keylog(data: &[u8]) {
    let (log, report) = tls::KeyLog::parse("fuzz", data);
    let lines = data.split(|&b| b == b'\n').count();
    assert!(report.errors.len() <= 20);
    assert!(report.secrets + report.errors.len() + report.more_errors <= lines);
    assert!(log.len() <= report.secrets);
    let mut last = 0;
    for e in &report.errors {
        assert!(
            e.line > last && e.line <= lines,
            "line {} of {lines}",
            e.line
        );
        last = e.line;
        assert!(e.to_string().starts_with("fuzz:"));
    }
    if let Some(cut) = data.iter().position(|&b| b == b'\n') {
        let mut two = tls::KeyLog::new();
        let a = two.add("a", &data[..=cut]);
        let b = two.add("b", &data[cut + 1..]);
        assert_eq!(a.secrets + b.secrets, report.secrets);
        assert_eq!(two.len(), log.len());
    }
    let shown = format!("{log:?}");
    assert!(shown.starts_with("KeyLog(") && shown.len() < 48, "{shown}");
}

/// The TLS 1.3 secrets of `tls13_decrypt`'s connection (client random `[1; 32]`): client and
/// server handshake, client and server application generation 0. Each is `hash_len` bytes.
fn fuzz_secrets(hash_len: usize) -> [Vec<u8>; 4] {
    [0x11u8, 0x22, 0x33, 0x44].map(|b| vec![b; hash_len])
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Seals `plain` + content type `typ` as a TLS 1.3 record under `secret` at `seq`, with
/// `pad` zero bytes of padding, the way a peer does (aws-lc-rs's AEAD, sfdiag's key
/// schedule).
fn seal13(
    suite: tls::Suite,
    secret: &[u8],
    seq: u64,
    typ: u8,
    pad: usize,
    plain: &[u8],
) -> Vec<u8> {
    use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
    let (alg, key_len) = match suite.protection {
        tls::Protection::Tls13(tls::Aead::Aes128Gcm) => (&aead::AES_128_GCM, 16),
        tls::Protection::Tls13(tls::Aead::Aes256Gcm) => (&aead::AES_256_GCM, 32),
        _ => (&aead::CHACHA20_POLY1305, 32),
    };
    let k = tls::traffic_keys(suite.hash, secret, key_len).expect("keys");
    let key = LessSafeKey::new(UnboundKey::new(alg, &k.key).expect("key"));
    let mut nonce = k.iv;
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    let mut inner = plain.to_vec();
    inner.push(typ);
    inner.resize(inner.len() + pad, 0);
    let len = u16::try_from(inner.len() + 16).expect("short record");
    let header = [23, 3, 3, (len >> 8) as u8, len as u8];
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(header),
        &mut inner,
    )
    .expect("seal");
    let mut rec = header.to_vec();
    rec.extend_from_slice(&inner);
    rec
}

/// The TLS 1.3 decryption path with a key log: handshake, post-handshake messages, KeyUpdate,
/// alerts, wrong keys and sequence numbers, records that do not open, budgets. The input's
/// first byte picks the suite (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305); a fixed
/// ClientHello and ServerHello follow; then ops of 3 header bytes and data: `c`: bit 0 the
/// side (A client, B server), bits 1-3 the secret (0-3 as `fuzz_secrets`, 4-5 the next
/// generation of 2-3, 6 a raw record as given, 7 a TCP gap); `t`: bits 0-1 the inner type
/// (handshake, alert, application data, 0x99), bits 2-5 the sequence number, bits 6-7 the
/// padding; `n`: data length. The data is sealed as a record of its own.
///
/// What must hold besides no panic: the same events, marks and progress whether each
/// record is fed at once or byte by byte (TCP may cut anywhere, decryption included);
/// buffers within one record and one handshake message per side; the key log's secrets all
/// found.
pub fn tls13_decrypt(data: &[u8]) {
    let Some((&first, ops)) = data.split_first() else {
        return;
    };
    let suite_code = [0x1301u16, 0x1302, 0x1303][usize::from(first % 3)];
    let once = tls13_run(suite_code, ops, false);
    let bytewise = tls13_run(suite_code, ops, true);
    assert_eq!(
        once.0, bytewise.0,
        "events depend on where TCP cut the stream"
    );
    assert_eq!(once.1, bytewise.1, "progress depends on the cuts");
    for e in &once.0 {
        let _ = format!("{:?}", e.kind);
    }
}

fn tls13_run(suite_code: u16, ops: &[u8], bytewise: bool) -> (Vec<tls::Event<u64>>, tls::Progress) {
    let suite = tls::Suite::of(tls::CipherSuite(suite_code), true).expect("a TLS 1.3 suite");
    let secrets = fuzz_secrets(suite.hash.output_len());
    let random = to_hex(&[1; 32]);
    let labels = [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ];
    let text: String = labels
        .iter()
        .zip(&secrets)
        .map(|(l, s)| format!("{l} {random} {}\n", to_hex(s)))
        .collect();
    let (log, _) = tls::KeyLog::parse("fuzz", text.as_bytes());
    let next = [2, 3].map(|i| tls::next_traffic_secret(suite.hash, &secrets[i]).expect("next"));
    let limits = Limits {
        max_handshake: 4096,
        scan_window: 512,
    };
    let mut session: tls::Session<u64> = tls::Session::with_keys(limits, Arc::new(log));
    let mut events = Vec::new();
    // ClientHello: version, random [1; 32], no session id, one suite, null compression.
    let mut ch = vec![3, 3];
    ch.extend_from_slice(&[1; 32]);
    ch.extend_from_slice(&[0, 0, 2]);
    ch.extend_from_slice(&suite_code.to_be_bytes());
    ch.extend_from_slice(&[1, 0]);
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[2; 32]);
    sh.push(0);
    sh.extend_from_slice(&suite_code.to_be_bytes());
    sh.extend_from_slice(&[0, 0, 6, 0, 43, 0, 2, 3, 4]);
    for (side, typ, body) in [(Side::A, 1u8, ch), (Side::B, 2, sh)] {
        let mut msg = vec![typ, 0, (body.len() >> 8) as u8, body.len() as u8];
        msg.extend_from_slice(&body);
        let mut rec = vec![22, 3, 3, 0, msg.len() as u8];
        rec.extend_from_slice(&msg);
        session.feed(side, &rec, 0, &mut events);
    }
    let mut rest = ops;
    let mut mark = 0u64;
    while let [c, t, n, tail @ ..] = rest {
        mark += 1;
        let len = usize::from(*n).min(tail.len());
        let (plain, after) = tail.split_at(len);
        rest = after;
        let side = if c & 1 == 0 { Side::A } else { Side::B };
        let which = (c >> 1) & 7;
        let rec = match which {
            0..=3 => {
                let (typ, seq, pad) = (
                    inner_type(*t),
                    u64::from((t >> 2) & 15),
                    usize::from(t >> 6),
                );
                seal13(suite, &secrets[usize::from(which)], seq, typ, pad, plain)
            }
            4 | 5 => {
                let (typ, seq, pad) = (
                    inner_type(*t),
                    u64::from((t >> 2) & 15),
                    usize::from(t >> 6),
                );
                seal13(suite, &next[usize::from(which - 4)], seq, typ, pad, plain)
            }
            6 => plain.to_vec(),
            _ => {
                session.gap(side, mark, &mut events);
                continue;
            }
        };
        if bytewise {
            for b in rec.chunks(1) {
                session.feed(side, b, mark, &mut events);
            }
        } else {
            session.feed(side, &rec, mark, &mut events);
        }
        assert!(
            session.buffered() <= tls_bound(&limits),
            "tls buffering bound"
        );
    }
    session.finish(mark, &mut events);
    let progress = session.progress().clone();
    assert!(progress.decryption.missing.is_empty());
    (events, progress)
}

fn inner_type(t: u8) -> u8 {
    [22, 21, 23, 0x99][usize::from(t & 3)]
}
