//! The connection tracker: decoded segments in, [`Event`]s out, memory bounded.
//!
//! It owns the connection table (canonical key -> connection), decides who is client
//! (the SYN sender; the SYN-ACK receiver; else the first packet's sender), tells a new
//! connection on reused ports from a retransmitted SYN, drives the two [`Half`] reassemblers
//! of each connection, and enforces the limits: out-of-order bytes per connection and in
//! total, live connections (least recently active evicted first), and connections the
//! consumer has finished with keep counters only. A connection closes when a RST comes or
//! when both FINs are through in stream order: a hole before a FIN (a segment lost before
//! the tap, retransmitted after the FINs) is waited for up to 30 s of capture time. A closed connection leaves the table at once; only its key and ISNs are
//! remembered for a while (a bounded FIFO) so that the last ACK after a FIN exchange is not
//! taken for a new connection, nor a copy of the connection seen on another pcapng interface.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::decode::{Packet, TcpSegment, decode_with};
use super::encap::{Encap, EncapSet, Outer};
use super::flow::{ConnId, Dir, FastBuild, FlowKey};
use super::reassembly::{GapCause, Half, HalfCounters, Out};
use super::{DecodeError, Mark};
use crate::capture::{Frame, Linktype};

/// Limits and filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Open connections in the table. At the cap the least recently active one is evicted
    /// (`Closed { reason: Evicted }`). About 600 bytes each. Default 32 768.
    pub max_connections: usize,
    /// Closed connections whose key is remembered, so their trailing packets are ignored
    /// rather than opening new connections. About 80 bytes each. Default 8 192.
    pub max_closed_remembered: usize,
    /// Out-of-order bytes buffered per connection (both directions) before the first hole
    /// is declared a gap ([`GapCause::BufferFull`]). Default 2 MiB.
    pub max_buffered_per_conn: usize,
    /// Out-of-order bytes buffered over all connections; past it, the connection that just
    /// buffered gives up its holes. Default 32 MiB.
    pub max_buffered_total: usize,
    /// Only connections with one of these ports are tracked (empty: all). Others are
    /// counted in [`Stats::filtered`].
    pub ports: Vec<u16>,
}

/// How long, in capture time after both FINs were seen, a connection still missing bytes
/// before a FIN waits for their retransmission; then its holes become [`GapCause::Closed`]
/// gaps and it closes ([`CloseReason::Fin`]). Checked when a later segment of any
/// connection arrives; given up at once when the table is full. Linux backs a lost
/// segment's retransmission off to several seconds.
const CLOSE_LINGER: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Config {
        Config {
            max_connections: 32_768,
            max_closed_remembered: 8_192,
            max_buffered_per_conn: 2 << 20,
            max_buffered_total: 32 << 20,
            ports: Vec::new(),
        }
    }
}

/// How the tracker learnt who the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The first packet was a SYN: its sender is the client.
    Syn,
    /// The first packet was a SYN-ACK: its receiver is the client.
    SynAck,
    /// The capture starts mid-connection: the first packet's sender is taken as client.
    MidStream,
}

/// Why a connection left the table of live connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both sides sent FIN and every byte before each FIN came, or 30 s of capture time
    /// passed (or the capture ended, or the table was full) with some still missing.
    Fin,
    /// A RST was seen.
    Rst,
    /// A new connection (a SYN with another ISN) took the same addresses and ports.
    PortReused,
    /// The table was full and this connection was the least recently active.
    Evicted,
    /// The capture ended while the connection was open.
    EndOfCapture,
}

/// Things worth telling the reader of a report that are not stream data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// An IP fragment: skipped, not reassembled (first ones only; all are counted).
    Fragment {
        /// The fragment's IP source address.
        src: IpAddr,
        /// The fragment's IP destination address.
        dst: IpAddr,
        /// The IP protocol number of the fragmented payload (6 for TCP).
        protocol: u8,
    },
    /// A frame that does not decode to TCP/IP (first ones only, and each unsupported link
    /// type once; all are counted).
    Undecodable(DecodeError),
    /// A direction whose first bytes were not preceded by its SYN (capture started late,
    /// or the SYN was not captured).
    MidStream {
        /// The direction that started without its SYN.
        dir: Dir,
    },
    /// A retransmission carried different bytes for offsets already seen; the first
    /// bytes were kept.
    Conflict {
        /// The direction of the retransmission.
        dir: Dir,
        /// Stream offset where the overlap with one earlier segment starts.
        offset: u64,
        /// Length of that overlap in bytes (not all of them need differ).
        len: u64,
    },
    /// At the end of the capture (from [`Tracker::finish`]), when any frame came through a
    /// tunnel: which kinds, and how many frames were unwrapped.
    Encapsulations {
        /// Every kind of tunnel unwrapped ([`Stats::encapsulations`]).
        seen: EncapSet,
        /// Frames with at least one tunnel layer ([`Stats::tunneled`]).
        frames: u64,
    },
}

/// What the tracker tells its sink, in capture order (and, per direction, stream order):
/// what happened and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The frame (and its time) the event belongs to; see each [`EventKind`] for which one.
    pub mark: Mark,
    /// What happened. Borrowed data (bytes, tunnel layers) lives in the frame or the
    /// tracker and is valid only during the sink call.
    pub kind: EventKind<'a>,
}

/// One thing the tracker reports; each variant says which frame its [`Event::mark`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind<'a> {
    /// A connection seen for the first time (marked with its first frame).
    Opened {
        /// The new connection's id (the next in order of first appearance).
        conn: ConnId,
        /// The client's (inner) address and port, as `how` decided.
        client: SocketAddr,
        /// The server's (inner) address and port.
        server: SocketAddr,
        /// How the client was told from the server.
        how: Opening,
        /// The tunnel layers around the first packet, outermost first (empty when it came
        /// bare); `client`/`server` are the inner addresses.
        outer: &'a [Encap],
    },
    /// The next bytes of one direction, starting at stream `offset` (bytes delivered plus
    /// gap bytes before them), marked with the segment that carried them (first seen).
    /// Bytes that waited for a hole to fill keep their own mark, so along a direction the
    /// frame can go down: a message is complete at the highest frame among its bytes.
    Data {
        /// The connection.
        conn: ConnId,
        /// The direction the bytes travel.
        dir: Dir,
        /// Stream offset of `bytes[0]`: 0 is the byte after the SYN, or the first byte seen
        /// when the direction started mid-stream.
        offset: u64,
        /// The payload bytes, never empty; retransmitted bytes already delivered are not
        /// repeated.
        bytes: &'a [u8],
    },
    /// `len` bytes at stream `offset` will never come; the next `Data` follows them.
    /// Marked where the gap was declared.
    Gap {
        /// The connection.
        conn: ConnId,
        /// The direction with the hole.
        dir: Dir,
        /// Stream offset of the first missing byte.
        offset: u64,
        /// Missing bytes (never 0).
        len: u64,
        /// Why the hole was given up on.
        cause: GapCause,
    },
    /// The first FIN of a direction (marked with the segment carrying it), in stream order:
    /// after every byte before it, so a hole before the FIN delays it until the hole is
    /// filled or given up (a [`EventKind::Gap`] first).
    Fin {
        /// The connection.
        conn: ConnId,
        /// The direction whose sender sent the FIN.
        dir: Dir,
    },
    /// A RST (marked with its segment); the connection closes.
    Rst {
        /// The connection.
        conn: ConnId,
        /// The direction whose sender sent the RST.
        dir: Dir,
    },
    /// The connection's last event, marked when it closed (for end of capture, the capture's
    /// last frame); `first_frame`/`last_frame` bound its own packets. `counters` is indexed
    /// by [`Dir::index`].
    Closed {
        /// The connection; no event names it after this one.
        conn: ConnId,
        /// Why it closed.
        reason: CloseReason,
        /// Frame number of its first packet (the `Opened` frame).
        first_frame: u64,
        /// Frame number of the last packet that reached it.
        last_frame: u64,
        /// Per-direction counters, `[client-to-server, server-to-client]`.
        counters: [HalfCounters; 2],
    },
    /// Something to tell the reader (marked with the frame it is about; `Encapsulations`
    /// with the capture's last frame).
    Note {
        /// The connection it is about (`MidStream`, `Conflict`); `None` for notes about the
        /// capture (`Fragment`, `Undecodable`, `Encapsulations`).
        conn: Option<ConnId>,
        /// What it says.
        note: Note,
    },
}

/// Totals over the capture so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames pushed ([`Tracker::push`]; segments fed by [`Tracker::push_segment`] are not
    /// frames).
    pub frames: u64,
    /// TCP segments decoded, retransmissions and filtered ones included.
    pub tcp_segments: u64,
    /// Captured payload bytes of those segments (bytes the snap length cut off excluded).
    pub tcp_payload_bytes: u64,
    /// IP packets that are not TCP.
    pub other_ip: u64,
    /// Frames that are not IP (ARP, LLDP...).
    pub not_ip: u64,
    /// IP fragments, skipped (only the first 64 get a [`Note::Fragment`]).
    pub fragments: u64,
    /// Frames that do not decode (cut headers, bad versions, unsupported link types).
    pub undecodable: u64,
    /// Frames that came through at least one tunnel (their inner packets are counted as any
    /// other; a frame whose inner packet does not decode counts too).
    pub tunneled: u64,
    /// Every kind of tunnel unwrapped in any frame.
    pub encapsulations: EncapSet,
    /// TCP segments outside the configured ports.
    pub filtered: u64,
    /// TCP segments of connections already closed (trailing ACKs, retransmitted FINs, the
    /// segments of [`Stats::copies`]).
    pub after_close: u64,
    /// Closed connections seen again on another capture interface (a pcapng with several,
    /// each buffer written in a batch): a SYN with the closed connection's ISN on its
    /// addresses and ports. Not reported again.
    pub copies: u64,
    /// TCP segments the snap length cut short (their missing bytes are holes).
    pub cut_segments: u64,
    /// Connections opened (ids given out), new connections on reused ports included.
    pub connections: u64,
    /// Connections evicted at [`Config::max_connections`].
    pub evicted: u64,
    /// Gaps declared over all connections ([`EventKind::Gap`] events).
    pub gaps: u64,
    /// Bytes skipped by those gaps.
    pub gap_bytes: u64,
    /// Retransmissions with different bytes ([`Note::Conflict`] events).
    pub conflicts: u64,
    /// Sum of [`HalfCounters::retransmitted`] over all connections, closed ones included.
    pub retransmitted_bytes: u64,
    /// Sum of [`HalfCounters::out_of_order_segments`] over all connections.
    pub out_of_order_segments: u64,
    /// Highest out-of-order bytes buffered at once.
    pub peak_buffered: usize,
    /// Highest number of open connections at once.
    pub peak_connections: usize,
}

/// Notes of one kind beyond this many are only counted.
const NOTE_CAP: u64 = 64;

struct Conn {
    id: ConnId,
    key: FlowKey,
    client: SocketAddr,
    server: SocketAddr,
    /// True when the client is the key's lower endpoint.
    client_is_lo: bool,
    halves: [Half; 2],
    /// Per [`Dir::index`], where a FIN waits to be handed on: it was seen, but bytes before
    /// it are still missing.
    fin_at: [Option<Mark>; 2],
    /// Both FINs were seen and the connection waits (in `Tracker::lingering`) for holes.
    lingering: bool,
    /// The capture interface of its first packet (pcapng interface id, 0 for pcap).
    interface: u32,
    buffering: bool,
    last_seen: u64,
    first_frame: u64,
    last_frame: u64,
}

impl Conn {
    fn buffered(&self) -> usize {
        self.halves[0].buffered() + self.halves[1].buffered()
    }

    fn counters(&self) -> [HalfCounters; 2] {
        [self.halves[0].counters, self.halves[1].counters]
    }

    /// Hands on each FIN whose direction has no byte before it still missing (or that is
    /// no longer reassembled, so nothing more will come out of it).
    fn hand_on_fins<S: FnMut(Event<'_>)>(&mut self, sink: &mut S) {
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            let i = dir.index();
            if let Some(mark) = self.fin_at[i]
                && (!self.buffering || self.halves[i].fin_reached())
            {
                self.fin_at[i] = None;
                self.halves[i].fin_seen = true;
                sink(Event {
                    mark,
                    kind: EventKind::Fin { conn: self.id, dir },
                });
            }
        }
    }
}

/// What is remembered of a closed connection.
struct Finished {
    id: ConnId,
    /// True when the client is the key's lower endpoint.
    client_is_lo: bool,
    /// The SYN's sequence number per [`Dir::index`] (`None`: no SYN seen that way).
    isn: [Option<u32>; 2],
    /// The interface of its first packet.
    interface: u32,
    /// Interfaces (id modulo 64) on which a copy of it was counted.
    copies: u64,
}

/// Turns a reassembler output into an event; `at` marks gaps and conflicts (data keeps the
/// mark of the segment that carried it).
fn forward<S: FnMut(Event<'_>)>(
    out: Out<'_>,
    conn: ConnId,
    dir: Dir,
    at: Mark,
    stats: &mut Stats,
    sink: &mut S,
) {
    match out {
        Out::Data { offset, bytes, at } => sink(Event {
            mark: at,
            kind: EventKind::Data {
                conn,
                dir,
                offset,
                bytes,
            },
        }),
        Out::Gap { offset, len, cause } => {
            stats.gaps += 1;
            stats.gap_bytes += len;
            sink(Event {
                mark: at,
                kind: EventKind::Gap {
                    conn,
                    dir,
                    offset,
                    len,
                    cause,
                },
            })
        }
        Out::Conflict { offset, len } => {
            stats.conflicts += 1;
            sink(Event {
                mark: at,
                kind: EventKind::Note {
                    conn: Some(conn),
                    note: Note::Conflict { dir, offset, len },
                },
            })
        }
    }
}

/// Connection tracking and reassembly over a whole capture. Feed it every frame with
/// [`Tracker::push`], then call [`Tracker::finish`].
pub struct Tracker {
    config: Config,
    conns: Vec<Option<Conn>>,
    free: Vec<u32>,
    table: HashMap<FlowKey, u32, FastBuild>,
    by_id: HashMap<ConnId, u32, FastBuild>,
    /// (slot, id, last_seen when queued): approximate LRU, re-queued lazily on eviction.
    lru: VecDeque<(u32, ConnId, u64)>,
    /// The last flow looked up: consecutive packets are mostly of one flow.
    last: Option<(FlowKey, u32)>,
    /// Recently closed connections, bounded (oldest first in `closed_fifo`).
    closed: HashMap<FlowKey, Finished, FastBuild>,
    closed_fifo: VecDeque<(FlowKey, ConnId)>,
    next_id: u64,
    tick: u64,
    buffered_total: usize,
    /// The latest frame pushed: where end of capture is marked.
    latest: Mark,
    stats: Stats,
    /// Counters of connections already removed.
    removed: HalfCounters,
    unsupported_seen: Vec<Linktype>,
    /// The tunnel layers of the frame being pushed (reused; empty for bare frames).
    outer: Outer,
    /// The capture interface of the frame being pushed (0 for [`Tracker::push_segment`]).
    interface: u32,
    /// Connections with both FINs seen waiting for holes: (slot, id, deadline in capture
    /// nanoseconds), in the order they started waiting.
    lingering: VecDeque<(u32, ConnId, i128)>,
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker::new(Config::default())
    }
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("connections", &self.table.len())
            .field("buffered", &self.buffered_total)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// An empty tracker with these limits (`Default` uses [`Config::default`]).
    pub fn new(config: Config) -> Tracker {
        Tracker {
            config,
            conns: Vec::new(),
            free: Vec::new(),
            table: HashMap::default(),
            by_id: HashMap::default(),
            lru: VecDeque::new(),
            last: None,
            closed: HashMap::default(),
            closed_fifo: VecDeque::new(),
            next_id: 0,
            tick: 0,
            buffered_total: 0,
            latest: Mark::default(),
            stats: Stats::default(),
            removed: HalfCounters::default(),
            unsupported_seen: Vec::new(),
            outer: Outer::default(),
            interface: 0,
            lingering: VecDeque::new(),
        }
    }

    /// Decodes one frame and feeds it to its connection.
    pub fn push<S: FnMut(Event<'_>)>(&mut self, frame: &Frame<'_>, sink: &mut S) {
        self.stats.frames += 1;
        let at = Mark::of(frame);
        self.latest = at;
        self.interface = frame.interface;
        let decoded = decode_with(frame.linktype, frame.data, &mut self.outer);
        if !self.outer.is_empty() {
            self.stats.tunneled += 1;
            for hop in self.outer.as_slice() {
                self.stats.encapsulations.insert(hop.kind);
            }
        }
        match decoded {
            Ok(Packet::Tcp(seg)) => self.segment(&seg, at, sink),
            Ok(Packet::OtherIp { .. }) => self.stats.other_ip += 1,
            Ok(Packet::NotIp { .. }) => self.stats.not_ip += 1,
            Ok(Packet::Fragment { src, dst, protocol }) => {
                self.stats.fragments += 1;
                if self.stats.fragments <= NOTE_CAP {
                    sink(Event {
                        mark: at,
                        kind: EventKind::Note {
                            conn: None,
                            note: Note::Fragment { src, dst, protocol },
                        },
                    });
                }
            }
            Err(e) => {
                self.stats.undecodable += 1;
                let tell = match e {
                    DecodeError::UnsupportedLinktype(lt) => {
                        let new = !self.unsupported_seen.contains(&lt);
                        if new {
                            self.unsupported_seen.push(lt);
                        }
                        new
                    }
                    _ => self.stats.undecodable <= NOTE_CAP,
                };
                if tell {
                    sink(Event {
                        mark: at,
                        kind: EventKind::Note {
                            conn: None,
                            note: Note::Undecodable(e),
                        },
                    });
                }
            }
        }
    }

    /// Feeds one decoded segment (what [`Tracker::push`] does after decoding), as a bare
    /// packet (no tunnel layers).
    pub fn push_segment<S: FnMut(Event<'_>)>(
        &mut self,
        seg: &TcpSegment<'_>,
        at: Mark,
        sink: &mut S,
    ) {
        self.outer.clear();
        self.interface = 0;
        self.segment(seg, at, sink);
    }

    /// A segment of the current frame, whose tunnel layers are in `self.outer`.
    fn segment<S: FnMut(Event<'_>)>(&mut self, seg: &TcpSegment<'_>, at: Mark, sink: &mut S) {
        self.tick += 1;
        self.latest = Mark::new(self.latest.frame.max(at.frame), at.ts);
        self.stats.tcp_segments += 1;
        self.stats.tcp_payload_bytes += seg.payload.len() as u64;
        if seg.missing > 0 {
            self.stats.cut_segments += 1;
        }
        self.expire_lingering(at, sink);
        if !self.config.ports.is_empty()
            && !self.config.ports.contains(&seg.src.port())
            && !self.config.ports.contains(&seg.dst.port())
        {
            self.stats.filtered += 1;
            return;
        }
        let (key, src_is_lo) = FlowKey::of(&seg.src, &seg.dst);
        let found = match self.last {
            Some((k, slot)) if k == key => Some(slot),
            _ => self.table.get(&key).copied(),
        };
        let slot = match found {
            Some(slot) if seg.flags.syn() && self.starts_new_connection(slot, src_is_lo, seg) => {
                self.retire(slot, CloseReason::PortReused, at, sink);
                self.remove(slot);
                self.create(key, src_is_lo, seg, at, sink)
            }
            Some(slot) => slot,
            None => {
                if let Some(done) = self.closed.get_mut(&key) {
                    if !seg.flags.syn() {
                        // Trailing ACK or retransmitted FIN of a finished connection.
                        self.stats.after_close += 1;
                        return;
                    }
                    let dir = if src_is_lo == done.client_is_lo {
                        Dir::ClientToServer
                    } else {
                        Dir::ServerToClient
                    };
                    if done.isn[dir.index()] == Some(seg.seq) && done.interface != self.interface {
                        // The same SYN on another interface: the connection seen twice (a
                        // pcapng written one interface's buffer at a time), not a new one.
                        // On its own interface a repeat is a replay and is read anew.
                        let bit = 1u64 << (self.interface % 64);
                        if done.copies & bit == 0 {
                            done.copies |= bit;
                            self.stats.copies += 1;
                        }
                        self.stats.after_close += 1;
                        return;
                    }
                    // A SYN on the ports of a closed connection: port reuse.
                    self.closed.remove(&key);
                }
                self.create(key, src_is_lo, seg, at, sink)
            }
        };
        self.last = Some((key, slot));
        self.process(slot, src_is_lo, seg, at, sink);
    }

    /// The consumer is done with this connection's bytes (its handshake is over): free its
    /// buffers and, from now on, only count its segments. FIN, RST and Closed still come.
    pub fn stop_buffering(&mut self, conn: ConnId) {
        let Some(&slot) = self.by_id.get(&conn) else {
            return;
        };
        if let Some(c) = self.conns[slot as usize].as_mut() {
            c.buffering = false;
            let freed = c.halves[0].drop_buffer() + c.halves[1].drop_buffer();
            self.buffered_total -= freed;
        }
    }

    /// End of capture: every connection still open gets its remaining buffered bytes (after
    /// gaps) and a `Closed { reason: EndOfCapture }`, in id order, then a
    /// [`Note::Encapsulations`] if tunnels were unwrapped. The tracker is emptied.
    pub fn finish<S: FnMut(Event<'_>)>(&mut self, sink: &mut S) {
        let mut slots: Vec<(ConnId, u32)> = self.by_id.iter().map(|(id, s)| (*id, *s)).collect();
        slots.sort_unstable();
        let at = self.latest;
        for (_, slot) in slots {
            // Both FINs came: closed by them, whatever hole is left.
            let reason = if self.conn(slot).lingering {
                CloseReason::Fin
            } else {
                CloseReason::EndOfCapture
            };
            self.retire(slot, reason, at, sink);
            self.remove(slot);
        }
        self.lingering.clear();
        self.lru.clear();
        self.closed.clear();
        self.closed_fifo.clear();
        if self.stats.tunneled > 0 {
            sink(Event {
                mark: at,
                kind: EventKind::Note {
                    conn: None,
                    note: Note::Encapsulations {
                        seen: self.stats.encapsulations,
                        frames: self.stats.tunneled,
                    },
                },
            });
        }
    }

    /// Totals so far (live connections included).
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        let mut c = self.removed;
        for conn in self.conns.iter().flatten() {
            for h in &conn.halves {
                c.retransmitted += h.counters.retransmitted;
                c.out_of_order_segments += h.counters.out_of_order_segments;
            }
        }
        s.retransmitted_bytes = c.retransmitted;
        s.out_of_order_segments = c.out_of_order_segments;
        s
    }

    /// A connection's (client, server) while it is in the table.
    pub fn endpoints(&self, conn: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        let slot = *self.by_id.get(&conn)?;
        let c = self.conn(slot);
        Some((c.client, c.server))
    }

    /// Open connections in the table.
    pub fn connections(&self) -> usize {
        self.table.len()
    }

    /// Out-of-order bytes buffered now, over all connections.
    pub fn buffered(&self) -> usize {
        self.buffered_total
    }

    fn conn(&self, slot: u32) -> &Conn {
        self.conns[slot as usize]
            .as_ref()
            .expect("table slots point at live entries")
    }

    /// A SYN on a known connection: a retransmission, the SYN-ACK, or a new connection
    /// reusing the ports?
    fn starts_new_connection(&self, slot: u32, src_is_lo: bool, seg: &TcpSegment<'_>) -> bool {
        let c = self.conn(slot);
        let dir = if src_is_lo == c.client_is_lo {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        };
        if !seg.flags.ack() && dir == Dir::ServerToClient {
            // A bare SYN from the server's side is never part of the same connection.
            return true;
        }
        let half = &c.halves[dir.index()];
        match half.syn_isn() {
            Some(isn) => isn != seg.seq,
            None => half.started(),
        }
    }

    fn create<S: FnMut(Event<'_>)>(
        &mut self,
        key: FlowKey,
        src_is_lo: bool,
        seg: &TcpSegment<'_>,
        at: Mark,
        sink: &mut S,
    ) -> u32 {
        while self.table.len() >= self.config.max_connections.max(1) {
            // A connection that only waits for a late retransmission goes first.
            if !self.close_lingering(None, at, sink) && !self.evict_one(at, sink) {
                break;
            }
        }
        let (how, sender_is_client) = match (seg.flags.syn(), seg.flags.ack()) {
            (true, false) => (Opening::Syn, true),
            (true, true) => (Opening::SynAck, false),
            _ => (Opening::MidStream, true),
        };
        let (client, server) = if sender_is_client {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.stats.connections += 1;
        let conn = Conn {
            id,
            key,
            client,
            server,
            client_is_lo: src_is_lo == sender_is_client,
            halves: [Half::default(), Half::default()],
            fin_at: [None; 2],
            lingering: false,
            interface: self.interface,
            buffering: true,
            last_seen: self.tick,
            first_frame: at.frame,
            last_frame: at.frame,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.conns[s as usize] = Some(conn);
                s
            }
            None => {
                // why: a slot is pushed only when none is free, so the table never holds more
                // than `max_connections` slots; 2^32 of them would need terabytes of `Conn`s.
                #[allow(clippy::cast_possible_truncation)]
                let slot = self.conns.len() as u32;
                self.conns.push(Some(conn));
                slot
            }
        };
        self.table.insert(key, slot);
        self.by_id.insert(id, slot);
        self.lru.push_back((slot, id, self.tick));
        if self.lru.len() > 2 * self.config.max_connections.max(16) {
            // Entries of connections removed without eviction (port reuse) pile up: drop them.
            let conns = &self.conns;
            self.lru
                .retain(|&(s, id, _)| conns[s as usize].as_ref().is_some_and(|c| c.id == id));
        }
        self.stats.peak_connections = self.stats.peak_connections.max(self.table.len());
        sink(Event {
            mark: at,
            kind: EventKind::Opened {
                conn: id,
                client,
                server,
                how,
                outer: self.outer.as_slice(),
            },
        });
        slot
    }

    fn process<S: FnMut(Event<'_>)>(
        &mut self,
        slot: u32,
        src_is_lo: bool,
        seg: &TcpSegment<'_>,
        at: Mark,
        sink: &mut S,
    ) {
        let Tracker {
            conns,
            stats,
            config,
            buffered_total,
            tick,
            lingering,
            ..
        } = self;
        let Some(c) = conns[slot as usize].as_mut() else {
            return;
        };
        c.last_seen = *tick;
        c.last_frame = at.frame;
        let id = c.id;
        let dir = if src_is_lo == c.client_is_lo {
            Dir::ClientToServer
        } else {
            Dir::ServerToClient
        };
        // A segment the snap length cut to nothing still carried data: its hole is remembered.
        let has_data = !seg.payload.is_empty() || seg.missing > 0;
        let half = &mut c.halves[dir.index()];
        if !half.started() {
            if seg.flags.syn() {
                half.start_syn(seg.seq);
            } else if has_data || seg.flags.fin() {
                half.start_at(seg.seq);
                sink(Event {
                    mark: at,
                    kind: EventKind::Note {
                        conn: Some(id),
                        note: Note::MidStream { dir },
                    },
                });
            }
        }
        if has_data {
            if c.buffering && half.started() {
                let before = half.buffered();
                // Data on a SYN (TCP Fast Open) starts after the SYN's sequence number.
                let seq = if seg.flags.syn() {
                    seg.seq.wrapping_add(1)
                } else {
                    seg.seq
                };
                half.segment(seq, seg.payload, at, &mut |out| {
                    forward(out, id, dir, at, stats, sink)
                });
                if seg.missing > 0 {
                    half.cut_short(seq, seg.payload.len(), seg.missing);
                }
                *buffered_total = *buffered_total + half.buffered() - before;
                // Caps: give up on the oldest hole until back under them.
                while c.buffered() > config.max_buffered_per_conn
                    || (*buffered_total > config.max_buffered_total && c.buffered() > 0)
                {
                    let d = if c.halves[0].buffered() >= c.halves[1].buffered() {
                        Dir::ClientToServer
                    } else {
                        Dir::ServerToClient
                    };
                    let h = &mut c.halves[d.index()];
                    let before = h.buffered();
                    h.force_gap(GapCause::BufferFull, &mut |out| {
                        forward(out, id, d, at, stats, sink)
                    });
                    *buffered_total -= before - h.buffered();
                }
                stats.peak_buffered = stats.peak_buffered.max(*buffered_total);
            } else {
                half.count_only(seg.payload.len());
            }
        }
        let half = &mut c.halves[dir.index()];
        if seg.flags.fin() && !half.fin_seen && c.fin_at[dir.index()].is_none() {
            // why: sequence numbers count modulo 2^32; a segment's length fits easily.
            #[allow(clippy::cast_possible_truncation)]
            let len = seg.payload.len() as u32;
            let fin_seq = seg
                .seq
                .wrapping_add(u32::from(seg.flags.syn()))
                .wrapping_add(len)
                .wrapping_add(seg.missing);
            half.note_fin(fin_seq);
            c.fin_at[dir.index()] = Some(at);
        }
        c.hand_on_fins(sink);
        let fin = |i: usize| c.halves[i].fin_seen || c.fin_at[i].is_some();
        let (both_fins, both_through) = (
            fin(0) && fin(1),
            c.halves[0].fin_seen && c.halves[1].fin_seen,
        );
        if seg.flags.rst() {
            sink(Event {
                mark: at,
                kind: EventKind::Rst { conn: id, dir },
            });
            self.close(slot, CloseReason::Rst, at, sink);
        } else if both_through {
            self.close(slot, CloseReason::Fin, at, sink);
        } else if both_fins && !c.lingering {
            c.lingering = true;
            let wait = i128::try_from(CLOSE_LINGER.as_nanos()).unwrap_or(i128::MAX);
            lingering.push_back((slot, id, at.ts.unix_nanos().saturating_add(wait)));
        }
    }

    /// Closes ([`CloseReason::Fin`]) the connections whose [`CLOSE_LINGER`] ended
    /// before `at`'s time: their holes are given up.
    fn expire_lingering<S: FnMut(Event<'_>)>(&mut self, at: Mark, sink: &mut S) {
        while self.close_lingering(Some(at.ts.unix_nanos()), at, sink) {}
    }

    /// Closes the first waiting connection, if its deadline is before `now` (any deadline
    /// when `None`). False when none was closed.
    fn close_lingering<S: FnMut(Event<'_>)>(
        &mut self,
        now: Option<i128>,
        at: Mark,
        sink: &mut S,
    ) -> bool {
        while let Some(&(slot, id, deadline)) = self.lingering.front() {
            let live = self.conns[slot as usize]
                .as_ref()
                .is_some_and(|c| c.id == id);
            if !live {
                // Closed since (RST, port reuse, eviction).
                self.lingering.pop_front();
                continue;
            }
            if now.is_some_and(|now| deadline > now) {
                return false;
            }
            self.lingering.pop_front();
            self.close(slot, CloseReason::Fin, at, sink);
            return true;
        }
        false
    }

    /// A connection ended by FIN or RST: retired, removed, and its key remembered.
    fn close<S: FnMut(Event<'_>)>(
        &mut self,
        slot: u32,
        reason: CloseReason,
        at: Mark,
        sink: &mut S,
    ) {
        let Some((key, done)) = self.conns[slot as usize].as_ref().map(|c| {
            let isn = [c.halves[0].syn_isn(), c.halves[1].syn_isn()];
            let done = Finished {
                id: c.id,
                client_is_lo: c.client_is_lo,
                isn,
                interface: c.interface,
                copies: 0,
            };
            (c.key, done)
        }) else {
            return;
        };
        let id = done.id;
        self.retire(slot, reason, at, sink);
        self.remove(slot);
        self.closed.insert(key, done);
        self.closed_fifo.push_back((key, id));
        while self.closed_fifo.len() > self.config.max_closed_remembered {
            if let Some((k, old)) = self.closed_fifo.pop_front()
                && self.closed.get(&k).is_some_and(|done| done.id == old)
            {
                self.closed.remove(&k);
            }
        }
    }

    /// Ends a connection: hands on what is buffered (after gaps), frees the buffers and
    /// says `Closed`. The caller then removes it.
    fn retire<S: FnMut(Event<'_>)>(
        &mut self,
        slot: u32,
        reason: CloseReason,
        at: Mark,
        sink: &mut S,
    ) {
        let Tracker {
            conns,
            stats,
            buffered_total,
            ..
        } = self;
        let Some(c) = conns[slot as usize].as_mut() else {
            return;
        };
        let id = c.id;
        let cause = if reason == CloseReason::EndOfCapture {
            GapCause::EndOfCapture
        } else {
            GapCause::Closed
        };
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            let h = &mut c.halves[dir.index()];
            let held = h.buffered();
            if c.buffering {
                h.flush(cause, &mut |out| forward(out, id, dir, at, stats, sink));
            }
            h.drop_buffer();
            *buffered_total -= held;
            if let Some(mark) = c.fin_at[dir.index()].take() {
                h.fin_seen = true;
                sink(Event {
                    mark,
                    kind: EventKind::Fin { conn: id, dir },
                });
            }
        }
        if reason == CloseReason::Evicted {
            stats.evicted += 1;
        }
        sink(Event {
            mark: at,
            kind: EventKind::Closed {
                conn: id,
                reason,
                first_frame: c.first_frame,
                last_frame: c.last_frame,
                counters: c.counters(),
            },
        });
    }

    /// Takes a connection out of the table (after retiring it).
    fn remove(&mut self, slot: u32) {
        if let Some(c) = self.conns[slot as usize].take() {
            self.table.remove(&c.key);
            self.by_id.remove(&c.id);
            for h in &c.halves {
                self.removed.retransmitted += h.counters.retransmitted;
                self.removed.out_of_order_segments += h.counters.out_of_order_segments;
            }
            self.buffered_total -= c.buffered();
            self.free.push(slot);
            if self.last.is_some_and(|(_, s)| s == slot) {
                self.last = None;
            }
        }
    }

    /// Evicts the least recently active connection. False when the table is empty.
    fn evict_one<S: FnMut(Event<'_>)>(&mut self, at: Mark, sink: &mut S) -> bool {
        while let Some((slot, id, stamp)) = self.lru.pop_front() {
            let Some(c) = self.conns[slot as usize].as_ref().filter(|c| c.id == id) else {
                continue; // removed since it was queued
            };
            if c.last_seen > stamp {
                // Active since it was queued: give it another round.
                self.lru.push_back((slot, id, c.last_seen));
                continue;
            }
            self.retire(slot, CloseReason::Evicted, at, sink);
            self.remove(slot);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::net::TcpFlags;

    const C: &str = "10.0.0.1:40000";
    const S: &str = "10.0.0.2:8305";
    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN;
    const RST: u8 = TcpFlags::RST;

    /// Events as owned strings, compact enough to compare whole sequences.
    fn show(e: &Event<'_>) -> String {
        let frame = e.mark.frame;
        match &e.kind {
            EventKind::Opened {
                conn,
                client,
                server,
                how,
                ..
            } => {
                format!("open {conn} {client}->{server} {how:?} @{frame}")
            }
            EventKind::Data {
                conn, dir, bytes, ..
            } => format!(
                "data {conn} {} {:?} @{frame}",
                if *dir == Dir::ClientToServer {
                    "c>s"
                } else {
                    "s>c"
                },
                String::from_utf8_lossy(bytes)
            ),
            EventKind::Gap {
                conn,
                dir,
                len,
                cause,
                ..
            } => {
                format!("gap {conn} {dir:?} {len} {cause:?} @{frame}")
            }
            EventKind::Fin { conn, dir } => format!("fin {conn} {dir:?} @{frame}"),
            EventKind::Rst { conn, dir } => format!("rst {conn} {dir:?} @{frame}"),
            EventKind::Closed { conn, reason, .. } => format!("closed {conn} {reason:?} @{frame}"),
            EventKind::Note { conn, note } => format!("note {conn:?} {note:?} @{frame}"),
        }
    }

    struct Harness {
        t: Tracker,
        frame: u64,
        got: Vec<String>,
        /// The capture interface the next segments come on.
        iface: u32,
    }

    impl Harness {
        fn new(config: Config) -> Harness {
            Harness {
                t: Tracker::new(config),
                frame: 0,
                got: Vec::new(),
                iface: 0,
            }
        }

        fn seg(&mut self, src: &str, dst: &str, seq: u32, flags: u8, payload: &[u8]) -> &mut Self {
            self.frame += 1;
            let seg = TcpSegment {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                seq,
                ack: 0,
                flags: TcpFlags(flags),
                payload,
                missing: 0,
            };
            let got = &mut self.got;
            let at = Mark::new(self.frame, Timestamp::new(self.frame.cast_signed(), 0));
            self.t.outer.clear();
            self.t.interface = self.iface;
            self.t.segment(&seg, at, &mut |e| got.push(show(&e)));
            self
        }

        fn finish(&mut self) -> &mut Self {
            let got = &mut self.got;
            self.t.finish(&mut |e| got.push(show(&e)));
            self
        }

        fn take(&mut self) -> Vec<String> {
            std::mem::take(&mut self.got)
        }
    }

    fn handshake(h: &mut Harness, c: &str, s: &str, cisn: u32, sisn: u32) {
        h.seg(c, s, cisn, SYN, b"");
        h.seg(s, c, sisn, SYN | ACK, b"");
        h.seg(c, s, cisn.wrapping_add(1), ACK, b"");
    }

    #[test]
    fn full_connection_in_order() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, 100, 5000);
        h.seg(C, S, 101, ACK, b"hello")
            .seg(S, C, 5001, ACK, b"world");
        h.seg(C, S, 106, FIN | ACK, b"")
            .seg(S, C, 5006, FIN | ACK, b"");
        h.seg(C, S, 107, ACK, b""); // the last ACK must not open a connection
        assert_eq!(
            h.take(),
            [
                "open 0 10.0.0.1:40000->10.0.0.2:8305 Syn @1",
                "data 0 c>s \"hello\" @4",
                "data 0 s>c \"world\" @5",
                "fin 0 ClientToServer @6",
                "fin 0 ServerToClient @7",
                "closed 0 Fin @7",
            ]
        );
        assert_eq!(h.t.stats().connections, 1);
        assert_eq!(h.t.stats().after_close, 1);
        assert_eq!(h.t.connections(), 0, "a closed connection leaves the table");
        h.finish();
        assert!(
            h.take().is_empty(),
            "closed connections are not closed again"
        );
    }

    #[test]
    fn syn_ack_first_makes_its_receiver_the_client() {
        let mut h = Harness::new(Config::default());
        h.seg(S, C, 9, SYN | ACK, b"").seg(S, C, 10, ACK, b"banner");
        let got = h.take();
        assert_eq!(got[0], "open 0 10.0.0.1:40000->10.0.0.2:8305 SynAck @1");
        assert_eq!(got[1], "data 0 s>c \"banner\" @2");
    }

    #[test]
    fn mid_stream_start_takes_the_first_sender_as_client_and_says_so() {
        let mut h = Harness::new(Config::default());
        h.seg(S, C, 777, ACK, b"late").seg(C, S, 1, ACK, b"reply");
        assert_eq!(
            h.take(),
            [
                "open 0 10.0.0.2:8305->10.0.0.1:40000 MidStream @1",
                "note Some(ConnId(0)) MidStream { dir: ClientToServer } @1",
                "data 0 c>s \"late\" @1",
                "note Some(ConnId(0)) MidStream { dir: ServerToClient } @2",
                "data 0 s>c \"reply\" @2",
            ]
        );
    }

    #[test]
    fn port_reuse_after_close_is_a_new_connection() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, 100, 5000);
        h.seg(C, S, 101, ACK | FIN, b"one")
            .seg(S, C, 5001, ACK | FIN, b"");
        h.take();
        handshake(&mut h, C, S, 900_000, 70);
        h.seg(C, S, 900_001, ACK, b"two");
        assert_eq!(
            h.take(),
            [
                "open 1 10.0.0.1:40000->10.0.0.2:8305 Syn @6",
                "data 1 c>s \"two\" @9",
            ]
        );
    }

    #[test]
    fn port_reuse_without_close_retires_the_old_connection() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, 100, 5000);
        h.seg(C, S, 101, ACK, b"one");
        h.seg(C, S, 100, SYN, b""); // retransmitted SYN: same connection
        h.take();
        h.seg(C, S, 4242, SYN, b""); // another ISN: a new connection
        assert_eq!(
            h.take(),
            [
                "closed 0 PortReused @6",
                "open 1 10.0.0.1:40000->10.0.0.2:8305 Syn @6"
            ]
        );
        // A SYN from the other side of a mid-stream connection is a new one too.
        let mut h = Harness::new(Config::default());
        h.seg(S, C, 1, ACK, b"x").seg(C, S, 50, SYN, b"");
        let got = h.take();
        assert!(
            got.contains(&"open 1 10.0.0.1:40000->10.0.0.2:8305 Syn @2".to_string()),
            "{got:?}"
        );
    }

    #[test]
    fn rst_closes_and_reports_its_side() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, 100, 5000);
        h.seg(S, C, 5001, RST | ACK, b"");
        let got = h.take();
        assert_eq!(got[1..], ["rst 0 ServerToClient @4", "closed 0 Rst @4"]);
    }

    #[test]
    fn out_of_order_and_retransmission_through_the_tracker() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, 100, 5000);
        h.seg(C, S, 104, ACK, b"def")
            .seg(C, S, 101, ACK, b"abc")
            .seg(C, S, 101, ACK, b"abc");
        let got = h.take();
        assert_eq!(got[1..], ["data 0 c>s \"abc\" @5", "data 0 c>s \"def\" @4"]);
        assert_eq!(h.t.stats().retransmitted_bytes, 3);
        assert_eq!(h.t.stats().out_of_order_segments, 1);
    }

    #[test]
    fn wrap_around_through_the_tracker() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, u32::MAX - 1, 5000);
        h.seg(C, S, u32::MAX, ACK, b"ab").seg(C, S, 1, ACK, b"cd");
        assert_eq!(
            h.take()[1..],
            ["data 0 c>s \"ab\" @4", "data 0 c>s \"cd\" @5"]
        );
    }

    #[test]
    fn per_connection_cap_turns_a_hole_into_a_gap() {
        let mut h = Harness::new(Config {
            max_buffered_per_conn: 100,
            ..Config::default()
        });
        handshake(&mut h, C, S, 0, 0);
        h.seg(C, S, 1, ACK, b"a");
        h.seg(C, S, 10, ACK, &[b'x'; 60]);
        assert_eq!(h.t.buffered(), 60);
        h.seg(C, S, 70, ACK, &[b'y'; 60]);
        let got = h.take();
        assert_eq!(got[2], "gap 0 ClientToServer 8 BufferFull @6", "{got:?}");
        assert_eq!(h.t.buffered(), 0);
        assert_eq!(h.t.stats().gaps, 1);
    }

    #[test]
    fn total_cap_applies_across_connections() {
        let mut h = Harness::new(Config {
            max_buffered_per_conn: 1000,
            max_buffered_total: 150,
            ..Config::default()
        });
        handshake(&mut h, C, S, 0, 0);
        handshake(&mut h, "10.0.0.3:1", S, 0, 0);
        h.seg(C, S, 10, ACK, &[1; 100]);
        h.seg("10.0.0.3:1", S, 10, ACK, &[2; 100]);
        assert!(h.t.buffered() <= 150);
        assert!(h.take().iter().any(|e| e.starts_with("gap 1")));
    }

    #[test]
    fn stop_buffering_keeps_only_counters() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, 0, 0);
        h.seg(C, S, 1, ACK, b"hello");
        h.seg(C, S, 100, ACK, b"ahead");
        assert_eq!(h.t.buffered(), 5);
        h.t.stop_buffering(ConnId(0));
        assert_eq!(h.t.buffered(), 0);
        h.take();
        h.seg(C, S, 6, ACK, b"more")
            .seg(C, S, 10, FIN | ACK, b"")
            .seg(S, C, 1, FIN | ACK, b"");
        assert_eq!(
            h.take(),
            [
                "fin 0 ClientToServer @7",
                "fin 0 ServerToClient @8",
                "closed 0 Fin @8"
            ]
        );
    }

    #[test]
    fn finish_flushes_buffered_bytes_after_a_gap() {
        let mut h = Harness::new(Config::default());
        handshake(&mut h, C, S, 0, 0);
        h.seg(C, S, 5, ACK, b"tail");
        h.take();
        h.finish();
        assert_eq!(
            h.take(),
            [
                "gap 0 ClientToServer 4 EndOfCapture @4",
                "data 0 c>s \"tail\" @4",
                "closed 0 EndOfCapture @4"
            ]
        );
        assert_eq!(h.t.connections(), 0);
    }

    #[test]
    fn data_offsets_count_gaps_and_closed_bounds_the_connection() {
        let mut t = Tracker::default();
        let mut got = Vec::new();
        let segs: [(&str, &str, u32, u8, &[u8]); 5] = [
            (C, S, 0, SYN, b""),
            (C, S, 1, ACK, b"ab"),
            (C, S, 6, ACK, b"fg"),
            (S, C, 0, RST, b""),
            (C, S, 9, ACK, b"late"),
        ];
        for (i, (src, dst, seq, flags, payload)) in segs.into_iter().enumerate() {
            let seg = TcpSegment {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                seq,
                ack: 0,
                flags: TcpFlags(flags),
                payload,
                missing: 0,
            };
            let frame = 10 + i as u64;
            let at = Mark::new(frame, Timestamp::new(frame.cast_signed(), 0));
            t.push_segment(&seg, at, &mut |e| match e.kind {
                EventKind::Data { offset, bytes, .. } => {
                    got.push(format!("{offset}+{}", bytes.len()))
                }
                EventKind::Gap { offset, len, .. } => got.push(format!("gap {offset}+{len}")),
                EventKind::Closed {
                    first_frame,
                    last_frame,
                    counters,
                    ..
                } => got.push(format!(
                    "closed {first_frame}..{last_frame} {}",
                    counters[Dir::ClientToServer.index()].delivered
                )),
                _ => {}
            });
        }
        assert_eq!(got, ["0+2", "gap 2+3", "5+2", "closed 10..13 4"]);
    }

    #[test]
    fn full_table_evicts_the_least_recently_active() {
        let mut h = Harness::new(Config {
            max_connections: 2,
            ..Config::default()
        });
        h.seg("10.0.0.1:1", S, 0, SYN, b"");
        h.seg("10.0.0.1:2", S, 0, SYN, b"");
        h.seg("10.0.0.1:1", S, 1, ACK, b"keep me");
        h.take();
        h.seg("10.0.0.1:3", S, 0, SYN, b"");
        assert_eq!(
            h.take(),
            [
                "closed 1 Evicted @4",
                "open 2 10.0.0.1:3->10.0.0.2:8305 Syn @4"
            ]
        );
        assert_eq!(h.t.connections(), 2);
        assert_eq!(h.t.stats().evicted, 1);
    }

    #[test]
    fn many_short_connections_keep_the_table_bounded() {
        let mut h = Harness::new(Config {
            max_connections: 500,
            ..Config::default()
        });
        for i in 0..20_000u32 {
            let c = format!(
                "10.{}.{}.{}:{}",
                i >> 16,
                (i >> 8) & 255,
                i & 255,
                1024 + i % 50_000
            );
            h.seg(&c, S, 0, SYN, b"");
            h.seg(S, &c, 0, SYN | ACK, b"");
            h.seg(&c, S, 1, ACK, b"x");
            // Out of order before its FIN: waits `CLOSE_LINGER`, then flushed.
            h.seg(&c, S, 3, FIN | ACK, b"y");
            h.seg(S, &c, 1, FIN | ACK, b"");
            h.got.clear();
            assert!(h.t.connections() <= 500);
        }
        assert_eq!(h.t.stats().connections, 20_000);
        // One second a frame, five frames a connection: those whose second FIN came in the
        // last 30 s (`CLOSE_LINGER`) still wait, one byte buffered each.
        assert_eq!(h.t.connections(), 6);
        assert_eq!(h.t.buffered(), 6);
        h.finish();
        assert_eq!(h.t.connections(), 0);
        assert_eq!(h.t.buffered(), 0);
        assert!(h.t.lru.len() <= 2 * 500 + 1);
        let remembered = Config::default().max_closed_remembered;
        assert!(h.t.closed.len() <= remembered && h.t.closed_fifo.len() <= remembered);
        assert_eq!(h.t.stats().evicted, 0);
    }

    /// The server's last segment lost before the tap: both FINs pass, then its
    /// retransmission comes.
    fn alert_lost_then_fins(h: &mut Harness) {
        handshake(h, C, S, 100, 5000);
        h.seg(C, S, 101, ACK, b"hello");
        h.seg(S, C, 5006, FIN | ACK, b""); // after the 5 bytes at 5001, not yet seen
        h.seg(C, S, 106, FIN | ACK, b"");
    }

    #[test]
    fn a_segment_retransmitted_after_both_fins_is_delivered_before_the_fin() {
        let mut h = Harness::new(Config::default());
        alert_lost_then_fins(&mut h);
        h.seg(S, C, 5001, ACK, b"alert");
        h.seg(C, S, 107, ACK, b""); // the last ACK: after the close
        assert_eq!(
            h.take(),
            [
                "open 0 10.0.0.1:40000->10.0.0.2:8305 Syn @1",
                "data 0 c>s \"hello\" @4",
                "fin 0 ClientToServer @6",
                "data 0 s>c \"alert\" @7",
                "fin 0 ServerToClient @5",
                "closed 0 Fin @7",
            ]
        );
        let s = h.t.stats();
        assert_eq!((s.gaps, s.after_close, s.connections), (0, 1, 1));
        assert_eq!(h.t.connections(), 0);
    }

    #[test]
    fn a_hole_before_a_fin_is_given_up_when_the_linger_ends() {
        let mut h = Harness::new(Config::default());
        alert_lost_then_fins(&mut h);
        h.take();
        // Frames are a second apart: the second FIN (frame 6) waits until second 36.
        h.seg("10.0.0.3:1", S, 0, SYN, b"");
        while h.frame < 35 {
            h.seg("10.0.0.3:1", S, 1, ACK, b"");
        }
        assert_eq!(h.take(), ["open 1 10.0.0.3:1->10.0.0.2:8305 Syn @7"]);
        assert_eq!(h.t.connections(), 2);
        h.seg("10.0.0.3:1", S, 1, ACK, b"");
        assert_eq!(
            h.take(),
            [
                "gap 0 ServerToClient 5 Closed @36",
                "fin 0 ServerToClient @5",
                "closed 0 Fin @36",
            ]
        );
        h.seg(S, C, 5001, ACK, b"alert"); // too late
        assert!(h.take().is_empty());
        assert_eq!(h.t.stats().after_close, 1);
    }

    #[test]
    fn a_waiting_connection_closes_by_fin_at_end_of_capture_and_when_the_table_is_full() {
        let mut h = Harness::new(Config::default());
        alert_lost_then_fins(&mut h);
        h.take();
        h.finish();
        assert_eq!(
            h.take(),
            [
                "gap 0 ServerToClient 5 Closed @6",
                "fin 0 ServerToClient @5",
                "closed 0 Fin @6",
            ]
        );

        let mut h = Harness::new(Config {
            max_connections: 1,
            ..Config::default()
        });
        alert_lost_then_fins(&mut h);
        h.take();
        h.seg("10.0.0.3:1", S, 0, SYN, b"");
        assert_eq!(
            h.take(),
            [
                "gap 0 ServerToClient 5 Closed @7",
                "fin 0 ServerToClient @5",
                "closed 0 Fin @7",
                "open 1 10.0.0.3:1->10.0.0.2:8305 Syn @7",
            ]
        );
        assert_eq!(h.t.stats().evicted, 0, "waiting is not being evicted");
    }

    #[test]
    fn a_closed_connection_seen_again_on_another_interface_is_a_copy() {
        let mut h = Harness::new(Config::default());
        let once = |h: &mut Harness| {
            handshake(h, C, S, 100, 5000);
            h.seg(C, S, 101, ACK, b"hello");
            h.seg(C, S, 106, FIN | ACK, b"")
                .seg(S, C, 5001, FIN | ACK, b"")
                .seg(C, S, 107, ACK, b"");
        };
        once(&mut h);
        assert_eq!(h.take().last().unwrap(), "closed 0 Fin @6");
        // The same packets from a second interface's buffer, written after the first's.
        h.iface = 1;
        once(&mut h);
        assert!(h.take().is_empty());
        let s = h.t.stats();
        assert_eq!((s.connections, s.copies, s.after_close), (1, 1, 8));
        // A third interface is a third copy; a retransmitted SYN there is not a fourth.
        h.iface = 2;
        h.seg(C, S, 100, SYN, b"").seg(C, S, 100, SYN, b"");
        assert!(h.take().is_empty());
        assert_eq!(h.t.stats().copies, 2);
        // Another ISN on another interface: port reuse, a new connection.
        h.seg(C, S, 777, SYN, b"");
        assert_eq!(h.take(), ["open 1 10.0.0.1:40000->10.0.0.2:8305 Syn @17"]);

        // The same ISN on the same interface again is a replay, read as a new connection.
        let mut h = Harness::new(Config::default());
        once(&mut h);
        once(&mut h);
        let got = h.take();
        assert!(
            got.contains(&"open 1 10.0.0.1:40000->10.0.0.2:8305 Syn @8".to_string()),
            "{got:?}"
        );
        assert_eq!(h.t.stats().copies, 0);
    }

    #[test]
    fn port_filter_skips_other_connections() {
        let mut h = Harness::new(Config {
            ports: vec![8305],
            ..Config::default()
        });
        h.seg("10.0.0.1:1", "10.0.0.2:443", 0, SYN, b"");
        h.seg(C, S, 0, SYN, b"");
        assert_eq!(h.take().len(), 1);
        assert_eq!(h.t.stats().filtered, 1);
    }

    #[test]
    fn tunneled_frames_open_inner_flows_with_their_outer_layers() {
        use crate::net::Encapsulation;
        use crate::net::decode::tests::{ipv4_over, ipv4_tcp};
        let mut t = Tracker::default();
        let mut got = Vec::new();
        let mut outers = Vec::new();
        let frames = [
            ipv4_over(4, &ipv4_tcp(1, SYN, b"")),
            ipv4_tcp(2, ACK, b"bare"),
        ];
        for (i, data) in frames.iter().enumerate() {
            let f = Frame {
                index: i as u64 + 1,
                ts: Timestamp::default(),
                linktype: Linktype::RAW,
                data,
                orig_len: u32::try_from(data.len()).expect("test frame fits a pcap length"),
                interface: 0,
            };
            t.push(&f, &mut |e| {
                if let EventKind::Opened { outer, .. } = e.kind {
                    outers.push(outer.to_vec());
                }
                got.push(show(&e));
            });
        }
        t.finish(&mut |e| got.push(show(&e)));
        assert!(got[0].starts_with("open 0 10.0.0.1:40000->10.0.0.2:8305 Syn @1"));
        assert_eq!(
            outers.len(),
            1,
            "the bare packet belongs to the same inner flow"
        );
        assert_eq!(outers[0][0].kind, Encapsulation::Ipv4InIpv4);
        assert_eq!(outers[0][0].src.to_string(), "192.0.2.1");
        let last = got.last().unwrap();
        assert!(
            last.contains("Encapsulations") && last.contains("frames: 1"),
            "{got:?}"
        );
        let s = t.stats();
        assert_eq!((s.tunneled, s.tcp_segments), (1, 2));
        assert!(s.encapsulations.contains(Encapsulation::Ipv4InIpv4));
    }

    #[test]
    fn frames_are_decoded_and_odd_ones_noted() {
        use crate::net::decode::tests::ipv4_tcp;
        let mut t = Tracker::default();
        let mut got = Vec::new();
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ipv4_tcp(1, SYN, b""));
        let mut frag = ipv4_tcp(9, ACK, b"frag");
        frag[6] = 0x20;
        let frames: [(u32, Vec<u8>); 4] =
            [(1, eth), (101, frag), (147, vec![1, 2, 3]), (147, vec![4])];
        for (i, (lt, data)) in frames.iter().enumerate() {
            let f = Frame {
                index: i as u64 + 1,
                ts: Timestamp::default(),
                linktype: Linktype(*lt),
                data,
                orig_len: u32::try_from(data.len()).expect("test frame fits a pcap length"),
                interface: 0,
            };
            t.push(&f, &mut |e| got.push(show(&e)));
        }
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("open 0 10.0.0.1:40000->10.0.0.2:8305 Syn @1"));
        assert!(got[1].contains("Fragment") && got[1].ends_with("@2"));
        assert!(got[2].contains("UnsupportedLinktype") && got[2].ends_with("@3"));
        let s = t.stats();
        assert_eq!(
            (s.frames, s.fragments, s.undecodable, s.tcp_segments),
            (4, 1, 2, 1)
        );
    }
}
