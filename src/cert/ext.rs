//! X.509 v3 extensions: a printable summary of each (name, critical, short value) and the facts
//! the judge needs (basicConstraints, keyUsage, extendedKeyUsage, key identifiers, critical
//! extensions OpenSSL does not handle, extensions OpenSSL would call invalid).
//!
//! Each extension is decoded by x509-parser on its own, so one malformed extension is recorded
//! as such without losing the others.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;

use super::der::Children;
use super::name::DistinguishedName;

/// One extension as reports print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    /// Dotted OID.
    pub oid: String,
    /// OpenSSL's short name (`basicConstraints`, `keyUsage`, ...) when known.
    pub name: Option<&'static str>,
    pub critical: bool,
    /// A short value for the common extensions (`CA:TRUE`, `Digital Signature, ...`), the
    /// parse error for a malformed one, `None` otherwise.
    pub value: Option<String>,
}

/// basicConstraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BasicConstraints {
    pub ca: bool,
    pub path_len: Option<u32>,
}

/// authorityKeyIdentifier, as X509_check_akid uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorityKeyId {
    pub key_id: Option<Vec<u8>>,
    /// The first directoryName of authorityCertIssuer.
    pub issuer: Option<DistinguishedName>,
    /// authorityCertSerialNumber's content octets.
    pub serial: Option<Vec<u8>>,
}

/// keyUsage bits (bit 0 = digitalSignature ... bit 8 = decipherOnly).
pub mod key_usage {
    pub const DIGITAL_SIGNATURE: u16 = 1 << 0;
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
    pub const CRL_SIGN: u16 = 1 << 6;
}

/// The extension facts a verifier needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct V3Facts {
    pub basic_constraints: Option<BasicConstraints>,
    pub key_usage: Option<u16>,
    /// extendedKeyUsage purposes as dotted OIDs.
    pub ext_key_usage: Option<Vec<String>>,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<AuthorityKeyId>,
    /// Netscape cert type bits, when present (OpenSSL still honours its CA bits).
    pub ns_cert_type: Option<u8>,
    /// A critical extension OpenSSL does not handle (code 34), by OID.
    pub unhandled_critical: Option<String>,
    /// Why OpenSSL would flag the extensions invalid (its EXFLAG_INVALID): a duplicate, one of
    /// the extensions it caches (basicConstraints, keyUsage, extendedKeyUsage, key identifiers,
    /// subjectAltName, nameConstraints, crlDistributionPoints, proxyCertInfo, nsCertType) that
    /// does not decode.
    pub invalid: Option<String>,
}

pub const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
pub const OID_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
pub const OID_ANY_EKU: &str = "2.5.29.37.0";

fn ext_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.15" => "keyUsage",
        "2.5.29.17" => "subjectAltName",
        "2.5.29.18" => "issuerAltName",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.30" => "nameConstraints",
        "2.5.29.31" => "crlDistributionPoints",
        "2.5.29.32" => "certificatePolicies",
        "2.5.29.33" => "policyMappings",
        "2.5.29.35" => "authorityKeyIdentifier",
        "2.5.29.36" => "policyConstraints",
        "2.5.29.37" => "extendedKeyUsage",
        "2.5.29.54" => "inhibitAnyPolicy",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        "1.3.6.1.5.5.7.1.11" => "subjectInfoAccess",
        "1.3.6.1.5.5.7.1.14" => "proxyCertInfo",
        "1.3.6.1.5.5.7.1.24" => "tlsfeature",
        "1.3.6.1.5.5.7.48.1.5" => "noCheck",
        "1.3.6.1.4.1.11129.2.4.2" => "ct_precert_scts",
        "1.3.6.1.4.1.11129.2.4.3" => "ct_precert_poison",
        "2.16.840.1.113730.1.1" => "nsCertType",
        "2.16.840.1.113730.1.13" => "nsComment",
        _ => return None,
    })
}

/// Extensions OpenSSL 3.0 knows how to enforce (X509_supported_extension); any other
/// extension marked critical makes it fail with code 34.
fn openssl_supported(oid: &str) -> bool {
    matches!(
        oid,
        "2.16.840.1.113730.1.1" // nsCertType
            | "2.5.29.15" // keyUsage
            | "2.5.29.17" // subjectAltName
            | "2.5.29.19" // basicConstraints
            | "2.5.29.32" // certificatePolicies
            | "2.5.29.31" // crlDistributionPoints
            | "2.5.29.37" // extendedKeyUsage
            | "1.3.6.1.5.5.7.1.7" // sbgp-ipAddrBlock
            | "1.3.6.1.5.5.7.1.8" // sbgp-autonomousSysNum
            | "1.3.6.1.5.5.7.48.1.5" // OCSP noCheck
            | "2.5.29.36" // policyConstraints
            | "1.3.6.1.5.5.7.1.14" // proxyCertInfo
            | "2.5.29.30" // nameConstraints
            | "2.5.29.33" // policyMappings
            | "2.5.29.54" // inhibitAnyPolicy
    )
}

fn eku_name(oid: &str) -> &str {
    match oid {
        OID_SERVER_AUTH => "serverAuth",
        OID_CLIENT_AUTH => "clientAuth",
        "1.3.6.1.5.5.7.3.3" => "codeSigning",
        "1.3.6.1.5.5.7.3.4" => "emailProtection",
        "1.3.6.1.5.5.7.3.8" => "timeStamping",
        "1.3.6.1.5.5.7.3.9" => "OCSPSigning",
        OID_ANY_EKU => "anyExtendedKeyUsage",
        other => other,
    }
}

const KU_NAMES: [&str; 9] = [
    "Digital Signature",
    "Non Repudiation",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Certificate Sign",
    "CRL Sign",
    "Encipher Only",
    "Decipher Only",
];

fn general_name(g: &GeneralName<'_>) -> String {
    match g {
        GeneralName::DNSName(s) => format!("DNS:{s}"),
        GeneralName::RFC822Name(s) => format!("email:{s}"),
        GeneralName::URI(s) => format!("URI:{s}"),
        GeneralName::IPAddress(b) => match b.len() {
            4 => format!("IP Address:{}", Ipv4Addr::new(b[0], b[1], b[2], b[3])),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                format!("IP Address:{}", Ipv6Addr::from(a))
            }
            _ => format!("IP Address:<invalid {}>", hex::encode(b)),
        },
        GeneralName::DirectoryName(n) => match DistinguishedName::from_der(n.as_raw()) {
            Ok(dn) => format!("DirName:{}", dn.oneline()),
            Err(_) => "DirName:<invalid>".into(),
        },
        GeneralName::RegisteredID(oid) => format!("Registered ID:{}", oid.to_id_string()),
        GeneralName::OtherName(oid, _) => format!("othername:{}", oid.to_id_string()),
        GeneralName::X400Address(_) => "X400Name:<unsupported>".into(),
        GeneralName::EDIPartyName(_) => "EdiPartyName:<unsupported>".into(),
        GeneralName::Invalid(_, b) => format!("<invalid {}>", hex::encode(b)),
    }
}

/// Decodes the SEQUENCE OF Extension content at `range` of `der`.
pub(crate) fn parse_extensions(
    der: &[u8],
    range: std::ops::Range<usize>,
) -> (Vec<Extension>, V3Facts, Option<String>) {
    let mut exts = Vec::new();
    let mut facts = V3Facts::default();
    let mut error = None;
    let mut seen: Vec<String> = Vec::new();
    let mut children = Children::new(der, range);
    for tlv in children.by_ref() {
        let bytes = &der[tlv.full];
        let ext = match X509Extension::from_der(bytes) {
            Ok((_, e)) => e,
            Err(e) => {
                error.get_or_insert_with(|| format!("malformed extension: {e}"));
                facts
                    .invalid
                    .get_or_insert_with(|| "an extension does not decode".into());
                continue;
            }
        };
        let oid = ext.oid.to_id_string();
        if seen.contains(&oid) {
            facts
                .invalid
                .get_or_insert_with(|| format!("duplicate extension {oid}"));
        }
        seen.push(oid.clone());
        if ext.critical && !openssl_supported(&oid) && facts.unhandled_critical.is_none() {
            facts.unhandled_critical = Some(oid.clone());
        }
        let value = summarize(&ext, &oid, &mut facts);
        exts.push(Extension {
            name: ext_name(&oid),
            oid,
            critical: ext.critical,
            value,
        });
    }
    if children.truncated() {
        error.get_or_insert_with(|| "extensions truncated".into());
        facts
            .invalid
            .get_or_insert_with(|| "extensions truncated".into());
    }
    (exts, facts, error)
}

fn summarize(ext: &X509Extension<'_>, oid: &str, facts: &mut V3Facts) -> Option<String> {
    let join = |v: Vec<String>| v.join(", ");
    match ext.parsed_extension() {
        ParsedExtension::BasicConstraints(bc) => {
            facts.basic_constraints = Some(BasicConstraints {
                ca: bc.ca,
                path_len: bc.path_len_constraint,
            });
            let mut s = format!("CA:{}", if bc.ca { "TRUE" } else { "FALSE" });
            if let Some(n) = bc.path_len_constraint {
                s.push_str(&format!(", pathlen:{n}"));
            }
            Some(s)
        }
        ParsedExtension::KeyUsage(ku) => {
            facts.key_usage = Some(ku.flags);
            Some(join(
                KU_NAMES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| ku.flags & (1 << i) != 0)
                    .map(|(_, n)| n.to_string())
                    .collect(),
            ))
        }
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let mut oids = Vec::new();
            let known = [
                (eku.server_auth, OID_SERVER_AUTH),
                (eku.client_auth, OID_CLIENT_AUTH),
                (eku.code_signing, "1.3.6.1.5.5.7.3.3"),
                (eku.email_protection, "1.3.6.1.5.5.7.3.4"),
                (eku.time_stamping, "1.3.6.1.5.5.7.3.8"),
                (eku.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
                (eku.any, OID_ANY_EKU),
            ];
            for (set, o) in known {
                if set {
                    oids.push(o.to_string());
                }
            }
            oids.extend(eku.other.iter().map(|o| o.to_id_string()));
            let text = join(oids.iter().map(|o| eku_name(o).to_string()).collect());
            facts.ext_key_usage = Some(oids);
            Some(text)
        }
        ParsedExtension::SubjectKeyIdentifier(k) => {
            facts.subject_key_id = Some(k.0.to_vec());
            Some(hex::encode(k.0))
        }
        ParsedExtension::AuthorityKeyIdentifier(aki) => {
            let issuer = aki.authority_cert_issuer.as_ref().and_then(|names| {
                names.iter().find_map(|g| match g {
                    GeneralName::DirectoryName(n) => DistinguishedName::from_der(n.as_raw()).ok(),
                    _ => None,
                })
            });
            let mut parts = Vec::new();
            if let Some(k) = &aki.key_identifier {
                parts.push(format!("keyid:{}", hex::encode(k.0)));
            }
            if let Some(i) = &issuer {
                parts.push(format!("DirName:{}", i.oneline()));
            }
            if let Some(s) = aki.authority_cert_serial {
                parts.push(format!("serial:{}", hex::encode(s)));
            }
            facts.authority_key_id = Some(AuthorityKeyId {
                key_id: aki.key_identifier.as_ref().map(|k| k.0.to_vec()),
                issuer,
                serial: aki.authority_cert_serial.map(<[u8]>::to_vec),
            });
            Some(join(parts))
        }
        ParsedExtension::SubjectAlternativeName(san) => {
            Some(join(san.general_names.iter().map(general_name).collect()))
        }
        ParsedExtension::IssuerAlternativeName(ian) => {
            Some(join(ian.general_names.iter().map(general_name).collect()))
        }
        ParsedExtension::NSCertType(t) => {
            facts.ns_cert_type = Some(ns_bits(ext.value));
            Some(t.to_string())
        }
        ParsedExtension::ParseError { error } => {
            if matches!(
                oid,
                "2.5.29.19"
                    | "2.5.29.15"
                    | "2.5.29.37"
                    | "2.5.29.14"
                    | "2.5.29.35"
                    | "2.5.29.17"
                    | "2.5.29.30"
                    | "2.5.29.31"
                    | "1.3.6.1.5.5.7.1.14"
                    | "2.16.840.1.113730.1.1"
            ) {
                facts
                    .invalid
                    .get_or_insert_with(|| format!("{oid} does not decode"));
            }
            Some(format!("<malformed: {error}>"))
        }
        _ => None,
    }
}

/// The nsCertType BIT STRING's first byte (bit 7 = SSL client ... bit 0 = object signing CA).
fn ns_bits(value: &[u8]) -> u8 {
    // value is the extnValue content: BIT STRING { unused, byte }.
    if value.len() >= 4 && value[0] == 0x03 {
        value[3]
    } else {
        0
    }
}
