//! capture: pcap and pcapng files (optionally gzip-compressed, or stdin) in, numbered
//! [`Frame`]s out, streaming, with constant memory whatever the file's length.
//!
//! This module owns the file formats only: byte orders, timestamp resolutions, pcapng
//! sections and interfaces (each with its own link type and `if_tsresol`), and the errors a
//! damaged file gives ("truncated after frame N", "corrupt block after frame N"). It knows
//! nothing of link layers, IP, TCP or TLS: [`crate::net`] decodes `Frame::data` according to
//! `Frame::linktype`. Block framing is done by pcap-parser's streaming readers over a 1 MiB
//! buffer that grows only for a bigger block, up to [`MAX_BLOCK_LEN`]; frames borrow that
//! buffer, so the reader is a lending iterator ([`Reader::next_frame`]).

// These modules turn wire bytes into lengths and offsets: a silent truncation there is a
// parsing bug, so every narrowing or sign-changing cast is spelled out or justified.
#![warn(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]
#![warn(missing_docs)] // every pub item of capture says what it holds (issue 10)

mod reader;
mod source;
#[cfg(test)]
pub(crate) mod testfile;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use reader::Reader;

/// Initial size of the reader's buffer. Big enough that refills are rare.
pub const BUFFER_LEN: usize = 1 << 20;

/// The largest block (pcap record or pcapng block) the reader accepts. A record header that
/// claims more is treated as corruption instead of being allocated: real snap lengths stop at
/// 256 KiB, and a 2 GB claim must not cost 2 GB.
pub const MAX_BLOCK_LEN: usize = 16 << 20;

/// One captured packet, borrowed from the reader's buffer until the next call to
/// [`Reader::next_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// 1-based position in the file, counting every packet record, as Wireshark's
    /// `frame.number`.
    pub index: u64,
    /// Capture time, UTC.
    pub ts: Timestamp,
    /// How to decode `data` (pcapng: the link type of the frame's own interface).
    pub linktype: Linktype,
    /// The captured bytes (`caplen` of them, never the pcapng padding).
    pub data: &'a [u8],
    /// The packet's length on the wire (larger than `data.len()` when the snap length cut it).
    pub orig_len: u32,
    /// pcapng interface id within its section (0 for pcap files).
    pub interface: u32,
}

/// A capture timestamp: seconds since the Unix epoch (UTC) and nanoseconds within the second.
/// Ordered, cheap to copy; print it with `Display` as tshark prints `frame.time_epoch`
/// (`1438145938.995683000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since the epoch; negative before 1970.
    pub secs: i64,
    /// Always below 1_000_000_000.
    pub nanos: u32,
}

impl Timestamp {
    /// Builds a timestamp, carrying whole seconds out of `nanos`.
    pub fn new(secs: i64, nanos: u64) -> Timestamp {
        Timestamp {
            // u64::MAX / 10^9 is about 1.8e10 seconds, well inside an i64.
            secs: secs.saturating_add((nanos / 1_000_000_000).cast_signed()),
            nanos: (nanos % 1_000_000_000) as u32,
        }
    }

    /// Nanoseconds since the epoch.
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// The same instant as a `time` value (None only for years outside ±9999).
    pub fn to_datetime(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::from_unix_timestamp_nanos(self.unix_nanos()).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs < 0 && self.nanos > 0 {
            // -0.5 s is secs -1, nanos 500_000_000: print the signed decimal, not "-1.5".
            write!(f, "-{}.{:09}", -(self.secs + 1), 1_000_000_000 - self.nanos)
        } else {
            write!(f, "{}.{:09}", self.secs, self.nanos)
        }
    }
}

/// A link-layer type (tcpdump.org LINKTYPE_ values). Unknown values are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Linktype(pub u32);

impl Linktype {
    /// BSD loopback: a 4-byte address family in the writer's byte order, then IP.
    pub const NULL: Linktype = Linktype(0);
    /// Ethernet II frames (with 802.1Q tags, if any).
    pub const ETHERNET: Linktype = Linktype(1);
    /// DLT_RAW as written by some BSDs (the value 12 in a file).
    pub const RAW_12: Linktype = Linktype(12);
    /// DLT_RAW as written by OpenBSD (14).
    pub const RAW_14: Linktype = Linktype(14);
    /// Raw IP, v4 or v6 by the first nibble.
    pub const RAW: Linktype = Linktype(101);
    /// OpenBSD loopback: a 4-byte address family in network byte order, then IP.
    pub const LOOP: Linktype = Linktype(108);
    /// Linux cooked capture v1 (`tcpdump -i any` with older libpcap): a 16-byte header.
    pub const LINUX_SLL: Linktype = Linktype(113);
    /// Raw IPv4, no link header.
    pub const IPV4: Linktype = Linktype(228);
    /// Raw IPv6, no link header.
    pub const IPV6: Linktype = Linktype(229);
    /// Linux cooked capture v2 (`tcpdump -i any` with libpcap 1.10 and later): a 20-byte header.
    pub const LINUX_SLL2: Linktype = Linktype(276);

    /// The name capinfos / Wireshark give this encapsulation, for reports.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NULL/Loopback",
            1 => "Ethernet",
            12 | 14 | 101 => "Raw IP",
            108 => "OpenBSD loopback",
            113 => "Linux cooked-mode capture v1",
            228 => "Raw IPv4",
            229 => "Raw IPv6",
            276 => "Linux cooked-mode capture v2",
            _ => "unknown",
        }
    }
}

impl fmt::Display for Linktype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// The container format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Classic libpcap: one file header, then records.
    Pcap {
        /// Nanosecond magic (0xa1b23c4d) rather than microsecond.
        nanosecond: bool,
        /// Written big-endian (the magic's bytes on disk start `a1 b2`).
        big_endian: bool,
    },
    /// pcapng: sections of blocks, each section with its own byte order and interfaces.
    PcapNg,
}

/// What went wrong reading a capture, and where. Frames numbered up to `after_frame` were
/// delivered before the error: callers keep them (a truncated capture still has a report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be opened, or is a folder.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file as given.
        path: PathBuf,
        /// What the system said (`IsADirectory` for a folder).
        source: io::Error,
    },
    /// The input starts with neither a pcap nor a pcapng magic.
    #[error("not a pcap or pcapng capture (first bytes: {first_bytes})")]
    NotACapture {
        /// The first bytes in hex, or a note that the input is empty.
        first_bytes: String,
    },
    /// The input ends inside a block.
    #[error(
        "capture truncated after frame {after_frame}: the file ends inside the next block (offset {offset})"
    )]
    Truncated {
        /// The last frame delivered (0: none).
        after_frame: u64,
        /// Where the unfinished block starts, in bytes of the (decompressed) stream.
        offset: u64,
    },
    /// A block or header whose fields contradict the format.
    #[error("corrupt capture after frame {after_frame} (block at offset {offset}): {reason}")]
    Corrupt {
        /// The last frame delivered (0: none).
        after_frame: u64,
        /// Where the block starts, in bytes of the (decompressed) stream.
        offset: u64,
        /// Which field is wrong, and how.
        reason: String,
    },
    /// A block length over [`MAX_BLOCK_LEN`]: taken as corruption, never allocated.
    #[error(
        "corrupt capture after frame {after_frame} (offset {offset}): a block claims {len} bytes, over the {limit}-byte limit"
    )]
    BlockTooLarge {
        /// The last frame delivered (0: none).
        after_frame: u64,
        /// Where the block starts, in bytes of the (decompressed) stream.
        offset: u64,
        /// The length the block claims, in bytes.
        len: u64,
        /// The largest block read, in bytes ([`MAX_BLOCK_LEN`]; tests set a smaller one).
        limit: u64,
    },
    /// Reading the input (or decompressing it) failed.
    #[error("read error after frame {after_frame}: {source}")]
    Io {
        /// The last frame delivered (0: none).
        after_frame: u64,
        /// What the system or the decompressor said.
        source: io::Error,
    },
}

impl CaptureError {
    /// The last frame delivered before the error (0 when none was).
    pub fn after_frame(&self) -> u64 {
        match self {
            CaptureError::Open { .. } | CaptureError::NotACapture { .. } => 0,
            CaptureError::Truncated { after_frame, .. }
            | CaptureError::Corrupt { after_frame, .. }
            | CaptureError::BlockTooLarge { after_frame, .. }
            | CaptureError::Io { after_frame, .. } => *after_frame,
        }
    }
}

/// Opens a capture file; `-` means standard input. Gzip is detected by its magic, not the
/// file name.
pub fn open(path: impl AsRef<Path>) -> Result<Reader, CaptureError> {
    let path = path.as_ref();
    if path.as_os_str() == "-" {
        return Reader::new(io::stdin());
    }
    let file = File::open(path).map_err(|source| CaptureError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().ok();
    // Opening a folder succeeds on Unix; reading it would fail with a bare "Is a directory".
    if meta.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(CaptureError::Open {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::IsADirectory,
                "it is a folder: give the capture files in it (e.g. DIR/*.pcap*)",
            ),
        });
    }
    let len = meta.map(|m| m.len());
    let mut reader = Reader::new(file)?;
    reader.set_input_len(len);
    Ok(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_refused_as_such() {
        let d = tempfile::tempdir().unwrap();
        let e = open(d.path()).unwrap_err();
        assert!(matches!(e, CaptureError::Open { .. }), "{e}");
        assert!(e.to_string().contains("it is a folder"), "{e}");
    }

    #[test]
    fn timestamp_prints_like_tshark_epoch() {
        assert_eq!(
            Timestamp::new(1438145938, 995683000).to_string(),
            "1438145938.995683000"
        );
        assert_eq!(Timestamp::new(0, 5).to_string(), "0.000000005");
        assert_eq!(
            Timestamp {
                secs: -1,
                nanos: 500_000_000
            }
            .to_string(),
            "-0.500000000"
        );
        assert_eq!(Timestamp::new(-2, 0).to_string(), "-2.000000000");
    }

    #[test]
    fn timestamp_carries_seconds_and_converts_to_datetime() {
        let t = Timestamp::new(10, 2_500_000_000);
        assert_eq!((t.secs, t.nanos), (12, 500_000_000));
        let dt = Timestamp::new(1438145938, 995683000).to_datetime().unwrap();
        assert_eq!(dt.unix_timestamp(), 1438145938);
        assert_eq!(dt.nanosecond(), 995683000);
    }
}
