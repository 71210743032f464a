//! NSS key logs (`SSLKEYLOGFILE`): the secrets a TLS library wrote down, by client random.
//!
//! Owns the format (one `LABEL <client_random hex> <secret hex>` per line, `#` comments,
//! blank lines; see the NSS and IETF `draft-ietf-tls-keylogfile` descriptions) and the lookup
//! the session does at each ClientHello. It keeps the labels that decrypting needs: the four
//! TLS 1.3 traffic secrets of the handshake and first application generation, and
//! `CLIENT_RANDOM` (the TLS 1.2 master secret). Labels it has no use for (early data,
//! exporters, `RSA` pre-master lines, later traffic generations that KeyUpdate derives anyway)
//! are skipped without complaint; a line that does not fit is reported with its source and
//! line number, and the rest of the file is still used.
//!
//! Pure: the text comes in as bytes (reading the file is the caller's job); secrets never
//! appear in `Debug` output or in error messages.

use std::collections::HashMap;
use std::fmt;

/// Bytes in a ClientHello random: the key-log lookup key.
pub const RANDOM_LEN: usize = 32;

/// Errors kept per `KeyLog::add` call; later ones are only counted, so a file that is not a
/// key log at all costs one short report, not a line per byte.
const MAX_ERRORS: usize = 20;

/// One secret a key log line can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretKind {
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`: the client's TLS 1.3 handshake records.
    ClientHandshake,
    /// `SERVER_HANDSHAKE_TRAFFIC_SECRET`: the server's TLS 1.3 handshake records.
    ServerHandshake,
    /// `CLIENT_TRAFFIC_SECRET_0`: the client's first TLS 1.3 application generation.
    ClientTraffic0,
    /// `SERVER_TRAFFIC_SECRET_0`: the server's first TLS 1.3 application generation.
    ServerTraffic0,
    /// `CLIENT_RANDOM`: the TLS <= 1.2 master secret.
    Master,
}

impl SecretKind {
    /// Every kind, in the order a report lists missing ones.
    pub const ALL: [SecretKind; 5] = [
        SecretKind::ClientHandshake,
        SecretKind::ServerHandshake,
        SecretKind::ClientTraffic0,
        SecretKind::ServerTraffic0,
        SecretKind::Master,
    ];

    /// The key log label.
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::ClientHandshake => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            SecretKind::ServerHandshake => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            SecretKind::ClientTraffic0 => "CLIENT_TRAFFIC_SECRET_0",
            SecretKind::ServerTraffic0 => "SERVER_TRAFFIC_SECRET_0",
            SecretKind::Master => "CLIENT_RANDOM",
        }
    }

    fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.label() == label)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Labels other libraries write that decrypting a capture does not need.
fn ignored_label(label: &str) -> bool {
    matches!(
        label,
        "CLIENT_EARLY_TRAFFIC_SECRET" | "EARLY_EXPORTER_SECRET" | "EXPORTER_SECRET" | "RSA"
    ) || label
        .strip_prefix("CLIENT_TRAFFIC_SECRET_")
        .or_else(|| label.strip_prefix("SERVER_TRAFFIC_SECRET_"))
        // OpenSSL logs later generations as `_N`, others with their number.
        .is_some_and(|n| n == "N" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// A secret's bytes. `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// A copy of `bytes`; no length is checked here (`KeyLog::add` checks what it reads).
    pub fn new(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }
    /// The secret as logged: 32 or 48 bytes for a TLS 1.3 traffic secret, 48 for a master
    /// secret.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The secrets logged for one client random.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    by_kind: [Option<Secret>; 5],
}

impl Secrets {
    /// The secret logged under `kind`'s label; `None` if no line gave it.
    pub fn get(&self, kind: SecretKind) -> Option<&Secret> {
        self.by_kind[kind.index()].as_ref()
    }

    /// Keeps `secret` for `kind`, replacing one set before.
    pub fn set(&mut self, kind: SecretKind, secret: Secret) {
        self.by_kind[kind.index()] = Some(secret);
    }

    /// Which of `kinds` are not here.
    pub fn missing(&self, kinds: &[SecretKind]) -> Vec<SecretKind> {
        kinds
            .iter()
            .copied()
            .filter(|&k| self.get(k).is_none())
            .collect()
    }
}

/// Every secret of one or more key log files.
#[derive(Clone, Default)]
pub struct KeyLog {
    by_random: HashMap<[u8; RANDOM_LEN], Secrets>,
}

impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyLog({} client randoms)", self.by_random.len())
    }
}

/// What `KeyLog::add` made of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLogReport {
    /// Secrets taken from the file.
    pub secrets: usize,
    /// The first lines that did not fit (at most 20).
    pub errors: Vec<KeyLogError>,
    /// Further bad lines, counted only.
    pub more_errors: usize,
}

/// A key log line that does not fit, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {problem}; line ignored")]
pub struct KeyLogError {
    /// The file (or whatever the caller named the text).
    pub source_name: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: KeyLogProblem,
}

/// What is wrong with a key log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLogProblem {
    /// A known label, but not followed by exactly two more whitespace-separated fields: the
    /// number of fields found, label included.
    #[error("expected 3 fields (label, client random, secret), found {0}")]
    Fields(usize),
    /// The label, escaped and cut to 40 characters.
    #[error("unknown label \"{0}\"")]
    UnknownLabel(String),
    /// The second field is not the 32-byte random in hex.
    #[error("client random is not 64 hex digits")]
    ClientRandom,
    /// The third field is not an even number of hex digits.
    #[error("{kind} secret is not hex")]
    NotHex {
        /// The line's label.
        kind: SecretKind,
    },
    /// The secret decodes to a length its label does not have.
    #[error("{kind} secret of {len} bytes (expected {expected})")]
    SecretLength {
        /// The line's label.
        kind: SecretKind,
        /// Bytes decoded.
        len: usize,
        /// `"48"` for `CLIENT_RANDOM`, `"32 or 48"` (SHA-256 or SHA-384) for a TLS 1.3 traffic
        /// secret.
        expected: &'static str,
    },
}

impl KeyLog {
    /// An empty key log: no connection decrypts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Client randoms with at least one secret.
    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    /// No line gave a secret (blank, comment-only or unusable text).
    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }

    /// The secrets logged for the connection whose ClientHello carried `client_random`.
    pub fn get(&self, client_random: &[u8; RANDOM_LEN]) -> Option<&Secrets> {
        self.by_random.get(client_random)
    }

    /// Adds the lines of one key log (`source_name` names it in errors). A later line for the
    /// same client random and label replaces an earlier one.
    pub fn add(&mut self, source_name: &str, text: &[u8]) -> KeyLogReport {
        let mut report = KeyLogReport::default();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            match parse_line(raw) {
                Ok(None) => {}
                Ok(Some((kind, random, secret))) => {
                    self.by_random.entry(random).or_default().set(kind, secret);
                    report.secrets += 1;
                }
                Err(problem) if report.errors.len() < MAX_ERRORS => {
                    report.errors.push(KeyLogError {
                        source_name: source_name.to_string(),
                        line: i + 1,
                        problem,
                    });
                }
                Err(_) => report.more_errors += 1,
            }
        }
        report
    }

    /// A key log made of one text.
    pub fn parse(source_name: &str, text: &[u8]) -> (Self, KeyLogReport) {
        let mut log = Self::new();
        let report = log.add(source_name, text);
        (log, report)
    }
}

type Line = (SecretKind, [u8; RANDOM_LEN], Secret);

/// One line: `Ok(None)` for blank lines, comments and labels of no use here.
fn parse_line(raw: &[u8]) -> Result<Option<Line>, KeyLogProblem> {
    let line = raw.trim_ascii();
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    let fields: Vec<&[u8]> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .collect();
    let label = String::from_utf8_lossy(fields[0]);
    let Some(kind) = SecretKind::from_label(&label) else {
        if ignored_label(&label) {
            return Ok(None);
        }
        let shown: String = label.chars().take(40).collect();
        return Err(KeyLogProblem::UnknownLabel(
            shown.escape_debug().to_string(),
        ));
    };
    if fields.len() != 3 {
        return Err(KeyLogProblem::Fields(fields.len()));
    }
    let mut random = [0; RANDOM_LEN];
    hex::decode_to_slice(fields[1], &mut random).map_err(|_| KeyLogProblem::ClientRandom)?;
    let secret = hex::decode(fields[2]).map_err(|_| KeyLogProblem::NotHex { kind })?;
    // TLS 1.3 secrets are one hash long (SHA-256 or SHA-384); a master secret is 48 bytes.
    let (ok, expected) = match kind {
        SecretKind::Master => (secret.len() == 48, "48"),
        _ => (matches!(secret.len(), 32 | 48), "32 or 48"),
    };
    if !ok {
        return Err(KeyLogProblem::SecretLength {
            kind,
            len: secret.len(),
            expected,
        });
    }
    Ok(Some((kind, random, Secret(secret.into()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "3a4f000000000000000000000000000000000000000000000000000000000001";
    const R2: &str = "3a4f000000000000000000000000000000000000000000000000000000000002";

    #[test]
    fn secrets_are_kept_by_client_random_and_label() {
        let s32 = "11".repeat(32);
        let s48 = "22".repeat(48);
        let text = format!(
            "# SSL/TLS secrets log file, generated by OpenSSL\r\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R1} {s32}\r\n\
             EXPORTER_SECRET {R1} {s32}\n\
             \n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} {s48}\n\
             CLIENT_RANDOM {R2} {s48}\n\
             CLIENT_TRAFFIC_SECRET_1 {R1} {s32}\n\
             SERVER_TRAFFIC_SECRET_N {R1} {s32}\n"
        );
        let (log, report) = KeyLog::parse("k.log", text.as_bytes());
        assert_eq!(report.errors, []);
        assert_eq!(report.secrets, 3);
        assert_eq!(log.len(), 2);
        let mut r1 = [0; 32];
        hex::decode_to_slice(R1, &mut r1).unwrap();
        let s = log.get(&r1).unwrap();
        assert_eq!(
            s.get(SecretKind::ServerHandshake).unwrap().as_bytes(),
            [0x11; 32]
        );
        assert_eq!(
            s.get(SecretKind::ClientHandshake).unwrap().as_bytes(),
            [0x22; 48]
        );
        assert_eq!(
            s.missing(&SecretKind::ALL[..4]),
            [SecretKind::ClientTraffic0, SecretKind::ServerTraffic0]
        );
        // secrets never show in Debug
        let shown = format!("{s:?} {log:?}");
        assert!(
            !shown.contains("1111") && !shown.contains("2222"),
            "{shown}"
        );
    }

    #[test]
    fn bad_lines_are_reported_by_line_and_the_rest_is_used() {
        let good = format!("CLIENT_RANDOM {R1} {}", "ab".repeat(48));
        let text = format!(
            "CLIENT_RANDOM {R1}\n\
             CLIENT_RANDOM zz{} {}\n\
             {good}\n\
             SERVER_TRAFFIC_SECRET_0 {R1} {}\n\
             CLIENT_RANDOM {R2} {}\n\
             CLIENT_RANDOM {R2} xyz\n\
             BOGUS\u{1b}[31m {R1} 00\n",
            &R1[2..],
            "ab".repeat(48),
            "cd".repeat(20),
            "ab".repeat(32),
        );
        let (log, report) = KeyLog::parse("keys.txt", text.as_bytes());
        let got: Vec<(usize, String)> = report
            .errors
            .iter()
            .map(|e| (e.line, e.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    "keys.txt:1: expected 3 fields (label, client random, secret), found 2; line ignored"
                        .to_string()
                ),
                (
                    2,
                    "keys.txt:2: client random is not 64 hex digits; line ignored".into()
                ),
                (
                    4,
                    "keys.txt:4: SERVER_TRAFFIC_SECRET_0 secret of 20 bytes (expected 32 or 48); line ignored"
                        .into()
                ),
                (
                    5,
                    "keys.txt:5: CLIENT_RANDOM secret of 32 bytes (expected 48); line ignored".into()
                ),
                (
                    6,
                    "keys.txt:6: CLIENT_RANDOM secret is not hex; line ignored".into()
                ),
                (
                    7,
                    "keys.txt:7: unknown label \"BOGUS\\u{1b}[31m\"; line ignored".into()
                ),
            ]
        );
        assert_eq!(report.secrets, 1);
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn a_file_that_is_no_key_log_gives_a_short_report() {
        let junk: Vec<u8> = (0..5000u32)
            .flat_map(|i| [b'x', (i % 7) as u8, b'\n'])
            .collect();
        let (log, report) = KeyLog::parse("junk", &junk);
        assert!(log.is_empty());
        assert_eq!(report.errors.len(), MAX_ERRORS);
        assert_eq!(report.errors.len() + report.more_errors, 5000);
    }
}
