//! OpenSSL's certificate verify codes (`X509_V_*`), their exact strings, and the TLS alert
//! OpenSSL sends for each.
//!
//! Strings are those of the installed OpenSSL 3.0 (checked against `libcrypto.so.3` 3.0.19 and
//! crypto/x509/x509_txt.c): note 3.0's `self-signed certificate` (1.1.1 said `self signed`),
//! `unsuitable certificate purpose` (1.1.1: `unsupported certificate purpose`) and
//! `certificate is not yet valid` (3.5+ appends `or the system clock is incorrect`).
//! Numbers are 3.0's too: `invalid CA certificate` is 79 (it was 24 in 1.1.1; 3.0's 24 is
//! `issuer certificate doesn't have a public key`), so a log from a 1.1.1 peer saying
//! `err 24:invalid CA certificate` names the same condition as our 79. The judge says
//! [`VerifyCode::InvalidCaLegacy`] (24) when it imitates 1.1.1 or 1.0.2, and
//! [`VerifyCode::text_in`] gives each release's strings.
//!
//! One code is not OpenSSL's: [`VerifyCode::NotDecoded`] (-1), for a certificate nothing can
//! decode. OpenSSL has no `X509_V_ERR` for it because its TLS peer never gets as far as
//! verifying: `d2i_X509` fails while the Certificate message is read and the peer sends a
//! decode_error alert (50). -1 keeps "0 when fine" true for scripts while saying plainly that
//! no OpenSSL verify code exists for what happened.

use std::fmt;

use serde::{Serialize, Serializer};

use super::OpenSsl;
use crate::tls::AlertDescription;

/// An OpenSSL verify result code. Codes we do not name are kept as `Other(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyCode {
    /// 0 (`ok`): the chain verified.
    Ok,
    /// 1: `unspecified certificate verification error`.
    Unspecified,
    /// 2: `unable to get issuer certificate`.
    UnableToGetIssuerCert,
    /// 3: `unable to get certificate CRL`.
    UnableToGetCrl,
    /// 4: `unable to decrypt certificate's signature`.
    UnableToDecryptCertSignature,
    /// 5: `unable to decrypt CRL's signature`.
    UnableToDecryptCrlSignature,
    /// 6: `unable to decode issuer public key`.
    UnableToDecodeIssuerPublicKey,
    /// 7: `certificate signature failure`.
    CertSignatureFailure,
    /// 8: `CRL signature failure`.
    CrlSignatureFailure,
    /// 9: `certificate is not yet valid`.
    CertNotYetValid,
    /// 10: `certificate has expired`.
    CertHasExpired,
    /// 11: `CRL is not yet valid`.
    CrlNotYetValid,
    /// 12: `CRL has expired`.
    CrlHasExpired,
    /// 13: `format error in certificate's notBefore field`.
    ErrorInCertNotBeforeField,
    /// 14: `format error in certificate's notAfter field`.
    ErrorInCertNotAfterField,
    /// 15: `format error in CRL's lastUpdate field`.
    ErrorInCrlLastUpdateField,
    /// 16: `format error in CRL's nextUpdate field`.
    ErrorInCrlNextUpdateField,
    /// 17: `out of memory`.
    OutOfMem,
    /// 18: `self-signed certificate`.
    DepthZeroSelfSignedCert,
    /// 19: `self-signed certificate in certificate chain`.
    SelfSignedCertInChain,
    /// 20: `unable to get local issuer certificate`.
    UnableToGetIssuerCertLocally,
    /// 21: `unable to verify the first certificate`.
    UnableToVerifyLeafSignature,
    /// 22: `certificate chain too long`.
    CertChainTooLong,
    /// 23: `certificate revoked`.
    CertRevoked,
    /// 24: `issuer certificate doesn't have a public key`.
    NoIssuerPublicKey,
    /// 25: `path length constraint exceeded`.
    PathLengthExceeded,
    /// 26: `unsuitable certificate purpose`.
    InvalidPurpose,
    /// 27: `certificate not trusted`.
    CertUntrusted,
    /// 28: `certificate rejected`.
    CertRejected,
    /// 29: `subject issuer mismatch`.
    SubjectIssuerMismatch,
    /// 30: `authority and subject key identifier mismatch`.
    AkidSkidMismatch,
    /// 31: `authority and issuer serial number mismatch`.
    AkidIssuerSerialMismatch,
    /// 32: `key usage does not include certificate signing`.
    KeyusageNoCertsign,
    /// 34: `unhandled critical extension`.
    UnhandledCriticalExtension,
    /// 37: `invalid non-CA certificate (has CA markings)` (`X509_V_ERR_INVALID_NON_CA`;
    /// nothing in the judge yields it yet).
    InvalidNonCa,
    /// 40: `proxy certificates not allowed, please set the appropriate flag`.
    ProxyCertificatesNotAllowed,
    /// 41: `invalid or inconsistent certificate extension`.
    InvalidExtension,
    /// 50: `application verification failure`.
    ApplicationVerification,
    /// 66: `EE certificate key too weak`.
    EeKeyTooSmall,
    /// 67: `CA certificate key too weak`.
    CaKeyTooSmall,
    /// 68: `CA signature digest algorithm too weak`.
    CaMdTooWeak,
    /// 76: `Cannot find certificate signature algorithm`.
    UnsupportedSignatureAlgorithm,
    /// 77: `subject signature algorithm and issuer public key algorithm mismatch`.
    SignatureAlgorithmMismatch,
    /// 78: `cert info signature and signature algorithm mismatch`.
    SignatureAlgorithmInconsistency,
    /// 79 since OpenSSL 3.0 (24 in 1.1.1, where 24 is now "no issuer public key").
    InvalidCa,
    /// `invalid CA certificate` as OpenSSL 1.1.1 and 1.0.2 number it: 24.
    InvalidCaLegacy,
    /// 47: `permitted subtree violation`.
    PermittedViolation,
    /// 48: `excluded subtree violation`.
    ExcludedViolation,
    /// 49: `name constraints minimum and maximum not supported`.
    SubtreeMinmax,
    /// 51: `unsupported name constraint type`.
    UnsupportedConstraintType,
    /// 52: `unsupported or invalid name constraint syntax`.
    UnsupportedConstraintSyntax,
    /// 53: `unsupported or invalid name syntax`.
    UnsupportedNameSyntax,
    /// Not an OpenSSL code (-1): the certificate could not be decoded at all, which an
    /// OpenSSL peer answers with a decode_error alert before any verification.
    NotDecoded,
    /// 94: `Certificate public key has explicit ECC parameters`.
    EcKeyExplicitParams,
    /// Any other `X509_V_ERR_*` number (e.g. read from a log line).
    Other(i32),
}

use VerifyCode as C;

/// (code, number, OpenSSL 3.0 text) for every named code.
const TABLE: &[(VerifyCode, i32, &str)] = &[
    (C::Ok, 0, "ok"),
    (
        C::Unspecified,
        1,
        "unspecified certificate verification error",
    ),
    (
        C::UnableToGetIssuerCert,
        2,
        "unable to get issuer certificate",
    ),
    (C::UnableToGetCrl, 3, "unable to get certificate CRL"),
    (
        C::UnableToDecryptCertSignature,
        4,
        "unable to decrypt certificate's signature",
    ),
    (
        C::UnableToDecryptCrlSignature,
        5,
        "unable to decrypt CRL's signature",
    ),
    (
        C::UnableToDecodeIssuerPublicKey,
        6,
        "unable to decode issuer public key",
    ),
    (C::CertSignatureFailure, 7, "certificate signature failure"),
    (C::CrlSignatureFailure, 8, "CRL signature failure"),
    (C::CertNotYetValid, 9, "certificate is not yet valid"),
    (C::CertHasExpired, 10, "certificate has expired"),
    (C::CrlNotYetValid, 11, "CRL is not yet valid"),
    (C::CrlHasExpired, 12, "CRL has expired"),
    (
        C::ErrorInCertNotBeforeField,
        13,
        "format error in certificate's notBefore field",
    ),
    (
        C::ErrorInCertNotAfterField,
        14,
        "format error in certificate's notAfter field",
    ),
    (
        C::ErrorInCrlLastUpdateField,
        15,
        "format error in CRL's lastUpdate field",
    ),
    (
        C::ErrorInCrlNextUpdateField,
        16,
        "format error in CRL's nextUpdate field",
    ),
    (C::OutOfMem, 17, "out of memory"),
    (C::DepthZeroSelfSignedCert, 18, "self-signed certificate"),
    (
        C::SelfSignedCertInChain,
        19,
        "self-signed certificate in certificate chain",
    ),
    (
        C::UnableToGetIssuerCertLocally,
        20,
        "unable to get local issuer certificate",
    ),
    (
        C::UnableToVerifyLeafSignature,
        21,
        "unable to verify the first certificate",
    ),
    (C::CertChainTooLong, 22, "certificate chain too long"),
    (C::CertRevoked, 23, "certificate revoked"),
    (
        C::NoIssuerPublicKey,
        24,
        "issuer certificate doesn't have a public key",
    ),
    (C::PathLengthExceeded, 25, "path length constraint exceeded"),
    (C::InvalidPurpose, 26, "unsuitable certificate purpose"),
    (C::CertUntrusted, 27, "certificate not trusted"),
    (C::CertRejected, 28, "certificate rejected"),
    (C::SubjectIssuerMismatch, 29, "subject issuer mismatch"),
    (
        C::AkidSkidMismatch,
        30,
        "authority and subject key identifier mismatch",
    ),
    (
        C::AkidIssuerSerialMismatch,
        31,
        "authority and issuer serial number mismatch",
    ),
    (
        C::KeyusageNoCertsign,
        32,
        "key usage does not include certificate signing",
    ),
    (
        C::UnhandledCriticalExtension,
        34,
        "unhandled critical extension",
    ),
    (
        C::InvalidNonCa,
        37,
        "invalid non-CA certificate (has CA markings)",
    ),
    (
        C::ProxyCertificatesNotAllowed,
        40,
        "proxy certificates not allowed, please set the appropriate flag",
    ),
    (
        C::InvalidExtension,
        41,
        "invalid or inconsistent certificate extension",
    ),
    (C::PermittedViolation, 47, "permitted subtree violation"),
    (C::ExcludedViolation, 48, "excluded subtree violation"),
    (
        C::SubtreeMinmax,
        49,
        "name constraints minimum and maximum not supported",
    ),
    (
        C::UnsupportedConstraintType,
        51,
        "unsupported name constraint type",
    ),
    (
        C::UnsupportedConstraintSyntax,
        52,
        "unsupported or invalid name constraint syntax",
    ),
    (
        C::UnsupportedNameSyntax,
        53,
        "unsupported or invalid name syntax",
    ),
    (
        C::ApplicationVerification,
        50,
        "application verification failure",
    ),
    (C::EeKeyTooSmall, 66, "EE certificate key too weak"),
    (C::CaKeyTooSmall, 67, "CA certificate key too weak"),
    (C::CaMdTooWeak, 68, "CA signature digest algorithm too weak"),
    (
        C::UnsupportedSignatureAlgorithm,
        76,
        "Cannot find certificate signature algorithm",
    ),
    (
        C::SignatureAlgorithmMismatch,
        77,
        "subject signature algorithm and issuer public key algorithm mismatch",
    ),
    (
        C::SignatureAlgorithmInconsistency,
        78,
        "cert info signature and signature algorithm mismatch",
    ),
    (C::InvalidCa, 79, "invalid CA certificate"),
    (
        C::EcKeyExplicitParams,
        94,
        "Certificate public key has explicit ECC parameters",
    ),
    (C::NotDecoded, -1, "certificate could not be decoded"),
    // After 24's 3.0 meaning, so that a bare 24 reads as 3.0's (see `from_code_in`).
    (C::InvalidCaLegacy, 24, "invalid CA certificate"),
];

impl VerifyCode {
    /// The `X509_V_*` number OpenSSL logs (`err 10:...`).
    pub fn code(self) -> i32 {
        if let C::Other(n) = self {
            return n;
        }
        TABLE
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or(1, |(_, n, _)| *n)
    }

    /// OpenSSL's `X509_verify_cert_error_string` for this code.
    pub fn text(self) -> &'static str {
        TABLE
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or("unknown certificate verification error", |(_, _, t)| t)
    }

    /// The code for a number as OpenSSL 3.x numbers them (unknown numbers become `Other`).
    pub fn from_code(n: i32) -> VerifyCode {
        TABLE
            .iter()
            .find(|(_, m, _)| *m == n)
            .map_or(C::Other(n), |(c, _, _)| *c)
    }

    /// The code for a number in a log of the given OpenSSL release (24 is `invalid CA
    /// certificate` before 3.0).
    pub fn from_code_in(n: i32, flavour: OpenSsl) -> VerifyCode {
        match (n, flavour) {
            (24, OpenSsl::V1_1_1 | OpenSsl::V1_0_2) => C::InvalidCaLegacy,
            _ => Self::from_code(n),
        }
    }

    /// `X509_verify_cert_error_string` of the given release: 1.1.1 and 1.0.2 say
    /// `self signed` and `unsupported certificate purpose`.
    pub fn text_in(self, flavour: OpenSsl) -> &'static str {
        match (self, flavour) {
            (_, OpenSsl::V3) => self.text(),
            (C::DepthZeroSelfSignedCert, _) => "self signed certificate",
            (C::SelfSignedCertInChain, _) => "self signed certificate in certificate chain",
            (C::InvalidPurpose, _) => "unsupported certificate purpose",
            _ => self.text(),
        }
    }

    /// True for `Ok`.
    pub fn is_ok(self) -> bool {
        self == C::Ok
    }
}

impl fmt::Display for VerifyCode {
    /// `10:certificate has expired`, the form after `err ` in the appliance's log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.code(), self.text())
    }
}

impl Serialize for VerifyCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.code())
    }
}

/// The TLS alert OpenSSL sends when peer verification ends with `code` (ssl_x509err2alert in
/// ssl/statem/statem_lib.c; anything not in its table is certificate_unknown).
pub fn alert_for(code: VerifyCode) -> AlertDescription {
    use AlertDescription as A;
    match code {
        // What the peer sends when d2i_X509 fails on the Certificate message.
        C::NotDecoded => return A::DECODE_ERROR,
        // 1.1.1's ssl_x509err2alert maps its X509_V_ERR_INVALID_CA (24) to unknown_ca.
        C::InvalidCaLegacy => return A::UNKNOWN_CA,
        _ => {}
    }
    match code.code() {
        50 => A::HANDSHAKE_FAILURE,
        67 | 94 | 68 => A::BAD_CERTIFICATE, // CA key too small, EC explicit params, CA md too weak
        22 => A::UNKNOWN_CA,
        10 => A::CERTIFICATE_EXPIRED,
        9 => A::BAD_CERTIFICATE,
        28 => A::BAD_CERTIFICATE,
        23 => A::CERTIFICATE_REVOKED,
        7 => A::DECRYPT_ERROR,
        27 => A::BAD_CERTIFICATE,
        12 => A::CERTIFICATE_EXPIRED,
        11 => A::BAD_CERTIFICATE,
        8 => A::DECRYPT_ERROR,
        65 => A::BAD_CERTIFICATE, // DANE no match
        18 => A::UNKNOWN_CA,
        66 => A::BAD_CERTIFICATE,
        63 => A::BAD_CERTIFICATE, // email mismatch
        13..=16 => A::BAD_CERTIFICATE,
        62 => A::BAD_CERTIFICATE, // hostname mismatch
        79 => A::UNKNOWN_CA,      // invalid CA (24 in OpenSSL 1.1.1)
        69 => A::INTERNAL_ERROR,  // invalid call
        26 => A::UNSUPPORTED_CERTIFICATE,
        64 => A::BAD_CERTIFICATE, // IP address mismatch
        17 => A::INTERNAL_ERROR,
        25 => A::UNKNOWN_CA,
        19 => A::UNKNOWN_CA,
        70 => A::INTERNAL_ERROR, // store lookup
        6 => A::BAD_CERTIFICATE,
        4 | 5 => A::BAD_CERTIFICATE,
        3 | 33 => A::UNKNOWN_CA,
        2 | 20 | 21 => A::UNKNOWN_CA,
        1 => A::INTERNAL_ERROR,
        _ => A::CERTIFICATE_UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings_round_trip() {
        for (c, n, t) in TABLE {
            assert_eq!(c.code(), *n);
            assert_eq!(c.text(), *t);
            let flavour = match c {
                VerifyCode::InvalidCaLegacy => OpenSsl::V1_1_1,
                _ => OpenSsl::V3,
            };
            assert_eq!(VerifyCode::from_code_in(*n, flavour), *c);
        }
        assert_eq!(VerifyCode::from_code(24), VerifyCode::NoIssuerPublicKey);
        assert_eq!(VerifyCode::from_code(-1), VerifyCode::NotDecoded);
        assert_eq!(
            VerifyCode::DepthZeroSelfSignedCert.text_in(OpenSsl::V1_1_1),
            "self signed certificate"
        );
        assert_eq!(
            VerifyCode::InvalidPurpose.text_in(OpenSsl::V1_0_2),
            "unsupported certificate purpose"
        );
        assert_eq!(
            VerifyCode::InvalidPurpose.text_in(OpenSsl::V3),
            "unsuitable certificate purpose"
        );
        assert_eq!(VerifyCode::from_code(99), VerifyCode::Other(99));
        assert_eq!(VerifyCode::Other(99).code(), 99);
        assert_eq!(
            VerifyCode::Other(99).text(),
            "unknown certificate verification error"
        );
        assert_eq!(
            VerifyCode::CertHasExpired.to_string(),
            "10:certificate has expired"
        );
    }

    #[test]
    fn alerts_match_openssl_table() {
        assert_eq!(alert_for(VerifyCode::CertHasExpired).0, 45);
        assert_eq!(alert_for(VerifyCode::CertNotYetValid).0, 42);
        assert_eq!(alert_for(VerifyCode::UnableToGetIssuerCertLocally).0, 48);
        assert_eq!(alert_for(VerifyCode::UnableToGetIssuerCert).0, 48);
        assert_eq!(alert_for(VerifyCode::DepthZeroSelfSignedCert).0, 48);
        assert_eq!(alert_for(VerifyCode::SelfSignedCertInChain).0, 48);
        assert_eq!(alert_for(VerifyCode::CertSignatureFailure).0, 51);
        assert_eq!(alert_for(VerifyCode::InvalidCa).0, 48);
        assert_eq!(VerifyCode::InvalidCa.code(), 79);
        assert_eq!(alert_for(VerifyCode::NoIssuerPublicKey).0, 46);
        assert_eq!(alert_for(VerifyCode::InvalidPurpose).0, 43);
        assert_eq!(alert_for(VerifyCode::KeyusageNoCertsign).0, 46);
        assert_eq!(alert_for(VerifyCode::NotDecoded).0, 50);
        assert_eq!(alert_for(VerifyCode::InvalidCaLegacy).0, 48);
        assert_eq!(alert_for(VerifyCode::PermittedViolation).0, 46);
        assert_eq!(alert_for(VerifyCode::UnhandledCriticalExtension).0, 46);
    }
}
