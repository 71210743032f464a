//! X.509 distinguished names: decoding a DER `Name`, printing it as RFC 4514 (most specific RDN
//! first, attribute types by their usual short names, `title` and `generationQualifier` spelled
//! out) and as OpenSSL's one-line `/title=InternalCA/OU=.../CN=...` form (DER order, which the
//! appliance's messages log uses), and comparing names the way OpenSSL's `X509_NAME_cmp` does.
//!
//! The decoder is our own small walker rather than x509-parser's `X509Name`: a name with an odd
//! string type or a bad PrintableString must still print (capture analysis meets such names),
//! and a `Name` is simple enough (SEQUENCE OF SET OF SEQUENCE { OID, ANY }) to read directly.

use std::fmt;

use serde::{Serialize, Serializer};

use super::der::{self, Children};

/// ASN.1 string tags that carry text.
const UTF8_STRING: u8 = 0x0c;
const NUMERIC_STRING: u8 = 0x12;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const VISIBLE_STRING: u8 = 0x1a;
const GENERAL_STRING: u8 = 0x1b;
const UNIVERSAL_STRING: u8 = 0x1c;
const BMP_STRING: u8 = 0x1e;

/// Attribute types we name: (dotted OID, RFC 4514 / OpenSSL short name). The names are
/// OpenSSL's short names, which for the RFC 4514 set (CN, L, ST, O, OU, C, STREET, DC, UID)
/// coincide with the RFC except `street`; the others (title, generationQualifier, emailAddress,
/// serialNumber, ...) are what `openssl x509 -nameopt RFC2253` prints.
const ATTR_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.16", "postalAddress"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.18", "postOfficeBox"),
    ("2.5.4.20", "telephoneNumber"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.45", "x500UniqueIdentifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.72", "role"),
    ("2.5.4.97", "organizationIdentifier"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.2.840.113549.1.9.2", "unstructuredName"),
    ("1.2.840.113549.1.9.8", "unstructuredAddress"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

/// The short name of an attribute type, if we know it.
pub fn attribute_name(oid: &str) -> Option<&'static str> {
    ATTR_NAMES.iter().find(|(o, _)| *o == oid).map(|(_, n)| *n)
}

fn attribute_oid(name: &str) -> Option<&'static str> {
    ATTR_NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(o, _)| *o)
}

/// One `type=value` of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Dotted OID of the attribute type.
    pub oid: String,
    /// Its short name (`CN`, `title`, ...) when known.
    pub name: Option<&'static str>,
    /// The value's ASN.1 tag (0x0c UTF8String, 0x13 PrintableString, ...).
    pub tag: u8,
    /// The value decoded as text, when it is a string type we can decode.
    pub text: Option<String>,
    /// The value's content octets as encoded.
    pub raw: Vec<u8>,
    /// The value's whole DER TLV (for the `#hex` form).
    pub der: Vec<u8>,
}

impl Attribute {
    /// The name RFC 4514 output uses: the short name or the dotted OID.
    pub fn type_name(&self) -> &str {
        self.name.unwrap_or(&self.oid)
    }
}

/// A decoded distinguished name that keeps its DER for exact comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Vec<Attribute>>,
    der: Vec<u8>,
    canon: Vec<u8>,
}

/// Why a `Name` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The bytes do not open with a whole DER SEQUENCE TLV.
    #[error("name is not a DER SEQUENCE")]
    NotASequence,
    /// An element of the name is not a SET, or the name's content ends in a TLV that does not
    /// fit.
    #[error("malformed relative distinguished name {index}")]
    BadRdn {
        /// The RDN's position in DER order, from 0.
        index: usize,
    },
    /// An RDN is empty, ends in a TLV that does not fit, or holds something other than
    /// SEQUENCE { OID, value }.
    #[error("malformed attribute in relative distinguished name {index}")]
    BadAttribute {
        /// The RDN's position in DER order, from 0.
        index: usize,
    },
}

impl DistinguishedName {
    /// Decodes a DER `Name` (the whole SEQUENCE TLV). Trailing bytes are ignored.
    pub fn from_der(name: &[u8]) -> Result<Self, NameError> {
        let seq = der::read_tlv(name, 0)
            .filter(|t| t.tag == der::SEQUENCE)
            .ok_or(NameError::NotASequence)?;
        let mut rdns = Vec::new();
        let mut outer = Children::new(name, seq.content.clone());
        for (index, set) in outer.by_ref().enumerate() {
            if set.tag != der::SET {
                return Err(NameError::BadRdn { index });
            }
            let mut rdn = Vec::new();
            let mut inner = Children::new(name, set.content.clone());
            for atv in inner.by_ref() {
                rdn.push(parse_attribute(name, &atv).ok_or(NameError::BadAttribute { index })?);
            }
            if inner.truncated() || rdn.is_empty() {
                return Err(NameError::BadAttribute { index });
            }
            rdns.push(rdn);
        }
        if outer.truncated() {
            return Err(NameError::BadRdn { index: rdns.len() });
        }
        let canon = canonical(&rdns);
        Ok(DistinguishedName {
            rdns,
            der: name[seq.full].to_vec(),
            canon,
        })
    }

    /// The RDNs in DER order (least specific first), each a set of attributes.
    pub fn rdns(&self) -> &[Vec<Attribute>] {
        &self.rdns
    }

    /// All attributes in DER order.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.rdns.iter().flatten()
    }

    /// The DER encoding of the name, as it appeared in the certificate.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// True for the empty name (`SEQUENCE {}`).
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The first text value of an attribute, looked up by short name (`"CN"`, `"title"`,
    /// case-insensitive) or dotted OID, in DER order.
    pub fn get(&self, name_or_oid: &str) -> Option<&str> {
        let oid = attribute_oid(name_or_oid).unwrap_or(name_or_oid);
        self.attributes()
            .find(|a| a.oid == oid)
            .and_then(|a| a.text.as_deref())
    }

    /// RFC 4514: most specific RDN first, `,` between RDNs, `+` inside a multi-valued RDN.
    pub fn rfc4514(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Inside a multi-valued RDN the order is free (it is a SET); OpenSSL's RFC2253
            // output reverses the flattened entry list, so the RDN's members come reversed too.
            for (j, a) in rdn.iter().rev().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                out.push_str(a.type_name());
                out.push('=');
                match (&a.text, a.name) {
                    // RFC 4514 2.4: a type given as dotted OID has its value as `#` + hex of
                    // the BER encoding; so does a value that is not a string we can decode.
                    (Some(t), Some(_)) => escape_rfc4514_into(t, &mut out),
                    _ => {
                        out.push('#');
                        out.push_str(&hex::encode(&a.der));
                    }
                }
            }
        }
        out
    }

    /// OpenSSL's `X509_NAME_oneline`: `/type=value` per attribute in DER order, bytes outside
    /// printable ASCII as `\xHH`.
    pub fn oneline(&self) -> String {
        let mut out = String::new();
        for a in self.attributes() {
            out.push('/');
            out.push_str(a.type_name());
            out.push('=');
            for &b in &a.raw {
                if (b' '..=b'~').contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            }
        }
        out
    }

    /// OpenSSL's directoryName name-constraint match (nc_dn): `base`'s canonical encoding is a
    /// prefix of this name's, i.e. this name lies in the subtree `base` (an empty base holds
    /// every name).
    pub fn within(&self, base: &DistinguishedName) -> bool {
        self.canon.starts_with(&base.canon)
    }

    /// OpenSSL's name equality (`X509_NAME_cmp` on the canonical encoding): string values are
    /// compared after conversion to UTF-8, ASCII lower-casing, trimming and collapsing white
    /// space; other values byte for byte. This is how OpenSSL decides "is this the issuer".
    pub fn matches(&self, other: &DistinguishedName) -> bool {
        self.canon == other.canon
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc4514())
    }
}

impl Serialize for DistinguishedName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc4514())
    }
}

fn parse_attribute(data: &[u8], atv: &der::Tlv) -> Option<Attribute> {
    if atv.tag != der::SEQUENCE {
        return None;
    }
    let mut it = Children::new(data, atv.content.clone());
    let oid_tlv = it.next().filter(|t| t.tag == der::OID)?;
    let value = it.next()?;
    if it.next().is_some() || it.truncated() {
        return None;
    }
    let oid = der::oid_to_string(&data[oid_tlv.content])?;
    let raw = data[value.content.clone()].to_vec();
    Some(Attribute {
        name: attribute_name(&oid),
        oid,
        tag: value.tag,
        text: decode_string(value.tag, &raw),
        raw,
        der: data[value.full].to_vec(),
    })
}

/// Decodes an ASN.1 string value to text; `None` for non-string types or broken encodings.
pub(crate) fn decode_string(tag: u8, raw: &[u8]) -> Option<String> {
    match tag {
        UTF8_STRING => String::from_utf8(raw.to_vec()).ok(),
        // Single-byte types: ASCII by definition, but real certificates put UTF-8 or Latin-1
        // in them; take UTF-8 when it decodes, else Latin-1 (OpenSSL's T61String reading).
        NUMERIC_STRING | PRINTABLE_STRING | IA5_STRING | VISIBLE_STRING | T61_STRING
        | GENERAL_STRING => Some(
            String::from_utf8(raw.to_vec())
                .unwrap_or_else(|_| raw.iter().map(|&b| b as char).collect()),
        ),
        BMP_STRING => {
            if !raw.len().is_multiple_of(2) {
                return None;
            }
            let units = raw
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        UNIVERSAL_STRING => {
            if !raw.len().is_multiple_of(4) {
                return None;
            }
            raw.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// Appends `value` escaped per RFC 4514 section 2.4.
pub(crate) fn escape_rfc4514_into(value: &str, out: &mut String) {
    let n = value.chars().count();
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            // NUL must be escaped (as \00); every other character the one rule calls unsafe
            // (controls, C1, bidirectional marks and overrides) is escaped the same way, as
            // the hex of its UTF-8 bytes (RFC 4514 2.4: U+009B is `\C2\9B`), so a report
            // line can never be split, garbled or reordered by a certificate.
            c if crate::sftunnel::is_unsafe(c) => {
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
}

/// RFC 4514 escaping of one attribute value.
pub fn escape_rfc4514(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    escape_rfc4514_into(value, &mut s);
    s
}

/// OpenSSL's canonical name encoding (x509_name_canon / asn1_string_canon), reduced to an
/// equality key: per RDN, its attributes sorted, each as (OID, kind, value) with string
/// values converted to UTF-8, trimmed, inner white space collapsed and ASCII lower-cased.
fn canonical(rdns: &[Vec<Attribute>]) -> Vec<u8> {
    // A 64-bit length keeps the key unambiguous for any value length (it is only compared).
    fn push_lv(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::new();
    for rdn in rdns {
        let mut entries: Vec<Vec<u8>> = rdn
            .iter()
            .map(|a| {
                let mut e = Vec::new();
                push_lv(&mut e, a.oid.as_bytes());
                // ASN1_MASK_CANON: UTF8, BMP, Universal, Printable, T61, IA5, Visible.
                let canon_type = matches!(
                    a.tag,
                    UTF8_STRING
                        | BMP_STRING
                        | UNIVERSAL_STRING
                        | PRINTABLE_STRING
                        | T61_STRING
                        | IA5_STRING
                        | VISIBLE_STRING
                );
                match (&a.text, canon_type) {
                    (Some(t), true) => {
                        e.push(UTF8_STRING);
                        push_lv(&mut e, canon_text(t).as_bytes());
                    }
                    _ => {
                        e.push(a.tag);
                        push_lv(&mut e, &a.raw);
                    }
                }
                e
            })
            .collect();
        entries.sort();
        out.push(b'{');
        for e in entries {
            out.extend_from_slice(&e);
        }
        out.push(b'}');
    }
    out
}

fn canon_text(s: &str) -> String {
    // OpenSSL's ossl_isspace: space, \t, \n, \v, \f, \r.
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
    let trimmed = s.trim_matches(is_space);
    let mut out = String::with_capacity(trimmed.len());
    let mut in_space = false;
    for c in trimmed.chars() {
        if is_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            in_space = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = u8::try_from(content.len()).expect("test values stay under 256 bytes");
        if len < 0x80 {
            out.push(len);
        } else {
            out.extend([0x81, len]);
        }
        out.extend_from_slice(content);
        out
    }

    /// DER for a Name from (oid bytes, tag, value) triples, one RDN each.
    fn name(attrs: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let mut rdns = Vec::new();
        for (oid, tag, v) in attrs {
            let mut atv = tlv(0x06, oid);
            atv.extend(tlv(*tag, v));
            rdns.extend(tlv(0x31, &tlv(0x30, &atv)));
        }
        tlv(0x30, &rdns)
    }
    const TITLE: &[u8] = &[0x55, 0x04, 0x0c];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const GQ: &[u8] = &[0x55, 0x04, 0x2c];

    #[test]
    fn internal_ca_name_prints_both_ways() {
        let der = name(&[
            (TITLE, 0x0c, b"InternalCA"),
            (OU, 0x0c, b"Intrusion Management System"),
            (CN, 0x0c, b"cdb123c8-4347-11ef-aca1-f3aa241412a1"),
            (O, 0x0c, b"Cisco Systems, Inc"),
        ]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(
            dn.rfc4514(),
            "O=Cisco Systems\\, Inc,CN=cdb123c8-4347-11ef-aca1-f3aa241412a1,\
             OU=Intrusion Management System,title=InternalCA"
        );
        assert_eq!(
            dn.oneline(),
            "/title=InternalCA/OU=Intrusion Management System/\
             CN=cdb123c8-4347-11ef-aca1-f3aa241412a1/O=Cisco Systems, Inc"
        );
        assert_eq!(dn.get("title"), Some("InternalCA"));
        assert_eq!(
            dn.get("2.5.4.3"),
            Some("cdb123c8-4347-11ef-aca1-f3aa241412a1")
        );
        assert_eq!(dn.der(), &der[..]);
    }

    #[test]
    fn generation_qualifier_is_named() {
        let der = name(&[(GQ, 0x13, b"sftunnel")]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.rfc4514(), "generationQualifier=sftunnel");
        assert_eq!(dn.get("generationQualifier"), Some("sftunnel"));
    }

    #[test]
    fn rfc4514_escapes_specials_leading_trailing_and_nul() {
        assert_eq!(
            escape_rfc4514("a,b+c\"d\\e<f>g;h"),
            "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h"
        );
        assert_eq!(escape_rfc4514("#x#"), "\\#x#");
        assert_eq!(escape_rfc4514(" x x "), "\\ x x\\ ");
        assert_eq!(escape_rfc4514(" "), "\\ ");
        assert_eq!(escape_rfc4514("Corporat\0on"), "Corporat\\00on");
        assert_eq!(escape_rfc4514("a\nb"), "a\\0Ab");
        assert_eq!(escape_rfc4514("a\u{7f}b"), "a\\7Fb");
        assert_eq!(escape_rfc4514("x\u{9b}2J"), "x\\C2\\9B2J");
        assert_eq!(escape_rfc4514("ftd\u{202e}txt"), "ftd\\E2\\80\\AEtxt");
        assert_eq!(
            escape_rfc4514("a\u{2066}b\u{200f}"),
            "a\\E2\\81\\A6b\\E2\\80\\8F"
        );
        assert_eq!(escape_rfc4514("x=y"), "x=y");
        assert_eq!(escape_rfc4514("Zürich"), "Zürich");
        assert_eq!(escape_rfc4514(""), "");
    }

    #[test]
    fn unknown_oid_is_dotted_with_hex_value() {
        let der = name(&[(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37], 0x0c, b"hi")]);
        let dn = DistinguishedName::from_der(&der).unwrap();
        assert_eq!(dn.rfc4514(), "1.3.6.1.4.1.311=#0c026869");
        assert_eq!(dn.oneline(), "/1.3.6.1.4.1.311=hi");
    }

    #[test]
    fn string_types_decode() {
        let bmp = name(&[(CN, 0x1e, &[0x00, b'h', 0x00, 0xe9])]);
        let dn = DistinguishedName::from_der(&bmp).unwrap();
        assert_eq!(dn.rfc4514(), "CN=hé");
        assert_eq!(dn.oneline(), "/CN=\\x00h\\x00\\xE9");
        let t61 = name(&[(CN, 0x14, &[b'h', 0xe9])]);
        assert_eq!(
            DistinguishedName::from_der(&t61).unwrap().rfc4514(),
            "CN=hé"
        );
        let int = name(&[(CN, 0x02, &[0x01])]);
        assert_eq!(
            DistinguishedName::from_der(&int).unwrap().rfc4514(),
            "CN=#020101"
        );
    }

    #[test]
    fn matching_follows_openssl_canonical_form() {
        let a = DistinguishedName::from_der(&name(&[(CN, 0x13, b"  Foo   Bar ")])).unwrap();
        let b = DistinguishedName::from_der(&name(&[(CN, 0x0c, b"foo bar")])).unwrap();
        let c = DistinguishedName::from_der(&name(&[(CN, 0x0c, b"foobar")])).unwrap();
        let d = DistinguishedName::from_der(&name(&[(O, 0x0c, b"foo bar")])).unwrap();
        assert!(a.matches(&b));
        assert_ne!(a, b, "exact equality stays byte-wise");
        assert!(!a.matches(&c));
        assert!(!b.matches(&d));
    }

    #[test]
    fn empty_and_malformed_names() {
        let empty = DistinguishedName::from_der(&[0x30, 0x00]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.rfc4514(), "");
        assert!(DistinguishedName::from_der(&[0x31, 0x00]).is_err());
        assert!(DistinguishedName::from_der(&[0x30, 0x02, 0x31, 0x00]).is_err());
        assert!(DistinguishedName::from_der(&[0x30, 0x04, 0x31, 0x02, 0x30, 0x00]).is_err());
        assert!(DistinguishedName::from_der(&[0x30, 0x05, 0x31]).is_err());
    }
}
