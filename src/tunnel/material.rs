//! The TLS material one side of the tunnel uses: trust anchors (the InternalCA), its own
//! certificate chain and private key, loaded from PEM files.
//!
//! Owns checking those files the way OpenSSL's `SSL_CTX_use_certificate`/`_use_PrivateKey`/
//! `check_private_key` do: the key must sign with the crypto provider and belong to the
//! certificate, and nothing more. The certificate itself is not judged here (a v1 leaf, an
//! unknown critical extension or an odd extension value loads, as in OpenSSL): the other side
//! judges it. Reading the files is `cert`'s (its errors name the file and what it holds), where
//! they live (the appliance layout under a PKI root) is `crate::pki`'s knowledge, and judging
//! certificates is `judge`'s.
//!
//! One thing OpenSSL loads and we cannot: an RSA key under 2048 bits. aws-lc-rs, our only
//! crypto provider, refuses such keys in every signing constructor it has (`RsaKeyPair::
//! from_pkcs8`, `from_der`, `from_components` all end in its `validate_rsa_key`: 2048 to 8192
//! bits), exposes no raw RSA private operation to build one on, and reaching its C library
//! directly would take `unsafe`, which this crate forbids. The error says so and names the key
//! file; OpenSSL at security level 1 would load it (at level 2 it refuses it too).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::SigningKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::FromDer;

use super::TunnelError;
use super::chain::{self, PeerCert};
use crate::cert::{self, CertInfo, KeyKind};

/// The three files of one side: `cacert.pem`, `sftunnel-cert.pem`, `sftunnel-key.pem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA bundle this side trusts (`cacert.pem`).
    pub ca: PathBuf,
    /// This side's certificate, then any intermediates (`sftunnel-cert.pem`).
    pub cert: PathBuf,
    /// This side's private key (`sftunnel-key.pem`).
    pub key: PathBuf,
}

/// Loaded material of one side.
#[derive(Debug)]
pub struct Identity {
    /// The CA certificates this side trusts (the InternalCA).
    pub anchors: Vec<CertificateDer<'static>>,
    /// This side's certificate first, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// This side's private key, as read from its file.
    pub key: PrivateKeyDer<'static>,
    /// `key`, loaded by the crypto provider (checked to sign, and to match `chain[0]`).
    pub(crate) signer: Arc<dyn SigningKey>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            anchors: self.anchors.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            signer: self.signer.clone(),
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

/// The subjectPublicKey bits of a SubjectPublicKeyInfo (what [`CertInfo::public_key`] gives
/// for a certificate).
fn spki_bits(spki: &[u8]) -> Option<Vec<u8>> {
    x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .ok()
        .map(|(_, k)| k.subject_public_key.data.to_vec())
}

/// Why the provider would not take the key, in the words of what to do about it.
fn unusable_key(files: &TlsFiles, leaf: &CertInfo, e: &rustls::Error) -> TunnelError {
    if let Some(KeyKind::Rsa { bits }) = leaf.key_kind()
        && *bits < 2048
    {
        return file_err(
            &files.key,
            format!(
                "the {bits}-bit RSA key of {}: sfdiag cannot sign with it (its crypto \
                 provider, aws-lc-rs, signs with RSA keys of 2048 to 8192 bits only); OpenSSL \
                 at security level 1 would load it, at level 2 it refuses it too \
                 (`ee key too small`); reissue the certificate with a 2048-bit key",
                files.cert.display()
            ),
        );
    }
    file_err(&files.key, format!("unusable private key: {e}"))
}

/// What the three files of one side are on disk now (device, inode, size, mtime and ctime to
/// the nanosecond; `None` for a file that cannot be read): a file rewritten, renamed over or
/// removed changes it, so material loaded under an equal stamp is still what the files hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stamp([Option<FileStamp>; 3]);

/// One file's device, inode, size, mtime and ctime (seconds, then nanoseconds).
type FileStamp = (u64, u64, u64, i64, i64, i64, i64);

impl Stamp {
    pub(super) fn of(files: &TlsFiles) -> Self {
        use std::os::unix::fs::MetadataExt;
        let one = |p: &Path| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                )
            })
        };
        Self([one(&files.ca), one(&files.cert), one(&files.key)])
    }
}

impl Identity {
    /// Reads the three files.
    pub fn load(files: &TlsFiles) -> Result<Self, TunnelError> {
        let anchors = certs(&files.ca)?;
        let chain = certs(&files.cert)?;
        let key = cert::read_key(&files.key)?;
        // `read_certs` refuses a file without a certificate, so there is a leaf.
        let leaf = cert::parse(&chain[0]);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let signer = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| unusable_key(files, &leaf, &e))?;
        // Checked here, where both paths are known, by comparing public keys as OpenSSL's
        // check_private_key does (rustls' own check parses the certificate with webpki, which
        // refuses certificates OpenSSL sends: see the module doc).
        let ours = signer.public_key().and_then(|k| spki_bits(&k));
        if let (Some(ours), Some(theirs)) = (ours, leaf.public_key())
            && ours != theirs
        {
            return Err(file_err(
                &files.key,
                format!(
                    "not the private key of {} (their public keys differ); use the key \
                     file issued with that certificate",
                    files.cert.display()
                ),
            ));
        }
        Ok(Self {
            anchors,
            chain,
            key,
            signer,
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
