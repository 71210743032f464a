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
    pub const SSL3: Self = Self(0x0300);
    pub const TLS10: Self = Self(0x0301);
    pub const TLS11: Self = Self(0x0302);
    pub const TLS12: Self = Self(0x0303);
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
    pub const CHANGE_CIPHER_SPEC: Self = Self(20);
    pub const ALERT: Self = Self(21);
    pub const HANDSHAKE: Self = Self(22);
    pub const APPLICATION_DATA: Self = Self(23);
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
    pub const HELLO_REQUEST: Self = Self(0);
    pub const CLIENT_HELLO: Self = Self(1);
    pub const SERVER_HELLO: Self = Self(2);
    pub const NEW_SESSION_TICKET: Self = Self(4);
    /// Drafts of TLS 1.3 up to -21 had a message of their own for HelloRetryRequest.
    pub const HELLO_RETRY_REQUEST: Self = Self(6);
    pub const ENCRYPTED_EXTENSIONS: Self = Self(8);
    pub const CERTIFICATE: Self = Self(11);
    pub const SERVER_KEY_EXCHANGE: Self = Self(12);
    pub const CERTIFICATE_REQUEST: Self = Self(13);
    pub const SERVER_HELLO_DONE: Self = Self(14);
    pub const CERTIFICATE_VERIFY: Self = Self(15);
    pub const CLIENT_KEY_EXCHANGE: Self = Self(16);
    pub const FINISHED: Self = Self(20);
    pub const CERTIFICATE_STATUS: Self = Self(22);
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
    pub const WARNING: Self = Self(1);
    pub const FATAL: Self = Self(2);

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
    pub const CLOSE_NOTIFY: Self = Self(0);
    pub const HANDSHAKE_FAILURE: Self = Self(40);
    pub const BAD_CERTIFICATE: Self = Self(42);
    pub const UNSUPPORTED_CERTIFICATE: Self = Self(43);
    pub const CERTIFICATE_REVOKED: Self = Self(44);
    pub const CERTIFICATE_EXPIRED: Self = Self(45);
    pub const CERTIFICATE_UNKNOWN: Self = Self(46);
    pub const UNKNOWN_CA: Self = Self(48);
    pub const ACCESS_DENIED: Self = Self(49);
    pub const DECODE_ERROR: Self = Self(50);
    pub const DECRYPT_ERROR: Self = Self(51);
    pub const INTERNAL_ERROR: Self = Self(80);
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
