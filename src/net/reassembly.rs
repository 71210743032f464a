//! One direction of a TCP connection: sequence numbers in, ordered bytes out.
//!
//! Sequence numbers are turned into 64-bit stream offsets by serial arithmetic relative to
//! the next expected byte, so a stream that wraps 2^32 (or runs past 4 GiB) stays ordered.
//! In-order payload is handed on borrowed from the frame, never copied; only segments that
//! arrive ahead of a hole are copied into a small ordered buffer. Where data overlaps, the
//! bytes seen first win (as tshark and Zeek do) and different bytes for the same offsets are
//! reported as a conflict. Holes become gaps only when the owner says so ([`Half::force_gap`]
//! when the buffer cap is hit, [`Half::flush`] when the connection ends): until then a late
//! retransmission can still fill them. Connection state, direction and limits belong to
//! `tracker`.

use std::collections::VecDeque;

use super::Mark;

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GapCause {
    /// Later data waited for missing bytes until the buffer cap was reached: they were
    /// never captured (or arrive too late to matter).
    BufferFull,
    /// The connection closed (FIN, RST, port reuse, eviction) with bytes still missing.
    Closed,
    /// The capture ended with bytes still missing.
    EndOfCapture,
    /// The missing bytes are (partly) what the capture's snap length cut off segments:
    /// they were on the wire, the capture did not keep them. Given whatever made the hole a
    /// gap (buffer cap, close, end of capture), this cause wins.
    SnapLength,
}

impl std::fmt::Display for GapCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GapCause::BufferFull => "given up when the reassembly buffer filled",
            GapCause::Closed => "still missing at connection close",
            GapCause::EndOfCapture => "still missing at end of capture",
            GapCause::SnapLength => "cut by the capture's snap length",
        })
    }
}

/// Holes remembered per direction as left by snap-length-cut segments; beyond this the last
/// one is stretched to cover the new one (the cause of a gap in between is then coarse).
const MAX_CUTS: usize = 64;

/// What a direction produces, handed to the tracker in stream order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Out<'a> {
    Data {
        offset: u64,
        bytes: &'a [u8],
        /// Where these bytes were first seen.
        at: Mark,
    },
    Gap {
        offset: u64,
        len: u64,
        cause: GapCause,
    },
    Conflict {
        offset: u64,
        len: u64,
    },
}

/// A segment copied because it arrived ahead of a hole.
#[derive(Debug)]
struct Pending {
    off: u64,
    data: Vec<u8>,
    at: Mark,
}

impl Pending {
    fn end(&self) -> u64 {
        self.off + self.data.len() as u64
    }
}

/// Counters of one direction, reported on [`crate::net::EventKind::Closed`]. Once the
/// consumer stops buffering the connection ([`crate::net::Tracker::stop_buffering`]), only
/// `payload_bytes` keeps counting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HalfCounters {
    /// Payload bytes seen in segments (with retransmissions).
    pub payload_bytes: u64,
    /// Bytes handed on in order.
    pub delivered: u64,
    /// Gaps declared ([`GapCause`]): holes given up on.
    pub gaps: u64,
    /// Bytes skipped by those gaps (stream offsets that were never delivered).
    pub gap_bytes: u64,
    /// Payload bytes that repeated bytes already seen.
    pub retransmitted: u64,
    /// Segments that started beyond the next expected byte and were buffered.
    pub out_of_order_segments: u64,
    /// Retransmissions whose bytes differed from those seen first (each also a
    /// [`crate::net::Note::Conflict`]).
    pub conflicts: u64,
}

/// The reassembly state of one direction.
#[derive(Debug, Default)]
pub(crate) struct Half {
    started: bool,
    syn_isn: Option<u32>,
    next_seq: u32,
    next_off: u64,
    ooo: VecDeque<Pending>,
    ooo_bytes: usize,
    /// Stream offset of this direction's FIN (one past its last byte), from the first FIN
    /// seen; `None` before one.
    fin_off: Option<u64>,
    /// The direction's FIN has been handed on ([`crate::net::EventKind::Fin`]).
    pub(crate) fin_seen: bool,
    pub(crate) counters: HalfCounters,
    /// Stream ranges `[start, end)` that snap-length-cut segments left missing and no gap
    /// has covered yet, in order of arrival: a gap over one is [`GapCause::SnapLength`].
    cuts: Vec<(u64, u64)>,
}

impl Half {
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    pub(crate) fn syn_isn(&self) -> Option<u32> {
        self.syn_isn
    }

    /// Bytes held in the out-of-order buffer.
    pub(crate) fn buffered(&self) -> usize {
        self.ooo_bytes
    }

    /// The stream starts after this SYN's sequence number.
    pub(crate) fn start_syn(&mut self, isn: u32) {
        self.started = true;
        self.syn_isn = Some(isn);
        self.next_seq = isn.wrapping_add(1);
        self.next_off = 0;
    }

    /// The stream is joined mid-way: this sequence number is offset 0.
    pub(crate) fn start_at(&mut self, seq: u32) {
        self.started = true;
        self.next_seq = seq;
        self.next_off = 0;
    }

    /// Records the first FIN of this direction: `seq` is the FIN's own sequence number
    /// (after the segment's SYN, payload and any bytes the snap length cut off). A FIN
    /// numbered before the stream start counts as at offset 0.
    pub(crate) fn note_fin(&mut self, seq: u32) {
        if self.fin_off.is_none() {
            self.fin_off = Some(u64::try_from(self.offset_of(seq)).unwrap_or(0));
        }
    }

    /// True once a FIN was noted and every byte before it was handed on (delivered or
    /// skipped by a gap): nothing the sender sent can still fill a hole.
    pub(crate) fn fin_reached(&self) -> bool {
        self.fin_off.is_some_and(|f| self.next_off >= f)
    }

    /// Frees the buffer (the consumer has no more use for this connection's bytes).
    pub(crate) fn drop_buffer(&mut self) -> usize {
        let freed = self.ooo_bytes;
        self.ooo = VecDeque::new();
        self.ooo_bytes = 0;
        freed
    }

    fn offset_of(&self, seq: u32) -> i64 {
        // Serial arithmetic (RFC 1982): the distance from the next expected sequence number,
        // read as signed, says how far before or after it `seq` lies, across a wrap too.
        let delta = seq.wrapping_sub(self.next_seq).cast_signed();
        signed(self.next_off) + i64::from(delta)
    }

    fn advance(&mut self, n: u64) {
        self.next_off += n;
        // why: sequence numbers count modulo 2^32, so only the low 32 bits of `n` move them.
        #[allow(clippy::cast_possible_truncation)]
        let n32 = n as u32;
        self.next_seq = self.next_seq.wrapping_add(n32);
    }

    /// Counts a segment without reassembling it (the consumer stopped buffering).
    pub(crate) fn count_only(&mut self, len: usize) {
        self.counters.payload_bytes += len as u64;
    }

    /// Takes one segment's payload. The direction must have been started. Bytes a snap
    /// length cut off are simply not there: they stay a hole that a retransmission may still
    /// fill, like any lost segment.
    pub(crate) fn segment<F: FnMut(Out<'_>)>(
        &mut self,
        seq: u32,
        payload: &[u8],
        at: Mark,
        emit: &mut F,
    ) {
        debug_assert!(self.started);
        self.counters.payload_bytes += payload.len() as u64;
        if payload.is_empty() {
            return;
        }
        let next = signed(self.next_off);
        let off = self.offset_of(seq);
        let end = off + signed_len(payload.len());
        if end <= next {
            self.counters.retransmitted += payload.len() as u64;
            return;
        }
        if off > next {
            self.counters.out_of_order_segments += 1;
            // `off > next >= 0`.
            self.insert(off.cast_unsigned(), payload, at, emit);
            return;
        }
        // Starts at or before the next expected byte: drop what was already delivered.
        // `off <= next < end`, so the skip lies within `payload`.
        let skip = index((next - off).cast_unsigned());
        self.counters.retransmitted += skip as u64;
        self.deliver(&payload[skip..], at, emit);
    }

    /// The segment at `seq` just given to [`Half::segment`] had `missing` more bytes on the
    /// wire than its `captured` ones (the snap length cut it): remembers the hole they leave,
    /// so that the gap it may become says why.
    pub(crate) fn cut_short(&mut self, seq: u32, captured: usize, missing: u32) {
        let start = self.offset_of(seq) + signed_len(captured);
        let end = start + i64::from(missing);
        let next = signed(self.next_off);
        if missing == 0 || end <= next {
            return;
        }
        // `next <= end` and `next >= 0`, so both are offsets.
        let hole = (start.max(next).cast_unsigned(), end.cast_unsigned());
        self.cuts.retain(|&(_, e)| e > self.next_off);
        let full = self.cuts.len() >= MAX_CUTS;
        match self.cuts.last_mut() {
            Some(last) if full => last.1 = last.1.max(hole.1),
            _ => self.cuts.push(hole),
        }
    }

    /// Hands on `data` (which starts at the next expected offset), giving way to buffered
    /// bytes seen earlier wherever they overlap, then drains the buffer as far as it is
    /// contiguous.
    fn deliver<F: FnMut(Out<'_>)>(&mut self, mut data: &[u8], at: Mark, emit: &mut F) {
        loop {
            let limit = self.ooo.front().map_or(u64::MAX, |p| p.off);
            if limit > self.next_off && !data.is_empty() {
                let take = usize::try_from(limit - self.next_off)
                    .map_or(data.len(), |l| l.min(data.len()));
                emit(Out::Data {
                    offset: self.next_off,
                    bytes: &data[..take],
                    at,
                });
                self.counters.delivered += take as u64;
                self.advance(take as u64);
                data = &data[take..];
            }
            match self.ooo.front() {
                Some(p) if p.off <= self.next_off => {}
                _ => return,
            }
            let Some(p) = self.ooo.pop_front() else {
                return;
            };
            self.ooo_bytes -= p.data.len();
            if p.end() <= self.next_off {
                continue;
            }
            // `p.off <= next_off < p.end()`: the distance lies within `p.data`.
            let usable = &p.data[index(self.next_off - p.off)..];
            // The buffered bytes were seen first: they win over the current segment's.
            let overlap = usable.len().min(data.len());
            if usable[..overlap] != data[..overlap] {
                self.counters.conflicts += 1;
                emit(Out::Conflict {
                    offset: self.next_off,
                    len: overlap as u64,
                });
            }
            self.counters.retransmitted += overlap as u64;
            data = &data[overlap..];
            emit(Out::Data {
                offset: self.next_off,
                bytes: usable,
                at: p.at,
            });
            self.counters.delivered += usable.len() as u64;
            self.advance(usable.len() as u64);
        }
    }

    /// Buffers a segment that starts beyond the next expected byte, filling only the holes
    /// between what is already buffered.
    fn insert<F: FnMut(Out<'_>)>(&mut self, off: u64, data: &[u8], at: Mark, emit: &mut F) {
        let end = off + data.len() as u64;
        let mut i = self.ooo.partition_point(|p| p.end() <= off);
        let mut cur = off;
        let mut conflict: Option<(u64, u64)> = None;
        while cur < end {
            if let Some(p) = self.ooo.get(i).filter(|p| p.off <= cur) {
                let ov_end = end.min(p.end());
                // `off <= cur < ov_end <= end` and `p.off <= cur < ov_end <= p.end()`.
                let mine = &data[index(cur - off)..index(ov_end - off)];
                let theirs = &p.data[index(cur - p.off)..index(ov_end - p.off)];
                if mine != theirs && conflict.is_none() {
                    conflict = Some((cur, ov_end - cur));
                }
                self.counters.retransmitted += ov_end - cur;
                cur = ov_end;
                i += 1;
                continue;
            }
            let hole_end = self.ooo.get(i).map_or(end, |p| end.min(p.off));
            // `off <= cur < hole_end <= end`.
            let piece = data[index(cur - off)..index(hole_end - off)].to_vec();
            self.ooo_bytes += piece.len();
            self.ooo.insert(
                i,
                Pending {
                    off: cur,
                    data: piece,
                    at,
                },
            );
            i += 1;
            cur = hole_end;
        }
        if let Some((offset, len)) = conflict {
            self.counters.conflicts += 1;
            emit(Out::Conflict { offset, len });
        }
    }

    fn gap<F: FnMut(Out<'_>)>(&mut self, len: u64, cause: GapCause, emit: &mut F) {
        let (start, end) = (self.next_off, self.next_off + len);
        let cut = self.cuts.iter().any(|&(s, e)| s < end && e > start);
        if !self.cuts.is_empty() {
            self.cuts.retain(|&(_, e)| e > end);
        }
        let cause = if cut { GapCause::SnapLength } else { cause };
        emit(Out::Gap {
            offset: self.next_off,
            len,
            cause,
        });
        self.counters.gaps += 1;
        self.counters.gap_bytes += len;
        self.advance(len);
    }

    /// Gives up on the first hole: declares it a gap and hands on the buffered bytes after
    /// it, as far as they are contiguous. Returns false when nothing was buffered.
    pub(crate) fn force_gap<F: FnMut(Out<'_>)>(&mut self, cause: GapCause, emit: &mut F) -> bool {
        let Some(first) = self.ooo.front().map(|p| p.off) else {
            return false;
        };
        if first > self.next_off {
            self.gap(first - self.next_off, cause, emit);
        }
        self.deliver(&[], Mark::default(), emit);
        true
    }

    /// Declares every remaining hole a gap and hands on everything buffered; bytes still
    /// missing before a FIN seen ([`Half::note_fin`]) end in a gap too.
    pub(crate) fn flush<F: FnMut(Out<'_>)>(&mut self, cause: GapCause, emit: &mut F) {
        while self.force_gap(cause, emit) {}
        if let Some(fin) = self.fin_off
            && fin > self.next_off
        {
            self.gap(fin - self.next_off, cause, emit);
        }
    }
}

// Stream offsets count the bytes of one direction that one capture carried, so they stay far
// below 2^63 and read as signed exactly; a slice's length is at most `isize::MAX`.
#[allow(clippy::cast_possible_wrap)] // why: see above, the value is below 2^63.
fn signed(off: u64) -> i64 {
    off as i64
}

#[allow(clippy::cast_possible_wrap)] // why: a slice's length is at most `isize::MAX`.
fn signed_len(len: usize) -> i64 {
    len as i64
}

/// A distance between two stream offsets that lies inside a slice the caller holds, as an
/// index into it.
#[allow(clippy::cast_possible_truncation)] // why: it is below that slice's `len()`, a usize.
fn index(distance: u64) -> usize {
    debug_assert!(usize::try_from(distance).is_ok());
    distance as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;

    /// What came out, owned: ("D", bytes, frame) / ("G", len) / ("C", len).
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        D(Vec<u8>, u64),
        G(u64, u64, GapCause),
        C(u64, u64),
    }

    fn run(half: &mut Half, segs: &[(u32, &[u8], u64)]) -> Vec<Got> {
        let mut got = Vec::new();
        for &(seq, data, frame) in segs {
            half.segment(
                seq,
                data,
                Mark::new(frame, Timestamp::new(frame.cast_signed(), 0)),
                &mut |o| {
                    got.push(match o {
                        Out::Data { bytes, at, .. } => Got::D(bytes.to_vec(), at.frame),
                        Out::Gap { offset, len, cause } => Got::G(offset, len, cause),
                        Out::Conflict { offset, len } => Got::C(offset, len),
                    })
                },
            );
        }
        got
    }

    fn collect(h: &mut Half, f: impl FnOnce(&mut Half, &mut dyn FnMut(Out<'_>))) -> Vec<Got> {
        let mut got = Vec::new();
        let mut push = |o: Out<'_>| {
            got.push(match o {
                Out::Data { bytes, at, .. } => Got::D(bytes.to_vec(), at.frame),
                Out::Gap { offset, len, cause } => Got::G(offset, len, cause),
                Out::Conflict { offset, len } => Got::C(offset, len),
            })
        };
        f(h, &mut push);
        got
    }

    fn started(isn: u32) -> Half {
        let mut h = Half::default();
        h.start_syn(isn);
        h
    }

    fn bytes(got: &[Got]) -> Vec<u8> {
        got.iter()
            .flat_map(|g| match g {
                Got::D(b, _) => b.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn in_order_segments_pass_through_with_their_frames() {
        let mut h = started(1000);
        let got = run(&mut h, &[(1001, b"abc", 3), (1004, b"de", 4)]);
        assert_eq!(got, [Got::D(b"abc".to_vec(), 3), Got::D(b"de".to_vec(), 4)]);
        assert_eq!(h.counters.delivered, 5);
    }

    #[test]
    fn sequence_numbers_wrap_around_2_pow_32() {
        let isn = u32::MAX - 2; // data starts at u32::MAX - 1
        let mut h = started(isn);
        let got = run(
            &mut h,
            &[(u32::MAX - 1, b"ab", 1), (0, b"cd", 2), (2, b"ef", 3)],
        );
        assert_eq!(bytes(&got), b"abcdef");
        // Out of order across the wrap: the later segment waits for the earlier one.
        let mut h = started(isn);
        let got = run(&mut h, &[(0, b"cd", 1), (u32::MAX - 1, b"ab", 2)]);
        assert_eq!(got, [Got::D(b"ab".to_vec(), 2), Got::D(b"cd".to_vec(), 1)]);
    }

    #[test]
    fn out_of_order_is_buffered_then_drained_in_order() {
        let mut h = started(0);
        let got = run(&mut h, &[(7, b"ghi", 1), (4, b"def", 2), (1, b"abc", 3)]);
        assert_eq!(bytes(&got), b"abcdefghi");
        // Each chunk keeps the frame that carried it.
        assert_eq!(
            got,
            [
                Got::D(b"abc".to_vec(), 3),
                Got::D(b"def".to_vec(), 2),
                Got::D(b"ghi".to_vec(), 1)
            ]
        );
        assert_eq!(h.buffered(), 0);
        assert_eq!(h.counters.out_of_order_segments, 2);
    }

    #[test]
    fn retransmission_is_dropped_and_counted() {
        let mut h = started(0);
        let got = run(&mut h, &[(1, b"abcd", 1), (1, b"abcd", 2), (3, b"cdef", 3)]);
        assert_eq!(
            got,
            [Got::D(b"abcd".to_vec(), 1), Got::D(b"ef".to_vec(), 3)]
        );
        assert_eq!(h.counters.retransmitted, 6);
    }

    #[test]
    fn overlap_keeps_the_first_bytes_seen_and_reports_conflicts() {
        // Buffered "XYZ" at 4..7 seen first; the filler says "defg" for 3..7.
        let mut h = started(0);
        let got = run(&mut h, &[(1, b"abc", 1), (5, b"XYZ", 2), (4, b"dxyzh", 3)]);
        assert_eq!(bytes(&got), b"abcdXYZh");
        assert!(got.contains(&Got::C(4, 3)), "{got:?}");
        assert_eq!(h.counters.conflicts, 1);
        // Conflict between two buffered segments.
        let mut h = started(0);
        let got = run(&mut h, &[(5, b"efg", 1), (6, b"FGH", 2), (1, b"abcd", 3)]);
        assert_eq!(bytes(&got), b"abcdefgH");
        assert!(got.contains(&Got::C(5, 2)), "{got:?}");
        // Same bytes twice: no conflict.
        let mut h = started(0);
        let got = run(&mut h, &[(5, b"efg", 1), (5, b"efg", 2), (1, b"abcd", 3)]);
        assert_eq!(bytes(&got), b"abcdefg");
        assert!(!got.iter().any(|g| matches!(g, Got::C(..))));
    }

    #[test]
    fn a_hole_becomes_a_gap_only_when_forced() {
        let mut h = started(0);
        let got = run(&mut h, &[(1, b"ab", 1), (6, b"fg", 2), (9, b"ij", 3)]);
        assert_eq!(got, [Got::D(b"ab".to_vec(), 1)]);
        assert_eq!(h.buffered(), 4);
        let got = collect(&mut h, |h, e| {
            h.force_gap(GapCause::BufferFull, &mut |o| e(o));
        });
        assert_eq!(
            got,
            [
                Got::G(2, 3, GapCause::BufferFull),
                Got::D(b"fg".to_vec(), 2)
            ]
        );
        let got = collect(&mut h, |h, e| h.flush(GapCause::Closed, &mut |o| e(o)));
        assert_eq!(
            got,
            [Got::G(7, 1, GapCause::Closed), Got::D(b"ij".to_vec(), 3)]
        );
        assert_eq!((h.counters.gaps, h.counters.gap_bytes), (2, 4));
        // Data continues after the gap at the right offset.
        let got = run(&mut h, &[(11, b"kl", 4)]);
        assert_eq!(got, [Got::D(b"kl".to_vec(), 4)]);
    }

    #[test]
    fn mid_stream_start_and_data_before_it() {
        let mut h = Half::default();
        h.start_at(5_000);
        let got = run(&mut h, &[(5_000, b"mid", 1), (4_990, b"0123456789mid!", 2)]);
        assert_eq!(bytes(&got), b"mid!");
    }

    #[test]
    fn a_cut_segment_leaves_a_hole_its_retransmission_fills() {
        // As in zeek's pppoe-over-qinq: 0 of 6 bytes captured, then the whole segment again.
        let mut h = started(0);
        let got = run(
            &mut h,
            &[(1, b"abc", 1), (4, b"", 2), (7, b"ghi", 3), (4, b"def", 4)],
        );
        assert_eq!(bytes(&got), b"abcdefghi");
        assert_eq!(h.counters.gaps, 0);
    }

    #[test]
    fn a_hole_a_cut_segment_left_is_a_snap_length_gap_another_keeps_its_cause() {
        // "abc" of "abcdef" captured (snap length), "ghi" whole; then "mno" with "jkl" lost.
        let mut h = started(0);
        let got = run(&mut h, &[(1, b"abc", 1)]);
        h.cut_short(1, 3, 3);
        assert_eq!(bytes(&got), b"abc");
        run(&mut h, &[(7, b"ghi", 2), (13, b"mno", 3)]);
        let got = collect(&mut h, |h, e| h.flush(GapCause::Closed, &mut |o| e(o)));
        assert_eq!(
            got,
            [
                Got::G(3, 3, GapCause::SnapLength),
                Got::D(b"ghi".to_vec(), 2),
                Got::G(9, 3, GapCause::Closed),
                Got::D(b"mno".to_vec(), 3),
            ]
        );
        assert!(
            h.cuts.is_empty(),
            "a declared gap forgets the cut it covered"
        );
    }

    #[test]
    fn a_cut_hole_a_retransmission_filled_is_forgotten() {
        let mut h = started(0);
        run(&mut h, &[(1, b"abc", 1)]);
        h.cut_short(1, 3, 3);
        let got = run(&mut h, &[(1, b"abcdef", 2), (7, b"gh", 3)]);
        assert_eq!(bytes(&got), b"defgh");
        // A later hole, not cut: its cause is its own.
        run(&mut h, &[(11, b"kl", 4)]);
        h.cut_short(20, 0, 5); // a cut segment far ahead leaves a later hole: no overlap
        let got = collect(&mut h, |h, e| {
            h.force_gap(GapCause::BufferFull, &mut |o| e(o));
        });
        assert_eq!(got[0], Got::G(8, 2, GapCause::BufferFull));
    }

    /// Small deterministic generator (xorshift) so the shuffles are reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    #[test]
    // why: the PRNG's words are cut to the width they fill, and every `below(n)` is under 4000.
    #[allow(clippy::cast_possible_truncation)]
    fn any_order_of_overlapping_duplicated_segments_rebuilds_the_stream() {
        for seed in 1..300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let len = 1 + rng.below(4000) as usize;
            let stream: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the cases start within 3000 bytes of the 2^32 wrap.
            let isn = if seed % 2 == 0 {
                u32::MAX - rng.below(3000) as u32
            } else {
                rng.next() as u32
            };
            let mut segs: Vec<(usize, usize)> = Vec::new();
            let mut at = 0;
            while at < len {
                let n = 1 + rng.below(600) as usize;
                let end = (at + n).min(len);
                // Sometimes resend a wider range that overlaps the neighbours.
                let lo = at.saturating_sub(rng.below(3) as usize * 50);
                let hi = (end + rng.below(3) as usize * 50).min(len);
                segs.push((lo, hi));
                if rng.below(4) == 0 {
                    segs.push((at, end)); // duplicate
                }
                at = end;
            }
            // Local reordering: swap neighbours at random.
            for i in 1..segs.len() {
                if rng.below(3) == 0 {
                    segs.swap(i - 1, i);
                }
            }
            let mut h = started(isn);
            let mut out = Vec::new();
            let mut gaps = 0;
            for (i, &(lo, hi)) in segs.iter().enumerate() {
                let seq = isn.wrapping_add(1).wrapping_add(lo as u32);
                h.segment(
                    seq,
                    &stream[lo..hi],
                    Mark::new(i as u64, Timestamp::default()),
                    &mut |o| match o {
                        Out::Data { bytes, .. } => out.extend_from_slice(bytes),
                        Out::Gap { .. } => gaps += 1,
                        Out::Conflict { .. } => panic!("seed {seed}: same bytes are no conflict"),
                    },
                );
            }
            assert_eq!(gaps, 0, "seed {seed}");
            assert_eq!(h.buffered(), 0, "seed {seed}: everything drained");
            assert!(out == stream, "seed {seed}: stream differs");
        }
    }

    #[test]
    fn dropping_the_buffer_frees_it() {
        let mut h = started(0);
        run(&mut h, &[(100, &[1; 1000], 1)]);
        assert_eq!(h.buffered(), 1000);
        assert_eq!(h.drop_buffer(), 1000);
        assert_eq!(h.buffered(), 0);
    }

    #[test]
    fn a_fin_is_reached_once_every_byte_before_it_is_through() {
        let mut h = started(1000);
        run(&mut h, &[(1001, b"ab", 1), (1006, b"f", 2)]);
        h.note_fin(1007); // after "ab", a 3-byte hole, "f"
        assert!(!h.fin_reached());
        h.note_fin(1003); // only the first FIN counts
        run(&mut h, &[(1003, b"cde", 3)]);
        assert!(h.fin_reached());

        // Given up: the hole, and the bytes missing at the end, become gaps up to the FIN.
        let mut h = started(1000);
        run(&mut h, &[(1001, b"ab", 1), (1006, b"f", 2)]);
        h.note_fin(1010);
        let got = collect(&mut h, |h, e| h.flush(GapCause::Closed, &mut |o| e(o)));
        assert_eq!(
            got,
            [
                Got::G(2, 3, GapCause::Closed),
                Got::D(b"f".to_vec(), 2),
                Got::G(6, 3, GapCause::Closed),
            ]
        );
        assert!(h.fin_reached());
        // A FIN numbered before the stream start is at offset 0.
        let mut h = started(1000);
        h.note_fin(900);
        assert!(h.fin_reached());
    }
}
