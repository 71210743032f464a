//! What a TAC engineer does about a session that is a problem: one remediation line, derived
//! from the chain verdicts (OpenSSL code, depth, which sftunnel certificate it is about), the
//! alert that ended the handshake, and the roles of both ends (FMC, device, or a plain TLS
//! client/server when the certificates do not say).
//!
//! The table, first match wins:
//!
//! | what the capture shows | action | what to do |
//! |---|---|---|
//! | a verdict judged against a `--ca` anchor that is not the CA the peer sent | `rerun` | `--ca` the CA on the wire, or (it is the device's cacert.pem) copy the FMC's |
//! | 10 on the InternalCA | `renew` | renew on the FMC (generate_certs.pl / `sfdiag pki renew`), copy to the devices that were down |
//! | 10 on the FMC's or a device's certificate | `renew` | regenerate on the FMC, copy to that device (the tunnel is down) |
//! | 9 not yet valid | `clock` | the receiver's clock (NTP); else reissue |
//! | 13/14 a date OpenSSL 1.1.1+ cannot read | `renew` | reissue |
//! | 7/4 signature | `copy` | both sides on the FMC's current InternalCA: copy its cacert.pem and certificates; regenerate certificates older than it |
//! | 2/18/19/20/21/27 no path to the anchor | `copy` | the receiver trusts another CA: copy the FMC's current cacert.pem |
//! | -1 not decodable | `renew` | the sender's file is damaged: regenerate and copy |
//! | 26 purpose, 66/67/68 weak key or digest, 47-53 name constraints, 79/24/25/32 CA limits | `renew` | reissue as the receiver's OpenSSL wants it |
//! | handshake_failure/certificate_required after no client certificate | `copy` | the device lacks its certificate for this FMC: copy it |
//! | a certificate alert (42-46, 48, 49, 51) with no failed verdict | `rerun` (no `--ca`) / `copy` | judge as the sender did (`--ca` its cacert.pem) / the sender trusts another CA |
//! | protocol_version, insufficient_security, handshake_failure | `config` | the TLS versions (proxy_tls_version) and ciphers of both ends |
//! | an encrypted alert, another alert, FIN or RST during the handshake | `log` | the sender's messages log |
//!
//! Pure: facts in, a `Remedy` out; wording lives here so that JSON and text say the same.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use super::findings::{AnchorMismatch, CertsSeen, Checked, Identity};
use super::outcome::Outcome;
use crate::judge::{Verdict, VerifyCode};
use crate::sftunnel::{SubjectRole, TlsSide, rfc3339};
use crate::tls::AlertDescription;

/// The kind of thing to do, for scripts (`remedy.action` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Reissue certificates (generate_certs.pl / `sfdiag pki renew`), then copy where needed.
    Renew,
    /// Copy the FMC's current InternalCA and certificates to a device (copy_sftunnel_certs.py
    /// / `sfdiag pki copy`).
    Copy,
    /// A clock is wrong (NTP).
    Clock,
    /// TLS settings (versions, ciphers) disagree.
    Config,
    /// The capture cannot say why: the named side's messages log can.
    Log,
    /// The analysis itself needs another `--ca` to say more.
    Rerun,
}

/// One remediation line: what to do, in words a TAC engineer can act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Remedy {
    /// The kind, for scripts.
    pub action: Action,
    /// The line itself: what to run or copy, on which appliance.
    pub text: String,
}

impl fmt::Display for Remedy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One side's chain as judged: the overall verdict, the sftunnel role of the certificate it
/// is about, and an anchor that is not the CA on the wire.
#[derive(Debug, Clone)]
pub(super) struct JudgedChain {
    pub verdict: Verdict,
    pub at_fault: Option<SubjectRole>,
    pub mismatch: Option<AnchorMismatch>,
}

/// One end of the session.
#[derive(Debug, Clone, Copy)]
pub(super) struct End<'a> {
    pub side: TlsSide,
    pub identity: Option<&'a Identity>,
    pub certs: CertsSeen,
    pub chain: Option<&'a JudgedChain>,
}

impl End<'_> {
    /// "the FMC", "the device c8d5d5c6-...", or "the client".
    fn who(&self) -> String {
        match self.identity.map(|i| (i.role, i.uuid.as_deref())) {
            Some((SubjectRole::Fmc, _)) => "the FMC".to_string(),
            Some((SubjectRole::Ftd, Some(uuid))) => format!("the device {uuid}"),
            Some((SubjectRole::Ftd, None)) => "the device".to_string(),
            _ => format!("the {}", self.side),
        }
    }

    /// Where this end logs its side of the handshake.
    fn log(&self) -> String {
        match self.identity.map(|i| i.role) {
            Some(SubjectRole::Fmc) => format!("{}'s /var/log/messages", self.who()),
            Some(SubjectRole::Ftd) => format!("{}'s /ngfw/var/log/messages", self.who()),
            _ => format!(
                "{}'s log (an FMC: /var/log/messages, a device: /ngfw/var/log/messages)",
                self.who()
            ),
        }
    }

    /// Where this end keeps the CA it trusts.
    fn cacert(&self) -> &'static str {
        match self.identity.map(|i| i.role) {
            Some(SubjectRole::Fmc) => "/etc/sf/ca_root/cacert.pem",
            Some(SubjectRole::Ftd) => "/var/sf/peers/<FMC-UUID>/cacert.pem",
            _ => "cacert.pem (FMC: /etc/sf/ca_root/, device: /var/sf/peers/<FMC-UUID>/)",
        }
    }
}

/// What the session amounted to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts<'a> {
    pub outcome: Outcome,
    /// The side whose alert, FIN or RST ended a failed handshake.
    pub failed_by: Option<TlsSide>,
    /// The fatal alert and its sender (`None` description: encrypted).
    pub fatal: Option<(TlsSide, Option<AlertDescription>)>,
    /// A fatal alert was seen, even one whose sender's role neither the hellos nor TCP tell
    /// (then `fatal` is `None`).
    pub fatal_seen: bool,
    pub checked: Checked,
    pub certificate_requested: bool,
    pub server: End<'a>,
    pub client: End<'a>,
}

impl<'a> Facts<'a> {
    fn end(&self, side: TlsSide) -> End<'a> {
        match side {
            TlsSide::Server => self.server,
            TlsSide::Client => self.client,
        }
    }

    fn failed_chain(&self) -> Option<(End<'a>, &'a JudgedChain)> {
        // The chain the fatal alert answered first, then the server's, then the client's.
        let first = self.fatal.map_or(TlsSide::Server, |(s, _)| s.peer());
        [first, first.peer()].into_iter().find_map(|s| {
            let e = self.end(s);
            e.chain.filter(|c| !c.verdict.is_ok()).map(|c| (e, c))
        })
    }
}

/// Registry values `tls` has no name for yet.
const PROTOCOL_VERSION: AlertDescription = AlertDescription(70);
const INSUFFICIENT_SECURITY: AlertDescription = AlertDescription(71);

const RENEW: &str = "generate_certs.pl, or `sfdiag pki renew`";
const COPY: &str = "copy_sftunnel_certs.py, or `sfdiag pki copy`";

fn day(t: Option<OffsetDateTime>) -> String {
    t.map_or("-".to_string(), |t| rfc3339(&t))
}

/// The remediation for a session, `None` when it is no problem.
pub(super) fn remedy(f: &Facts<'_>) -> Option<Remedy> {
    if let Some((sender, chain)) = f.failed_chain() {
        return Some(for_verdict(f, sender, chain));
    }
    if f.outcome != Outcome::Failed {
        return None;
    }
    let r = match f.fatal {
        Some((by, Some(alert))) => for_alert(f, f.end(by), alert),
        Some((by, None)) => Remedy {
            action: Action::Log,
            text: format!(
                "{} ended the handshake with an encrypted alert (its content cannot be seen): \
                 read {} (its sftunnel:sf_ssl lines at the session's time)",
                f.end(by).who(),
                f.end(by).log()
            ),
        },
        None if f.fatal_seen => Remedy {
            action: Action::Log,
            text: "one end ended the handshake with a fatal alert, and neither the hellos nor \
                   the TCP handshake in the capture tell which: read both ends' logs (an FMC: \
                   /var/log/messages, a device: /ngfw/var/log/messages; their sftunnel:sf_ssl \
                   lines at the session's time)"
                .to_string(),
        },
        None => {
            let by = f.end(f.failed_by.unwrap_or(TlsSide::Server));
            Remedy {
                action: Action::Log,
                text: format!(
                    "{} closed the connection during the handshake without an alert: read {} \
                     (its sftunnel:sf_ssl lines at the session's time)",
                    by.who(),
                    by.log()
                ),
            }
        }
    };
    Some(r)
}

/// How to reissue a certificate and how to give a side the right CA: the appliance's steps
/// for sftunnel, plain words for any other TLS.
struct How {
    sftunnel: bool,
    renew: String,
    copy_ca: String,
}

impl How {
    fn of(f: &Facts<'_>, sender: End<'_>, receiver: End<'_>, at_fault: Option<SubjectRole>) -> How {
        let sftunnel = f.server.identity.is_some()
            || f.client.identity.is_some()
            || at_fault.is_some_and(|r| r != SubjectRole::Other);
        if sftunnel {
            How {
                sftunnel,
                renew: format!(
                    "regenerate the certificates on the FMC ({RENEW}) and copy them to the devices that were down ({COPY})"
                ),
                copy_ca: format!(
                    "copy the FMC's current /etc/sf/ca_root/cacert.pem to {} ({COPY})",
                    receiver.who()
                ),
            }
        } else {
            How {
                sftunnel,
                renew: format!("reissue it from its CA and install it on {}", sender.who()),
                copy_ca: format!(
                    "add the CA that issued it to {}'s trusted CAs",
                    receiver.who()
                ),
            }
        }
    }
}

/// A chain whose verdict fails, sent by `sender` and judged as its peer would.
fn for_verdict(f: &Facts<'_>, sender: End<'_>, chain: &JudgedChain) -> Remedy {
    let receiver = f.end(sender.side.peer());
    let v = &chain.verdict;
    let how = How::of(f, sender, receiver, chain.at_fault);
    if let Some(m) = &chain.mismatch {
        return Remedy {
            action: Action::Rerun,
            text: format!(
                "the --ca anchor is not the CA {} sent (--ca: sha256 {}, notAfter {}; on the wire: \
                 sha256 {}, notAfter {}): this verdict is about the --ca file; run again with \
                 --ca set to the CA {} trusts, or, if --ca is what it trusts ({}), it trusts \
                 another CA than the one on the wire: {}",
                sender.who(),
                short(&m.anchor.sha256),
                day(m.anchor.not_after),
                short(&m.sent.sha256),
                day(m.sent.not_after),
                receiver.who(),
                receiver.cacert(),
                how.copy_ca,
            ),
        };
    }
    let depth = v.depth.unwrap_or(0);
    let cert = match chain.at_fault {
        Some(SubjectRole::InternalCa) => "the InternalCA".to_string(),
        Some(SubjectRole::Fmc) => "the FMC's sftunnel certificate".to_string(),
        Some(SubjectRole::Ftd) => format!("{}'s sftunnel certificate", sender.who()),
        _ => format!(
            "the certificate at depth {depth} ({})",
            v.subject_oneline.as_deref().unwrap_or("-")
        ),
    };
    let (action, text) = match v.code {
        VerifyCode::CertHasExpired => match chain.at_fault {
            Some(SubjectRole::InternalCa) => (
                Action::Renew,
                format!(
                    "the InternalCA expired at {}: renew it on the FMC ({RENEW}), which pushes the \
                     new certificates to the devices still connected; then copy them to the \
                     devices that were down ({COPY}; FAILED_PUSH lists them)",
                    day(v.not_after)
                ),
            ),
            Some(SubjectRole::Ftd) => (
                Action::Renew,
                format!(
                    "{cert} expired at {}: regenerate the certificates on the FMC ({RENEW}); \
                     this device's tunnel is down, so copy them to it ({COPY})",
                    day(v.not_after)
                ),
            ),
            _ => (
                Action::Renew,
                format!("{cert} expired at {}: {}", day(v.not_after), how.renew),
            ),
        },
        VerifyCode::CertNotYetValid => (
            Action::Clock,
            format!(
                "{cert} is valid only from {}, after the time judged ({}): check the clock \
                 (NTP) of {}; if it is right, the certificate was issued ahead of time: {}",
                day(v.not_before),
                rfc3339(&v.at),
                receiver.who(),
                how.renew
            ),
        ),
        VerifyCode::ErrorInCertNotBeforeField | VerifyCode::ErrorInCertNotAfterField => (
            Action::Renew,
            format!(
                "a date of {cert} is not in RFC 5280's form, which OpenSSL 1.1.1 and later \
                 refuse: {}",
                how.renew
            ),
        ),
        VerifyCode::CertSignatureFailure | VerifyCode::UnableToDecryptCertSignature => (
            Action::Copy,
            match how.sftunnel {
                false => format!(
                    "{cert} was not signed by the key of the CA of that name {} trusts: it holds \
                     another CA under the same name than the one that issued it: {}",
                    receiver.who(),
                    how.copy_ca
                ),
                true => format!(
                    "{cert} was not signed by the InternalCA {} trusts (same name, another key: \
                     the InternalCA was regenerated after it was issued): put both sides on the \
                     FMC's current InternalCA - copy its /etc/sf/ca_root/cacert.pem and the \
                     certificates it issued to the device ({COPY}); certificates older than \
                     that InternalCA are regenerated on the FMC ({RENEW})",
                    receiver.who()
                ),
            },
        ),
        VerifyCode::UnableToGetIssuerCertLocally
        | VerifyCode::UnableToGetIssuerCert
        | VerifyCode::SelfSignedCertInChain
        | VerifyCode::DepthZeroSelfSignedCert
        | VerifyCode::UnableToVerifyLeafSignature
        | VerifyCode::CertUntrusted => (
            Action::Copy,
            format!(
                "the chain {} sent does not lead to the --ca anchor (issuer {}): if --ca is \
                 what {} trusts ({}), it trusts another CA than the one that issued this \
                 chain: {}; otherwise run again with the right --ca",
                sender.who(),
                v.issuer_oneline.as_deref().unwrap_or("-"),
                receiver.who(),
                receiver.cacert(),
                how.copy_ca
            ),
        ),
        VerifyCode::NotDecoded => (
            Action::Renew,
            format!(
                "a certificate {} sent cannot be decoded ({}), which an OpenSSL peer answers \
                 with decode_error: the certificate file is damaged; {}",
                sender.who(),
                v.decode_error
                    .as_deref()
                    .map(|t| t.trim_start_matches("certificate could not be decoded: "))
                    .unwrap_or("-"),
                how.renew
            ),
        ),
        VerifyCode::InvalidPurpose => (
            Action::Renew,
            format!(
                "{cert} lacks the TLS {} purpose (extendedKeyUsage) {} checks: {}",
                sender.side,
                receiver.who(),
                how.renew
            ),
        ),
        VerifyCode::EeKeyTooSmall | VerifyCode::CaKeyTooSmall | VerifyCode::CaMdTooWeak => (
            Action::Renew,
            format!(
                "{cert} has a key or signature digest too weak for {}'s OpenSSL security level \
                 (err {}): {}, with an RSA 2048-bit key and SHA-256",
                receiver.who(),
                v.code.code(),
                how.renew
            ),
        ),
        VerifyCode::PermittedViolation
        | VerifyCode::ExcludedViolation
        | VerifyCode::SubtreeMinmax
        | VerifyCode::UnsupportedConstraintType
        | VerifyCode::UnsupportedConstraintSyntax
        | VerifyCode::UnsupportedNameSyntax => (
            Action::Renew,
            format!(
                "{cert} breaks the name constraints of a CA above it (err {}): reissue it \
                 with names inside them, or from a CA without them",
                v.describe()
            ),
        ),
        _ => (
            Action::Log,
            format!(
                "err {} at depth {depth} on {cert}: {} refuses this chain; read {} \
                 (its sftunnel:sf_ssl lines at the session's time)",
                v.describe(),
                receiver.who(),
                receiver.log()
            ),
        ),
    };
    Remedy { action, text }
}

/// A plaintext fatal alert from `by`, with no failed verdict to explain it.
fn for_alert(f: &Facts<'_>, by: End<'_>, alert: AlertDescription) -> Remedy {
    let other = f.end(by.side.peer());
    let no_client_cert = matches!(f.client.certs, CertsSeen::Empty | CertsSeen::NotSent);
    if by.side == TlsSide::Server
        && f.certificate_requested
        && no_client_cert
        && matches!(
            alert,
            AlertDescription::HANDSHAKE_FAILURE | AlertDescription::CERTIFICATE_REQUIRED
        )
    {
        return Remedy {
            action: Action::Copy,
            text: format!(
                "{} asked for a client certificate and {} sent none: the device lacks its \
                 sftunnel-cert.pem/sftunnel-key.pem for this FMC (/var/sf/peers/<FMC-UUID>/): \
                 copy them ({COPY})",
                by.who(),
                other.who()
            ),
        };
    }
    let about_cert = alert.is_about_certificate()
        || alert == AlertDescription::DECRYPT_ERROR
        || alert == AlertDescription::ACCESS_DENIED;
    if about_cert && other.certs == CertsSeen::Sent {
        let why = match alert {
            AlertDescription::CERTIFICATE_EXPIRED => {
                "an expired certificate by its clock, often the InternalCA it holds"
            }
            AlertDescription::UNKNOWN_CA => "an issuer it does not trust",
            AlertDescription::DECRYPT_ERROR => {
                "a signature that does not verify: an InternalCA regenerated under the same name"
            }
            AlertDescription::BAD_CERTIFICATE => {
                "among others a certificate not yet valid by its clock"
            }
            _ => "a certificate it refuses",
        };
        return match f.checked {
            Checked::Dates => Remedy {
                action: Action::Rerun,
                text: format!(
                    "{} refused {}'s certificate ({alert}: {why}); judge the chain as it did: \
                     run again with --ca set to its {}",
                    by.who(),
                    other.who(),
                    by.cacert()
                ),
            },
            Checked::Chain => Remedy {
                action: Action::Copy,
                text: format!(
                    "{} refused {}'s certificate ({alert}: {why}) although the chain verifies \
                     against --ca: it holds another CA than --ca (copy the FMC's current \
                     /etc/sf/ca_root/cacert.pem to it, {COPY}) or its clock differs (NTP)",
                    by.who(),
                    other.who()
                ),
            },
        };
    }
    match alert {
        PROTOCOL_VERSION | INSUFFICIENT_SECURITY | AlertDescription::HANDSHAKE_FAILURE => Remedy {
            action: Action::Config,
            text: format!(
                "{} found no TLS version or cipher suite it shares with {} ({alert}): align \
                 the versions (sftunnel.conf proxy_tls_version: TLSv1.2 before 7.6, TLSv1.3 \
                 from 7.6) and the ciphers of both ends",
                by.who(),
                other.who()
            ),
        },
        _ => Remedy {
            action: Action::Log,
            text: format!(
                "{} ended the handshake with {alert}: read {} (its sftunnel:sf_ssl lines at the \
                 session's time)",
                by.who(),
                by.log()
            ),
        },
    }
}

/// The first 16 hex digits of a SHA-256: enough to tell two certificates apart by eye.
fn short(sha256: &str) -> &str {
    sha256.get(..16).unwrap_or(sha256)
}
