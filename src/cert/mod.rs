//! cert: DER bytes -> [`CertInfo`], the one description of a certificate every other module
//! uses (reports, the judge, the lab PKI's checks, the live tunnel's verifier).
//!
//! It owns decoding: names (RFC 4514 and OpenSSL one-line forms, with `title` and
//! `generationQualifier` named), validity (UTCTime and GeneralizedTime), serial, key and
//! signature algorithm, the common extensions, the SHA-256 of the DER, and the sftunnel identity
//! read from the DN. [`parse`] never fails and never panics: a certificate x509-parser cannot
//! read as a whole still yields a record with its SHA-256, length, the error, and every field a
//! lenient walk of its structure could recover (see `der`); `decode_error` tells a certificate
//! nothing can decode (what OpenSSL's `d2i_X509`, and so a TLS peer, refuses) from one that
//! decodes with an odd field, and `not_before_lax`/`not_after_lax` a date only OpenSSL 1.0.2's
//! lenient reading accepts. It is also the one reader of PEM and X.509 files, private keys
//! included (`pem`), for every module that loads them. It leaves judging (time, chain,
//! signatures) to `judge`, and file system access to the thin [`read_certs`] and [`read_key`]
//! wrappers around the pure parsers.

// These modules turn wire bytes into lengths and offsets: a silent truncation there is a
// parsing bug, so every narrowing or sign-changing cast is spelled out or justified.
#![warn(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]
#![warn(missing_docs)] // every pub item of cert says what it is (issue 10)

mod alg;
mod der;
mod ext;
mod name;
mod pem;
mod pkcs12;
mod validity;

use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::sftunnel::SubjectRole;

pub use alg::{Curve, Hash, KeyKind, SigScheme, sig_alg_name};
pub use ext::{
    AuthorityKeyId, BasicConstraints, Extension, GeneralName, GeneralSubtree, NameConstraints,
    OID_ANY_EKU, OID_CLIENT_AUTH, OID_SERVER_AUTH, V3Facts, key_usage,
};
pub use name::{Attribute, DistinguishedName, NameError, attribute_name, escape_rfc4514};
pub use pem::{CertError, parse_key_pem, parse_named, parse_pem_bundle, read_certs, read_key};

/// A decoded certificate. Cheap to clone (the DER is shared).
///
/// Fields are `Option` where a damaged certificate may not have them; for a certificate that
/// parsed completely (`parse_error` is `None`) they are all `Some`.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    #[serde(skip)]
    der: Arc<[u8]>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    /// DER length in bytes.
    pub len: usize,
    /// As displayed: 1, 2 or 3.
    pub version: Option<u32>,
    /// Lowercase hex without leading zeros (`0` for zero; `-` prefix if negative).
    pub serial: Option<String>,
    /// The subject name, in JSON as its RFC 4514 string; `None` when it does not decode (the
    /// reason is in `parse_error` and `decode_error`).
    pub subject: Option<DistinguishedName>,
    /// The issuer name, as `subject` is.
    pub issuer: Option<DistinguishedName>,
    /// notBefore in UTC, read leniently (OpenSSL 1.0.2's forms too: see `not_before_lax`);
    /// RFC 3339 in JSON. `None` when it cannot be read even so (the reason is in `parse_error`).
    #[serde(serialize_with = "crate::sftunnel::serialize_opt_rfc3339")]
    pub not_before: Option<OffsetDateTime>,
    /// notAfter, as `not_before` is (see `not_after_lax`).
    #[serde(serialize_with = "crate::sftunnel::serialize_opt_rfc3339")]
    pub not_after: Option<OffsetDateTime>,
    /// OpenSSL's name (`sha256WithRSAEncryption`, `ecdsa-with-SHA384`, `ML-DSA-44`) or the OID.
    pub sig_alg: Option<String>,
    /// `RSA 2048`, `EC P-384`, `Ed25519`, ... or the key algorithm's OID.
    pub key: Option<String>,
    /// The v3 extensions in certificate order; empty when there is no extensions field. One
    /// that does not split into OID, critical flag and value is left out (and named in
    /// `parse_error`).
    pub extensions: Vec<Extension>,
    /// Subject and issuer are the same name (OpenSSL's EXFLAG_SI).
    pub self_issued: bool,
    /// Self-issued, and its authority key identifier and signature algorithm fit its own key
    /// (OpenSSL's EXFLAG_SS: what `verify` calls "self-signed"; the signature is not checked).
    pub self_signed: bool,
    /// Why the certificate did not parse completely, if it did not.
    pub parse_error: Option<String>,
    /// Why nothing could decode this certificate at all (its DER structure is broken: what
    /// OpenSSL's `d2i_X509` refuses, so a TLS peer fails with a decode_error alert before it
    /// verifies anything), in x509-parser's words. `None` for a certificate that decodes, even
    /// if some field in it is odd (see `parse_error`).
    pub decode_error: Option<String>,
    /// Why OpenSSL 1.1.1 and later cannot read notBefore although it reads leniently (as
    /// OpenSSL 1.0.2 did): `UTCTime without seconds`, `... with a time zone offset`, ...
    #[serde(skip)]
    pub not_before_lax: Option<&'static str>,
    /// The same for notAfter.
    #[serde(skip)]
    pub not_after_lax: Option<&'static str>,
    /// Extension facts for verification.
    #[serde(skip)]
    pub v3: V3Facts,
    #[serde(skip)]
    parts: Parts,
}

/// Where the signed pieces are (ranges into `der`), for the judge.
#[derive(Debug, Clone, Default)]
struct Parts {
    tbs: Option<Range<usize>>,
    serial: Option<Range<usize>>,
    /// The BIT STRING content after its unused-bits byte.
    signature: Option<Range<usize>>,
    scheme: Option<SigScheme>,
    spki: Option<alg::Spki>,
    /// The outer signatureAlgorithm and the TBS `signature` field are identical.
    sig_alg_consistent: bool,
}

/// Who an sftunnel certificate belongs to, read from its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SftunnelIdentity {
    /// `internal_ca`, `fmc`, `ftd` or `other`.
    pub role: SubjectRole,
    /// The FMC's UUID for the InternalCA (its CN) and the FMC cert, the device's for an FTD.
    pub uuid: Option<String>,
    /// `title` as written.
    pub title: Option<String>,
    /// `generationQualifier` as written (`sftunnel`, `sftunnel_<uuid>`).
    pub generation_qualifier: Option<String>,
    /// The subject's first CN in DER order, as written (the same as `uuid` for the InternalCA).
    pub common_name: Option<String>,
}

/// Why an authority key identifier rules a candidate issuer out (OpenSSL's X509_check_akid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AkidMismatch {
    /// keyIdentifier differs from the issuer's subjectKeyIdentifier (code 30).
    KeyId,
    /// authorityCertSerialNumber or authorityCertIssuer differs (code 31).
    IssuerSerial,
}

/// What key a DER SubjectPublicKeyInfo holds (`RSA 2048` through [`KeyKind::describe`]),
/// read as a certificate's key is; `None` if it is not one.
pub fn spki_key_kind(spki_der: &[u8]) -> Option<KeyKind> {
    alg::parse_spki(spki_der, 0..spki_der.len())
        .ok()
        .map(|s| s.kind)
}

/// Decodes a certificate. Never fails: see `parse_error` for what could not be read.
pub fn parse(der: &[u8]) -> CertInfo {
    CertInfo::from_arc(Arc::from(der))
}

impl CertInfo {
    /// Decodes a certificate held in shared memory (no copy).
    pub fn from_arc(der: Arc<[u8]>) -> CertInfo {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        let mut info = CertInfo {
            sha256: hex::encode(digest.as_ref()),
            len: der.len(),
            version: None,
            serial: None,
            subject: None,
            issuer: None,
            not_before: None,
            not_after: None,
            sig_alg: None,
            key: None,
            extensions: Vec::new(),
            self_issued: false,
            self_signed: false,
            parse_error: None,
            decode_error: None,
            not_before_lax: None,
            not_after_lax: None,
            v3: V3Facts::default(),
            parts: Parts::default(),
            der: der.clone(),
        };
        let mut errors: Vec<String> = Vec::new();
        // A structural failure: OpenSSL's d2i_X509 (and so a TLS peer) could not decode it.
        let mut structural = false;
        let d: &[u8] = &der;
        let sk = der::skeleton(d);
        if let Some(e) = sk.error {
            errors.push(e.to_string());
            structural = true;
        }
        if let Some(c) = &sk.cert
            && c.end != d.len()
        {
            // A TLS peer checks that the DER fills the certificate entry (cert length mismatch).
            errors.push(format!("{} bytes after the certificate", d.len() - c.end));
            structural = true;
        }
        info.parts.tbs = sk.tbs.clone();

        // Version: [0] EXPLICIT INTEGER, default v1.
        info.version = match &sk.version {
            None if sk.serial.is_some() => Some(1),
            None => None,
            Some(r) => match der::read_tlv(d, r.start).filter(|t| t.tag == der::INTEGER) {
                Some(t) if t.content.len() == 1 && d[t.content.start] < 0x80 => {
                    Some(u32::from(d[t.content.start]) + 1)
                }
                _ => {
                    errors.push("malformed version".into());
                    structural = true;
                    None
                }
            },
        };
        if let Some(r) = &sk.serial {
            let t = der::read_tlv(d, r.start).filter(|t| !t.content.is_empty());
            match t {
                Some(t) => {
                    info.serial = Some(serial_hex(&d[t.content.clone()]));
                    info.parts.serial = Some(t.content);
                }
                None => {
                    errors.push("empty serialNumber".into());
                    structural = true;
                }
            }
        }
        let mut name = |r: &Option<Range<usize>>, what: &str| {
            r.as_ref()
                .and_then(|r| match DistinguishedName::from_der(&d[r.clone()]) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        errors.push(format!("{what}: {e}"));
                        structural = true;
                        None
                    }
                })
        };
        info.issuer = name(&sk.issuer, "issuer");
        info.subject = name(&sk.subject, "subject");
        if let Some(r) = &sk.validity {
            let (nb, na) = validity::parse_validity(d, r.clone());
            structural |= nb.structural || na.structural;
            info.not_before_lax = nb.lax;
            info.not_after_lax = na.lax;
            info.not_before = nb.value.map_err(|e| errors.push(e)).ok();
            info.not_after = na.value.map_err(|e| errors.push(e)).ok();
        }
        if let Some(r) = &sk.spki {
            match alg::parse_spki(d, r.clone()) {
                Ok(spki) => {
                    info.key = Some(spki.kind.describe());
                    info.parts.spki = Some(spki);
                }
                Err(e) => {
                    // OpenSSL 3.0 decodes a certificate whose key it cannot read (the key is
                    // decoded lazily), but not one whose SubjectPublicKeyInfo is no SEQUENCE
                    // of an AlgorithmIdentifier and a BIT STRING.
                    structural |= alg::spki_is_malformed(d, r.clone());
                    errors.push(e.to_string());
                }
            }
        }
        if let Some(r) = &sk.sig_alg {
            match alg::parse_alg_id(d, r.clone()) {
                Some(a) => {
                    info.sig_alg = Some(sig_alg_name(&a.oid).map_or(a.oid.clone(), String::from));
                    let scheme = alg::sig_scheme(d, &a);
                    if scheme == SigScheme::RsaPssMalformed {
                        errors.push("malformed RSASSA-PSS parameters".into());
                    }
                    info.parts.scheme = Some(scheme);
                }
                None => errors.push("malformed signatureAlgorithm".into()),
            }
            info.parts.sig_alg_consistent = sk
                .tbs_sig_alg
                .as_ref()
                .is_some_and(|t| d[t.clone()] == d[r.clone()]);
        }
        if let Some(r) = &sk.signature {
            // The unused-bits byte must be 0 for a signature.
            if d.get(r.start) == Some(&0) {
                info.parts.signature = Some(r.start + 1..r.end);
            } else {
                errors.push("signature BIT STRING has unused bits".into());
            }
        }
        if let Some(r) = &sk.extensions {
            let (exts, facts, err) = ext::parse_extensions(d, r.clone());
            info.extensions = exts;
            structural |= facts.malformed_list;
            info.v3 = facts;
            if let Some(e) = err {
                errors.push(e);
            }
        }

        // x509-parser is the parser of record: what it refuses is reported even when our walk
        // found every field (e.g. a value x509-parser's stricter string rules reject).
        if errors.is_empty()
            && let Err(e) = x509_parser::parse_x509_certificate(d)
        {
            errors.push(format!("x509-parser: {e}"));
        }

        if let (Some(s), Some(i)) = (&info.subject, &info.issuer) {
            info.self_issued = s.matches(i);
        }
        info.self_signed =
            info.self_issued && info.akid_check(&info).is_ok() && info.signature_fits_key_of(&info);
        if !errors.is_empty() {
            info.parse_error = Some(errors.join("; "));
        }
        if structural {
            // x509-parser is the parser of record for the reason; our walk's words follow,
            // saying which part is broken (alone if x509-parser unexpectedly accepts it).
            let ours = info.parse_error.clone().unwrap_or_default();
            info.decode_error = Some(match x509_parser::parse_x509_certificate(d) {
                Err(e) => format!("{e} ({ours})"),
                Ok(_) => ours,
            });
        }
        info
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The shared DER (for handing to rustls or keeping beside a report).
    pub fn der_arc(&self) -> &Arc<[u8]> {
        &self.der
    }

    /// The signed TBSCertificate bytes.
    pub fn tbs(&self) -> Option<&[u8]> {
        self.parts.tbs.clone().map(|r| &self.der[r])
    }

    /// The serial's DER content octets (for exact comparisons).
    pub fn serial_raw(&self) -> Option<&[u8]> {
        self.parts.serial.clone().map(|r| &self.der[r])
    }

    /// The signature value bytes.
    pub fn signature(&self) -> Option<&[u8]> {
        self.parts.signature.clone().map(|r| &self.der[r])
    }

    /// How the signature is to be verified.
    pub fn sig_scheme(&self) -> Option<&SigScheme> {
        self.parts.scheme.as_ref()
    }

    /// The subject public key's kind.
    pub fn key_kind(&self) -> Option<&KeyKind> {
        self.parts.spki.as_ref().map(|s| &s.kind)
    }

    /// The subject public key bits (RSAPublicKey DER, EC point, raw Ed25519 key).
    pub fn public_key(&self) -> Option<&[u8]> {
        self.parts.spki.as_ref().map(|s| &self.der[s.key.clone()])
    }

    /// The outer signatureAlgorithm equals the TBS `signature` field.
    pub fn sig_alg_consistent(&self) -> bool {
        self.parts.sig_alg_consistent
    }

    /// True when every field was read and x509-parser accepts the certificate.
    pub fn is_complete(&self) -> bool {
        self.parse_error.is_none()
    }

    /// basicConstraints CA:TRUE.
    pub fn is_ca(&self) -> bool {
        self.v3.basic_constraints.is_some_and(|b| b.ca)
    }

    /// Subject CN (first in DER order).
    pub fn common_name(&self) -> Option<&str> {
        self.subject.as_ref()?.get("CN")
    }

    /// Subject `title` (2.5.4.12): the sftunnel device or FMC UUID, or `InternalCA`.
    pub fn title(&self) -> Option<&str> {
        self.subject.as_ref()?.get("title")
    }

    /// Subject `generationQualifier` (2.5.4.44): `sftunnel` or `sftunnel_<uuid>`.
    pub fn generation_qualifier(&self) -> Option<&str> {
        self.subject.as_ref()?.get("generationQualifier")
    }

    /// The sftunnel identity in the subject DN.
    pub fn sftunnel_identity(&self) -> SftunnelIdentity {
        let title = self.title().map(str::to_string);
        let gq = self.generation_qualifier().map(str::to_string);
        let cn = self.common_name().map(str::to_string);
        let (role, uuid) = match (title.as_deref(), gq.as_deref()) {
            (Some("InternalCA"), _) => (SubjectRole::InternalCa, cn.clone()),
            (Some(t), Some("sftunnel")) => (SubjectRole::Fmc, Some(t.to_string())),
            (Some(t), Some(g)) if g.starts_with("sftunnel_") => {
                (SubjectRole::Ftd, Some(t.to_string()))
            }
            (t, _) => (SubjectRole::Other, t.map(str::to_string)),
        };
        SftunnelIdentity {
            role,
            uuid,
            title,
            generation_qualifier: gq,
            common_name: cn,
        }
    }

    /// OpenSSL's X509_check_akid: does this certificate's authorityKeyIdentifier allow
    /// `issuer` as its issuer? (No AKI, or fields absent on either side, allow it.)
    pub fn akid_check(&self, issuer: &CertInfo) -> Result<(), AkidMismatch> {
        let Some(aki) = &self.v3.authority_key_id else {
            return Ok(());
        };
        if let (Some(k), Some(s)) = (&aki.key_id, &issuer.v3.subject_key_id)
            && k != s
        {
            return Err(AkidMismatch::KeyId);
        }
        if let Some(serial) = &aki.serial
            && issuer.serial_raw() != Some(serial.as_slice())
        {
            return Err(AkidMismatch::IssuerSerial);
        }
        if let (Some(n), Some(ii)) = (&aki.issuer, &issuer.issuer)
            && !n.matches(ii)
        {
            return Err(AkidMismatch::IssuerSerial);
        }
        Ok(())
    }

    /// OpenSSL 3.0's check_sig_alg_match: this certificate's signature algorithm is one that
    /// `issuer`'s key type can make (and one OpenSSL 3.0 knows).
    pub fn signature_fits_key_of(&self, issuer: &CertInfo) -> bool {
        use SigScheme as S;
        match (self.sig_scheme(), issuer.key_kind()) {
            (Some(S::RsaPkcs1(_)), Some(KeyKind::Rsa { .. })) => true,
            (Some(S::RsaPss { .. } | S::RsaPssMalformed), Some(KeyKind::Rsa { .. })) => true,
            (Some(S::Ecdsa(_)), Some(KeyKind::Ec(_))) => true,
            (Some(S::Ed25519), Some(KeyKind::Ed25519)) => true,
            (Some(S::Ed448), Some(KeyKind::Ed448)) => true,
            // OpenSSL 3.0 knows neither ML-DSA nor unknown key types (OBJ_find_sigid_algs
            // fails), so such a certificate is never "self-signed" nor anyone's issuer there.
            _ => false,
        }
    }
}

/// The content octets of the DER TLV `tlv` when its tag is `tag` and it fills `tlv` exactly.
pub(crate) fn der_string(tlv: &[u8], tag: u8) -> Option<&[u8]> {
    let t = der::read_tlv(tlv, 0).filter(|t| t.tag == tag && t.full.end == tlv.len())?;
    Some(&tlv[t.content])
}

/// Serial content octets -> lowercase hex without leading zeros.
fn serial_hex(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // Two's complement -> magnitude.
        let mut m: Vec<u8> = raw.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        raw.to_vec()
    };
    let h = hex::encode(magnitude);
    let h = h.trim_start_matches('0');
    match (h.is_empty(), negative) {
        (true, _) => "0".into(),
        (false, true) => format!("-{h}"),
        (false, false) => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_forms() {
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[0x0e]), "e");
        assert_eq!(serial_hex(&[0x00, 0xe2, 0xbc]), "e2bc");
        assert_eq!(serial_hex(&[0x01, 0x00]), "100");
        assert_eq!(serial_hex(&[0xff]), "-1");
        assert_eq!(serial_hex(&[0xff, 0x00]), "-100");
    }

    #[test]
    fn garbage_gives_a_record_not_a_panic() {
        for bytes in [
            &[][..],
            &[0x30],
            &[0x30, 0x00],
            &[0x30, 0x03, 0x30, 0x01, 0x02],
            &[0x02, 0x01, 0x00],
            &[0xff; 64],
        ] {
            let c = parse(bytes);
            assert_eq!(c.len, bytes.len());
            assert_eq!(c.sha256.len(), 64);
            assert!(c.parse_error.is_some(), "{bytes:?}");
            assert!(c.subject.is_none());
        }
    }
}
