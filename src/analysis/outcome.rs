//! A session's outcome and the one-line reason a TAC engineer reads first: from what the TLS
//! layer saw (`tls::Progress`) and how the TCP connection ended.
//!
//! Pure: no I/O, no clock, no certificate knowledge (chain verdicts are appended by the caller).

use serde::Serialize;

use crate::sftunnel::TlsSide;
use crate::tls::{AlertDescription, HandshakeType, Progress, Side, Step};

/// How a TLS session ended up, as far as the capture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both sides sent ChangeCipherSpec and Finished.
    Established,
    /// A fatal alert, or a FIN/RST before the handshake finished.
    Failed,
    /// The capture does not show the end (or the start) of the handshake.
    Incomplete,
    /// TLS 1.3 (or a draft): the certificates were encrypted, the result cannot be seen.
    EncryptedCertificates,
}

impl Outcome {
    /// The JSON `outcome` (CLI.md).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Established => "established",
            Outcome::Failed => "failed",
            Outcome::Incomplete => "incomplete",
            Outcome::EncryptedCertificates => "encrypted_certificates",
        }
    }
}

/// How TCP ended, first of either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// A FIN from this side (`A`: the TCP client).
    Fin(Side),
    /// A RST from this side.
    Rst(Side),
}

/// The outcome, its reason, and the side that ended a failed handshake.
pub(crate) fn outcome(p: &Progress, close: Option<Close>) -> (Outcome, String, Option<TlsSide>) {
    let role = |s: Side| p.role(s).map_or("one side", TlsSide::as_str);
    if let Some(fatal) = &p.fatal_alert {
        let side = fatal.side;
        let what = match fatal.alert {
            Some(a) => format!("{} {}", a.level, a.description),
            None => "an encrypted alert".to_string(),
        };
        let peer = side.other();
        // handshake_failure answers a missing client certificate; decrypt_error is what OpenSSL
        // sends for a certificate signature that does not verify (before the peer's Finished).
        let cert_alert = fatal.alert.is_some_and(|a| {
            a.description.is_about_certificate()
                || a.description == AlertDescription::HANDSHAKE_FAILURE
                || (a.description == AlertDescription::DECRYPT_ERROR
                    && !p.change_cipher_spec[peer.index()])
        });
        let post = if p.post_handshake_certificate[peer.index()] {
            "post-handshake "
        } else {
            ""
        };
        let after = match p.certificates[peer.index()] {
            Some(0) if cert_alert => format!(" after an empty {} {post}Certificate", role(peer)),
            Some(_) if cert_alert => format!(" after {} {post}Certificate", role(peer)),
            _ => fatal
                .after
                .map(|s| format!(" after {}", step_name(p, peer, s)))
                .unwrap_or_default(),
        };
        // TLS 1.3 (decrypted): a client is done at its Finished, before the server has judged
        // its certificate, and post-handshake authentication comes later still: a certificate
        // alert there is the tunnel failing, not an established session closing.
        let late_rejection = p.is_tls13() && cert_alert;
        let outcome = if p.done && !late_rejection {
            Outcome::Established
        } else {
            Outcome::Failed
        };
        let by = (outcome == Outcome::Failed).then(|| p.role(side)).flatten();
        return (outcome, format!("{} sent {what}{after}", role(side)), by);
    }
    if p.done {
        let resumed = p.certificates == [None, None];
        let mut reason = if resumed {
            "handshake completed (session resumed, no certificates)"
        } else {
            "handshake completed"
        }
        .to_string();
        reason += &left_tls(p);
        return (Outcome::Established, reason, None);
    }
    let decrypted = p.decryption.decrypted.contains(&true);
    if p.is_tls13() && p.server.is_some() && !retry_only(p) && !decrypted {
        let v = p.version.map(|v| v.to_string()).unwrap_or_default();
        return (
            Outcome::EncryptedCertificates,
            format!("{v} negotiated: certificates are encrypted{}", left_tls(p)),
            None,
        );
    }
    let latest = p
        .latest
        .map(|(s, step)| format!(" after {}", step_name(p, s, step)))
        .unwrap_or_default();
    let started = p.client_hello_from.is_some() || p.server.is_some();
    match close {
        Some(Close::Rst(s)) if started => (
            Outcome::Failed,
            format!("{} RST{latest}", role(s)),
            p.role(s),
        ),
        Some(Close::Fin(s)) if started => (
            Outcome::Failed,
            format!("{} closed the connection (FIN){latest}", role(s)),
            p.role(s),
        ),
        _ if p.latest.is_none() => (Outcome::Incomplete, "no TLS message seen".to_string(), None),
        _ if !started => (
            Outcome::Incomplete,
            "handshake not in the capture (it began before the capture started)".to_string(),
            None,
        ),
        _ => (Outcome::Incomplete, format!("capture ends{latest}"), None),
    }
}

/// `; then the client and the server closed TLS ...` when the session went back to cleartext
/// (FTP's CCC), else nothing.
fn left_tls(p: &Progress) -> String {
    let name = |s: Side| p.role(s).map_or("one side", TlsSide::as_str);
    let (what, alerts) = match p.left_tls.map(|o| o.is_some()) {
        [false, false] => return String::new(),
        [true, true] => {
            let (first, second) = match p.server {
                Some(Side::A) => (Side::B, Side::A),
                _ => (Side::A, Side::B),
            };
            (
                format!("the {} and the {}", name(first), name(second)),
                "encrypted alerts",
            )
        }
        [a, _] => {
            let s = if a { Side::A } else { Side::B };
            (format!("the {}", name(s)), "an encrypted alert")
        }
    };
    format!("; then {what} closed TLS ({alerts}) and went on in cleartext, as FTP does after CCC")
}

/// A HelloRetryRequest was the last word from the server: TLS 1.3 was asked for, not agreed.
fn retry_only(p: &Progress) -> bool {
    p.server.is_some_and(|s| {
        p.last[s.index()] == Some(Step::Handshake(HandshakeType::HELLO_RETRY_REQUEST))
    })
}

/// "ServerHelloDone" names its sender already; "Certificate" or "Finished" needs the role.
fn step_name(p: &Progress, side: Side, step: Step) -> String {
    let implies_role = matches!(
        step,
        Step::Handshake(
            HandshakeType::CLIENT_HELLO
                | HandshakeType::SERVER_HELLO
                | HandshakeType::HELLO_RETRY_REQUEST
                | HandshakeType::SERVER_KEY_EXCHANGE
                | HandshakeType::CERTIFICATE_REQUEST
                | HandshakeType::SERVER_HELLO_DONE
                | HandshakeType::CLIENT_KEY_EXCHANGE
                | HandshakeType::CERTIFICATE_VERIFY
                | HandshakeType::NEW_SESSION_TICKET
        )
    );
    match p.role(side) {
        Some(r) if !implies_role => format!("{} {step}", r.as_str()),
        _ => step.to_string(),
    }
}
