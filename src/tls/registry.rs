//! The TLS registries as newtypes over their wire values: protocol versions, cipher suites,
//! content types, handshake types, alert levels and descriptions.
//!
//! Unknown values are kept, never mapped to a catch-all: a GREASE suite prints as
//! `unknown(0x1a1a)`, an unassigned alert as `unknown(200)`. Names follow the IANA registries
//! (`certificate_expired`, `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`); versions follow the
//! `TLSv1.2` spelling OpenSSL and Wireshark print.

use std::fmt;

use serde::{Serialize, Serializer};

use super::suites::SUITES;

/// A protocol version as on the wire (`0x0303` = TLS 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProtocolVersion(pub u16);

impl ProtocolVersion {
    /// SSL 3.0 (RFC 6101).
    pub const SSL3: Self = Self(0x0300);
    /// TLS 1.0 (RFC 2246); also the record version many clients put on their first
    /// ClientHello.
    pub const TLS10: Self = Self(0x0301);
    /// TLS 1.1 (RFC 4346).
    pub const TLS11: Self = Self(0x0302);
    /// TLS 1.2 (RFC 5246); also TLS 1.3's `legacy_version` and record version.
    pub const TLS12: Self = Self(0x0303);
    /// TLS 1.3 (RFC 8446): on the wire only in `supported_versions` (and in the first field of
    /// some draft-era ServerHellos).
    pub const TLS13: Self = Self(0x0304);

    /// TLS 1.3 or one of its drafts (`0x7fXX`; Facebook's `0x7e02` experiments too): the
    /// handshake after ServerHello is encrypted.
    pub fn is_tls13(self) -> bool {
        self.0 == 0x0304 || self.0 >> 8 == 0x7f || self.0 >> 8 == 0x7e
    }

    /// The draft number for `0x7fXX` versions.
    pub fn draft(self) -> Option<u8> {
        (self.0 >> 8 == 0x7f).then_some((self.0 & 0xff) as u8)
    }

    /// A version a record layer may carry: SSLv3 .. TLS 1.3 (`0x0300..=0x0304`).
    pub fn is_record_version(self) -> bool {
        (0x0300..=0x0304).contains(&self.0)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0x0002 => f.write_str("SSLv2"),
            0x0300 => f.write_str("SSLv3"),
            0x0301 => f.write_str("TLSv1.0"),
            0x0302 => f.write_str("TLSv1.1"),
            0x0303 => f.write_str("TLSv1.2"),
            0x0304 => f.write_str("TLSv1.3"),
            v => match self.draft() {
                Some(d) => write!(f, "TLSv1.3-draft{d}"),
                None => write!(f, "unknown(0x{v:04x})"),
            },
        }
    }
}

/// A cipher suite code point; known ones have their IANA name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    /// The IANA name, if the code point is assigned (GREASE values are not).
    pub fn name(self) -> Option<&'static str> {
        SUITES
            .binary_search_by_key(&self.0, |&(v, _)| v)
            .ok()
            .map(|i| SUITES[i].1)
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown(0x{:04x})", self.0),
        }
    }
}

/// The record layer's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentType(pub u8);

impl ContentType {
    /// 20: the sender's next records are protected (TLS <= 1.2); in TLS 1.3 a
    /// middlebox-compatibility no-op (RFC 8446 D.4).
    pub const CHANGE_CIPHER_SPEC: Self = Self(20);
    /// 21: two bytes, level and description, unless encrypted.
    pub const ALERT: Self = Self(21);
    /// 22: handshake messages, which may be split across records or share one.
    pub const HANDSHAKE: Self = Self(22);
    /// 23: application data; in TLS 1.3 the outer type of every protected record.
    pub const APPLICATION_DATA: Self = Self(23);
    /// 24: heartbeat (RFC 6520); skipped here.
    pub const HEARTBEAT: Self = Self(24);

    /// One of the five content types TLS up to 1.3 defines.
    pub fn is_known(self) -> bool {
        (20..=24).contains(&self.0)
    }
}

/// A handshake message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakeType(pub u8);

impl HandshakeType {
    /// 0: a TLS <= 1.2 server asks the client to renegotiate.
    pub const HELLO_REQUEST: Self = Self(0);
    /// 1: opens the handshake; its random is what a key log is keyed by.
    pub const CLIENT_HELLO: Self = Self(1);
    /// 2: the server's choice of version and suite; in TLS 1.3 also a HelloRetryRequest,
    /// marked by its random (RFC 8446 4.1.3).
    pub const SERVER_HELLO: Self = Self(2);
    /// 4: a session ticket (RFC 5077); in TLS 1.3 sent encrypted after the handshake.
    pub const NEW_SESSION_TICKET: Self = Self(4);
    /// Drafts of TLS 1.3 up to -21 had a message of their own for HelloRetryRequest.
    pub const HELLO_RETRY_REQUEST: Self = Self(6);
    /// 8: TLS 1.3, the server's first encrypted message.
    pub const ENCRYPTED_EXTENSIONS: Self = Self(8);
    /// 11: the sender's certificate chain (empty: a client without a certificate).
    pub const CERTIFICATE: Self = Self(11);
    /// 12: TLS <= 1.2 (EC)DHE parameters, signed with the server's key.
    pub const SERVER_KEY_EXCHANGE: Self = Self(12);
    /// 13: the server asks the client for a certificate (TLS 1.3: also after the handshake).
    pub const CERTIFICATE_REQUEST: Self = Self(13);
    /// 14: TLS <= 1.2, the end of the server's first flight.
    pub const SERVER_HELLO_DONE: Self = Self(14);
    /// 15: a signature over the handshake with the certificate's private key.
    pub const CERTIFICATE_VERIFY: Self = Self(15);
    /// 16: TLS <= 1.2, the client's key exchange share (or RSA-encrypted pre-master secret).
    pub const CLIENT_KEY_EXCHANGE: Self = Self(16);
    /// 20: the MAC over the handshake that ends a side's flight; always encrypted.
    pub const FINISHED: Self = Self(20);
    /// 22: a stapled OCSP response (RFC 6066 8), TLS <= 1.2.
    pub const CERTIFICATE_STATUS: Self = Self(22);
    /// 24: TLS 1.3 (RFC 8446 4.6.3): the sender's next records use its next traffic secret.
    pub const KEY_UPDATE: Self = Self(24);

    /// The message name as the RFCs spell it (`ServerHelloDone`).
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "HelloRequest",
            1 => "ClientHello",
            2 => "ServerHello",
            3 => "HelloVerifyRequest",
            4 => "NewSessionTicket",
            5 => "EndOfEarlyData",
            6 => "HelloRetryRequest",
            8 => "EncryptedExtensions",
            11 => "Certificate",
            12 => "ServerKeyExchange",
            13 => "CertificateRequest",
            14 => "ServerHelloDone",
            15 => "CertificateVerify",
            16 => "ClientKeyExchange",
            20 => "Finished",
            21 => "CertificateURL",
            22 => "CertificateStatus",
            23 => "SupplementalData",
            24 => "KeyUpdate",
            25 => "CompressedCertificate",
            254 => "MessageHash",
            _ => return None,
        })
    }
}

impl fmt::Display for HandshakeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown({})", self.0),
        }
    }
}

/// An alert's level byte: 1 warning, 2 fatal; anything else kept as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlertLevel(pub u8);

impl AlertLevel {
    /// 1: the connection may go on (close_notify is sent at this level).
    pub const WARNING: Self = Self(1);
    /// 2: the sender ends the connection.
    pub const FATAL: Self = Self(2);

    /// The level byte is 2. Taken at its word in TLS 1.3 too, where RFC 8446 6 makes every
    /// error alert fatal whatever the byte says.
    pub fn is_fatal(self) -> bool {
        self == Self::FATAL
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("warning"),
            2 => f.write_str("fatal"),
            v => write!(f, "unknown({v})"),
        }
    }
}

/// An alert description code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlertDescription(pub u8);

impl AlertDescription {
    /// 0: orderly close (RFC 8446 6.1), at warning level; encrypted after the handshake.
    pub const CLOSE_NOTIFY: Self = Self(0);
    /// 40: no acceptable parameters; also what an OpenSSL TLS 1.2 server sends a client that
    /// sent no certificate when one is required (TLS 1.3: `CERTIFICATE_REQUIRED`).
    pub const HANDSHAKE_FAILURE: Self = Self(40);
    /// 42: OpenSSL's answer to most certificate errors without a closer alert (not yet valid,
    /// rejected, weak key; `judge::alert_for` has the table).
    pub const BAD_CERTIFICATE: Self = Self(42);
    /// 43: OpenSSL's answer to `X509_V_ERR_INVALID_PURPOSE` (26).
    pub const UNSUPPORTED_CERTIFICATE: Self = Self(43);
    /// 44: OpenSSL's answer to `X509_V_ERR_CERT_REVOKED` (23).
    pub const CERTIFICATE_REVOKED: Self = Self(44);
    /// 45: OpenSSL's answer to an expired certificate or CRL (`X509_V_ERR` 10, 12).
    pub const CERTIFICATE_EXPIRED: Self = Self(45);
    /// 46: OpenSSL's answer to a verify error outside its alert table.
    pub const CERTIFICATE_UNKNOWN: Self = Self(46);
    /// 48: no path to a trusted CA; OpenSSL's answer to `X509_V_ERR` 2, 3, 18-22, 25, 33, 79
    /// (unknown or self-signed issuer, chain too long, invalid CA).
    pub const UNKNOWN_CA: Self = Self(48);
    /// 49: a valid certificate, refused by the receiver's policy.
    pub const ACCESS_DENIED: Self = Self(49);
    /// 50: a message did not parse; OpenSSL also sends it for a certificate whose DER does
    /// not decode.
    pub const DECODE_ERROR: Self = Self(50);
    /// 51: a handshake signature or Finished did not verify; OpenSSL's answer to a bad
    /// certificate or CRL signature (`X509_V_ERR` 7, 8).
    pub const DECRYPT_ERROR: Self = Self(51);
    /// 80: the sender's own failure, not the peer's.
    pub const INTERNAL_ERROR: Self = Self(80);
    /// 116: TLS 1.3 (RFC 8446 6.2): the client sent no certificate and one is required.
    pub const CERTIFICATE_REQUIRED: Self = Self(116);

    /// The IANA registry name (`certificate_expired`).
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "close_notify",
            1 => "end_of_early_data",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            21 => "decryption_failed",
            22 => "record_overflow",
            30 => "decompression_failure",
            40 => "handshake_failure",
            41 => "no_certificate",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            44 => "certificate_revoked",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            49 => "access_denied",
            50 => "decode_error",
            51 => "decrypt_error",
            60 => "export_restriction",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            90 => "user_canceled",
            100 => "no_renegotiation",
            109 => "missing_extension",
            110 => "unsupported_extension",
            111 => "certificate_unobtainable",
            112 => "unrecognized_name",
            113 => "bad_certificate_status_response",
            114 => "bad_certificate_hash_value",
            115 => "unknown_psk_identity",
            116 => "certificate_required",
            120 => "no_application_protocol",
            121 => "ech_required",
            _ => return None,
        })
    }

    /// Alerts a peer sends when it rejects the other side's certificate chain.
    pub fn is_about_certificate(self) -> bool {
        matches!(self.0, 41..=46 | 48 | 111 | 113 | 114 | 116)
    }
}

impl fmt::Display for AlertDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown({})", self.0),
        }
    }
}

macro_rules! serialize_as_display {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_display!(
    ProtocolVersion,
    CipherSuite,
    HandshakeType,
    AlertLevel,
    AlertDescription
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_table_is_sorted_and_unique() {
        assert!(SUITES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn known_and_unknown_suites_print_as_the_registry_says() {
        assert_eq!(
            CipherSuite(0xc030).to_string(),
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
        );
        assert_eq!(CipherSuite(0x1301).to_string(), "TLS_AES_128_GCM_SHA256");
        assert_eq!(CipherSuite(0x1a1a).to_string(), "unknown(0x1a1a)");
    }

    #[test]
    fn versions_print_like_openssl_and_drafts_are_tls13() {
        assert_eq!(ProtocolVersion::TLS12.to_string(), "TLSv1.2");
        assert_eq!(ProtocolVersion(0x7f1c).to_string(), "TLSv1.3-draft28");
        assert!(ProtocolVersion(0x7f1c).is_tls13());
        assert!(!ProtocolVersion::TLS12.is_tls13());
        assert_eq!(ProtocolVersion(0x0a0a).to_string(), "unknown(0x0a0a)");
    }

    #[test]
    fn alerts_keep_unknown_codes() {
        assert_eq!(AlertDescription(45).to_string(), "certificate_expired");
        assert_eq!(AlertDescription(200).to_string(), "unknown(200)");
        assert_eq!(AlertLevel(2).to_string(), "fatal");
    }
}
