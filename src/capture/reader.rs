//! The streaming capture reader: pcap-parser's block readers driven so that no block is
//! parsed before it is whole in the buffer.
//!
//! Before asking pcap-parser for a block we read the block's length from its header ourselves
//! (16/24-byte pcap record header, or pcapng type + length). That one check gives every error
//! its shape: a length over [`MAX_BLOCK_LEN`] is corruption (never an allocation), a file that
//! ends before the length is a truncation "after frame N", and a parser that still asks for
//! more bytes of a block we know is complete is a corrupt block. It also keeps the parse loop
//! free of pcap-parser's `Incomplete`/`refill` dance, and lets a frame borrow the buffer: the
//! block is consumed only when the next frame is asked for.
//!
//! Each format keeps its own state (`PcapState`: byte order, resolution, link type;
//! `NgState`: the section's byte order and interfaces) beside its parser, one enum of the
//! two; what both share (the buffer's position, frames delivered, the errors' facts) is a
//! `Position`, handed to whichever format reads the next block.

use std::io::Read;
use std::sync::Arc;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader};
use tracing::debug;

use super::source::{self, Source, SourceState};
use super::{BUFFER_LEN, CaptureError, Format, Frame, Linktype, MAX_BLOCK_LEN, Timestamp};

const SHB_MAGIC: u32 = 0x0A0D_0D0A;
const BOM_MAGIC: u32 = 0x1A2B_3C4D;
const IDB_MAGIC: u32 = 0x0000_0001;
const SPB_MAGIC: u32 = 0x0000_0003;
const EPB_MAGIC: u32 = 0x0000_0006;

/// One reader per format, each with only the state its format has.
enum Inner {
    Pcap(PcapState),
    PcapNg(NgState),
}

impl Inner {
    fn parser(&mut self) -> &mut dyn PcapReaderIterator {
        match self {
            Inner::Pcap(p) => &mut p.parser,
            Inner::PcapNg(n) => &mut n.parser,
        }
    }

    fn data(&self) -> &[u8] {
        match self {
            Inner::Pcap(p) => p.parser.data(),
            Inner::PcapNg(n) => n.parser.data(),
        }
    }
}

/// A classic pcap file: one link type, one byte order and resolution for the whole file.
struct PcapState {
    parser: LegacyPcapReader<Source>,
    /// The file header pcap-parser hands out as the first block has been taken.
    header_seen: bool,
    /// Record header length: 16, or 24 for the "modified" (0xa1b2cd34) format.
    hdr_len: usize,
    big_endian: bool,
    nanosecond: bool,
    linktype: Linktype,
}

/// A pcapng file: sections, each with its byte order and its interfaces.
struct NgState {
    parser: PcapNGReader<Source>,
    /// The current section's byte order.
    big_endian: bool,
    /// The current section's interfaces, by id.
    ifaces: Vec<Iface>,
    /// The previous packet's time: a Simple Packet Block has none of its own.
    last_ts: Timestamp,
}

/// Where the read is, shared by both formats: the buffer's limits, bytes consumed, frames
/// delivered, and the input's error slot. Every error's "after frame N, offset O" comes from
/// here.
struct Position {
    state: Arc<SourceState>,
    capacity: usize,
    max_block: usize,
    /// Bytes consumed so far, in the (decompressed) capture stream.
    offset: u64,
    frames: u64,
}

/// A pcapng interface: its link type and how to turn its ticks into a timestamp.
#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: Linktype,
    /// Ticks per second (`if_tsresol`).
    units_per_sec: u64,
    /// Nanoseconds per tick when that is a whole number (the common 10^-6 and 10^-9 cases),
    /// else 0 and the slow exact path is taken.
    nanos_per_unit: u64,
    /// `if_tsoffset`, seconds.
    offset_secs: i64,
    /// 0 = no limit.
    snaplen: u32,
}

impl Iface {
    fn new(linktype: Linktype, tsresol: u8, offset_secs: i64, snaplen: u32) -> Iface {
        let units_per_sec = ts_units_per_sec(tsresol).unwrap_or_else(|| {
            debug!(tsresol, "unusable if_tsresol, assuming microseconds");
            1_000_000
        });
        let nanos_per_unit = if 1_000_000_000 % units_per_sec == 0 {
            1_000_000_000 / units_per_sec
        } else {
            0
        };
        Iface {
            linktype,
            units_per_sec,
            nanos_per_unit,
            offset_secs,
            snaplen,
        }
    }

    // why: `frac < units_per_sec`, so the exact nanoseconds are below 10^9 and fit a u64.
    #[allow(clippy::cast_possible_truncation)]
    fn timestamp(&self, high: u32, low: u32) -> Timestamp {
        let ticks = (u64::from(high) << 32) | u64::from(low);
        // At one tick per second (`if_tsresol` 0) the wire's 64 bits can pass i64::MAX:
        // saturate, as `Timestamp::new` does, rather than wrap into the past.
        let secs = i64::try_from(ticks / self.units_per_sec).unwrap_or(i64::MAX);
        let frac = ticks % self.units_per_sec;
        let nanos = if self.nanos_per_unit != 0 {
            frac * self.nanos_per_unit
        } else {
            (u128::from(frac) * 1_000_000_000 / u128::from(self.units_per_sec)) as u64
        };
        Timestamp::new(secs.saturating_add(self.offset_secs), nanos)
    }
}

/// `if_tsresol`: high bit clear = 10^-n, set = 2^-n. (pcap-parser's own helper rejects every
/// power-of-two resolution, so we decode it here.)
fn ts_units_per_sec(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else if n < 64 {
        Some(1u64 << n)
    } else {
        None
    }
}

/// Where a packet lies in the buffer and what we know of it, owned so that the borrow of the
/// parsed block ends before the frame is handed out.
struct PacketMeta {
    start: usize,
    len: usize,
    ts: Timestamp,
    linktype: Linktype,
    orig_len: u32,
    interface: u32,
}

enum Step {
    /// A packet, and the length of its block (consumed when the next frame is asked for).
    Packet(PacketMeta, usize),
    Skip,
    End,
}

/// How much of the wanted bytes the buffer holds once the input can give no more.
#[derive(PartialEq, Eq)]
enum Have {
    All,
    /// None at all: a clean end between blocks.
    Nothing,
    /// Some but not all: the file ends inside a block.
    Part,
}

/// Streaming reader of pcap / pcapng (optionally gzip) from any `Read`. Memory: one buffer of
/// [`BUFFER_LEN`], grown only for a bigger block.
pub struct Reader {
    inner: Inner,
    pos: Position,
    gzip: bool,
    input_len: Option<u64>,
    /// Length of the block whose frame was last handed out; consumed on the next call.
    pending: usize,
    done: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("format", &self.format())
            .field("gzip", &self.gzip)
            .field("frames", &self.pos.frames)
            .field("offset", &self.pos.offset)
            .finish_non_exhaustive()
    }
}

fn hex_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "none, the input is empty".to_string();
    }
    head.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A short description of a pcap-parser error that never prints the input bytes it carries.
fn describe(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("block does not parse ({kind:?})")
        }
        PcapError::Incomplete(_) | PcapError::UnexpectedEof => {
            "block content is shorter than its own fields claim".to_string()
        }
        PcapError::HeaderNotRecognized => "section header not recognized".to_string(),
        other => other.to_string(),
    }
}

/// The error of a file header pcap-parser could not read.
fn header_error(e: PcapError<&'static [u8]>, state: &SourceState) -> CaptureError {
    match e {
        _ if state.has_error() => CaptureError::Io {
            after_frame: 0,
            source: state
                .take_error()
                .unwrap_or_else(|| std::io::Error::other("read error")),
        },
        PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
            CaptureError::Truncated {
                after_frame: 0,
                offset: 0,
            }
        }
        other => CaptureError::Corrupt {
            after_frame: 0,
            offset: 0,
            reason: format!("file header: {}", describe(&other)),
        },
    }
}

fn u32_at(data: &[u8], at: usize, big_endian: bool) -> u32 {
    let b = [data[at], data[at + 1], data[at + 2], data[at + 3]];
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

impl Reader {
    /// Starts reading a capture from `input` (gunzipped when it starts with the gzip magic).
    /// Reads the file header; fails when the input is not a capture.
    pub fn new<R: Read + Send + 'static>(input: R) -> Result<Reader, CaptureError> {
        Self::with_buffer(input, BUFFER_LEN, MAX_BLOCK_LEN)
    }

    pub(crate) fn with_buffer<R: Read + Send + 'static>(
        input: R,
        capacity: usize,
        max_block: usize,
    ) -> Result<Reader, CaptureError> {
        let io_err = |source| CaptureError::Io {
            after_frame: 0,
            source,
        };
        let opened = source::wrap(Box::new(input)).map_err(io_err)?;
        let head = opened.head;
        if head.len() < 4 {
            return Err(CaptureError::NotACapture {
                first_bytes: hex_head(&head),
            });
        }
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        // (nanosecond, big endian) of a pcap file; None for pcapng.
        let pcap = match magic {
            0xa1b2_c3d4 | 0xa1b2_cd34 => Some((false, false)),
            0xa1b2_3c4d => Some((true, false)),
            0xd4c3_b2a1 => Some((false, true)),
            0x4d3c_b2a1 => Some((true, true)),
            SHB_MAGIC => None,
            _ => {
                return Err(CaptureError::NotACapture {
                    first_bytes: hex_head(&head),
                });
            }
        };
        let state = opened.state;
        let inner = match pcap {
            Some((nanosecond, big_endian)) => Inner::Pcap(PcapState {
                parser: LegacyPcapReader::new(capacity, opened.source)
                    .map_err(|e| header_error(e, &state))?,
                header_seen: false,
                hdr_len: if magic == 0xa1b2_cd34 { 24 } else { 16 },
                big_endian,
                nanosecond,
                linktype: Linktype::ETHERNET,
            }),
            None => Inner::PcapNg(NgState {
                parser: PcapNGReader::new(capacity, opened.source)
                    .map_err(|e| header_error(e, &state))?,
                big_endian: false,
                ifaces: Vec::new(),
                last_ts: Timestamp::default(),
            }),
        };
        Ok(Reader {
            inner,
            pos: Position {
                state,
                capacity,
                max_block,
                offset: 0,
                frames: 0,
            },
            gzip: opened.gzip,
            input_len: None,
            pending: 0,
            done: false,
        })
    }

    /// The next frame, `Ok(None)` at the end of the capture. After an error every later call
    /// returns `Ok(None)`; the frames delivered before it stay valid results.
    #[allow(clippy::should_implement_trait)] // lending: the frame borrows the reader
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if self.pending > 0 {
            self.pos.consume(self.inner.parser(), self.pending);
            self.pending = 0;
        }
        if self.done {
            return Ok(None);
        }
        let (meta, block_len) = loop {
            let step = match &mut self.inner {
                Inner::Pcap(p) => p.step(&mut self.pos),
                Inner::PcapNg(n) => n.step(&mut self.pos),
            };
            match step {
                Ok(Step::Packet(m, len)) => break (m, len),
                Ok(Step::Skip) => continue,
                Ok(Step::End) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        };
        self.pending = block_len;
        self.pos.frames += 1;
        let data = &self.inner.data()[meta.start..meta.start + meta.len];
        Ok(Some(Frame {
            index: self.pos.frames,
            ts: meta.ts,
            linktype: meta.linktype,
            data,
            orig_len: meta.orig_len,
            interface: meta.interface,
        }))
    }

    /// pcap or pcapng, byte order, resolution.
    pub fn format(&self) -> Format {
        match &self.inner {
            Inner::Pcap(p) => Format::Pcap {
                nanosecond: p.nanosecond,
                big_endian: p.big_endian,
            },
            Inner::PcapNg(_) => Format::PcapNg,
        }
    }

    /// True when the input was gzip-compressed.
    pub fn compressed(&self) -> bool {
        self.gzip
    }

    /// Frames delivered so far (the index of the last one).
    pub fn frames_read(&self) -> u64 {
        self.pos.frames
    }

    /// Bytes taken from the underlying input so far (compressed bytes for a .gz), to compare
    /// with [`Reader::input_len`] for progress.
    pub fn input_position(&self) -> u64 {
        self.pos.state.raw_bytes()
    }

    /// The input's size when known (a regular file opened with [`super::open`]).
    pub fn input_len(&self) -> Option<u64> {
        self.input_len
    }

    pub(crate) fn set_input_len(&mut self, len: Option<u64>) {
        self.input_len = len;
    }
}

impl Position {
    fn consume(&mut self, parser: &mut dyn PcapReaderIterator, n: usize) {
        // No shift here: refill shifts only the partial block left at the end of the buffer,
        // instead of moving half a buffer every time the read position passes the middle.
        parser.consume_noshift(n);
        self.offset += n as u64;
    }

    /// Reads until the buffer holds `need` bytes of unconsumed data, or the input ends.
    fn ensure(
        &mut self,
        parser: &mut dyn PcapReaderIterator,
        need: usize,
    ) -> Result<Have, CaptureError> {
        loop {
            let have = parser.data().len();
            if have >= need {
                return Ok(Have::All);
            }
            if parser.reader_exhausted() {
                if let Some(source) = self.state.take_error() {
                    if source.kind() == std::io::ErrorKind::UnexpectedEof {
                        // A gzip stream cut short is a truncated capture, not a disk error.
                        return Err(self.truncated());
                    }
                    return Err(CaptureError::Io {
                        after_frame: self.frames,
                        source,
                    });
                }
                return Ok(if have == 0 { Have::Nothing } else { Have::Part });
            }
            if need > self.capacity {
                let want = need.next_power_of_two().min(self.max_block + 64).max(need);
                parser.grow(want);
                self.capacity = want;
            }
            // Our Source never fails a read (it keeps the error aside), so this cannot error.
            if parser.refill().is_err() {
                return Err(CaptureError::Io {
                    after_frame: self.frames,
                    source: std::io::Error::other("read error"),
                });
            }
        }
    }

    /// Ensures a whole block of `len` bytes, mapping a short input to the right error:
    /// false at a clean end between blocks.
    fn ensure_block(
        &mut self,
        parser: &mut dyn PcapReaderIterator,
        len: usize,
    ) -> Result<bool, CaptureError> {
        match self.ensure(parser, len)? {
            Have::All => Ok(true),
            Have::Nothing => Ok(false),
            Have::Part => Err(self.truncated()),
        }
    }

    fn truncated(&self) -> CaptureError {
        CaptureError::Truncated {
            after_frame: self.frames,
            offset: self.offset,
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> CaptureError {
        CaptureError::Corrupt {
            after_frame: self.frames,
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn too_large(&self, len: u64) -> CaptureError {
        CaptureError::BlockTooLarge {
            after_frame: self.frames,
            offset: self.offset,
            len,
            limit: self.max_block as u64,
        }
    }
}

impl PcapState {
    fn step(&mut self, pos: &mut Position) -> Result<Step, CaptureError> {
        if !self.header_seen {
            // pcap-parser hands out the file header it parsed at creation as the first block.
            let header = match self.parser.next() {
                // pcap-parser keeps the header's 32-bit link type as an i32: take its bits back.
                Ok((off, PcapBlockOwned::LegacyHeader(h))) => {
                    Some((off, h.network.0.cast_unsigned()))
                }
                _ => None,
            };
            let Some((off, linktype)) = header else {
                return Err(pos.corrupt("file header"));
            };
            self.header_seen = true;
            // The upper 16 bits of the pcap link-type field carry FCS flags.
            self.linktype = Linktype(linktype & 0xffff);
            pos.consume(&mut self.parser, off);
            return Ok(Step::Skip);
        }
        let hdr = self.hdr_len;
        if !pos.ensure_block(&mut self.parser, hdr)? {
            return Ok(Step::End);
        }
        let caplen = u32_at(self.parser.data(), 8, self.big_endian) as usize;
        if caplen > pos.max_block {
            return Err(pos.too_large(caplen as u64));
        }
        if !pos.ensure_block(&mut self.parser, hdr + caplen)? {
            return Err(pos.truncated());
        }
        let base = self.parser.data().as_ptr() as usize;
        let parsed = match self.parser.next() {
            Ok((_, PcapBlockOwned::Legacy(b))) => {
                let nanos = if self.nanosecond {
                    u64::from(b.ts_usec)
                } else {
                    u64::from(b.ts_usec) * 1000
                };
                Ok(PacketMeta {
                    start: b.data.as_ptr() as usize - base,
                    len: b.data.len(),
                    ts: Timestamp::new(i64::from(b.ts_sec), nanos),
                    linktype: self.linktype,
                    orig_len: b.origlen,
                    interface: 0,
                })
            }
            Ok(_) => Err("unexpected block in a pcap file".to_string()),
            Err(e) => Err(describe(&e)),
        };
        let meta = parsed.map_err(|reason| pos.corrupt(reason))?;
        Ok(Step::Packet(meta, hdr + caplen))
    }
}

/// What one pcapng block means for the reader, owned so the parser's borrow ends first.
enum NgAct {
    Section(bool),
    Interface(Iface),
    Packet(PacketMeta),
    BadInterface(u32),
    Skip,
    Fail(String),
}

impl NgState {
    fn step(&mut self, pos: &mut Position) -> Result<Step, CaptureError> {
        if !pos.ensure_block(&mut self.parser, 12)? {
            return Ok(Step::End);
        }
        let data = self.parser.data();
        let btype = u32_at(data, 0, false);
        let be = if btype == SHB_MAGIC {
            // The section's byte order is in its own header, after the length.
            match u32_at(data, 8, false) {
                BOM_MAGIC => false,
                m if m == BOM_MAGIC.swap_bytes() => true,
                _ => return Err(pos.corrupt("section header with an unknown byte-order magic")),
            }
        } else {
            self.big_endian
        };
        let btype = if be && btype != SHB_MAGIC {
            btype.swap_bytes()
        } else {
            btype
        };
        let len = u32_at(data, 4, be) as usize;
        if len > pos.max_block {
            return Err(pos.too_large(len as u64));
        }
        if len < 12 || !len.is_multiple_of(4) {
            return Err(pos.corrupt(format!(
                "block type {btype:#x} has an impossible length {len}"
            )));
        }
        if !pos.ensure_block(&mut self.parser, len)? {
            return Err(pos.truncated());
        }
        let act = self.parse(be, btype, pos.offset);
        match act {
            NgAct::Section(big_endian) => {
                self.big_endian = big_endian;
                self.ifaces.clear();
                pos.consume(&mut self.parser, len);
                Ok(Step::Skip)
            }
            NgAct::Interface(iface) => {
                self.ifaces.push(iface);
                pos.consume(&mut self.parser, len);
                Ok(Step::Skip)
            }
            NgAct::Packet(meta) => {
                self.last_ts = meta.ts;
                Ok(Step::Packet(meta, len))
            }
            NgAct::BadInterface(id) => Err(pos.corrupt(format!(
                "packet block names interface {id}, but the section describes {}",
                self.ifaces.len()
            ))),
            NgAct::Skip => {
                pos.consume(&mut self.parser, len);
                Ok(Step::Skip)
            }
            NgAct::Fail(reason) => Err(pos.corrupt(reason)),
        }
    }

    /// Parses the whole block at the front of the buffer (`be`: the section's byte order).
    fn parse(&mut self, be: bool, btype: u32, offset: u64) -> NgAct {
        let base = self.parser.data().as_ptr() as usize;
        match self.parser.next() {
            Ok((_, PcapBlockOwned::NG(block))) => match block {
                Block::SectionHeader(shb) => NgAct::Section(shb.big_endian()),
                Block::InterfaceDescription(idb) => {
                    // pcap-parser reads if_tsoffset as little-endian whatever the section.
                    let offset = if be {
                        idb.if_tsoffset.swap_bytes()
                    } else {
                        idb.if_tsoffset
                    };
                    NgAct::Interface(Iface::new(
                        // pcap-parser keeps the 16-bit field as an i32; its bits are the link type.
                        Linktype(idb.linktype.0.cast_unsigned() & 0xffff),
                        idb.if_tsresol,
                        offset,
                        idb.snaplen,
                    ))
                }
                Block::EnhancedPacket(epb) => match self.ifaces.get(epb.if_id as usize) {
                    Some(iface) => {
                        let data = epb.packet_data();
                        NgAct::Packet(PacketMeta {
                            start: data.as_ptr() as usize - base,
                            len: data.len(),
                            ts: iface.timestamp(epb.ts_high, epb.ts_low),
                            linktype: iface.linktype,
                            orig_len: epb.origlen,
                            interface: epb.if_id,
                        })
                    }
                    None => NgAct::BadInterface(epb.if_id),
                },
                Block::SimplePacket(spb) => match self.ifaces.first() {
                    Some(iface) => {
                        let mut data = spb.packet_data();
                        if iface.snaplen != 0 && data.len() > iface.snaplen as usize {
                            data = &data[..iface.snaplen as usize];
                        }
                        // An SPB has no timestamp: it takes the previous packet's.
                        NgAct::Packet(PacketMeta {
                            start: data.as_ptr() as usize - base,
                            len: data.len(),
                            ts: self.last_ts,
                            linktype: iface.linktype,
                            orig_len: spb.origlen,
                            interface: 0,
                        })
                    }
                    None => NgAct::BadInterface(0),
                },
                _ => NgAct::Skip,
            },
            Ok(_) => NgAct::Fail("unexpected pcap block in a pcapng file".to_string()),
            Err(e) => match btype {
                SHB_MAGIC | IDB_MAGIC | EPB_MAGIC | SPB_MAGIC => {
                    NgAct::Fail(format!("block type {btype:#x}: {}", describe(&e)))
                }
                // Statistics, name resolution, custom...: nothing we need is lost by skipping.
                _ => {
                    debug!(btype, offset, "skipping an unparsable pcapng block");
                    NgAct::Skip
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testfile::{Pcap, PcapNg};
    use std::io::Cursor;

    type Owned = (u64, Timestamp, u32, Vec<u8>, u32);

    /// Every frame as owned values, and the error that ended the read (if any).
    fn read_all(r: &mut Reader) -> (Vec<Owned>, Option<CaptureError>) {
        let mut out = Vec::new();
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push((f.index, f.ts, f.linktype.0, f.data.to_vec(), f.orig_len)),
                Ok(None) => return (out, None),
                Err(e) => {
                    assert!(
                        r.next_frame().unwrap().is_none(),
                        "reader must stop after an error"
                    );
                    return (out, Some(e));
                }
            }
        }
    }

    fn reader(bytes: Vec<u8>) -> Reader {
        Reader::new(Cursor::new(bytes)).expect("capture opens")
    }

    #[test]
    fn pcap_little_endian_microseconds() {
        let file = Pcap::new(false, false, 1)
            .packet(1_600_000_000, 123_456, b"first")
            .packet(1_600_000_001, 999_999, b"second!");
        let mut r = reader(file.bytes);
        assert_eq!(
            r.format(),
            Format::Pcap {
                nanosecond: false,
                big_endian: false
            }
        );
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none());
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, 1);
        assert_eq!(frames[0].1, Timestamp::new(1_600_000_000, 123_456_000));
        assert_eq!(frames[0].2, 1);
        assert_eq!(frames[0].3, b"first");
        assert_eq!(frames[0].4, 15);
        assert_eq!(frames[1].0, 2);
        assert_eq!(frames[1].1.to_string(), "1600000001.999999000");
        assert_eq!(frames[1].3, b"second!");
    }

    #[test]
    fn pcap_big_endian_nanoseconds() {
        let file = Pcap::new(true, true, 101).packet(7, 123_456_789, &[0x45, 0, 0, 20]);
        let mut r = reader(file.bytes);
        assert_eq!(
            r.format(),
            Format::Pcap {
                nanosecond: true,
                big_endian: true
            }
        );
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none());
        assert_eq!(frames[0].1, Timestamp::new(7, 123_456_789));
        assert_eq!(frames[0].2, 101);
        assert_eq!(frames[0].3, [0x45, 0, 0, 20]);
    }

    #[test]
    fn pcap_linktype_fcs_bits_are_masked() {
        let mut file = Pcap::new(false, false, 1);
        // FCS-present flag and length in the upper bits of the link-type field.
        file.bytes[20..24].copy_from_slice(&(0x1000_0000u32 | 0x0400_0000 | 1).to_le_bytes());
        let (frames, _) = read_all(&mut reader(file.packet(0, 0, b"x").bytes));
        assert_eq!(frames[0].2, 1);
    }

    #[test]
    fn pcapng_interfaces_each_keep_their_link_type_and_resolution() {
        let file = PcapNg::new()
            .section(false)
            // Ethernet, nanoseconds
            .interface(1, 0, Some(9), None)
            // raw IP, 2^-20 s ticks, offset +100 s
            .interface(101, 0, Some(0x80 | 20), Some(100))
            // default microseconds, SLL2
            .interface(276, 0, None, None)
            .epb(0, 1_500_000_000_123_456_789, b"eth", 3)
            .block(0x0BAD_0001, b"unknown block type: skipped")
            .epb(1, (5u64 << 20) | (1 << 19), b"raw ip", 6)
            .epb(2, 42_000_001, b"sll2", 4)
            .spb(b"simple", 6);
        let mut r = reader(file.bytes);
        assert_eq!(r.format(), Format::PcapNg);
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0].1, Timestamp::new(1_500_000_000, 123_456_789));
        assert_eq!(frames[0].2, 1);
        assert_eq!(frames[1].1, Timestamp::new(105, 500_000_000));
        assert_eq!(frames[1].2, 101);
        assert_eq!(frames[2].1, Timestamp::new(42, 1_000));
        assert_eq!(frames[2].2, 276);
        // The simple packet block has no timestamp: it gets the previous one, and interface 0.
        assert_eq!(frames[3].1, frames[2].1);
        assert_eq!(frames[3].2, 1);
        assert_eq!(frames[3].3, b"simple");
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn pcapng_packet_data_excludes_block_padding() {
        let file = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .epb(0, 0, b"12345", 5);
        let (frames, _) = read_all(&mut reader(file.bytes));
        assert_eq!(frames[0].3, b"12345");
    }

    #[test]
    fn pcapng_new_section_resets_interfaces_and_may_change_byte_order() {
        let file = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .epb(0, 1_000_000, b"le", 2)
            .section(true)
            .interface(113, 0, Some(3), Some(-10))
            .epb(0, 2_500, b"be", 2);
        let (frames, err) = read_all(&mut reader(file.bytes));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames[0].1, Timestamp::new(1, 0));
        assert_eq!(frames[0].2, 1);
        assert_eq!(frames[1].2, 113);
        assert_eq!(frames[1].1, Timestamp::new(-8, 500_000_000));
        assert_eq!(frames[1].3, b"be");
    }

    #[test]
    fn pcapng_packet_on_an_undescribed_interface_is_corrupt() {
        let file = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .epb(0, 0, b"ok", 2)
            .epb(3, 0, b"bad", 3);
        let (frames, err) = read_all(&mut reader(file.bytes));
        assert_eq!(frames.len(), 1);
        let err = err.unwrap();
        assert!(
            matches!(err, CaptureError::Corrupt { after_frame: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("interface 3"), "{err}");
    }

    #[test]
    fn pcapng_impossible_block_length_is_corrupt() {
        let mut file = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .bytes;
        file.extend_from_slice(&6u32.to_le_bytes());
        file.extend_from_slice(&30u32.to_le_bytes()); // not a multiple of 4
        file.extend_from_slice(&[0u8; 26]);
        let (frames, err) = read_all(&mut reader(file));
        assert!(frames.is_empty());
        assert!(
            matches!(err, Some(CaptureError::Corrupt { after_frame: 0, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn pcapng_packet_longer_than_its_block_is_corrupt_not_a_wait_for_more() {
        let mut file = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .epb(0, 0, b"good", 4)
            .epb(0, 0, &[0; 16], 16)
            .epb(0, 0, b"never reached", 13)
            .bytes;
        // The second EPB's caplen (at block offset 20) claims 200 bytes in a 48-byte block.
        let second = 28 + 20 + 36;
        assert_eq!(file[second..second + 4], 6u32.to_le_bytes());
        file[second + 20..second + 24].copy_from_slice(&200u32.to_le_bytes());
        let (frames, err) = read_all(&mut reader(file));
        assert_eq!(frames.len(), 1);
        let err = err.unwrap();
        assert!(
            matches!(err, CaptureError::Corrupt { after_frame: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("shorter than its own fields claim"),
            "{err}"
        );
    }

    #[test]
    // why: the PRNG's words are cut to the width they fill.
    #[allow(clippy::cast_possible_truncation)]
    fn mutated_captures_give_frames_or_errors_never_panics() {
        let ng = PcapNg::new()
            .section(false)
            .interface(1, 0, Some(9), None)
            .interface(113, 64, None, Some(5))
            .epb(0, 1, b"abcdefgh", 8)
            .block(5, &[1, 2, 3, 4, 5, 6, 7, 8])
            .epb(1, 2, &[9; 33], 40)
            .spb(b"simple packet", 13)
            .bytes;
        let pcap = Pcap::new(true, true, 1)
            .packet(1, 2, b"one")
            .packet(3, 4, &[5; 70])
            .bytes;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for original in [ng, pcap] {
            for _ in 0..3000 {
                let mut file = original.clone();
                for _ in 0..1 + x % 3 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x as usize >> 8) % file.len();
                    file[at] = x as u8;
                }
                file.truncate(file.len() - (x as usize >> 32) % 8);
                if let Ok(mut r) = Reader::with_buffer(Cursor::new(file), 256, 4096) {
                    let (frames, _) = read_all(&mut r);
                    assert!(frames.len() <= 4);
                }
            }
        }
    }

    #[test]
    fn truncated_pcap_keeps_the_frames_before_the_cut() {
        let mut file = Pcap::new(false, false, 1)
            .packet(1, 0, &[1; 100])
            .packet(2, 0, &[2; 100])
            .packet(3, 0, &[3; 100])
            .bytes;
        let full = file.len();
        file.truncate(full - 50);
        let (frames, err) = read_all(&mut reader(file));
        assert_eq!(frames.len(), 2);
        match err {
            Some(CaptureError::Truncated {
                after_frame,
                offset,
            }) => {
                assert_eq!(after_frame, 2);
                assert_eq!(offset, 24 + 2 * 116);
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    #[test]
    fn truncated_inside_a_record_header_is_truncation_too() {
        let mut file = Pcap::new(false, false, 1)
            .packet(1, 0, b"a")
            .packet(2, 0, b"b")
            .bytes;
        file.truncate(24 + 17 + 7);
        let (frames, err) = read_all(&mut reader(file));
        assert_eq!(frames.len(), 1);
        assert!(
            matches!(err, Some(CaptureError::Truncated { after_frame: 1, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn truncated_pcapng_names_the_frame() {
        let mut file = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .epb(0, 0, &[0; 40], 40)
            .epb(0, 0, &[0; 40], 40)
            .bytes;
        file.truncate(file.len() - 3);
        let (frames, err) = read_all(&mut reader(file));
        assert_eq!(frames.len(), 1);
        assert!(
            matches!(err, Some(CaptureError::Truncated { after_frame: 1, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn absurd_caplen_is_an_error_not_an_allocation() {
        let mut file = Pcap::new(false, false, 1).packet(1, 0, b"fine").bytes;
        let mut hdr = Pcap {
            be: false,
            bytes: Vec::new(),
        };
        hdr.u32(2);
        hdr.u32(0);
        hdr.u32(0x8000_0000); // 2 GiB
        hdr.u32(0x8000_0000);
        file.extend_from_slice(&hdr.bytes);
        file.extend_from_slice(&[0; 64]);
        let (frames, err) = read_all(&mut reader(file));
        assert_eq!(frames.len(), 1);
        match err {
            Some(CaptureError::BlockTooLarge {
                after_frame,
                len,
                limit,
                ..
            }) => {
                assert_eq!(after_frame, 1);
                assert_eq!(len, 0x8000_0000);
                assert_eq!(limit, MAX_BLOCK_LEN as u64);
            }
            other => panic!("expected BlockTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn not_a_capture_shows_the_first_bytes() {
        let err = Reader::new(Cursor::new(b"GET / HTTP/1.1\r\n".to_vec())).unwrap_err();
        assert!(matches!(err, CaptureError::NotACapture { .. }));
        assert!(err.to_string().contains("47 45 54 20"), "{err}");
        let err = Reader::new(Cursor::new(Vec::new())).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn a_cut_file_header_is_truncation_at_frame_zero() {
        let mut file = Pcap::new(false, false, 1).bytes;
        file.truncate(10);
        let err = Reader::new(Cursor::new(file)).unwrap_err();
        assert!(
            matches!(err, CaptureError::Truncated { after_frame: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn gzip_pcapng_reads_the_same_frames() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write;
        let plain = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .epb(0, 10, b"one", 3)
            .epb(0, 20, b"two", 3)
            .bytes;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&plain).unwrap();
        let mut r = reader(enc.finish().unwrap());
        assert!(r.compressed());
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none());
        assert_eq!(
            frames.iter().map(|f| f.3.clone()).collect::<Vec<_>>(),
            [b"one", b"two"]
        );
    }

    #[test]
    fn cut_gzip_stream_is_reported_as_truncation() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut file = Pcap::new(false, false, 1);
        for i in 0..200u32 {
            let data: Vec<u8> = (0..300u32)
                .map(|j| (i * 7 + j * 13).to_le_bytes()[0])
                .collect();
            file = file.packet(i, 0, &data);
        }
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&file.bytes).unwrap();
        let mut gz = enc.finish().unwrap();
        gz.truncate(gz.len() / 2);
        let (frames, err) = read_all(&mut reader(gz));
        assert!(!frames.is_empty() && frames.len() < 200);
        match err {
            Some(CaptureError::Truncated { after_frame, .. }) => {
                assert_eq!(after_frame, frames.len() as u64)
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    #[test]
    fn tiny_buffer_grows_for_big_blocks_and_refills_across_many() {
        let mut file = Pcap::new(false, false, 1);
        let mut want = Vec::new();
        for i in 0..50u32 {
            let data: Vec<u8> = (0..(i * 37 % 1500))
                .map(|j| (i + j).to_le_bytes()[0])
                .collect();
            file = file.packet(i, i, &data);
            want.push(data);
        }
        let mut r = Reader::with_buffer(Cursor::new(file.bytes), 64, MAX_BLOCK_LEN).unwrap();
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames.iter().map(|f| f.3.clone()).collect::<Vec<_>>(), want);
    }

    #[test]
    fn one_byte_reads_still_work() {
        struct Trickle(Cursor<Vec<u8>>);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(1);
                self.0.read(&mut buf[..n])
            }
        }
        let file = PcapNg::new()
            .section(false)
            .interface(1, 0, None, None)
            .epb(0, 1, b"abc", 3)
            .epb(0, 2, b"defg", 4);
        let mut r = Reader::new(Trickle(Cursor::new(file.bytes))).unwrap();
        let (frames, err) = read_all(&mut r);
        assert!(err.is_none());
        assert_eq!(frames.len(), 2);
    }

    #[test]
    fn io_error_mid_file_names_the_last_good_frame() {
        struct FailAfter(Cursor<Vec<u8>>);
        impl Read for FailAfter {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self.0.read(buf)? {
                    0 => Err(std::io::Error::other("cable unplugged")),
                    n => Ok(n),
                }
            }
        }
        let mut file = Pcap::new(false, false, 1)
            .packet(1, 0, b"a")
            .packet(2, 0, b"b")
            .bytes;
        file.truncate(file.len() - 1);
        let mut r = Reader::new(FailAfter(Cursor::new(file))).unwrap();
        let (frames, err) = read_all(&mut r);
        assert_eq!(frames.len(), 1);
        match err {
            Some(CaptureError::Io {
                after_frame: 1,
                source,
            }) => {
                assert_eq!(source.to_string(), "cable unplugged")
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }
}
