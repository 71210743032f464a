//! Starvation (issue 11, item 12): how long a real device takes to connect to `sfdiag serve`
//! while 300 peers hold handshakes open by sending their ClientHello and then one byte every
//! 4 s (never silent for the 10 s deadline, never done). A scripted run, not a criterion
//! benchmark: the figure is a wall time beside a baseline on the same machine.
//!
//! What it does, all on 127.0.0.1 with a fresh `pki init` root and serve's default deadlines:
//! times `connect --once` ROUNDS times alone (the baseline), then opens the dribblers, waits
//! until serve has answered the ClientHellos it takes up, and times `connect --once` ROUNDS
//! times beside them. The device's own deadline is 10 s; it passes when every connect beside
//! the dribblers succeeds in under that.
//!
//! Run: `cargo bench --bench starvation` (about a minute plus the release build);
//! `STARVE_PEERS=300 STARVE_ROUNDS=5` change the counts.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sfdiag::tunnel::{Clock, Identity, TlsFiles};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sfdiag() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfdiag"))
}

/// The device's real ClientHello, made by the device's own TLS configuration.
fn client_hello(ftd: &TlsFiles) -> Vec<u8> {
    let id = Identity::load(ftd).unwrap();
    let cfg = sfdiag::tunnel::config::client_config(&id, &Clock::system(), None).unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let mut c = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut v = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut v).unwrap();
    }
    v
}

/// `connect --once` as the device; its wall time, or why it failed.
fn device(addr: SocketAddr, root: &Path) -> Result<Duration, String> {
    let t0 = Instant::now();
    let out = sfdiag()
        .args(["connect", &addr.to_string(), "--once", "--device", "ftd1"])
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    let took = t0.elapsed();
    if out.status.success() {
        Ok(took)
    } else {
        let log = String::from_utf8_lossy(&out.stdout);
        let why = log
            .lines()
            .rev()
            .find(|l| l.contains("[ERROR]"))
            .unwrap_or("");
        Err(format!("failed after {:.2} s: {why}", took.as_secs_f64()))
    }
}

fn summary(v: &[Duration]) -> String {
    let mut v = v.to_vec();
    v.sort();
    let s = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(a), Some(m), Some(b)) => format!("min {}, median {}, max {}", s(*a), s(*m), s(*b)),
        _ => "no successful connect".into(),
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let peers = env("STARVE_PEERS", 300);
    let rounds = env("STARVE_ROUNDS", 5).max(1);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lab");
    let st = sfdiag()
        .args(["pki", "init", "--devices", "1", "--root"])
        .arg(&root)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "pki init failed");
    let log = dir.path().join("serve.log");
    let serve = Serve(
        sfdiag()
            .args(["serve", "--no-dial", "--listen", "127.0.0.1:0", "--root"])
            .arg(&root)
            .arg("--log")
            .arg(&log)
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains("Listening on ")) {
                break l
                    .rsplit("Listening on ")
                    .next()
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
            }
            assert!(Instant::now() < end, "serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let fmc_uuid = std::fs::read_dir(root.join("ftd1/var/sf/peers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ftd = TlsFiles {
        ca: fmc_uuid.join("cacert.pem"),
        cert: fmc_uuid.join("sftunnel-cert.pem"),
        key: fmc_uuid.join("sftunnel-key.pem"),
    };
    println!(
        "== {} cores, load {}, {peers} dribbling peers, {rounds} rounds",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Warm-up, then the baseline.
    device(addr, &root).expect("warm-up connect");
    let alone: Vec<Duration> = (0..rounds)
        .map(|_| device(addr, &root).expect("baseline connect"))
        .collect();
    println!(
        "connect --once alone:                     {}",
        summary(&alone)
    );

    let hello = client_hello(&ftd);
    let socks: Vec<TcpStream> = (0..peers)
        .map(|_| {
            let mut t = TcpStream::connect(addr).unwrap();
            t.write_all(&hello).unwrap();
            t.set_nonblocking(true).unwrap();
            t
        })
        .collect();
    let answered = |socks: &[TcpStream]| {
        socks
            .iter()
            .filter(|t| t.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0))
            .count()
    };
    let end = Instant::now() + Duration::from_secs(60);
    while answered(&socks) < peers.min(sfdiag::tunnel::server::HANDSHAKE_SLOTS) {
        assert!(
            Instant::now() < end,
            "serve did not answer the ClientHellos"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let dribble = {
        let stop = stop.clone();
        let mut socks: Vec<TcpStream> = socks.iter().map(|t| t.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            // A handshake record claiming 16 KiB that never ends, a byte every 4 s.
            let mut record = vec![0x16, 0x03, 0x03, 0x40, 0x00];
            record.resize(16 * 1024, 0);
            for b in record {
                for t in &mut socks {
                    let _ = t.write(&[b]);
                }
                for _ in 0..40 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    let t0 = Instant::now();
    let mut beside = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..rounds {
        match device(addr, &root) {
            Ok(d) => beside.push(d),
            Err(e) => failed.push(e),
        }
    }
    let span = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = dribble.join();
    println!(
        "connect --once beside {peers} dribblers:     {} ({} of {rounds} failed, over {:.1} s)",
        summary(&beside),
        failed.len(),
        span.as_secs_f64()
    );
    for f in &failed {
        println!("  {f}");
    }
    let alone_median = {
        let mut a = alone.clone();
        a.sort();
        a[a.len() / 2]
    };
    if let Some(worst) = beside.iter().max() {
        println!(
            "worst beside the dribblers / median alone: {:.1}x",
            worst.as_secs_f64() / alone_median.as_secs_f64().max(1e-9)
        );
    }
    let pass = failed.is_empty() && beside.iter().all(|d| *d < Duration::from_secs(10));
    println!("{}", if pass { "PASS" } else { "FAIL" });
    drop(socks);
    drop(serve);
    if !pass {
        std::process::exit(1);
    }
}
