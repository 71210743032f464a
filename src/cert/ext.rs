//! X.509 v3 extensions: a printable summary of each (name, critical, short value) and the facts
//! the judge needs (basicConstraints, keyUsage, extendedKeyUsage, key identifiers, the
//! subjectAltName and nameConstraints general names, critical extensions OpenSSL does not
//! handle, extensions OpenSSL would call invalid).
//!
//! Each extension is decoded by x509-parser on its own, so one malformed extension is recorded
//! as such without losing the others. The general names of subjectAltName and nameConstraints
//! are also read by our DER walker, keeping their raw octets and the subtrees' minimum/maximum
//! (which x509-parser drops): name constraints compare IA5String bytes, and a subtree with a
//! maximum is an error of its own (49) in OpenSSL.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use x509_parser::extensions::{GeneralName as X509GeneralName, ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;

use super::der::{self, Children};
use super::name::DistinguishedName;

/// A GeneralName (RFC 5280 4.2.1.6) as name constraints compare it: the string forms keep
/// their raw octets, as OpenSSL compares them (bytes, ASCII case folded).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeneralName {
    /// `otherName`: its type and the DER of its `[0] EXPLICIT` value.
    OtherName {
        /// `type-id`, dotted.
        oid: String,
        /// The whole DER TLV inside `[0] EXPLICIT`.
        value: Vec<u8>,
    },
    /// `rfc822Name`.
    Email(Vec<u8>),
    /// `dNSName`.
    Dns(Vec<u8>),
    /// `x400Address` (its content is not kept).
    X400,
    /// `directoryName`.
    Directory(DistinguishedName),
    /// `ediPartyName` (its content is not kept).
    EdiParty,
    /// `uniformResourceIdentifier`.
    Uri(Vec<u8>),
    /// `iPAddress`: 4 or 16 octets in a SAN, address + mask (8 or 32) in a constraint.
    Ip(Vec<u8>),
    /// `registeredID`, dotted.
    RegisteredId(String),
}

impl GeneralName {
    /// OpenSSL's GEN_* number of the name's type (the CHOICE tag number).
    pub fn type_number(&self) -> u8 {
        match self {
            GeneralName::OtherName { .. } => 0,
            GeneralName::Email(_) => 1,
            GeneralName::Dns(_) => 2,
            GeneralName::X400 => 3,
            GeneralName::Directory(_) => 4,
            GeneralName::EdiParty => 5,
            GeneralName::Uri(_) => 6,
            GeneralName::Ip(_) => 7,
            GeneralName::RegisteredId(_) => 8,
        }
    }
}

/// One GeneralSubtree of a nameConstraints extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneralSubtree {
    /// The name the subtree permits or excludes, with all names below it.
    pub base: GeneralName,
    /// `minimum`'s INTEGER content octets, when present (RFC 5280: must be absent, DEFAULT 0).
    pub minimum: Option<Vec<u8>>,
    /// `maximum` is present (RFC 5280: must be absent).
    pub maximum: bool,
}

/// nameConstraints (RFC 5280 4.2.1.10).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameConstraints {
    /// `permittedSubtrees [0]`, in order; empty when absent.
    pub permitted: Vec<GeneralSubtree>,
    /// `excludedSubtrees [1]`, in order; empty when absent.
    pub excluded: Vec<GeneralSubtree>,
}

/// Reads one GeneralName TLV of `data`.
fn general_name(data: &[u8], t: &der::Tlv) -> Option<GeneralName> {
    let content = &data[t.content.clone()];
    Some(match t.tag {
        0xa0 => {
            let mut it = Children::new(data, t.content.clone());
            let oid = it.next().filter(|o| o.tag == der::OID)?;
            let value = it.next().filter(|v| v.tag == 0xa0)?;
            if it.next().is_some() || it.truncated() {
                return None;
            }
            let inner = der::read_tlv(data, value.content.start)?;
            if inner.full.end != value.content.end {
                return None;
            }
            GeneralName::OtherName {
                oid: der::oid_to_string(&data[oid.content])?,
                value: data[inner.full].to_vec(),
            }
        }
        0x81 => GeneralName::Email(content.to_vec()),
        0x82 => GeneralName::Dns(content.to_vec()),
        0xa3 => GeneralName::X400,
        0xa4 => {
            let n = der::read_tlv(data, t.content.start)?;
            if n.full.end != t.content.end {
                return None;
            }
            GeneralName::Directory(DistinguishedName::from_der(&data[n.full]).ok()?)
        }
        0xa5 => GeneralName::EdiParty,
        0x86 => GeneralName::Uri(content.to_vec()),
        0x87 => GeneralName::Ip(content.to_vec()),
        0x88 => GeneralName::RegisteredId(der::oid_to_string(content)?),
        _ => return None,
    })
}

/// GeneralNames (a DER SEQUENCE OF GeneralName, the whole of `value`); `None` if malformed.
pub(crate) fn general_names(value: &[u8]) -> Option<Vec<GeneralName>> {
    let seq =
        der::read_tlv(value, 0).filter(|t| t.tag == der::SEQUENCE && t.full.end == value.len())?;
    let mut it = Children::new(value, seq.content);
    let names = it
        .by_ref()
        .map(|t| general_name(value, &t))
        .collect::<Option<Vec<_>>>()?;
    (!it.truncated()).then_some(names)
}

/// NameConstraints (the whole of `value`); `None` if malformed.
pub(crate) fn name_constraints(value: &[u8]) -> Option<NameConstraints> {
    let seq =
        der::read_tlv(value, 0).filter(|t| t.tag == der::SEQUENCE && t.full.end == value.len())?;
    let mut nc = NameConstraints::default();
    let mut it = Children::new(value, seq.content);
    for part in it.by_ref() {
        let list = match part.tag {
            0xa0 => &mut nc.permitted,
            0xa1 => &mut nc.excluded,
            _ => return None,
        };
        let mut subs = Children::new(value, part.content);
        for sub in subs.by_ref() {
            if sub.tag != der::SEQUENCE {
                return None;
            }
            let mut f = Children::new(value, sub.content);
            let base = general_name(value, &f.next()?)?;
            let (mut minimum, mut maximum) = (None, false);
            for field in f.by_ref() {
                match field.tag {
                    0x80 if minimum.is_none() && !maximum => {
                        minimum = Some(value[field.content].to_vec())
                    }
                    0x81 if !maximum => maximum = true,
                    _ => return None,
                }
            }
            if f.truncated() {
                return None;
            }
            list.push(GeneralSubtree {
                base,
                minimum,
                maximum,
            });
        }
        if subs.truncated() {
            return None;
        }
    }
    (!it.truncated()).then_some(nc)
}

/// One extension as reports print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    /// Dotted OID.
    pub oid: String,
    /// OpenSSL's short name (`basicConstraints`, `keyUsage`, ...) when known.
    pub name: Option<&'static str>,
    /// The `critical` BOOLEAN (DEFAULT FALSE).
    pub critical: bool,
    /// A short value for the common extensions (`CA:TRUE`, `Digital Signature, ...`), the
    /// parse error for a malformed one, `None` otherwise.
    pub value: Option<String>,
}

/// basicConstraints (RFC 5280 4.2.1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BasicConstraints {
    /// `cA` (DEFAULT FALSE): the key may sign certificates.
    pub ca: bool,
    /// `pathLenConstraint`: how many non-self-issued intermediate CAs may follow below this
    /// one (code 25 when exceeded); `None` when absent, no limit.
    pub path_len: Option<u32>,
}

/// authorityKeyIdentifier, as X509_check_akid uses it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorityKeyId {
    /// `keyIdentifier [0]`'s octets, matched against the issuer's subjectKeyIdentifier.
    pub key_id: Option<Vec<u8>>,
    /// The first directoryName of authorityCertIssuer.
    pub issuer: Option<DistinguishedName>,
    /// authorityCertSerialNumber's content octets.
    pub serial: Option<Vec<u8>>,
}

/// keyUsage bits (bit 0 = digitalSignature ... bit 8 = decipherOnly).
pub mod key_usage {
    /// `digitalSignature` (bit 0): one of the usages OpenSSL's `sslclient` and `sslserver`
    /// purposes accept in a leaf's keyUsage.
    pub const DIGITAL_SIGNATURE: u16 = 1 << 0;
    /// `keyCertSign` (bit 5): an issuer whose keyUsage lacks it fails with code 32 in OpenSSL
    /// 3.x (1.1.1 does not take it as an issuer at all).
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
    /// `cRLSign` (bit 6).
    pub const CRL_SIGN: u16 = 1 << 6;
}

/// The extension facts a verifier needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct V3Facts {
    /// basicConstraints; `None` when absent or when it does not decode (`invalid` says which).
    pub basic_constraints: Option<BasicConstraints>,
    /// keyUsage bits as [`key_usage`] numbers them; `None` when absent (every usage allowed,
    /// as in OpenSSL) or when it does not decode.
    pub key_usage: Option<u16>,
    /// extendedKeyUsage purposes as dotted OIDs.
    pub ext_key_usage: Option<Vec<String>>,
    /// subjectKeyIdentifier's octets; `None` when absent or when it does not decode.
    pub subject_key_id: Option<Vec<u8>>,
    /// authorityKeyIdentifier; `None` when absent (then any issuer fits, as in
    /// X509_check_akid) or when it does not decode.
    pub authority_key_id: Option<AuthorityKeyId>,
    /// Netscape cert type bits, when present (OpenSSL still honours its CA bits).
    pub ns_cert_type: Option<u8>,
    /// subjectAltName's names, in order.
    pub subject_alt_names: Option<Vec<GeneralName>>,
    /// nameConstraints, for a CA.
    pub name_constraints: Option<NameConstraints>,
    /// The extensions list itself is malformed (not every Extension is an OID, an optional
    /// BOOLEAN and an OCTET STRING): the certificate does not decode at all.
    pub malformed_list: bool,
    /// A critical extension OpenSSL does not handle (code 34), by OID.
    pub unhandled_critical: Option<String>,
    /// Why OpenSSL would flag the extensions invalid (its EXFLAG_INVALID): a duplicate, one of
    /// the extensions it caches (basicConstraints, keyUsage, extendedKeyUsage, key identifiers,
    /// subjectAltName, nameConstraints, crlDistributionPoints, proxyCertInfo, nsCertType) that
    /// does not decode.
    pub invalid: Option<String>,
}

/// `id-kp-serverAuth` (RFC 5280 4.2.1.12): the extendedKeyUsage OpenSSL's `sslserver`
/// purpose asks of a TLS server's certificate.
pub const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// `id-kp-clientAuth`: the extendedKeyUsage the `sslclient` purpose asks of a TLS client's.
pub const OID_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// `anyExtendedKeyUsage` (RFC 5280 4.2.1.12); alone it satisfies no purpose in OpenSSL.
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

fn print_general_name(g: &X509GeneralName<'_>) -> String {
    use X509GeneralName as GeneralName;
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
                facts.malformed_list = true;
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
        facts.malformed_list = true;
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
                    X509GeneralName::DirectoryName(n) => {
                        DistinguishedName::from_der(n.as_raw()).ok()
                    }
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
            facts.subject_alt_names = general_names(ext.value);
            if facts.subject_alt_names.is_none() {
                facts
                    .invalid
                    .get_or_insert_with(|| format!("{oid} does not decode"));
            }
            Some(join(
                san.general_names.iter().map(print_general_name).collect(),
            ))
        }
        ParsedExtension::NameConstraints(nc) => {
            facts.name_constraints = name_constraints(ext.value);
            if facts.name_constraints.is_none() {
                facts
                    .invalid
                    .get_or_insert_with(|| format!("{oid} does not decode"));
            }
            let trees = |t: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
                t.iter()
                    .flatten()
                    .map(|s| print_general_name(&s.base))
                    .collect::<Vec<_>>()
            };
            let mut parts = Vec::new();
            for (what, t) in [
                ("Permitted", trees(&nc.permitted_subtrees)),
                ("Excluded", trees(&nc.excluded_subtrees)),
            ] {
                if !t.is_empty() {
                    parts.push(format!("{what}: {}", t.join(", ")));
                }
            }
            Some(parts.join("; "))
        }
        ParsedExtension::IssuerAlternativeName(ian) => Some(join(
            ian.general_names.iter().map(print_general_name).collect(),
        )),
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
