//! What the analyzer found, as report-ready records: one per certificate that crossed the wire,
//! one per alert record, one per TLS session, and notes (gaps, parse errors, a cut capture).
//!
//! Field names and formats are CLI.md's JSON contract (serde derives it: `type` first, times
//! RFC 3339 UTC, `src`/`dst` as `ip:port` or `[v6]:port`); renderers in `report` add nothing
//! but layout. Certificate fields are copied out of `cert::CertInfo` so a record stands alone.
//! Values stay typed (an alert's level, what a note is about) and become text only when
//! serialised or rendered.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::outcome::Outcome;
pub use super::remedy::{Action, Remedy};
use crate::capture::{CaptureError, Timestamp};
use crate::cert::SftunnelIdentity;
use crate::judge::Verdict;
use crate::net::{DecodeError, Dir, EncapSet, GapCause};
use crate::sftunnel::{SubjectRole, TlsSide, rfc3339};
use crate::tls::{AlertLevel, TlsError};

/// One finding. Serialises as one JSON object tagged by `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Finding {
    /// One certificate of a Certificate message (`certificate`).
    Certificate(Box<CertificateFinding>),
    /// That message's chain, after its certificates (`chain`).
    Chain(Box<ChainFinding>),
    /// One alert record (`alert`).
    Alert(AlertFinding),
    /// One TLS session, when its connection ends or the capture does (`session`).
    Session(Box<SessionFinding>),
    /// Something else worth knowing (`note`).
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
    /// `internal_ca`, `fmc` or `ftd` (never `other`: that is no identity).
    pub role: SubjectRole,
    /// The FMC's UUID (InternalCA, FMC certificate) or the device's, as written; `None`
    /// when the subject names none.
    pub uuid: Option<String>,
}

impl Identity {
    pub(crate) fn of(id: SftunnelIdentity) -> Option<Self> {
        (id.role != SubjectRole::Other).then_some(Identity {
            role: id.role,
            uuid: id.uuid,
        })
    }
}

/// A certificate as sent in a Certificate message.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateFinding {
    /// The capture, as named on the command line (`-` for stdin).
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    /// The frame that completed the Certificate message.
    pub frame: u64,
    /// That frame's capture time.
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// The sender, `ip:port`.
    pub src: SocketAddr,
    /// The receiver, `ip:port`.
    pub dst: SocketAddr,
    /// The sender's TLS role; `null` when no hello showed it.
    pub role: Option<TlsSide>,
    /// 0 = the first certificate of the message (the sender's own).
    pub chain_index: usize,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    /// Lowercase hex without leading zeros; `None`, here and in the fields below, when that
    /// field did not decode.
    pub serial: Option<String>,
    /// As displayed: 1, 2 or 3.
    pub version: Option<u32>,
    /// RFC 4514, with `title` and `generationQualifier` named.
    pub subject: Option<String>,
    /// RFC 4514, as `subject`.
    pub issuer: Option<String>,
    /// RFC 3339 UTC in JSON.
    #[serde(serialize_with = "crate::sftunnel::serialize_opt_rfc3339")]
    pub not_before: Option<OffsetDateTime>,
    /// RFC 3339 UTC in JSON.
    #[serde(serialize_with = "crate::sftunnel::serialize_opt_rfc3339")]
    pub not_after: Option<OffsetDateTime>,
    /// OpenSSL's name (`sha256WithRSAEncryption`) or the OID.
    pub sig_alg: Option<String>,
    /// `RSA 2048`, `EC P-384`, ... or the key algorithm's OID.
    pub key: Option<String>,
    /// This certificate's own verdict at its depth (time only without `--ca`).
    pub verdict: Verdict,
    /// DER length in bytes.
    pub der_len: usize,
    /// OpenSSL's "self-signed" (EXFLAG_SS: self-issued, and its authority key identifier and
    /// signature algorithm fit its own key; the signature is not checked).
    pub self_signed: bool,
    /// Who it belongs to by its subject; `None` (absent in JSON) for a certificate that is
    /// not an sftunnel one.
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
    /// The issuer's, in the same form.
    #[serde(skip)]
    pub issuer_oneline: Option<String>,
    /// It crossed the wire encrypted (TLS 1.3) and `--keylog` opened it.
    #[serde(skip_serializing_if = "is_false")]
    pub decrypted: bool,
    /// Sent after its sender's Finished: TLS 1.3 post-handshake authentication.
    #[serde(skip_serializing_if = "is_false")]
    pub post_handshake: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The verdict on a whole Certificate message's chain, right after its certificates: what the
/// receiving OpenSSL peer would log (the first error, at its depth). It also covers a trust
/// anchor that was not sent (an expired InternalCA behind a leaf-only chain).
#[derive(Debug, Clone, Serialize)]
pub struct ChainFinding {
    /// The capture, as named on the command line (`-` for stdin).
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    /// The frame that completed the Certificate message.
    pub frame: u64,
    /// That frame's capture time.
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// The sender, `ip:port`.
    pub src: SocketAddr,
    /// The receiver, `ip:port`.
    pub dst: SocketAddr,
    /// The sender's TLS role; `null` when no hello showed it.
    pub role: Option<TlsSide>,
    /// Certificates in the message.
    pub length: usize,
    /// The chain's overall verdict (the first error, at its depth), at `ts` unless `--at`.
    pub verdict: Verdict,
    /// The chain verifies (`verdict.code` 0) up to a `--ca` anchor; false without anchors or
    /// with any error, so never `true` beside a failed verdict.
    pub trusted: bool,
    /// What the verdict covers: the dates only (no `--ca`), or the whole chain.
    pub checked: Checked,
    /// The `--ca` anchor the path ended in is not the CA certificate the peer sent under the
    /// same name: the verdict is about the file given, not about what the peers use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor_mismatch: Option<AnchorMismatch>,
    /// The TCP connection's index in the capture (tshark's `tcp.stream`).
    pub conn: u64,
}

/// What a chain verdict covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checked {
    /// No `--ca`: only each certificate's validity dates were judged.
    Dates,
    /// With `--ca`: the whole chain, like `openssl verify -attime`.
    Chain,
}

/// A certificate named by what tells it apart from another of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct CertRef {
    /// RFC 4514; `None` (as the dates) when it did not decode.
    pub subject: Option<String>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    /// RFC 3339 UTC in JSON.
    #[serde(serialize_with = "crate::sftunnel::serialize_opt_rfc3339")]
    pub not_before: Option<OffsetDateTime>,
    /// RFC 3339 UTC in JSON.
    #[serde(serialize_with = "crate::sftunnel::serialize_opt_rfc3339")]
    pub not_after: Option<OffsetDateTime>,
    /// OpenSSL's one-line form, for text lines.
    #[serde(skip)]
    pub subject_oneline: Option<String>,
}

impl CertRef {
    pub(crate) fn of(c: &crate::cert::CertInfo) -> Self {
        CertRef {
            subject: c.subject.as_ref().map(|n| n.rfc4514()),
            sha256: c.sha256.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            subject_oneline: c.subject.as_ref().map(|n| n.oneline()),
        }
    }
}

/// The anchor given with `--ca` and the CA certificate the peer sent, under one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AnchorMismatch {
    /// Where the anchor sits in the verified path.
    pub depth: usize,
    /// From `--ca`.
    pub anchor: CertRef,
    /// From the wire.
    pub sent: CertRef,
}

/// What the capture shows of one side's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertsSeen {
    /// A Certificate message with certificates: see the chain verdict.
    Sent,
    /// An empty Certificate message (a client that has no certificate to give).
    Empty,
    /// The handshake in the capture has no Certificate message from this side (a client
    /// not asked for one, a resumed session, a handshake that ended before it).
    NotSent,
    /// TLS 1.3: certificates travel encrypted; what was sent cannot be seen.
    Encrypted,
    /// The handshake is not in the capture (it began before the capture started).
    NotCaptured,
    /// Bytes this side sent during the handshake are missing from the capture (cut by the
    /// snap length, or lost before the tap) and no Certificate message was read: one may
    /// have been among them.
    PartlyCaptured,
}

/// An alert record.
#[derive(Debug, Clone, Serialize)]
pub struct AlertFinding {
    /// The capture, as named on the command line (`-` for stdin).
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    /// The frame that carried it (1-based, as Wireshark numbers frames).
    pub frame: u64,
    /// That frame's capture time.
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// The sender, `ip:port`.
    pub src: SocketAddr,
    /// The receiver, `ip:port`.
    pub dst: SocketAddr,
    /// `warning`/`fatal` (`unknown(n)` kept); `null` when encrypted.
    #[serde(serialize_with = "opt_display")]
    pub level: Option<AlertLevel>,
    /// The AlertDescription number (`45`); `null` when encrypted.
    pub code: Option<u8>,
    /// The TLS registry name (`certificate_expired`); `null` when encrypted.
    pub description: Option<String>,
    /// Sent after ChangeCipherSpec (or not 2 bytes long): its content is unknowable, unless
    /// `decrypted`.
    pub encrypted: bool,
    /// Encrypted, and `--keylog` opened it: level, code and description are its own.
    #[serde(skip_serializing_if = "is_false")]
    pub decrypted: bool,
    /// The sender's TLS role; `None` when no hello showed it.
    pub role: Option<TlsSide>,
    /// The TCP connection's index in the capture (tshark's `tcp.stream`).
    pub conn: u64,
}

impl AlertFinding {
    /// A fatal alert whose level could be read (sent in the clear, or decrypted).
    pub fn is_fatal_plaintext(&self) -> bool {
        self.level.is_some_and(AlertLevel::is_fatal)
    }
}

/// A TLS session (one TCP connection that carried TLS).
#[derive(Debug, Clone, Serialize)]
pub struct SessionFinding {
    /// The capture, as named on the command line (`-` for stdin).
    #[serde(serialize_with = "arc_str")]
    pub file: Arc<str>,
    /// The TLS client and server (the server sent ServerHello; not necessarily the TCP
    /// listener).
    pub client: SocketAddr,
    /// The TLS server, `ip:port`.
    pub server: SocketAddr,
    /// The connection's first frame in the capture (1-based).
    pub first_frame: u64,
    /// Its last frame.
    pub last_frame: u64,
    /// The first frame's capture time.
    #[serde(serialize_with = "ts")]
    pub first_ts: Timestamp,
    /// The last frame's capture time.
    #[serde(serialize_with = "ts")]
    pub last_ts: Timestamp,
    /// Negotiated version (`TLSv1.2`, `TLSv1.3-draft28`).
    pub version: Option<String>,
    /// The IANA name of the negotiated suite (`unknown(0x....)` if unassigned); `None` when
    /// no ServerHello named one.
    pub cipher: Option<String>,
    /// The ClientHello's `server_name` host name; `None` without one.
    pub sni: Option<String>,
    /// The client sent a non-empty Certificate message.
    pub client_cert: bool,
    /// The server sent a CertificateRequest.
    pub certificate_requested: bool,
    /// How it ended up, as far as the capture shows.
    pub outcome: Outcome,
    /// The one-line reason a TAC engineer reads first; the chains' errors and the key-log
    /// lines that would open what stayed encrypted are appended.
    pub reason: String,
    /// The side whose alert or close ended a failed handshake.
    pub failed_by: Option<TlsSide>,
    /// The whole chain's verdict (the first error, OpenSSL's answer), `null` when that side
    /// sent no certificate.
    pub server_chain_verdict: Option<Verdict>,
    /// The client's, likewise.
    pub client_chain_verdict: Option<Verdict>,
    /// What the capture shows of each side's certificates (sent, empty, encrypted, ...).
    pub server_certificates: CertsSeen,
    /// The client's, likewise.
    pub client_certificates: CertsSeen,
    /// What the chain verdicts cover: dates only (no `--ca`) or the whole chain.
    pub checked: Checked,
    /// What to do about a session that is a problem (failed, or a chain that fails), derived
    /// from the verdicts, the alert and the sftunnel roles; `null` when nothing is wrong.
    pub remedy: Option<Remedy>,
    /// The sftunnel identity of the server's certificate; `None` (absent in JSON) when it
    /// sent none or no sftunnel one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_identity: Option<Identity>,
    /// The client's, likewise.
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
    /// Some of its records were opened with `--keylog`.
    #[serde(skip_serializing_if = "is_false")]
    pub decrypted: bool,
    /// The ClientHello's random, lowercase hex (the key-log lookup key): shown when a key
    /// log was given or secrets are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_random: Option<String>,
    /// Key-log labels this session needs that no `--keylog` line gave.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_secrets: Vec<&'static str>,
}

/// Something the reader of the report should know that is not a certificate, alert or
/// session: TCP gaps, TLS parse errors, undecodable frames, a truncated capture.
///
/// JSON: `{"type":"note","file","frame","ts","kind","text"}`: `kind` names what it is about
/// ([`NoteKind::name`]), `text` says it in prose.
#[derive(Debug, Clone)]
pub struct NoteFinding {
    /// The capture, as named on the command line (`-` for stdin).
    pub file: Arc<str>,
    /// The frame it is about (1-based); `None` for a note about the whole capture.
    pub frame: Option<u64>,
    /// That frame's capture time; `None` likewise.
    pub ts: Option<Timestamp>,
    /// What it is about, with its facts.
    pub kind: NoteKind,
}

impl NoteFinding {
    /// The note in prose, as the report prints it.
    pub fn text(&self) -> String {
        self.kind.to_string()
    }
}

impl Serialize for NoteFinding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("NoteFinding", 5)?;
        st.serialize_field("file", &*self.file)?;
        st.serialize_field("frame", &self.frame)?;
        st.serialize_field("ts", &self.ts.as_ref().map(timestamp_rfc3339))?;
        st.serialize_field("kind", self.kind.name())?;
        st.serialize_field("text", &self.text())?;
        st.end()
    }
}

/// What a note is about, with the facts its text is made of.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NoteKind {
    /// Bytes of a TLS connection that were never captured (`tcp_gap`).
    TcpGap {
        /// The sender of the missing bytes.
        src: SocketAddr,
        /// Their receiver.
        dst: SocketAddr,
        /// Where they start in that direction's byte stream (0 = its first byte).
        offset: u64,
        /// How many bytes.
        len: u64,
        /// Why they were given up on.
        cause: GapCause,
        /// The capture's snap length in bytes (the captured length of its cut frames), when
        /// `cause` is [`GapCause::SnapLength`].
        snaplen: Option<u32>,
    },
    /// A retransmission with other bytes than the first copy, which was kept
    /// (`tcp_conflict`).
    TcpConflict {
        /// The direction, from the connection's client.
        dir: Dir,
        /// Where the differing bytes start in that direction's byte stream.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// An IP fragment, skipped (`ip_fragment`).
    IpFragment {
        /// Its source address.
        src: IpAddr,
        /// Its destination address.
        dst: IpAddr,
        /// The IP protocol number it carries (6 = TCP).
        protocol: u8,
    },
    /// A frame that does not decode down to TCP (`undecodable_frame`).
    Undecodable(DecodeError),
    /// TLS bytes that do not parse, or a record left half-done (`tls_error`).
    Tls {
        /// The sender of the bytes.
        src: SocketAddr,
        /// Their receiver.
        dst: SocketAddr,
        /// What does not parse, and where.
        error: TlsError,
    },
    /// The capture could not be read to its end (`read_error`); findings cover the frames
    /// up to `error.after_frame()`.
    ReadError(Arc<CaptureError>),
    /// TCP segments the capture's snap length cut short (`snap_length`): their missing bytes
    /// are holes in the streams, and sessions that lost handshake bytes to them are
    /// `incomplete`, not judged on what was not captured.
    SnapLength {
        /// TCP segments with fewer bytes captured than their IP length declares (on any port).
        segments: u64,
        /// The snap length in bytes: the captured length of the cut frames (the largest, if
        /// they differ).
        snaplen: u32,
    },
    /// Frames came through tunnels (`encapsulations`): which kinds, and how many frames were
    /// unwrapped. Flows are reported by their inner addresses; sessions keep the outer ones.
    Encapsulations {
        /// The kinds of tunnel seen.
        seen: EncapSet,
        /// How many frames were unwrapped.
        frames: u64,
    },
}

impl NoteKind {
    /// The JSON `kind`: a stable snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            NoteKind::TcpGap { .. } => "tcp_gap",
            NoteKind::TcpConflict { .. } => "tcp_conflict",
            NoteKind::IpFragment { .. } => "ip_fragment",
            NoteKind::Undecodable(_) => "undecodable_frame",
            NoteKind::Tls { .. } => "tls_error",
            NoteKind::ReadError(_) => "read_error",
            NoteKind::SnapLength { .. } => "snap_length",
            NoteKind::Encapsulations { .. } => "encapsulations",
        }
    }
}

impl fmt::Display for NoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteKind::TcpGap {
                src,
                dst,
                offset,
                len,
                cause,
                snaplen,
            } => {
                write!(
                    f,
                    "{src} -> {dst}: {len} bytes missing at stream offset {offset} ("
                )?;
                match (cause, snaplen) {
                    (GapCause::SnapLength, Some(n)) => {
                        write!(f, "frames cut by the capture's snap length of {n} bytes")?;
                    }
                    _ => write!(f, "{cause}")?,
                }
                f.write_str("); TLS resynchronises on the next handshake record")
            }
            NoteKind::TcpConflict { dir, offset, len } => write!(
                f,
                "retransmission with different bytes ({dir:?}, {len} bytes at offset {offset}); the first copy was kept"
            ),
            NoteKind::IpFragment { src, dst, protocol } => write!(
                f,
                "IP fragment {src} -> {dst} (protocol {protocol}) skipped, not reassembled"
            ),
            NoteKind::Undecodable(e) => write!(f, "frame not decoded: {e}"),
            NoteKind::Tls { src, dst, error } => write!(f, "{src} -> {dst}: {error}"),
            NoteKind::ReadError(e) => match e.after_frame() {
                0 => write!(f, "{e}; no frame could be read"),
                after => write!(f, "{e}; findings cover frames 1-{after}"),
            },
            NoteKind::SnapLength { segments, snaplen } => write!(
                f,
                "{segments} TCP segments were cut by the capture's snap length of {snaplen} bytes \
                 (the bytes they lost are holes in their streams); capture with `-s 0` \
                 (tcpdump, dumpcap: whole packets) to see the handshakes whole"
            ),
            NoteKind::Encapsulations { seen, frames } => write!(
                f,
                "encapsulations: {seen} ({frames} frames unwrapped; flows are reported by their \
                 inner addresses, JSON sessions keep the outer ones in `outer`)"
            ),
        }
    }
}

fn opt_display<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
