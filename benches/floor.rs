//! The floor as a program, for `benches/compare.sh` to time beside `sfdiag analyze`, ssldump and
//! tshark in one run: every frame of each capture read with pcap-parser and its
//! Ethernet/IP/TCP headers parsed with etherparse (the loop `read_loop.rs` and `analyze.rs`
//! measure in process), nothing else. Prints the TCP payload bytes seen.
//!
//! `cargo bench --bench floor -- CAPTURE...` (or the binary `cargo bench --no-run` builds);
//! without a capture it says so and measures nothing, so a plain `cargo bench` passes.

use std::fs::File;
use std::path::Path;

use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

/// pcap-parser's reader and etherparse's lax slicer on every frame, summing TCP payloads.
fn bare_loop(path: &Path) -> u64 {
    let mut reader = create_reader(1 << 20, File::open(path).expect("capture")).expect("a capture");
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
            Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
            Err(e) => panic!("{e:?}"),
        }
    }
    total
}

fn main() {
    // `cargo bench` passes `--bench`; captures are the other arguments.
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if files.is_empty() {
        eprintln!("benches/floor: no capture given (see benches/compare.sh); nothing measured");
        return;
    }
    for f in &files {
        println!("{f}: {} TCP payload bytes", bare_loop(Path::new(f)));
    }
}
