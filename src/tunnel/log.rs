//! Log lines in the shape of the appliance's messages log:
//! `Sep 20 04:10:47 HOSTNAME SF-IMS[pid]: [tid] sftunnel:sf_ssl [LEVEL] text`.
//!
//! Owns where lines go (a writer such as stdout or `--log FILE`, memory for in-process labs and
//! tests, or nowhere); the line itself, with its escaping of what peers send, is
//! [`crate::sftunnel::Line`]. The stamp comes from the tunnel's [`Clock`] and the
//! hostname is an input, so a lab run logs its lab time and the emulated appliance's name. What
//! the lines say is decided by the server and client; this module only formats and delivers.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::clock::Clock;
use super::failure::Words;
use crate::judge::OpenSsl;
use crate::sftunnel::{Component, Level, Line, Pid, Role, TidOrFrame, TlsSide};

enum Sink {
    Writer(Mutex<Box<dyn Write + Send>>),
    Memory(Mutex<Vec<String>>),
    Discard,
}

struct Inner {
    hostname: String,
    pid: u32,
    clock: Clock,
    sink: Sink,
    next_tid: AtomicU32,
    /// The appliance's part (`Role` as a number): the server says FMC, a client device.
    role: AtomicU8,
    /// The OpenSSL whose words its lines use (`--openssl`).
    openssl: AtomicU8,
}

fn role_from(n: u8) -> Role {
    match n {
        0 => Role::Fmc,
        2 => Role::HaSecondary,
        _ => Role::Device,
    }
}

fn role_to(r: Role) -> u8 {
    match r {
        Role::Fmc => 0,
        Role::Device => 1,
        Role::HaSecondary => 2,
    }
}

fn openssl_from(n: u8) -> OpenSsl {
    match n {
        1 => OpenSsl::V1_1_1,
        2 => OpenSsl::V1_0_2,
        _ => OpenSsl::V3,
    }
}

fn openssl_to(o: OpenSsl) -> u8 {
    match o {
        OpenSsl::V3 => 0,
        OpenSsl::V1_1_1 => 1,
        OpenSsl::V1_0_2 => 2,
    }
}

/// Where one appliance's lines go. Cheap to clone; clones share the sink and the tid counter.
#[derive(Clone)]
pub struct SfLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SfLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfLog")
            .field("hostname", &self.inner.hostname)
            .field("pid", &self.inner.pid)
            .finish_non_exhaustive()
    }
}

impl SfLog {
    fn new(hostname: &str, pid: u32, clock: Clock, sink: Sink) -> Self {
        Self {
            inner: Arc::new(Inner {
                hostname: hostname.to_owned(),
                pid,
                clock,
                sink,
                next_tid: AtomicU32::new(pid.wrapping_add(1)),
                role: AtomicU8::new(role_to(Role::Device)),
                openssl: AtomicU8::new(openssl_to(OpenSsl::V3)),
            }),
        }
    }

    /// Lines written to `w` (stdout, a `--log` file), one `write` per line (or per block).
    pub fn to_writer(
        hostname: &str,
        pid: u32,
        clock: Clock,
        w: impl Write + Send + 'static,
    ) -> Self {
        Self::new(hostname, pid, clock, Sink::Writer(Mutex::new(Box::new(w))))
    }

    /// Lines kept in memory; read them with [`SfLog::lines`].
    pub fn memory(hostname: &str, pid: u32, clock: Clock) -> Self {
        Self::new(hostname, pid, clock, Sink::Memory(Mutex::new(Vec::new())))
    }

    /// Lines dropped (load generators, benchmarks).
    pub fn discard(hostname: &str, clock: Clock) -> Self {
        Self::new(hostname, std::process::id(), clock, Sink::Discard)
    }

    /// The emulated appliance's host name.
    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// The clock stamping the lines.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// A fresh thread id for one connection's lines (the appliance logs per thread).
    pub fn next_tid(&self) -> u32 {
        self.inner.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// Words the lines as an appliance linked with `openssl` does (`--openssl`; default 3.x).
    /// Clones share it.
    pub fn set_openssl(&self, openssl: OpenSsl) {
        self.inner
            .openssl
            .store(openssl_to(openssl), Ordering::Relaxed);
    }

    /// The OpenSSL whose words the lines use.
    pub fn openssl(&self) -> OpenSsl {
        openssl_from(self.inner.openssl.load(Ordering::Relaxed))
    }

    /// Which appliance logs here (the server sets FMC, a client its device's role): it picks
    /// the block a failure is logged with.
    pub fn set_role(&self, role: Role) {
        self.inner.role.store(role_to(role), Ordering::Relaxed);
    }

    /// Which appliance logs here.
    pub fn role(&self) -> Role {
        role_from(self.inner.role.load(Ordering::Relaxed))
    }

    /// The main thread's id (= pid, as on the appliance).
    pub fn main_tid(&self) -> u32 {
        self.inner.pid
    }

    /// True when lines go nowhere, so callers can skip building them.
    pub fn is_discard(&self) -> bool {
        matches!(self.inner.sink, Sink::Discard)
    }

    /// Writes one line.
    pub fn log(&self, tid: u32, component: Component, level: Level, text: &str) {
        self.log_block(tid, component, &[(level, text)]);
    }

    /// Writes `lines` as one block (one `write`): a failure's lines stay together even when
    /// other connections log at the same moment, as they read in the appliance's log.
    pub fn log_block(&self, tid: u32, component: Component, lines: &[(Level, &str)]) {
        if self.is_discard() || lines.is_empty() {
            return;
        }
        let at = self.inner.clock.now();
        let formatted: Vec<String> = lines
            .iter()
            .map(|(level, text)| {
                Line {
                    at: at.into(),
                    host: &self.inner.hostname,
                    pid: Pid::Process(self.inner.pid),
                    tid_or_frame: Some(TidOrFrame::Tid(tid)),
                    component,
                    level: *level,
                    text,
                }
                .to_string()
            })
            .collect();
        match &self.inner.sink {
            Sink::Writer(w) => {
                let mut block = formatted.join("\n");
                block.push('\n');
                let mut w = crate::sync::lock(w);
                // A log that cannot be written must not take the tunnel down with it.
                let _ = w.write_all(block.as_bytes()).and_then(|()| w.flush());
            }
            Sink::Memory(v) => crate::sync::lock(v).extend(formatted),
            Sink::Discard => {}
        }
    }

    /// The lines kept so far by a memory log (empty for other sinks).
    pub fn lines(&self) -> Vec<String> {
        match &self.inner.sink {
            Sink::Memory(v) => crate::sync::lock(v).clone(),
            _ => Vec::new(),
        }
    }

    /// A logger bound to one thread id.
    pub fn thread(&self, tid: u32) -> ThreadLog {
        ThreadLog {
            log: self.clone(),
            tid,
            side: None,
            peer: None,
        }
    }
}

/// An [`SfLog`] bound to one `[tid]` (one connection), with a shorthand per level for the
/// `sf_ssl` component, and what that connection's failures are worded by ([`Self::words`]).
#[derive(Clone, Debug)]
pub struct ThreadLog {
    log: SfLog,
    tid: u32,
    side: Option<TlsSide>,
    peer: Option<SocketAddr>,
}

impl ThreadLog {
    /// This connection's end of TLS (default: the FMC accepts, a device dials) and its peer.
    pub fn on(mut self, side: TlsSide, peer: SocketAddr) -> Self {
        self.side = Some(side);
        self.peer = Some(peer);
        self
    }

    /// Whose words a failure on this connection is logged in.
    pub fn words(&self) -> Words {
        let role = self.log.role();
        Words {
            side: self.side.unwrap_or(match role {
                Role::Fmc => TlsSide::Server,
                Role::Device | Role::HaSecondary => TlsSide::Client,
            }),
            role,
            openssl: self.log.openssl(),
            peer: self.peer,
        }
    }

    /// The thread id its lines carry (`[tid]`).
    pub fn tid(&self) -> u32 {
        self.tid
    }
    /// True when lines go nowhere (fleet load runs), so callers can skip building them.
    pub fn is_quiet(&self) -> bool {
        self.log.is_discard()
    }
    /// Writes one line ([`SfLog::log`]).
    pub fn log(&self, component: Component, level: Level, text: &str) {
        self.log.log(self.tid, component, level, text);
    }
    /// Several lines as one block ([`SfLog::log_block`]).
    pub fn log_block(&self, component: Component, lines: &[(Level, &str)]) {
        self.log.log_block(self.tid, component, lines);
    }
    /// One `sftunnel:sf_ssl` line at `INFO`.
    pub fn info(&self, text: &str) {
        self.log(Component::SfSsl, Level::Info, text);
    }
    /// One `sftunnel:sf_ssl` line at `WARN`.
    pub fn warn(&self, text: &str) {
        self.log(Component::SfSsl, Level::Warn, text);
    }
    /// One `sftunnel:sf_ssl` line at `ERROR`.
    pub fn error(&self, text: &str) {
        self.log(Component::SfSsl, Level::Error, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn memory_log_keeps_lines_with_lab_time_and_fresh_tids() {
        let log = SfLog::memory("fmc", 100, Clock::lab(datetime!(2034-10-05 12:16:56 UTC)));
        let a = log.next_tid();
        let b = log.next_tid();
        assert_ne!(a, b);
        log.thread(a).error("SSL handshake failed");
        let lines = log.lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("Oct  5 12:1"), "{}", lines[0]);
        assert!(
            lines[0].ends_with(&format!(
                "fmc SF-IMS[100]: [{a}] sftunnel:sf_ssl [ERROR] SSL handshake failed"
            )),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn what_a_peer_sends_stays_on_its_own_line() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("messages");
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap()
        };
        let clock = Clock::lab(datetime!(2034-10-05 12:16:56 UTC));
        let log = SfLog::to_writer("fmc", 100, clock, file);
        // A HELLO name crafted to append a line of its own.
        let name = "ftd1\nOct  5 12:16:57 fmc SF-IMS[100]: [101] sftunnel:sf_peers [INFO] Peer ftd9 registered";
        log.thread(101).log(
            Component::SfPeers,
            Level::Info,
            &format!("Peer {name} registered"),
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("ftd1\\x0AOct  5"), "{text}");
    }
}
