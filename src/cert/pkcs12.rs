//! PKCS#12 (`.p12`/`.pfx`) bundles: the certificates of one that needs no password.
//!
//! Owns recognising a PFX by its first bytes (pure, so a named `.p12` is never taken for a
//! private key: both open with `SEQUENCE { INTEGER ... }`) and reading its certificate bags
//! through `p12-keystore` (RustCrypto's `pkcs12` types, PBES1/PBES2 decryption, MAC check).
//! "Needs no password" is what OpenSSL means by it: bags stored in the clear
//! (`-certpbe NONE -keypbe NONE -nomac`) or protected by the empty password (`-passout pass:`).
//! Anything else is [`CertError::Pkcs12Password`], which says so instead of guessing: sfdiag
//! takes no password on its command line. Private key bags are decrypted by the crate along
//! the way and dropped here; they never leave this function.

use super::{CertError, CertInfo, der};

/// `1.2.840.113549.1.7.1` (pkcs7-data), DER-encoded: the authSafe content type every PFX
/// made by OpenSSL, Java or Windows carries.
const OID_PKCS7_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
/// `1.2.840.113549.1.7.2` (pkcs7-signedData): the public-key integrity mode, rare.
const OID_PKCS7_SIGNED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// True when `bytes` start like a PFX: `SEQUENCE { INTEGER 3, SEQUENCE { OID pkcs7-data |
/// pkcs7-signedData, ...`. A private key (version 0 or 1) or a certificate never does.
pub(crate) fn looks_like_pkcs12(bytes: &[u8]) -> bool {
    // Some Windows exports wrap the PFX in BER's indefinite length, which `der` does not
    // read: `SEQUENCE (indefinite) { INTEGER 3` is as telling.
    if bytes.starts_with(&[der::SEQUENCE, 0x80, der::INTEGER, 0x01, 0x03]) {
        return true;
    }
    let Some(outer) = der::read_tlv(bytes, 0).filter(|t| t.tag == der::SEQUENCE) else {
        return false;
    };
    let Some(version) = der::read_tlv(bytes, outer.content.start).filter(|t| t.tag == der::INTEGER)
    else {
        return false;
    };
    if bytes.get(version.content.clone()) != Some(&[3][..]) {
        return false;
    }
    let Some(auth_safe) = der::read_tlv(bytes, version.full.end).filter(|t| t.tag == der::SEQUENCE)
    else {
        return false;
    };
    let Some(oid) = der::read_tlv(bytes, auth_safe.content.start).filter(|t| t.tag == der::OID)
    else {
        return false;
    };
    matches!(bytes.get(oid.content), Some(o) if o == OID_PKCS7_DATA || o == OID_PKCS7_SIGNED)
}

/// The certificates of a PKCS#12 bundle that needs no password, in bag order. `what` names
/// the input in errors.
pub(crate) fn parse_pkcs12(bytes: &[u8], what: &str) -> Result<Vec<CertInfo>, CertError> {
    use p12_keystore::error::Error as P12;
    let archive = match p12_keystore::Pkcs12Archive::from_pkcs12(bytes, "") {
        Ok(a) => a,
        // A MAC that does not verify, or a decryption whose padding comes out wrong, is
        // what a password other than the empty one looks like.
        Err(P12::MacError(_) | P12::UnpadError | P12::Pkcs5Error(_)) => {
            return Err(CertError::Pkcs12Password {
                what: what.to_string(),
            });
        }
        Err(e) => {
            return Err(CertError::Pkcs12 {
                what: what.to_string(),
                reason: e.to_string(),
            });
        }
    };
    let keys = archive.keys.len();
    let mut certs = Vec::with_capacity(archive.certs.len());
    for (i, bag) in archive.certs.iter().enumerate() {
        let info = CertInfo::from_arc(bag.cert.as_der().into());
        if info.parts.tbs.is_none() {
            return Err(CertError::NotACertificate {
                what: what.to_string(),
                index: i + 1,
                reason: info.parse_error.unwrap_or_default(),
            });
        }
        certs.push(info);
    }
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            what: what.to_string(),
            found: format!(" (a PKCS#12 bundle with {keys} private key(s) and no certificate)"),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/certs/valid/fmc/etc/sf/ca_root/cacert.pem"
    );
    const KEY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/certs/valid/fmc/etc/sf/ca_root/cakey.pem"
    );

    /// A PFX holding the committed lab InternalCA, written by p12-keystore's own writer.
    fn pfx(password: &str) -> Vec<u8> {
        let der = crate::cert::read_certs(CERT).unwrap()[0].der().to_vec();
        let cert = p12_keystore::Certificate::from_der(&der).unwrap();
        let mut ks = p12_keystore::KeyStore::new();
        ks.add_entry("ca", p12_keystore::KeyStoreEntry::Certificate(cert));
        ks.writer(password).write().unwrap()
    }

    #[test]
    fn a_pfx_is_told_from_keys_and_certificates_by_its_first_bytes() {
        assert!(looks_like_pkcs12(&pfx("")));
        let key = crate::cert::read_key(KEY).unwrap();
        assert!(!looks_like_pkcs12(key.secret_der()));
        let cert = crate::cert::read_certs(CERT).unwrap();
        assert!(!looks_like_pkcs12(cert[0].der()));
        assert!(!looks_like_pkcs12(b""));
    }

    #[test]
    fn the_empty_password_opens_it_and_another_is_named() {
        let certs = parse_pkcs12(&pfx(""), "ca.p12").unwrap();
        let want = crate::cert::read_certs(CERT).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].sha256, want[0].sha256);
        let e = parse_pkcs12(&pfx("s3cret"), "ca.p12").unwrap_err();
        assert!(matches!(e, CertError::Pkcs12Password { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("ca.p12: a PKCS#12 bundle protected by a password")
        );
        // Cut short, it is a broken bundle, not a password problem.
        let mut cut = pfx("");
        cut.truncate(cut.len() / 2);
        let e = crate::cert::parse_named(&cut, "cut.p12").unwrap_err();
        assert!(!matches!(e, CertError::Pkcs12Password { .. }), "{e}");
        assert!(e.to_string().starts_with("cut.p12: "), "{e}");
    }
}
