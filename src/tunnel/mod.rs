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
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("tls configuration: {0}")]
    Config(String),
    /// The peer's address did not resolve (DNS, a malformed address): a setup error, not a
    /// TLS one.
    #[error("cannot resolve {addr}: {reason}")]
    Resolve { addr: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("control socket {}: {reason}", path.display())]
    Control { path: PathBuf, reason: String },
    /// The server on the control socket refused a request; `kind` says why in a way a
    /// caller can act on.
    #[error("control socket {}: {reason}", path.display())]
    Refused {
        path: PathBuf,
        kind: control::ErrorKind,
        reason: String,
    },
    #[error("handshake failed: {0}")]
    Handshake(#[from] failure::HandshakeFailure),
    #[error("peer {uuid} is not connected")]
    NotConnected { uuid: String },
    #[error("push to {uuid}: {reason}")]
    Push { uuid: String, reason: String },
    #[error("protocol: {0}")]
    Protocol(#[from] proto::ProtoError),
    /// A certificate or key file `cert` could not read (the error names the file).
    #[error(transparent)]
    Cert(#[from] crate::cert::CertError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Resolves when a shutdown flag turns true (or its sender is gone). Returns `()` so
/// `select!` arms stay `Send` (a `watch::Ref` is not).
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
