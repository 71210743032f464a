//! The device's side of the FMC dialing it (`connect --listen ADDR`): sftunnel's two ends dial
//! each other, and a device also accepts the FMC's connections on 8305.
//!
//! Owns the device's accept loop and what one accepted connection goes through: the TLS
//! handshake as the server (the device's own certificate, the FMC's judged at the device's
//! clock; a failure is logged in the accepting end's words), then the device's session on
//! it, the same as on a connection it dialed ([`super::client`]'s): its HELLO names the
//! channel, the first one free (control, then events; a connection when both are taken is
//! closed); heartbeats, pushes. A channel up this way is not dialed by the device until it
//! goes. Handshakes are
//! worked on in a few slots of their own; the FMC dials a device at most twice at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::client::{Client, ClientState, End, Session};
use super::framed::Framed;
use super::handshake::{self, Slots};
use super::log::ThreadLog;
use crate::recorder::Tapped;
use crate::sftunnel::{Channel, Component, Level, TlsSide, escape};

/// Handshakes a device works on at once for the FMC's connections.
const SLOTS: usize = 4;

/// Accepts the FMC's connections on `listener` until `stop`.
pub(super) async fn accept_loop(
    me: Arc<Client>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    state: Arc<watch::Sender<ClientState>>,
    restarts: ([Arc<Notify>; 2], Arc<Notify>),
) {
    let slots = Slots::new(SLOTS);
    let log = me.settings().log.clone();
    if let Ok(a) = listener.local_addr() {
        log.thread(log.main_tid())
            .info(&format!("Listening on {a} for the FMC's connections"));
    }
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, addr)) => {
                    let job = Accepted {
                        me: me.clone(),
                        stop: stop.clone(),
                        state: state.clone(),
                        restarts: restarts.clone(),
                        slots: slots.clone(),
                        once: false,
                    };
                    tokio::spawn(job.run(tcp, addr));
                }
                Err(e) => {
                    log.thread(log.main_tid()).error(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = super::stopped(&mut stop) => break,
        }
    }
}

/// The first connection the FMC opens to `listener`, the device's side of it until the FMC
/// answers one heartbeat (`validate`'s FMC-dials-the-device tunnel): why it failed, if it did
/// (logged as on any accepted connection). Gives up on accepting when `stop` turns true.
pub(super) async fn accept_one(
    me: Arc<Client>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> Result<(), super::failure::HandshakeFailure> {
    let (tcp, addr) = tokio::select! {
        r = listener.accept() => r.map_err(|e| super::failure::HandshakeFailure::Tls(format!("accept: {e}")))?,
        _ = super::stopped(&mut stop) => return Err(super::failure::HandshakeFailure::Closed),
    };
    let job = Accepted {
        me,
        stop,
        state: Arc::new(watch::channel(ClientState::Connecting).0),
        restarts: (
            [Arc::new(Notify::new()), Arc::new(Notify::new())],
            Arc::new(Notify::new()),
        ),
        slots: Slots::new(1),
        once: true,
    };
    job.run(tcp, addr).await
}

struct Accepted {
    me: Arc<Client>,
    stop: watch::Receiver<bool>,
    state: Arc<watch::Sender<ClientState>>,
    restarts: ([Arc<Notify>; 2], Arc<Notify>),
    slots: Slots,
    /// The session ends once one heartbeat is answered, and a lost one is a failure.
    once: bool,
}

impl Accepted {
    async fn run(
        self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> Result<(), super::failure::HandshakeFailure> {
        let s = self.me.settings();
        let tl = s.log.thread(s.log.next_tid()).on(TlsSide::Server, addr);
        let v = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
        tl.info(&format!("Accepted {v} connection from {addr}"));
        let r = self.session(tcp, addr, &tl).await;
        if let Err(f) = &r {
            f.log(&tl);
        }
        r
    }

    async fn session(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
        tl: &ThreadLog,
    ) -> Result<(), super::failure::HandshakeFailure> {
        let me = &*self.me;
        let s = me.settings();
        let (cfg, id) = me.load_accepting().map_err(|e| {
            super::failure::HandshakeFailure::Tls(format!("cannot load certificates: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        let tcp = match (me.recorder(), tcp.local_addr()) {
            (Some(r), Ok(local)) => r.tap(tcp, addr, local, TlsSide::Server),
            _ => Tapped::plain(tcp),
        };
        let silence = s.timeouts.handshake;
        let (tls, est) = handshake::accept(cfg, tcp, silence, Instant::now(), &self.slots).await?;
        tl.info(&format!(
            "SSL connection established with {addr} ({}, {}), peer {}",
            est.version,
            est.cipher,
            est.peer.as_ref().map_or("?".into(), |c| escape(&c.subject))
        ));
        // Both channels up (or being dialed): the FMC's extra connection is closed.
        let Some((channel, _up)) = me.claim_any() else {
            tl.info(&format!(
                "Closing connection from {addr}: both channels are up"
            ));
            let mut tls = tls;
            let _ = tokio::time::timeout(s.timeouts.hello, tls.shutdown()).await;
            return Ok(());
        };
        let uuid = id.cert().and_then(|c| c.title).unwrap_or_default();
        let mut session = Session::new(s, tl, Framed::new(tls), &uuid, &s.name).on(channel);
        let (fmc, _) = session.hello().await?;
        let _control = me.registered(channel);
        if channel == Channel::Control {
            let _ = self.state.send(ClientState::Connected { fmc });
        }
        match session
            .run(self.once, self.stop.clone(), &self.restarts.1)
            .await
        {
            End::Restart(why) => {
                tl.log(
                    Component::SfPeers,
                    Level::Info,
                    &format!("Restarting tunnel: {why}"),
                );
                // New files: the device's own channels dial again with them.
                for r in &self.restarts.0 {
                    r.notify_one();
                }
                // And the FMC's other connections end too (it dials them again).
                self.restarts.1.notify_waiters();
            }
            End::Lost(why) if self.once => return Err(super::failure::HandshakeFailure::Tls(why)),
            End::Lost(why) => tl.warn(&format!("Connection from {addr} lost: {why}")),
            End::Stopped | End::Done(_) => {}
        }
        Ok(())
    }
}
