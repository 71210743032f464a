//! The tunnel's own message protocol, spoken inside the TLS session once the handshake is done.
//!
//! Owns the frame format and its sans-IO codec ([`encode`], [`decode`]); who sends what when is
//! the server's and client's business, sockets are theirs too. The protocol is ours, not
//! Cisco's: it carries just what the emulation needs (who the peer is, that it is alive, and
//! certificate pushes with an answer).
//!
//! ```text
//! frame   = length:u32be type:u8 body        length counts type + body, at most MAX_FRAME
//! string  = len:u16be UTF-8 bytes
//! bytes   = len:u32be raw bytes
//!
//! 0x01 HELLO          role:u8 (1 = FMC, 2 = device, 3 = HA secondary) uuid:string name:string
//!                     version:string [channel:u8 (1 = control, 2 = events; absent: control)]
//! 0x02 HEARTBEAT      seq:u64be unix_ms:i64be              (sender's clock)
//! 0x03 HEARTBEAT_ACK  seq:u64be unix_ms:i64be              (answers HEARTBEAT seq)
//! 0x04 PUSH           id:u32be count:u16be { name:string mode:u32be data:bytes } * count
//! 0x05 PUSH_ACK       id:u32be ok:u8 message:string        (answers PUSH id)
//! 0x06 REFUSED        reason:string                        (FMC: this device is not admitted)
//! ```
//!
//! A peer has two channels (control and events), each its own TLS connection and session; the
//! device's HELLO says which one this is, whoever dialed, and the FMC's answers with the same.
//! Pushes go over the control channel. A session: the device sends HELLO first (the FMC drops
//! it if HELLO does not come within its hello timeout), the FMC answers with its HELLO, or with
//! REFUSED when the device's (verified) certificate is not one of its peers, and closes: so a
//! device can tell an FMC that refused it from a TLS peer that is not sfdiag. The device then sends HEARTBEAT every
//! interval and the FMC answers each with HEARTBEAT_ACK; either side drops a peer it has not
//! heard from for three intervals. The FMC may send PUSH at any time after HELLO: the device
//! writes the files atomically, answers PUSH_ACK (ok or why not) and, if ok, closes the session
//! and reconnects with the new files, as sftunnel restarts after `generate_certs.pl` pushed
//! new certificates. Unknown frame types are skipped so either side can grow new messages.

use thiserror::Error;

use crate::sftunnel::{Channel, Role};

/// The largest frame either side accepts (a push of three PEM files is a few KiB).
pub(super) const MAX_FRAME: usize = 1 << 20;

/// One file of a PUSH: a bare file name (no directories) and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushFile {
    /// The file's name; a device installs only `cacert.pem`, `sftunnel-cert.pem` and
    /// `sftunnel-key.pem`.
    pub name: String,
    /// Unix permission bits the receiver should give the file (0o600 for keys).
    pub mode: u32,
    /// The file's contents.
    pub data: Vec<u8>,
}

/// The peer's answer to a PUSH.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushAck {
    /// Whether the device installed every file.
    pub ok: bool,
    /// The device's words: `installed N file(s)`, or why it refused the push.
    pub message: String,
}

/// One message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Who the sender is; the device's opens a session, the FMC's answers it.
    Hello {
        /// The sender's role.
        role: Role,
        /// The sender's UUID, its certificate's `title` (empty when that has none).
        uuid: String,
        /// The sender's name (a device's name, the FMC's hostname).
        name: String,
        /// The sender's software (`sfdiag` and its version).
        version: String,
        /// Which of the peer's channels this connection is.
        channel: Channel,
    },
    /// The device is alive (sent every heartbeat interval).
    Heartbeat {
        /// Counts the session's heartbeats from 1.
        seq: u64,
        /// The sender's clock, in milliseconds since the Unix epoch.
        unix_ms: i64,
    },
    /// The FMC's answer to a [`Message::Heartbeat`].
    HeartbeatAck {
        /// The `seq` it answers.
        seq: u64,
        /// The FMC's clock, in milliseconds since the Unix epoch.
        unix_ms: i64,
    },
    /// Files the FMC pushes to the device.
    Push {
        /// The push's number, counted from 1 by the FMC server across its peers.
        id: u32,
        /// The files, in order.
        files: Vec<PushFile>,
    },
    /// The device's answer to a [`Message::Push`].
    PushAck {
        /// The `id` of the push it answers.
        id: u32,
        /// The answer.
        ack: PushAck,
    },
    /// The FMC does not admit this device (why, in the FMC's words).
    Refused {
        /// The FMC's words.
        reason: String,
    },
    /// A frame type this version does not know; kept so the caller can log it.
    Unknown {
        /// Its type byte.
        kind: u8,
        /// Its body's length in bytes (the frame's length less the type byte).
        len: usize,
    },
}

impl Message {
    /// The frame type's name (`HELLO`, `PUSH`, ...), for log lines that must not quote a
    /// peer's whole message.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "HELLO",
            Message::Heartbeat { .. } => "HEARTBEAT",
            Message::HeartbeatAck { .. } => "HEARTBEAT_ACK",
            Message::Push { .. } => "PUSH",
            Message::PushAck { .. } => "PUSH_ACK",
            Message::Refused { .. } => "REFUSED",
            Message::Unknown { .. } => "unknown",
        }
    }
}

/// A frame that cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// A length prefix over the frame limit (1 MiB), refused before reading the frame.
    #[error("frame of {len} bytes is larger than {MAX_FRAME}")]
    TooLarge {
        /// The length the prefix gives.
        len: usize,
    },
    /// A length prefix of 0: a frame without even its type byte.
    #[error("empty frame")]
    Empty,
    /// A known frame type whose body does not parse.
    #[error("malformed {kind} frame: {reason}")]
    Malformed {
        /// The frame type's name (`HELLO`, `PUSH`, ...).
        kind: &'static str,
        /// What does not parse (a short field, an unknown role or channel, trailing bytes).
        reason: String,
    },
}

const HELLO: u8 = 1;
const HEARTBEAT: u8 = 2;
const HEARTBEAT_ACK: u8 = 3;
const PUSH: u8 = 4;
const PUSH_ACK: u8 = 5;
const REFUSED: u8 = 6;

/// The frame for `msg`, ready to write.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    match msg {
        Message::Hello {
            role,
            uuid,
            name,
            version,
            channel,
        } => {
            b.push(HELLO);
            b.push(match role {
                Role::Fmc => 1,
                Role::Device => 2,
                Role::HaSecondary => 3,
            });
            put_str(&mut b, uuid);
            put_str(&mut b, name);
            put_str(&mut b, version);
            b.push(match channel {
                Channel::Control => 1,
                Channel::Events => 2,
            });
        }
        Message::Heartbeat { seq, unix_ms } | Message::HeartbeatAck { seq, unix_ms } => {
            b.push(if matches!(msg, Message::Heartbeat { .. }) {
                HEARTBEAT
            } else {
                HEARTBEAT_ACK
            });
            b.extend_from_slice(&seq.to_be_bytes());
            b.extend_from_slice(&unix_ms.to_be_bytes());
        }
        Message::Push { id, files } => {
            b.push(PUSH);
            b.extend_from_slice(&id.to_be_bytes());
            let n = u16::try_from(files.len()).unwrap_or(u16::MAX);
            b.extend_from_slice(&n.to_be_bytes());
            for f in files.iter().take(usize::from(n)) {
                put_str(&mut b, &f.name);
                b.extend_from_slice(&f.mode.to_be_bytes());
                let len = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
                b.extend_from_slice(&len.to_be_bytes());
                b.extend_from_slice(&f.data[..len as usize]);
            }
        }
        Message::PushAck { id, ack } => {
            b.push(PUSH_ACK);
            b.extend_from_slice(&id.to_be_bytes());
            b.push(u8::from(ack.ok));
            put_str(&mut b, &ack.message);
        }
        Message::Refused { reason } => {
            b.push(REFUSED);
            put_str(&mut b, reason);
        }
        Message::Unknown { kind, .. } => b.push(*kind),
    }
    let len = (b.len() - 4) as u32;
    b[..4].copy_from_slice(&len.to_be_bytes());
    b
}

/// The length field of the PUSH frame that would carry `files` (type + body, as `decode`
/// compares with [`MAX_FRAME`]), counted without encoding: a sender checks it first, because a
/// peer drops the whole tunnel on a frame over the limit.
pub(super) fn push_frame_len(files: &[PushFile]) -> usize {
    // type, id, file count; per file: name length + name (cut as put_str cuts it), mode, data
    // length + data.
    1 + 4
        + 2
        + files
            .iter()
            .map(|f| 2 + f.name.len().min(u16::MAX as usize) + 4 + 4 + f.data.len())
            .sum::<usize>()
}

/// Reads one frame from the front of `buf`: `Ok(None)` when more bytes are needed, else the
/// message and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, ProtoError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge { len });
    }
    if len == 0 {
        return Err(ProtoError::Empty);
    }
    let Some(frame) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let kind = frame[0];
    let mut r = Reader {
        b: &frame[1..],
        kind: kind_name(kind),
    };
    let msg = match kind {
        HELLO => {
            let role = match r.u8()? {
                1 => Role::Fmc,
                2 => Role::Device,
                3 => Role::HaSecondary,
                x => return Err(r.bad(format!("role {x}"))),
            };
            let (uuid, name, version) = (r.string()?, r.string()?, r.string()?);
            // A HELLO of before channels has no channel byte: its one connection is control.
            let channel = match r.b.is_empty() {
                true => Channel::Control,
                false => match r.u8()? {
                    1 => Channel::Control,
                    2 => Channel::Events,
                    x => return Err(r.bad(format!("channel {x}"))),
                },
            };
            Message::Hello {
                role,
                uuid,
                name,
                version,
                channel,
            }
        }
        HEARTBEAT => Message::Heartbeat {
            seq: r.u64()?,
            unix_ms: r.u64()? as i64,
        },
        HEARTBEAT_ACK => Message::HeartbeatAck {
            seq: r.u64()?,
            unix_ms: r.u64()? as i64,
        },
        PUSH => {
            let id = r.u32()?;
            let n = r.u16()?;
            let mut files = Vec::with_capacity(usize::from(n).min(16));
            for _ in 0..n {
                let name = r.string()?;
                let mode = r.u32()?;
                let len = r.u32()? as usize;
                files.push(PushFile {
                    name,
                    mode,
                    data: r.take(len)?.to_vec(),
                });
            }
            Message::Push { id, files }
        }
        PUSH_ACK => Message::PushAck {
            id: r.u32()?,
            ack: PushAck {
                ok: r.u8()? != 0,
                message: r.string()?,
            },
        },
        REFUSED => Message::Refused {
            reason: r.string()?,
        },
        _ => Message::Unknown { kind, len: len - 1 },
    };
    if !matches!(msg, Message::Unknown { .. }) && !r.b.is_empty() {
        return Err(r.bad(format!("{} trailing bytes", r.b.len())));
    }
    Ok(Some((msg, 4 + len)))
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        HELLO => "HELLO",
        HEARTBEAT => "HEARTBEAT",
        HEARTBEAT_ACK => "HEARTBEAT_ACK",
        PUSH => "PUSH",
        PUSH_ACK => "PUSH_ACK",
        REFUSED => "REFUSED",
        _ => "unknown",
    }
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    // Names and messages are short; a longer one is cut at a char boundary rather than refused.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.extend_from_slice(&(end as u16).to_be_bytes());
    b.extend_from_slice(&s.as_bytes()[..end]);
}

struct Reader<'a> {
    b: &'a [u8],
    kind: &'static str,
}

impl<'a> Reader<'a> {
    fn bad(&self, reason: String) -> ProtoError {
        ProtoError::Malformed {
            kind: self.kind,
            reason,
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.b.len() < n {
            return Err(self.bad(format!("needs {n} bytes, {} left", self.b.len())));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<String, ProtoError> {
        let n = usize::from(self.u16()?);
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.bad("string is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello {
                role: Role::Device,
                uuid: "c8d5d5c6-87c9-11ef-a993-b9831565bc4e".into(),
                name: "ftd1".into(),
                version: "sfdiag 0.1".into(),
                channel: Channel::Control,
            },
            Message::Hello {
                role: Role::HaSecondary,
                uuid: "6a3f1b2e-87c9-11ef-a993-b9831565bc4e".into(),
                name: "fmc2".into(),
                version: "sfdiag 0.1".into(),
                channel: Channel::Events,
            },
            Message::Heartbeat {
                seq: 7,
                unix_ms: -5,
            },
            Message::HeartbeatAck {
                seq: 7,
                unix_ms: 1_700_000_000_000,
            },
            Message::Push {
                id: 3,
                files: vec![
                    PushFile {
                        name: "cacert.pem".into(),
                        mode: 0o644,
                        data: b"-----BEGIN".to_vec(),
                    },
                    PushFile {
                        name: "sftunnel-key.pem".into(),
                        mode: 0o600,
                        data: vec![],
                    },
                ],
            },
            Message::PushAck {
                id: 3,
                ack: PushAck {
                    ok: false,
                    message: "disk full".into(),
                },
            },
            Message::Refused {
                reason: "not a peer of this FMC: 1234".into(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips_even_when_fed_byte_by_byte() {
        let mut wire = Vec::new();
        for m in samples() {
            wire.extend(encode(&m));
        }
        let mut got = Vec::new();
        let mut buf = Vec::new();
        for &byte in &wire {
            buf.push(byte);
            while let Some((m, used)) = decode(&buf).unwrap() {
                buf.drain(..used);
                got.push(m);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, samples());
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 1]),
            Err(ProtoError::TooLarge { len: 0xffff_ffff })
        );
        assert_eq!(decode(&[0, 0, 0, 0]), Err(ProtoError::Empty));
        // HELLO whose string claims more bytes than the frame has.
        assert!(matches!(
            decode(&[0, 0, 0, 4, HELLO, 2, 0, 9]),
            Err(ProtoError::Malformed { kind: "HELLO", .. })
        ));
        // HEARTBEAT with trailing bytes.
        let mut hb = encode(&Message::Heartbeat { seq: 1, unix_ms: 1 });
        hb.push(0);
        hb[3] += 1;
        assert!(decode(&hb).is_err());
        // PUSH claiming 65535 files in 7 bytes.
        assert!(decode(&[0, 0, 0, 7, PUSH, 0, 0, 0, 1, 0xff, 0xff]).is_err());
        // Every prefix of garbage is either "need more", an error, or a message: never a panic.
        let junk: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        for n in 0..junk.len() {
            let _ = decode(&junk[..n]);
        }
    }

    #[test]
    fn push_frame_len_is_the_encoded_length() {
        for m in samples() {
            if let Message::Push { files, .. } = &m {
                assert_eq!(push_frame_len(files), encode(&m).len() - 4);
            }
        }
        let big = vec![PushFile {
            name: "x".repeat(70_000),
            mode: 0,
            data: vec![1; 10],
        }];
        let m = Message::Push { id: 1, files: big };
        let Message::Push { files, .. } = &m else {
            unreachable!()
        };
        assert_eq!(push_frame_len(files), encode(&m).len() - 4);
    }

    #[test]
    fn unknown_types_are_skipped_whole() {
        let (m, used) = decode(&[0, 0, 0, 3, 0x7f, 1, 2, 9]).unwrap().unwrap();
        assert_eq!(m, Message::Unknown { kind: 0x7f, len: 2 });
        assert_eq!(used, 7);
    }
}
