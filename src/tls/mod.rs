//! tls: the TLS wire format, sans-IO. Records, handshake messages, alerts, and a per-connection
//! state machine: `Session::feed(side, bytes, mark)` -> `Event`s.
//!
//! It owns framing (records split across segments, handshake messages split across records,
//! the first record after a STARTTLS-style upgrade), the hello messages (versions, cipher
//! suites, SNI, HelloRetryRequest, TLS 1.3 and its drafts), which side is the TLS server (the one
//! that sent ServerHello, whoever opened the TCP connection), and honesty about encryption: an
//! alert after ChangeCipherSpec is reported as sent, never guessed.
//!
//! Given a key log (`KeyLog`, `Session::with_keys`), it also undoes record protection where the
//! log holds the connection's secrets: TLS 1.3 handshake records (EncryptedExtensions,
//! CertificateRequest, Certificate, CertificateVerify, Finished of both sides) and the first
//! application records after them, where post-handshake CertificateRequest, Certificate and
//! KeyUpdate appear; TLS 1.2 encrypted alerts. The key schedule (`keyschedule`) and record
//! opening (`decrypt`) are pure functions of the secrets and bytes.
//!
//! It leaves bytes to others: it never reads a file, socket or clock, and certificates stay
//! opaque DER (decoding them is `cert`'s job, judging them `judge`'s). The caller supplies
//! in-order bytes per direction (`net` reassembles TCP) and a mark for each chunk (frame number
//! and time); events carry the mark of the chunk that completed them. Layout after
//! tls-parser and rustls: registries as newtypes keeping unknown values, parsers that check a
//! length before every read, and one error enum for the layer.

// These modules turn wire bytes into lengths and offsets: a silent truncation there is a
// parsing bug, so every narrowing or sign-changing cast is spelled out or justified.
#![warn(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]
#![warn(missing_docs)] // every pub item of tls says what it is (issue 10)

mod decrypt;
mod keylog;
mod keyschedule;
mod messages;
mod reader;
mod record;
mod registry;
mod scan;
mod session;
mod suites;

pub use decrypt::{Aead, Mac, OpenError, Protection, RecordCipher, Suite};
pub use keylog::{
    KeyLog, KeyLogError, KeyLogProblem, KeyLogReport, RANDOM_LEN, Secret, SecretKind, Secrets,
};
pub use keyschedule::{
    Hash, TrafficKeys, hkdf_expand_label, next_traffic_secret, tls12_key_block, traffic_keys,
};
pub use messages::{
    CertificateRequest, ClientHello, ServerHello, certificate_list, certificate_list_tls13,
};
pub use record::{HEADER_LEN, MAX_RECORD_LEN, RecordHeader};
pub use registry::{
    AlertDescription, AlertLevel, CipherSuite, ContentType, HandshakeType, ProtocolVersion,
};
pub use scan::{Found, find_start};
pub use session::{
    Decryption, Event, EventKind, FatalAlert, POST_HANDSHAKE_RECORDS, Progress, Protected, Session,
    Step,
};

/// One of the two directions of a connection. Which one is the TLS client is learnt from the
/// hellos (`Session::role`); `A`/`B` are just the caller's labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's first direction (`analysis` gives it to the TCP client).
    A,
    /// The caller's second direction (the TCP server in `analysis`).
    B,
}

impl Side {
    /// The opposite direction.
    pub fn other(self) -> Self {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    /// 0 for `A`, 1 for `B`: the index into `Progress`'s per-side arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An alert's two bytes: a plaintext alert, or an encrypted one the key log opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alert {
    /// The first byte: 1 warning, 2 fatal.
    pub level: AlertLevel,
    /// The second byte: the alert code (RFC 8446 6, `certificate_expired` = 45).
    pub description: AlertDescription,
}

/// Bounds on what one direction may buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest handshake message buffered whole. Larger ones are reported and skipped, so a
    /// length field claiming 16 MB costs nothing. Certificate chains of a few hundred KB fit.
    pub max_handshake: usize,
    /// Plaintext bytes searched for the first TLS record before a direction is deemed not TLS.
    pub scan_window: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_handshake: 1 << 20,
            scan_window: 64 << 10,
        }
    }
}

/// What can go wrong reading TLS from a byte stream. Messages are short and lowercase; the
/// variants carry what a report prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Where the next record header should be, the bytes have an unknown content type or a
    /// version outside SSLv3..TLS 1.3: the direction is not read any further. Right after a
    /// side closed its TLS it is reported as `EventKind::LeftTls` instead.
    #[error(
        "not a TLS record at stream offset {offset} (bytes {})",
        hex::encode(header)
    )]
    NotTls {
        /// Offset of those bytes in this direction's stream: bytes fed for this side before
        /// them, plaintext before TLS included, bytes lost in a gap not.
        offset: u64,
        /// The five bytes found there, as on the wire.
        header: [u8; 5],
    },
    /// A header with a known content type and version whose length passes `MAX_RECORD_LEN`:
    /// the stream is out of step or not TLS, and the direction is not read any further.
    #[error("record of {len} bytes at stream offset {offset} exceeds the TLS limit of {max}")]
    RecordTooLong {
        /// The header's length field (payload bytes).
        len: usize,
        /// `MAX_RECORD_LEN` (18432).
        max: usize,
        /// Offset of the header in this direction's stream, as for `NotTls`.
        offset: u64,
    },
    /// A handshake message whose length field passes `Limits::max_handshake`: its bytes are
    /// dropped as they arrive, and the records after it are read as usual.
    #[error("{msg} claims {claimed} bytes, more than the {max} buffered; skipped")]
    HandshakeTooLarge {
        /// The message's type byte.
        msg: HandshakeType,
        /// Its 24-bit length field (body bytes, the 4-byte header not counted).
        claimed: usize,
        /// `Limits::max_handshake` in force.
        max: usize,
    },
    /// A complete handshake message whose body does not parse; the stream goes on with the
    /// next message (a Certificate's certificates that did parse are still reported).
    #[error("malformed {msg}: bad {what}")]
    Malformed {
        /// The message's type (ClientHello for an SSLv2-format hello too).
        msg: HandshakeType,
        /// The part that did not fit, as printed after "bad": `cipher suites`,
        /// `server_name extension`, `certificate length`, ...
        what: &'static str,
    },
    /// The capture ended (`Session::finish`) or bytes were lost (`Session::gap`) inside a
    /// record or a handshake message.
    #[error("stream ends inside a {what} ({have} of {need} bytes)")]
    Incomplete {
        /// `record`, or the message's name (`Certificate`; `handshake message` for a type
        /// without one).
        what: &'static str,
        /// Bytes of it held, its header included.
        have: usize,
        /// Its whole size: the header (5 bytes for a record, 4 for a handshake message) plus
        /// the length the header claims.
        need: usize,
    },
    /// A protected record did not open with the key log's secret: a wrong or stale line, or
    /// records missing before it. Decryption stops for that direction.
    #[error(
        "record {seq} after the key change ({len} bytes) does not decrypt with the key log's secret; \
         decryption stopped for this direction"
    )]
    Undecryptable {
        /// The record's sequence number in its direction and key generation (0: the first
        /// record under that secret).
        seq: u64,
        /// The record's payload length from its header (ciphertext bytes).
        len: usize,
    },
}
