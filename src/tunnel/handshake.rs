//! One TLS handshake on an open TCP stream, on either side, with a deadline, turned into an
//! established stream or a [`HandshakeFailure`].
//!
//! Owns the classification of what went wrong (we rejected the peer's chain, the peer sent an
//! alert, no certificate, timeout, garbage; another TLS version and bytes that are not TLS are
//! named by the error OpenSSL 3 queues for the same bytes, see `openssl_protocol_error`);
//! logging it and deciding what to do next is the caller's. Shared by `serve`, `connect` and `validate` so all three judge alike.
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
//!
//! Two things rustls does differently from OpenSSL are mended here, on the bytes. A TLS 1.2
//! client that answers our CertificateRequest with an empty Certificate gets OpenSSL's
//! `handshake_failure` (40), not rustls' `certificate_required` (116, a TLS 1.3 alert): the
//! server's stream ([`Heard::watching`]) reads the client's plaintext flight with our own
//! sans-IO `tls::Session`, holds that message back from rustls, writes the alert record itself
//! and ends the handshake. And in TLS 1.3 a client's handshake is done before the server has
//! judged the client's certificate (its verdict comes after the client's Finished), so the
//! device side waits for the server's first word after it ([`connect`]): a session ticket or
//! data means accepted, an alert is the server's refusal, as OpenSSL's client learns on its
//! first read.

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
use super::config::TlsVersion;
use super::failure::{HandshakeFailure, OpenSslError};
use super::verify::{Seen, capture_verify};
use crate::sftunnel::TlsSide;
use crate::tls::AlertDescription;

/// What an established session tells about itself.
#[derive(Clone, Debug)]
pub struct Established {
    /// The peer's certificate (already judged good).
    pub peer: Option<PeerCert>,
    /// OpenSSL-style suite name, e.g. `ECDHE-RSA-AES256-GCM-SHA384`, `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The protocol version negotiated.
    pub version: TlsVersion,
    /// The peer asked for our certificate (always, when we are the FMC; a device learns it
    /// from the server's CertificateRequest).
    pub certificate_requested: bool,
}

/// The failure a rustls error stands for.
pub(crate) fn from_rustls(e: &rustls::Error) -> HandshakeFailure {
    from_rustls_after(e, &[], TlsSide::Client)
}

/// [`from_rustls`] on `side`, the peer's first bytes being `first` (up to [`FIRST`] of them;
/// empty when unknown): a protocol error is worded as OpenSSL words the same bytes (see
/// [`openssl_protocol_error`]).
fn from_rustls_after(e: &rustls::Error, first: &[u8], side: TlsSide) -> HandshakeFailure {
    if let Some((error, alerts)) = openssl_protocol_error(e, first, side) {
        return HandshakeFailure::Protocol {
            error,
            detail: format!("rustls: {e}; {alerts}"),
        };
    }
    match e {
        rustls::Error::AlertReceived(a) => HandshakeFailure::AlertReceived {
            alert: AlertDescription(u8::from(*a)),
        },
        rustls::Error::NoCertificatesPresented => HandshakeFailure::NoPeerCertificate,
        other => HandshakeFailure::Tls(other.to_string()),
    }
}

/// How many of the peer's first bytes a [`Heard`] keeps: enough for a record header and
/// OpenSSL's longest HTTP method check (`POST `).
const FIRST: usize = 8;

/// The error OpenSSL 3 queues for what made rustls fail, when the peer broke the protocol
/// before a certificate was judged, with the alerts rustls and OpenSSL send for it. Checked
/// against `openssl s_server`/`s_client` 3.0 (`tests/it/words.rs`):
///
/// | the peer's bytes | rustls' error | OpenSSL's error | rustls' alert | OpenSSL's |
/// |---|---|---|---|---|
/// | a first record whose version byte is not 3 | `InvalidContentType`, ... | `wrong version number` (`http request` after `GET `/`POST `/`HEAD `/`PUT `, `https proxy request` after `CONNE`) | 50 | none |
/// | an SSLv2 ClientHello (server) | `InvalidContentType` | `unknown protocol` | 50 | 70 |
/// | a ClientHello of versions we do not speak | `PeerIncompatible` | `unsupported protocol` | 70 | 70 |
/// | ChangeCipherSpec, data or an unknown record type first | `InappropriateMessage`, `InvalidContentType` | `unexpected message` | 10 | 10 |
/// | an alert before the ClientHello (server) | `AlertReceived` | `unexpected message` | none | 10 |
/// | an empty handshake record | `InvalidEmptyPayload` | `record too small` | 50 | 10 |
///
/// The alerts on the wire stay rustls' (unlike 40 for a missing TLS 1.2 client certificate and
/// 42 for a not-yet-valid one, these peers are not sftunnel peers that would act on them); the
/// debug line says where they differ. OpenSSL tells `record too small` only after 32 empty
/// records, rustls stops at the first.
fn openssl_protocol_error(
    e: &rustls::Error,
    first: &[u8],
    side: TlsSide,
) -> Option<(OpenSslError, &'static str)> {
    use rustls::{Error as E, InvalidMessage as M, PeerIncompatible as P};
    const NOT_TLS: &str = "rustls sent alert 50 (decode_error), OpenSSL sends none";
    const SAME_10: &str = "both send alert 10 (unexpected_message)";
    // OpenSSL's first record check (`ssl3_get_record`), on the bytes rustls refused.
    let not_tls = || {
        if side == TlsSide::Server && first.len() >= 3 && first[0] & 0x80 != 0 && first[2] == 1 {
            return Some((
                OpenSslError::UnknownProtocol,
                "rustls sent alert 50 (decode_error), OpenSSL sends 70 (protocol_version)",
            ));
        }
        if first.len() < 2 || first[1] == 3 {
            return None;
        }
        let error = if ["GET ", "POST ", "HEAD ", "PUT "]
            .iter()
            .any(|m| first.starts_with(m.as_bytes()))
        {
            OpenSslError::HttpRequest
        } else if first.starts_with(b"CONNE") {
            OpenSslError::HttpsProxyRequest
        } else {
            OpenSslError::WrongVersionNumber
        };
        Some((error, NOT_TLS))
    };
    match e {
        E::InvalidMessage(M::InvalidEmptyPayload) => not_tls().or(Some((
            OpenSslError::RecordTooSmall,
            "rustls sent alert 50 (decode_error), OpenSSL sends 10 (unexpected_message)",
        ))),
        E::InvalidMessage(M::InvalidContentType) => {
            not_tls().or(Some((OpenSslError::UnexpectedMessage, SAME_10)))
        }
        E::InvalidMessage(_) | E::PeerSentOversizedRecord => not_tls(),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            Some((OpenSslError::UnexpectedMessage, SAME_10))
        }
        E::PeerIncompatible(
            P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::SupportedVersionsExtensionRequired
            | P::ServerDoesNotSupportTls12Or13
            | P::ServerTlsVersionIsDisabledByOurConfig,
        ) => Some((
            OpenSslError::UnsupportedProtocol,
            "both send alert 70 (protocol_version)",
        )),
        // An alert as the very first record: OpenSSL's server has no handshake to end yet.
        E::AlertReceived(_) if side == TlsSide::Server && first.first() == Some(&0x15) => Some((
            OpenSslError::UnexpectedMessage,
            "rustls sent no alert, OpenSSL sends 10 (unexpected_message)",
        )),
        _ => None,
    }
}

fn classify(e: &io::Error, seen: &mut Seen, first: &[u8], side: TlsSide) -> HandshakeFailure {
    if let Some(Err(v)) = seen.judged.take() {
        return HandshakeFailure::Rejected(v);
    }
    if e.get_ref().is_some_and(|i| i.is::<NoClientCertificate>()) {
        return HandshakeFailure::NoPeerCertificate;
    }
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => from_rustls_after(tls, first, side),
        None if e.kind() == io::ErrorKind::UnexpectedEof => HandshakeFailure::Closed,
        None => HandshakeFailure::Tls(e.to_string()),
    }
}

/// OpenSSL's name of a suite (what `s_client` prints as `Cipher is ...`).
fn suite_name(s: Option<rustls::SupportedCipherSuite>) -> String {
    use rustls::CipherSuite as C;
    let name = match s.map(|s| s.suite()) {
        Some(C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) => "ECDHE-RSA-AES256-GCM-SHA384",
        Some(C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) => "ECDHE-RSA-AES128-GCM-SHA256",
        Some(C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384) => "ECDHE-ECDSA-AES256-GCM-SHA384",
        Some(C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) => "ECDHE-ECDSA-AES128-GCM-SHA256",
        Some(C::TLS13_AES_256_GCM_SHA384) => "TLS_AES_256_GCM_SHA384",
        Some(C::TLS13_AES_128_GCM_SHA256) => "TLS_AES_128_GCM_SHA256",
        Some(C::TLS13_CHACHA20_POLY1305_SHA256) => "TLS_CHACHA20_POLY1305_SHA256",
        Some(other) => return format!("{other:?}"),
        None => "(NONE)",
    };
    name.to_owned()
}

fn established(seen: Seen, conn: &rustls::CommonState, server: bool) -> Established {
    Established {
        // The verifier already parsed the peer's certificate; its facts came back with the
        // verdict, so the hot path parses it once.
        peer: seen.judged.and_then(Result::ok).flatten(),
        cipher: suite_name(conn.negotiated_cipher_suite()),
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
            _ => TlsVersion::Tls12,
        },
        certificate_requested: server || seen.certificate_requested,
    }
}

/// The marker error of a handshake [`Heard::watching`] ended: the TLS 1.2 client sent an
/// empty Certificate and was answered with alert 40.
#[derive(Debug)]
struct NoClientCertificate;

impl std::fmt::Display for NoClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("peer did not return a certificate")
    }
}

impl std::error::Error for NoClientCertificate {}

/// A fatal `handshake_failure` alert record in TLS 1.2's record version, byte for byte what
/// OpenSSL writes (`captures/sftunnel-no-client-cert.pcap`, frame 11).
const HANDSHAKE_FAILURE_RECORD: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40];

/// Reads a client's plaintext TLS 1.2 flight (the bytes rustls is about to get) until its
/// Certificate message, ChangeCipherSpec, or anything that ends the plaintext part.
struct CertWatch {
    session: crate::tls::Session<()>,
    events: Vec<crate::tls::Event<()>>,
}

enum Watched {
    /// Nothing decided yet.
    More,
    /// Past the point where a certificate could be missing: stop watching.
    Done,
    /// The client's Certificate message is empty.
    EmptyCertificate,
}

impl CertWatch {
    fn new() -> Self {
        Self {
            session: crate::tls::Session::new(crate::tls::Limits::default()),
            events: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Watched {
        use crate::tls::EventKind as K;
        self.session
            .feed(crate::tls::Side::A, bytes, (), &mut self.events);
        let mut out = Watched::More;
        for e in self.events.drain(..) {
            match e.kind {
                K::Certificate { ders, .. } if ders.is_empty() => {
                    return Watched::EmptyCertificate;
                }
                K::Certificate { .. }
                | K::ChangeCipherSpec
                | K::EncryptedHandshake
                | K::ApplicationData
                | K::Alert { .. }
                | K::Error(_) => out = Watched::Done,
                _ => {}
            }
        }
        if self.session.is_dead() {
            out = Watched::Done;
        }
        out
    }
}

/// What a watching stream does about an empty client Certificate.
enum Refusal {
    /// This much of [`HANDSHAKE_FAILURE_RECORD`] is written.
    Writing(usize),
    /// Written and flushed: every read now fails.
    Sent,
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
pub struct Heard<S> {
    inner: S,
    last: LastHeard,
    /// The server side's watch on the client's TLS 1.2 flight (see the module doc), until the
    /// point where it can no longer matter.
    watch: Option<Box<CertWatch>>,
    refusal: Option<Refusal>,
    /// The peer's first bytes (up to [`FIRST`]), for wording a failure as OpenSSL would.
    first: Vec<u8>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Heard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heard")
            .field("inner", &self.inner)
            .field("watching", &self.watch.is_some())
            .finish_non_exhaustive()
    }
}

/// When a [`Heard`] stream's reads last returned bytes.
#[derive(Clone, Debug)]
pub struct LastHeard(Arc<std::sync::Mutex<Instant>>);

impl LastHeard {
    /// When a read last returned bytes (or when the stream was wrapped).
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
    /// Wraps `inner`, counting it heard now; it refuses nothing.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            last: LastHeard(Arc::new(std::sync::Mutex::new(Instant::now()))),
            watch: None,
            refusal: None,
            first: Vec::new(),
        }
    }

    /// [`Heard::new`] for the server side of a handshake: also answers a TLS 1.2 client's
    /// empty Certificate with OpenSSL's alert 40 (see the module doc). A TLS 1.3 client's
    /// certificate is never plaintext, so there it never acts.
    pub fn watching(inner: S) -> Self {
        Self {
            watch: Some(Box::new(CertWatch::new())),
            ..Self::new(inner)
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

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> Heard<S> {
    /// Writes the alert of a [`Refusal`] and then fails the read, so the handshake ends with
    /// rustls never having seen the empty Certificate.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(Refusal::Writing(done)) = self.refusal {
            match Pin::new(&mut self.inner).poll_write(cx, &HANDSHAKE_FAILURE_RECORD[done..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) if done + n >= HANDSHAKE_FAILURE_RECORD.len() => {
                    self.refusal = Some(Refusal::Sent);
                }
                Poll::Ready(Ok(n)) => self.refusal = Some(Refusal::Writing(done + n)),
            }
        }
        if Pin::new(&mut self.inner).poll_flush(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(Err(io::Error::other(NoClientCertificate)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Heard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.refusal.is_some() {
            return this.poll_refuse(cx);
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.last.set(Instant::now());
            if this.first.len() < FIRST {
                let got = &buf.filled()[before..];
                let take = got.len().min(FIRST - this.first.len());
                this.first.extend_from_slice(&got[..take]);
            }
            if let Some(w) = this.watch.as_mut() {
                match w.feed(&buf.filled()[before..]) {
                    Watched::More => {}
                    Watched::Done => this.watch = None,
                    Watched::EmptyCertificate => {
                        // Held back: rustls must not read it (it would answer 116).
                        buf.set_filled(before);
                        this.watch = None;
                        this.refusal = Some(Refusal::Writing(0));
                        return this.poll_refuse(cx);
                    }
                }
            }
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
        if self.inner.is_write_vectored() || bufs.iter().filter(|b| !b.is_empty()).count() < 2 {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        // One write for all of them. A stream without vectored writes takes only the first
        // buffer per call, and rustls' last-gasp alert after a failed handshake is one call:
        // queued behind TLS 1.3's compatibility ChangeCipherSpec it would never be sent.
        let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        Pin::new(&mut self.inner).poll_write(cx, &joined)
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
    /// `n` slots, all free.
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
pub(super) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ServerConfig>,
    tcp: S,
    silence: Duration,
    accepted: Instant,
    slots: &Slots,
) -> Result<(server::TlsStream<Heard<S>>, Established), HandshakeFailure> {
    let acceptor = TlsAcceptor::from(config);
    let (res, mut seen) = capture_verify(async {
        let tcp = Heard::watching(tcp);
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
            let failure = classify(&e, &mut seen, &tcp.first, TlsSide::Server);
            linger(tcp).await;
            Err(failure)
        }
        Ok(mut tls) => {
            // Past the handshake nothing is watched: the session drops its buffers.
            tls.get_mut().0.watch = None;
            let est = established(seen, tls.get_ref().1, true);
            Ok((tls, est))
        }
    }
}

/// After a failed handshake (our alert already written): close our side and read what the peer
/// is still sending for a moment before dropping the socket. Closing with the peer's last
/// flight unread (a device's ClientKeyExchange, CertificateVerify, Finished; a TLS 1.3 FMC's
/// CertificateVerify and Finished after the Certificate we refused) would make the kernel
/// answer with a reset, and the peer would see "broken pipe" or "unexpected eof" instead of the
/// alert we sent — OpenSSL peers and ours alike then log the wrong reason. Bounded: at most
/// [`LINGER`] and 64 KiB.
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
pub(super) const LINGER: Duration = Duration::from_millis(500);

/// The device side of a handshake with the FMC at `ip`, on a TCP stream (possibly wrapped by
/// the `--pcap` recorder); the FMC is given up on after `silence` without a byte from it.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    tcp: S,
    ip: std::net::IpAddr,
    silence: Duration,
) -> Result<(client::TlsStream<Heard<S>>, Established), HandshakeFailure> {
    let connector = TlsConnector::from(config);
    let (res, mut seen) = capture_verify(async {
        let tcp = Heard::new(tcp);
        let heard = tcp.last_heard();
        let mut fut = connector
            .connect(ServerName::IpAddress(ip.into()), tcp)
            .into_fallible();
        let whole = Instant::now() + silence * WHOLE;
        within(&mut fut, silence, whole, |_| Some(heard.get())).await
    })
    .await;
    match res? {
        Err((e, tcp)) => {
            // As on the server: our alert must not be lost to a reset (the rest of the
            // server's flight, unread, would make the kernel send one).
            let failure = classify(&e, &mut seen, &tcp.first, TlsSide::Client);
            linger(tcp).await;
            Err(failure)
        }
        Ok(mut tls) => {
            if tls.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                server_verdict(&mut tls, silence).await?;
            }
            let est = established(seen, tls.get_ref().1, false);
            Ok((tls, est))
        }
    }
}

/// TLS 1.3, device side: the handshake is done on our side, the server's verdict on our
/// certificate is still to come (see the module doc). Reads until the server's first word: a
/// NewSessionTicket (OpenSSL and rustls servers send them once they accepted the client) or
/// data means accepted, and the data stays in the session for the caller (every byte read is
/// given to rustls); an alert is the
/// server's refusal; close_notify or `silence` without a word is no refusal either; a
/// connection closed without a word is [`HandshakeFailure::Closed`].
async fn server_verdict<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut client::TlsStream<S>,
    silence: Duration,
) -> Result<(), HandshakeFailure> {
    use tokio::io::AsyncReadExt;
    let end = Instant::now() + silence;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (io, conn) = tls.get_mut();
        if conn.tls13_tickets_received() > 0 {
            return Ok(());
        }
        let n = match tokio::time::timeout_at(end, io.read(&mut buf)).await {
            Err(_) => return Ok(()),
            Ok(Ok(0)) => return Err(HandshakeFailure::Closed),
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(HandshakeFailure::Closed);
            }
            Ok(Err(e)) => return Err(HandshakeFailure::Tls(e.to_string())),
        };
        let mut rest = &buf[..n];
        let mut spoke = false;
        while !rest.is_empty() {
            let took = conn
                .read_tls(&mut rest)
                .map_err(|e| HandshakeFailure::Tls(e.to_string()))?;
            let state = conn.process_new_packets().map_err(|e| from_rustls(&e))?;
            spoke |= state.plaintext_bytes_to_read() > 0 || state.peer_has_closed();
            if took == 0 {
                break;
            }
        }
        if spoke {
            return Ok(());
        }
    }
}

/// The TCP connection a dialing side opens before its handshake: `connect` within the
/// handshake deadline, its failure told as the handshake's (`Timeout` in phase "connect", or
/// `Connect` naming `addr`). Shared by the device (`client`) and the FMC dialing it (`dial`).
pub(super) async fn tcp_connect(
    connect: impl Future<Output = io::Result<tokio::net::TcpStream>>,
    addr: &str,
    deadline: Duration,
) -> Result<tokio::net::TcpStream, HandshakeFailure> {
    match tokio::time::timeout(deadline, connect).await {
        Err(_) => Err(HandshakeFailure::Timeout {
            phase: "connect",
            secs: deadline.as_secs(),
        }),
        Ok(Err(e)) => Err(HandshakeFailure::Connect {
            addr: addr.to_owned(),
            reason: e.to_string(),
        }),
        Ok(Ok(tcp)) => Ok(tcp),
    }
}

#[cfg(test)]
mod tests {
    //! The server's answer to a client without a certificate, on real rustls bytes over an
    //! in-memory stream: OpenSSL's alerts, not rustls' own.
    use super::*;
    use crate::pki::{self, DeviceSpec, InitOptions, Validity};
    use crate::tunnel::clock::Clock;
    use crate::tunnel::config::{self, TlsVersion};
    use crate::tunnel::material::{Identity, TlsFiles};
    use crate::tunnel::verify::PeerVerifier;
    use time::{Duration as Days, OffsetDateTime};

    fn fmc() -> (tempfile::TempDir, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let v = Validity::new(now - Days::days(1), now + Days::days(3650)).unwrap();
        let root = pki::init(&InitOptions {
            root: dir.path().to_owned(),
            fmc_uuid: None,
            devices: vec![DeviceSpec {
                name: "ftd1".into(),
                uuid: None,
            }],
            ha_secondary: None,
            ha_ca_validity: None,
            ha_peer_validity: None,
            ca_validity: v,
            peer_validity: v,
            key_bits: 2048,
            force: false,
            tls_version: TlsVersion::Tls12,
        })
        .unwrap();
        let f = root.fmc_files();
        let id = Identity::load(&TlsFiles {
            ca: f.ca,
            cert: f.cert,
            key: f.key,
        })
        .unwrap();
        (dir, id)
    }

    /// A client of `version` that trusts `id`'s CA and has no certificate of its own, against
    /// `accept`: the server's failure, and the error the client saw (in TLS 1.3 on its first
    /// read, the server's verdict coming after the client's Finished).
    async fn without_certificate(
        version: TlsVersion,
        id: &Identity,
    ) -> (HandshakeFailure, rustls::Error) {
        let server = config::server_config_for(version, id, &Clock::system(), None).unwrap();
        let p = config::provider();
        let verifier = Arc::new(PeerVerifier::new(
            &id.anchors,
            crate::sftunnel::TlsSide::Server,
            p.signature_verification_algorithms,
        ));
        let versions: &[&rustls::SupportedProtocolVersion] = match version {
            TlsVersion::Tls12 => &[&rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let client = rustls::ClientConfig::builder_with_provider(p)
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let slots = Slots::new(1);
        let srv = accept(server, a, Duration::from_secs(5), Instant::now(), &slots);
        let cli = async {
            use tokio::io::AsyncReadExt;
            let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
            let e = match TlsConnector::from(Arc::new(client)).connect(name, b).await {
                Err(e) => e,
                Ok(mut tls) => {
                    let mut buf = [0u8; 16];
                    tls.read(&mut buf).await.unwrap_err()
                }
            };
            e.into_inner()
                .and_then(|i| i.downcast::<rustls::Error>().ok())
                .map(|b| *b)
                .expect("a rustls error")
        };
        let (srv, cli) = tokio::join!(srv, cli);
        match srv {
            Err(f) => (f, cli),
            Ok(_) => panic!("the server accepted a client without a certificate"),
        }
    }

    #[tokio::test]
    async fn a_tls12_client_without_certificate_gets_handshake_failure_40_as_from_openssl() {
        let (_dir, id) = fmc();
        let (server, client) = without_certificate(TlsVersion::Tls12, &id).await;
        assert_eq!(server, HandshakeFailure::NoPeerCertificate);
        assert_eq!(
            client,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure)
        );
    }

    #[tokio::test]
    async fn a_tls13_client_without_certificate_gets_certificate_required_116_as_from_openssl_3() {
        let (_dir, id) = fmc();
        let (server, client) = without_certificate(TlsVersion::Tls13, &id).await;
        assert_eq!(server, HandshakeFailure::NoPeerCertificate);
        assert_eq!(
            client,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)
        );
    }
}
