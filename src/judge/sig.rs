//! Certificate signature checks with aws-lc-rs: RSA PKCS#1 v1.5 (SHA-1/256/384/512), RSA-PSS
//! (SHA-256/384/512 with MGF1 of the same hash and salt = hash length), ECDSA on P-256, P-384,
//! P-521 and secp256k1, Ed25519.
//!
//! What aws-lc-rs cannot check is reported as an outcome, not guessed: a key OpenSSL 3.0 itself
//! cannot decode (ML-DSA, unknown algorithms) maps to code 6; an algorithm OpenSSL could verify
//! but we cannot (MD5, SHA-224, DSA, Ed448, RSA under 1024 bits, unusual PSS parameters) is
//! `Unsupported` with the reason, which the judge keeps as a note on the certificate's verdict:
//! a signature that could not be checked is not a signature failure.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};

use crate::cert::{CertInfo, Curve, Hash, KeyKind, SigScheme};

/// Result of checking `subject`'s signature with `issuer`'s key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigCheck {
    Good,
    /// The signature does not verify (code 7).
    Bad,
    /// The issuer's key cannot be decoded (code 6).
    NoIssuerKey,
    /// We cannot check this algorithm; OpenSSL could (a note on the verdict, not an error).
    Unsupported(String),
}

pub(crate) fn check(subject: &CertInfo, issuer: &CertInfo) -> SigCheck {
    let (Some(kind), Some(key)) = (issuer.key_kind(), issuer.public_key()) else {
        return SigCheck::NoIssuerKey;
    };
    if matches!(kind, KeyKind::MlDsa(_) | KeyKind::Other(_)) {
        // OpenSSL 3.0 has no decoder for these keys: X509_get0_pubkey() fails.
        return SigCheck::NoIssuerKey;
    }
    let (Some(tbs), Some(signature), Some(scheme)) =
        (subject.tbs(), subject.signature(), subject.sig_scheme())
    else {
        return SigCheck::Bad;
    };
    // X509_verify() refuses a certificate whose two signature AlgorithmIdentifiers differ.
    if !subject.sig_alg_consistent() {
        return SigCheck::Bad;
    }
    let alg = match algorithm(scheme, kind) {
        Ok(a) => a,
        Err(reason) => return reason,
    };
    match UnparsedPublicKey::new(alg, key).verify(tbs, signature) {
        Ok(()) => SigCheck::Good,
        Err(_) => SigCheck::Bad,
    }
}

fn algorithm(
    scheme: &SigScheme,
    key: &KeyKind,
) -> Result<&'static dyn VerificationAlgorithm, SigCheck> {
    let unsupported = |what: &str| Err(SigCheck::Unsupported(what.to_string()));
    match (scheme, key) {
        (SigScheme::RsaPkcs1(h), KeyKind::Rsa { bits }) => {
            if *bits < 1024 {
                return unsupported("RSA key under 1024 bits");
            }
            let small = *bits < 2048;
            Ok(match (h, small) {
                (Hash::Sha1, _) => &sig::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
                (Hash::Sha256, true) => &sig::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                (Hash::Sha256, false) => &sig::RSA_PKCS1_2048_8192_SHA256,
                (Hash::Sha384, false) => &sig::RSA_PKCS1_2048_8192_SHA384,
                (Hash::Sha512, true) => &sig::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
                (Hash::Sha512, false) => &sig::RSA_PKCS1_2048_8192_SHA512,
                (h, _) => return unsupported(&format!("RSA PKCS#1 with {h:?} on {bits} bits")),
            })
        }
        (
            SigScheme::RsaPss {
                hash,
                mgf1,
                salt_len,
            },
            KeyKind::Rsa { bits },
        ) => {
            if hash != mgf1 || *salt_len as usize != hash.output_len() || *bits < 2048 {
                return unsupported("RSA-PSS parameters other than MGF1(same hash), salt = hash");
            }
            Ok(match hash {
                Hash::Sha256 => &sig::RSA_PSS_2048_8192_SHA256,
                Hash::Sha384 => &sig::RSA_PSS_2048_8192_SHA384,
                Hash::Sha512 => &sig::RSA_PSS_2048_8192_SHA512,
                h => return unsupported(&format!("RSA-PSS with {h:?}")),
            })
        }
        (SigScheme::RsaPssMalformed, _) => Err(SigCheck::Bad),
        (SigScheme::Ecdsa(h), KeyKind::Ec(curve)) => Ok(match (curve, h) {
            (Curve::P256, Hash::Sha1) => &sig::ECDSA_P256_SHA1_ASN1,
            (Curve::P256, Hash::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
            (Curve::P256, Hash::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
            (Curve::P256, Hash::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
            (Curve::P384, Hash::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
            (Curve::P384, Hash::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
            (Curve::P384, Hash::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
            (Curve::P521, Hash::Sha1) => &sig::ECDSA_P521_SHA1_ASN1,
            (Curve::P521, Hash::Sha224) => &sig::ECDSA_P521_SHA224_ASN1,
            (Curve::P521, Hash::Sha256) => &sig::ECDSA_P521_SHA256_ASN1,
            (Curve::P521, Hash::Sha384) => &sig::ECDSA_P521_SHA384_ASN1,
            (Curve::P521, Hash::Sha512) => &sig::ECDSA_P521_SHA512_ASN1,
            (Curve::Secp256k1, Hash::Sha256) => &sig::ECDSA_P256K1_SHA256_ASN1,
            (c, h) => return unsupported(&format!("ECDSA {c:?} with {h:?}")),
        }),
        (SigScheme::Ed25519, KeyKind::Ed25519) => Ok(&sig::ED25519),
        // OpenSSL's check_sig_alg_match keeps a mismatched pair from ever being chosen as
        // issuer; if one gets here the signature cannot be right.
        (s, k) if !scheme_fits(s, k) => Err(SigCheck::Bad),
        (s, _) => unsupported(&format!("signature algorithm {s:?}")),
    }
}

fn scheme_fits(s: &SigScheme, k: &KeyKind) -> bool {
    matches!(
        (s, k),
        (
            SigScheme::RsaPkcs1(_) | SigScheme::RsaPss { .. },
            KeyKind::Rsa { .. }
        ) | (SigScheme::Ecdsa(_), KeyKind::Ec(_))
            | (SigScheme::Ed25519, KeyKind::Ed25519)
            | (SigScheme::Ed448, KeyKind::Ed448)
            | (SigScheme::MlDsa(_), KeyKind::MlDsa(_))
    )
}
