//! Why a tunnel attempt failed, and how the appliance words it in its log.
//!
//! Owns [`HandshakeFailure`] (one value per failed attempt, carrying what the log and the fleet
//! summary print), the OpenSSL wording of TLS alerts, and the verify-failure block sftunnel's
//! verify callback logs. Deciding that something failed is the server's, client's and
//! verifier's job.

use std::fmt;

use super::log::ThreadLog;
use crate::judge::Verdict;
use crate::tls::AlertDescription;

/// One failed tunnel attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// TCP connect failed (refused, unreachable, ...).
    Connect { addr: String, reason: String },
    /// A phase did not finish in time.
    Timeout { phase: &'static str, secs: u64 },
    /// We rejected the peer's certificate chain: the judge's verdict on it (we sent its
    /// `alert()`).
    Rejected(Box<Verdict>),
    /// The peer rejected us with this alert.
    AlertReceived { alert: AlertDescription },
    /// The peer sent no certificate.
    NoPeerCertificate,
    /// The peer closed the connection during the handshake.
    Closed,
    /// A certificate the CA signed, but not for a peer of this FMC's root (its UUID, when it
    /// names one, and its subject, both escaped). Refused after the handshake, before HELLO.
    NotAPeer {
        uuid: Option<String>,
        subject: Option<String>,
    },
    /// Any other TLS or socket error.
    Tls(String),
}

impl HandshakeFailure {
    /// A short key to count failures by in the fleet summary.
    pub fn reason(&self) -> String {
        match self {
            HandshakeFailure::Connect { reason, .. } => format!("connect: {reason}"),
            HandshakeFailure::Timeout { phase, .. } => format!("timeout: {phase}"),
            HandshakeFailure::Rejected(v) => {
                format!("err {} (depth {})", v.code, v.depth.unwrap_or(0))
            }
            HandshakeFailure::AlertReceived { alert } => format!(
                "alert received: {} {}",
                alert.0,
                alert.name().unwrap_or("unknown")
            ),
            HandshakeFailure::NoPeerCertificate => "peer did not return a certificate".into(),
            HandshakeFailure::Closed => "closed during handshake".into(),
            HandshakeFailure::NotAPeer { uuid, .. } => format!(
                "not a peer of this FMC: {}",
                uuid.as_deref().unwrap_or("certificate names no UUID")
            ),
            HandshakeFailure::Tls(s) => s.clone(),
        }
    }

    /// The alert that went on the wire for this failure, if we know it: the one we sent when we
    /// rejected the peer, the one we received otherwise.
    pub fn alert(&self) -> Option<AlertDescription> {
        match self {
            HandshakeFailure::Rejected(v) => Some(v.alert()),
            HandshakeFailure::AlertReceived { alert } => Some(*alert),
            _ => None,
        }
    }

    /// The lines the appliance logs for this failure, ending with `SSL handshake failed` when
    /// the failure happened in the TLS handshake.
    pub fn log_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        match self {
            HandshakeFailure::Connect { addr, reason } => {
                v.push(format!("Failed to connect to {addr}: {reason}"));
                return v;
            }
            HandshakeFailure::Timeout { phase, secs } => {
                v.push(format!("Timed out after {secs} seconds in {phase}"));
                if *phase != "handshake" {
                    return v;
                }
            }
            HandshakeFailure::Rejected(f) => v.extend(verify_block(f)),
            HandshakeFailure::AlertReceived { alert } => v.push(format!(
                "SSL alert received: {} (SSL alert number {})",
                openssl_alert_reason(*alert),
                alert.0
            )),
            HandshakeFailure::NoPeerCertificate => {
                v.push("peer did not return a certificate".into())
            }
            HandshakeFailure::Closed => v.push("Connection closed by peer during handshake".into()),
            HandshakeFailure::NotAPeer { uuid, subject } => {
                v.push(format!(
                    "Refusing peer {} (subject {}): not a peer of this FMC",
                    uuid.as_deref().unwrap_or("without a UUID"),
                    subject.as_deref().unwrap_or("?")
                ));
                return v;
            }
            HandshakeFailure::Tls(s) => v.push(s.clone()),
        }
        v.push("SSL handshake failed".into());
        v
    }

    /// Logs [`Self::log_lines`] at ERROR.
    pub fn log(&self, log: &ThreadLog) {
        for l in self.log_lines() {
            log.error(&l);
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for HandshakeFailure {}

/// The block OpenSSL's verify callback in sftunnel logs for a rejected certificate.
pub fn verify_block(v: &Verdict) -> Vec<String> {
    vec![
        format!("-Error with certificate at depth {}", v.depth.unwrap_or(0)),
        format!("issuer = {}", v.issuer_oneline.as_deref().unwrap_or("")),
        format!("subject = {}", v.subject_oneline.as_deref().unwrap_or("")),
        format!("err {}", v.code),
    ]
}

/// OpenSSL's error reason for a received alert (`sslv3 alert certificate expired`), as
/// `s_client`/`s_server` print it. (The registry names themselves, `certificate_expired`,
/// are `tls::AlertDescription`'s, shared with the analyzer.)
pub fn openssl_alert_reason(alert: AlertDescription) -> String {
    let s = match alert.0 {
        10 => "sslv3 alert unexpected message",
        20 => "sslv3 alert bad record mac",
        22 => "tlsv1 alert record overflow",
        40 => "sslv3 alert handshake failure",
        42 => "sslv3 alert bad certificate",
        43 => "sslv3 alert unsupported certificate",
        44 => "sslv3 alert certificate revoked",
        45 => "sslv3 alert certificate expired",
        46 => "sslv3 alert certificate unknown",
        47 => "sslv3 alert illegal parameter",
        48 => "tlsv1 alert unknown ca",
        49 => "tlsv1 alert access denied",
        50 => "tlsv1 alert decode error",
        51 => "tlsv1 alert decrypt error",
        70 => "tlsv1 alert protocol version",
        71 => "tlsv1 alert insufficient security",
        80 => "tlsv1 alert internal error",
        90 => "tlsv1 alert user cancelled",
        100 => "tlsv1 alert no renegotiation",
        110 => "tlsv1 unsupported extension",
        116 => "tlsv13 alert certificate required",
        n => return format!("unknown alert {n}"),
    };
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_chain_logs_the_verify_block_then_handshake_failed() {
        // The judge's own verdict (on an empty chain), told what an expired InternalCA gives.
        let mut v = crate::judge::verify(&[], &[], time::OffsetDateTime::UNIX_EPOCH).overall;
        let ca = "/title=InternalCA/OU=Intrusion Management System/CN=u/O=Cisco Systems, Inc";
        v.code = crate::judge::VerifyCode::CertHasExpired;
        v.depth = Some(1);
        v.subject_oneline = Some(ca.into());
        v.issuer_oneline = Some(ca.into());
        let f = HandshakeFailure::Rejected(Box::new(v));
        assert_eq!(
            f.log_lines(),
            vec![
                "-Error with certificate at depth 1",
                "issuer = /title=InternalCA/OU=Intrusion Management System/CN=u/O=Cisco Systems, Inc",
                "subject = /title=InternalCA/OU=Intrusion Management System/CN=u/O=Cisco Systems, Inc",
                "err 10:certificate has expired",
                "SSL handshake failed",
            ]
        );
        assert_eq!(f.alert(), Some(AlertDescription::CERTIFICATE_EXPIRED));
        assert_eq!(f.reason(), "err 10:certificate has expired (depth 1)");
    }

    #[test]
    fn received_alert_is_named_in_openssl_words() {
        let f = HandshakeFailure::AlertReceived {
            alert: AlertDescription::CERTIFICATE_EXPIRED,
        };
        assert_eq!(
            f.log_lines(),
            vec![
                "SSL alert received: sslv3 alert certificate expired (SSL alert number 45)",
                "SSL handshake failed"
            ]
        );
        assert_eq!(f.reason(), "alert received: 45 certificate_expired");
    }
}
