//! net: link, IP and TCP decoding, tunnel unwrapping, connection tracking and TCP reassembly:
//! frames in, ordered bytes per connection direction out, with notes for what could not be
//! followed.
//!
//! Tunnels a tap leaves around the traffic it mirrors (IP-in-IP, GRE, ERSPAN, VXLAN, Geneve,
//! nested) are unwrapped in `decode` whenever an IP protocol or UDP port names one: flows are
//! the inner packets' (addresses, ports, connection ids), and the outer layers travel beside
//! them as [`Encap`]s, on [`EventKind::Opened`] for the connection's first packet and summed up in
//! [`Stats::encapsulations`] and a closing [`Note::Encapsulations`].
//!
//! [`Tracker::push`] takes each [`crate::capture::Frame`] and calls a sink with [`Event`]s,
//! each with the [`Mark`] (frame and time) it happened at: a connection opened (who is client
//! and server), bytes in order per direction (borrowed, marked with the frame that carried
//! them), gaps, FIN/RST, the connection closed, and notes
//! (fragments, malformed packets, conflicting retransmissions). Memory stays bounded: the
//! consumer tells the tracker when it no longer needs a connection's bytes
//! ([`Tracker::stop_buffering`]), out-of-order buffering is capped per connection and in
//! total, and the connection table is capped with the least recently active evicted.
//! Everything about TLS (where records start, what a handshake is) is the caller's job.

// These modules turn wire bytes into lengths and offsets: a silent truncation there is a
// parsing bug, so every narrowing or sign-changing cast is spelled out or justified.
#![warn(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_lossless
)]
#![warn(missing_docs)] // every pub item of net says what it is (issue 10)

mod decode;
mod encap;
mod flow;
mod link;
mod reassembly;
mod tracker;

use std::fmt;

pub use decode::{Packet, TcpFlags, TcpSegment, decode, decode_with};
pub use encap::{Encap, EncapSet, Encapsulation, MAX_DEPTH, Outer};
pub use flow::{ConnId, Dir, endpoint};
pub use reassembly::{GapCause, HalfCounters};
pub use tracker::{CloseReason, Config, Event, EventKind, Note, Opening, Stats, Tracker};

use crate::capture::{Frame, Timestamp};

/// Where something happened in a capture: the frame and its time. The one mark of the
/// analyzer: `net` puts it on every [`Event`], `tls::Session` carries it (as its generic
/// mark) to the messages it completes, and findings report its frame and time.
///
/// Ordered by frame first, so the latest of several marks is the one of the highest frame:
/// a message spanning segments is complete at the latest frame among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mark {
    /// 1-based frame number ([`Frame::index`]).
    pub frame: u64,
    /// The frame's capture time ([`Frame::ts`], UTC).
    pub ts: Timestamp,
}

impl Mark {
    /// A mark at 1-based `frame` and time `ts`, for places that have no [`Frame`] at hand
    /// (segments fed through [`Tracker::push_segment`], tests).
    pub fn new(frame: u64, ts: Timestamp) -> Mark {
        Mark { frame, ts }
    }

    /// The mark of a captured frame.
    pub fn of(frame: &Frame<'_>) -> Mark {
        Mark::new(frame.index, frame.ts)
    }
}

/// The protocol layer a decode error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// The link layer and what sits on it before IP: Ethernet, Linux cooked (SLL, SLL2),
    /// NULL/LOOP, VLAN tags, PPPoE sessions, MPLS labels (also inside a tunnel).
    Link,
    /// The IP header before its version is known: a header cut short, or a version nibble
    /// neither 4 nor 6.
    Ip,
    /// The IPv4 header's own fields (IHL below 5 words).
    Ipv4,
    /// IPv6 extension headers (hop-by-hop, routing, destination options...).
    IpExtension,
    /// The TCP header (cut short, or a data offset below 5 words).
    Tcp,
    /// The UDP header of a tunnel (VXLAN, Geneve).
    Udp,
    /// A tunnel's own header.
    Tunnel(Encapsulation),
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Link => "link-layer",
            Layer::Ip => "IP",
            Layer::Ipv4 => "IPv4",
            Layer::IpExtension => "IP extension",
            Layer::Tcp => "TCP",
            Layer::Udp => "UDP",
            Layer::Tunnel(kind) => kind.name(),
        })
    }
}

/// Why a frame could not be decoded down to TCP. Per packet, cheap (no allocation); the
/// tracker turns these into [`Note`]s with the frame number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame's link type (pcap header or pcapng interface) is none `net` decodes; the
    /// tracker notes each such link type once.
    #[error("unsupported link type {0}")]
    UnsupportedLinktype(crate::capture::Linktype),
    /// The captured bytes end inside a header.
    #[error("{layer} header cut short ({have} of {need} bytes)")]
    Truncated {
        /// The header that is cut.
        layer: Layer,
        /// Bytes the header needs, counted from its own start (with the options its flags
        /// or length fields announce).
        need: usize,
        /// Bytes the capture holds from that start.
        have: usize,
    },
    /// A header is complete but its contents cannot be followed.
    #[error("malformed {layer} header: {reason}")]
    Malformed {
        /// The header at fault.
        layer: Layer,
        /// What is wrong, as shown in notes ("version is not 2", "source routing (RFC 1701)
        /// is not supported"...).
        reason: &'static str,
    },
}
