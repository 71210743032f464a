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
//! depth do not fit in a rustls error, so the verifier also leaves the [`VerifyFailure`] in a
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

use super::chain::{self, PeerCert, PeerRole, VerifyFailure};
use super::clock::from_unix_time;
use crate::cert::{self, CertInfo};

/// What the verifier concluded about the peer's chain in one handshake: the accepted peer's
/// facts, or why it was refused.
pub type Judged = Result<Option<PeerCert>, VerifyFailure>;

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
pub fn rustls_error_for_alert(alert: u8, why: &VerifyFailure) -> Error {
    let ce = match alert {
        42 => CertificateError::BadEncoding,
        43 => CertificateError::InvalidPurpose,
        44 => CertificateError::Revoked,
        45 => CertificateError::Expired,
        48 => CertificateError::UnknownIssuer,
        49 => CertificateError::ApplicationVerificationFailure,
        51 => CertificateError::BadSignature,
        46 => CertificateError::Other(rustls::OtherError(Arc::new(Why(why.clone())))),
        // Anything else (OpenSSL: handshake_failure, internal_error) becomes a non-certificate
        // error, which rustls answers with handshake_failure (40).
        _ => return Error::General(format!("err {}:{}", why.code, why.text)),
    };
    Error::InvalidCertificate(ce)
}

#[derive(Debug)]
struct Why(VerifyFailure);
impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "err {}:{} at depth {}",
            self.0.code, self.0.text, self.0.depth
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
    peer: PeerRole,
}

impl PeerVerifier {
    /// Trusts `anchors` to judge a `peer`'s chain; verifies handshake signatures with `algs`
    /// (the crypto provider's).
    pub fn new(
        anchors: &[CertificateDer<'static>],
        peer: PeerRole,
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
            let e = rustls_error_for_alert(f.alert, &f);
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
    use rustls::AlertDescription;

    fn why(code: i32, alert: u8) -> VerifyFailure {
        VerifyFailure {
            code,
            text: "x".into(),
            depth: 1,
            subject: String::new(),
            issuer: String::new(),
            alert,
        }
    }

    /// The alert rustls will put on the wire for the error a verifier returns (the rule of
    /// `CommonState::send_cert_verify_error_alert`).
    fn wire_alert(e: &Error) -> AlertDescription {
        match e {
            Error::InvalidCertificate(ce) => ce.clone().into(),
            Error::PeerMisbehaved(_) => AlertDescription::IllegalParameter,
            _ => AlertDescription::HandshakeFailure,
        }
    }

    #[test]
    fn every_openssl_alert_goes_on_the_wire_unchanged() {
        for alert in [40u8, 42, 43, 44, 45, 46, 48, 49, 51] {
            let e = rustls_error_for_alert(alert, &why(1, alert));
            assert_eq!(u8::from(wire_alert(&e)), alert, "{e:?}");
        }
    }

    #[test]
    fn not_yet_valid_sends_bad_certificate_like_openssl_not_certificate_expired() {
        let e = rustls_error_for_alert(42, &why(9, 42));
        assert_eq!(wire_alert(&e), AlertDescription::BadCertificate);
        // What rustls would have sent with its own error for the same case:
        assert_eq!(
            AlertDescription::from(CertificateError::NotValidYet),
            AlertDescription::CertificateExpired
        );
    }
}
