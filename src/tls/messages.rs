//! Handshake message bodies: ClientHello, ServerHello (HelloRetryRequest included), the TLS 1.2
//! and TLS 1.3 Certificate lists, CertificateRequest (both shapes), and the SSLv2-compatible
//! ClientHello.
//!
//! Each parser takes one complete message body (defragmenting is `reader`'s job) and returns the
//! facts a report needs, or a `Malformed` error naming the part that did not fit. Certificates
//! stay opaque DER: decoding them is `cert`'s job. Lengths are checked before every read; nothing
//! here can panic on input bytes.

use super::TlsError;
use super::registry::{CipherSuite, HandshakeType, ProtocolVersion};

/// A bounds-checked reader over a message body.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n.into())
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n.into())
    }
    fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

fn malformed(msg: HandshakeType, what: &'static str) -> TlsError {
    TlsError::Malformed { msg, what }
}

/// What a ClientHello offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `legacy_version` (the highest version for TLS <= 1.2 clients).
    pub version: ProtocolVersion,
    /// The client random: what a key log is keyed by (zeros for an SSLv2-format hello, whose
    /// challenge is not a TLS random).
    pub random: [u8; 32],
    /// The suites offered, in the client's order, GREASE and SCSV values included (an SSLv2
    /// hello's 3-byte specs only where they name a TLS suite).
    pub cipher_suites: Vec<CipherSuite>,
    /// The `server_name` extension's host name.
    pub sni: Option<String>,
    /// The `supported_versions` extension (TLS 1.3 clients), in the client's order.
    pub supported_versions: Vec<ProtocolVersion>,
    /// Sent in the SSLv2-compatible format (RFC 5246 appendix E.2).
    pub sslv2_format: bool,
}

const EXT_SERVER_NAME: u16 = 0;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
const EXT_ENCRYPT_THEN_MAC: u16 = 22;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_CERTIFICATE_AUTHORITIES: u16 = 47;

/// Walks an extensions block, calling `f(type, data)`; `None` if the block is malformed.
fn extensions<'a>(block: &'a [u8], mut f: impl FnMut(u16, &'a [u8])) -> Option<()> {
    let mut c = Cursor::new(block);
    while !c.is_empty() {
        let t = c.u16()?;
        let data = c.vec16()?;
        f(t, data);
    }
    Some(())
}

impl ClientHello {
    /// Parses a ClientHello body (after the 4-byte handshake header). Extensions other than
    /// `server_name` and `supported_versions` are skipped; a hello without any (SSLv3 era) is
    /// fine.
    pub fn parse(body: &[u8]) -> Result<Self, TlsError> {
        let m = HandshakeType::CLIENT_HELLO;
        let mut c = Cursor::new(body);
        let version = ProtocolVersion(c.u16().ok_or(malformed(m, "version"))?);
        let random = c.take(32).ok_or(malformed(m, "random"))?;
        c.vec8().ok_or(malformed(m, "session id"))?;
        let suites = c.vec16().ok_or(malformed(m, "cipher suites"))?;
        let cipher_suites = suites
            .chunks_exact(2)
            .map(|s| CipherSuite(u16::from_be_bytes([s[0], s[1]])))
            .collect();
        c.vec8().ok_or(malformed(m, "compression methods"))?;
        let mut hello = ClientHello {
            version,
            random: random.try_into().unwrap_or([0; 32]),
            cipher_suites,
            ..Default::default()
        };
        if c.is_empty() {
            return Ok(hello); // SSLv3-era hellos have no extensions
        }
        let block = c.vec16().ok_or(malformed(m, "extensions"))?;
        let mut bad = None;
        extensions(block, |t, data| match t {
            EXT_SERVER_NAME => match server_name(data) {
                Some(n) => hello.sni = n,
                None => bad = Some("server_name extension"),
            },
            EXT_SUPPORTED_VERSIONS => match Cursor::new(data).vec8() {
                Some(list) => {
                    hello.supported_versions = list
                        .chunks_exact(2)
                        .map(|v| ProtocolVersion(u16::from_be_bytes([v[0], v[1]])))
                        .collect()
                }
                None => bad = Some("supported_versions extension"),
            },
            _ => {}
        })
        .ok_or(malformed(m, "extensions"))?;
        match bad {
            Some(what) => Err(malformed(m, what)),
            None => Ok(hello),
        }
    }

    /// Parses an SSLv2-format ClientHello body (after the 2-byte record length):
    /// msg_type(1)=1, version(2), cipher_spec_length(2), session_id_length(2),
    /// challenge_length(2), cipher_specs (3 bytes each), session_id, challenge.
    pub fn parse_sslv2(body: &[u8]) -> Result<Self, TlsError> {
        let m = HandshakeType::CLIENT_HELLO;
        let mut c = Cursor::new(body);
        let short = || malformed(m, "SSLv2 header");
        if c.u8().ok_or_else(short)? != 1 {
            return Err(malformed(m, "SSLv2 message type"));
        }
        let version = ProtocolVersion(c.u16().ok_or_else(short)?);
        let spec_len = c.u16().ok_or_else(short)?;
        c.u16().ok_or_else(short)?;
        c.u16().ok_or_else(short)?;
        let specs = c
            .take(spec_len.into())
            .ok_or(malformed(m, "SSLv2 cipher specs"))?;
        // Three-byte specs whose first byte is 0 are the TLS suites; the rest are SSLv2 kinds.
        let cipher_suites = specs
            .chunks_exact(3)
            .filter(|s| s[0] == 0)
            .map(|s| CipherSuite(u16::from_be_bytes([s[1], s[2]])))
            .collect();
        Ok(ClientHello {
            version,
            cipher_suites,
            sslv2_format: true,
            ..Default::default()
        })
    }
}

/// The host name in a `server_name` extension: `Some(None)` if it lists no host name.
fn server_name(data: &[u8]) -> Option<Option<String>> {
    let mut list = Cursor::new(Cursor::new(data).vec16()?);
    while !list.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == 0 {
            return Some(Some(String::from_utf8_lossy(name).into_owned()));
        }
    }
    Some(None)
}

/// SHA-256("HelloRetryRequest"): the `random` that marks a ServerHello as a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What the server chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// `legacy_version` as sent (0x0303 for TLS 1.3; the draft number for early drafts).
    pub legacy_version: ProtocolVersion,
    /// The negotiated version: `supported_versions` if present, else `legacy_version`.
    pub version: ProtocolVersion,
    /// `None` only for a draft-era HelloRetryRequest message, whose layout changed between drafts.
    pub cipher_suite: Option<CipherSuite>,
    /// A HelloRetryRequest: the server asks for another ClientHello; nothing is negotiated yet.
    pub retry_request: bool,
    /// The server random (TLS 1.2 key block input); zeros for a draft-era HelloRetryRequest.
    pub random: [u8; 32],
    /// The `encrypt_then_mac` extension (RFC 7366): TLS 1.2 CBC records MAC the ciphertext.
    pub encrypt_then_mac: bool,
}

impl ServerHello {
    /// Parses a ServerHello body (after the 4-byte handshake header), TLS 1.3 draft shapes
    /// included; a HelloRetryRequest comes out with `retry_request` set.
    pub fn parse(body: &[u8]) -> Result<Self, TlsError> {
        Self::parse_as(body, HandshakeType::SERVER_HELLO)
    }

    /// Parses a ServerHello, or a draft-era HelloRetryRequest message (type 6) which has the
    /// draft shape: version, [cipher suite,] extensions.
    fn parse_as(body: &[u8], m: HandshakeType) -> Result<Self, TlsError> {
        let mut c = Cursor::new(body);
        let legacy_version = ProtocolVersion(c.u16().ok_or(malformed(m, "version"))?);
        if m == HandshakeType::HELLO_RETRY_REQUEST {
            return Ok(ServerHello {
                legacy_version,
                version: legacy_version,
                cipher_suite: None,
                retry_request: true,
                random: [0; 32],
                encrypt_then_mac: false,
            });
        }
        let random = c.take(32).ok_or(malformed(m, "random"))?;
        // Drafts before -22 dropped session id and compression from ServerHello, and put the
        // version they spoke in its first field: a draft number (`0x7fXX`), or, as some
        // draft-era stacks did, 0x0304 itself. RFC 8446 keeps 0x0303 there, so either value
        // means the draft shape.
        let early_draft =
            legacy_version.draft().is_some() || legacy_version == ProtocolVersion::TLS13;
        if !early_draft {
            c.vec8().ok_or(malformed(m, "session id"))?;
        }
        let cipher_suite = CipherSuite(c.u16().ok_or(malformed(m, "cipher suite"))?);
        if !early_draft {
            c.u8().ok_or(malformed(m, "compression method"))?;
        }
        let mut version = legacy_version;
        let mut encrypt_then_mac = false;
        if !c.is_empty() {
            let block = c.vec16().ok_or(malformed(m, "extensions"))?;
            extensions(block, |t, data| {
                if t == EXT_SUPPORTED_VERSIONS && data.len() == 2 {
                    version = ProtocolVersion(u16::from_be_bytes([data[0], data[1]]));
                }
                encrypt_then_mac |= t == EXT_ENCRYPT_THEN_MAC;
            })
            .ok_or(malformed(m, "extensions"))?;
        }
        Ok(ServerHello {
            legacy_version,
            version,
            cipher_suite: Some(cipher_suite),
            retry_request: random == HRR_RANDOM,
            random: random.try_into().unwrap_or([0; 32]),
            encrypt_then_mac,
        })
    }

    /// The draft-era HelloRetryRequest message (handshake type 6).
    pub fn parse_retry_request(body: &[u8]) -> Result<Self, TlsError> {
        Self::parse_as(body, HandshakeType::HELLO_RETRY_REQUEST)
    }
}

/// The DER certificates of a TLS <= 1.2 Certificate message, in the sender's order.
///
/// On a malformed list, the error comes with the certificates that did fit, so a report can
/// still show them.
pub fn certificate_list(body: &[u8]) -> (Vec<Vec<u8>>, Option<TlsError>) {
    let m = HandshakeType::CERTIFICATE;
    let mut certs = Vec::new();
    let mut c = Cursor::new(body);
    let Some(list) = c.vec24() else {
        return (certs, Some(malformed(m, "certificate list length")));
    };
    let mut l = Cursor::new(list);
    while !l.is_empty() {
        match l.vec24() {
            Some(der) => certs.push(der.to_vec()),
            None => return (certs, Some(malformed(m, "certificate length"))),
        }
    }
    let trailing = (!c.is_empty()).then(|| malformed(m, "bytes after the certificate list"));
    (certs, trailing)
}

/// The DER certificates of a TLS 1.3 Certificate message (RFC 8446 4.4.2), in the sender's
/// order, and its `certificate_request_context` (empty in the handshake; for a
/// post-handshake Certificate, the context of the CertificateRequest it answers). Each
/// entry's extensions (OCSP status, SCTs) are skipped.
///
/// On a malformed list, the error comes with the certificates that did fit.
pub fn certificate_list_tls13(body: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>, Option<TlsError>) {
    let m = HandshakeType::CERTIFICATE;
    let mut certs = Vec::new();
    let mut c = Cursor::new(body);
    let Some(context) = c.vec8() else {
        return (
            certs,
            Vec::new(),
            Some(malformed(m, "certificate request context")),
        );
    };
    let context = context.to_vec();
    let Some(list) = c.vec24() else {
        return (
            certs,
            context,
            Some(malformed(m, "certificate list length")),
        );
    };
    let mut l = Cursor::new(list);
    while !l.is_empty() {
        let Some(der) = l.vec24() else {
            return (certs, context, Some(malformed(m, "certificate length")));
        };
        certs.push(der.to_vec());
        if l.vec16().is_none() {
            return (
                certs,
                context,
                Some(malformed(m, "certificate entry extensions")),
            );
        }
    }
    let trailing = (!c.is_empty()).then(|| malformed(m, "bytes after the certificate list"));
    (certs, context, trailing)
}

/// What a TLS <= 1.2 CertificateRequest asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateRequest {
    /// ClientCertificateType values (1 rsa_sign, 64 ecdsa_sign, ...).
    pub certificate_types: Vec<u8>,
    /// SignatureScheme values (TLS 1.2 only).
    pub signature_algorithms: Vec<u16>,
    /// DER-encoded distinguished names of acceptable CAs (the InternalCA for sftunnel).
    pub certificate_authorities: Vec<Vec<u8>>,
}

impl CertificateRequest {
    /// `with_signature_algorithms`: TLS 1.2 inserted that list; TLS 1.0/1.1 do not have it.
    pub fn parse(body: &[u8], with_signature_algorithms: bool) -> Result<Self, TlsError> {
        let m = HandshakeType::CERTIFICATE_REQUEST;
        let mut c = Cursor::new(body);
        let types = c.vec8().ok_or(malformed(m, "certificate types"))?;
        let mut req = CertificateRequest {
            certificate_types: types.to_vec(),
            ..Default::default()
        };
        if with_signature_algorithms {
            let algs = c.vec16().ok_or(malformed(m, "signature algorithms"))?;
            req.signature_algorithms = algs
                .chunks_exact(2)
                .map(|a| u16::from_be_bytes([a[0], a[1]]))
                .collect();
        }
        let cas = c.vec16().ok_or(malformed(m, "certificate authorities"))?;
        req.certificate_authorities = distinguished_names(cas)?;
        Ok(req)
    }

    /// Parses a TLS 1.3 CertificateRequest (RFC 8446 4.3.2): `certificate_request_context`,
    /// then extensions, of which `signature_algorithms` and `certificate_authorities` are
    /// kept. Returns the request and its context (non-empty after the handshake).
    pub fn parse_tls13(body: &[u8]) -> Result<(Self, Vec<u8>), TlsError> {
        let m = HandshakeType::CERTIFICATE_REQUEST;
        let mut c = Cursor::new(body);
        let context = c
            .vec8()
            .ok_or(malformed(m, "certificate request context"))?;
        let block = c.vec16().ok_or(malformed(m, "extensions"))?;
        let mut req = CertificateRequest::default();
        let mut bad = None;
        extensions(block, |t, data| match t {
            EXT_SIGNATURE_ALGORITHMS => match Cursor::new(data).vec16() {
                Some(algs) => {
                    req.signature_algorithms = algs
                        .chunks_exact(2)
                        .map(|a| u16::from_be_bytes([a[0], a[1]]))
                        .collect()
                }
                None => bad = Some("signature_algorithms extension"),
            },
            EXT_CERTIFICATE_AUTHORITIES => {
                match Cursor::new(data)
                    .vec16()
                    .and_then(|l| distinguished_names(l).ok())
                {
                    Some(cas) => req.certificate_authorities = cas,
                    None => bad = Some("certificate_authorities extension"),
                }
            }
            _ => {}
        })
        .ok_or(malformed(m, "extensions"))?;
        match bad {
            Some(what) => Err(malformed(m, what)),
            None => Ok((req, context.to_vec())),
        }
    }
}

/// A list of DER distinguished names, each with a 2-byte length.
fn distinguished_names(list: &[u8]) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut l = Cursor::new(list);
    let mut out = Vec::new();
    while !l.is_empty() {
        let dn = l.vec16().ok_or(malformed(
            HandshakeType::CERTIFICATE_REQUEST,
            "distinguished name",
        ))?;
        out.push(dn.to_vec());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello_body(exts: &[u8]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0); // session id
        b.extend_from_slice(&[0, 4, 0x1a, 0x1a, 0xc0, 0x30]);
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(
            &u16::try_from(exts.len())
                .expect("test extensions fit a u16 length")
                .to_be_bytes(),
        );
        b.extend_from_slice(exts);
        b
    }

    #[test]
    fn client_hello_gives_sni_suites_and_versions() {
        let mut exts = vec![0, 0, 0, 14, 0, 12, 0, 0, 9];
        exts.extend_from_slice(b"localhost");
        exts.extend_from_slice(&[0, 43, 0, 5, 4, 3, 4, 3, 3]);
        let h = ClientHello::parse(&client_hello_body(&exts)).unwrap();
        assert_eq!(h.sni.as_deref(), Some("localhost"));
        assert_eq!(h.cipher_suites, [CipherSuite(0x1a1a), CipherSuite(0xc030)]);
        assert_eq!(
            h.supported_versions,
            [ProtocolVersion::TLS13, ProtocolVersion::TLS12]
        );
    }

    #[test]
    fn truncated_client_hello_names_the_part() {
        let b = client_hello_body(&[0, 0, 0, 14, 0]);
        assert_eq!(
            ClientHello::parse(&b),
            Err(TlsError::Malformed {
                msg: HandshakeType::CLIENT_HELLO,
                what: "extensions"
            })
        );
        assert!(ClientHello::parse(&[3]).is_err());
    }

    fn server_hello_body(random: [u8; 32], exts: &[u8]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&random);
        b.extend_from_slice(&[0, 0x13, 0x02, 0]);
        b.extend_from_slice(
            &u16::try_from(exts.len())
                .expect("test extensions fit a u16 length")
                .to_be_bytes(),
        );
        b.extend_from_slice(exts);
        b
    }

    #[test]
    fn server_hello_reads_supported_versions_and_hrr() {
        let sh =
            ServerHello::parse(&server_hello_body([1; 32], &[0, 43, 0, 2, 0x7f, 0x1c])).unwrap();
        assert_eq!(sh.version, ProtocolVersion(0x7f1c));
        assert!(sh.version.is_tls13() && !sh.retry_request);
        assert_eq!(sh.cipher_suite, Some(CipherSuite(0x1302)));
        let hrr = ServerHello::parse(&server_hello_body(HRR_RANDOM, &[0, 43, 0, 2, 3, 4])).unwrap();
        assert!(hrr.retry_request);
    }

    #[test]
    fn draft_server_hellos_without_session_id_are_tls13() {
        // The pre-draft-22 shape: version, random, cipher suite, extensions.
        for version in [[0x03, 0x04], [0x7f, 0x0e]] {
            let mut b = version.to_vec();
            b.extend_from_slice(&[9; 32]);
            b.extend_from_slice(&[0x13, 0x01, 0, 0]);
            let sh = ServerHello::parse(&b).unwrap();
            assert!(sh.version.is_tls13(), "{version:?}");
            assert_eq!(sh.cipher_suite, Some(CipherSuite(0x1301)));
        }
    }

    #[test]
    fn certificate_list_keeps_what_fits() {
        let body = [0, 0, 8, 0, 0, 2, 0xaa, 0xbb, 0, 0, 9, 0xcc];
        let (certs, err) = certificate_list(&body);
        assert_eq!(certs, vec![vec![0xaa, 0xbb]]);
        assert_eq!(
            err,
            Some(TlsError::Malformed {
                msg: HandshakeType::CERTIFICATE,
                what: "certificate length"
            })
        );
        let (certs, err) = certificate_list(&[0, 0, 0]);
        assert!(certs.is_empty() && err.is_none());
    }

    #[test]
    fn tls13_certificate_list_skips_entry_extensions_and_keeps_what_fits() {
        // context [7], then entries: der aabb + one 4-byte extension, der cc + none, then a
        // third entry whose length runs past the list
        let body = [
            1, 7, 0, 0, 20, 0, 0, 2, 0xaa, 0xbb, 0, 4, 0, 5, 0, 0, 0, 0, 1, 0xcc, 0, 0, 0, 0, 9,
        ];
        let (certs, context, err) = certificate_list_tls13(&body);
        assert_eq!(certs, vec![vec![0xaa, 0xbb], vec![0xcc]]);
        assert_eq!(context, [7]);
        assert_eq!(
            err,
            Some(TlsError::Malformed {
                msg: HandshakeType::CERTIFICATE,
                what: "certificate length"
            })
        );
        let (certs, context, err) = certificate_list_tls13(&[0, 0, 0, 0]);
        assert!(certs.is_empty() && context.is_empty() && err.is_none());
    }

    #[test]
    fn tls13_certificate_request_reads_context_signature_algorithms_and_authorities() {
        // context [1, 2]; signature_algorithms [0x0804]; certificate_authorities [DN 30 00]
        let body = [
            2, 1, 2, 0, 18, 0, 13, 0, 4, 0, 2, 8, 4, 0, 47, 0, 6, 0, 4, 0, 2, 0x30, 0,
        ];
        let (req, context) = CertificateRequest::parse_tls13(&body).unwrap();
        assert_eq!(context, [1, 2]);
        assert_eq!(req.signature_algorithms, [0x0804]);
        assert_eq!(req.certificate_authorities, vec![vec![0x30, 0]]);
        assert!(CertificateRequest::parse_tls13(&body[..10]).is_err());
    }

    #[test]
    fn sslv2_hello_keeps_tls_suites() {
        let body = [
            1, 3, 1, 0, 6, 0, 0, 0, 16, 0x07, 0x00, 0xc0, 0x00, 0x00, 0x2f,
        ];
        let h = ClientHello::parse_sslv2(&body).unwrap();
        assert!(h.sslv2_format);
        assert_eq!(h.version, ProtocolVersion::TLS10);
        assert_eq!(h.cipher_suites, [CipherSuite(0x002f)]);
    }
}
