//! End-to-end throughput of `analyze` on a big sftunnel capture, beside the floor: a bare loop
//! that reads every frame with pcap-parser and parses its headers with etherparse.
//!
//! The capture is not in the repository (460 MB). Make it once, then point the bench at it:
//! ```text
//! certs/openssl-pki.sh /tmp/bench/pki
//! sudo ../shared/tools/capture-lab.sh /tmp/bench/pki /tmp/bench/big.pcap 3 400
//! SFDIAG_BENCH_PCAP=/tmp/bench/big.pcap cargo bench --bench analyze
//! ```
//! Without the file the bench says so and measures nothing. `benches/compare.sh` runs the same
//! file through the release binary, `ssldump -N` and `tshark` for the README's table.

use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError};
use sfdiag::analysis::{self, Finding, Options};

fn capture() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("SFDIAG_BENCH_PCAP")?);
    p.exists().then_some(p)
}

/// sfdiag: capture -> net -> tls -> cert -> judge, findings counted.
fn sfdiag_analyze(path: &Path) -> u64 {
    let mut certs = 0u64;
    let mut sink = |f: Finding| {
        if matches!(f, Finding::Certificate(_)) {
            certs += 1;
        }
    };
    analysis::analyze_path(path, &Options::default(), &mut sink)
        .expect("the bench capture is readable");
    certs
}

/// The floor: every frame read and its Ethernet/IP/TCP headers parsed, nothing else.
fn bare_loop(path: &Path) -> u64 {
    let mut reader = LegacyPcapReader::new(1 << 20, File::open(path).unwrap()).unwrap();
    let mut payload = 0u64;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                if let PcapBlockOwned::Legacy(b) = block
                    && let Ok(p) = etherparse::SlicedPacket::from_ethernet(b.data)
                    && let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport
                {
                    payload += tcp.payload().len() as u64;
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
            Err(e) => panic!("{e:?}"),
        }
    }
    payload
}

fn bench(c: &mut Criterion) {
    let Some(path) = capture() else {
        eprintln!(
            "benches/analyze: set SFDIAG_BENCH_PCAP to a capture made by capture-lab.sh (see the file's doc); nothing measured"
        );
        return;
    };
    let len = std::fs::metadata(&path).unwrap().len();
    let mut g = c.benchmark_group("big_capture");
    g.throughput(Throughput::Bytes(len))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    g.bench_function("sfdiag_analyze", |b| {
        b.iter(|| black_box(sfdiag_analyze(&path)))
    });
    g.bench_function("bare_pcap_parser_etherparse", |b| {
        b.iter(|| black_box(bare_loop(&path)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
