//! The device side of sftunnel: dials the FMC, proves itself with its certificate, judges the
//! FMC's, says HELLO, sends heartbeats, installs pushed certificates and restarts.
//!
//! Two ways to run it: [`Client::spawn`] keeps the tunnel up forever like sftunnel, both its
//! channels (control and events, each its own TLS connection, each with every failure logged,
//! retries with doubling backoff, files checked before every attempt and read again when they
//! changed, so new certificates take effect on the next reconnect), and with [`Client::spawn_listening`] also accepts the FMC's
//! own connections (the FMC dials its devices too; a channel the FMC opened is not dialed
//! again while it is up); [`Client::once`] does one handshake and one heartbeat for scripts. The load generator that drives many of these at once is
//! [`super::fleet`]'s; it reuses this module's attempt and session.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, KeyLog};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::TunnelError;
use super::clock::Clock;
use super::config::{self, TlsVersion};
use super::failure::HandshakeFailure;
use super::framed::Framed;
use super::handshake::{self, Established, Heard};
use super::install;
use super::log::{SfLog, ThreadLog};
use super::material::{Identity, Stamp, TlsFiles};
use super::proto::{Message, PushAck};
use super::server::Timeouts;
use crate::recorder::{Recorder, Tapped};
use crate::sftunnel::escape;
use crate::sftunnel::{Channel, Component, Level, Role, TlsSide};

/// A device's TLS stream to the FMC.
pub(super) type Stream = TlsStream<Heard<Tapped<TcpStream>>>;

/// Retry delays of [`Client::run`]: `initial`, doubled after each failure up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first delay, and the delay again after a session that was up ends (1 s by
    /// default).
    pub initial: Duration,
    /// The longest delay (60 s by default).
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
    /// The time certificates are judged at and heartbeats carry.
    pub clock: Clock,
    /// Where the device's log lines go; the client sets its role to device.
    pub log: SfLog,
    /// Where the TLS secrets of every session are written (`--keylog`); `None`: nowhere.
    pub keylog: Option<Arc<dyn KeyLog>>,
    /// The deadlines of connect, handshake, HELLO and heartbeats.
    pub timeouts: Timeouts,
    /// The delays between failed attempts.
    pub backoff: Backoff,
}

/// Where a running client stands, for in-process watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientState {
    /// An attempt is under way (the state a client starts in).
    Connecting,
    /// Tunnel up (HELLO exchanged) with the FMC named `fmc`.
    Connected {
        /// The name the FMC's HELLO gave (escaped).
        fmc: String,
    },
    /// The last attempt failed; retrying after the backoff.
    Failed(HandshakeFailure),
    /// The client was stopped and its control channel's loop has ended.
    Stopped,
}

/// What `--once` saw.
#[derive(Clone, Debug)]
pub struct OnceReport {
    /// The handshake's facts (suite, version, the FMC's certificate).
    pub established: Established,
    /// The sfdiag FMC's name from its HELLO, escaped (empty when [`Self::not_sfdiag`]).
    pub fmc_name: String,
    /// Its UUID from the same HELLO, escaped (empty when [`Self::not_sfdiag`]).
    pub fmc_uuid: String,
    /// Time from HEARTBEAT to its ACK (zero when [`Self::not_sfdiag`]).
    pub heartbeat_rtt: Duration,
    /// The peer is not an sfdiag FMC (a real FMC, openssl, gnutls): it sent no HELLO after
    /// the handshake, and this says what it did instead. The TLS verdict stands.
    pub not_sfdiag: Option<String>,
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
    /// Which channels are up now, dialed or accepted: one is never opened twice.
    up: watch::Sender<[bool; 2]>,
    /// The control channel is registered (HELLO answered): the events channel is dialed
    /// only then, as the device opens control first.
    control: watch::Sender<bool>,
    /// Ends the sessions of the FMC's connections (a restart ends every channel).
    accepted_restart: Arc<Notify>,
    /// The local address to dial from (the lab gives each device its own loopback address,
    /// so captures tell devices apart by address as a real network does).
    source: Option<std::net::IpAddr>,
    /// The TLS version spoken (`proxy_tls_version`).
    tls: TlsVersion,
    /// The material last read from `s.files` and what the files were then: read again only
    /// when they change. Behind a mutex so the connections of one client (its two channels,
    /// the FMC's connections, a fleet) read the files one at a time, never racing each other
    /// for the folder's lock ([`install::recover`]).
    loaded: std::sync::Mutex<Option<(Stamp, Identity)>>,
}

/// `ADDR[:PORT]` with sftunnel's port when none is given: `fmc.lab`, `10.0.0.1`, `::1` and
/// `[::1]` get `:8305`.
pub(super) fn with_default_port(addr: &str) -> String {
    let port = crate::pki::conf::SFTUNNEL_PORT;
    if let Some(inner) = addr.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((_, "")) => format!("{addr}:{port}"),
            _ => addr.to_owned(),
        };
    }
    match addr.matches(':').count() {
        0 => format!("{addr}:{port}"),
        // A bare IPv6 address (more than one colon, no brackets).
        n if n > 1 && addr.parse::<std::net::Ipv6Addr>().is_ok() => format!("[{addr}]:{port}"),
        _ => addr.to_owned(),
    }
}

impl Client {
    /// Resolves the FMC address (port 8305 when it names none); files are read on each
    /// attempt.
    pub fn new(s: ClientSettings) -> Result<Self, TunnelError> {
        let target = with_default_port(&s.server);
        let resolve_err = |reason: String| TunnelError::Resolve {
            addr: target.clone(),
            reason,
        };
        let addr = target
            .to_socket_addrs()
            .map_err(|e| resolve_err(e.to_string()))?
            .next()
            .ok_or_else(|| resolve_err("no address".into()))?;
        // Its failures are worded as a device's (an HA secondary dials as one too).
        s.log.set_role(Role::Device);
        Ok(Self {
            s,
            addr,
            recorder: None,
            up: watch::channel([false; 2]).0,
            control: watch::channel(false).0,
            accepted_restart: Arc::new(Notify::new()),
            source: None,
            tls: TlsVersion::default(),
            loaded: std::sync::Mutex::new(None),
        })
    }

    /// Dials from `ip` (port chosen by the system) instead of the address the route picks.
    pub fn with_source(mut self, ip: std::net::IpAddr) -> Self {
        self.source = Some(ip);
        self
    }

    /// TCP connect, from `source` when one is set.
    async fn dial(&self) -> std::io::Result<TcpStream> {
        let Some(ip) = self.source else {
            return TcpStream::connect(self.addr).await;
        };
        let socket = if ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(ip, 0))?;
        socket.connect(self.addr).await
    }

    /// Speaks TLS version `v` (default 1.2).
    pub fn with_tls_version(mut self, v: TlsVersion) -> Self {
        self.tls = v;
        self
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

    /// Reads this device's files (again only when they changed since the last read, or a
    /// push left something to finish, which is finished first) and builds its TLS
    /// configuration.
    pub fn load(&self) -> Result<(Arc<ClientConfig>, Identity), TunnelError> {
        let id = self.identity()?;
        let cfg = config::client_config_for(self.tls, &id, &self.s.clock, self.s.keylog.clone())?;
        Ok((cfg, id))
    }

    /// This device's material. The files are read again, after finishing (or undoing) a push
    /// the device was killed in the middle of, when they differ from the last read ([`Stamp`])
    /// or a push left something to finish; otherwise the last read is reused.
    fn identity(&self) -> Result<Identity, TunnelError> {
        let files = &self.s.files;
        let mut cached = crate::sync::lock(&self.loaded);
        if let Some((stamp, id)) = &*cached
            && *stamp == Stamp::of(files)
            && !install::pending(files)
        {
            return Ok(id.clone());
        }
        *cached = None;
        let done = install::recover(files).map_err(|reason| TunnelError::File {
            path: install::journal(files),
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
        let before = Stamp::of(files);
        let id = Identity::load(files)?;
        // Kept only when nothing changed the files while they were read.
        if Stamp::of(files) == before && !install::pending(files) {
            *cached = Some((before, id.clone()));
        }
        Ok(id)
    }

    /// [`Self::load`] for a connection the FMC opened to us: the device's files as a TLS
    /// server's (it still asks for, and judges, the FMC's certificate).
    pub(super) fn load_accepting(
        &self,
    ) -> Result<(Arc<rustls::ServerConfig>, Identity), TunnelError> {
        // Finishes an interrupted push first, as `load` does.
        let id = self.identity()?;
        let cfg = config::server_config_for(self.tls, &id, &self.s.clock, self.s.keylog.clone())?;
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
        let tcp =
            super::handshake::tcp_connect(self.dial(), &self.addr.to_string(), deadline).await?;
        let _ = tcp.set_nodelay(true);
        if !quiet {
            // APPLIANCE.md shows `Connected to 10.10.200.31 f` (cut there): `from` and our
            // own end of the connection complete it.
            let from = tcp
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string());
            tl.info(&format!(
                "Connected to {ip} from {from} (port {port}) ({v})"
            ));
        }
        let tcp = match (&self.recorder, tcp.local_addr()) {
            (Some(r), Ok(local)) => r.tap(tcp, local, self.addr, TlsSide::Client),
            _ => Tapped::plain(tcp),
        };
        let (tls, est) = handshake::connect(cfg, tcp, ip, deadline).await?;
        if !quiet {
            tl.info(&format!(
                "Successfully connected using SSL to: {ip} ({}, {}), peer {}",
                est.version,
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
        if !est.certificate_requested && !tl.is_quiet() {
            tl.warn(&format!(
                "{} did not ask for this device's certificate: it was not judged",
                self.addr
            ));
        }
        // Keep the sender: a dropped sender reads as "stop".
        let (_never_tx, never) = watch::channel(false);
        let mut session = Session::new(&self.s, &tl, Framed::new(tls), &uuid, &self.s.name);
        let fmc = match session.hello_or_refused().await {
            Ok(f) => f,
            // An sfdiag FMC that does not admit this device: it said so.
            Err(Hello::Refused(why)) => {
                let f = refused(&why);
                f.log(&tl);
                return Err(f.into());
            }
            // The peer refused us after all (a TLS alert): the handshake's verdict.
            Err(Hello::Failed(f @ HandshakeFailure::AlertReceived { .. })) => {
                f.log(&tl);
                return Err(f.into());
            }
            // Whatever else the peer does after a good handshake, it is not sfdiag's FMC:
            // the verdict of --once is the handshake's (CLI.md).
            Err(Hello::Failed(f)) => {
                let why = not_sfdiag_reason(&f);
                tl.info(&format!(
                    "Peer {} is not an sfdiag FMC (no HELLO: {why}); the TLS handshake \
                     succeeded: {}",
                    self.addr,
                    if est.certificate_requested {
                        "both sides accepted each other's certificates"
                    } else {
                        "this device accepted the peer's certificate"
                    }
                ));
                return Ok(OnceReport {
                    established: est,
                    fmc_name: String::new(),
                    fmc_uuid: String::new(),
                    heartbeat_rtt: Duration::ZERO,
                    not_sfdiag: Some(why),
                });
            }
        };
        match session.run(true, never, &Notify::new()).await {
            End::Done(rtt) => Ok(OnceReport {
                established: est,
                fmc_name: fmc.0,
                fmc_uuid: fmc.1,
                heartbeat_rtt: rtt,
                not_sfdiag: None,
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
        stop: watch::Receiver<bool>,
        restart: Arc<Notify>,
        state: watch::Sender<ClientState>,
    ) {
        self.run_channel(Channel::Control, stop, &restart, &state, None)
            .await
    }

    /// [`Self::run`] for one channel. `chained` hears of a restart this channel makes (new
    /// files from a push on the control channel restart the events channel too).
    async fn run_channel(
        &self,
        channel: Channel,
        mut stop: watch::Receiver<bool>,
        restart: &Notify,
        state: &watch::Sender<ClientState>,
        chained: Option<&Notify>,
    ) {
        let mut delay = self.s.backoff.initial;
        let mut up = self.up.subscribe();
        loop {
            if *stop.borrow() {
                break;
            }
            if channel == Channel::Events && !*self.control.borrow() {
                let mut control = self.control.subscribe();
                tokio::select! {
                    _ = control.wait_for(|c| *c) => {}
                    // A restart asked for meanwhile is the control channel's to make.
                    _ = restart.notified() => {}
                    _ = super::stopped(&mut stop) => break,
                }
                continue;
            }
            // The FMC opened this channel to us: dial it only once that one is gone.
            let Some(claim) = self.claim(channel) else {
                up.mark_unchanged();
                tokio::select! {
                    _ = up.wait_for(|u| !u[channel.index()]) => {}
                    _ = restart.notified() => {}
                    _ = super::stopped(&mut stop) => break,
                }
                continue;
            };
            let tl = self.s.log.thread(self.s.log.next_tid());
            let _ = state.send(ClientState::Connecting);
            let end = self
                .run_one(channel, &tl, stop.clone(), restart, state)
                .await;
            drop(claim);
            match end {
                Ok(End::Stopped) | Ok(End::Done(_)) => break,
                Ok(End::Restart(why)) => {
                    if let Some(n) = chained {
                        n.notify_one();
                    }
                    self.accepted_restart.notify_waiters();
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
        if channel == Channel::Control {
            let _ = state.send(ClientState::Stopped);
        }
    }

    async fn run_one(
        &self,
        channel: Channel,
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
        let mut session =
            Session::new(&self.s, tl, Framed::new(tls), &uuid, &self.s.name).on(channel);
        let (fmc, _) = session.hello().await?;
        let _control = self.registered(channel);
        if channel == Channel::Control {
            let _ = state.send(ClientState::Connected { fmc });
        }
        Ok(session.run(false, stop, restart).await)
    }

    /// Takes `channel` for a connection (dialed or accepted) unless one has it: up (or being
    /// opened) until the guard is dropped. One check-and-set, so the device's dialer and the
    /// FMC's connections never both take a channel.
    pub(super) fn claim(&self, channel: Channel) -> Option<UpGuard<'_>> {
        let i = channel.index();
        let took = self
            .up
            .send_if_modified(|u| !std::mem::replace(&mut u[i], true));
        // Lazily: a guard made and dropped would free the channel its holder has.
        took.then(|| UpGuard {
            up: &self.up,
            channel,
        })
    }

    /// Notes that `channel` is registered until the guard goes (only control's matters).
    pub(super) fn registered(&self, channel: Channel) -> Option<ControlGuard<'_>> {
        (channel == Channel::Control).then(|| {
            self.control.send_replace(true);
            ControlGuard(&self.control)
        })
    }

    /// The first free channel (control first) for a connection the FMC opened.
    pub(super) fn claim_any(&self) -> Option<(Channel, UpGuard<'_>)> {
        Channel::ALL
            .into_iter()
            .find_map(|c| self.claim(c).map(|g| (c, g)))
    }

    /// Starts both channels (`run_channel`) on tasks; the handle stops or restarts
    /// them.
    pub fn spawn(self) -> ClientHandle {
        self.spawn_with(None)
    }

    /// [`Self::spawn`], and the FMC's connections to `listener` are accepted as channels too.
    pub fn spawn_listening(self, listener: TcpListener) -> ClientHandle {
        self.spawn_with(Some(listener))
    }

    /// Only accepts the FMC's connections on `listener`, never dials (a device registered
    /// with `DONTRESOLVE` as the manager's address: the FMC opens both channels).
    pub fn spawn_listen_only(self, listener: TcpListener) -> ClientHandle {
        self.spawn_inner(Some(listener), false)
    }

    fn spawn_with(self, listener: Option<TcpListener>) -> ClientHandle {
        self.spawn_inner(listener, true)
    }

    fn spawn_inner(self, listener: Option<TcpListener>, dials: bool) -> ClientHandle {
        let me = Arc::new(self);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (state_tx, state_rx) = watch::channel(ClientState::Connecting);
        let state_tx = Arc::new(state_tx);
        let restart = [Arc::new(Notify::new()), Arc::new(Notify::new())];
        let accepted_restart = me.accepted_restart.clone();
        let mut tasks = Vec::new();
        for channel in Channel::ALL.into_iter().filter(|_| dials) {
            let (me, stop, state) = (me.clone(), stop_rx.clone(), state_tx.clone());
            let mine = restart[channel.index()].clone();
            let chained = (channel == Channel::Control).then(|| restart[1].clone());
            tasks.push(tokio::spawn(async move {
                // The events channel reports no state of its own (`state` is the tunnel's).
                let own = watch::channel(ClientState::Connecting).0;
                let st = if channel == Channel::Control {
                    &*state
                } else {
                    &own
                };
                me.run_channel(channel, stop, &mine, st, chained.as_deref())
                    .await
            }));
        }
        if let Some(l) = listener {
            let (me, stop, state) = (me.clone(), stop_rx.clone(), state_tx.clone());
            let restarts = (restart.clone(), accepted_restart.clone());
            tasks.push(tokio::spawn(async move {
                super::listen::accept_loop(me, l, stop, state, restarts).await
            }));
        }
        ClientHandle {
            stop: stop_tx,
            restart,
            accepted_restart,
            state: state_rx,
            tasks,
        }
    }
}

/// See [`Client::mark_up`].
/// See [`Client::registered`].
pub(super) struct ControlGuard<'a>(&'a watch::Sender<bool>);

impl Drop for ControlGuard<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

pub(super) struct UpGuard<'a> {
    up: &'a watch::Sender<[bool; 2]>,
    channel: Channel,
}

impl Drop for UpGuard<'_> {
    fn drop(&mut self) {
        self.up.send_modify(|u| u[self.channel.index()] = false);
    }
}

impl Client {
    pub(super) fn settings(&self) -> &ClientSettings {
        &self.s
    }

    pub(super) fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }
}

/// A client running on its tasks (one per channel, and its listener).
pub struct ClientHandle {
    stop: watch::Sender<bool>,
    /// Per channel.
    restart: [Arc<Notify>; 2],
    /// The sessions of the FMC's connections.
    accepted_restart: Arc<Notify>,
    state: watch::Receiver<ClientState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ClientHandle {
    /// Ends the current sessions (if any) and reconnects now with the files re-read, as
    /// restarting sftunnel on the device does.
    pub fn restart(&self) {
        for r in &self.restart {
            r.notify_one();
        }
        self.accepted_restart.notify_waiters();
    }

    /// The client's state as it changes.
    pub fn state(&self) -> watch::Receiver<ClientState> {
        self.state.clone()
    }

    /// Stops the client and waits for its tasks.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// How HELLO went wrong.
pub(super) enum Hello {
    /// An sfdiag FMC refused this device (REFUSED, its reason escaped).
    Refused(String),
    Failed(HandshakeFailure),
}

impl From<HandshakeFailure> for Hello {
    fn from(f: HandshakeFailure) -> Self {
        Hello::Failed(f)
    }
}

/// The failure of a device the FMC refused, in its words.
fn refused(why: &str) -> HandshakeFailure {
    HandshakeFailure::Tls(format!("Refused by the FMC: {why}"))
}

/// A failure after the handshake: the peer's TLS alert as such (a TLS 1.3 server's late
/// refusal reads like this), anything else as the error it is.
fn after_handshake(e: &TunnelError) -> HandshakeFailure {
    if let TunnelError::Io(io) = e {
        if io.kind() == std::io::ErrorKind::UnexpectedEof {
            return HandshakeFailure::Closed;
        }
        if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
            && let f @ HandshakeFailure::AlertReceived { .. } = handshake::from_rustls(tls)
        {
            return f;
        }
    }
    HandshakeFailure::Tls(e.to_string())
}

/// What a peer that is not an sfdiag FMC did instead of HELLO, in a few words.
fn not_sfdiag_reason(f: &HandshakeFailure) -> String {
    match f {
        HandshakeFailure::Closed => "it closed the connection".into(),
        HandshakeFailure::Timeout { secs, .. } => format!("it said nothing for {secs} seconds"),
        // Our protocol's words about its bytes (a frame length it cannot have meant, the
        // frame type it sent): never the bytes themselves.
        other => format!("it spoke another protocol ({})", other.reason()),
    }
}

/// One registered channel of the tunnel on the device side.
pub(super) struct Session<'a, S> {
    s: &'a ClientSettings,
    tl: &'a ThreadLog,
    io: Framed<S>,
    uuid: &'a str,
    name: &'a str,
    channel: Channel,
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
            channel: Channel::Control,
        }
    }

    /// This session is `channel` (default: control).
    pub(super) fn on(mut self, channel: Channel) -> Self {
        self.channel = channel;
        self
    }

    /// Sends our HELLO and reads the FMC's: its name and UUID (escaped). An FMC's REFUSED is a
    /// failure like any other here.
    pub(super) async fn hello(&mut self) -> Result<(String, String), HandshakeFailure> {
        self.hello_or_refused().await.map_err(|e| match e {
            Hello::Refused(why) => refused(&why),
            Hello::Failed(f) => f,
        })
    }

    /// [`Self::hello`], telling an sfdiag FMC's REFUSED (its reason, escaped) from everything
    /// else, for `--once`.
    async fn hello_or_refused(&mut self) -> Result<(String, String), Hello> {
        let hello = Message::Hello {
            role: Role::Device,
            uuid: self.uuid.to_owned(),
            name: self.name.to_owned(),
            version: concat!("sfdiag ", env!("CARGO_PKG_VERSION")).to_owned(),
            channel: self.channel,
        };
        let lost = |e: TunnelError| after_handshake(&e);
        self.io
            .send_within(&hello, self.s.timeouts.hello)
            .await
            .map_err(lost)?;
        match tokio::time::timeout(self.s.timeouts.hello, self.io.read()).await {
            Err(_) => Err(HandshakeFailure::Timeout {
                phase: "hello",
                secs: self.s.timeouts.hello.as_secs(),
            }
            .into()),
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
                            "Peer {name} ({uuid}) registered this device as {}: {} {}",
                            escape(self.name),
                            self.channel.label(),
                            self.channel.kind()
                        ),
                    );
                }
                Ok((name, uuid))
            }
            Ok(Ok(Some(Message::Refused { reason }))) => {
                Err(Hello::Refused(escape(&reason).into_owned()))
            }
            Ok(Ok(None)) => Err(HandshakeFailure::Closed.into()),
            Ok(Ok(Some(m))) => {
                Err(HandshakeFailure::Tls(format!("expected HELLO, got {}", m.kind())).into())
            }
            Ok(Err(e)) => Err(lost(e).into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_port_gets_sftunnels_8305() {
        for (given, dialed) in [
            ("10.0.0.1", "10.0.0.1:8305"),
            ("10.0.0.1:9000", "10.0.0.1:9000"),
            ("fmc.lab", "fmc.lab:8305"),
            ("fmc.lab:8305", "fmc.lab:8305"),
            ("::1", "[::1]:8305"),
            ("[::1]", "[::1]:8305"),
            ("[::1]:9000", "[::1]:9000"),
            ("fe80::1%eth0", "fe80::1%eth0"),
        ] {
            assert_eq!(with_default_port(given), dialed, "{given}");
        }
    }
}
