//! Why a tunnel attempt failed, and how the appliance words it in its log.
//!
//! Owns [`HandshakeFailure`] (one value per failed attempt, carrying what the log and the fleet
//! summary print) and how sftunnel words it ([`HandshakeFailure::log_lines`], in the [`Words`]
//! of the appliance, its TLS side and its OpenSSL): the verify callback's block, OpenSSL's
//! error strings (`SSL_renegotiate error: 1: error:0A000086:SSL routines::certificate verify
//! failed`, alerts as `sslv3 alert certificate expired`) in the codes of 3.x, 1.1.1 or 1.0.2,
//! `Connect:`/`Accept:SSL handshake failed`, `SSL Verification status`, and the FMC's own
//! block when it dials a device (`establishConnectionUtil`, `establishSSLConnection`: partly
//! reconstructed, see `fmc_dial_block`). Deciding that something failed is the server's,
//! client's and verifier's job.
//!
//! The device dialing the FMC, which rejects the FMC's chain (APPLIANCE.md, line for line):
//! ```text
//! [ERROR] -Error with certificate at depth 1
//! [ERROR] issuer = /title=InternalCA/...
//! [ERROR] subject = /title=InternalCA/...
//! [ERROR] err 10:certificate has expired
//! [ERROR] SSL_renegotiate error: 1: error:0A000086:SSL routines::certificate verify failed
//! [ERROR] Connect:SSL handshake failed
//! [WARN] SSL Verification status: certificate has expired
//! ```
//! The end that receives the alert logs `SSL_renegotiate error: 1: error:0A000415:SSL
//! routines::sslv3 alert certificate expired` and its own `...:SSL handshake failed`. The
//! accepting end's `Accept:` mirrors the dialing end's `Connect:` (the source shows only the
//! latter).

use std::fmt;
use std::net::SocketAddr;

use super::log::ThreadLog;
use crate::judge::{OpenSsl, Verdict, VerifyCode};
use crate::sftunnel::{Component, Level, Role, TlsSide};
use crate::tls::AlertDescription;

/// One failed tunnel attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// TCP connect failed (refused, unreachable, ...).
    Connect {
        /// The address dialed.
        addr: String,
        /// The system's error.
        reason: String,
    },
    /// A phase did not finish in time.
    Timeout {
        /// The phase: `connect`, `handshake`, `hello` (or `server verdict`, in validation).
        phase: &'static str,
        /// The deadline that passed, in whole seconds.
        secs: u64,
    },
    /// We rejected the peer's certificate chain: the judge's verdict on it (we sent its
    /// `alert()`).
    Rejected(Box<Verdict>),
    /// The peer rejected us with this alert.
    AlertReceived {
        /// The alert's code.
        alert: AlertDescription,
    },
    /// The peer sent no certificate.
    NoPeerCertificate,
    /// The peer closed the connection during the handshake.
    Closed,
    /// A certificate the CA signed, but not for a peer of this FMC's root (its UUID, when it
    /// names one, and its subject, both escaped). Refused after the handshake, before HELLO.
    NotAPeer {
        /// The certificate's `title`; `None` when it has none.
        uuid: Option<String>,
        /// The certificate's subject (`X509_NAME_oneline`); `None` when its facts could not
        /// be read.
        subject: Option<String>,
    },
    /// The peer broke the protocol before any certificate was judged (another TLS version,
    /// bytes that are not TLS, a message out of order): logged as the error OpenSSL queues for
    /// the same bytes, not in rustls' words.
    Protocol {
        /// OpenSSL's error for what the peer sent.
        error: OpenSslError,
        /// What rustls said, and where the alert it sent differs from OpenSSL's (a `-v`
        /// debug line, never the messages log).
        detail: String,
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
            HandshakeFailure::Protocol { error, .. } => error.reason_text().to_owned(),
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

    /// The lines the appliance logs for this failure, in its words (see [`Words`]): the
    /// verify callback's block when we rejected the peer's chain, `SSL_renegotiate error: 1:`
    /// with OpenSSL's error string, then how the handshake ended on that side.
    pub fn log_lines(&self, w: &Words) -> Vec<(Level, String)> {
        let mut v = Vec::new();
        let e = |s: String| (Level::Error, s);
        match self {
            HandshakeFailure::Connect { addr, reason } => {
                v.push(e(format!("Failed to connect to {addr}: {reason}")));
                return v;
            }
            HandshakeFailure::Timeout { phase, secs } => {
                v.push(e(format!("Timed out after {secs} seconds in {phase}")));
                if *phase != "handshake" {
                    return v;
                }
                v.push(e(format!("{}:SSL handshake failed", w.step())));
                return v;
            }
            HandshakeFailure::NotAPeer { uuid, subject } => {
                v.push(e(format!(
                    "Refusing peer {} (subject {}): not a peer of this FMC",
                    uuid.as_deref().unwrap_or("without a UUID"),
                    subject.as_deref().unwrap_or("?")
                )));
                return v;
            }
            HandshakeFailure::Closed => {
                v.push(e("Connection closed by peer during handshake".into()));
                v.push(e(format!("{}:SSL handshake failed", w.step())));
                return v;
            }
            HandshakeFailure::Tls(s) => {
                v.push(e(s.clone()));
                v.push(e(format!("{}:SSL handshake failed", w.step())));
                return v;
            }
            HandshakeFailure::Protocol { error, .. } => {
                let error = openssl_error(*error, w);
                v.push(e(format!("SSL_renegotiate error: 1: {error}")));
                if w.dialer_block() {
                    v.extend(fmc_dial_block(&error, "ok", w));
                } else {
                    v.push(e(format!("{}:SSL handshake failed", w.step())));
                    // No chain was judged: the dialing device's verify result is still
                    // OpenSSL's initial X509_V_OK, as after an alert.
                    if w.side == TlsSide::Client {
                        v.push((Level::Warn, "SSL Verification status: ok".to_owned()));
                    }
                }
                return v;
            }
            HandshakeFailure::Rejected(_)
            | HandshakeFailure::AlertReceived { .. }
            | HandshakeFailure::NoPeerCertificate => {}
        }
        let (error, status) = match self {
            HandshakeFailure::Rejected(verdict) => {
                let verdict = w.verdict(verdict);
                if w.dialer_block() {
                    v.push((Level::Info, fmc_verify_line(Some(&verdict))));
                } else {
                    v.extend(verify_block(&verdict).into_iter().map(e));
                }
                (
                    openssl_error(OpenSslError::VerifyFailed, w),
                    verdict.text().to_owned(),
                )
            }
            HandshakeFailure::AlertReceived { alert } => {
                if w.dialer_block() {
                    v.push((Level::Info, fmc_verify_line(None)));
                }
                (
                    openssl_error(OpenSslError::Alert(*alert), w),
                    "ok".to_owned(),
                )
            }
            _ => (
                openssl_error(OpenSslError::NoPeerCertificate, w),
                "ok".to_owned(),
            ),
        };
        v.push(e(format!("SSL_renegotiate error: 1: {error}")));
        if w.dialer_block() {
            v.extend(fmc_dial_block(&error, &status, w));
            return v;
        }
        v.push(e(format!("{}:SSL handshake failed", w.step())));
        // The status only means something where a chain was judged: the dialing device's
        // (the FMC's chain comes first in TLS 1.2), or a chain we rejected.
        if w.side == TlsSide::Client || matches!(self, HandshakeFailure::Rejected(_)) {
            v.push((Level::Warn, format!("SSL Verification status: {status}")));
        }
        v
    }

    /// Logs [`Self::log_lines`] in the words of `log`'s appliance and side.
    pub fn log(&self, log: &ThreadLog) {
        if let HandshakeFailure::Protocol { detail, .. } = self {
            tracing::debug!("{}: {detail}", self.reason());
        }
        if log.is_quiet() {
            return;
        }
        let lines = self.log_lines(&log.words());
        let block: Vec<(Level, &str)> = lines.iter().map(|(l, t)| (*l, t.as_str())).collect();
        log.log_block(Component::SfSsl, &block);
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for HandshakeFailure {}

/// Whose words a failure is logged in: which end of the TLS connection this appliance was,
/// which appliance it is, and which OpenSSL it links (the strings and codes of its lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words {
    /// Which end of the TLS connection (by default the FMC's is the server, a device's the
    /// client).
    pub side: TlsSide,
    /// The appliance whose log it is (its `SfLog`'s role).
    pub role: Role,
    /// The OpenSSL it links (`--openssl`).
    pub openssl: OpenSsl,
    /// The peer dialed or accepted, when known (the FMC's dialing block names it).
    pub peer: Option<SocketAddr>,
}

impl Words {
    /// How OpenSSL's handshake call is named on that side: `Connect` (`SSL_connect`, the
    /// dialing end) or `Accept` (`SSL_accept`).
    fn step(&self) -> &'static str {
        match self.side {
            TlsSide::Client => "Connect",
            TlsSide::Server => "Accept",
        }
    }

    /// The FMC dialing a device logs its own block (`establishConnectionUtil`, ...).
    fn dialer_block(&self) -> bool {
        self.side == TlsSide::Client && self.role == Role::Fmc
    }

    /// The verdict as this OpenSSL numbers and words it: 1.1.1 and 1.0.2 call an invalid CA
    /// 24 (3.x: 79), and say `self signed` where 3.x says `self-signed`. (The tunnel judges
    /// chains by 3.x's rules; the rules that differ are `judge::OpenSsl`'s.)
    fn verdict(&self, v: &Verdict) -> Verdict {
        let mut v = v.clone();
        v.openssl = self.openssl;
        v.code = match (v.code, self.openssl) {
            (VerifyCode::InvalidCa, OpenSsl::V1_1_1 | OpenSsl::V1_0_2) => {
                VerifyCode::InvalidCaLegacy
            }
            (VerifyCode::InvalidCaLegacy, OpenSsl::V3) => VerifyCode::InvalidCa,
            (c, _) => c,
        };
        v
    }
}

/// An error OpenSSL queues when a handshake fails, whose string `SSL_renegotiate error: 1:`
/// quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenSslError {
    /// We rejected the peer's chain (`SSL_R_CERTIFICATE_VERIFY_FAILED`, 134).
    VerifyFailed,
    /// The peer sent this fatal alert (reason 1000 + the alert's number).
    Alert(AlertDescription),
    /// The client sent no certificate (`SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE`, 199).
    NoPeerCertificate,
    /// The server supports none of the versions the client offers
    /// (`SSL_R_UNSUPPORTED_PROTOCOL`, 258; raised by `tls_early_post_process_client_hello`).
    UnsupportedProtocol,
    /// The first record's version byte is not 3: not TLS (`SSL_R_WRONG_VERSION_NUMBER`, 267,
    /// `ssl3_get_record`).
    WrongVersionNumber,
    /// The same, and the bytes start `GET `, `POST `, `HEAD ` or `PUT ` (`SSL_R_HTTP_REQUEST`,
    /// 156).
    HttpRequest,
    /// The same, and the bytes start `CONNE` (`SSL_R_HTTPS_PROXY_REQUEST`, 155).
    HttpsProxyRequest,
    /// An SSLv2 ClientHello (`SSL_R_UNKNOWN_PROTOCOL`, 252,
    /// `tls_early_post_process_client_hello`).
    UnknownProtocol,
    /// A record or message the state does not allow: ChangeCipherSpec, data or an alert
    /// before the ClientHello, an unknown record type (`SSL_R_UNEXPECTED_MESSAGE`, 244).
    UnexpectedMessage,
    /// Empty records (`SSL_R_RECORD_TOO_SMALL`, 298, `ssl3_get_record`).
    RecordTooSmall,
}

impl OpenSslError {
    /// OpenSSL's reason code (`SSL_R_*`, the same number in 1.0.2, 1.1.1 and 3.x) and
    /// string, for the errors that are not alerts.
    fn reason(self) -> (u32, &'static str) {
        match self {
            OpenSslError::VerifyFailed => (134, "certificate verify failed"),
            OpenSslError::NoPeerCertificate => (199, "peer did not return a certificate"),
            OpenSslError::UnsupportedProtocol => (258, "unsupported protocol"),
            OpenSslError::WrongVersionNumber => (267, "wrong version number"),
            OpenSslError::HttpRequest => (156, "http request"),
            OpenSslError::HttpsProxyRequest => (155, "https proxy request"),
            OpenSslError::UnknownProtocol => (252, "unknown protocol"),
            OpenSslError::UnexpectedMessage => (244, "unexpected message"),
            OpenSslError::RecordTooSmall => (298, "record too small"),
            OpenSslError::Alert(_) => (0, "alert"),
        }
    }

    /// The reason's string alone (`unsupported protocol`), as the fleet summary counts it.
    pub fn reason_text(self) -> &'static str {
        self.reason().1
    }
}

/// `ERR_error_string` of the error on `w.side` in `w.openssl`'s words:
/// `error:0A000086:SSL routines::certificate verify failed` (3.x: no function names),
/// `error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed`
/// (1.1.1), `error:14090086:SSL routines:ssl3_get_server_certificate:certificate verify
/// failed` (1.0.2). The 3.x strings are checked against `openssl s_client`/`s_server` in the
/// tests; the older ones are the codes of those releases' `ssl.h`/`sslerr.h` (library 20,
/// `ERR_PACK(lib, func, reason)`). The protocol errors of 1.1.1 and 1.0.2 (`ssl3_get_record`,
/// `tls_early_post_process_client_hello`, 1.0.2's `ssl23_get_client_hello`) are not checked
/// against those releases here: none is installed.
pub fn openssl_error(e: OpenSslError, w: &Words) -> String {
    let (reason, text): (u32, String) = match e {
        OpenSslError::Alert(a) => (1000 + u32::from(a.0), openssl_alert_reason(a)),
        other => {
            let (n, t) = other.reason();
            (n, t.to_owned())
        }
    };
    // (function code, name) of the release that raised it.
    let func = |v111: (u32, &'static str), v102: (u32, &'static str)| match w.openssl {
        OpenSsl::V3 => (0, ""),
        OpenSsl::V1_1_1 => v111,
        OpenSsl::V1_0_2 => v102,
    };
    let (f, name) = match (e, w.side) {
        // ssl3_read_bytes reads the alert on either side.
        (OpenSslError::Alert(_) | OpenSslError::UnexpectedMessage, _) => {
            func((148, "ssl3_read_bytes"), (148, "ssl3_read_bytes"))
        }
        // 1.0.2's SSLv23 server method reads the first record itself.
        (
            OpenSslError::WrongVersionNumber
            | OpenSslError::HttpRequest
            | OpenSslError::HttpsProxyRequest
            | OpenSslError::UnknownProtocol
            | OpenSslError::UnsupportedProtocol,
            TlsSide::Server,
        ) if w.openssl == OpenSsl::V1_0_2 => (118, "ssl23_get_client_hello"),
        (OpenSslError::UnsupportedProtocol | OpenSslError::UnknownProtocol, _) => func(
            (521, "tls_early_post_process_client_hello"),
            (521, "tls_early_post_process_client_hello"),
        ),
        (
            OpenSslError::WrongVersionNumber
            | OpenSslError::HttpRequest
            | OpenSslError::HttpsProxyRequest
            | OpenSslError::RecordTooSmall,
            _,
        ) => func((143, "ssl3_get_record"), (143, "ssl3_get_record")),
        (_, TlsSide::Client) => func(
            (367, "tls_process_server_certificate"),
            (144, "ssl3_get_server_certificate"),
        ),
        (_, TlsSide::Server) => func(
            (380, "tls_process_client_certificate"),
            (137, "ssl3_get_client_certificate"),
        ),
    };
    let (lib, code) = match w.openssl {
        // OpenSSL 3: ERR_LIB_SSL is 20 in the top byte of a 32-bit code with 23 reason bits.
        OpenSsl::V3 => (20u32 << 23, reason),
        _ => (20u32 << 24, (f << 12) | reason),
    };
    format!("error:{:08X}:SSL routines:{name}:{text}", lib | code)
}

/// The verify callback's block for a rejected certificate (`-Error with certificate at depth
/// 1`, `issuer = `, `subject = `, `err 10:certificate has expired`), in the verdict's words.
pub(super) fn verify_block(v: &Verdict) -> Vec<String> {
    vec![
        format!("-Error with certificate at depth {}", v.depth.unwrap_or(0)),
        format!("issuer = {}", v.issuer_oneline.as_deref().unwrap_or("")),
        format!("subject = {}", v.subject_oneline.as_deref().unwrap_or("")),
        format!("err {}", v.describe()),
    ]
}

/// OpenSSL's error reason for a received alert (`sslv3 alert certificate expired`), as
/// `s_client`/`s_server` print it (the same in 1.0.2, 1.1.1 and 3.x). (The registry names
/// themselves, `certificate_expired`, are `tls::AlertDescription`'s, shared with the analyzer.)
pub(super) fn openssl_alert_reason(alert: AlertDescription) -> String {
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

// The FMC dialing a device (APPLIANCE.md, "the FMC dialing a device"). The source shows only
// the first characters of each line: `VERIFY ssl_verify_callback_in`, `SSL_renegotiate error:
// 1: er`, three `establishConnectionUtil: SSL`, `establishConnectionUtil: Fail`,
// `establishSSLConnection: Unab`, `: ret_`, `: iret`, `: Fail`, with their levels. Everything
// after those prefixes below is reconstructed: the callback's name completed as
// `ssl_verify_callback_internal`, what each line most plausibly says from its prefix (the
// handshake's failure, the verification status, the OpenSSL error, the return values of
// `SSL_connect` (-1) and `SSL_get_error` (1, SSL_ERROR_SSL)), and the peer named by address.

/// The FMC's verify callback line (INFO): the rejected certificate, or that the chain passed.
fn fmc_verify_line(v: Option<&Verdict>) -> String {
    match v {
        Some(v) => format!(
            "VERIFY ssl_verify_callback_internal: preverify_ok=0 depth={} err {} subject = {}",
            v.depth.unwrap_or(0),
            v.describe(),
            v.subject_oneline.as_deref().unwrap_or("")
        ),
        None => "VERIFY ssl_verify_callback_internal: preverify_ok=1".to_owned(),
    }
}

/// The rest of the FMC's block after `SSL_renegotiate error`.
fn fmc_dial_block(error: &str, status: &str, w: &Words) -> Vec<(Level, String)> {
    let peer = w.peer.map_or_else(|| "peer".to_owned(), |a| a.to_string());
    let ip = w
        .peer
        .map_or_else(|| "peer".to_owned(), |a| a.ip().to_string());
    vec![
        (
            Level::Warn,
            format!("establishConnectionUtil: SSL handshake failed with {peer}"),
        ),
        (
            Level::Warn,
            format!("establishConnectionUtil: SSL Verification status: {status}"),
        ),
        (
            Level::Warn,
            format!("establishConnectionUtil: SSL error: {error}"),
        ),
        (
            Level::Info,
            format!("establishConnectionUtil: Failed to establish SSL connection to {peer}"),
        ),
        (
            Level::Error,
            format!("establishSSLConnection: Unable to establish SSL connection with {ip}"),
        ),
        (
            Level::Error,
            "establishSSLConnection: ret_val = -1".to_owned(),
        ),
        (Level::Error, "establishSSLConnection: iret = 1".to_owned()),
        (
            Level::Error,
            format!("establishSSLConnection: Failed to connect to peer {ip}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(side: TlsSide, role: Role, openssl: OpenSsl) -> Words {
        Words {
            side,
            role,
            openssl,
            peer: Some("10.10.17.222:8305".parse().unwrap()),
        }
    }

    fn text(lines: &[(Level, String)]) -> Vec<String> {
        lines.iter().map(|(l, t)| format!("[{l}] {t}")).collect()
    }

    fn expired_ca() -> HandshakeFailure {
        // The judge's own verdict (on an empty chain), told what an expired InternalCA gives.
        let mut v = crate::judge::verify(&[], &[], time::OffsetDateTime::UNIX_EPOCH).overall;
        let ca = "/title=InternalCA/OU=Intrusion Management System/CN=u/O=Cisco Systems, Inc";
        v.code = VerifyCode::CertHasExpired;
        v.depth = Some(1);
        v.subject_oneline = Some(ca.into());
        v.issuer_oneline = Some(ca.into());
        HandshakeFailure::Rejected(Box::new(v))
    }

    #[test]
    fn a_dialing_device_logs_the_appliances_block_for_a_rejected_chain() {
        let f = expired_ca();
        assert_eq!(
            text(&f.log_lines(&words(TlsSide::Client, Role::Device, OpenSsl::V3))),
            vec![
                "[ERROR] -Error with certificate at depth 1",
                "[ERROR] issuer = /title=InternalCA/OU=Intrusion Management System/CN=u/O=Cisco Systems, Inc",
                "[ERROR] subject = /title=InternalCA/OU=Intrusion Management System/CN=u/O=Cisco Systems, Inc",
                "[ERROR] err 10:certificate has expired",
                "[ERROR] SSL_renegotiate error: 1: error:0A000086:SSL routines::certificate verify failed",
                "[ERROR] Connect:SSL handshake failed",
                "[WARN] SSL Verification status: certificate has expired",
            ]
        );
        assert_eq!(f.alert(), Some(AlertDescription::CERTIFICATE_EXPIRED));
        assert_eq!(f.reason(), "err 10:certificate has expired (depth 1)");
        // The same failure on a device linked with 1.1.1 or 1.0.2.
        let l = f.log_lines(&words(TlsSide::Client, Role::Device, OpenSsl::V1_1_1));
        assert_eq!(
            l[4].1,
            "SSL_renegotiate error: 1: error:1416F086:SSL routines:tls_process_server_certificate:certificate verify failed"
        );
        let l = f.log_lines(&words(TlsSide::Client, Role::Device, OpenSsl::V1_0_2));
        assert_eq!(
            l[4].1,
            "SSL_renegotiate error: 1: error:14090086:SSL routines:ssl3_get_server_certificate:certificate verify failed"
        );
    }

    #[test]
    fn the_receiver_of_an_alert_logs_openssls_alert_words() {
        let f = HandshakeFailure::AlertReceived {
            alert: AlertDescription::CERTIFICATE_EXPIRED,
        };
        assert_eq!(
            text(&f.log_lines(&words(TlsSide::Server, Role::Fmc, OpenSsl::V3))),
            vec![
                "[ERROR] SSL_renegotiate error: 1: error:0A000415:SSL routines::sslv3 alert certificate expired",
                "[ERROR] Accept:SSL handshake failed",
            ]
        );
        let l = f.log_lines(&words(TlsSide::Server, Role::Fmc, OpenSsl::V1_1_1));
        assert_eq!(
            l[0].1,
            "SSL_renegotiate error: 1: error:14094415:SSL routines:ssl3_read_bytes:sslv3 alert certificate expired"
        );
        assert_eq!(f.reason(), "alert received: 45 certificate_expired");
        // A device that dialed and was refused says its own verification was fine.
        let l = text(&f.log_lines(&words(TlsSide::Client, Role::Device, OpenSsl::V3)));
        assert_eq!(
            l[1..],
            [
                "[ERROR] Connect:SSL handshake failed",
                "[WARN] SSL Verification status: ok"
            ]
        );
    }

    #[test]
    fn the_fmc_dialing_a_device_logs_its_establish_block_with_the_sources_prefixes() {
        let f = expired_ca();
        let l = text(&f.log_lines(&words(TlsSide::Client, Role::Fmc, OpenSsl::V3)));
        // APPLIANCE.md shows each line's level and first characters: those must match.
        let prefixes = [
            "[INFO] VERIFY ssl_verify_callback_in",
            "[ERROR] SSL_renegotiate error: 1: er",
            "[WARN] establishConnectionUtil: SSL",
            "[WARN] establishConnectionUtil: SSL",
            "[WARN] establishConnectionUtil: SSL",
            "[INFO] establishConnectionUtil: Fail",
            "[ERROR] establishSSLConnection: Unab",
            "[ERROR] establishSSLConnection: ret_",
            "[ERROR] establishSSLConnection: iret",
            "[ERROR] establishSSLConnection: Fail",
        ];
        assert_eq!(l.len(), prefixes.len(), "{l:#?}");
        for (line, p) in l.iter().zip(prefixes) {
            assert!(line.starts_with(p), "{line:?} does not start with {p:?}");
        }
        assert!(l[0].contains("err 10:certificate has expired"), "{}", l[0]);
        assert!(
            l[3].ends_with("status: certificate has expired"),
            "{}",
            l[3]
        );
        assert!(l[6].ends_with("10.10.17.222"), "{}", l[6]);
    }

    #[test]
    fn openssl_error_codes_pack_as_each_release_packs_them() {
        let w = |side, o| words(side, Role::Device, o);
        assert_eq!(
            openssl_error(
                OpenSslError::VerifyFailed,
                &w(TlsSide::Server, OpenSsl::V1_1_1)
            ),
            "error:1417C086:SSL routines:tls_process_client_certificate:certificate verify failed"
        );
        assert_eq!(
            openssl_error(
                OpenSslError::VerifyFailed,
                &w(TlsSide::Server, OpenSsl::V1_0_2)
            ),
            "error:14089086:SSL routines:ssl3_get_client_certificate:certificate verify failed"
        );
        assert_eq!(
            openssl_error(
                OpenSslError::Alert(AlertDescription::UNKNOWN_CA),
                &w(TlsSide::Client, OpenSsl::V3)
            ),
            "error:0A000418:SSL routines::tlsv1 alert unknown ca"
        );
        assert_eq!(
            openssl_error(
                OpenSslError::NoPeerCertificate,
                &w(TlsSide::Server, OpenSsl::V3)
            ),
            "error:0A0000C7:SSL routines::peer did not return a certificate"
        );
    }

    #[test]
    fn a_protocol_error_is_logged_in_openssls_words_with_its_prefix() {
        let f = HandshakeFailure::Protocol {
            error: OpenSslError::UnsupportedProtocol,
            detail: "rustls: peer is incompatible: Tls12NotOfferedOrEnabled".into(),
        };
        assert_eq!(
            text(&f.log_lines(&words(TlsSide::Server, Role::Fmc, OpenSsl::V3))),
            vec![
                "[ERROR] SSL_renegotiate error: 1: error:0A000102:SSL routines::unsupported protocol",
                "[ERROR] Accept:SSL handshake failed",
            ]
        );
        assert_eq!(f.reason(), "unsupported protocol");
        let l = f.log_lines(&words(TlsSide::Server, Role::Fmc, OpenSsl::V1_1_1));
        assert_eq!(
            l[0].1,
            "SSL_renegotiate error: 1: error:14209102:SSL routines:tls_early_post_process_client_hello:unsupported protocol"
        );
        let f = HandshakeFailure::Protocol {
            error: OpenSslError::WrongVersionNumber,
            detail: String::new(),
        };
        let l = f.log_lines(&words(TlsSide::Client, Role::Device, OpenSsl::V1_1_1));
        assert_eq!(
            l[0].1,
            "SSL_renegotiate error: 1: error:1408F10B:SSL routines:ssl3_get_record:wrong version number"
        );
        assert_eq!(
            text(&l[1..]),
            [
                "[ERROR] Connect:SSL handshake failed",
                "[WARN] SSL Verification status: ok"
            ]
        );
        // The FMC dialing a peer that is not TLS: its own block, with the APPLIANCE.md prefixes.
        let l = text(&f.log_lines(&words(TlsSide::Client, Role::Fmc, OpenSsl::V3)));
        assert!(
            l[0].starts_with("[ERROR] SSL_renegotiate error: 1: er"),
            "{l:#?}"
        );
        assert!(
            l[1].starts_with("[WARN] establishConnectionUtil: SSL"),
            "{l:#?}"
        );
    }

    #[test]
    fn older_releases_number_an_invalid_ca_24() {
        let mut v = crate::judge::verify(&[], &[], time::OffsetDateTime::UNIX_EPOCH).overall;
        v.code = VerifyCode::InvalidCa;
        v.depth = Some(1);
        let f = HandshakeFailure::Rejected(Box::new(v));
        let l = f.log_lines(&words(TlsSide::Client, Role::Device, OpenSsl::V1_1_1));
        assert_eq!(l[3].1, "err 24:invalid CA certificate");
        let l = f.log_lines(&words(TlsSide::Client, Role::Device, OpenSsl::V3));
        assert_eq!(l[3].1, "err 79:invalid CA certificate");
    }
}
