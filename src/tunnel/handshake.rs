//! One TLS handshake on an open TCP stream, on either side, with a deadline, turned into an
//! established stream or a [`HandshakeFailure`].
//!
//! Owns the classification of what went wrong (we rejected the peer's chain, the peer sent an
//! alert, no certificate, timeout, garbage); logging it and deciding what to do next is the
//! caller's. Shared by `serve`, `connect` and `validate` so all three judge alike.
//!
//! Two deadlines bound a handshake. The peer's silence: it is dropped when it has sent nothing
//! for `silence` ([`Heard`] notes when its bytes last arrived; bytes already in the socket
//! count as heard, because the handshake is polled before its timer). And a whole-handshake
//! deadline, [`WHOLE`] times the silence, that nothing the peer does can move: on the server
//! it runs from accept, so a peer dribbling a byte every few seconds still ends on time.
//!
//! The server works on handshakes in [`Slots`], and a handshake holds a slot only while there
//! is work for our cores: from the moment its bytes arrive until it waits on the peer, plus at
//! most [`SLOT_WAIT`] in all of waiting on the peer while holding one (the round trips of an
//! honest device). A peer that has used that up gives its slot back whenever it makes us wait
//! and queues again, first come first served, when its next bytes arrive. So 256 peers that
//! stall or dribble cannot keep the slots from a device that answers; and while a handshake
//! waits in the queue, its peer is not silent (the wait is ours), only the whole deadline runs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use super::chain::PeerCert;
use super::failure::HandshakeFailure;
use super::verify::{Judged, capture_verify};
use crate::tls::AlertDescription;

/// What an established session tells about itself.
#[derive(Clone, Debug)]
pub struct Established {
    /// The peer's certificate (already judged good).
    pub peer: Option<PeerCert>,
    /// OpenSSL-style suite name, e.g. `ECDHE-RSA-AES256-GCM-SHA384`.
    pub cipher: String,
}

fn classify(e: &io::Error, judged: Option<Judged>) -> HandshakeFailure {
    if let Some(Err(v)) = judged {
        return HandshakeFailure::Rejected(v);
    }
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::AlertReceived(a)) => HandshakeFailure::AlertReceived {
            alert: AlertDescription(u8::from(*a)),
        },
        Some(rustls::Error::NoCertificatesPresented) => HandshakeFailure::NoPeerCertificate,
        Some(other) => HandshakeFailure::Tls(other.to_string()),
        None if e.kind() == io::ErrorKind::UnexpectedEof => HandshakeFailure::Closed,
        None => HandshakeFailure::Tls(e.to_string()),
    }
}

fn suite_name(s: Option<rustls::SupportedCipherSuite>) -> String {
    use rustls::CipherSuite as C;
    match s.map(|s| s.suite()) {
        Some(C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) => "ECDHE-RSA-AES256-GCM-SHA384".into(),
        Some(C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) => "ECDHE-RSA-AES128-GCM-SHA256".into(),
        Some(other) => format!("{other:?}"),
        None => "(NONE)".into(),
    }
}

fn established(judged: Option<Judged>, suite: Option<rustls::SupportedCipherSuite>) -> Established {
    Established {
        // The verifier already parsed the peer's certificate; its facts came back with the
        // verdict, so the hot path parses it once.
        peer: judged.and_then(Result::ok).flatten(),
        cipher: suite_name(suite),
    }
}

/// A handshake that keeps making progress may take this many times the silence allowed.
pub const WHOLE: u32 = 6;

/// How long, in all, a handshake may keep its slot while waiting on its peer: a few round
/// trips of a device that answers at once. Past that, the slot goes back whenever the peer
/// makes us wait.
pub const SLOT_WAIT: Duration = Duration::from_secs(1);

/// A stream that remembers when the peer's bytes last arrived. The instant is shared
/// ([`LastHeard`]) so the deadline can read it while a fallible handshake future owns the
/// stream (that future has no `get_ref`, but gives the stream back on failure).
#[derive(Debug)]
pub struct Heard<S> {
    inner: S,
    last: LastHeard,
}

/// When a [`Heard`] stream's reads last returned bytes.
#[derive(Clone, Debug)]
pub struct LastHeard(Arc<std::sync::Mutex<Instant>>);

impl LastHeard {
    pub fn get(&self) -> Instant {
        *crate::sync::lock(&self.0)
    }
    /// Now counts as heard: the time since was spent waiting for a slot, not on the peer.
    fn touch(&self) {
        self.set(Instant::now());
    }
    fn set(&self, t: Instant) {
        *crate::sync::lock(&self.0) = t;
    }
}

impl<S> Heard<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            last: LastHeard(Arc::new(std::sync::Mutex::new(Instant::now()))),
        }
    }

    /// When a read last returned bytes (or when the stream was wrapped).
    pub fn last(&self) -> Instant {
        self.last.get()
    }

    /// A handle on [`Heard::last`] that outlives borrows of the stream.
    pub fn last_heard(&self) -> LastHeard {
        self.last.clone()
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.last.set(Instant::now());
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Heard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The handshake slots of a server: how many handshakes our cores work on at once.
#[derive(Clone, Debug)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    pub fn new(n: usize) -> Self {
        Self(Arc::new(Semaphore::new(n)))
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

type Acquire =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send + 'static>>;

/// A handshake future that holds one of the server's [`Slots`] only while it has work (see
/// the module doc): acquired when it is woken, given back when it waits on the peer and its
/// [`SLOT_WAIT`] is spent.
struct Slotted<F> {
    fut: F,
    slots: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    acquire: Option<Acquire>,
    /// What is left of [`SLOT_WAIT`].
    budget: Duration,
    /// Since when it has been waiting on the peer while holding its slot.
    idle_since: Option<Instant>,
    /// Wakes it when `budget` runs out while it waits holding a slot.
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// True while it waits in the slot queue (the deadline's view: not the peer's silence).
    queued: Arc<AtomicBool>,
    heard: LastHeard,
}

impl<F: Future + Unpin> Future for Slotted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if this.permit.is_none() {
            let slots = this.slots.clone();
            let acquire = this
                .acquire
                .get_or_insert_with(|| Box::pin(slots.acquire_owned()));
            match acquire.as_mut().poll(cx) {
                Poll::Pending => {
                    this.queued.store(true, Ordering::Relaxed);
                    return Poll::Pending;
                }
                Poll::Ready(permit) => {
                    this.acquire = None;
                    // The semaphore is never closed; without a permit the handshake still
                    // runs rather than hangs.
                    this.permit = permit.ok();
                    if this.queued.swap(false, Ordering::Relaxed) {
                        this.heard.touch();
                    }
                }
            }
        }
        if let Some(since) = this.idle_since.take() {
            this.budget = this.budget.saturating_sub(since.elapsed());
            this.idle_timer = None;
        }
        match Pin::new(&mut this.fut).poll(cx) {
            Poll::Ready(out) => {
                this.permit = None;
                Poll::Ready(out)
            }
            Poll::Pending if this.budget.is_zero() => {
                this.permit = None;
                Poll::Pending
            }
            Poll::Pending => {
                this.idle_since = Some(Instant::now());
                let mut timer = Box::pin(tokio::time::sleep(this.budget));
                if timer.as_mut().poll(cx).is_ready() {
                    this.idle_since = None;
                    this.budget = Duration::ZERO;
                    this.permit = None;
                } else {
                    this.idle_timer = Some(timer);
                }
                Poll::Pending
            }
        }
    }
}

/// Drives `fut` (a handshake over a [`Heard`] stream, which `last_heard` finds) until it ends,
/// the peer has been silent for `silence`, or `whole` (an instant) has come.
async fn within<F: Future + Unpin>(
    fut: &mut F,
    silence: Duration,
    whole: Instant,
    last_heard: impl Fn(&F) -> Option<Instant>,
) -> Result<F::Output, HandshakeFailure> {
    let mut last = Instant::now();
    loop {
        tokio::select! {
            // The handshake first: bytes that arrived while we were busy are not silence.
            biased;
            out = &mut *fut => return Ok(out),
            _ = tokio::time::sleep_until((last + silence).min(whole)) => {
                let heard = last_heard(fut).unwrap_or(last);
                if Instant::now() >= whole {
                    return Err(HandshakeFailure::Timeout {
                        phase: "handshake",
                        secs: (silence * WHOLE).as_secs(),
                    });
                }
                if heard <= last {
                    return Err(HandshakeFailure::Timeout {
                        phase: "handshake",
                        secs: silence.as_secs(),
                    });
                }
                last = heard;
            }
        }
    }
}

/// The FMC side of a handshake, on a TCP stream (possibly wrapped by the `--pcap` recorder)
/// accepted at `accepted`: worked on in `slots`, the device is dropped after `silence` without
/// a byte from it, and at `accepted` + [`WHOLE`] × `silence` whatever it does.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ServerConfig>,
    tcp: S,
    silence: Duration,
    accepted: Instant,
    slots: &Slots,
) -> Result<(server::TlsStream<Heard<S>>, Established), HandshakeFailure> {
    let acceptor = TlsAcceptor::from(config);
    let (res, judged) = capture_verify(async {
        let tcp = Heard::new(tcp);
        let heard = tcp.last_heard();
        let queued = Arc::new(AtomicBool::new(false));
        let mut fut = Slotted {
            fut: acceptor.accept(tcp).into_fallible(),
            slots: slots.0.clone(),
            permit: None,
            acquire: None,
            budget: SLOT_WAIT,
            idle_since: None,
            idle_timer: None,
            queued: queued.clone(),
            heard: heard.clone(),
        };
        let whole = accepted + silence * WHOLE;
        within(&mut fut, silence, whole, |_| {
            // Waiting for a slot is our queue, not the device's silence.
            Some(if queued.load(Ordering::Relaxed) {
                Instant::now()
            } else {
                heard.get()
            })
        })
        .await
    })
    .await;
    match res? {
        Err((e, tcp)) => {
            linger(tcp).await;
            Err(classify(&e, judged))
        }
        Ok(tls) => {
            let est = established(judged, tls.get_ref().1.negotiated_cipher_suite());
            Ok((tls, est))
        }
    }
}

/// After a failed handshake (our alert already written): close our side and read what the peer
/// is still sending for a moment before dropping the socket. Closing with the device's last
/// flight (ClientKeyExchange, CertificateVerify, Finished) unread would make the kernel answer
/// with a reset, and the device would see "broken pipe" instead of the alert we sent — OpenSSL
/// peers and ours alike then log the wrong reason. Bounded: at most [`LINGER`] and 64 KiB.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut tcp: S) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER, async {
        let _ = tcp.shutdown().await;
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// How long a failed handshake's socket lingers for the peer's last flight.
pub const LINGER: Duration = Duration::from_millis(500);

/// The device side of a handshake with the FMC at `ip`, on a TCP stream (possibly wrapped by
/// the `--pcap` recorder); the FMC is given up on after `silence` without a byte from it.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    tcp: S,
    ip: std::net::IpAddr,
    silence: Duration,
) -> Result<(client::TlsStream<Heard<S>>, Established), HandshakeFailure> {
    let connector = TlsConnector::from(config);
    let (res, judged) = capture_verify(async {
        let mut fut = connector.connect(ServerName::IpAddress(ip.into()), Heard::new(tcp));
        let whole = Instant::now() + silence * WHOLE;
        within(&mut fut, silence, whole, |f| f.get_ref().map(Heard::last)).await
    })
    .await;
    match res? {
        Err(e) => Err(classify(&e, judged)),
        Ok(tls) => {
            let est = established(judged, tls.get_ref().1.negotiated_cipher_suite());
            Ok((tls, est))
        }
    }
}
