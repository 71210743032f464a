//! The TLS material one side of the tunnel uses: trust anchors (the InternalCA), its own
//! certificate chain and private key, loaded from PEM files.
//!
//! Owns checking those files (the key belongs to the certificate); reading them is `cert`'s
//! (its errors name the file and what it holds), where they live (the appliance layout under a
//! PKI root) is `crate::pki`'s knowledge, and judging certificates is `judge`'s.

use std::path::{Path, PathBuf};

use rustls::InconsistentKeys;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TunnelError;
use super::chain::{self, PeerCert};
use crate::cert;

/// The three files of one side: `cacert.pem`, `sftunnel-cert.pem`, `sftunnel-key.pem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loaded material of one side.
#[derive(Debug)]
pub struct Identity {
    /// The CA certificates this side trusts (the InternalCA).
    pub anchors: Vec<CertificateDer<'static>>,
    /// This side's certificate first, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            anchors: self.anchors.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> TunnelError {
    TunnelError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Every certificate of a PEM bundle (or DER file), as rustls takes them.
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TunnelError> {
    Ok(cert::read_certs(path)?
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect())
}

impl Identity {
    /// Reads the three files.
    pub fn load(files: &TlsFiles) -> Result<Self, TunnelError> {
        let anchors = certs(&files.ca)?;
        let chain = certs(&files.cert)?;
        let key = cert::read_key(&files.key)?;
        // Checked here, where both paths are known: rustls would only say "KeyMismatch".
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        match CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                return Err(file_err(
                    &files.key,
                    format!(
                        "not the private key of {} (their public keys differ); use the key \
                         file issued with that certificate",
                        files.cert.display()
                    ),
                ));
            }
            Err(e) => return Err(file_err(&files.key, format!("unusable private key: {e}"))),
        }
        Ok(Self {
            anchors,
            chain,
            key,
        })
    }

    /// Facts of this side's own certificate (its UUID is the subject's `title`).
    pub fn cert(&self) -> Option<PeerCert> {
        chain::peer_cert(&self.chain[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_pem(k: &rcgen::KeyPair) -> String {
        rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(k)
            .unwrap()
            .pem()
    }

    fn files_in(d: &Path) -> TlsFiles {
        TlsFiles {
            ca: d.join("ca.pem"),
            cert: d.join("cert.pem"),
            key: d.join("key.pem"),
        }
    }

    #[test]
    fn missing_and_empty_files_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        let files = files_in(d.path());
        let e = Identity::load(&files).unwrap_err().to_string();
        assert!(e.contains("ca.pem"), "{e}");
        std::fs::write(&files.ca, "not pem").unwrap();
        let e = Identity::load(&files).unwrap_err().to_string();
        assert!(
            e.contains("ca.pem: no certificate found") && e.contains("\"not pem\""),
            "{e}"
        );
    }

    #[test]
    fn a_certificate_given_as_the_key_is_named_as_such() {
        let d = tempfile::tempdir().unwrap();
        let pem = self_signed_pem(&rcgen::KeyPair::generate().unwrap());
        let files = files_in(d.path());
        for f in [&files.ca, &files.cert, &files.key] {
            std::fs::write(f, &pem).unwrap();
        }
        let e = Identity::load(&files).unwrap_err().to_string();
        assert!(
            e.ends_with("key.pem: no private key found (PEM blocks: CERTIFICATE)"),
            "{e}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_names_both_files() {
        let d = tempfile::tempdir().unwrap();
        let pem = self_signed_pem;
        let (k1, k2) = (
            rcgen::KeyPair::generate().unwrap(),
            rcgen::KeyPair::generate().unwrap(),
        );
        let files = files_in(d.path());
        std::fs::write(&files.ca, pem(&k1)).unwrap();
        std::fs::write(&files.cert, pem(&k1)).unwrap();
        std::fs::write(&files.key, k2.serialize_pem()).unwrap();
        let e = Identity::load(&files).unwrap_err().to_string();
        assert!(
            e.contains("key.pem") && e.contains("cert.pem") && e.contains("public keys differ"),
            "{e}"
        );
        std::fs::write(&files.key, k1.serialize_pem()).unwrap();
        Identity::load(&files).unwrap();
    }
}
