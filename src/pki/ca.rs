//! The InternalCA and the certificates it issues.
//!
//! The appliance's InternalCA is an X.509 **v1** certificate (no version field, no extensions,
//! serial 0). rcgen only writes v3, so the CA's TBSCertificate is written here with yasna and
//! signed with the rcgen/aws-lc-rs key (RSA PKCS#1 v1.5, SHA-256). Peer certificates are v3 and
//! made by rcgen with the CA as issuer; their issuer Name comes from the same `Dn` as the CA's
//! subject, so the bytes match. Times are arguments: nothing here reads the clock.

use rcgen::{
    CertificateParams, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
    PublicKeyData, SerialNumber, SigningKey,
};
use std::path::Path;
use time::{OffsetDateTime, Time, UtcOffset};
use yasna::DERWriter;
use yasna::models::{GeneralizedTime, ObjectIdentifier, UTCTime};

use super::names::Dn;
use super::{PkiError, Uuid, first_cert};

/// sha256WithRSAEncryption (RFC 4055).
const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];

/// A certificate's validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// notBefore (whole seconds are written; sub-seconds are dropped).
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// A window from `not_before` to `not_after`, both writable in X.509 and in order.
    pub fn new(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Self, PkiError> {
        let not_before = x509_time(not_before)?;
        let not_after = x509_time(not_after)?;
        if not_before > not_after {
            return Err(PkiError::InvalidValidity {
                not_before,
                not_after,
            });
        }
        Ok(Validity {
            not_before,
            not_after,
        })
    }

    /// `days` days from `not_before` (the appliance's InternalCA: 3650).
    pub fn days(not_before: OffsetDateTime, days: u32) -> Result<Self, PkiError> {
        let not_after = not_before
            .checked_add(time::Duration::days(days.into()))
            .ok_or(PkiError::TimeOutOfRange { time: not_before })?;
        Validity::new(not_before, not_after)
    }
}

/// UTC, whole seconds, years 0..=9999 (GeneralizedTime's range).
fn x509_time(t: OffsetDateTime) -> Result<OffsetDateTime, PkiError> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return Err(PkiError::TimeOutOfRange { time: t });
    }
    let whole = Time::from_hms(t.hour(), t.minute(), t.second())
        .map_err(|_| PkiError::TimeOutOfRange { time: t })?;
    Ok(t.replace_time(whole))
}

/// RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 (and before 1950).
fn write_time(w: DERWriter, t: OffsetDateTime) {
    if (1950..2050).contains(&t.year()) {
        w.write_utctime(&UTCTime::from_datetime(t));
    } else {
        w.write_generalized_time(&GeneralizedTime::from_datetime(t));
    }
}

fn write_sig_alg(w: DERWriter) {
    w.write_sequence(|w| {
        w.next()
            .write_oid(&ObjectIdentifier::from_slice(SHA256_WITH_RSA));
        w.next().write_null();
    });
}

/// Which peer a certificate is for: decides the subject name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerProfile {
    /// The FMC's own sftunnel certificate (`CN=localhost`).
    Fmc(Uuid),
    /// A managed device's (or an HA secondary's) certificate (no CN).
    Device(Uuid),
}

impl PeerProfile {
    /// The subject name this peer's certificate carries.
    pub fn subject(&self) -> Dn {
        match self {
            PeerProfile::Fmc(u) => Dn::fmc_peer(u),
            PeerProfile::Device(u) => Dn::device_peer(u),
        }
    }
}

/// The InternalCA: its v1 certificate and the key that signs peer certificates.
pub struct InternalCa {
    fmc_uuid: Uuid,
    dn: Dn,
    cert_der: Vec<u8>,
    key: KeyPair,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa")
            .field("fmc_uuid", &self.fmc_uuid)
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

impl InternalCa {
    /// Makes the v1 self-signed InternalCA for the FMC `fmc_uuid`, serial 0, signed with `key`
    /// (which must be RSA).
    pub fn create(fmc_uuid: Uuid, key: KeyPair, validity: &Validity) -> Result<Self, PkiError> {
        if key.algorithm() != &PKCS_RSA_SHA256 {
            return Err(PkiError::Sign {
                what: "InternalCA".into(),
                reason: "the InternalCA key must be RSA".into(),
            });
        }
        let dn = Dn::internal_ca(&fmc_uuid);
        let spki = key.subject_public_key_info();
        // TBSCertificate without the [0] version field: v1 is the DEFAULT, and DER omits
        // defaults, which is exactly how OpenSSL and the appliance write a v1 certificate.
        let tbs = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(0); // serialNumber 0
                write_sig_alg(w.next());
                dn.write(w.next()); // issuer
                w.next().write_sequence(|w| {
                    write_time(w.next(), validity.not_before);
                    write_time(w.next(), validity.not_after);
                });
                dn.write(w.next()); // subject
                w.next().write_der(&spki);
            })
        });
        let sig = key.sign(&tbs).map_err(|e| PkiError::Sign {
            what: "InternalCA".into(),
            reason: e.to_string(),
        })?;
        let cert_der = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_der(&tbs);
                write_sig_alg(w.next());
                w.next().write_bitvec_bytes(&sig, sig.len() * 8);
            })
        });
        Ok(InternalCa {
            fmc_uuid,
            dn,
            cert_der,
            key,
        })
    }

    /// Takes an existing InternalCA back (renewal, issuing for a new device): the certificate
    /// must carry our InternalCA name byte for byte (so issued certs chain to it) and `key`
    /// must be its key. `path` names the certificate in errors.
    pub fn from_parts(cert_der: Vec<u8>, key: KeyPair, path: &Path) -> Result<Self, PkiError> {
        let bad = |reason: String| PkiError::NotInternalCa {
            path: path.to_path_buf(),
            reason,
        };
        let cert = crate::cert::parse(&cert_der);
        if let Some(e) = &cert.parse_error {
            return Err(bad(format!("not a DER certificate: {e}")));
        }
        let cn = cert
            .common_name()
            .ok_or_else(|| bad("subject has no CN".into()))?;
        let fmc_uuid: Uuid = cn
            .parse()
            .map_err(|_| bad(format!("subject CN {cn:?} is not an FMC UUID")))?;
        let dn = Dn::internal_ca(&fmc_uuid);
        if cert.subject.as_ref().map(|n| n.der()) != Some(dn.to_der().as_slice()) {
            return Err(bad(format!(
                "subject is not {} in the appliance's order with UTF8String values",
                dn.to_rfc4514()
            )));
        }
        // The subjectPublicKey bits: what a certificate of this key carries.
        if cert.public_key() != Some(rcgen::PublicKeyData::der_bytes(&key)) {
            return Err(bad("the key does not belong to this certificate".into()));
        }
        Ok(InternalCa {
            fmc_uuid,
            dn,
            cert_der,
            key,
        })
    }

    /// Reads `cacert.pem` and `cakey.pem`.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let der = first_cert(cert_path)?.der().to_vec();
        let key = super::load_key(key_path)?;
        Self::from_parts(der, key, cert_path)
    }

    /// The FMC UUID in the CA's CN.
    pub fn fmc_uuid(&self) -> Uuid {
        self.fmc_uuid
    }

    /// The CA's name (subject = issuer).
    pub fn dn(&self) -> &Dn {
        &self.dn
    }

    /// The v1 certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The v1 certificate, PEM.
    pub fn cert_pem(&self) -> String {
        super::cert_to_pem(&self.cert_der)
    }

    /// The CA's key pair.
    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// Issues a v3 peer certificate for `subject_key` with serial `serial` and three
    /// extensions: keyUsage (digitalSignature, keyEncipherment; critical), subjectKeyIdentifier
    /// (SHA-1 of the public key, as OpenSSL's `hash`), basicConstraints CA:FALSE (critical).
    pub fn issue(
        &self,
        profile: PeerProfile,
        subject_key: &impl PublicKeyData,
        serial: u64,
        validity: &Validity,
    ) -> Result<Vec<u8>, PkiError> {
        let mut params = CertificateParams::default();
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(SerialNumber::from_slice(&minimal_be(serial)));
        params.distinguished_name = profile.subject().to_rcgen();
        // ExplicitNoCa: rcgen writes basicConstraints (CA:FALSE) and the subjectKeyIdentifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.key_identifier_method = KeyIdMethod::PreSpecified(openssl_key_id(subject_key));

        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = self.dn.to_rcgen();
        let issuer = Issuer::new(ca_params, &self.key);
        let cert = params
            .signed_by(subject_key, &issuer)
            .map_err(|e| PkiError::Sign {
                what: profile.subject().to_rfc4514(),
                reason: e.to_string(),
            })?;
        Ok(cert.der().to_vec())
    }
}

/// Reads the CA's next serial number (hex, one line, as OpenSSL's `serial` file).
pub fn read_next_serial(path: &Path) -> Result<u64, PkiError> {
    let text = // Bounded, and a FIFO or device is refused at once (crate::files).
    crate::files::read_text_bounded(path, crate::files::MAX_CERT_FILE, crate::files::Links::Follow).map_err(|e| PkiError::io("read", path, e))?;
    u64::from_str_radix(text.trim(), 16).map_err(|_| PkiError::Parse {
        path: path.to_path_buf(),
        reason: format!("serial {:?} is not a hex number", text.trim()),
    })
}

/// Stores the CA's next serial number (atomically).
pub fn write_next_serial(path: &Path, next: u64) -> Result<(), PkiError> {
    super::fsio::write_atomic(
        path,
        format!("{next:02X}\n").as_bytes(),
        super::fsio::PUBLIC_MODE,
    )
}

/// RFC 5280 4.2.1.2 method (1), what OpenSSL's `subjectKeyIdentifier=hash` computes: SHA-1 of
/// the subjectPublicKey BIT STRING's contents.
fn openssl_key_id(key: &impl PublicKeyData) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        key.der_bytes(),
    )
    .as_ref()
    .to_vec()
}

/// Big-endian bytes without leading zeros (at least one byte).
fn minimal_be(n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len() - 1);
    b[first..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use x509_parser::prelude::{
        SubjectPublicKeyInfo, X509Certificate, X509Version, parse_x509_certificate,
    };

    fn uuid(s: &str) -> Uuid {
        s.parse().unwrap()
    }

    fn verify(c: &X509Certificate<'_>, by: &SubjectPublicKeyInfo<'_>) {
        use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &by.subject_public_key.data)
            .verify(c.tbs_certificate.as_ref(), &c.signature_value.data)
            .unwrap();
    }

    fn ca() -> InternalCa {
        let key = crate::pki::generate_rsa_key(2048).unwrap();
        let v = Validity::days(datetime!(2024-10-05 12:16:56 UTC), 3650).unwrap();
        InternalCa::create(uuid("cdb123c8-4347-11ef-aca1-f3aa241412a1"), key, &v).unwrap()
    }

    #[test]
    fn ca_is_v1_serial_0_self_signed() {
        let ca = ca();
        let (rest, c) = parse_x509_certificate(ca.cert_der()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(c.version(), X509Version::V1);
        assert_eq!(c.raw_serial(), &[0]);
        assert!(c.extensions().is_empty());
        assert_eq!(c.subject().as_raw(), c.issuer().as_raw());
        assert_eq!(
            c.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.11"
        );
        verify(&c, c.public_key());
        assert_eq!(
            c.validity().not_after.to_datetime(),
            datetime!(2034-10-03 12:16:56 UTC)
        );
    }

    #[test]
    fn peer_cert_chains_to_the_ca_with_three_extensions() {
        let ca = ca();
        let key = crate::pki::generate_rsa_key(2048).unwrap();
        let dev = uuid("c8d5d5c6-87c9-11ef-a993-b9831565bc4e");
        let v = Validity::days(datetime!(2024-10-05 12:16:56 UTC), 3650).unwrap();
        let der = ca.issue(PeerProfile::Device(dev), &key, 15, &v).unwrap();
        let (_, c) = parse_x509_certificate(&der).unwrap();
        let (_, cac) = parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(c.version(), X509Version::V3);
        assert_eq!(c.raw_serial(), &[0x0f]);
        assert_eq!(c.issuer().as_raw(), cac.subject().as_raw());
        verify(&c, cac.public_key());
        assert_eq!(c.extensions().len(), 3);
        assert!(!c.is_ca());
        assert_eq!(
            c.subject().as_raw(),
            Dn::device_peer(&dev).to_der().as_slice()
        );
    }

    #[test]
    fn ca_round_trips_through_from_parts_and_rejects_other_keys() {
        let ca = ca();
        let pem = ca.key().serialize_pem();
        let key = KeyPair::from_pem(&pem).unwrap();
        let again = InternalCa::from_parts(ca.cert_der().to_vec(), key, Path::new("c")).unwrap();
        assert_eq!(again.fmc_uuid(), ca.fmc_uuid());
        let other = crate::pki::generate_rsa_key(2048).unwrap();
        let e = InternalCa::from_parts(ca.cert_der().to_vec(), other, Path::new("c")).unwrap_err();
        assert!(e.to_string().contains("key does not belong"), "{e}");
    }

    #[test]
    fn validity_checks_order_and_range_and_picks_time_types() {
        let a = datetime!(2030-01-01 0:00 UTC);
        assert!(Validity::new(a, a - time::Duration::SECOND).is_err());
        assert!(Validity::new(datetime!(-0001-01-01 0:00 UTC), a).is_err());
        let w = yasna::construct_der(|w| write_time(w, datetime!(2049-12-31 23:59:59 UTC)));
        assert_eq!(w[0], 0x17); // UTCTime
        let w = yasna::construct_der(|w| write_time(w, datetime!(2050-01-01 0:00 UTC)));
        assert_eq!(w[0], 0x18); // GeneralizedTime
        assert_eq!(minimal_be(0), vec![0]);
        assert_eq!(minimal_be(0x1234), vec![0x12, 0x34]);
    }
}
