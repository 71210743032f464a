//! Finding where TLS starts in a byte stream that may open with another protocol's plaintext.
//!
//! STARTTLS (SMTP, IMAP, POP3, LDAP, XMPP, IRC), PostgreSQL's SSLRequest and MySQL's SSL request
//! all exchange a few plaintext messages and then switch the same TCP connection to TLS. Rather
//! than teach this module each protocol, it looks for what every such switch leads to: the first
//! record of a TLS handshake. A candidate must carry a handshake record header (`16 03 0x` with a
//! sane length) whose first message is a ClientHello or ServerHello with a plausible length and
//! an SSLv3..TLS 1.2 (or TLS 1.3 draft) `legacy_version`: 11 bytes that plaintext protocols do
//! not produce by accident. A plaintext alert record (`15 03 0x 00 02` + level 1|2) also counts,
//! because a server may answer a ClientHello with nothing but an alert.
//!
//! The caller keeps the unsearched tail of its buffer across calls; this module holds no state.

use super::record::{HEADER_LEN, MAX_RECORD_LEN};

/// What a search found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A TLS record starts at this offset.
    At(usize),
    /// Nothing yet; bytes before this offset can never begin a record, bytes from it on might
    /// once more data arrives.
    Not {
        /// Where the caller's next search must start: drop the bytes before it, keep the rest.
        keep_from: usize,
    },
}

/// Searches `buf` for the first offset where a TLS handshake (hello) or plaintext alert record
/// plausibly starts.
pub fn find_start(buf: &[u8]) -> Found {
    let mut i = 0;
    while i < buf.len() {
        let Some(p) = buf[i..].iter().position(|&b| b == 0x16 || b == 0x15) else {
            return Found::Not {
                keep_from: buf.len(),
            };
        };
        i += p;
        match judge(&buf[i..]) {
            Some(true) => return Found::At(i),
            Some(false) => i += 1,
            None => return Found::Not { keep_from: i },
        }
    }
    Found::Not {
        keep_from: buf.len(),
    }
}

/// `Some(true)` if `b` begins a plausible handshake-hello or alert record, `Some(false)` if it
/// cannot, `None` if more bytes are needed to tell.
fn judge(b: &[u8]) -> Option<bool> {
    let byte = |i: usize| b.get(i).copied();
    let head = [byte(0)?, byte(1)?, byte(2)?];
    if head[1] != 3 || head[2] > 4 {
        return Some(false);
    }
    let len = usize::from(u16::from_be_bytes([byte(3)?, byte(4)?]));
    if head[0] == 0x15 {
        return Some(len == 2 && matches!(byte(5)?, 1 | 2));
    }
    // Handshake: room for a message header, and a ClientHello (1) or ServerHello (2).
    if !(4..=MAX_RECORD_LEN).contains(&len) || !matches!(byte(5)?, 1 | 2) {
        return Some(false);
    }
    let msg_type = b[HEADER_LEN];
    let msg_len = u32::from_be_bytes([0, byte(6)?, byte(7)?, byte(8)?]);
    // The smallest ServerHello is 38 bytes; no hello comes near 64 KiB.
    if !(38..=0xffff).contains(&msg_len) {
        return Some(false);
    }
    let (major, minor) = (byte(9)?, byte(10)?);
    Some(match major {
        3 => minor <= 4,
        // TLS 1.3 drafts up to -21 put the draft version in ServerHello.version.
        0x7f | 0x7e => msg_type == 2,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: [u8; 11] = [0x16, 3, 1, 0x00, 0xc8, 1, 0, 0, 0xc4, 3, 3];

    #[test]
    fn finds_a_client_hello_after_plaintext() {
        let mut b = b"220 mail ESMTP\r\nSTARTTLS\r\n220 go ahead\r\n".to_vec();
        let at = b.len();
        b.extend_from_slice(&HELLO);
        assert_eq!(find_start(&b), Found::At(at));
    }

    #[test]
    fn waits_for_more_bytes_on_a_partial_candidate() {
        let mut b = b"OK\r\n".to_vec();
        b.extend_from_slice(&HELLO[..7]);
        assert_eq!(find_start(&b), Found::Not { keep_from: 4 });
    }

    #[test]
    fn ignores_lookalikes() {
        // record header, but the message is a Finished, not a hello
        let mut b = vec![0x16, 3, 3, 0, 0x10, 20, 0, 0, 12, 3, 3];
        // handshake hello with an absurd legacy version
        b.extend_from_slice(&[0x16, 3, 1, 0, 0xc8, 1, 0, 0, 0xc4, 9, 9]);
        b.extend_from_slice(b"tail......");
        assert!(matches!(find_start(&b), Found::Not { .. }));
    }

    #[test]
    fn accepts_a_bare_plaintext_alert() {
        assert_eq!(find_start(&[0x15, 3, 3, 0, 2, 2, 40]), Found::At(0));
        assert_eq!(
            find_start(&[0x15, 3, 3, 0, 2, 7, 40]),
            Found::Not { keep_from: 7 }
        );
    }
}
