//! The bridge from a rustls verifier to a certificate verdict: the peer's chain + our trust
//! anchors + the tunnel's clock -> accepted, or a [`VerifyFailure`] worded as OpenSSL would.
//!
//! INTERIM: until `crate::judge` lands this module judges by itself (path by issuer name, RSA
//! signatures, validity top-down like OpenSSL's `internal_verify`) so the tunnel can be built
//! and tested; the tunnel only depends on [`judge_chain`], [`PeerCert`] and [`VerifyFailure`].

use ::time::OffsetDateTime;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

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

/// The facts the tunnel keeps about an accepted peer certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCert {
    /// `X509_NAME_oneline` of the subject.
    pub subject: String,
    /// The subject's `title` (the FMC's or device's UUID in sftunnel certificates).
    pub title: Option<String>,
    pub not_after: OffsetDateTime,
}

/// Reads the facts of one certificate; `None` if it does not parse.
pub fn peer_cert(der: &[u8]) -> Option<PeerCert> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    Some(PeerCert {
        subject: oneline(c.subject()),
        title: c
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type() == &x509_parser::oid_registry::OID_X509_TITLE)
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned),
        not_after: c.validity().not_after.to_datetime(),
    })
}

/// Judges `ee` + `intermediates` against `anchors` at `at`, stopping at the first error the
/// way OpenSSL does with `-verify_return_error` (top of the chain first).
pub fn judge_chain(
    ee: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'_>],
    at: OffsetDateTime,
) -> Result<(), VerifyFailure> {
    let Some(leaf) = parse(ee) else {
        return Err(failure(0, 0, "", "", "unable to decode certificate"));
    };
    // Build the path by issuer name: leaf, then intermediates, then one anchor.
    let mut chain = vec![leaf];
    let pool: Vec<X509Certificate<'_>> = intermediates.iter().filter_map(|d| parse(d)).collect();
    let roots: Vec<X509Certificate<'_>> = anchors.iter().filter_map(|d| parse(d)).collect();
    let mut anchored = false;
    while chain.len() < 10 {
        let top = chain.last().expect("chain starts with the leaf");
        if let Some(r) = roots.iter().find(|r| r.subject() == top.issuer()) {
            if r.as_ref() != top.as_ref() {
                chain.push(r.clone());
            }
            anchored = true;
            break;
        }
        if top.subject() == top.issuer() {
            let code = if chain.len() == 1 { 18 } else { 19 };
            let d = chain.len() - 1;
            return Err(fail_at(code, d, &chain[d]));
        }
        match pool.iter().find(|c| c.subject() == top.issuer()) {
            Some(c) => chain.push(c.clone()),
            None => break,
        }
    }
    if !anchored {
        let d = chain.len() - 1;
        return Err(fail_at(20, d, &chain[d]));
    }
    for d in (0..chain.len()).rev() {
        let c = &chain[d];
        if d + 1 < chain.len() && !signed_by(c, &chain[d + 1]) {
            return Err(fail_at(7, d, c));
        }
        let v = c.validity();
        if at < v.not_before.to_datetime() {
            return Err(fail_at(9, d, c));
        }
        if at > v.not_after.to_datetime() {
            return Err(fail_at(10, d, c));
        }
    }
    Ok(())
}

fn signed_by(c: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    use aws_lc_rs::signature;
    use x509_parser::oid_registry as o;
    let alg: &dyn signature::VerificationAlgorithm = match &c.signature_algorithm.algorithm {
        a if a == &o::OID_PKCS1_SHA256WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA256,
        a if a == &o::OID_PKCS1_SHA384WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA384,
        a if a == &o::OID_PKCS1_SHA512WITHRSA => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return false,
    };
    signature::UnparsedPublicKey::new(alg, &issuer.public_key().subject_public_key.data)
        .verify(c.tbs_certificate.as_ref(), &c.signature_value.data)
        .is_ok()
}

fn fail_at(code: i32, depth: usize, c: &X509Certificate<'_>) -> VerifyFailure {
    failure(
        code,
        depth,
        &oneline(c.subject()),
        &oneline(c.issuer()),
        verify_text(code),
    )
}

fn failure(code: i32, depth: usize, subject: &str, issuer: &str, text: &str) -> VerifyFailure {
    VerifyFailure {
        code,
        text: text.to_owned(),
        depth,
        subject: subject.to_owned(),
        issuer: issuer.to_owned(),
        alert: alert_for(code),
    }
}

fn verify_text(code: i32) -> &'static str {
    match code {
        7 => "certificate signature failure",
        9 => "certificate is not yet valid",
        10 => "certificate has expired",
        18 => "self-signed certificate",
        19 => "self-signed certificate in certificate chain",
        20 => "unable to get local issuer certificate",
        21 => "unable to verify the first certificate",
        _ => "unspecified certificate verification error",
    }
}

fn alert_for(code: i32) -> u8 {
    match code {
        7 => 51,
        9 => 42,
        10 => 45,
        18..=21 => 48,
        _ => 46,
    }
}

/// `X509_NAME_oneline`: `/title=InternalCA/OU=Intrusion Management System/CN=.../O=...`.
fn oneline(n: &X509Name<'_>) -> String {
    use x509_parser::oid_registry as o;
    let mut s = String::new();
    for a in n.iter_attributes() {
        let t = a.attr_type();
        let key = if t == &o::OID_X509_COMMON_NAME {
            "CN".to_owned()
        } else if t == &o::OID_X509_ORGANIZATION_NAME {
            "O".to_owned()
        } else if t == &o::OID_X509_ORGANIZATIONAL_UNIT {
            "OU".to_owned()
        } else if t == &o::OID_X509_TITLE {
            "title".to_owned()
        } else if t == &o::OID_X509_GENERATION_QUALIFIER {
            "generationQualifier".to_owned()
        } else if t == &o::OID_X509_COUNTRY_NAME {
            "C".to_owned()
        } else {
            t.to_id_string()
        };
        s.push('/');
        s.push_str(&key);
        s.push('=');
        s.push_str(a.as_str().unwrap_or("<binary>"));
    }
    s
}

/// The DER of a certificate's subject name (for the CA names a server sends in its
/// CertificateRequest).
pub fn subject_der(der: &[u8]) -> Option<Vec<u8>> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    Some(c.subject().as_raw().to_vec())
}

fn parse<'a>(d: &'a [u8]) -> Option<X509Certificate<'a>> {
    X509Certificate::from_der(d).map(|(_, c)| c).ok()
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
    let Some(last) = chain.last().and_then(|d| parse(d)) else {
        return out;
    };
    if last.subject() == last.issuer() {
        return out;
    }
    if let Some(a) = anchors
        .iter()
        .find(|a| parse(a).is_some_and(|c| c.subject() == last.issuer()))
        && !out.contains(a)
    {
        out.push(a.clone());
    }
    out
}
