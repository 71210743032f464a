//! The live sftunnel: the FMC side (`serve`), the device side (`connect`), `validate` and the
//! control socket `status` and `pki renew` use. The only async code in the crate.
//!
//! Owns TLS policy ([`config`]), the verifiers that call the chain judge at the tunnel's
//! [`Clock`] ([`verify`], `chain`), the message protocol spoken inside the tunnel
//! ([`proto`]), one handshake with its deadlines and slots ([`handshake`]), the FMC server
//! ([`server`]) and its dialing of devices (`dial`), the device client ([`client`], which
//! also accepts the FMC's connections) and its load generator ([`fleet`]), the control
//! socket ([`control`]: status, push, reload/restart, owner-only), FMC 7.6's TLS 1.3 words and
//! how the emulator differs from its post-handshake authentication ([`pha`]), in-process validation
//! ([`validate`]), delivering a renewed PKI through a running server ([`renewal`]), the rows
//! `status` shows ([`status`]), and the appliance's log lines (`log`, [`failure`]), into
//! which nothing a peer chose goes unescaped (`sftunnel::escape`). Certificates are judged by `judge`;
//! the PKI layout is `pki`'s; flags are the CLI's; tables are `report`'s. Beyond
//! ARCHITECTURE.md's directions, this module also reads the alert registry of the sans-IO
//! `tls` module (one table of alert names for live logs and capture reports) and taps its
//! streams with `recorder` for `--pcap`.

#![warn(missing_docs)] // every pub item of tunnel says what it is (issue 10)

use std::path::PathBuf;

use thiserror::Error;

mod chain;
pub mod client;
mod clock;
pub mod config;
pub mod control;
mod dial;
pub mod failure;
pub mod fleet;
mod framed;
pub mod handshake;
mod install;
mod listen;
mod log;
mod material;
pub mod pha;
pub mod proto;
pub mod renewal;
pub mod server;
pub mod status;
pub mod validate;
pub mod verify;

// One public path per item: a `pub mod` is the path to its items; the few types of a private
// module that callers need are re-exported here.
pub use chain::PeerCert;
pub use clock::Clock;
pub use dial::DialTarget;
pub use log::{SfLog, ThreadLog};
pub use material::{Identity, TlsFiles};

/// Errors of the tunnel layer.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// A certificate, key or key-log file that could not be opened or used, or a push journal
    /// a device could not finish or undo.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file (for a journal, the device's journal file).
        path: PathBuf,
        /// What failed (the system's or the decoder's words).
        reason: String,
    },
    /// rustls refused the configuration built from the files (its error, as text), or a
    /// fleet worker task failed.
    #[error("tls configuration: {0}")]
    Config(String),
    /// The peer's address did not resolve (DNS, a malformed address): a setup error, not a
    /// TLS one.
    #[error("cannot resolve {addr}: {reason}")]
    Resolve {
        /// The address as dialed (port 8305 added when it named none).
        addr: String,
        /// The resolver's words, or `no address`.
        reason: String,
    },
    /// The server could not listen on its address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The listen address given (`ServerSettings::listen`).
        addr: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The control socket could not be set up, bound or reached, or an answer on it did not
    /// arrive or parse.
    #[error("control socket {}: {reason}", path.display())]
    Control {
        /// The socket.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The server on the control socket refused a request; `kind` says why in a way a
    /// caller can act on.
    #[error("control socket {}: {reason}", path.display())]
    Refused {
        /// The socket.
        path: PathBuf,
        /// The refusal's kind (`forbidden` when this user may not open the socket; `other`
        /// when the server gave none).
        kind: control::ErrorKind,
        /// The server's words (or the system's, for `forbidden`).
        reason: String,
    },
    /// A handshake that did not complete.
    #[error("handshake failed: {0}")]
    Handshake(#[from] failure::HandshakeFailure),
    /// A push to a peer that has no control channel up on this server.
    #[error("peer {uuid} is not connected")]
    NotConnected {
        /// The peer's UUID, as asked for.
        uuid: String,
    },
    /// A push that was not acknowledged: refused before sending (over the frame limit), the
    /// tunnel closed, or no acknowledgement within the push timeout.
    #[error("push to {uuid}: {reason}")]
    Push {
        /// The peer's UUID.
        uuid: String,
        /// Which of those happened.
        reason: String,
    },
    /// A frame inside the tunnel that does not decode.
    #[error("protocol: {0}")]
    Protocol(#[from] proto::ProtoError),
    /// A certificate or key file `cert` could not read (the error names the file).
    #[error(transparent)]
    Cert(#[from] crate::cert::CertError),
    /// A socket operation failed: the system's error, `UnexpectedEof` when the peer closed
    /// mid-frame, `TimedOut` when a peer took no data within the send limit.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Resolves when a shutdown flag turns true (or its sender is gone). Returns `()` so
/// `select!` arms stay `Send` (a `watch::Ref` is not).
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
