//! Live faults against the tunnel: `serve` under sockets that never speak, garbage speakers,
//! handshakes abandoned halfway, peers that stall or die in the middle of a push; `connect`
//! against a server that vanishes and returns. Each test counts what the server holds before
//! and after (tokio tasks of its own runtime, its sockets through the /proc fd table) and
//! asserts it all comes back to the baseline once the junk is gone.
//!
//! The server runs in-process on a runtime of its own (so `num_alive_tasks` counts only its
//! tasks) or as the binary (so `/proc/PID/fd` counts only its descriptors). Other tests run
//! in this process at the same time, so in-process descriptor counts look only at sockets
//! whose local port is the server's. Junk peers are plain blocking sockets, with rustls
//! driven by hand when a test needs real TLS bytes. Everything binds 127.0.0.1 port 0 (one
//! test rebinds the port it was given) and every wait has a deadline.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use sfdiag::sftunnel::Role;
use sfdiag::tunnel::client::{Backoff, Client, ClientSettings};
use sfdiag::tunnel::proto::{self, Message, PushFile};
use sfdiag::tunnel::server::{Server, ServerHandle, ServerSettings, Timeouts};
use sfdiag::tunnel::{Clock, Identity, SfLog, TlsFiles, TunnelError};

use crate::common::sfdiag;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Polls `ok` every 20 ms until it holds; fails with `what()` after `secs`.
fn wait_until(secs: u64, what: impl Fn() -> String, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < end, "not within {secs}s: {}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion, killing it and failing after `secs`.
fn run(cmd: &mut Command, secs: u64) -> std::process::Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{what}: still running after {secs}s");
        }
    }
}

/// A lab PKI from `sfdiag pki init` with one device, ftd1.
struct Lab {
    root: PathBuf,
    fmc: TlsFiles,
    ftd: TlsFiles,
    ftd_uuid: String,
}

fn lab(dir: &Path) -> Lab {
    let root = dir.join("lab");
    let out = run(
        sfdiag().args(["pki", "init", "--root", s(&root), "--devices", "1"]),
        120,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = sfdiag::pki::layout::PkiRoot::load(&root).unwrap();
    let files = |p: sfdiag::pki::layout::PeerFiles| TlsFiles {
        ca: p.ca,
        cert: p.cert,
        key: p.key,
    };
    Lab {
        fmc: files(r.fmc_files()),
        ftd: files(r.device_files("ftd1").unwrap()),
        ftd_uuid: r.peer("ftd1").unwrap().uuid.to_string(),
        root,
    }
}

// ---- what a process holds ----

/// Sockets of this process whose local port is `port` and that are not listening: the
/// server's side of its connections. Found by matching /proc/self/fd's socket inodes with
/// /proc/net/tcp{,6}.
fn server_sockets(port: u16) -> usize {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = f.get(1).and_then(|a| a.rsplit(':').next()) else {
                continue;
            };
            if u16::from_str_radix(local, 16) == Ok(port) && f.get(3) != Some(&"0A") {
                inodes.insert(format!("socket:[{}]", f.get(9).copied().unwrap_or("")));
            }
        }
    }
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| inodes.contains(&*l.to_string_lossy()))
        .count()
}

/// Every descriptor process `pid` holds.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ---- an in-process FMC ----

/// `serve` on a runtime of its own, logging to memory.
struct Fmc {
    rt: tokio::runtime::Runtime,
    server: Option<Server>,
    handle: ServerHandle,
    addr: SocketAddr,
    log: SfLog,
}

impl Fmc {
    fn start(files: &TlsFiles, timeouts: Timeouts) -> Fmc {
        Fmc::start_with(files, timeouts, None)
    }

    fn start_with(files: &TlsFiles, timeouts: Timeouts, control: Option<PathBuf>) -> Fmc {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let log = SfLog::memory("fmc", 1, Clock::system());
        let server = rt
            .block_on(Server::start(ServerSettings {
                listen: "127.0.0.1:0".into(),
                files: files.clone(),
                peers: None,
                clock: Clock::system(),
                log: log.clone(),
                keylog: None,
                control,
                timeouts,
            }))
            .unwrap();
        Fmc {
            handle: server.handle(),
            addr: server.local_addr(),
            server: Some(server),
            rt,
            log,
        }
    }

    fn tasks(&self) -> usize {
        self.rt.metrics().num_alive_tasks()
    }

    fn sockets(&self) -> usize {
        server_sockets(self.addr.port())
    }

    fn count(&self, needle: &str) -> usize {
        self.log
            .lines()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn text(&self) -> String {
        let l = self.log.lines();
        l[l.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until the server holds no connection and only `tasks` tasks.
    fn wait_idle(&self, secs: u64, tasks: usize) {
        wait_until(
            secs,
            || {
                format!(
                    "server still holds {} sockets, {} tasks (baseline {tasks});\n{}",
                    self.sockets(),
                    self.tasks(),
                    self.text()
                )
            },
            || self.sockets() == 0 && self.tasks() == tasks,
        );
    }

    fn push(&self, uuid: &str, files: Vec<PushFile>) -> tokio::task::JoinHandle<PushResult> {
        let (h, uuid) = (self.handle.clone(), uuid.to_owned());
        self.rt.spawn(async move { h.push(&uuid, files).await })
    }

    /// Waits (bounded) for a push started with [`Self::push`].
    fn settle(&self, push: tokio::task::JoinHandle<PushResult>, secs: u64) -> PushResult {
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(secs), push).await })
            .unwrap_or_else(|_| panic!("push still waiting after {secs}s; {}", self.text()))
            .unwrap()
    }
}

type PushResult = Result<sfdiag::tunnel::proto::PushAck, TunnelError>;

impl Drop for Fmc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Some(s) = self.server.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), s.shutdown()).await
            });
        }
    }
}

fn short_timeouts() -> Timeouts {
    Timeouts {
        handshake: Duration::from_secs(1),
        hello: Duration::from_secs(1),
        heartbeat: Duration::from_secs(1),
        push: Duration::from_secs(2),
    }
}

/// The real device: one handshake, HELLO and heartbeat through the library's client.
fn device_once(addr: SocketAddr, ftd: &TlsFiles) -> Result<(), TunnelError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(ClientSettings {
        server: addr.to_string(),
        files: ftd.clone(),
        name: "ftd1".into(),
        clock: Clock::system(),
        log: SfLog::memory("ftd1", 2, Clock::system()),
        keylog: None,
        timeouts: Timeouts::default(),
        backoff: Backoff::default(),
    })?;
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), client.once()).await })
        .expect("device still connecting after 60s")
        .map(|_| ())
}

// ---- junk peers ----

fn connect(addr: SocketAddr) -> TcpStream {
    let t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    t.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    t
}

fn device_config(ftd: &TlsFiles) -> Arc<rustls::ClientConfig> {
    let id = Identity::load(ftd).unwrap();
    sfdiag::tunnel::config::client_config(&id, &Clock::system(), None).unwrap()
}

fn tls_client(ftd: &TlsFiles) -> ClientConnection {
    ClientConnection::new(
        device_config(ftd),
        ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()),
    )
    .unwrap()
}

/// The device's real ClientHello record(s).
fn client_hello(ftd: &TlsFiles) -> Vec<u8> {
    let mut c = tls_client(ftd);
    let mut v = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut v).unwrap();
    }
    v
}

/// What garbage speakers send (and then keep the socket open).
fn garbage() -> Vec<Vec<u8>> {
    let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    vec![
        b"GET / HTTP/1.1\r\nHost: fmc\r\n\r\n".to_vec(),
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
        noise.clone(),
        vec![0; 4096],
        // A handshake record claiming 16 MB, then nothing.
        vec![0x16, 0x03, 0x03, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff],
        // An SSLv2-style ClientHello.
        vec![
            0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
        ],
        // A fatal alert before any hello.
        vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
        // Application data before any hello.
        [&[0x17, 0x03, 0x03, 0x01, 0x00][..], &noise[..256]].concat(),
        // Endless zero-length handshake records.
        [0x16, 0x03, 0x03, 0x00, 0x00].repeat(200),
    ]
}

/// Kinds of peers that stop halfway, each holding its socket open afterwards.
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// Sends `garbage()[i]`.
    Garbage(usize),
    /// Sends its whole ClientHello, then nothing.
    AfterClientHello,
    /// Sends half of its ClientHello record.
    PartialRecord,
    /// Sends its first flight, reads the FMC's, sends half of its second flight.
    PartialSecondFlight,
}

fn stall(addr: SocketAddr, ftd: &TlsFiles, how: Stall) -> TcpStream {
    let mut t = connect(addr);
    match how {
        Stall::Garbage(i) => {
            // The server may already have closed on the first bytes; a failed write is fine.
            let _ = t.write_all(&garbage()[i]);
        }
        Stall::AfterClientHello => t.write_all(&client_hello(ftd)).unwrap(),
        Stall::PartialRecord => {
            let ch = client_hello(ftd);
            t.write_all(&ch[..ch.len() / 2]).unwrap();
        }
        Stall::PartialSecondFlight => {
            let mut c = tls_client(ftd);
            while c.wants_write() {
                c.write_tls(&mut t).unwrap();
            }
            // Read the FMC's flight until rustls has something to say back.
            while !c.wants_write() {
                c.read_tls(&mut t).unwrap();
                c.process_new_packets().unwrap();
            }
            let mut second = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut second).unwrap();
            }
            t.write_all(&second[..second.len() / 2]).unwrap();
        }
    }
    t
}

/// True once the server has closed `t` (EOF or reset; data it sent first, like an alert, is
/// read through).
fn closed_by_server(t: &mut TcpStream) -> bool {
    t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match t.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

// ---- a scripted device speaking the tunnel protocol over rustls, blocking ----

struct Device {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Device {
    /// Handshake and HELLO exchange.
    fn hello(addr: SocketAddr, lab: &Lab) -> Device {
        let mut tcp = connect(addr);
        let mut c = tls_client(&lab.ftd);
        while c.is_handshaking() {
            c.complete_io(&mut tcp).unwrap();
        }
        let mut d = Device {
            tls: StreamOwned::new(c, tcp),
            buf: Vec::new(),
        };
        d.send(&Message::Hello {
            role: Role::Device,
            uuid: lab.ftd_uuid.clone(),
            name: "ftd1".into(),
            version: "faults".into(),
            channel: sfdiag::sftunnel::Channel::Control,
        });
        match d.read() {
            Some(Message::Hello {
                role: Role::Fmc, ..
            }) => d,
            other => panic!("expected the FMC's HELLO, got {other:?}"),
        }
    }

    fn send(&mut self, m: &Message) {
        self.tls.write_all(&proto::encode(m)).unwrap();
        self.tls.flush().unwrap();
    }

    /// The next message, `None` once the stream ends or fails.
    fn read(&mut self) -> Option<Message> {
        loop {
            if let Some((m, used)) = proto::decode(&self.buf).unwrap() {
                self.buf.drain(..used);
                return Some(m);
            }
            let mut chunk = [0u8; 16384];
            match self.tls.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn wait_registered(fmc: &Fmc, n: usize) {
    wait_until(
        20,
        || {
            format!(
                "{} peers registered; {}",
                fmc.handle.peers().len(),
                fmc.text()
            )
        },
        || fmc.handle.peers().len() == n,
    );
}

/// The three files of `files` with `# push TAG` appended (still valid PEM).
fn tagged(files: &TlsFiles, tag: &str) -> Vec<PushFile> {
    [
        ("cacert.pem", &files.ca, 0o644),
        ("sftunnel-cert.pem", &files.cert, 0o644),
        ("sftunnel-key.pem", &files.key, 0o600),
    ]
    .into_iter()
    .map(|(name, path, mode)| {
        let mut data = strip_tag(&std::fs::read(path).unwrap());
        data.extend_from_slice(format!("# push {tag}\n").as_bytes());
        PushFile {
            name: name.into(),
            mode,
            data,
        }
    })
    .collect()
}

fn strip_tag(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    match text.find("# push ") {
        Some(i) => data[..i].to_vec(),
        None => data.to_vec(),
    }
}

/// The push tag each of the device's three files carries ("" for the original files).
fn tags(files: &TlsFiles) -> Vec<String> {
    [&files.ca, &files.cert, &files.key]
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.find("# push ")
                .map(|i| text[i + 7..].trim().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

// ---- the tests ----

/// 1,000 sockets that never speak, garbage speakers and handshakes abandoned at each step,
/// all at once against the `serve` binary: a real device keeps connecting while they are
/// there, the server drops every one of them on its own, and its descriptor count comes back
/// to where it was.
#[test]
fn serve_sheds_a_thousand_silent_sockets_garbage_and_half_handshakes_without_leaking() {
    const SILENT: usize = 1000;
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let log = d.path().join("serve.log");
    let mut serve = Bg::spawn(sfdiag().args([
        "serve",
        "--root",
        s(&lab.root),
        "--listen",
        "127.0.0.1:0",
        "--timeout",
        "10",
        "--log",
        s(&log),
    ]));
    let addr: SocketAddr = wait_line(&log, 20, "Listening on ")
        .rsplit("Listening on ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = serve.child.id();
    let connect_once = || {
        run(
            sfdiag().args([
                "connect",
                &addr.to_string(),
                "--root",
                s(&lab.root),
                "--device",
                "ftd1",
                "--once",
            ]),
            60,
        )
    };
    let out = connect_once();
    assert!(out.status.success(), "{out:?}");
    // Baseline: the warm-up tunnel closed, nothing else open.
    let closed = |n: usize| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(" disconnected: ")
            .count()
            >= n
    };
    wait_until(20, || "warm-up tunnel still open".into(), || closed(1));
    let base = fds_of(pid);

    let mut junk: Vec<TcpStream> = (0..SILENT).map(|_| connect(addr)).collect();
    let mut kinds: Vec<Stall> = (0..garbage().len()).map(Stall::Garbage).collect();
    kinds.extend([
        Stall::AfterClientHello,
        Stall::PartialRecord,
        Stall::PartialSecondFlight,
    ]);
    let stalled = kinds.iter().flat_map(|k| [*k; 4]).collect::<Vec<_>>();
    junk.extend(stalled.iter().map(|k| stall(addr, &lab.ftd, *k)));
    let n = junk.len();
    // The server accepted them all...
    wait_until(
        30,
        || format!("serve holds {} fds, base {base}, junk {n}", fds_of(pid)),
        || fds_of(pid) >= base + SILENT,
    );
    // ...and real devices still get through while the junk is there.
    for _ in 0..3 {
        let out = connect_once();
        assert!(out.status.success(), "{out:?}");
    }
    assert!(
        fds_of(pid) >= base + SILENT,
        "the junk was gone before the devices connected: the test proved nothing"
    );
    // The server drops every one on its own (the test still holds its ends open).
    wait_until(
        60,
        || format!("serve holds {} fds, baseline {base}", fds_of(pid)),
        || fds_of(pid) <= base + 2,
    );
    for (i, t) in junk.iter_mut().enumerate() {
        assert!(closed_by_server(t), "junk socket {i} was left open");
    }
    // Silent sockets and every stall after the first bytes end on the silence deadline, and
    // every junk peer is a failed handshake in the log. A peer's line is written just after
    // its socket closes (the handshake that owns the socket is dropped, then the failure
    // logged), so under load the last lines can trail the closes seen above: wait for them,
    // bounded, instead of reading the log once (which sometimes counted 1,011 of 1,012).
    let count = |needle: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches(needle)
            .count()
    };
    let timeouts = "Timed out after 10 seconds in handshake";
    wait_until(
        20,
        || {
            format!(
                "{} timeouts (want {}), {} failed handshakes (want {n})",
                count(timeouts),
                SILENT + 12,
                count("SSL handshake failed")
            )
        },
        || count(timeouts) >= SILENT + 12 && count("SSL handshake failed") >= n,
    );
    drop(junk);
    let out = connect_once();
    assert!(out.status.success(), "{out:?}");
    wait_until(20, || "tunnels still open".into(), || closed(5));
    wait_until(
        20,
        || format!("serve holds {} fds, baseline {base}", fds_of(pid)),
        || fds_of(pid) <= base + 2,
    );
    serve.stop();
}

/// Every way to stop halfway, in-process with one-second deadlines: silent, garbage, in the
/// middle of a record, after the ClientHello, in the middle of the second flight, dribbling a
/// byte at a time, handshake done but no HELLO, HELLO but no heartbeat. Each costs its own
/// task and socket only until its deadline, and the server's tasks and sockets come back to
/// the baseline.
#[test]
fn stalled_peers_at_every_phase_leave_no_task_or_socket_behind() {
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let fmc = Fmc::start(&lab.fmc, short_timeouts());
    let base = fmc.tasks();
    assert_eq!(fmc.sockets(), 0);

    let mut held: Vec<TcpStream> = (0..200).map(|_| connect(fmc.addr)).collect();
    wait_until(
        5,
        || format!("{} accepted", fmc.sockets()),
        || fmc.sockets() >= 200,
    );
    for k in (0..garbage().len()).map(Stall::Garbage).chain([
        Stall::AfterClientHello,
        Stall::PartialRecord,
        Stall::PartialSecondFlight,
    ]) {
        for _ in 0..3 {
            held.push(stall(fmc.addr, &lab.ftd, k));
        }
    }
    // Dribblers: a byte of the ClientHello every 300 ms, never silent for the 1 s deadline,
    // so only the whole-handshake limit (6 s) ends them.
    let dribblers: Vec<_> = (0..3)
        .map(|_| {
            let (addr, hello) = (fmc.addr, client_hello(&lab.ftd));
            std::thread::spawn(move || {
                let mut t = connect(addr);
                let start = Instant::now();
                for b in hello {
                    if t.write_all(&[b]).is_err() {
                        return Some(start.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                None
            })
        })
        .collect();
    // Handshake done, then nothing: the HELLO deadline.
    let mut no_hello = Vec::new();
    for _ in 0..3 {
        let mut t = connect(fmc.addr);
        let mut c = tls_client(&lab.ftd);
        while c.is_handshaking() {
            c.complete_io(&mut t).unwrap();
        }
        no_hello.push(StreamOwned::new(c, t));
    }
    // HELLO, then no heartbeat: dropped after three heartbeat intervals.
    let quiet: Vec<Device> = (0..3).map(|_| Device::hello(fmc.addr, &lab)).collect();
    wait_registered(&fmc, 3);
    // A real device while all that is going on.
    device_once(fmc.addr, &lab.ftd).unwrap();

    fmc.wait_idle(30, base);
    for t in &mut held {
        assert!(closed_by_server(t));
    }
    for (i, h) in dribblers.into_iter().enumerate() {
        let cut = h.join().unwrap();
        assert!(cut.is_some(), "dribbler {i} was never cut off");
    }
    assert!(fmc.count("Timed out after 1 seconds in handshake") >= 200 + 9);
    assert_eq!(fmc.count("Timed out after 6 seconds in handshake"), 3);
    assert_eq!(fmc.count("Timed out after 1 seconds in hello"), 3);
    assert_eq!(fmc.count("No heartbeat from ftd1 for 3 seconds"), 3);
    drop((no_hello, quiet));
}

/// A device that drops its tunnel as the PUSH arrives: the FMC's push fails at once (not on
/// its acknowledgement deadline), the peer leaves the registry, nothing is left behind.
#[test]
fn a_device_that_vanishes_mid_push_fails_the_push_at_once() {
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let fmc = Fmc::start(
        &lab.fmc,
        Timeouts {
            push: Duration::from_secs(600),
            ..short_timeouts()
        },
    );
    let base = fmc.tasks();
    let mut dev = Device::hello(fmc.addr, &lab);
    wait_registered(&fmc, 1);
    let push = fmc.push(&lab.ftd_uuid, tagged(&lab.ftd, "1"));
    match dev.read() {
        Some(Message::Push { files, .. }) => assert_eq!(files.len(), 3),
        other => panic!("expected PUSH, got {other:?}"),
    }
    drop(dev);
    let err = fmc.settle(push, 30).unwrap_err();
    assert!(
        err.to_string()
            .contains("tunnel closed before the acknowledgement"),
        "{err}"
    );
    fmc.wait_idle(20, base);
    let err = fmc
        .rt
        .block_on(fmc.handle.push(&lab.ftd_uuid, tagged(&lab.ftd, "2")))
        .unwrap_err();
    assert!(matches!(err, TunnelError::NotConnected { .. }), "{err}");
}

/// A device that hangs while the FMC pushes to it (it keeps the socket and stops reading):
/// every push gives up on its deadline, pushes queued behind a stuck write too, and the
/// tunnel is dropped like any silent peer instead of holding its task forever.
#[test]
fn a_device_that_hangs_mid_push_is_dropped_and_every_push_returns() {
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let fmc = Fmc::start(&lab.fmc, short_timeouts());
    let base = fmc.tasks();
    let dev = Device::hello(fmc.addr, &lab);
    wait_registered(&fmc, 1);
    // A megabyte a push (the frame limit), more than the socket buffers hold.
    let big = |i: usize| {
        vec![
            PushFile {
                name: "cacert.pem".into(),
                mode: 0o644,
                data: vec![b'A' + i as u8; 400_000],
            };
            2
        ]
    };
    let pushes: Vec<_> = (0..10).map(|i| fmc.push(&lab.ftd_uuid, big(i))).collect();
    for p in pushes {
        let err = fmc.settle(p, 30).unwrap_err();
        assert!(
            matches!(
                err,
                TunnelError::Push { .. } | TunnelError::NotConnected { .. }
            ),
            "{err}"
        );
    }
    fmc.wait_idle(30, base);
    // It was the stuck write that ended the tunnel (the buffers did not swallow 8 MB).
    assert_eq!(
        fmc.count("disconnected: peer took no data for 3 seconds"),
        1,
        "{}",
        fmc.text()
    );
    drop(dev);
}

/// The `connect` binary killed at a sweep of moments while a push is in flight: the FMC's
/// push ends (an error unless the acknowledgement got out first), and the device's three
/// files are never a mix of old and new, neither on disk nor in what the next start loads.
#[test]
fn a_device_killed_mid_push_keeps_all_old_or_all_new_files() {
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let fmc = Fmc::start(
        &lab.fmc,
        Timeouts {
            push: Duration::from_secs(600),
            ..short_timeouts()
        },
    );
    let base = fmc.tasks();
    let mut events = fmc.handle.subscribe();
    let mut last = String::new();
    let mut acked = 0;
    let journal = lab.ftd.key.with_file_name(".sftunnel-push.journal");
    for (i, delay_us) in [
        0u64, 100, 300, 600, 1000, 1500, 2500, 4000, 7000, 12000, 500_000,
    ]
    .into_iter()
    .enumerate()
    {
        let mut dev = Bg::spawn(sfdiag().args([
            "connect",
            &fmc.addr.to_string(),
            "--root",
            s(&lab.root),
            "--device",
            "ftd1",
            "--heartbeat",
            "1",
        ]));
        // Wait for this device's registration.
        fmc.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    if let Ok(sfdiag::tunnel::server::ServerEvent::Connected { .. }) =
                        events.recv().await
                    {
                        break;
                    }
                }
            })
            .await
            .expect("device did not connect")
        });
        // What the started device loaded (after finishing any push the last one died in).
        let now = tags(&lab.ftd);
        assert!(now.iter().all(|t| *t == now[0]), "mixed files: {now:?}");
        assert!(!journal.exists());
        let prev = i.checked_sub(1).map(|p| p.to_string()).unwrap_or_default();
        assert!(now[0] == last || now[0] == prev, "{now:?}");
        last = now[0].clone();

        let push = fmc.push(&lab.ftd_uuid, tagged(&lab.ftd, &i.to_string()));
        std::thread::sleep(Duration::from_micros(delay_us));
        dev.kill();
        match fmc.settle(push, 30) {
            Ok(ack) => {
                assert!(ack.ok, "{ack:?}");
                acked += 1;
            }
            Err(e) => assert!(
                matches!(
                    e,
                    TunnelError::Push { .. } | TunnelError::NotConnected { .. }
                ),
                "{e}"
            ),
        }
        // On disk: the old set, the new set, or a committed push the next start finishes.
        let disk = tags(&lab.ftd);
        eprintln!(
            "kill at {delay_us} us: {disk:?} journal {}",
            journal.exists()
        );
        assert!(
            disk.iter().all(|t| *t == disk[0]) || journal.exists(),
            "mixed files after a kill {delay_us} us into push {i}: {disk:?}"
        );
        // Forget the dead device's registrations (it may have reconnected before the kill).
        wait_registered(&fmc, 0);
        while events.try_recv().is_ok() {}
    }
    // The sweep crossed the push: some kills came before the acknowledgement, some after.
    assert!(acked > 0 && acked < 11, "{acked} of 11 pushes acknowledged");
    fmc.wait_idle(30, base);
}

/// `connect` keeps a tunnel to a `serve` that is killed and, a few seconds later, started
/// again on the same port: the device logs the loss and every failed attempt, then comes back.
#[test]
fn connect_comes_back_when_serve_vanishes_and_returns() {
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let (slog, dlog) = (d.path().join("serve.log"), d.path().join("ftd.log"));
    let serve_on = |listen: &str| {
        Bg::spawn(sfdiag().args([
            "serve",
            "--root",
            s(&lab.root),
            "--listen",
            listen,
            "--log",
            s(&slog),
        ]))
    };
    let mut serve = serve_on("127.0.0.1:0");
    let addr = wait_line(&slog, 20, "Listening on ")
        .rsplit("Listening on ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let mut dev = Bg::spawn(sfdiag().args([
        "connect",
        &addr,
        "--root",
        s(&lab.root),
        "--device",
        "ftd1",
        "--retry-max",
        "1",
        "--log",
        s(&dlog),
    ]));
    let count = |p: &Path, needle: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .matches(needle)
            .count()
    };
    // Registered means both channels (the events channel comes after control).
    wait_until(
        20,
        || "device not registered".into(),
        || count(&dlog, "registered this device as ftd1: Channel-B") == 1,
    );
    serve.kill();
    wait_until(
        20,
        || "no failed attempts".into(),
        || count(&dlog, "Failed to connect to ") >= 3,
    );
    // The port is free again, unless a socket of another test took it meanwhile as its
    // ephemeral port: then serve exits (port busy) and is started again.
    let mut serve = serve_on(&addr);
    let end = Instant::now() + Duration::from_secs(30);
    while count(&slog, "Listening on ") < 2 {
        if serve.child.try_wait().unwrap().is_some() {
            assert!(Instant::now() < end, "{addr} stayed busy");
            std::thread::sleep(Duration::from_millis(500));
            serve = serve_on(&addr);
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(Instant::now() < end, "serve did not start again on {addr}");
    }
    wait_until(
        30,
        || std::fs::read_to_string(&dlog).unwrap_or_default(),
        || count(&dlog, "registered this device as ftd1: Channel-B") == 2,
    );
    dev.stop();
    serve.stop();
    let text = std::fs::read_to_string(&dlog).unwrap();
    // One loss per channel (control and events, each its own connection).
    assert_eq!(count(&dlog, "Connection to "), 2, "{text}");
    assert!(
        text.contains(&format!("Connection to {addr} lost: ")),
        "{text}"
    );
    // Every attempt after the loss is either a logged failure or one of the two that got
    // back (control, then events: the events channel waits for control), and each failure
    // says when the next attempt comes.
    let after = &text[text.find(" lost: ").unwrap()..];
    let attempts = after.matches("Initiating IPv4 connection to").count();
    let failed = after.matches("Failed to connect to ").count();
    assert_eq!(attempts, failed + 2, "{text}");
    assert!(
        after.matches("Next connection attempt to ").count() > failed,
        "{text}"
    );
    assert!(failed >= 3, "{text}");
}

// ---- child processes ----

/// A long-running child (serve or connect), killed when dropped.
struct Bg {
    child: Child,
}

impl Bg {
    fn spawn(cmd: &mut Command) -> Bg {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Bg { child }
    }

    /// SIGKILL, as a crash or power loss would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and a bounded wait for a clean exit.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "still running 20 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first line of `file` containing `needle`, waiting up to `secs`.
fn wait_line(file: &Path, secs: u64, needle: &str) -> String {
    let mut found = None;
    wait_until(
        secs,
        || format!("no '{needle}' in {}", file.display()),
        || {
            found = std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned);
            found.is_some()
        },
    );
    found.unwrap()
}

/// The control socket is local, but a script can still misbehave: a request that is not
/// JSON gets an answer saying so and the connection goes on; a line longer than any push
/// could need gets an error and the connection is closed, without the server buffering it
/// all; neither leaves a task behind.
#[test]
fn control_socket_answers_garbage_and_cuts_off_an_endless_line() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let sock = d.path().join("ctl.sock");
    let fmc = Fmc::start_with(&lab.fmc, short_timeouts(), Some(sock.clone()));
    let base = fmc.tasks();

    let c = UnixStream::connect(&sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut lines = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    let mut answer = String::new();
    w.write_all(b"hello?\n").unwrap();
    lines.read_line(&mut answer).unwrap();
    assert!(answer.contains("bad request"), "{answer}");
    answer.clear();
    w.write_all(b"{\"op\":\"status\"}\n").unwrap();
    lines.read_line(&mut answer).unwrap();
    assert!(answer.contains("\"ok\":true"), "{answer}");

    // No newline for longer than the limit: the server answers and hangs up; the rest of
    // what we write then fails (or vanishes) instead of filling the server's memory.
    let chunk = vec![b'x'; 64 * 1024];
    let limit = sfdiag::tunnel::control::MAX_REQUEST;
    let mut sent = 0;
    while sent <= limit + chunk.len() {
        if w.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    answer.clear();
    lines.read_line(&mut answer).unwrap();
    assert!(answer.contains("request longer than"), "{answer}");
    answer.clear();
    // Closed: end of stream, or a reset (the server left our unread bytes behind).
    match lines.read_line(&mut answer) {
        Ok(n) => assert_eq!(n, 0, "closed: {answer}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    drop(w);
    drop(lines);
    fmc.wait_idle(20, base);
}

/// Issue 11's starvation reproducer: 300 peers that send their ClientHello and then one byte
/// every 4 s (never silent for the 10 s deadline, never done) while a real device connects
/// with the default deadlines. The dribblers must not hold the handshake slots: the device is
/// through in under 10 s, its own handshake deadline, instead of failing on the FMC's silence.
#[test]
fn a_device_connects_in_under_ten_seconds_beside_300_dribbling_peers() {
    const DRIBBLERS: usize = 300;
    let d = tempfile::tempdir().unwrap();
    let lab = lab(d.path());
    let fmc = Fmc::start(&lab.fmc, Timeouts::default());
    let hello = client_hello(&lab.ftd);
    let peers: Vec<TcpStream> = (0..DRIBBLERS)
        .map(|_| {
            let mut t = connect(fmc.addr);
            t.write_all(&hello).unwrap();
            t.set_nonblocking(true).unwrap();
            t
        })
        .collect();
    // Every ClientHello has been taken up (answered, or waiting for a slot) before the device
    // comes: the FMC has answered at least as many as it has slots.
    let answered = |peers: &[TcpStream]| {
        peers
            .iter()
            .filter(|t| t.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0))
            .count()
    };
    wait_until(
        60,
        || format!("{} of {DRIBBLERS} ClientHellos answered", answered(&peers)),
        || answered(&peers) >= DRIBBLERS.min(256),
    );
    // One byte every 4 s of a handshake record that claims 16 KiB and never ends.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dribble = {
        let stop = stop.clone();
        let mut record = vec![0x16, 0x03, 0x03, 0x40, 0x00];
        record.resize(16 * 1024, 0);
        let mut socks: Vec<TcpStream> = peers.iter().map(|t| t.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(90);
            for b in record.iter().cycle() {
                for t in &mut socks {
                    let _ = t.write(&[*b]);
                }
                for _ in 0..40 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() > end {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };
    let t0 = Instant::now();
    let res = device_once(fmc.addr, &lab.ftd);
    let took = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dribble.join().unwrap();
    // The dribblers were still there, waiting on their handshakes, when the device got in.
    let still_open = peers
        .iter()
        .filter(|t| {
            let mut r: &TcpStream = t;
            !matches!(r.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    drop(peers);
    assert!(
        res.is_ok(),
        "the device failed after {took:?}: {res:?}\n{}",
        fmc.text()
    );
    assert!(took < Duration::from_secs(10), "the device took {took:?}");
    assert_eq!(
        still_open, DRIBBLERS,
        "dribblers were dropped: the test proved nothing"
    );
}
