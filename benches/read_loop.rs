//! Throughput of capture + net against the floor issue 3 measures us by: a bare loop that
//! reads every frame with pcap-parser and parses its headers with etherparse.
//!
//! Uses the capture named by `SFDIAG_BENCH_PCAP` (make a ~460 MB one with
//! `../shared/tools/capture-lab.sh PKI big.pcap 3 400`; never commit it), else the largest
//! capture of the shared corpus. Run: `cargo bench --bench read_loop`.

use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};
use sfdiag::capture;
use sfdiag::net::{Event, EventKind, Tracker};

fn bench_file() -> PathBuf {
    if let Some(p) = std::env::var_os("SFDIAG_BENCH_PCAP") {
        return PathBuf::from(p);
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/zeek");
    shared.join("tls-fragmented-handshake.pcap")
}

/// The floor: pcap-parser's reader and etherparse's lax slicer on every frame (Ethernet, or
/// the raw/legacy link types through the same slicer), summing TCP payload lengths.
fn bare_loop(path: &Path) -> u64 {
    let mut reader = create_reader(1 << 20, File::open(path).unwrap()).unwrap();
    let mut total = 0u64;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let data = match &block {
                    PcapBlockOwned::Legacy(b) => Some(b.data),
                    PcapBlockOwned::NG(pcap_parser::Block::EnhancedPacket(b)) => Some(b.data),
                    _ => None,
                };
                if let Some(data) = data
                    && let Ok(p) = etherparse::LaxSlicedPacket::from_ethernet(data)
                    && let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport
                {
                    total += tcp.payload().len() as u64;
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
            Err(e) => panic!("{e:?}"),
        }
    }
    total
}

/// Our reader alone.
fn reader_only(path: &Path) -> u64 {
    let mut r = capture::open(path).unwrap();
    let mut total = 0u64;
    while let Some(f) = r.next_frame().unwrap() {
        total += f.data.len() as u64;
    }
    total
}

/// Reader + tracker, the consumer taking every byte (the worst case for net: nothing is
/// ever dropped to counters).
fn tracked_all(path: &Path) -> u64 {
    let mut r = capture::open(path).unwrap();
    let mut t = Tracker::default();
    let mut total = 0u64;
    let mut sink = |e: Event<'_>| {
        if let EventKind::Data { bytes, .. } = e.kind {
            total += bytes.len() as u64;
        }
    };
    while let Some(f) = r.next_frame().unwrap() {
        t.push(&f, &mut sink);
    }
    t.finish(&mut sink);
    total
}

/// Reader + tracker as the analyzer uses it: each connection dropped to counters after its
/// first 16 KiB (its handshake).
fn tracked_handshakes(path: &Path) -> u64 {
    let mut r = capture::open(path).unwrap();
    let mut t = Tracker::default();
    let mut seen: std::collections::HashMap<sfdiag::net::ConnId, u64> = Default::default();
    let mut done = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        t.push(&f, &mut |e| {
            if let EventKind::Data { conn, bytes, .. } = e.kind {
                let n = seen.entry(conn).or_default();
                *n += bytes.len() as u64;
                if *n > 16 << 10 {
                    done.push(conn);
                }
            }
        });
        for c in done.drain(..) {
            t.stop_buffering(c);
        }
    }
    t.finish(&mut |_| {});
    seen.values().sum()
}

fn throughput(c: &mut Criterion) {
    let path = bench_file();
    let len = std::fs::metadata(&path).unwrap().len();
    let mut g = c.benchmark_group("read_loop");
    g.throughput(Throughput::Bytes(len));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("bare pcap-parser + etherparse", |b| {
        b.iter(|| black_box(bare_loop(&path)))
    });
    g.bench_function("capture::Reader", |b| {
        b.iter(|| black_box(reader_only(&path)))
    });
    g.bench_function("Reader + Tracker, handshakes", |b| {
        b.iter(|| black_box(tracked_handshakes(&path)))
    });
    g.bench_function("Reader + Tracker, every byte", |b| {
        b.iter(|| black_box(tracked_all(&path)))
    });
    g.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
