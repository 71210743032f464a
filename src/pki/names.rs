//! The distinguished names sftunnel expects, in the appliance's DER order.
//!
//! Owns the three name shapes (InternalCA, the FMC's peer cert, a device's peer cert) and their
//! DER encoding: one attribute per RDN, every value a UTF8String. The same `Dn` feeds both our
//! own v1 CA writer (yasna) and rcgen's issuer/subject, so the issuer bytes of every peer
//! certificate equal the CA's subject bytes exactly (OpenSSL compares them byte for byte after
//! canonicalisation, webpki compares raw bytes).

use yasna::DERWriter;
use yasna::models::ObjectIdentifier;

use super::Uuid;

/// The organisation every sftunnel name carries.
pub(super) const ORGANIZATION: &str = "Cisco Systems, Inc";
/// The organisational unit every sftunnel name carries.
pub(super) const ORGANIZATIONAL_UNIT: &str = "Intrusion Management System";

/// The attribute types sftunnel names use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    /// `title` (2.5.4.12): "InternalCA" on the CA, the owner's UUID on peer certs.
    Title,
    /// `OU` (2.5.4.11).
    OrganizationalUnit,
    /// `CN` (2.5.4.3).
    CommonName,
    /// `O` (2.5.4.10).
    Organization,
    /// `generationQualifier` (2.5.4.44): `sftunnel` or `sftunnel_<uuid>`.
    GenerationQualifier,
}

impl AttrType {
    /// The attribute's OID arcs.
    pub fn oid(self) -> &'static [u64] {
        match self {
            AttrType::Title => &[2, 5, 4, 12],
            AttrType::OrganizationalUnit => &[2, 5, 4, 11],
            AttrType::CommonName => &[2, 5, 4, 3],
            AttrType::Organization => &[2, 5, 4, 10],
            AttrType::GenerationQualifier => &[2, 5, 4, 44],
        }
    }

    /// The short name OpenSSL prints (`-nameopt RFC2253`).
    pub fn short_name(self) -> &'static str {
        match self {
            AttrType::Title => "title",
            AttrType::OrganizationalUnit => "OU",
            AttrType::CommonName => "CN",
            AttrType::Organization => "O",
            AttrType::GenerationQualifier => "generationQualifier",
        }
    }
}

/// A distinguished name as an ordered list of single-attribute RDNs (DER order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dn(Vec<(AttrType, String)>);

impl Dn {
    /// `title=InternalCA, OU=Intrusion Management System, CN=<FMC uuid>, O=Cisco Systems, Inc`.
    pub fn internal_ca(fmc: &Uuid) -> Dn {
        Dn(vec![
            (AttrType::Title, "InternalCA".into()),
            (AttrType::OrganizationalUnit, ORGANIZATIONAL_UNIT.into()),
            (AttrType::CommonName, fmc.to_string()),
            (AttrType::Organization, ORGANIZATION.into()),
        ])
    }

    /// `generationQualifier=sftunnel, title=<FMC uuid>, O=Cisco Systems, Inc,
    /// OU=Intrusion Management System, CN=localhost`.
    pub fn fmc_peer(fmc: &Uuid) -> Dn {
        Dn(vec![
            (AttrType::GenerationQualifier, "sftunnel".into()),
            (AttrType::Title, fmc.to_string()),
            (AttrType::Organization, ORGANIZATION.into()),
            (AttrType::OrganizationalUnit, ORGANIZATIONAL_UNIT.into()),
            (AttrType::CommonName, "localhost".into()),
        ])
    }

    /// `generationQualifier=sftunnel_<uuid>, title=<device uuid>, O=Cisco Systems, Inc,
    /// OU=Intrusion Management System` (no CN: the FMC never checks a device's host name).
    pub fn device_peer(device: &Uuid) -> Dn {
        Dn(vec![
            (AttrType::GenerationQualifier, format!("sftunnel_{device}")),
            (AttrType::Title, device.to_string()),
            (AttrType::Organization, ORGANIZATION.into()),
            (AttrType::OrganizationalUnit, ORGANIZATIONAL_UNIT.into()),
        ])
    }

    /// The attributes in DER order.
    pub fn attributes(&self) -> &[(AttrType, String)] {
        &self.0
    }

    /// Writes the Name (SEQUENCE OF SET OF AttributeTypeAndValue).
    pub fn write(&self, w: DERWriter) {
        w.write_sequence(|w| {
            for (ty, value) in &self.0 {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(ty.oid()));
                        w.next().write_utf8_string(value);
                    });
                });
            }
        });
    }

    /// The Name's DER bytes.
    pub fn to_der(&self) -> Vec<u8> {
        yasna::construct_der(|w| self.write(w))
    }

    /// The same name for rcgen (insertion order is DER order; values UTF8String).
    pub(crate) fn to_rcgen(&self) -> rcgen::DistinguishedName {
        let mut dn = rcgen::DistinguishedName::new();
        for (ty, value) in &self.0 {
            dn.push(
                rcgen::DnType::CustomDnType(ty.oid().to_vec()),
                rcgen::DnValue::Utf8String(value.clone()),
            );
        }
        dn
    }

    /// RFC 4514 text, last RDN first, as `openssl x509 -nameopt RFC2253` prints it.
    pub fn to_rfc4514(&self) -> String {
        self.0
            .iter()
            .rev()
            .map(|(ty, v)| format!("{}={}", ty.short_name(), crate::cert::escape_rfc4514(v)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmc() -> Uuid {
        "cdb123c8-4347-11ef-aca1-f3aa241412a1".parse().unwrap()
    }

    #[test]
    fn ca_name_in_appliance_order() {
        assert_eq!(
            Dn::internal_ca(&fmc()).to_rfc4514(),
            "O=Cisco Systems\\, Inc,CN=cdb123c8-4347-11ef-aca1-f3aa241412a1,\
             OU=Intrusion Management System,title=InternalCA"
        );
    }

    #[test]
    fn yasna_and_rcgen_encode_the_same_bytes() {
        // rcgen writes the issuer of every peer cert from `to_rcgen`; our v1 CA writes its
        // subject with `write`. Compare through a self-signed rcgen cert's issuer field.
        let dn = Dn::internal_ca(&fmc());
        let der = dn.to_der();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = dn.to_rcgen();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(parsed.issuer().as_raw(), der.as_slice());
    }
}
