//! Key derivation from logged secrets: TLS 1.3's HKDF-Expand-Label, traffic keys and the next
//! traffic-secret generation (RFC 8446 7.1-7.3), and the TLS 1.2 key block (RFC 5246 6.3).
//!
//! Pure functions over bytes: the secrets come from `keylog`, the suite's parameters from
//! `decrypt::Suite`; using the keys on records is `decrypt`'s job. The primitives are
//! aws-lc-rs's (HKDF, the TLS 1.2 PRF), the crypto provider the tunnel already ships.

use aws_lc_rs::{hkdf, tls_prf};

/// The hash of a suite's key schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256: every suite `Suite::of` opens but the `_SHA384` ones.
    Sha256,
    /// SHA-384: `TLS_AES_256_GCM_SHA384` and the TLS 1.2 `_SHA384` suites.
    Sha384,
}

impl Hash {
    /// The digest length in bytes (also a TLS 1.3 secret's).
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        }
    }

    fn hkdf(self) -> hkdf::Algorithm {
        match self {
            Hash::Sha256 => hkdf::HKDF_SHA256,
            Hash::Sha384 => hkdf::HKDF_SHA384,
        }
    }

    fn prf(self) -> &'static tls_prf::Algorithm {
        match self {
            Hash::Sha256 => &tls_prf::P_SHA256,
            Hash::Sha384 => &tls_prf::P_SHA384,
        }
    }
}

/// An output length for aws-lc-rs's HKDF.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label(secret, label, context, len) (RFC 8446 7.1): `label` without the
/// `"tls13 "` prefix. `None` only when `len` exceeds what HKDF can give (255 hash lengths),
/// which no caller here asks for.
pub fn hkdf_expand_label(
    hash: Hash,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Option<Vec<u8>> {
    let full_len = 6 + label.len();
    let out_len = u16::try_from(len).ok()?.to_be_bytes();
    let label_len = [u8::try_from(full_len).ok()?];
    let context_len = [u8::try_from(context.len()).ok()?];
    let info: [&[u8]; 6] = [
        &out_len,
        &label_len,
        b"tls13 ",
        label,
        &context_len,
        context,
    ];
    let prk = hkdf::Prk::new_less_safe(hash.hkdf(), secret);
    let okm = prk.expand(&info, Len(len)).ok()?;
    let mut out = vec![0; len];
    okm.fill(&mut out).ok()?;
    Some(out)
}

/// The write key and IV a traffic secret gives (RFC 8446 7.3).
#[derive(Clone, PartialEq, Eq)]
pub struct TrafficKeys {
    /// `[sender]_write_key`: the AEAD key, as long as the caller asked (16 or 32 bytes).
    pub key: Vec<u8>,
    /// `[sender]_write_iv`: xored with the record sequence number for each record's nonce.
    pub iv: [u8; 12],
}

impl std::fmt::Debug for TrafficKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrafficKeys({}-byte key)", self.key.len())
    }
}

/// `[sender]_write_key` and `[sender]_write_iv` from a traffic secret.
pub fn traffic_keys(hash: Hash, secret: &[u8], key_len: usize) -> Option<TrafficKeys> {
    let key = hkdf_expand_label(hash, secret, b"key", b"", key_len)?;
    let iv = hkdf_expand_label(hash, secret, b"iv", b"", 12)?;
    Some(TrafficKeys {
        key,
        iv: iv.try_into().ok()?,
    })
}

/// The traffic secret after a KeyUpdate: HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)
/// (RFC 8446 7.2).
pub fn next_traffic_secret(hash: Hash, secret: &[u8]) -> Option<Vec<u8>> {
    hkdf_expand_label(hash, secret, b"traffic upd", b"", hash.output_len())
}

/// The TLS 1.2 key block: PRF(master_secret, "key expansion", server_random + client_random)
/// (RFC 5246 6.3), `len` bytes.
pub fn tls12_key_block(
    hash: Hash,
    master_secret: &[u8],
    client_random: &[u8; 32],
    server_random: &[u8; 32],
    len: usize,
) -> Option<Vec<u8>> {
    let secret = tls_prf::Secret::new(hash.prf(), master_secret).ok()?;
    let block = secret
        .derive_with_seed_concatination(b"key expansion", server_random, client_random, len)
        .ok()?;
    Some(block.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn rfc8448_server_handshake_keys() {
        // RFC 8448 section 3, "{server} derive write traffic keys for handshake data"; the same
        // bytes as `openssl kdf -keylen 16 -kdfopt digest:SHA256 -kdfopt mode:EXPAND_ONLY
        // -kdfopt hexkey:<secret> -kdfopt hexinfo:001009746c733133206b657900 HKDF`.
        let secret = unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let k = traffic_keys(Hash::Sha256, &secret, 16).unwrap();
        assert_eq!(k.key, unhex("3fce516009c21727d0f2e4e86ee403bc"));
        assert_eq!(k.iv.to_vec(), unhex("5d313eb2671276ee13000b30"));
    }

    #[test]
    fn rfc8448_client_application_keys() {
        // RFC 8448 section 3, "{client} derive write traffic keys for application data".
        let secret = unhex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
        let k = traffic_keys(Hash::Sha256, &secret, 16).unwrap();
        assert_eq!(k.key, unhex("17422dda596ed5d9acd890e3c63f5051"));
        assert_eq!(k.iv.to_vec(), unhex("5b78923dee08579033e523d9"));
    }

    #[test]
    fn key_update_derives_a_new_secret_of_the_hash_length() {
        let s = vec![7u8; 48];
        let next = next_traffic_secret(Hash::Sha384, &s).unwrap();
        assert_eq!(next.len(), 48);
        assert_ne!(next, s);
        // the label is what sets it apart from the key derivation
        assert_ne!(
            next,
            hkdf_expand_label(Hash::Sha384, &s, b"key", b"", 48).unwrap()
        );
        assert_eq!(next_traffic_secret(Hash::Sha384, &next).unwrap().len(), 48);
    }

    #[test]
    fn tls12_key_block_is_the_prf_of_openssl() {
        // `openssl kdf -keylen 40 -kdfopt digest:SHA384 -kdfopt hexsecret:0b..0b (48)
        // -kdfopt seed:"key expansion" -kdfopt hexseed:02..02 (32) 01..01 (32) TLS1-PRF`
        let block = tls12_key_block(Hash::Sha384, &[0x0b; 48], &[1; 32], &[2; 32], 40).unwrap();
        assert_eq!(
            hex::encode(block),
            "012a4c86a76eec03eddbd2300c0965c55e3cdbb33a736e5048dbb12b14465046875f5ee707fa81f1"
        );
    }
}
