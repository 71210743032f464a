//! Algorithm identifiers: signature algorithms (OpenSSL's names, and the scheme the judge needs
//! to check a signature) and public keys (`RSA 2048`, `EC P-384`, `Ed25519`, ...).
//!
//! Unknown algorithms are kept as their dotted OID, never dropped: a certificate with a key type
//! we cannot use still gets a record.

use std::ops::Range;

use serde::Serialize;

use super::der::{self, Children};

/// A hash function named in a signature algorithm (by its OID, or by the `hashAlgorithm` and
/// MGF1 hash of RSASSA-PSS parameters). MD2 and other digests make the scheme
/// [`SigScheme::Other`] (PKCS#1) or [`SigScheme::RsaPssMalformed`] (PSS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Hash {
    /// MD5 (1.2.840.113549.2.5), 16 bytes.
    Md5,
    /// SHA-1 (1.3.14.3.2.26), 20 bytes.
    Sha1,
    /// SHA-224 (2.16.840.1.101.3.4.2.4), 28 bytes.
    Sha224,
    /// SHA-256 (2.16.840.1.101.3.4.2.1), 32 bytes.
    Sha256,
    /// SHA-384 (2.16.840.1.101.3.4.2.2), 48 bytes.
    Sha384,
    /// SHA-512 (2.16.840.1.101.3.4.2.3), 64 bytes.
    Sha512,
}

impl Hash {
    fn from_oid(oid: &str) -> Option<Hash> {
        Some(match oid {
            "1.2.840.113549.2.5" => Hash::Md5,
            "1.3.14.3.2.26" => Hash::Sha1,
            "2.16.840.1.101.3.4.2.4" => Hash::Sha224,
            "2.16.840.1.101.3.4.2.1" => Hash::Sha256,
            "2.16.840.1.101.3.4.2.2" => Hash::Sha384,
            "2.16.840.1.101.3.4.2.3" => Hash::Sha512,
            _ => return None,
        })
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha1 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// OpenSSL's security bits for a signature digest (x509_init_sig_info in OpenSSL 3.0:
    /// SHA-1 and MD5 are deliberately rated below security level 1's 80 bits).
    pub fn security_bits(self) -> u32 {
        match self {
            Hash::Md5 => 39,
            Hash::Sha1 => 63,
            // Half the output's bits; outputs are at most 64 bytes.
            h => u32::try_from(h.output_len() * 4).unwrap_or(u32::MAX),
        }
    }
}

/// How a certificate's signature is to be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigScheme {
    /// RSASSA-PKCS1-v1_5 (RFC 8017) with this digest: `md5`/`sha1`/`sha224`/`sha256`/
    /// `sha384`/`sha512WithRSAEncryption`, and OIW's `sha1WithRSA` (1.3.14.3.2.29).
    RsaPkcs1(Hash),
    /// RSASSA-PSS with its parameters (defaults applied: SHA-1, MGF1-SHA-1, salt 20).
    RsaPss {
        /// `hashAlgorithm [0]`: the message digest.
        hash: Hash,
        /// The digest of `maskGenAlgorithm [1]` (MGF1, the only mask function there is).
        mgf1: Hash,
        /// `saltLength [2]`, in bytes. `trailerField [3]` is not read.
        salt_len: u32,
    },
    /// RSASSA-PSS whose parameters could not be read (the CVE-2015-3194 certificate).
    RsaPssMalformed,
    /// ECDSA (RFC 5758, X9.62) with this digest: `ecdsa-with-SHA1` ... `ecdsa-with-SHA512`;
    /// the signature value is a DER `Ecdsa-Sig-Value`.
    Ecdsa(Hash),
    /// Ed25519 (RFC 8410, 1.3.101.112): pure EdDSA, no separate digest.
    Ed25519,
    /// Ed448 (RFC 8410, 1.3.101.113).
    Ed448,
    /// ML-DSA (FIPS 204) with parameter set 44, 65 or 87 (2.16.840.1.101.3.4.3.17 to .19).
    MlDsa(u16),
    /// Anything else (DSA, GOST, ...): kept by OID, never verified.
    Other(String),
}

/// OpenSSL's name for a signature algorithm OID (`sha256WithRSAEncryption`, ...), or `None`.
pub fn sig_alg_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.3.14.3.2.29" => "sha1WithRSA",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "2.16.840.1.101.3.4.3.1" => "dsa_with_SHA224",
        "2.16.840.1.101.3.4.3.2" => "dsa_with_SHA256",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        "2.16.840.1.101.3.4.3.17" => "ML-DSA-44",
        "2.16.840.1.101.3.4.3.18" => "ML-DSA-65",
        "2.16.840.1.101.3.4.3.19" => "ML-DSA-87",
        _ => return None,
    })
}

/// A parsed AlgorithmIdentifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlgId {
    pub oid: String,
    /// The parameters' TLV range (absolute), if any.
    pub params: Option<Range<usize>>,
}

pub(crate) fn parse_alg_id(data: &[u8], range: Range<usize>) -> Option<AlgId> {
    let seq = der::read_tlv(data, range.start).filter(|t| t.tag == der::SEQUENCE)?;
    let mut it = Children::new(data, seq.content);
    let oid = it.next().filter(|t| t.tag == der::OID)?;
    let params = it.next().map(|t| t.full);
    Some(AlgId {
        oid: der::oid_to_string(&data[oid.content])?,
        params,
    })
}

/// The verification scheme of a signature AlgorithmIdentifier.
pub(crate) fn sig_scheme(data: &[u8], alg: &AlgId) -> SigScheme {
    let h = |h| SigScheme::RsaPkcs1(h);
    match alg.oid.as_str() {
        "1.2.840.113549.1.1.4" => h(Hash::Md5),
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => h(Hash::Sha1),
        "1.2.840.113549.1.1.14" => h(Hash::Sha224),
        "1.2.840.113549.1.1.11" => h(Hash::Sha256),
        "1.2.840.113549.1.1.12" => h(Hash::Sha384),
        "1.2.840.113549.1.1.13" => h(Hash::Sha512),
        "1.2.840.113549.1.1.10" => pss_params(data, alg.params.clone()),
        "1.2.840.10045.4.1" => SigScheme::Ecdsa(Hash::Sha1),
        "1.2.840.10045.4.3.1" => SigScheme::Ecdsa(Hash::Sha224),
        "1.2.840.10045.4.3.2" => SigScheme::Ecdsa(Hash::Sha256),
        "1.2.840.10045.4.3.3" => SigScheme::Ecdsa(Hash::Sha384),
        "1.2.840.10045.4.3.4" => SigScheme::Ecdsa(Hash::Sha512),
        "1.3.101.112" => SigScheme::Ed25519,
        "1.3.101.113" => SigScheme::Ed448,
        "2.16.840.1.101.3.4.3.17" => SigScheme::MlDsa(44),
        "2.16.840.1.101.3.4.3.18" => SigScheme::MlDsa(65),
        "2.16.840.1.101.3.4.3.19" => SigScheme::MlDsa(87),
        other => SigScheme::Other(other.to_string()),
    }
}

/// RSASSA-PSS-params (RFC 4055): every field optional with SHA-1 / MGF1-SHA-1 / 20 defaults.
fn pss_params(data: &[u8], params: Option<Range<usize>>) -> SigScheme {
    let parse = || -> Option<SigScheme> {
        let (mut hash, mut mgf1, mut salt_len) = (Hash::Sha1, Hash::Sha1, 20u32);
        let Some(range) = params else {
            // Absent parameters are not allowed for PSS in certificates (RFC 4055 3.1).
            return None;
        };
        let seq = der::read_tlv(data, range.start).filter(|t| t.tag == der::SEQUENCE)?;
        let mut it = Children::new(data, seq.content);
        for field in it.by_ref() {
            let inner = der::read_tlv(data, field.content.start)?;
            match field.tag {
                0xa0 => {
                    let alg = parse_alg_id(data, inner.full)?;
                    hash = Hash::from_oid(&alg.oid)?;
                }
                0xa1 => {
                    let alg = parse_alg_id(data, inner.full)?;
                    if alg.oid != "1.2.840.113549.1.1.8" {
                        return None; // only MGF1 exists
                    }
                    let p = parse_alg_id(data, alg.params?)?;
                    mgf1 = Hash::from_oid(&p.oid)?;
                }
                0xa2 => {
                    if inner.tag != der::INTEGER || inner.content.len() > 4 {
                        return None;
                    }
                    salt_len = data[inner.content]
                        .iter()
                        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
                }
                0xa3 => {}
                _ => return None,
            }
        }
        if it.truncated() {
            return None;
        }
        Some(SigScheme::RsaPss {
            hash,
            mgf1,
            salt_len,
        })
    };
    parse().unwrap_or(SigScheme::RsaPssMalformed)
}

/// An elliptic curve, by name when we know it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-256 (`prime256v1`, 1.2.840.10045.3.1.7).
    P256,
    /// NIST P-384 (`secp384r1`, 1.3.132.0.34).
    P384,
    /// NIST P-521 (`secp521r1`, 1.3.132.0.35).
    P521,
    /// `secp256k1` (1.3.132.0.10).
    Secp256k1,
    /// Any other named curve, by its dotted OID. (A key with explicit curve parameters has no
    /// [`KeyKind`]: its SubjectPublicKeyInfo does not parse.)
    Other(String),
}

/// A subject public key, as far as the judge needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// RSA: `rsaEncryption`, or an `id-RSASSA-PSS` key (1.2.840.113549.1.1.10).
    Rsa {
        /// The modulus's length in bits, from its first non-zero bit.
        bits: u32,
    },
    /// `id-ecPublicKey` on a named curve.
    Ec(Curve),
    /// Ed25519 (RFC 8410, 1.3.101.112).
    Ed25519,
    /// Ed448 (RFC 8410, 1.3.101.113).
    Ed448,
    /// ML-DSA (FIPS 204) with parameter set 44, 65 or 87 (2.16.840.1.101.3.4.3.17 to .19).
    MlDsa(u16),
    /// DSA (1.2.840.10040.4.1); its size is not read, so it has no security bits.
    Dsa,
    /// Any other key algorithm, by its dotted OID (no security bits).
    Other(String),
}

impl KeyKind {
    /// The short description reports print: `RSA 2048`, `EC P-384`, `Ed25519`, or the OID.
    pub fn describe(&self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA {bits}"),
            KeyKind::Ec(c) => match c {
                Curve::P256 => "EC P-256".into(),
                Curve::P384 => "EC P-384".into(),
                Curve::P521 => "EC P-521".into(),
                Curve::Secp256k1 => "EC secp256k1".into(),
                Curve::Other(oid) => format!("EC {oid}"),
            },
            KeyKind::Ed25519 => "Ed25519".into(),
            KeyKind::Ed448 => "Ed448".into(),
            KeyKind::MlDsa(n) => format!("ML-DSA-{n}"),
            KeyKind::Dsa => "DSA".into(),
            KeyKind::Other(oid) => oid.clone(),
        }
    }

    /// OpenSSL's security bits for the key (EVP_PKEY_get_security_bits), used for the
    /// key-too-small checks (codes 66/67).
    pub fn security_bits(&self) -> Option<u32> {
        Some(match self {
            KeyKind::Rsa { bits } => match bits {
                15360.. => 256,
                7680.. => 192,
                3072.. => 128,
                2048.. => 112,
                1024.. => 80,
                _ => 0,
            },
            KeyKind::Ec(Curve::P256 | Curve::Secp256k1) => 128,
            KeyKind::Ec(Curve::P384) => 192,
            KeyKind::Ec(Curve::P521) => 256,
            KeyKind::Ed25519 => 128,
            KeyKind::Ed448 => 224,
            KeyKind::MlDsa(44) => 128,
            KeyKind::MlDsa(65) => 192,
            KeyKind::MlDsa(_) => 256,
            _ => return None,
        })
    }
}

/// A SubjectPublicKeyInfo: what the key is and where its bits are (absolute range of the BIT
/// STRING's payload, unused-bits byte excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spki {
    pub kind: KeyKind,
    pub key: Range<usize>,
}

pub(crate) fn parse_spki(data: &[u8], range: Range<usize>) -> Result<Spki, &'static str> {
    let seq = der::read_tlv(data, range.start)
        .filter(|t| t.tag == der::SEQUENCE)
        .ok_or("subjectPublicKeyInfo is not a SEQUENCE")?;
    let mut it = Children::new(data, seq.content);
    let alg_tlv = it.next().ok_or("subjectPublicKeyInfo has no algorithm")?;
    let alg = parse_alg_id(data, alg_tlv.full).ok_or("malformed public key algorithm")?;
    let bits = it
        .next()
        .filter(|t| t.tag == der::BIT_STRING && !t.content.is_empty())
        .ok_or("subjectPublicKeyInfo has no key BIT STRING")?;
    let key = bits.content.start + 1..bits.content.end;
    let kind = match alg.oid.as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => KeyKind::Rsa {
            bits: rsa_bits(data, key.clone()).ok_or("malformed RSA public key")?,
        },
        "1.2.840.10045.2.1" => {
            let params = alg.params.ok_or("EC key without curve parameters")?;
            let p = der::read_tlv(data, params.start).ok_or("malformed EC parameters")?;
            if p.tag != der::OID {
                return Err("EC key with explicit curve parameters");
            }
            let oid = der::oid_to_string(&data[p.content]).ok_or("malformed curve OID")?;
            KeyKind::Ec(match oid.as_str() {
                "1.2.840.10045.3.1.7" => Curve::P256,
                "1.3.132.0.34" => Curve::P384,
                "1.3.132.0.35" => Curve::P521,
                "1.3.132.0.10" => Curve::Secp256k1,
                _ => Curve::Other(oid),
            })
        }
        "1.3.101.112" => KeyKind::Ed25519,
        "1.3.101.113" => KeyKind::Ed448,
        "2.16.840.1.101.3.4.3.17" => KeyKind::MlDsa(44),
        "2.16.840.1.101.3.4.3.18" => KeyKind::MlDsa(65),
        "2.16.840.1.101.3.4.3.19" => KeyKind::MlDsa(87),
        "1.2.840.10040.4.1" => KeyKind::Dsa,
        other => KeyKind::Other(other.to_string()),
    };
    Ok(Spki { kind, key })
}

/// True when the SubjectPublicKeyInfo at `range` is not even SEQUENCE { SEQUENCE { OID, ... },
/// BIT STRING }: what OpenSSL's `d2i_X509` refuses (an unreadable key inside a well-formed
/// structure is decoded lazily there, and only fails when the key is used).
pub(crate) fn spki_is_malformed(data: &[u8], range: Range<usize>) -> bool {
    let Some(seq) = der::read_tlv(data, range.start).filter(|t| t.tag == der::SEQUENCE) else {
        return true;
    };
    let mut it = Children::new(data, seq.content);
    let alg_ok = it.next().is_some_and(|t| {
        t.tag == der::SEQUENCE
            && der::read_tlv(data, t.content.start).is_some_and(|o| o.tag == der::OID)
    });
    let bits_ok = it
        .next()
        .is_some_and(|t| t.tag == der::BIT_STRING && !t.content.is_empty());
    !(alg_ok && bits_ok) || it.next().is_some() || it.truncated()
}

/// Bit length of an RSAPublicKey's modulus.
fn rsa_bits(data: &[u8], key: Range<usize>) -> Option<u32> {
    let seq = der::read_tlv(data, key.start).filter(|t| t.tag == der::SEQUENCE)?;
    let n = der::read_tlv(data, seq.content.start).filter(|t| t.tag == der::INTEGER)?;
    let bytes = &data[n.content];
    let first = bytes.iter().position(|&b| b != 0)?;
    // A modulus too long for a u32 bit count has no length worth reporting.
    let rest = u32::try_from(bytes.len() - first - 1).ok()?;
    Some(rest.checked_mul(8)? + (8 - bytes[first].leading_zeros()))
}
