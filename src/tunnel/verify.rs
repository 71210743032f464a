//! rustls certificate verifiers for both ends of the tunnel, judging the peer's chain the way
//! OpenSSL does on the appliance.
//!
//! Owns the glue between rustls and the chain judge: the FTD side's `ServerCertVerifier`
//! (checks the FMC's chain and, like sftunnel, not the host name: the FMC certificate says
//! CN=localhost and has no SAN) and the FMC side's `ClientCertVerifier` (client certificates
//! required). Both judge at the time rustls hands them, which comes from the tunnel's
//! [`Clock`](super::clock::Clock), so `--at` moves verification with it. webpki alone would
//! accept an expired InternalCA (it never checks a trust anchor's own dates); the judge
//! rejects it with OpenSSL's code 10 at depth 1.
//!
//! rustls picks the alert it sends from the error a verifier returns; [`rustls_error_for_alert`]
//! chooses the error whose alert is the one OpenSSL sends for the verify code (not-yet-valid:
//! 42 `bad_certificate`, where rustls' own `NotValidYet` would send 45). The OpenSSL code and
//! depth do not fit in a rustls error, so the verifier also leaves the judge's [`Verdict`] in a
//! task-local slot that [`capture_verify`] reads back for the log.
//!
//! A TLS 1.2 client that sends no certificate never reaches a verifier: rustls would answer
//! `certificate_required` (116, a TLS 1.3 alert) where OpenSSL sends `handshake_failure` (40),
//! so the server's handshake (`handshake::accept`) catches that empty Certificate message
//! before rustls reads it and sends OpenSSL's alert itself. In TLS 1.3 OpenSSL 3 sends 116
//! too, and rustls' own alert stands.
//!
//! Handshake signatures (ServerKeyExchange, CertificateVerify) are checked with the key our
//! own certificate parser reads from the peer's leaf, not through webpki's parse of it: webpki
//! refuses a v1 leaf or an unknown critical extension before any signature is looked at, while
//! OpenSSL accepts the first and judges the second (err 34) — and the judge has already said
//! what OpenSSL would by the time a signature is checked.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{AlgorithmIdentifier, CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerMisbehaved,
    SignatureScheme,
};

use super::chain::{self, PeerCert};
use super::clock::from_unix_time;
use crate::cert::{self, CertInfo, Curve, KeyKind};
use crate::judge::Verdict;
use crate::sftunnel::TlsSide;
use crate::tls::AlertDescription;

/// What the verifier concluded about the peer's chain in one handshake: the accepted peer's
/// facts, or why it was refused.
pub(super) type Judged = Result<Option<PeerCert>, Box<Verdict>>;

/// What one handshake told the verifier and the certificate resolver.
#[derive(Debug, Default)]
pub struct Seen {
    /// The verifier's conclusion, if it ran.
    pub judged: Option<Judged>,
    /// The peer asked for our certificate (a server's CertificateRequest; the device side
    /// notes it, the FMC side always asks).
    pub certificate_requested: bool,
}

tokio::task_local! {
    static VERIFY_SLOT: RefCell<Seen>;
}

/// Runs `f` (a handshake) and returns its output with what a verifier concluded while it ran,
/// if one ran, and whether the peer asked for our certificate.
pub async fn capture_verify<F: Future>(f: F) -> (F::Output, Seen) {
    VERIFY_SLOT
        .scope(RefCell::new(Seen::default()), async {
            let out = f.await;
            (
                out,
                VERIFY_SLOT.with(|s| std::mem::take(&mut *s.borrow_mut())),
            )
        })
        .await
}

fn record(j: Judged) {
    // Outside `capture_verify` (sync unit tests) there is no slot; the rustls error still says
    // enough to pick the alert.
    let _ = VERIFY_SLOT.try_with(|s| s.borrow_mut().judged = Some(j));
}

/// Called by our client certificate resolver: the server asked for our certificate.
pub(crate) fn note_certificate_requested() {
    let _ = VERIFY_SLOT.try_with(|s| s.borrow_mut().certificate_requested = true);
}

/// The `SubjectPublicKeyInfo` algorithm a handshake signature needs for a key of `kind`.
fn key_alg_id(kind: &KeyKind) -> Option<AlgorithmIdentifier> {
    use rustls::pki_types::alg_id;
    Some(match kind {
        KeyKind::Rsa { .. } => alg_id::RSA_ENCRYPTION,
        KeyKind::Ec(Curve::P256) => alg_id::ECDSA_P256,
        KeyKind::Ec(Curve::P384) => alg_id::ECDSA_P384,
        KeyKind::Ec(Curve::P521) => alg_id::ECDSA_P521,
        KeyKind::Ed25519 => alg_id::ED25519,
        _ => return None,
    })
}

/// The schemes TLS 1.3 allows in CertificateVerify (RFC 8446 4.2.3: no PKCS#1 v1.5, no SHA-1).
fn tls13_scheme(s: SignatureScheme) -> bool {
    use SignatureScheme as S;
    matches!(
        s,
        S::ECDSA_NISTP256_SHA256
            | S::ECDSA_NISTP384_SHA384
            | S::ECDSA_NISTP521_SHA512
            | S::RSA_PSS_SHA256
            | S::RSA_PSS_SHA384
            | S::RSA_PSS_SHA512
            | S::ED25519
            | S::ED448
    )
}

/// Verifies a handshake signature with the public key of `cert` as our certificate parser
/// reads it (see the module doc): the algorithms `algs` maps `dss.scheme` to, those that fit
/// the key's type; in TLS 1.3 only the scheme's first (its curve must be the key's), as
/// rustls does.
fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
    tls13: bool,
) -> Result<HandshakeSignatureValid, Error> {
    if tls13 && !tls13_scheme(dss.scheme) {
        return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    let Some((_, candidates)) = algs.mapping.iter().find(|(s, _)| *s == dss.scheme) else {
        return Err(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    };
    let info = cert::parse(cert);
    let (Some(key), Some(want)) = (info.public_key(), info.key_kind().and_then(key_alg_id)) else {
        return Err(Error::InvalidCertificate(CertificateError::BadEncoding));
    };
    let candidates = if tls13 {
        &candidates[..candidates.len().min(1)]
    } else {
        candidates
    };
    let Some(alg) = candidates.iter().find(|a| a.public_key_alg_id() == want) else {
        return Err(Error::InvalidCertificate(
            CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: candidates
                    .first()
                    .map(|a| a.signature_alg_id().as_ref().to_vec())
                    .unwrap_or_default(),
                public_key_algorithm_id: want.as_ref().to_vec(),
            },
        ));
    };
    alg.verify_signature(key, message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadSignature))
}

/// The rustls error that makes rustls send `alert` (OpenSSL's alert for a verify code).
pub fn rustls_error_for_alert(alert: AlertDescription, why: &Verdict) -> Error {
    use AlertDescription as A;
    let ce = match alert {
        A::BAD_CERTIFICATE => CertificateError::BadEncoding,
        A::UNSUPPORTED_CERTIFICATE => CertificateError::InvalidPurpose,
        A::CERTIFICATE_REVOKED => CertificateError::Revoked,
        A::CERTIFICATE_EXPIRED => CertificateError::Expired,
        A::UNKNOWN_CA => CertificateError::UnknownIssuer,
        A::ACCESS_DENIED => CertificateError::ApplicationVerificationFailure,
        A::DECRYPT_ERROR => CertificateError::BadSignature,
        A::CERTIFICATE_UNKNOWN => {
            CertificateError::Other(rustls::OtherError(Arc::new(Why(why.clone()))))
        }
        // Anything else (OpenSSL: handshake_failure, internal_error) becomes a non-certificate
        // error, which rustls answers with handshake_failure (40).
        _ => return Error::General(format!("err {}", why.code)),
    };
    Error::InvalidCertificate(ce)
}

#[derive(Debug)]
struct Why(Verdict);
impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "err {} at depth {}",
            self.0.code,
            self.0.depth.unwrap_or(0)
        )
    }
}
impl std::error::Error for Why {}

/// Judges the peer's chain against the InternalCA; used as either side's verifier.
#[derive(Debug)]
pub struct PeerVerifier {
    /// Parsed once: every handshake judges against the same anchors.
    anchors: Vec<CertInfo>,
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
    peer: TlsSide,
}

impl PeerVerifier {
    /// Trusts `anchors` to judge a `peer`'s chain; verifies handshake signatures with `algs`
    /// (the crypto provider's).
    pub fn new(
        anchors: &[CertificateDer<'static>],
        peer: TlsSide,
        algs: WebPkiSupportedAlgorithms,
    ) -> Self {
        let anchors: Vec<CertInfo> = anchors.iter().map(|a| cert::parse(a)).collect();
        let hints = anchors
            .iter()
            .filter_map(chain::subject_der)
            .map(DistinguishedName::from)
            .collect();
        Self {
            anchors,
            hints,
            algs,
            peer,
        }
    }

    /// The chain check both sides share.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        chain::judge_chain(
            end_entity,
            intermediates,
            &self.anchors,
            from_unix_time(now),
            self.peer,
        )
        .map(|peer| record(Ok(peer)))
        .map_err(|f| {
            let e = rustls_error_for_alert(f.alert(), &f);
            record(Err(f));
            e
        })
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        // No host name check: sftunnel connects by IP to an FMC whose cert says CN=localhost.
        self.check(end_entity, intermediates, now)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(message, cert, dss, &self.algs, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(message, cert, dss, &self.algs, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity, intermediates, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(message, cert, dss, &self.algs, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_signature(message, cert, dss, &self.algs, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{self, VerifyCode};
    use rustls::AlertDescription as WireAlert;

    /// A verdict of `code` at depth 1 (the judge's own, on an empty chain, then told the code).
    fn why(code: VerifyCode) -> Verdict {
        let mut v = judge::verify(&[], &[], time::OffsetDateTime::UNIX_EPOCH).overall;
        v.code = code;
        v.depth = Some(1);
        v
    }

    /// The alert rustls will put on the wire for the error a verifier returns (the rule of
    /// `CommonState::send_cert_verify_error_alert`).
    fn wire_alert(e: &Error) -> WireAlert {
        match e {
            Error::InvalidCertificate(ce) => ce.clone().into(),
            Error::PeerMisbehaved(_) => WireAlert::IllegalParameter,
            _ => WireAlert::HandshakeFailure,
        }
    }

    #[test]
    fn every_openssl_alert_goes_on_the_wire_unchanged() {
        for alert in [40u8, 42, 43, 44, 45, 46, 48, 49, 51, 80] {
            let e = rustls_error_for_alert(AlertDescription(alert), &why(VerifyCode::Other(1)));
            // rustls answers a non-certificate error (internal_error's) with handshake_failure.
            let sent = if alert == 80 { 40 } else { alert };
            assert_eq!(u8::from(wire_alert(&e)), sent, "{e:?}");
        }
    }

    #[test]
    fn every_verify_code_sends_openssls_alert() {
        // The judge's alert for each code reaches the wire, except those rustls can only send
        // as handshake_failure (internal_error).
        for n in 0..=100 {
            let v = why(VerifyCode::from_code(n));
            let e = rustls_error_for_alert(v.alert(), &v);
            let want = match v.alert() {
                AlertDescription::INTERNAL_ERROR => AlertDescription::HANDSHAKE_FAILURE,
                a => a,
            };
            assert_eq!(u8::from(wire_alert(&e)), want.0, "code {n}: {e:?}");
        }
    }

    #[test]
    fn not_yet_valid_sends_bad_certificate_like_openssl_not_certificate_expired() {
        let v = why(VerifyCode::CertNotYetValid);
        let e = rustls_error_for_alert(v.alert(), &v);
        assert_eq!(wire_alert(&e), WireAlert::BadCertificate);
        // What rustls would have sent with its own error for the same case:
        assert_eq!(
            WireAlert::from(CertificateError::NotValidYet),
            WireAlert::CertificateExpired
        );
    }
}
