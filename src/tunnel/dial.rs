//! The FMC dialing its devices: sftunnel's two ends dial each other, and the FMC also opens
//! the tunnel to each device it manages on 8305 (the device accepts with `connect --listen`,
//! `super::listen`).
//!
//! Owns the FMC's dial loop ([`Server::dial`]): per device, from the first retry delay on (or
//! when [`ServerHandle::redial`] says so), while it has fewer than its two channels up
//! (whoever opened them), one attempt at a time — TCP, the TLS handshake as the
//! client (the FMC's files read again for every attempt, the device's chain judged at the
//! server's clock), admission by the certificate's UUID, HELLO — each channel it opens then
//! runs the same session as one the device opened ([`super::server`]'s). A failed attempt is
//! logged in the dialing FMC's words (the `VERIFY ssl_verify_callback_internal` /
//! `establishConnectionUtil` / `establishSSLConnection` block, [`super::failure`]), announced
//! as [`ServerEvent::DialFailed`], and retried with doubling backoff; when it was tried last
//! is what `status --brief` prints as `Connection to peer ... Attempted at`. A device address
//! that turns out to reach this FMC's own listener (the peer presents this FMC's own
//! certificate) is said so in one line and not dialed again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{Notify, broadcast};

use super::TunnelError;
use super::chain::PeerCert;
use super::client::Backoff;
use super::config;
use super::failure::HandshakeFailure;
use super::framed::Framed;
use super::handshake;
use super::log::ThreadLog;
use super::material::Identity;
use super::server::{Conn, Refused, Server, ServerEvent, ServerHandle};
use crate::recorder::Tapped;
use crate::sftunnel::{Channel, TlsSide, escape};

/// A device the FMC dials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialTarget {
    /// Its name in the root (for the log; the session is named by admission, as any).
    pub name: String,
    /// The UUID its certificate carries: how many of its channels are up is counted by it.
    pub uuid: String,
    /// Where it listens (its address, port 8305 on an appliance).
    pub addr: SocketAddr,
}

impl Server {
    /// Starts dialing `targets` (see the module doc); stops with the server. A device
    /// already dialed is not dialed twice.
    pub fn dial(&mut self, targets: Vec<DialTarget>, backoff: Backoff) {
        for t in targets {
            let h = self.handle();
            let Some(nudge) = h.dial_nudge(&t.uuid) else {
                continue;
            };
            self.add_task(tokio::spawn(dial_loop(h, t, backoff, nudge)));
        }
    }
}

/// How many channels of `uuid` are up now.
fn channels_up(h: &ServerHandle, uuid: &str) -> usize {
    h.peers()
        .iter()
        .find(|p| p.uuid == uuid)
        .map_or(0, |p| p.channels.len())
}

async fn dial_loop(h: ServerHandle, t: DialTarget, backoff: Backoff, nudge: Arc<Notify>) {
    let mut stop = h.shutdown_signal();
    let mut events = h.subscribe();
    let mut delay = backoff.initial;
    // The first attempt after the first retry delay (a device that dials comes first), or
    // when told to.
    tokio::select! {
        _ = tokio::time::sleep(backoff.initial) => {}
        _ = nudge.notified() => {}
        _ = super::stopped(&mut stop) => return,
    }
    loop {
        if *stop.borrow() {
            break;
        }
        if channels_up(&h, &t.uuid) >= Channel::ALL.len() {
            // Both up: look again when one of them goes, after the first retry delay (the
            // device's own reconnect comes first), or when told to ([`ServerHandle::redial`]).
            tokio::select! {
                _ = went_down(&mut events, &t.uuid) => {}
                _ = super::stopped(&mut stop) => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.initial) => {}
                _ = nudge.notified() => {}
                _ = super::stopped(&mut stop) => break,
            }
            continue;
        }
        h.note_attempt(&t);
        match attempt(&h, &t, &mut events).await {
            Attempt::Up(_) => {
                delay = backoff.initial;
                continue;
            }
            Attempt::Failed => {}
            // Dialing it again would only reach this FMC again.
            Attempt::Myself => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = nudge.notified() => {}
            _ = super::stopped(&mut stop) => break,
        }
        delay = (delay * 2).min(backoff.max);
    }
}

/// Waits for one of `uuid`'s channels to go down (or the event stream to lag, to look again).
async fn went_down(events: &mut broadcast::Receiver<ServerEvent>, uuid: &str) {
    loop {
        match events.recv().await {
            Ok(ServerEvent::Disconnected { uuid: u, .. }) if u == uuid => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => {
                // The server is going: the caller's stop signal ends the loop.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// One dial of `t`, as `validate` makes it (no retry): the suite once a channel is registered
/// (its session runs on until the device closes it or the server stops), else why it failed,
/// as [`ServerEvent::DialFailed`] carried it.
pub(super) async fn dial_once(
    h: &ServerHandle,
    t: &DialTarget,
) -> Result<String, HandshakeFailure> {
    let mut events = h.subscribe();
    let mut failures = h.subscribe();
    Err(match attempt(h, t, &mut events).await {
        Attempt::Up(cipher) => return Ok(cipher),
        Attempt::Myself => HandshakeFailure::Tls(format!("{} is this FMC itself", t.addr)),
        Attempt::Failed => {
            let announced = tokio::time::timeout(Duration::from_secs(1), async {
                loop {
                    match failures.recv().await {
                        Ok(ServerEvent::DialFailed { uuid, failure, .. }) if uuid == t.uuid => {
                            break Some(failure);
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break None,
                    }
                }
            });
            // No announcement: the device dropped the connection during HELLO (logged).
            announced
                .await
                .ok()
                .flatten()
                .unwrap_or(HandshakeFailure::Closed)
        }
    })
}

/// How one dial went.
enum Attempt {
    /// A channel is registered (its session then runs on its own task), over this suite.
    Up(String),
    /// Logged and announced; tried again after the backoff.
    Failed,
    /// The address reached this FMC's own listener (a device address that is one of this
    /// host's, such as 127.1.0.x while listening on 0.0.0.0): the peer presented this FMC's
    /// own certificate.
    Myself,
}

/// One dial.
async fn attempt(
    h: &ServerHandle,
    t: &DialTarget,
    events: &mut broadcast::Receiver<ServerEvent>,
) -> Attempt {
    let sh = h.shared();
    let log = sh.log();
    let tl = log.thread(log.next_tid()).on(TlsSide::Client, t.addr);
    let failed = |f: HandshakeFailure, tl: &ThreadLog| {
        f.log(tl);
        h.announce(ServerEvent::DialFailed {
            addr: t.addr,
            uuid: t.uuid.clone(),
            failure: f,
        });
    };
    let v = if t.addr.is_ipv4() { "IPv4" } else { "IPv6" };
    tl.info(&format!(
        "Initiating {v} connection to {} ({})",
        t.addr,
        escape(&t.name)
    ));
    let (tls, est, local, own) = match connect(h, t, &tl).await {
        Ok(x) => x,
        Err(f) => {
            failed(f, &tl);
            return Attempt::Failed;
        }
    };
    if est.peer.is_some() && est.peer == own {
        tl.error(&format!(
            "{} ({}) is this FMC itself: it presented this FMC's own certificate; not \
             dialing it again",
            t.addr,
            escape(&t.name)
        ));
        drop(tls);
        return Attempt::Myself;
    }
    // The device's certificate as this direction saw it, for `status`.
    if let Some(c) = &est.peer
        && let Some(uuid) = &c.title
    {
        h.note_cert(uuid, c.not_after);
    }
    let cipher = est.cipher.clone();
    let mut c = Conn::dialed(h, tl, t.addr);
    c.local = local;
    let mut peer = match c.admit(&est) {
        Ok(p) => p,
        Err(f) => {
            failed(f, &c.tl);
            return Attempt::Failed;
        }
    };
    let io = match c.hello(Framed::new(tls), &mut peer).await {
        Ok(io) => io,
        Err(Refused::Failed(f)) => {
            failed(f, &c.tl);
            return Attempt::Failed;
        }
        Err(Refused::Dropped(why)) => {
            // The device had both channels by then (or broke the protocol).
            c.tl.warn(&format!("Dropped connection to {}: {why}", t.addr));
            return Attempt::Failed;
        }
    };
    let (h2, tl, addr, local) = (h.clone(), c.tl.clone(), c.addr, c.local);
    drop(c);
    tokio::spawn(async move {
        let mut c = Conn::dialed(&h2, tl, addr);
        c.local = local;
        c.registered(io, peer).await;
    });
    // The channel is counted once it is registered: wait for that, so the next look at the
    // device's channels sees it.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(ServerEvent::Connected { uuid, .. }) if uuid == t.uuid => break,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
    .await;
    Attempt::Up(cipher)
}

type DialedTls = tokio_rustls::client::TlsStream<handshake::Heard<Tapped<TcpStream>>>;

/// What [`connect`] brings back: the stream, the handshake's facts, the local address, and
/// the facts of this FMC's own certificate as it was read for this attempt.
type Dialed = (
    DialedTls,
    handshake::Established,
    Option<SocketAddr>,
    Option<PeerCert>,
);

/// TCP and the TLS handshake as the client, with the FMC's files as they are now.
async fn connect(
    h: &ServerHandle,
    t: &DialTarget,
    tl: &ThreadLog,
) -> Result<Dialed, HandshakeFailure> {
    let sh = h.shared();
    let (cfg, own) = Identity::load(sh.files())
        .and_then(|id| {
            let cfg = config::client_config_for(sh.tls(), &id, sh.clock(), sh.keylog())?;
            Ok((cfg, id.cert()))
        })
        .map_err(|e: TunnelError| {
            HandshakeFailure::Tls(format!("cannot load certificates: {e}"))
        })?;
    let deadline = sh.timeouts().handshake;
    let tcp =
        handshake::tcp_connect(TcpStream::connect(t.addr), &t.addr.to_string(), deadline).await?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().ok();
    tl.info(&format!(
        "Connected to {} (port {})",
        t.addr.ip(),
        t.addr.port()
    ));
    let tcp = match (sh.recorder(), local) {
        (Some(r), Some(l)) => r.tap(tcp, l, t.addr, TlsSide::Client),
        _ => Tapped::plain(tcp),
    };
    let (tls, est) = handshake::connect(cfg, tcp, t.addr.ip(), deadline).await?;
    tl.info(&format!(
        "Successfully connected using SSL to: {} ({}, {}), peer {}",
        t.addr.ip(),
        est.version,
        est.cipher,
        // X509_NAME_oneline: printable ASCII already (escaping it again doubles backslashes).
        est.peer.as_ref().map_or("?", |c| c.subject.as_str())
    ));
    Ok((tls, est, local, own))
}
