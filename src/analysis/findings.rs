//! What the analyzer found, as report-ready records: one per certificate that crossed the wire,
//! one per alert record, one per TLS session, and notes (gaps, parse errors, a cut capture).
//!
//! Field names and formats are CLI.md's JSON contract (serde derives it: `type` first, times
//! RFC 3339 UTC, `src`/`dst` as `ip:port` or `[v6]:port`); renderers in `report` add nothing
//! but layout. Certificate fields are copied out of `cert::CertInfo` so a record stands alone.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::outcome::Outcome;
use crate::capture::Timestamp;
use crate::cert::{SftunnelIdentity, SftunnelRole, rfc3339};
use crate::judge::Verdict;
use crate::tls::Role;

/// One finding. Serialises as one JSON object tagged by `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Finding {
    Certificate(Box<CertificateFinding>),
    Chain(Box<ChainFinding>),
    Alert(AlertFinding),
    Session(Box<SessionFinding>),
    Note(NoteFinding),
}

impl Finding {
    /// A failed verdict, a fatal alert or a failed handshake: what makes `analyze` exit 1.
    pub fn is_problem(&self) -> bool {
        match self {
            Finding::Certificate(c) => !c.verdict.is_ok(),
            Finding::Chain(c) => !c.verdict.is_ok(),
            Finding::Alert(a) => a.is_fatal_plaintext(),
            Finding::Session(s) => {
                s.outcome == Outcome::Failed
                    || [&s.server_chain_verdict, &s.client_chain_verdict]
                        .into_iter()
                        .flatten()
                        .any(|v| !v.is_ok())
            }
            Finding::Note(_) => false,
        }
    }
}

fn arc_str<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

fn ts<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp_rfc3339(t))
}

fn opt_time<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(t)),
        None => s.serialize_none(),
    }
}

/// A capture timestamp as RFC 3339 UTC with its fraction (`2023-02-28T16:19:52.672456Z`).
pub fn timestamp_rfc3339(t: &Timestamp) -> String {
    match t.to_datetime() {
        Some(dt) => rfc3339(&dt),
        None => t.to_string(),
    }
}

/// The sftunnel identity a certificate carries, when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub role: SftunnelRole,
    pub uuid: Option<String>,
}

impl Identity {
    pub(crate) fn of(id: SftunnelIdentity) -> Option<Self> {
        (id.role != SftunnelRole::Other).then_some(Identity {
            role: id.role,
            uuid: id.uuid,
        })
    }
}

/// A certificate as sent in a Certificate message.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateFinding {
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    /// The frame that completed the Certificate message.
    pub frame: u64,
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The sender's TLS role; `null` when no hello showed it.
    pub role: Option<Role>,
    /// 0 = the first certificate of the message (the sender's own).
    pub chain_index: usize,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    pub serial: Option<String>,
    pub version: Option<u32>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    #[serde(serialize_with = "opt_time")]
    pub not_before: Option<OffsetDateTime>,
    #[serde(serialize_with = "opt_time")]
    pub not_after: Option<OffsetDateTime>,
    pub sig_alg: Option<String>,
    pub key: Option<String>,
    /// This certificate's own verdict at its depth (time only without `--ca`).
    pub verdict: Verdict,
    pub der_len: usize,
    pub self_signed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sftunnel: Option<Identity>,
    /// Why the DER did not parse completely.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// The TCP connection's index in the capture (tshark's `tcp.stream`).
    pub conn: u64,
    /// OpenSSL one-line names, for messages-log lines.
    #[serde(skip)]
    pub subject_oneline: Option<String>,
    #[serde(skip)]
    pub issuer_oneline: Option<String>,
}

/// The verdict on a whole Certificate message's chain, right after its certificates: what the
/// receiving OpenSSL peer would log (the first error, at its depth). It also covers a trust
/// anchor that was not sent (an expired InternalCA behind a leaf-only chain).
#[derive(Debug, Clone, Serialize)]
pub struct ChainFinding {
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    pub frame: u64,
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub role: Option<Role>,
    /// Certificates in the message.
    pub length: usize,
    pub verdict: Verdict,
    /// The path ends in a `--ca` anchor (false without anchors).
    pub trusted: bool,
    pub conn: u64,
}

/// An alert record.
#[derive(Debug, Clone, Serialize)]
pub struct AlertFinding {
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    pub frame: u64,
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// `warning`/`fatal` (`unknown(n)` kept); `null` when encrypted.
    pub level: Option<String>,
    pub code: Option<u8>,
    /// The TLS registry name (`certificate_expired`); `null` when encrypted.
    pub description: Option<String>,
    /// Sent after ChangeCipherSpec (or not 2 bytes long): its content is unknowable.
    pub encrypted: bool,
    /// The sender's TLS role.
    pub role: Option<Role>,
    pub conn: u64,
}

impl AlertFinding {
    pub fn is_fatal_plaintext(&self) -> bool {
        self.level.as_deref() == Some("fatal")
    }
}

/// A TLS session (one TCP connection that carried TLS).
#[derive(Debug, Clone, Serialize)]
pub struct SessionFinding {
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    /// The TLS client and server (the server sent ServerHello; not necessarily the TCP
    /// listener).
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub first_frame: u64,
    pub last_frame: u64,
    #[serde(serialize_with = "ts")]
    pub first_ts: Timestamp,
    #[serde(serialize_with = "ts")]
    pub last_ts: Timestamp,
    /// Negotiated version (`TLSv1.2`, `TLSv1.3-draft28`).
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub sni: Option<String>,
    /// The client sent a non-empty Certificate message.
    pub client_cert: bool,
    pub certificate_requested: bool,
    pub outcome: Outcome,
    pub reason: String,
    /// The side whose alert or close ended a failed handshake.
    pub failed_by: Option<Role>,
    /// The whole chain's verdict (the first error, OpenSSL's answer), `null` when that side
    /// sent no certificate.
    pub server_chain_verdict: Option<Verdict>,
    pub client_chain_verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_identity: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_identity: Option<Identity>,
    /// Alert records each side sent (client, server).
    pub alerts: [u32; 2],
    /// The TCP connection's index in the capture (tshark's `tcp.stream`).
    pub conn: u64,
    /// The tunnels the connection came through (outermost first, as on its first packet);
    /// absent when it came bare. `client`/`server` are the inner addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outer: Vec<crate::net::Encap>,
}

/// Something the reader of the report should know that is not a certificate, alert or
/// session: TCP gaps, TLS parse errors, undecodable frames, a truncated capture.
#[derive(Debug, Clone, Serialize)]
pub struct NoteFinding {
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    pub frame: Option<u64>,
    #[serde(serialize_with = "opt_ts")]
    pub ts: Option<Timestamp>,
    pub text: String,
}

fn opt_ts<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ts(t, s),
        None => s.serialize_none(),
    }
}
