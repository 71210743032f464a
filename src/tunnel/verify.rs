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
//! One alert still differs from OpenSSL: a client that sends no certificate gets
//! `certificate_required` (116), which rustls hard-codes before any verifier runs, where
//! OpenSSL sends `handshake_failure` (40). The log says `peer did not return a certificate`
//! either way.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::chain::{self, PeerCert};
use super::clock::from_unix_time;
use crate::cert::{self, CertInfo};
use crate::judge::Verdict;
use crate::sftunnel::TlsSide;
use crate::tls::AlertDescription;

/// What the verifier concluded about the peer's chain in one handshake: the accepted peer's
/// facts, or why it was refused.
pub type Judged = Result<Option<PeerCert>, Box<Verdict>>;

tokio::task_local! {
    static VERIFY_SLOT: RefCell<Option<Judged>>;
}

/// Runs `f` (a handshake) and returns its output with what a verifier concluded while it ran,
/// if one ran.
pub async fn capture_verify<F: Future>(f: F) -> (F::Output, Option<Judged>) {
    VERIFY_SLOT
        .scope(RefCell::new(None), async {
            let out = f.await;
            (out, VERIFY_SLOT.with(|s| s.borrow_mut().take()))
        })
        .await
}

fn record(j: Judged) {
    // Outside `capture_verify` (sync unit tests) there is no slot; the rustls error still says
    // enough to pick the alert.
    let _ = VERIFY_SLOT.try_with(|s| *s.borrow_mut() = Some(j));
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
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
