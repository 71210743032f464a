//! The two ends of a TLS connection.

use std::fmt;

use serde::Serialize;

/// Which end of a TLS connection: the client (the side that sent ClientHello; on sftunnel the
/// FTD, which connects) or the server (the FMC, which accepts). The analyzer learns it from
/// the hellos, the tunnel and the recorder know it from who connected. JSON: `client`,
/// `server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsSide {
    /// Sent the ClientHello (on sftunnel: the FTD).
    Client,
    /// Answered it (on sftunnel: the FMC).
    Server,
}

impl TlsSide {
    /// `client`, `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsSide::Client => "client",
            TlsSide::Server => "server",
        }
    }

    /// The other end.
    pub fn peer(self) -> Self {
        match self {
            TlsSide::Client => TlsSide::Server,
            TlsSide::Server => TlsSide::Client,
        }
    }
}

impl fmt::Display for TlsSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
