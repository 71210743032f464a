//! The FMC side of sftunnel: accepts many device tunnels at once, judges each device's
//! certificate, admits the peers its PKI knows, keeps a registry of connected peers with their
//! heartbeats, and pushes files to them on request.
//!
//! Each connection is one tokio task that goes through its steps in order, each with its own
//! deadline so a slow or silent client only ever costs its own task: the first bytes (a
//! socket that never speaks costs no handshake slot), the TLS handshake (worked on in
//! [`HANDSHAKE_SLOTS`], held only while there is work, with a deadline from accept that
//! dribbling cannot move: see [`handshake`]), admission (the UUID in the verified certificate
//! must be a peer of the root, which names it), HELLO, registration, and the session
//! (HEARTBEAT/ACK, PUSH/ACK; dropped after three heartbeat intervals of silence, or when it
//! takes none of our bytes for as long). The registry answers [`ServerHandle::peers`] and
//! [`ServerHandle::push`], which the control socket ([`super::control`]) exposes to `sfdiag
//! status` and `pki renew`. Lines go to the [`SfLog`] in the appliance's wording; nothing a
//! peer chose reaches them unescaped ([`crate::sftunnel::escape`]).
//!
//! A peer has two channels (control and events), each its own connection and registry entry;
//! [`ServerHandle::peers`] shows one row per peer with its channels, pushes go over control,
//! and a peer is down when its last channel is. Connections the FMC dials itself
//! ([`Server::dial`]) go through the same admission, HELLO and session steps.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::{KeyLog, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::TunnelError;
use super::chain::PeerCert;
use super::clock::Clock;
use super::config;
use super::failure::HandshakeFailure;
use super::framed::Framed;
use super::handshake::{self, Established, Slots};
use super::log::{SfLog, ThreadLog};
use super::material::{Identity, TlsFiles};
use super::proto::{Message, PushAck, PushFile};
use super::status::{ChannelStatus, PeerStatus, ServerInfo, wire_time};
use crate::pki::layout::PkiRoot;
use crate::recorder::{Recorder, Tapped};
use crate::sftunnel::escape;
use crate::sftunnel::{Channel, Component, Level, Role, TlsSide};
use crate::sync::lock;

/// Deadlines of the tunnel's phases, shared by both sides.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP connect (device side), and the longest a peer may stay silent during the TLS
    /// handshake; the whole handshake gets [`handshake::WHOLE`] times this (from accept on
    /// the server), whatever the peer does.
    pub handshake: Duration,
    /// From handshake done to the peer's HELLO.
    pub hello: Duration,
    /// The device sends a heartbeat this often; three missed intervals drop the tunnel.
    pub heartbeat: Duration,
    /// How long a push waits for the device's acknowledgement.
    pub push: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            hello: Duration::from_secs(10),
            heartbeat: Duration::from_secs(30),
            push: Duration::from_secs(30),
        }
    }
}

/// A device the FMC manages, as its PKI root names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownPeer {
    /// The UUID its certificate carries in its subject's `title`.
    pub uuid: String,
    /// Its name in the root (what logs and `status` call it, whatever its HELLO says).
    pub name: String,
}

impl KnownPeer {
    /// Every peer of `root` (managed devices and HA secondaries), in `sftunnel.conf` order.
    pub fn of_root(root: &PkiRoot) -> Vec<KnownPeer> {
        root.peers
            .iter()
            .map(|p| KnownPeer {
                uuid: p.uuid.to_string(),
                name: p.name.clone(),
            })
            .collect()
    }
}

/// Everything `serve` needs.
pub struct ServerSettings {
    /// `ADDR:PORT`; port 0 picks a free one (see [`Server::local_addr`]).
    pub listen: String,
    /// The FMC's own three files. `reload`/`restart` on the control socket re-read these,
    /// never paths a client names.
    pub files: TlsFiles,
    /// The peers of the PKI root (`serve --root`): only they are admitted, by the UUID in
    /// their verified certificate, and named as the root names them. `None` (`--ca/--cert/
    /// --key`): any certificate the CA signed is admitted, named by what its HELLO claims
    /// (escaped).
    pub peers: Option<Vec<KnownPeer>>,
    /// The time certificates are judged at, heartbeats carry and `status` shows.
    pub clock: Clock,
    /// Where the FMC's log lines go; the server sets its role to FMC.
    pub log: SfLog,
    /// Where the TLS secrets of every session are written (`--keylog`); `None`: nowhere.
    pub keylog: Option<Arc<dyn KeyLog>>,
    /// Where to put the control socket (`<root>/fmc/var/run/sftunnel.sock`), if anywhere.
    pub control: Option<PathBuf>,
    /// The deadlines of handshake, HELLO, heartbeats and pushes.
    pub timeouts: Timeouts,
}

/// Something that happened on the server, for in-process watchers (lab, validate, tests).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A device finished its handshake and HELLO on one of its channels.
    Connected {
        /// The connection's number on this server, counted from 1.
        conn: u64,
        /// The device's UUID, as its status row has it.
        uuid: String,
        /// The device's name, as its status row has it.
        name: String,
        /// The device's address on this connection.
        addr: SocketAddr,
        /// Which channel the connection is.
        channel: Channel,
    },
    /// A registered device's channel went away.
    Disconnected {
        /// The number its [`ServerEvent::Connected`] gave.
        conn: u64,
        /// The device's UUID.
        uuid: String,
        /// Why the session ended (`closed by peer`, `heartbeat timeout`, a read error, ...).
        reason: String,
        /// Which channel it was.
        channel: Channel,
    },
    /// A connection failed before it was registered.
    Failed {
        /// The peer's address.
        addr: SocketAddr,
        /// What failed (it is logged in the FMC's words too).
        failure: HandshakeFailure,
    },
    /// The FMC's own attempt to dial a device failed ([`Server::dial`]).
    DialFailed {
        /// The address dialed.
        addr: SocketAddr,
        /// The device's UUID, as the dial target names it.
        uuid: String,
        /// What failed.
        failure: HandshakeFailure,
    },
}

struct PushRequest {
    files: Vec<PushFile>,
    reply: oneshot::Sender<PushAck>,
}

struct Peer {
    /// This connection's row (one channel); [`ServerHandle::peers`] merges a peer's channels.
    status: PeerStatus,
    channel: Channel,
    push: mpsc::Sender<PushRequest>,
}

/// What a server's tasks share (its dialer too, [`super::dial`]).
pub(super) struct Shared {
    log: SfLog,
    clock: Clock,
    timeouts: Timeouts,
    /// What [`ServerHandle::reload_files`] re-reads.
    files: TlsFiles,
    /// Who may register, by certificate UUID (see [`ServerSettings::peers`]).
    roster: Option<HashMap<String, String>>,
    /// Swapped by [`ServerHandle::reload`]; each connection takes the one current at accept.
    config: RwLock<Arc<ServerConfig>>,
    keylog: Option<Arc<dyn KeyLog>>,
    /// Bumped by [`ServerHandle::restart`]: sessions of an older generation end.
    generation: watch::Sender<u64>,
    peers: Mutex<BTreeMap<u64, Peer>>,
    /// The last state of each device (by UUID) whose tunnel went down, for `status`: a
    /// device that left shows when it left and its last heartbeat, not a blank row. One entry
    /// per device that ever registered (a valid certificate), so it stays small.
    departed: Mutex<BTreeMap<String, PeerStatus>>,
    /// When the FMC last dialed each device (by UUID), for `status --brief`.
    /// The device's name and address too, for a row of a device never seen.
    attempts: Mutex<BTreeMap<String, (String, String, time::OffsetDateTime)>>,
    /// The notAfter of the certificate each device (by UUID) presented last, in either
    /// direction (it dialed us, or our dial got as far as its certificate), for the rows of
    /// devices not connected now.
    certs: Mutex<BTreeMap<String, time::OffsetDateTime>>,
    /// The devices the FMC dials (by UUID), each with what wakes its dialer now.
    dialing: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    events: broadcast::Sender<ServerEvent>,
    shutdown: watch::Sender<bool>,
    /// `--pcap`: every accepted connection is recorded here.
    recorder: Option<Recorder>,
    /// Handshakes worked on at once ([`HANDSHAKE_SLOTS`]).
    slots: Slots,
    /// The TLS version served (`proxy_tls_version`), kept across reloads.
    tls: config::TlsVersion,
    next_conn: AtomicU64,
    next_push: AtomicU32,
    info: ServerInfo,
}

/// A cheap handle on a running server: peers, pushes, events, shutdown.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

/// A running FMC server.
pub struct Server {
    handle: ServerHandle,
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    control: Option<PathBuf>,
}

impl Server {
    /// Reads the FMC's files, binds the listener (and the control socket) and starts
    /// accepting. Must be called inside a tokio runtime.
    pub async fn start(s: ServerSettings) -> Result<Server, TunnelError> {
        Self::start_recording(s, None).await
    }

    /// [`Server::start`], recording every accepted connection's traffic into `recorder`.
    pub async fn start_recording(
        s: ServerSettings,
        recorder: Option<Recorder>,
    ) -> Result<Server, TunnelError> {
        Self::start_with(s, recorder, config::TlsVersion::default()).await
    }

    /// [`Server::start_recording`], serving TLS version `tls` (`proxy_tls_version`).
    pub async fn start_with(
        s: ServerSettings,
        recorder: Option<Recorder>,
        tls: config::TlsVersion,
    ) -> Result<Server, TunnelError> {
        let identity = Identity::load(&s.files)?;
        // Its failures are worded as the FMC's.
        s.log.set_role(Role::Fmc);
        let config = config::server_config_for(tls, &identity, &s.clock, s.keylog.clone())?;
        let listener = listen(&s.listen).await.map_err(|e| TunnelError::Bind {
            addr: s.listen.clone(),
            source: e,
        })?;
        let local_addr = listener.local_addr()?;
        let (shutdown, _) = watch::channel(false);
        let started = s.clock.now();
        let info = ServerInfo {
            hostname: s.log.hostname().to_owned(),
            uuid: identity.cert().and_then(|c| c.title),
            listen: local_addr.to_string(),
            now: started,
            started,
        };
        let shared = Arc::new(Shared {
            log: s.log.clone(),
            clock: s.clock.clone(),
            timeouts: s.timeouts,
            files: s.files.clone(),
            roster: s
                .peers
                .map(|ps| ps.into_iter().map(|p| (p.uuid, p.name)).collect()),
            config: RwLock::new(config),
            keylog: s.keylog.clone(),
            generation: watch::channel(0).0,
            peers: Mutex::new(BTreeMap::new()),
            departed: Mutex::new(BTreeMap::new()),
            attempts: Mutex::new(BTreeMap::new()),
            certs: Mutex::new(BTreeMap::new()),
            dialing: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
            shutdown,
            recorder,
            slots: Slots::new(HANDSHAKE_SLOTS),
            tls,
            next_conn: AtomicU64::new(1),
            next_push: AtomicU32::new(1),
            info,
        });
        let handle = ServerHandle { shared };
        let main = handle.main_log();
        main.info(&format!("Listening on {local_addr}"));
        let mut tasks = vec![tokio::spawn(accept_loop(listener, handle.clone()))];
        if let Some(path) = &s.control {
            tasks.push(super::control::listen(path, handle.clone()).await?);
            main.info(&format!("Control socket at {}", path.display()));
        }
        Ok(Server {
            handle,
            local_addr,
            tasks,
            control: s.control,
        })
    }

    /// A task that ends with the server (see [`Self::shutdown`]).
    pub(super) fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// The address actually bound (the port when `listen` said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle on this server (peers, pushes, events), cloned.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Stops accepting, ends every session (close_notify) and removes the control socket.
    pub async fn shutdown(self) {
        let _ = self.handle.shared.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(p) = &self.control {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Runs until the handle's shutdown is requested (from another task or a signal).
    pub async fn wait(self) {
        let mut rx = self.handle.shared.shutdown.subscribe();
        let _ = super::stopped(&mut rx).await;
        self.shutdown().await;
    }
}

impl ServerHandle {
    /// Every connected peer, oldest first, one row with all its channels.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let rows: Vec<PeerStatus> = {
            let peers = lock(&self.shared.peers);
            peers.values().map(|p| p.status.clone()).collect()
        };
        PeerStatus::merge_channels(rows)
    }

    /// [`Self::peers`], then every device that was connected and is not now (`connected`
    /// false, `since` when it went down, its last heartbeat kept), as `status` lists them.
    pub fn peers_seen(&self) -> Vec<PeerStatus> {
        let mut all = self.peers();
        let departed = lock(&self.shared.departed);
        for p in departed.values() {
            if !all.iter().any(|c| c.uuid == p.uuid) {
                all.push(p.clone());
            }
        }
        let attempts = lock(&self.shared.attempts);
        let certs = lock(&self.shared.certs);
        for p in &mut all {
            p.attempted = attempts.get(&p.uuid).map(|a| a.2);
            // A connected row shows its connection's certificate; any other the last one seen.
            if !p.connected {
                p.cert_not_after = certs.get(&p.uuid).copied().or(p.cert_not_after);
            }
        }
        // A device the FMC dials and never reached.
        for (uuid, (name, ip, at)) in attempts.iter() {
            if !all.iter().any(|c| &c.uuid == uuid) {
                all.push(PeerStatus {
                    attempted: Some(*at),
                    cert_not_after: certs.get(uuid).copied(),
                    ..PeerStatus::unseen(name.clone(), uuid.clone(), ip.clone())
                });
            }
        }
        all
    }

    /// The server's own facts, with its clock read now.
    pub fn info(&self) -> ServerInfo {
        ServerInfo {
            now: self.shared.clock.now(),
            ..self.shared.info.clone()
        }
    }

    /// Sends `files` to the device with `uuid` (its newest tunnel) and waits for its answer.
    /// The device writes them atomically, acknowledges, then restarts its tunnel.
    pub async fn push(&self, uuid: &str, files: Vec<PushFile>) -> Result<PushAck, TunnelError> {
        let tx = {
            let peers = lock(&self.shared.peers);
            // Pushes go over the control channel.
            peers
                .values()
                .rev()
                .find(|p| p.status.uuid == uuid && p.channel == Channel::Control)
                .map(|p| p.push.clone())
        };
        let tx = tx.ok_or_else(|| TunnelError::NotConnected {
            uuid: uuid.to_owned(),
        })?;
        let (reply, rx) = oneshot::channel();
        let fail = |reason: &str| TunnelError::Push {
            uuid: uuid.to_owned(),
            reason: reason.to_owned(),
        };
        // Refused here, not on the wire: the device would drop the tunnel on a frame over the
        // limit, and the push would come back as "tunnel closed" with no reason given.
        let len = super::proto::push_frame_len(&files);
        if len > super::proto::MAX_FRAME || files.len() > usize::from(u16::MAX) {
            return Err(fail(&format!(
                "{} files, a frame of {len} bytes: over the {}-byte frame limit",
                files.len(),
                super::proto::MAX_FRAME
            )));
        }
        // Queueing counts against the deadline too: behind a push stuck on a peer that stopped
        // reading, the queue fills and the next push would otherwise wait forever.
        let delivered = async {
            tx.send(PushRequest { files, reply })
                .await
                .map_err(|_| fail("tunnel closed"))?;
            rx.await
                .map_err(|_| fail("tunnel closed before the acknowledgement"))
        };
        match tokio::time::timeout(self.shared.timeouts.push, delivered).await {
            Err(_) => Err(fail("no acknowledgement in time")),
            Ok(r) => r,
        }
    }

    /// Loads new certificates for the connections accepted from now on, as restarting sftunnel
    /// after `pki renew` does; tunnels already up keep their session (pushes still reach them).
    pub fn reload(&self, identity: &Identity) -> Result<(), TunnelError> {
        let sh = &self.shared;
        let config = config::server_config_for(sh.tls, identity, &sh.clock, sh.keylog.clone())?;
        *crate::sync::write(&sh.config) = config;
        self.main_log().info(&format!(
            "Loaded new certificates: {}",
            identity.cert().map_or("?".to_owned(), |c| format!(
                "{} (notAfter {})",
                c.subject, // X509_NAME_oneline: printable ASCII already
                wire_time::format(c.not_after)
            ))
        ));
        Ok(())
    }

    /// [`Self::reload`] with the files the server was started with, read again (what `pki
    /// renew` replaced). The control socket's `reload`.
    pub fn reload_files(&self) -> Result<(), TunnelError> {
        self.reload(&Identity::load(&self.shared.files)?)
    }

    /// Restarts the tunnel service with new material, as restarting sftunnel after
    /// `generate_certs.pl` does: [`Self::reload`], then every open tunnel is closed (devices
    /// reconnect and meet the new certificates).
    pub fn restart(&self, identity: &Identity) -> Result<(), TunnelError> {
        self.reload(identity)?;
        self.shared.generation.send_modify(|g| *g += 1);
        self.main_log()
            .info("Restarting the tunnel service: closing all tunnels");
        Ok(())
    }

    /// [`Self::restart`] with the server's own files read again: the control socket's
    /// `restart`, and SIGHUP.
    pub fn restart_files(&self) -> Result<(), TunnelError> {
        self.restart(&Identity::load(&self.shared.files)?)
    }

    /// Server events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.shared.events.subscribe()
    }

    /// Asks the server to stop (what [`Server::wait`] waits for).
    pub fn request_shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Notes that the FMC dials the device `t` now.
    pub(super) fn note_attempt(&self, t: &super::DialTarget) {
        let now = self.shared.clock.now();
        lock(&self.shared.attempts).insert(
            t.uuid.clone(),
            (t.name.clone(), t.addr.ip().to_string(), now),
        );
    }

    /// Notes the notAfter of the certificate the device `uuid` presented just now.
    pub(super) fn note_cert(&self, uuid: &str, not_after: time::OffsetDateTime) {
        lock(&self.shared.certs).insert(uuid.to_owned(), not_after);
    }

    /// Registers a dialer for `uuid`: what wakes it, or `None` when one dials it already.
    pub(super) fn dial_nudge(&self, uuid: &str) -> Option<Arc<tokio::sync::Notify>> {
        let mut d = lock(&self.shared.dialing);
        if d.contains_key(uuid) {
            return None;
        }
        let n = Arc::new(tokio::sync::Notify::new());
        d.insert(uuid.to_owned(), n.clone());
        Some(n)
    }

    /// Makes the FMC dial device `uuid` now if it dials it ([`Server::dial`]) and waits to
    /// retry: as a retry timer running out would (the lab uses it to keep its story short).
    pub fn redial(&self, uuid: &str) {
        if let Some(n) = lock(&self.shared.dialing).get(uuid) {
            n.notify_one();
        }
    }

    /// Tells the watchers.
    pub(super) fn announce(&self, e: ServerEvent) {
        let _ = self.shared.events.send(e);
    }

    /// The server's main-thread log (the control socket's lines go there too).
    pub(crate) fn main_log(&self) -> ThreadLog {
        self.shared.log.thread(self.shared.log.main_tid())
    }
}

impl Shared {
    pub(super) fn log(&self) -> &SfLog {
        &self.log
    }
    pub(super) fn clock(&self) -> &Clock {
        &self.clock
    }
    pub(super) fn files(&self) -> &TlsFiles {
        &self.files
    }
    pub(super) fn keylog(&self) -> Option<Arc<dyn KeyLog>> {
        self.keylog.clone()
    }
    pub(super) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }
    pub(super) fn tls(&self) -> config::TlsVersion {
        self.tls
    }
    pub(super) fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }
}

/// TLS handshakes the server works on at once. A reconnect storm brings thousands of
/// devices in the same second; started all together, each would crawl through its handshake
/// while the cores share out thousands of RSA signatures, and devices would time out on
/// handshakes that were merely queued. Taken in order, a few hundred at a time, each one is
/// quick and the rest wait their turn with their bytes in the socket (as OpenSSH's
/// MaxStartups bounds unauthenticated connections). Enough to keep the cores busy across
/// network round trips; a slot is only held while a handshake has work (see [`handshake`]),
/// so peers that stall or dribble cannot hold them all.
pub const HANDSHAKE_SLOTS: usize = 256;

/// Connections the kernel may queue for us before we accept them. tokio's default (1,024)
/// overflows when thousands of devices reconnect at once, and every dropped SYN or ACK costs
/// its device a retransmission timeout (1 s and up); the kernel caps this at
/// `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let sock = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As std and tokio do: a restarted server may bind beside its old TIME_WAIT sockets.
        sock.set_reuseaddr(true)?;
        match sock.bind(a).and_then(|()| sock.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

async fn accept_loop(listener: TcpListener, h: ServerHandle) {
    let mut stop = h.shared.shutdown.subscribe();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, addr)) => {
                    tokio::spawn(connection(h.clone(), tcp, addr));
                }
                Err(e) => {
                    // Out of descriptors and the like: say so, breathe, keep serving.
                    h.shared.log.thread(h.shared.log.main_tid()).error(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = super::stopped(&mut stop) => break,
        }
    }
}

fn ipv(addr: &SocketAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Why a connection ended before it was registered.
pub(super) enum Refused {
    /// The handshake (or a deadline, or admission) failed: logged in the appliance's words
    /// and announced as [`ServerEvent::Failed`].
    Failed(HandshakeFailure),
    /// The handshake was fine but the peer broke the protocol: a warning line.
    Dropped(String),
}

impl From<HandshakeFailure> for Refused {
    fn from(f: HandshakeFailure) -> Self {
        Refused::Failed(f)
    }
}

/// Who a connection turned out to be, once admitted.
pub(super) struct Admitted {
    uuid: String,
    /// Which of its channels this connection is (its HELLO says).
    channel: Channel,
    /// From the root when it has a roster; else the HELLO's claim, escaped, filled in by
    /// [`Conn::hello`].
    name: Option<String>,
    cert: Option<PeerCert>,
}

/// One connection on its way to a session: the steps of [`connection`] in order (or of a
/// dialed one: [`super::dial`]).
pub(super) struct Conn<'a> {
    pub(super) h: &'a ServerHandle,
    pub(super) sh: &'a Shared,
    pub(super) tl: ThreadLog,
    pub(super) addr: SocketAddr,
    /// The FMC's own address on this connection.
    pub(super) local: Option<SocketAddr>,
    /// Who opened it.
    pub(super) dialed_by: Role,
    accepted: Instant,
}

async fn connection(h: ServerHandle, tcp: TcpStream, addr: SocketAddr) {
    let mut c = Conn::new(&h, addr);
    c.local = tcp.local_addr().ok();
    match c.establish(tcp).await {
        Err(Refused::Failed(f)) => {
            f.log(&c.tl);
            if c.sh.tls == config::TlsVersion::Tls13 {
                for l in super::pha::fmc_lines(&f, &addr.ip().to_string()) {
                    c.tl.error(&l);
                }
            }
            let _ = c.sh.events.send(ServerEvent::Failed { addr, failure: f });
        }
        Err(Refused::Dropped(why)) => c.tl.warn(&format!("Dropping {addr}: {why}")),
        Ok((io, peer)) => c.registered(io, peer).await,
    }
}

type Tls = tokio_rustls::server::TlsStream<handshake::Heard<Tapped<TcpStream>>>;

impl<'a> Conn<'a> {
    fn new(h: &'a ServerHandle, addr: SocketAddr) -> Self {
        let sh = &*h.shared;
        let tl = sh.log.thread(sh.log.next_tid());
        tl.info(&format!("Accepted {} connection from {addr}", ipv(&addr)));
        Conn {
            h,
            sh,
            tl,
            addr,
            local: None,
            dialed_by: Role::Device,
            accepted: Instant::now(),
        }
    }

    /// A connection the FMC dialed to `addr` (its lines are the dialer's).
    pub(super) fn dialed(h: &'a ServerHandle, tl: ThreadLog, addr: SocketAddr) -> Self {
        Conn {
            h,
            sh: &h.shared,
            tl,
            addr,
            local: None,
            dialed_by: Role::Fmc,
            accepted: Instant::now(),
        }
    }

    /// Every step up to a registered peer: TLS, admission, HELLO.
    async fn establish(&self, tcp: TcpStream) -> Result<(Framed<Tls>, Admitted), Refused> {
        let (tls, est) = self.handshake(tcp).await?;
        let io = Framed::new(tls);
        let mut peer = match self.admit(&est) {
            Ok(p) => p,
            Err(f) => {
                self.refuse(io, &f).await;
                return Err(f.into());
            }
        };
        let io = self.hello(io, &mut peer).await?;
        Ok((io, peer))
    }

    /// First bytes, then the TLS handshake in a slot.
    async fn handshake(&self, tcp: TcpStream) -> Result<(Tls, Established), HandshakeFailure> {
        let sh = self.sh;
        let _ = tcp.set_nodelay(true);
        let config = crate::sync::read(&sh.config).clone();
        let tcp = match (&sh.recorder, tcp.local_addr()) {
            (Some(r), Ok(local)) => r.tap(tcp, self.addr, local, TlsSide::Server),
            _ => Tapped::plain(tcp),
        };
        // A device that never speaks costs a socket and this task, never a handshake slot.
        // (Not `readable()`: tokio reports a fresh socket readable before any byte came.)
        let silence = sh.timeouts.handshake;
        let mut first = [0u8; 1];
        let spoke = tokio::time::timeout(silence, tcp.get_ref().peek(&mut first)).await;
        if spoke.is_err() {
            return Err(HandshakeFailure::Timeout {
                phase: "handshake",
                secs: silence.as_secs(),
            });
        }
        let (tls, est) = handshake::accept(config, tcp, silence, self.accepted, &sh.slots).await?;
        self.tl.info(&format!(
            "SSL connection established with {} ({}, {}), peer {}",
            self.addr,
            est.version,
            est.cipher,
            // X509_NAME_oneline already wrote what is not printable ASCII as `\xHH`, as the
            // verify block's `subject =` shows it: escaping it again would double backslashes.
            est.peer.as_ref().map_or("?", |c| c.subject.as_str())
        ));
        Ok((tls, est))
    }

    /// Tells a device that is not admitted so in the lab protocol (REFUSED), so that it knows
    /// it was refused rather than talking to something that is not sfdiag; takes its HELLO
    /// first-come (unread, it would turn our close into a reset that can overtake the
    /// refusal), then closes. Bounded by the hello timeout and [`handshake::LINGER`].
    async fn refuse(&self, mut io: Framed<Tls>, f: &HandshakeFailure) {
        let refused = Message::Refused { reason: f.reason() };
        if io
            .send_within(&refused, self.sh.timeouts.hello)
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(handshake::LINGER, io.read()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), io.close()).await;
    }

    /// The certificate is the identity that was verified: its UUID must be one of the root's
    /// peers (when the server has a root), and the root names it.
    pub(super) fn admit(&self, est: &Established) -> Result<Admitted, HandshakeFailure> {
        let cert = est.peer.clone();
        let uuid = cert.as_ref().and_then(|c| c.title.clone());
        let Some(roster) = &self.sh.roster else {
            return Ok(Admitted {
                uuid: uuid.map(|u| escape(&u).into_owned()).unwrap_or_default(),
                channel: Channel::Control,
                name: None,
                cert,
            });
        };
        match uuid.as_ref().and_then(|u| roster.get(u).map(|n| (u, n))) {
            Some((u, name)) => Ok(Admitted {
                uuid: u.clone(),
                channel: Channel::Control,
                name: Some(name.clone()),
                cert,
            }),
            None => Err(HandshakeFailure::NotAPeer {
                uuid: uuid.map(|u| escape(&u).into_owned()),
                subject: cert.map(|c| c.subject), // oneline: printable ASCII already
            }),
        }
    }

    /// The device's HELLO, then ours. Without a roster, the peer is named by its claim (and
    /// by the UUID it claims when its certificate carries none), escaped.
    pub(super) async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: Framed<S>,
        peer: &mut Admitted,
    ) -> Result<Framed<S>, Refused> {
        let sh = self.sh;
        let hello = tokio::time::timeout(sh.timeouts.hello, io.read()).await;
        let (uuid, name, channel) = match hello {
            Ok(Ok(Some(Message::Hello {
                role: Role::Device,
                uuid,
                name,
                channel,
                ..
            }))) => (uuid, name, channel),
            Err(_) => {
                return Err(Refused::Failed(HandshakeFailure::Timeout {
                    phase: "hello",
                    secs: sh.timeouts.hello.as_secs(),
                }));
            }
            Ok(Ok(None)) => return Err(Refused::Dropped("closed before HELLO".into())),
            Ok(Ok(Some(m))) => {
                return Err(Refused::Dropped(format!(
                    "expected HELLO, got {}",
                    m.kind()
                )));
            }
            Ok(Err(e)) => return Err(Refused::Dropped(e.to_string())),
        };
        if peer.uuid.is_empty() {
            peer.uuid = escape(&uuid).into_owned();
        }
        peer.channel = channel;
        peer.name.get_or_insert_with(|| escape(&name).into_owned());
        let reply = Message::Hello {
            role: Role::Fmc,
            uuid: sh.info.uuid.clone().unwrap_or_default(),
            name: sh.info.hostname.clone(),
            version: concat!("sfdiag ", env!("CARGO_PKG_VERSION")).to_owned(),
            channel,
        };
        io.send_within(&reply, sh.timeouts.hello)
            .await
            .map_err(|e| Refused::Dropped(e.to_string()))?;
        Ok(io)
    }

    /// Registers the peer, runs its session, and keeps its last state when it goes.
    pub(super) async fn registered<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: Framed<S>,
        peer: Admitted,
    ) {
        let sh = self.sh;
        let Admitted {
            uuid,
            channel,
            name,
            cert,
        } = peer;
        let name = name.unwrap_or_default();
        if let Some(c) = &cert {
            self.h.note_cert(&uuid, c.not_after);
        }
        let conn = sh.next_conn.fetch_add(1, Ordering::Relaxed);
        let (push_tx, push_rx) = mpsc::channel(4);
        let now = sh.clock.now();
        let status = PeerStatus {
            connected: true,
            since: Some(now),
            cert_not_after: cert.as_ref().map(|c| c.not_after),
            channels: vec![ChannelStatus {
                channel,
                peer: self.addr.to_string(),
                local: self.local.map(|a| a.to_string()).unwrap_or_default(),
                iface: if self.addr.ip().is_loopback() {
                    "lo"
                } else {
                    "eth0"
                }
                .to_owned(),
                dialed_by: self.dialed_by.to_string(),
                since: Some(now),
            }],
            ..PeerStatus::unseen(name.clone(), uuid.clone(), self.addr.ip().to_string())
        };
        lock(&sh.peers).insert(
            conn,
            Peer {
                status,
                channel,
                push: push_tx,
            },
        );
        self.tl.log(
            Component::SfPeers,
            Level::Info,
            &format!(
                "Peer {name} ({uuid}) connected from {}: {} {} ({})",
                self.addr.ip(),
                channel.label(),
                channel.kind(),
                match self.dialed_by {
                    Role::Fmc => "dialed by the FMC",
                    _ => "dialed by the peer",
                }
            ),
        );
        let _ = sh.events.send(ServerEvent::Connected {
            conn,
            uuid: uuid.clone(),
            name: name.clone(),
            addr: self.addr,
            channel,
        });
        let reason = session(self.h, &self.tl, conn, &name, io, push_rx).await;
        // The peer is down when its last channel is: then its row is kept as it was.
        let (gone, last) = {
            let mut peers = lock(&sh.peers);
            let gone = peers.remove(&conn);
            let last = !peers.values().any(|p| p.status.uuid == uuid);
            (gone, last)
        };
        if let (Some(p), true) = (gone, last) {
            let status = PeerStatus {
                connected: false,
                since: Some(sh.clock.now()),
                channels: Vec::new(),
                down_reason: Some(reason.clone()),
                ..p.status
            };
            lock(&sh.departed).insert(uuid.clone(), status);
        }
        self.tl.log(
            Component::SfPeers,
            Level::Info,
            &format!(
                "Peer {name} ({uuid}) disconnected: {reason} ({} {})",
                channel.label(),
                channel.kind()
            ),
        );
        let _ = sh.events.send(ServerEvent::Disconnected {
            conn,
            uuid,
            reason,
            channel,
        });
    }
}

/// The registered phase; returns why it ended.
async fn session<S>(
    h: &ServerHandle,
    tl: &ThreadLog,
    conn: u64,
    name: &str,
    mut io: Framed<S>,
    mut push_rx: mpsc::Receiver<PushRequest>,
) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let sh = &h.shared;
    let idle = sh.timeouts.heartbeat * 3;
    let mut deadline = Instant::now() + idle;
    let mut pending: HashMap<u32, oneshot::Sender<PushAck>> = HashMap::new();
    let mut stop = h.shutdown_signal();
    let mut generation = sh.generation.subscribe();
    generation.mark_unchanged();
    let reason = loop {
        tokio::select! {
            m = io.read() => {
                deadline = Instant::now() + idle;
                match m {
                    Ok(Some(Message::Heartbeat { seq, .. })) => {
                        let now = sh.clock.now();
                        if let Some(p) = lock(&sh.peers).get_mut(&conn) {
                            p.status.last_heartbeat = Some(now);
                        }
                        let ack = Message::HeartbeatAck { seq, unix_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64 };
                        if let Err(e) = io.send_within(&ack, idle).await {
                            break e.to_string();
                        }
                        if let Some(p) = lock(&sh.peers).get_mut(&conn) {
                            p.status.heartbeat_sent = Some(sh.clock.now());
                        }
                    }
                    Ok(Some(Message::PushAck { id, mut ack })) => {
                        // The device's words go on to a log line and `pki renew`'s table.
                        ack.message = escape(&ack.message).into_owned();
                        tl.log(Component::SfPeers, Level::Info, &format!(
                            "Peer {name} acknowledged push {id}: {}{}",
                            if ack.ok { "ok" } else { "failed" },
                            if ack.message.is_empty() { String::new() } else { format!(" ({})", ack.message) }
                        ));
                        // The device restarts its tunnel with the new files: if the FMC
                        // dials it, it reconnects now rather than at its next retry.
                        if ack.ok {
                            let uuid = lock(&sh.peers).get(&conn).map(|p| p.status.uuid.clone());
                            if let Some(u) = uuid {
                                h.redial(&u);
                            }
                        }
                        if let Some(r) = pending.remove(&id) {
                            let _ = r.send(ack);
                        }
                    }
                    Ok(Some(Message::Unknown { kind, len })) => {
                        tl.log(Component::SfPeers, Level::Warn, &format!("Ignoring unknown message type {kind} ({len} bytes)"));
                    }
                    Ok(Some(other)) => {
                        tl.log(Component::SfPeers, Level::Warn, &format!("Unexpected {} from {name}", other.kind()));
                    }
                    Ok(None) => break "closed by peer".to_owned(),
                    Err(e) => break e.to_string(),
                }
            }
            Some(req) = push_rx.recv() => {
                let id = sh.next_push.fetch_add(1, Ordering::Relaxed);
                tl.log(Component::SfPeers, Level::Info, &format!(
                    "Pushing {} file(s) to {name} (push {id}): {}",
                    req.files.len(),
                    req.files.iter().map(|f| escape(&f.name)).collect::<Vec<_>>().join(", ")
                ));
                if let Err(e) = io.send_within(&Message::Push { id, files: req.files }, idle).await {
                    break e.to_string();
                }
                pending.insert(id, req.reply);
            }
            _ = tokio::time::sleep_until(deadline) => {
                tl.log(Component::SfHeartbeat, Level::Warn, &format!("No heartbeat from {name} for {} seconds", idle.as_secs()));
                break "heartbeat timeout".to_owned();
            }
            _ = super::stopped(&mut stop) => break "server shutting down".to_owned(),
            _ = generation.changed() => break "tunnel service restarted".to_owned(),
        }
    };
    // close_notify; bounded so a peer that stopped reading cannot hold the task.
    let _ = tokio::time::timeout(Duration::from_secs(1), io.close()).await;
    reason
}
