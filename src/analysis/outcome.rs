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
    /// The capture does not show the end (or the start) of the handshake, or bytes of it are
    /// missing (snap length, loss before the tap) and no plaintext fatal alert was seen.
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

/// Handshake bytes of one side that the capture does not have: gaps declared before the
/// handshake was done (`net`'s [`crate::net::EventKind::Gap`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Missing {
    /// Bytes missing, whatever the cause.
    pub bytes: u64,
    /// Of those, bytes the snap length cut off ([`crate::net::GapCause::SnapLength`]).
    pub cut: u64,
}

/// What TCP knows that the TLS layer may not: who the server is, and which handshake bytes
/// were not captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Wire {
    /// The TCP server: the SYN's receiver (or the SYN-ACK's sender), else, for a connection
    /// joined mid-stream, the one end on port 8305; `None` when neither tells. The TLS roles
    /// fall back on it when no hello was read.
    pub tcp_server: Option<Side>,
    /// Per side (`Side::index`).
    pub missing: [Missing; 2],
    /// The capture's snap length (the captured length of its cut frames), once one was seen.
    pub snaplen: Option<u32>,
}

impl Wire {
    /// The TLS role of `side`: from the hellos, else from TCP (an sftunnel client is the one
    /// that connects, to port 8305).
    pub(crate) fn role(&self, p: &Progress, side: Side) -> Option<TlsSide> {
        p.role(side).or_else(|| {
            self.tcp_server.map(|s| {
                if s == side {
                    TlsSide::Server
                } else {
                    TlsSide::Client
                }
            })
        })
    }

    /// `side` lost handshake bytes.
    pub(crate) fn lost(&self, side: Side) -> bool {
        self.missing[side.index()].bytes > 0
    }

    /// "723 bytes from the server cut by the snap length of 1200 bytes", and the like for
    /// each side that lost bytes; `None` when nothing is missing.
    pub(crate) fn lost_text(&self, p: &Progress) -> Option<String> {
        let parts: Vec<String> = [Side::A, Side::B]
            .into_iter()
            .filter(|&s| self.lost(s))
            .map(|s| {
                let m = self.missing[s.index()];
                let who = self
                    .role(p, s)
                    .map_or("one side".to_string(), |r| format!("the {r}"));
                let why = match (m.cut, self.snaplen) {
                    (0, _) => "not captured".to_string(),
                    (c, Some(n)) if c == m.bytes => {
                        format!("cut by the snap length of {n} bytes")
                    }
                    (c, Some(n)) => {
                        format!("not captured, {c} of them cut by the snap length of {n} bytes")
                    }
                    (c, None) if c == m.bytes => "cut by the snap length".to_string(),
                    (c, None) => format!("not captured, {c} of them cut by the snap length"),
                };
                format!("{} bytes from {who} {why}", m.bytes)
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The outcome, its reason, and the side that ended a failed handshake. A handshake that
/// lost bytes (`wire.missing`) and shows neither a fatal alert nor its end is `Incomplete`:
/// a FIN or RST after a hole says nothing of what the hole held.
pub(crate) fn outcome(
    p: &Progress,
    close: Option<Close>,
    wire: &Wire,
) -> (Outcome, String, Option<TlsSide>) {
    let role = |s: Side| wire.role(p, s).map_or("one side", TlsSide::as_str);
    let lost = wire.lost_text(p);
    // An encrypted alert after a hole may as well be a close_notify: it decides nothing then.
    let fatal = p
        .fatal_alert
        .filter(|f| f.alert.is_some() || lost.is_none());
    if let Some(fatal) = &fatal {
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
        let by = (outcome == Outcome::Failed)
            .then(|| wire.role(p, side))
            .flatten();
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
    if let Some(lost) = lost {
        let alert = p
            .fatal_alert
            .map(|f| format!("; the {} sent an encrypted alert", role(f.side)))
            .unwrap_or_default();
        let closed = match close {
            Some(Close::Rst(s)) => format!("; then the {} reset the connection (RST)", role(s)),
            Some(Close::Fin(s)) => format!("; then the {} closed the connection (FIN)", role(s)),
            None => String::new(),
        };
        let last = p
            .latest
            .map(|(s, step)| format!("; the last message read is {}", step_name(p, s, step)))
            .unwrap_or_default();
        return (
            Outcome::Incomplete,
            format!("handshake partly not captured ({lost}){last}{alert}{closed}"),
            None,
        );
    }
    match close {
        Some(Close::Rst(s)) if started => (
            Outcome::Failed,
            format!("{} RST{latest}", role(s)),
            wire.role(p, s),
        ),
        Some(Close::Fin(s)) if started => (
            Outcome::Failed,
            format!("{} closed the connection (FIN){latest}", role(s)),
            wire.role(p, s),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Alert, AlertLevel, FatalAlert};

    /// A TLS 1.2 handshake whose ServerHello (from `B`) was the last message read.
    fn after_server_hello() -> Progress {
        let mut p = Progress {
            server: Some(Side::B),
            client_hello_from: Some(Side::A),
            ..Progress::default()
        };
        p.last = [
            Some(Step::Handshake(HandshakeType::CLIENT_HELLO)),
            Some(Step::Handshake(HandshakeType::SERVER_HELLO)),
        ];
        p.latest = Some((Side::B, Step::Handshake(HandshakeType::SERVER_HELLO)));
        p
    }

    fn cut(bytes: u64) -> Missing {
        Missing { bytes, cut: bytes }
    }

    #[test]
    fn a_fin_after_a_hole_is_incomplete_not_failed() {
        let p = after_server_hello();
        let fin = Some(Close::Fin(Side::B));
        let (o, reason, by) = outcome(&p, fin, &Wire::default());
        assert_eq!(o, Outcome::Failed, "{reason}");
        assert_eq!(by, Some(TlsSide::Server));
        let mut wire = Wire {
            snaplen: Some(1200),
            ..Wire::default()
        };
        wire.missing[Side::B.index()] = cut(723);
        wire.missing[Side::A.index()] = Missing { bytes: 20, cut: 0 };
        let (o, reason, by) = outcome(&p, fin, &wire);
        assert_eq!(o, Outcome::Incomplete);
        assert_eq!(by, None);
        assert_eq!(
            reason,
            "handshake partly not captured (20 bytes from the client not captured, 723 bytes \
             from the server cut by the snap length of 1200 bytes); the last message read is \
             ServerHello; then the server closed the connection (FIN)"
        );
    }

    #[test]
    fn an_encrypted_alert_after_a_hole_decides_nothing_a_plaintext_one_does() {
        let mut p = after_server_hello();
        p.fatal_alert = Some(FatalAlert {
            side: Side::B,
            alert: None,
            after: None,
        });
        let mut wire = Wire::default();
        wire.missing[Side::A.index()] = cut(314);
        let (o, reason, _) = outcome(&p, None, &wire);
        assert_eq!(o, Outcome::Incomplete);
        assert!(
            reason.ends_with("; the server sent an encrypted alert"),
            "{reason}"
        );
        p.fatal_alert = Some(FatalAlert {
            side: Side::B,
            alert: Some(Alert {
                level: AlertLevel::FATAL,
                description: AlertDescription::CERTIFICATE_EXPIRED,
            }),
            after: None,
        });
        let (o, reason, by) = outcome(&p, None, &wire);
        assert_eq!(o, Outcome::Failed);
        assert_eq!(reason, "server sent fatal certificate_expired");
        assert_eq!(by, Some(TlsSide::Server));
    }

    #[test]
    fn without_hellos_the_roles_are_tcps() {
        let p = Progress {
            fatal_alert: Some(FatalAlert {
                side: Side::A,
                alert: Some(Alert {
                    level: AlertLevel::FATAL,
                    description: AlertDescription(48),
                }),
                after: None,
            }),
            ..Progress::default()
        };
        let (_, reason, by) = outcome(&p, None, &Wire::default());
        assert_eq!(reason, "one side sent fatal unknown_ca");
        assert_eq!(by, None);
        let wire = Wire {
            tcp_server: Some(Side::B),
            ..Wire::default()
        };
        let (o, reason, by) = outcome(&p, None, &wire);
        assert_eq!(o, Outcome::Failed);
        assert_eq!(reason, "client sent fatal unknown_ca");
        assert_eq!(by, Some(TlsSide::Client));
    }
}
