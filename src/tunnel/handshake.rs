//! One TLS handshake on an open TCP stream, on either side, with a deadline, turned into an
//! established stream or a [`HandshakeFailure`].
//!
//! Owns the classification of what went wrong (we rejected the peer's chain, the peer sent an
//! alert, no certificate, timeout, garbage); logging it and deciding what to do next is the
//! caller's. Shared by `serve`, `connect` and `validate` so all three judge alike.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
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

/// The FMC side of a handshake, on a TCP stream (possibly wrapped by the `--pcap` recorder).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ServerConfig>,
    tcp: S,
    deadline: Duration,
) -> Result<(server::TlsStream<S>, Established), HandshakeFailure> {
    let acceptor = TlsAcceptor::from(config);
    let (res, judged) = capture_verify(tokio::time::timeout(deadline, acceptor.accept(tcp))).await;
    match res {
        Err(_) => Err(HandshakeFailure::Timeout {
            phase: "handshake",
            secs: deadline.as_secs(),
        }),
        Ok(Err(e)) => Err(classify(&e, judged)),
        Ok(Ok(tls)) => {
            let est = established(judged, tls.get_ref().1.negotiated_cipher_suite());
            Ok((tls, est))
        }
    }
}

/// The device side of a handshake with the FMC at `ip`, on a TCP stream (possibly wrapped by
/// the `--pcap` recorder).
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    tcp: S,
    ip: std::net::IpAddr,
    deadline: Duration,
) -> Result<(client::TlsStream<S>, Established), HandshakeFailure> {
    let connector = TlsConnector::from(config);
    let (res, judged) = capture_verify(tokio::time::timeout(
        deadline,
        connector.connect(ServerName::IpAddress(ip.into()), tcp),
    ))
    .await;
    match res {
        Err(_) => Err(HandshakeFailure::Timeout {
            phase: "handshake",
            secs: deadline.as_secs(),
        }),
        Ok(Err(e)) => Err(classify(&e, judged)),
        Ok(Ok(tls)) => {
            let est = established(judged, tls.get_ref().1.negotiated_cipher_suite());
            Ok((tls, est))
        }
    }
}
