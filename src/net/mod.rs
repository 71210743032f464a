//! net: link, IP and TCP decoding, tunnel unwrapping, connection tracking and TCP reassembly:
//! frames in, ordered bytes per connection direction out, with notes for what could not be
//! followed.
//!
//! Tunnels a tap leaves around the traffic it mirrors (IP-in-IP, GRE, ERSPAN, VXLAN, Geneve,
//! nested) are unwrapped in `decode` whenever an IP protocol or UDP port names one: flows are
//! the inner packets' (addresses, ports, connection ids), and the outer layers travel beside
//! them as [`Encap`]s, on [`Event::Opened`] for the connection's first packet and summed up in
//! [`Stats::encapsulations`] and a closing [`Note::Encapsulations`].
//!
//! [`Tracker::push`] takes each [`crate::capture::Frame`] and calls a sink with [`Event`]s:
//! a connection opened (who is client and server), bytes in order per direction (borrowed,
//! with the frame that carried them), gaps, FIN/RST, the connection closed, and notes
//! (fragments, malformed packets, conflicting retransmissions). Memory stays bounded: the
//! consumer tells the tracker when it no longer needs a connection's bytes
//! ([`Tracker::stop_buffering`]), out-of-order buffering is capped per connection and in
//! total, and the connection table is capped with the least recently active evicted.
//! Everything about TLS (where records start, what a handshake is) is the caller's job.

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
pub use tracker::{CloseReason, Config, Event, Note, Opening, Stats, Tracker};

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
