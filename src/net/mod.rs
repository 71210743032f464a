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
    pub ts: Timestamp,
}

impl Mark {
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
    Link,
    Ip,
    Ipv4,
    IpExtension,
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
    #[error("unsupported link type {0}")]
    UnsupportedLinktype(crate::capture::Linktype),
    #[error("{layer} header cut short ({have} of {need} bytes)")]
    Truncated {
        layer: Layer,
        need: usize,
        have: usize,
    },
    #[error("malformed {layer} header: {reason}")]
    Malformed { layer: Layer, reason: &'static str },
}
