//! One TLS handshake on an open TCP stream, on either side, with a deadline, turned into an
//! established stream or a [`HandshakeFailure`].
//!
//! Owns the classification of what went wrong (we rejected the peer's chain, the peer sent an
//! alert, no certificate, timeout, garbage); logging it and deciding what to do next is the
//! caller's. Shared by `serve`, `connect` and `validate` so all three judge alike.
//!
//! The deadline is the peer's silence, not the handshake's length: the peer is dropped when it
//! has sent nothing for `deadline` ([`Heard`] notes when its bytes last arrived), and a
//! handshake that keeps making progress gets [`WHOLE`] times that in all (a peer dribbling a
//! byte at a time still ends). A server in a reconnect storm queues thousands of handshakes on
//! its cores; a clock started at accept would fail devices that answered at once but waited for
//! our CPU, and they would come back and add to the queue. Bytes already in the socket count
//! as heard: the handshake is polled before its timer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use super::chain::PeerCert;
use super::failure::HandshakeFailure;
use super::verify::{Judged, capture_verify};

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
            alert: u8::from(*a),
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

/// Drives `fut` (a handshake over a [`Heard`] stream, which `last_heard` finds) until it ends,
/// the peer has been silent for `silence`, or [`WHOLE`] times that has passed.
async fn within<F: std::future::Future + Unpin>(
    fut: &mut F,
    silence: Duration,
    last_heard: impl Fn(&F) -> Option<Instant>,
) -> Result<F::Output, HandshakeFailure> {
    let whole = Instant::now() + silence * WHOLE;
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

/// The FMC side of a handshake, on a TCP stream (possibly wrapped by the `--pcap` recorder);
/// the device is dropped after `silence` without a byte from it.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ServerConfig>,
    tcp: S,
    silence: Duration,
) -> Result<(server::TlsStream<Heard<S>>, Established), HandshakeFailure> {
    let acceptor = TlsAcceptor::from(config);
    let (res, judged) = capture_verify(async {
        let tcp = Heard::new(tcp);
        let heard = tcp.last_heard();
        let mut fut = acceptor.accept(tcp).into_fallible();
        within(&mut fut, silence, |_| Some(heard.get())).await
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
        within(&mut fut, silence, |f| f.get_ref().map(Heard::last)).await
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
