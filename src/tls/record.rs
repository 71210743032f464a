//! The record layer's 5-byte header: parse it, and say whether bytes plausibly begin a record.
//!
//! Only headers live here; payload handling (defragmenting handshake messages, alerts) is in
//! `reader`, and the search for the first record after a plaintext upgrade is in `scan`.

use super::registry::{ContentType, ProtocolVersion};

/// Bytes in a record header: type (1), version (2), length (2).
pub const HEADER_LEN: usize = 5;

/// The largest record payload TLS allows (TLSCiphertext: 2^14 + 2048). Anything longer is not
/// TLS, or is a stream we lost track of.
pub const MAX_RECORD_LEN: usize = 16384 + 2048;

/// A record header as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Byte 0.
    pub content_type: ContentType,
    /// Bytes 1-2, big-endian: `legacy_record_version` (0x0303 in TLS 1.3, often 0x0301 on a
    /// first ClientHello).
    pub version: ProtocolVersion,
    /// Bytes 3-4, big-endian: the payload length, header not included.
    pub len: u16,
}

impl RecordHeader {
    /// Reads the header at the start of `b`: `None` if fewer than 5 bytes are there.
    pub fn read(b: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Self {
            content_type: ContentType(h[0]),
            version: ProtocolVersion(u16::from_be_bytes([h[1], h[2]])),
            len: u16::from_be_bytes([h[3], h[4]]),
        })
    }

    /// The header's five bytes as on the wire.
    pub(crate) fn bytes(&self) -> [u8; HEADER_LEN] {
        let [v0, v1] = self.version.0.to_be_bytes();
        let [l0, l1] = self.len.to_be_bytes();
        [self.content_type.0, v0, v1, l0, l1]
    }

    /// A known content type, an SSLv3..TLS 1.3 record version and a length TLS allows.
    pub fn is_valid(&self) -> bool {
        self.content_type.is_known()
            && self.version.is_record_version()
            && usize::from(self.len) <= MAX_RECORD_LEN
    }

    /// Header plus payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_handshake_header_and_rejects_text() {
        let h = RecordHeader::read(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
        assert_eq!(h.content_type, ContentType::HANDSHAKE);
        assert_eq!(h.version, ProtocolVersion::TLS10);
        assert_eq!(h.len, 512);
        assert!(h.is_valid());
        assert!(!RecordHeader::read(b"220 smtp").unwrap().is_valid());
        assert!(RecordHeader::read(&[0x16, 0x03]).is_none());
        // 0x4800 = 18432 is the limit; one more is not TLS
        assert!(
            RecordHeader::read(&[0x17, 3, 3, 0x48, 0x00])
                .unwrap()
                .is_valid()
        );
        assert!(
            !RecordHeader::read(&[0x17, 3, 3, 0x48, 0x01])
                .unwrap()
                .is_valid()
        );
    }
}
