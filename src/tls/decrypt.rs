//! Record protection undone with logged secrets: which suites can be opened, and one
//! direction's record cipher (key, IV, sequence number).
//!
//! TLS 1.3 (RFC 8446 5.2-5.3): every suite is an AEAD (AES-128/256-GCM, ChaCha20-Poly1305),
//! the nonce is the IV xor the record's sequence number, the additional data is the record
//! header, and the inner plaintext ends with its real content type after any zero padding.
//! TLS 1.2: AES-GCM (RFC 5288: 4-byte salt + 8-byte explicit nonce), ChaCha20-Poly1305
//! (RFC 7905) and AES-CBC with HMAC-SHA1/256/384 (RFC 5246 6.2.3.2, encrypt-then-MAC per RFC
//! 7366 when the ServerHello agreed to it); the additional data (or MAC input) is the
//! sequence number, type, version and plaintext length. Every record is authenticated before
//! anything of it is believed: a wrong or stale key-log line gives an error, never garbage.
//!
//! Pure: bytes in, bytes out, no clock. When to install or replace a cipher (ServerHello,
//! ChangeCipherSpec, Finished, KeyUpdate) is `session`'s decision; feeding it records is
//! `reader`'s. The AEADs, AES-CBC and HMAC are aws-lc-rs's.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{self, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::keyschedule::{self, Hash};
use super::record::RecordHeader;
use super::registry::{CipherSuite, ContentType};

/// The AEAD algorithms of the suites that can be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    /// AES-128-GCM: 16-byte key, 16-byte tag.
    Aes128Gcm,
    /// AES-256-GCM: 32-byte key, 16-byte tag.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439): 32-byte key, 16-byte tag.
    Chacha20Poly1305,
}

impl Aead {
    fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::Chacha20Poly1305 => 32,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes128Gcm => &aead::AES_128_GCM,
            Aead::Aes256Gcm => &aead::AES_256_GCM,
            Aead::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// The HMAC of a TLS 1.2 CBC suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mac {
    /// HMAC-SHA1: 20-byte MAC and key (the `_SHA` suites).
    Sha1,
    /// HMAC-SHA256: 32-byte MAC and key (the `_SHA256` suites).
    Sha256,
    /// HMAC-SHA384: 48-byte MAC and key (the `_SHA384` suites).
    Sha384,
}

impl Mac {
    fn len(self) -> usize {
        match self {
            Mac::Sha1 => 20,
            Mac::Sha256 => 32,
            Mac::Sha384 => 48,
        }
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Mac::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Mac::Sha256 => hmac::HMAC_SHA256,
            Mac::Sha384 => hmac::HMAC_SHA384,
        }
    }
}

/// How a suite protects records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// TLS 1.3: the 12-byte IV xor the sequence number, the record header as additional data,
    /// the real content type inside.
    Tls13(Aead),
    /// TLS 1.2 AES-GCM: the IV is a 4-byte salt, each record carries 8 bytes of nonce.
    Tls12Gcm(Aead),
    /// TLS 1.2 ChaCha20-Poly1305: a 12-byte IV xor the sequence number.
    Tls12Chacha,
    /// TLS 1.2 AES-CBC with an HMAC.
    Tls12Cbc {
        /// AES key bytes: 16 (AES-128) or 32 (AES-256).
        key_len: usize,
        /// The HMAC, per the suite name's last part.
        mac: Mac,
    },
}

/// A cipher suite this module can open, with the hash of its key schedule or PRF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// How its records are sealed.
    pub protection: Protection,
    /// TLS 1.3: the HKDF hash, whose length a logged traffic secret has; TLS 1.2: the PRF's
    /// hash (SHA-256 for every suite but the `_SHA384` ones).
    pub hash: Hash,
}

impl Suite {
    /// The suite `cs` as negotiated in TLS 1.3 (`tls13`) or TLS 1.2; `None` if it cannot be
    /// opened here (CCM, 3DES, RC4, CAMELLIA, NULL, PSK-only suites, ...).
    pub fn of(cs: CipherSuite, tls13: bool) -> Option<Suite> {
        use Aead::*;
        use Hash::*;
        let (protection, hash) = match (tls13, cs.0) {
            (true, 0x1301) => (Protection::Tls13(Aes128Gcm), Sha256),
            (true, 0x1302) => (Protection::Tls13(Aes256Gcm), Sha384),
            (true, 0x1303) => (Protection::Tls13(Chacha20Poly1305), Sha256),
            (true, _) => return None,
            // RSA, DHE_RSA, DHE_DSS, ECDHE_ECDSA, ECDHE_RSA
            (false, 0x009c | 0x009e | 0x00a2 | 0xc02b | 0xc02f) => {
                (Protection::Tls12Gcm(Aes128Gcm), Sha256)
            }
            (false, 0x009d | 0x009f | 0x00a3 | 0xc02c | 0xc030) => {
                (Protection::Tls12Gcm(Aes256Gcm), Sha384)
            }
            (false, 0xcca8..=0xccaa) => (Protection::Tls12Chacha, Sha256),
            (false, 0x002f | 0x0033 | 0x0032 | 0xc009 | 0xc013) => (cbc(16, Mac::Sha1), Sha256),
            (false, 0x0035 | 0x0039 | 0x0038 | 0xc00a | 0xc014) => (cbc(32, Mac::Sha1), Sha256),
            (false, 0x003c | 0x0067 | 0x0040 | 0xc023 | 0xc027) => (cbc(16, Mac::Sha256), Sha256),
            (false, 0x003d | 0x006b | 0x006a) => (cbc(32, Mac::Sha256), Sha256),
            (false, 0xc024 | 0xc028) => (cbc(32, Mac::Sha384), Sha384),
            (false, _) => return None,
        };
        Some(Suite { protection, hash })
    }
}

fn cbc(key_len: usize, mac: Mac) -> Protection {
    Protection::Tls12Cbc { key_len, mac }
}

/// A record that does not open: wrong secret, wrong sequence number (records missing from
/// the capture) or damaged bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError {
    /// The record's sequence number in its direction and key generation.
    pub seq: u64,
}

enum Key {
    Aead {
        key: Box<LessSafeKey>,
        iv: [u8; 12],
        /// TLS 1.2 GCM: the IV is a 4-byte salt and the record carries the other 8 bytes.
        explicit_nonce: bool,
    },
    Cbc {
        key: Box<DecryptingKey>,
        mac: Box<hmac::Key>,
        mac_len: usize,
        encrypt_then_mac: bool,
    },
}

/// One direction's record protection in one key generation.
pub struct RecordCipher {
    protection: Protection,
    key: Key,
    /// The sequence number of the next record.
    seq: u64,
    /// The plaintext of the last record opened.
    scratch: Vec<u8>,
}

impl fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordCipher")
            .field("protection", &self.protection)
            .field("seq", &self.seq)
            .finish()
    }
}

fn aead_key(a: Aead, key: &[u8]) -> Option<Box<LessSafeKey>> {
    Some(Box::new(LessSafeKey::new(
        UnboundKey::new(a.algorithm(), key).ok()?,
    )))
}

fn nonce_xor(iv: &[u8; 12], seq: u64) -> Nonce {
    let mut n = *iv;
    for (b, s) in n[4..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    Nonce::assume_unique_for_key(n)
}

/// TLS 1.2's additional data / MAC header: seq, type, version, length.
/// `None` when `len` passes a record length's 16 bits: no authentic record is that long.
fn tls12_header(seq: u64, h: &RecordHeader, len: usize) -> Option<[u8; 13]> {
    let mut a = [0; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = h.content_type.0;
    a[9..11].copy_from_slice(&h.version.0.to_be_bytes());
    a[11..].copy_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
    Some(a)
}

impl RecordCipher {
    /// A TLS 1.3 cipher for the records protected by `traffic_secret`.
    pub fn tls13(suite: Suite, traffic_secret: &[u8]) -> Option<Self> {
        let Protection::Tls13(a) = suite.protection else {
            return None;
        };
        if traffic_secret.len() != suite.hash.output_len() {
            return None;
        }
        let k = keyschedule::traffic_keys(suite.hash, traffic_secret, a.key_len())?;
        Some(Self {
            protection: suite.protection,
            key: Key::Aead {
                key: aead_key(a, &k.key)?,
                iv: k.iv,
                explicit_nonce: false,
            },
            seq: 0,
            scratch: Vec::new(),
        })
    }

    /// The TLS 1.2 ciphers of a connection, (client's, server's), from its master secret and
    /// the two hello randoms.
    pub fn tls12_pair(
        suite: Suite,
        master_secret: &[u8],
        client_random: &[u8; 32],
        server_random: &[u8; 32],
        encrypt_then_mac: bool,
    ) -> Option<(Self, Self)> {
        let (mac_len, key_len, iv_len) = match suite.protection {
            Protection::Tls13(_) => return None,
            Protection::Tls12Gcm(a) => (0, a.key_len(), 4),
            Protection::Tls12Chacha => (0, 32, 12),
            Protection::Tls12Cbc { key_len, mac } => (mac.len(), key_len, 16),
        };
        let len = 2 * (mac_len + key_len + iv_len);
        let block = keyschedule::tls12_key_block(
            suite.hash,
            master_secret,
            client_random,
            server_random,
            len,
        )?;
        // client MAC, server MAC, client key, server key, client IV, server IV
        let (macs, rest) = block.split_at(2 * mac_len);
        let (keys, ivs) = rest.split_at(2 * key_len);
        let one = |i: usize| -> Option<Self> {
            let mac_key = &macs[i * mac_len..(i + 1) * mac_len];
            let key = &keys[i * key_len..(i + 1) * key_len];
            let iv = &ivs[i * iv_len..(i + 1) * iv_len];
            let key = match suite.protection {
                Protection::Tls12Gcm(a) => {
                    let mut salt = [0; 12];
                    salt[..4].copy_from_slice(iv);
                    Key::Aead {
                        key: aead_key(a, key)?,
                        iv: salt,
                        explicit_nonce: true,
                    }
                }
                Protection::Tls12Chacha => Key::Aead {
                    key: aead_key(Aead::Chacha20Poly1305, key)?,
                    iv: iv.try_into().ok()?,
                    explicit_nonce: false,
                },
                Protection::Tls12Cbc { mac, .. } => {
                    let alg = if key_len == 16 {
                        &cipher::AES_128
                    } else {
                        &cipher::AES_256
                    };
                    Key::Cbc {
                        key: Box::new(
                            DecryptingKey::cbc(UnboundCipherKey::new(alg, key).ok()?).ok()?,
                        ),
                        mac: Box::new(hmac::Key::new(mac.algorithm(), mac_key)),
                        mac_len,
                        encrypt_then_mac,
                    }
                }
                Protection::Tls13(_) => return None,
            };
            Some(Self {
                protection: suite.protection,
                key,
                seq: 0,
                scratch: Vec::new(),
            })
        };
        Some((one(0)?, one(1)?))
    }

    /// A TLS 1.3 cipher: it opens application-data records (the handshake too), where a
    /// TLS 1.2 one opens alerts.
    pub fn is_tls13(&self) -> bool {
        matches!(self.protection, Protection::Tls13(_))
    }

    /// Counts a record that is not opened (TLS 1.2 records other than alerts): the next one
    /// has the next sequence number.
    pub fn skip(&mut self) {
        self.seq += 1;
    }

    /// Opens the record `h` + `payload`, the next in this direction: its (inner) content type
    /// and plaintext. The sequence number advances whatever the result.
    pub fn open(
        &mut self,
        h: &RecordHeader,
        payload: &[u8],
    ) -> Result<(ContentType, &[u8]), OpenError> {
        let seq = self.seq;
        self.seq += 1;
        let err = OpenError { seq };
        let tls13 = self.is_tls13();
        let buf = &mut self.scratch;
        buf.clear();
        match &self.key {
            Key::Aead {
                key,
                iv,
                explicit_nonce,
            } => {
                let tag = key.algorithm().tag_len();
                let (nonce, body) = if *explicit_nonce {
                    let explicit = payload.get(..8).ok_or(err)?;
                    let mut n = *iv;
                    n[4..].copy_from_slice(explicit);
                    (Nonce::assume_unique_for_key(n), &payload[8..])
                } else {
                    (nonce_xor(iv, seq), payload)
                };
                let plain_len = body.len().checked_sub(tag).ok_or(err)?;
                buf.extend_from_slice(body);
                let opened = if tls13 {
                    key.open_in_place(nonce, Aad::from(h.bytes()), buf)
                } else {
                    let aad = tls12_header(seq, h, plain_len).ok_or(err)?;
                    key.open_in_place(nonce, Aad::from(aad), buf)
                };
                let n = opened.map_err(|_| err)?.len();
                buf.truncate(n);
                if !tls13 {
                    return Ok((h.content_type, &buf[..]));
                }
                // TLSInnerPlaintext: content, the real type, zero padding.
                let end = buf.iter().rposition(|&b| b != 0).ok_or(err)?;
                let typ = ContentType(buf[end]);
                buf.truncate(end);
                Ok((typ, &buf[..]))
            }
            Key::Cbc {
                key,
                mac,
                mac_len,
                encrypt_then_mac,
            } => {
                let iv: [u8; 16] = payload.get(..16).ok_or(err)?.try_into().map_err(|_| err)?;
                let mut body = &payload[16..];
                if *encrypt_then_mac {
                    let cut = body.len().checked_sub(*mac_len).ok_or(err)?;
                    let (c, tag) = body.split_at(cut);
                    let mut m = hmac::Context::with_key(mac);
                    m.update(&tls12_header(seq, h, 16 + c.len()).ok_or(err)?);
                    m.update(&iv);
                    m.update(c);
                    if m.sign().as_ref() != tag {
                        return Err(err);
                    }
                    body = c;
                }
                if body.is_empty() || !body.len().is_multiple_of(16) {
                    return Err(err);
                }
                buf.extend_from_slice(body);
                let ctx = DecryptionContext::Iv128(FixedLength::from(iv));
                let n = key.decrypt(buf, ctx).map_err(|_| err)?.len();
                buf.truncate(n);
                // content || [MAC] || padding (pad+1 bytes, each = pad)
                let pad = usize::from(*buf.last().ok_or(err)?);
                let macs = if *encrypt_then_mac { 0 } else { *mac_len };
                let content_len = buf.len().checked_sub(pad + 1 + macs).ok_or(err)?;
                if buf[buf.len() - pad - 1..]
                    .iter()
                    .any(|&b| usize::from(b) != pad)
                {
                    return Err(err);
                }
                if !*encrypt_then_mac {
                    let (content, tag) = buf[..content_len + macs].split_at(content_len);
                    let mut m = hmac::Context::with_key(mac);
                    m.update(&tls12_header(seq, h, content_len).ok_or(err)?);
                    m.update(content);
                    if m.sign().as_ref() != tag {
                        return Err(err);
                    }
                }
                buf.truncate(content_len);
                Ok((h.content_type, &buf[..]))
            }
        }
    }
}

#[cfg(test)]
/// Seals `plain` the way a TLS 1.3 peer does (aws-lc-rs's AEAD, our key schedule), for
/// round trips; the real-bytes checks are the recorded captures (tests/it/keylog.rs).
pub(super) fn seal13(suite: Suite, secret: &[u8], seq: u64, typ: u8, plain: &[u8]) -> Vec<u8> {
    let Protection::Tls13(a) = suite.protection else {
        unreachable!()
    };
    let k = keyschedule::traffic_keys(suite.hash, secret, a.key_len()).unwrap();
    let key = aead_key(a, &k.key).unwrap();
    let mut inner = plain.to_vec();
    inner.push(typ);
    inner.extend_from_slice(&[0; 3]); // padding
    let len = u16::try_from(inner.len() + 16).expect("test record fits a u16 length");
    let mut rec = vec![23, 3, 3];
    rec.extend_from_slice(&len.to_be_bytes());
    let header: [u8; 5] = rec[..5].try_into().unwrap();
    key.seal_in_place_append_tag(nonce_xor(&k.iv, seq), Aad::from(header), &mut inner)
        .unwrap();
    rec.extend_from_slice(&inner);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls13_records_open_in_sequence_for_every_suite() {
        for cs in [0x1301, 0x1302, 0x1303] {
            let suite = Suite::of(CipherSuite(cs), true).unwrap();
            let secret = vec![0x42; suite.hash.output_len()];
            let mut c = RecordCipher::tls13(suite, &secret).unwrap();
            for seq in 0..3 {
                let rec = seal13(suite, &secret, seq, 22, b"\x14\x00\x00\x01\x07");
                let h = RecordHeader::read(&rec).unwrap();
                let (typ, plain) = c.open(&h, &rec[5..]).unwrap();
                assert_eq!(typ, ContentType::HANDSHAKE);
                assert_eq!(plain, b"\x14\x00\x00\x01\x07");
            }
            // a record sealed for another sequence number does not open
            let rec = seal13(suite, &secret, 9, 21, &[2, 42]);
            let h = RecordHeader::read(&rec).unwrap();
            assert_eq!(c.open(&h, &rec[5..]), Err(OpenError { seq: 3 }));
        }
    }

    #[test]
    fn a_wrong_secret_or_a_flipped_bit_is_an_error_not_garbage() {
        let suite = Suite::of(CipherSuite(0x1301), true).unwrap();
        let rec = seal13(suite, &[1; 32], 0, 21, &[2, 48]);
        let h = RecordHeader::read(&rec).unwrap();
        let mut wrong = RecordCipher::tls13(suite, &[2; 32]).unwrap();
        assert!(wrong.open(&h, &rec[5..]).is_err());
        let mut flipped = rec.clone();
        flipped[7] ^= 1;
        let mut right = RecordCipher::tls13(suite, &[1; 32]).unwrap();
        assert!(right.open(&h, &flipped[5..]).is_err());
        // short payloads never panic
        for n in 0..20 {
            let mut c = RecordCipher::tls13(suite, &[1; 32]).unwrap();
            assert!(c.open(&h, &rec[5..5 + n]).is_err());
        }
        // a secret of the wrong length for the suite's hash is refused
        assert!(RecordCipher::tls13(suite, &[1; 48]).is_none());
    }

    #[test]
    fn suites_that_cannot_be_opened_are_none() {
        assert!(Suite::of(CipherSuite(0x1304), true).is_none()); // AES-CCM
        assert!(Suite::of(CipherSuite(0x000a), false).is_none()); // 3DES
        assert!(Suite::of(CipherSuite(0xc030), true).is_none());
        assert_eq!(
            Suite::of(CipherSuite(0xc030), false).unwrap().hash,
            Hash::Sha384
        );
    }
}
