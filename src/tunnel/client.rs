//! The device side of sftunnel: dials the FMC, proves itself with its certificate, judges the
//! FMC's, says HELLO, sends heartbeats, installs pushed certificates and restarts.
//!
//! Two ways to run it: [`Client::run`] keeps a tunnel up forever like sftunnel (every failure
//! logged, retries with doubling backoff, files reloaded before every attempt so new
//! certificates take effect on the next reconnect); [`Client::once`] does one handshake and
//! one heartbeat for scripts. The load generator that drives many of these at once is
//! [`super::fleet`]'s; it reuses this module's attempt and session.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, KeyLog};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::TunnelError;
use super::clock::Clock;
use super::config;
use super::failure::HandshakeFailure;
use super::framed::Framed;
use super::handshake::{self, Established, Heard};
use super::install;
use super::log::{SfLog, ThreadLog};
use super::material::{Identity, TlsFiles};
use super::proto::{Message, PushAck};
use super::server::Timeouts;
use crate::recorder::{Recorder, Tapped};
use crate::sftunnel::escape;
use crate::sftunnel::{Component, Level, Role, TlsSide};

/// A device's TLS stream to the FMC.
pub type Stream = TlsStream<Heard<Tapped<TcpStream>>>;

/// Retry delays of [`Client::run`]: `initial`, doubled after each failure up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Everything `connect` needs.
pub struct ClientSettings {
    /// The FMC, `ADDR:PORT`.
    pub server: String,
    /// This device's files; pushes are installed over them.
    pub files: TlsFiles,
    /// The device name sent in HELLO.
    pub name: String,
    pub clock: Clock,
    pub log: SfLog,
    pub keylog: Option<Arc<dyn KeyLog>>,
    pub timeouts: Timeouts,
    pub backoff: Backoff,
}

/// Where a running client stands, for in-process watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    Connecting,
    /// Tunnel up (HELLO exchanged) with the FMC named `fmc`.
    Connected {
        fmc: String,
    },
    /// The last attempt failed; retrying after the backoff.
    Failed(HandshakeFailure),
    Stopped,
}

/// What `--once` saw.
#[derive(Clone, Debug)]
pub struct OnceReport {
    pub established: Established,
    pub fmc_name: String,
    pub fmc_uuid: String,
    /// Time from HEARTBEAT to its ACK.
    pub heartbeat_rtt: Duration,
}

/// How a session ended.
pub(super) enum End {
    /// Pushed files installed, or a restart was asked for: reconnect at once.
    Restart(String),
    /// Lost: reconnect after the backoff.
    Lost(String),
    Stopped,
    /// `--once` got its heartbeat answered.
    Done(Duration),
}

/// The device side.
pub struct Client {
    pub(super) s: ClientSettings,
    pub(super) addr: SocketAddr,
    /// `--pcap`: every connection this client opens is recorded here.
    recorder: Option<Recorder>,
}

impl Client {
    /// Resolves the FMC address; files are read on each attempt.
    pub fn new(s: ClientSettings) -> Result<Self, TunnelError> {
        let addr = s
            .server
            .to_socket_addrs()
            .map_err(|e| TunnelError::Config(format!("{}: {e}", s.server)))?
            .next()
            .ok_or_else(|| TunnelError::Config(format!("{}: no address", s.server)))?;
        // Its failures are worded as a device's (an HA secondary dials as one too).
        s.log.set_role(Role::Device);
        Ok(Self {
            s,
            addr,
            recorder: None,
        })
    }

    /// Records the traffic of every connection this client opens into `recorder`.
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The FMC address dialed.
    pub fn server_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads this device's files and builds its TLS configuration, after finishing (or
    /// undoing) a push the device was killed in the middle of.
    pub fn load(&self) -> Result<(Arc<ClientConfig>, Identity), TunnelError> {
        let done = install::recover(&self.s.files).map_err(|reason| TunnelError::File {
            path: install::journal(&self.s.files),
            reason,
        })?;
        if !done.is_empty() {
            let names: Vec<String> = done.iter().map(|p| p.display().to_string()).collect();
            self.s.log.thread(self.s.log.main_tid()).log(
                Component::SfPeers,
                Level::Warn,
                &format!(
                    "Finished an interrupted push: installed {}",
                    names.join(", ")
                ),
            );
        }
        let id = Identity::load(&self.s.files)?;
        let cfg = config::client_config(&id, &self.s.clock, self.s.keylog.clone())?;
        Ok((cfg, id))
    }

    /// TCP connect + TLS handshake, logging the attempt as sftunnel does. Failures are returned,
    /// not logged.
    pub async fn attempt(
        &self,
        cfg: Arc<ClientConfig>,
        tl: &ThreadLog,
    ) -> Result<(Stream, Established), HandshakeFailure> {
        let (ip, port) = (self.addr.ip(), self.addr.port());
        let v = if self.addr.is_ipv4() { "IPv4" } else { "IPv6" };
        let quiet = tl.is_quiet();
        if !quiet {
            tl.info(&format!("Initiating {v} connection to {}", self.addr));
            tl.info(&format!("Wait to connect to {port} (IP: {ip})"));
        }
        let deadline = self.s.timeouts.handshake;
        let tcp = match tokio::time::timeout(deadline, TcpStream::connect(self.addr)).await {
            Err(_) => {
                return Err(HandshakeFailure::Timeout {
                    phase: "connect",
                    secs: deadline.as_secs(),
                });
            }
            Ok(Err(e)) => {
                return Err(HandshakeFailure::Connect {
                    addr: self.addr.to_string(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(t)) => t,
        };
        let _ = tcp.set_nodelay(true);
        if !quiet {
            tl.info(&format!("Connected to {ip} (port {port}) ({v})"));
        }
        let tcp = match (&self.recorder, tcp.local_addr()) {
            (Some(r), Ok(local)) => r.tap(tcp, local, self.addr, TlsSide::Client),
            _ => Tapped::plain(tcp),
        };
        let (tls, est) = handshake::connect(cfg, tcp, ip, deadline).await?;
        if !quiet {
            tl.info(&format!(
                "Successfully connected using SSL to: {ip} (TLSv1.2, {}), peer {}",
                est.cipher,
                est.peer.as_ref().map_or("?", |c| c.subject.as_str())
            ));
        }
        Ok((tls, est))
    }

    /// One handshake, HELLO and one heartbeat; the tunnel is then closed.
    pub async fn once(&self) -> Result<OnceReport, TunnelError> {
        let (cfg, id) = self.load()?;
        let tl = self.s.log.thread(self.s.log.next_tid());
        let (tls, est) = match self.attempt(cfg, &tl).await {
            Ok(x) => x,
            Err(f) => {
                f.log(&tl);
                return Err(f.into());
            }
        };
        let uuid = id.cert().and_then(|c| c.title).unwrap_or_default();
        // Keep the sender: a dropped sender reads as "stop".
        let (_never_tx, never) = watch::channel(false);
        let mut session = Session::new(&self.s, &tl, Framed::new(tls), &uuid, &self.s.name);
        let fmc = match session.hello().await {
            Ok(f) => f,
            Err(f) => {
                f.log(&tl);
                return Err(f.into());
            }
        };
        match session.run(true, never, &Notify::new()).await {
            End::Done(rtt) => Ok(OnceReport {
                established: est,
                fmc_name: fmc.0,
                fmc_uuid: fmc.1,
                heartbeat_rtt: rtt,
            }),
            End::Lost(why) | End::Restart(why) => {
                let f = HandshakeFailure::Tls(why);
                f.log(&tl);
                Err(f.into())
            }
            End::Stopped => Err(HandshakeFailure::Closed.into()),
        }
    }

    /// Keeps the tunnel up until `stop` turns true; `restart` ends the current session and
    /// reconnects at once (with files re-read). Setup errors (unreadable files) are logged and
    /// retried like handshake failures: the appliance keeps trying too.
    pub async fn run(
        &self,
        mut stop: watch::Receiver<bool>,
        restart: Arc<Notify>,
        state: watch::Sender<ClientState>,
    ) {
        let mut delay = self.s.backoff.initial;
        loop {
            if *stop.borrow() {
                break;
            }
            let tl = self.s.log.thread(self.s.log.next_tid());
            let _ = state.send(ClientState::Connecting);
            let end = self.run_one(&tl, stop.clone(), &restart, &state).await;
            match end {
                Ok(End::Stopped) | Ok(End::Done(_)) => break,
                Ok(End::Restart(why)) => {
                    tl.log(
                        Component::SfPeers,
                        Level::Info,
                        &format!("Restarting tunnel: {why}"),
                    );
                    delay = self.s.backoff.initial;
                    continue;
                }
                Ok(End::Lost(why)) => {
                    tl.warn(&format!("Connection to {} lost: {why}", self.addr));
                    delay = self.s.backoff.initial;
                }
                Err(f) => {
                    f.log(&tl);
                    let _ = state.send(ClientState::Failed(f));
                }
            }
            tl.info(&format!(
                "Next connection attempt to {} in {} seconds",
                self.addr,
                delay.as_secs_f32()
            ));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = restart.notified() => {}
                _ = super::stopped(&mut stop) => break,
            }
            delay = (delay * 2).min(self.s.backoff.max);
        }
        let _ = state.send(ClientState::Stopped);
    }

    async fn run_one(
        &self,
        tl: &ThreadLog,
        stop: watch::Receiver<bool>,
        restart: &Notify,
        state: &watch::Sender<ClientState>,
    ) -> Result<End, HandshakeFailure> {
        let (cfg, id) = self
            .load()
            .map_err(|e| HandshakeFailure::Tls(format!("cannot load certificates: {e}")))?;
        let (tls, _) = self.attempt(cfg, tl).await?;
        let uuid = id.cert().and_then(|c| c.title).unwrap_or_default();
        let mut session = Session::new(&self.s, tl, Framed::new(tls), &uuid, &self.s.name);
        let (fmc, _) = session.hello().await?;
        let _ = state.send(ClientState::Connected { fmc });
        Ok(session.run(false, stop, restart).await)
    }

    /// Starts [`Client::run`] on a task; the handle stops or restarts it.
    pub fn spawn(self) -> ClientHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(ClientState::Connecting);
        let restart = Arc::new(Notify::new());
        let r = restart.clone();
        let task = tokio::spawn(async move { self.run(stop_rx, r, state_tx).await });
        ClientHandle {
            stop: stop_tx,
            restart,
            state: state_rx,
            task,
        }
    }
}

/// A client running on its own task.
pub struct ClientHandle {
    stop: watch::Sender<bool>,
    restart: Arc<Notify>,
    state: watch::Receiver<ClientState>,
    task: tokio::task::JoinHandle<()>,
}

impl ClientHandle {
    /// Ends the current session (if any) and reconnects now with the files re-read, as
    /// restarting sftunnel on the device does.
    pub fn restart(&self) {
        self.restart.notify_one();
    }

    /// The client's state as it changes.
    pub fn state(&self) -> watch::Receiver<ClientState> {
        self.state.clone()
    }

    /// Stops the client and waits for its task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One registered tunnel on the device side.
pub(super) struct Session<'a, S> {
    s: &'a ClientSettings,
    tl: &'a ThreadLog,
    io: Framed<S>,
    uuid: &'a str,
    name: &'a str,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    pub(super) fn new(
        s: &'a ClientSettings,
        tl: &'a ThreadLog,
        io: Framed<S>,
        uuid: &'a str,
        name: &'a str,
    ) -> Self {
        Self {
            s,
            tl,
            io,
            uuid,
            name,
        }
    }

    /// Sends our HELLO and reads the FMC's: its name and UUID (escaped).
    pub(super) async fn hello(&mut self) -> Result<(String, String), HandshakeFailure> {
        let hello = Message::Hello {
            role: Role::Device,
            uuid: self.uuid.to_owned(),
            name: self.name.to_owned(),
            version: concat!("sfdiag ", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        let lost = |e: TunnelError| HandshakeFailure::Tls(e.to_string());
        self.io
            .send_within(&hello, self.s.timeouts.hello)
            .await
            .map_err(lost)?;
        match tokio::time::timeout(self.s.timeouts.hello, self.io.read()).await {
            Err(_) => Err(HandshakeFailure::Timeout {
                phase: "hello",
                secs: self.s.timeouts.hello.as_secs(),
            }),
            Ok(Ok(Some(Message::Hello {
                role: Role::Fmc,
                uuid,
                name,
                ..
            }))) => {
                // The FMC's words, escaped once here for every log line and state after.
                let (name, uuid) = (escape(&name).into_owned(), escape(&uuid).into_owned());
                if !self.tl.is_quiet() {
                    self.tl.log(
                        Component::SfPeers,
                        Level::Info,
                        &format!(
                            "Peer {name} ({uuid}) registered this device as {}",
                            escape(self.name)
                        ),
                    );
                }
                Ok((name, uuid))
            }
            Ok(Ok(None)) => Err(HandshakeFailure::Closed),
            Ok(Ok(Some(m))) => Err(HandshakeFailure::Tls(format!(
                "expected HELLO, got {}",
                m.kind()
            ))),
            Ok(Err(e)) => Err(lost(e)),
        }
    }

    /// Heartbeats and pushes until the session ends.
    pub(super) async fn run(
        mut self,
        once: bool,
        mut stop: watch::Receiver<bool>,
        restart: &Notify,
    ) -> End {
        let every = self.s.timeouts.heartbeat;
        let idle = every * 3;
        let mut tick = tokio::time::interval(every);
        let mut deadline = Instant::now() + idle;
        let mut seq = 0u64;
        let mut sent_at = Instant::now();
        let end = loop {
            tokio::select! {
                _ = tick.tick() => {
                    seq += 1;
                    sent_at = Instant::now();
                    let now = self.s.clock.now();
                    let hb = Message::Heartbeat { seq, unix_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64 };
                    if let Err(e) = self.io.send_within(&hb, idle).await {
                        break End::Lost(e.to_string());
                    }
                }
                m = self.io.read() => {
                    deadline = Instant::now() + idle;
                    match m {
                        Ok(Some(Message::HeartbeatAck { seq: got, .. })) => {
                            if once && got == seq {
                                break End::Done(sent_at.elapsed());
                            }
                        }
                        Ok(Some(Message::Push { id, files })) => {
                            let names: Vec<_> = files.iter().map(|f| escape(&f.name)).collect();
                            self.tl.log(Component::SfPeers, Level::Info, &format!("Received push {id}: {}", names.join(", ")));
                            let ack = match install::install(&self.s.files, &files) {
                                Ok(paths) => {
                                    for p in &paths {
                                        self.tl.log(Component::SfPeers, Level::Info, &format!("Installed {}", escape(&p.display().to_string())));
                                    }
                                    PushAck { ok: true, message: format!("installed {} file(s)", paths.len()) }
                                }
                                Err(why) => {
                                    self.tl.log(Component::SfPeers, Level::Error, &format!("Push {id} refused: {}", escape(&why)));
                                    PushAck { ok: false, message: why }
                                }
                            };
                            let ok = ack.ok;
                            if let Err(e) = self.io.send_within(&Message::PushAck { id, ack }, idle).await {
                                break End::Lost(e.to_string());
                            }
                            if ok {
                                break End::Restart(format!("new certificates from push {id}"));
                            }
                        }
                        Ok(Some(Message::Unknown { kind, len })) => {
                            self.tl.log(Component::SfPeers, Level::Warn, &format!("Ignoring unknown message type {kind} ({len} bytes)"));
                        }
                        Ok(Some(other)) => {
                            self.tl.log(Component::SfPeers, Level::Warn, &format!("Unexpected {}", other.kind()));
                        }
                        Ok(None) => break End::Lost("closed by peer".into()),
                        Err(e) => break End::Lost(e.to_string()),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.tl.log(Component::SfHeartbeat, Level::Warn, &format!("No heartbeat answer for {} seconds", idle.as_secs()));
                    break End::Lost("heartbeat timeout".into());
                }
                _ = restart.notified() => break End::Restart("restart requested".into()),
                _ = super::stopped(&mut stop) => break End::Stopped,
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.close()).await;
        end
    }
}
