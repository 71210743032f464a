//! RSA key pairs for the lab PKI: generation (aws-lc-rs through rcgen), PEM out, and PEM in
//! through `cert`'s key reader.
//!
//! Keys are PKCS#8 (`BEGIN PRIVATE KEY`), which OpenSSL 3, rustls and rcgen all read. The
//! key's bytes never reach a log or a report: `KeyPair`'s Debug elides them.

use std::path::Path;

use rcgen::{KeyPair, PKCS_RSA_SHA256, RsaKeySize};

use super::PkiError;

/// RSA sizes `pki init --key-bits` accepts (the appliance uses 2048).
pub(super) const KEY_BITS_SUPPORTED: [u32; 3] = [2048, 3072, 4096];

/// A fresh RSA key pair for sha256WithRSAEncryption signatures.
pub(super) fn generate_rsa_key(bits: u32) -> Result<KeyPair, PkiError> {
    let size = match bits {
        2048 => RsaKeySize::_2048,
        3072 => RsaKeySize::_3072,
        4096 => RsaKeySize::_4096,
        _ => {
            return Err(PkiError::KeyGen {
                bits,
                reason: format!("supported sizes are {KEY_BITS_SUPPORTED:?}"),
            });
        }
    };
    KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size).map_err(|e| PkiError::KeyGen {
        bits,
        reason: e.to_string(),
    })
}

/// The private key as PKCS#8 PEM (LF line endings).
pub(super) fn key_to_pem(key: &KeyPair) -> String {
    pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", key.serialize_der()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Reads a private key from PEM text (PKCS#8, PKCS#1 or SEC1); `path` only names it in errors.
pub fn load_key_pem(text: &str, path: &Path) -> Result<KeyPair, PkiError> {
    let der = crate::cert::parse_key_pem(text.as_bytes(), &path.display().to_string())?;
    KeyPair::try_from(&der).map_err(|e| PkiError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a private key file.
pub fn load_key(path: &Path) -> Result<KeyPair, PkiError> {
    let text = // Bounded, and a FIFO or device is refused at once (crate::files).
    crate::files::read_text_bounded(path, crate::files::MAX_CERT_FILE, crate::files::Links::Follow).map_err(|e| PkiError::io("read", path, e))?;
    load_key_pem(&text, path)
}

/// The public half of a key pair, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeySummary {
    /// `RSA 2048`, `EC P-256`, `Ed25519`, ...
    pub kind: String,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// The subjectPublicKey bits (RSAPublicKey DER for RSA): what a certificate of this key
    /// carries.
    pub key_bits: Vec<u8>,
    /// `-----BEGIN PUBLIC KEY-----` PEM.
    pub pem: String,
}

/// Describes `key`'s public half (never its private part).
pub fn public_key_summary(key: &KeyPair) -> PublicKeySummary {
    use rcgen::PublicKeyData;
    let spki_der = key.subject_public_key_info();
    let kind = match crate::cert::spki_key_kind(&spki_der) {
        Some(k) => k.describe(),
        None => format!("{:?}", key.algorithm()),
    };
    PublicKeySummary {
        kind,
        key_bits: key.der_bytes().to_vec(),
        pem: key.public_key_pem(),
        spki_der,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_through_pem() {
        let key = generate_rsa_key(2048).unwrap();
        let pem = key_to_pem(&key);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = load_key_pem(&pem, Path::new("k.pem")).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        assert_eq!(back.algorithm(), &PKCS_RSA_SHA256);
        let s = public_key_summary(&back);
        assert_eq!(s.kind, "RSA 2048");
        assert!(s.pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert!(!s.pem.contains("PRIVATE"));
    }

    #[test]
    fn odd_sizes_are_refused_and_garbage_is_named() {
        assert!(matches!(
            generate_rsa_key(1024),
            Err(PkiError::KeyGen { bits: 1024, .. })
        ));
        let e = load_key_pem("hello", Path::new("x/k.pem")).unwrap_err();
        assert!(e.to_string().starts_with("x/k.pem: "), "{e}");
    }
}
