//! The bridge from a rustls verifier to `crate::judge`: the peer's chain + our trust anchors +
//! the tunnel's clock -> accepted, or the judge's own [`Verdict`] on it, which the log words as
//! OpenSSL's verify callback does on the appliance (code, depth, one-line names, alert).
//!
//! Owns only the translation (DER -> `cert::CertInfo`, the peer's facts, the chain a side
//! presents). The rules, the TLS purpose each side checks included, are `judge`'s: the same
//! ones the analyzer applies to captures, so a live tunnel and a capture of it agree.

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::cert::{self, CertInfo};
use crate::judge::{self, Policy, Verdict};
use crate::sftunnel::TlsSide;

/// The facts the tunnel keeps about a certificate it was shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// `X509_NAME_oneline` of the subject.
    pub subject: String,
    /// The subject's `title` (the FMC's or device's UUID in sftunnel certificates).
    pub title: Option<String>,
    /// The certificate's notAfter.
    pub not_after: OffsetDateTime,
}

/// Reads the facts of one certificate; `None` if it does not parse that far.
pub(super) fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    facts(&cert::parse(der))
}

/// The facts of an already decoded certificate; `None` if it lacks a subject or notAfter.
pub(crate) fn facts(c: &CertInfo) -> Option<PeerCert> {
    Some(PeerCert {
        subject: c.subject.as_ref()?.oneline(),
        title: c.title().map(str::to_owned),
        not_after: c.not_after?,
    })
}

/// Judges `ee` + `intermediates` (as sent by the `peer` end: the server's when a device
/// judges the FMC) against `anchors` at `at`: the accepted peer's facts (parsed once, here),
/// or the judge's verdict on the first error, where OpenSSL stops.
pub(super) fn judge_chain(
    ee: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertInfo],
    at: OffsetDateTime,
    peer: TlsSide,
) -> Result<Option<PeerCert>, Box<Verdict>> {
    let chain: Vec<CertInfo> = std::iter::once(ee)
        .chain(intermediates)
        .map(|d| cert::parse(d))
        .collect();
    let v = judge::verify_with(&chain, anchors, at, &Policy::for_peer(peer)).overall;
    if v.is_ok() {
        return Ok(facts(&chain[0]));
    }
    Err(Box::new(v))
}

/// The DER of a certificate's subject name (for the CA names a server sends in its
/// CertificateRequest).
pub(super) fn subject_der(c: &CertInfo) -> Option<Vec<u8>> {
    c.subject.as_ref().map(|n| n.der().to_vec())
}

/// The chain a side presents, completed the way OpenSSL completes it from its trust store
/// (sftunnel does not set `SSL_MODE_NO_AUTO_CHAIN`): the certificate file's contents, then
/// the trust anchor that issued the last of them, unless it is already there. So the
/// InternalCA travels in the handshake as it does from the appliance.
pub(super) fn complete_chain(
    chain: &[CertificateDer<'static>],
    anchors: &[CertificateDer<'static>],
) -> Vec<CertificateDer<'static>> {
    let mut out = chain.to_vec();
    let Some(last) = chain.last().map(|d| cert::parse(d)) else {
        return out;
    };
    let Some(issuer) = last.issuer.as_ref() else {
        return out;
    };
    if last.self_issued {
        return out;
    }
    if let Some(a) = anchors.iter().find(|a| {
        cert::parse(a)
            .subject
            .as_ref()
            .is_some_and(|s| s.matches(issuer))
    }) && !out.contains(a)
    {
        out.push(a.clone());
    }
    out
}
