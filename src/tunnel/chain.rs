//! The bridge from a rustls verifier to `crate::judge`: the peer's chain + our trust anchors +
//! the tunnel's clock -> accepted, or a [`VerifyFailure`] worded as OpenSSL's verify callback
//! words it on the appliance.
//!
//! Owns only the translation (DER -> `cert::CertInfo`, the TLS purpose each side checks, the
//! verdict -> code, depth, one-line names and alert). The rules themselves are `judge`'s: the
//! same ones the analyzer applies to captures, so a live tunnel and a capture of it agree.

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::cert::{self, CertInfo};
use crate::judge::{self, Policy, Purpose};

/// What our side found wrong with the peer's chain, as OpenSSL reports it in its verify callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    /// OpenSSL's `X509_V_ERR_*` number (10 = certificate has expired).
    pub code: i32,
    /// OpenSSL's text for `code`.
    pub text: String,
    /// 0 = the peer's own certificate, 1 = its issuer (the InternalCA), ...
    pub depth: usize,
    /// The failing certificate's subject and issuer, `X509_NAME_oneline` style (`/title=.../CN=...`).
    pub subject: String,
    pub issuer: String,
    /// The TLS alert OpenSSL sends for `code`.
    pub alert: u8,
}

/// The facts the tunnel keeps about a certificate it was shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// `X509_NAME_oneline` of the subject.
    pub subject: String,
    /// The subject's `title` (the FMC's or device's UUID in sftunnel certificates).
    pub title: Option<String>,
    pub not_after: OffsetDateTime,
}

/// Reads the facts of one certificate; `None` if it does not parse that far.
pub fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    facts(&cert::parse(der))
}

fn facts(c: &CertInfo) -> Option<PeerCert> {
    Some(PeerCert {
        subject: c.subject.as_ref()?.oneline(),
        title: c.title().map(str::to_owned),
        not_after: c.not_after?,
    })
}

/// Which end's certificate is being judged: OpenSSL checks a server's chain for `sslserver`
/// and a client's for `sslclient` at security level 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// The FMC, judged by a device.
    Server,
    /// A device, judged by the FMC.
    Client,
}

/// Judges `ee` + `intermediates` (as sent) against `anchors` at `at`: the accepted peer's
/// facts (parsed once, here), or the first error the way OpenSSL stops at it.
pub fn judge_chain(
    ee: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertInfo],
    at: OffsetDateTime,
    role: PeerRole,
) -> Result<Option<PeerCert>, VerifyFailure> {
    let chain: Vec<CertInfo> = std::iter::once(ee)
        .chain(intermediates)
        .map(|d| cert::parse(d))
        .collect();
    let purpose = match role {
        PeerRole::Server => Purpose::SslServer,
        PeerRole::Client => Purpose::SslClient,
    };
    let v = judge::verify_with(&chain, anchors, at, &Policy::tls(purpose)).overall;
    if v.is_ok() {
        return Ok(facts(&chain[0]));
    }
    Err(VerifyFailure {
        code: v.code.code(),
        text: v.text().to_owned(),
        depth: v.depth.unwrap_or(0),
        subject: v.subject_oneline.clone().unwrap_or_default(),
        issuer: v.issuer_oneline.clone().unwrap_or_default(),
        alert: v.alert(),
    })
}

/// The DER of a certificate's subject name (for the CA names a server sends in its
/// CertificateRequest).
pub fn subject_der(c: &CertInfo) -> Option<Vec<u8>> {
    c.subject.as_ref().map(|n| n.der().to_vec())
}

/// The chain a side presents, completed the way OpenSSL completes it from its trust store
/// (sftunnel does not set `SSL_MODE_NO_AUTO_CHAIN`): the certificate file's contents, then
/// the trust anchor that issued the last of them, unless it is already there. So the
/// InternalCA travels in the handshake as it does from the appliance.
pub fn complete_chain(
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
