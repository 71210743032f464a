//! Tunnel encapsulations: the outer headers a tap leaves around the flow it mirrors, unwrapped
//! down to the inner packet, with what they said (kind, outer addresses, VNI/key/session id)
//! kept for the report.
//!
//! Handled: IP-in-IP (protocol 4 and 41 over IPv4 or IPv6: 4in4, 6in4, 4in6, 6in6), GRE
//! (protocol 47, RFC 2784 with RFC 2890's key and sequence number; inner IPv4/IPv6/MPLS by
//! EtherType or Ethernet by 0x6558), ERSPAN types I, II and III inside GRE (0x88BE, 0x22EB,
//! type III's optional platform sub-header and its IP frame type), VXLAN (UDP port 4789, RFC
//! 7348) and Geneve (UDP port 6081, RFC 8926, options skipped, Ethernet or IP inside).
//! Nesting is followed up to [`MAX_DEPTH`] layers.
//!
//! Parsed by hand: etherparse has no tunnel headers, and each of these is a few fixed fields
//! behind a length checked once. `decode` calls in here only when an IP protocol number (4, 41,
//! 47) or a UDP destination port (4789, 6081) names a tunnel, so plain TCP pays nothing.
//! Nothing here allocates: the layers go into an [`Outer`] the caller owns and reuses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Serialize, Serializer};

use super::link::{self, L3};
use super::{DecodeError, Layer};

/// Nested encapsulations followed in one frame; a frame with more is malformed.
pub const MAX_DEPTH: usize = 8;

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_UDP: u8 = 17;
const UDP_VXLAN: u16 = 4789;
const UDP_GENEVE: u16 = 6081;
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_TEB: u16 = 0x6558;
const ETH_ERSPAN_2: u16 = 0x88BE;
const ETH_ERSPAN_3: u16 = 0x22EB;

/// A kind of tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Encapsulation {
    /// IPv4 in IPv4 (protocol 4).
    Ipv4InIpv4,
    /// IPv6 in IPv4 (protocol 41: 6in4, 6to4, "sit").
    Ipv6InIpv4,
    /// IPv4 in IPv6 (protocol 4).
    Ipv4InIpv6,
    /// IPv6 in IPv6 (protocol 41).
    Ipv6InIpv6,
    /// GRE (protocol 47) carrying IP, MPLS or Ethernet.
    Gre,
    /// ERSPAN type I: GRE 0x88BE without a sequence number, Ethernet right behind GRE.
    ErspanI,
    /// ERSPAN type II: GRE 0x88BE, an 8-byte ERSPAN header, Ethernet.
    ErspanII,
    /// ERSPAN type III: GRE 0x22EB, a 12-byte ERSPAN header (+8 optional), Ethernet or IP.
    ErspanIII,
    /// VXLAN (UDP 4789), Ethernet inside.
    Vxlan,
    /// Geneve (UDP 6081), Ethernet or IP inside.
    Geneve,
}

impl Encapsulation {
    const ALL: [Encapsulation; 10] = [
        Encapsulation::Ipv4InIpv4,
        Encapsulation::Ipv6InIpv4,
        Encapsulation::Ipv4InIpv6,
        Encapsulation::Ipv6InIpv6,
        Encapsulation::Gre,
        Encapsulation::ErspanI,
        Encapsulation::ErspanII,
        Encapsulation::ErspanIII,
        Encapsulation::Vxlan,
        Encapsulation::Geneve,
    ];

    /// The name notes and JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Encapsulation::Ipv4InIpv4 => "IPv4-in-IPv4",
            Encapsulation::Ipv6InIpv4 => "IPv6-in-IPv4",
            Encapsulation::Ipv4InIpv6 => "IPv4-in-IPv6",
            Encapsulation::Ipv6InIpv6 => "IPv6-in-IPv6",
            Encapsulation::Gre => "GRE",
            Encapsulation::ErspanI => "ERSPAN type I",
            Encapsulation::ErspanII => "ERSPAN type II",
            Encapsulation::ErspanIII => "ERSPAN type III",
            Encapsulation::Vxlan => "VXLAN",
            Encapsulation::Geneve => "Geneve",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Encapsulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Encapsulation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One outer layer around a frame's inner packet: the tunnel's kind, the addresses of the IP
/// header that carried it, and its identifier when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Encap {
    /// The tunnel's kind (JSON `encapsulation`, by [`Encapsulation::name`]).
    #[serde(rename = "encapsulation")]
    pub kind: Encapsulation,
    /// Source address of the outer IP header that carried this layer (the tunnel's
    /// sending end).
    pub src: IpAddr,
    /// Destination address of that outer IP header (the tunnel's receiving end).
    pub dst: IpAddr,
    /// The VNI (VXLAN, Geneve), the GRE key (RFC 2890), or the ERSPAN session id.
    /// `None` (and left out of JSON) for IP-in-IP, GRE without the K bit, ERSPAN type I,
    /// and VXLAN without the I flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

/// A set of encapsulation kinds (which ones a capture used). Prints as `GRE, VXLAN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncapSet(u16);

impl EncapSet {
    /// Adds `kind` (no effect when present).
    pub fn insert(&mut self, kind: Encapsulation) {
        self.0 |= kind.bit();
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: Encapsulation) -> bool {
        self.0 & kind.bit() != 0
    }

    /// True when the set holds no kind (it then prints as the empty string).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, outermost-first in the order of [`Encapsulation`].
    pub fn iter(self) -> impl Iterator<Item = Encapsulation> {
        Encapsulation::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl fmt::Display for EncapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(k.name())?;
        }
        Ok(())
    }
}

const NO_ENCAP: Encap = Encap {
    kind: Encapsulation::Gre,
    src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    id: None,
};

/// The layers unwrapped from one frame, outermost first. Reused frame after frame: `decode`
/// empties it (one store) and only tunnels write to it.
#[derive(Clone)]
pub struct Outer {
    hops: [Encap; MAX_DEPTH],
    len: usize,
}

impl Default for Outer {
    fn default() -> Outer {
        Outer {
            hops: [NO_ENCAP; MAX_DEPTH],
            len: 0,
        }
    }
}

impl fmt::Debug for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Outer {
    /// The layers of the frame last decoded into it, outermost first (those unwrapped before
    /// the error when decoding failed); empty for a bare frame.
    pub fn as_slice(&self) -> &[Encap] {
        &self.hops[..self.len]
    }

    /// True when the frame last decoded into it came through no tunnel.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, hop: Encap) -> Result<(), DecodeError> {
        let slot = self.hops.get_mut(self.len).ok_or(DecodeError::Malformed {
            layer: Layer::Tunnel(hop.kind),
            reason: "more nested encapsulations than followed (8)",
        })?;
        *slot = hop;
        self.len += 1;
        Ok(())
    }
}

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn be24(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, d[at], d[at + 1], d[at + 2]])
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn need(d: &[u8], n: usize, layer: Layer) -> Result<(), DecodeError> {
    if d.len() < n {
        Err(DecodeError::Truncated {
            layer,
            need: n,
            have: d.len(),
        })
    } else {
        Ok(())
    }
}

/// The IP header a tunnel payload came in: its version and addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carrier {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// True when IP `protocol` may carry a tunnel (UDP only on the tunnel ports, which
/// [`unwrap`] checks).
#[inline]
pub(crate) fn may_tunnel(protocol: u8) -> bool {
    matches!(
        protocol,
        IPPROTO_IPIP | IPPROTO_IPV6 | IPPROTO_GRE | IPPROTO_UDP
    )
}

/// Unwraps one tunnel layer from the payload of an IP packet with `protocol`: `None` when it
/// is no tunnel (the packet is then just "other IP"), else what is inside, the layer recorded
/// in `outer`.
pub(crate) fn unwrap<'a>(
    protocol: u8,
    carrier: Carrier,
    payload: &'a [u8],
    outer: &mut Outer,
) -> Result<Option<L3<'a>>, DecodeError> {
    let hop = |kind, id| Encap {
        kind,
        src: carrier.src,
        dst: carrier.dst,
        id,
    };
    match protocol {
        IPPROTO_IPIP | IPPROTO_IPV6 => {
            let (kind, version) = match (protocol, carrier.v6) {
                (IPPROTO_IPIP, false) => (Encapsulation::Ipv4InIpv4, 4),
                (IPPROTO_IPIP, true) => (Encapsulation::Ipv4InIpv6, 4),
                (_, false) => (Encapsulation::Ipv6InIpv4, 6),
                (_, true) => (Encapsulation::Ipv6InIpv6, 6),
            };
            outer.push(hop(kind, None))?;
            // An empty payload is left to the IP parser, which reports it cut short.
            if payload.first().is_some_and(|b| b >> 4 != version) {
                return Err(DecodeError::Malformed {
                    layer: Layer::Tunnel(kind),
                    reason: if version == 4 {
                        "protocol 4 carries no IPv4 packet"
                    } else {
                        "protocol 41 carries no IPv6 packet"
                    },
                });
            }
            Ok(Some(L3::Ip(payload)))
        }
        IPPROTO_GRE => gre(payload, outer, &hop),
        IPPROTO_UDP => {
            // Only the destination port is looked at before deciding: other UDP traffic,
            // however short, is not a tunnel and gets no note.
            let Some(port) = payload.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]])) else {
                return Ok(None);
            };
            if port != UDP_VXLAN && port != UDP_GENEVE {
                return Ok(None);
            }
            need(payload, 8, Layer::Udp)?;
            let len = usize::from(be16(payload, 4));
            if len < 8 {
                return Err(DecodeError::Malformed {
                    layer: Layer::Udp,
                    reason: "length below 8 bytes",
                });
            }
            // The UDP length trims what follows (padding); a cut capture keeps what it has.
            let body = &payload[8..payload.len().min(len)];
            if port == UDP_VXLAN {
                vxlan(body, outer, &hop)
            } else {
                geneve(body, outer, &hop)
            }
        }
        _ => Ok(None),
    }
}

/// GRE, RFC 2784 with RFC 2890's key and sequence number (RFC 1701's source routing refused).
fn gre<'a>(
    d: &'a [u8],
    outer: &mut Outer,
    hop: &dyn Fn(Encapsulation, Option<u32>) -> Encap,
) -> Result<Option<L3<'a>>, DecodeError> {
    let layer = Layer::Tunnel(Encapsulation::Gre);
    need(d, 4, layer)?;
    let (flags, version) = (d[0], d[1] & 0x07);
    if version != 0 {
        // Version 1 is PPTP's enhanced GRE (RFC 2637), not a tap's tunnel: counted as other IP.
        return Ok(None);
    }
    let (checksum, routing, key, seq) = (
        flags & 0x80 != 0,
        flags & 0x40 != 0,
        flags & 0x20 != 0,
        flags & 0x10 != 0,
    );
    if routing {
        return Err(DecodeError::Malformed {
            layer,
            reason: "source routing (RFC 1701) is not supported",
        });
    }
    let key_at = 4 + if checksum { 4 } else { 0 };
    let len = key_at + if key { 4 } else { 0 } + if seq { 4 } else { 0 };
    need(d, len, layer)?;
    let protocol = be16(d, 2);
    let key = key.then(|| be32(d, key_at));
    let body = &d[len..];
    match protocol {
        ETH_ERSPAN_2 if !seq => {
            outer.push(hop(Encapsulation::ErspanI, None))?;
            link::ethernet(body).map(Some)
        }
        ETH_ERSPAN_2 => {
            let layer = Layer::Tunnel(Encapsulation::ErspanII);
            need(body, 8, layer)?;
            if body[0] >> 4 != 1 {
                return Err(DecodeError::Malformed {
                    layer,
                    reason: "version is not 1",
                });
            }
            let session = u32::from(be16(body, 2) & 0x03ff);
            outer.push(hop(Encapsulation::ErspanII, Some(session)))?;
            link::ethernet(&body[8..]).map(Some)
        }
        ETH_ERSPAN_3 => {
            let layer = Layer::Tunnel(Encapsulation::ErspanIII);
            need(body, 12, layer)?;
            if body[0] >> 4 != 2 {
                return Err(DecodeError::Malformed {
                    layer,
                    reason: "version is not 2",
                });
            }
            let session = u32::from(be16(body, 2) & 0x03ff);
            let frame_type = (body[10] >> 2) & 0x1f;
            let platform = body[11] & 0x01 != 0;
            let len = if platform { 20 } else { 12 };
            need(body, len, layer)?;
            outer.push(hop(Encapsulation::ErspanIII, Some(session)))?;
            let inner = &body[len..];
            match frame_type {
                0 => link::ethernet(inner).map(Some),
                2 => Ok(Some(L3::Ip(inner))),
                _ => Err(DecodeError::Malformed {
                    layer,
                    reason: "frame type is neither Ethernet (0) nor IP (2)",
                }),
            }
        }
        ETH_TEB => {
            outer.push(hop(Encapsulation::Gre, key))?;
            link::ethernet(body).map(Some)
        }
        other => {
            outer.push(hop(Encapsulation::Gre, key))?;
            // IPv4, IPv6, MPLS, VLAN-tagged...: as an Ethernet frame with this EtherType.
            link::by_ethertype(other, body).map(Some)
        }
    }
}

/// VXLAN, RFC 7348: flags, reserved, a 24-bit VNI, reserved; an Ethernet frame inside.
fn vxlan<'a>(
    d: &'a [u8],
    outer: &mut Outer,
    hop: &dyn Fn(Encapsulation, Option<u32>) -> Encap,
) -> Result<Option<L3<'a>>, DecodeError> {
    need(d, 8, Layer::Tunnel(Encapsulation::Vxlan))?;
    // The I flag says the VNI is valid; without it the frame is still unwrapped (as Wireshark
    // does), only its VNI is not claimed.
    let vni = (d[0] & 0x08 != 0).then(|| be24(d, 4));
    outer.push(hop(Encapsulation::Vxlan, vni))?;
    link::ethernet(&d[8..]).map(Some)
}

/// Geneve, RFC 8926: version, option length, flags, protocol type, a 24-bit VNI, options.
fn geneve<'a>(
    d: &'a [u8],
    outer: &mut Outer,
    hop: &dyn Fn(Encapsulation, Option<u32>) -> Encap,
) -> Result<Option<L3<'a>>, DecodeError> {
    let layer = Layer::Tunnel(Encapsulation::Geneve);
    need(d, 8, layer)?;
    if d[0] >> 6 != 0 {
        return Err(DecodeError::Malformed {
            layer,
            reason: "version is not 0",
        });
    }
    let len = 8 + usize::from(d[0] & 0x3f) * 4;
    need(d, len, layer)?;
    outer.push(hop(Encapsulation::Geneve, Some(be24(d, 4))))?;
    let body = &d[len..];
    match be16(d, 2) {
        ETH_TEB => link::ethernet(body).map(Some),
        ETH_IPV4 | ETH_IPV6 => Ok(Some(L3::Ip(body))),
        other => Ok(Some(L3::NotIp(Some(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP4: &[u8] = &[0x45, 0, 0, 20, 1, 2, 3, 4];
    const IP6: &[u8] = &[0x60, 0, 0, 0, 1, 2, 3, 4];

    fn v4() -> Carrier {
        Carrier {
            v6: false,
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
        }
    }

    fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0x02; 12];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    fn run(
        protocol: u8,
        c: Carrier,
        d: &[u8],
    ) -> (Result<Option<L3<'_>>, DecodeError>, Vec<Encap>) {
        let mut o = Outer::default();
        let r = unwrap(protocol, c, d, &mut o);
        (r, o.as_slice().to_vec())
    }

    #[test]
    fn ip_in_ip_each_way_and_wrong_versions() {
        let v6 = Carrier { v6: true, ..v4() };
        for (proto, c, inner, kind) in [
            (4, v4(), IP4, Encapsulation::Ipv4InIpv4),
            (41, v4(), IP6, Encapsulation::Ipv6InIpv4),
            (4, v6, IP4, Encapsulation::Ipv4InIpv6),
            (41, v6, IP6, Encapsulation::Ipv6InIpv6),
        ] {
            let (r, hops) = run(proto, c, inner);
            assert_eq!(r, Ok(Some(L3::Ip(inner))));
            assert_eq!(hops[0].kind, kind);
            assert_eq!(hops[0].src, c.src);
        }
        assert!(matches!(
            run(41, v4(), IP4).0,
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            run(4, v4(), IP6).0,
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn gre_optional_fields_and_payload_types() {
        // No options, IPv4.
        let mut g = vec![0x00, 0x00, 0x08, 0x00];
        g.extend_from_slice(IP4);
        assert_eq!(run(47, v4(), &g).0, Ok(Some(L3::Ip(IP4))));
        // Checksum + key + sequence (RFC 2890), IPv6: 16 bytes of header.
        let mut g = vec![
            0xb0, 0x00, 0x86, 0xdd, 0xab, 0xcd, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1,
        ];
        g.extend_from_slice(IP6);
        let (r, hops) = run(47, v4(), &g);
        assert_eq!(r, Ok(Some(L3::Ip(IP6))));
        assert_eq!(hops[0].id, Some(7));
        // Transparent Ethernet bridging.
        let mut g = vec![0x20, 0x00, 0x65, 0x58, 0, 0, 0, 9];
        g.extend_from_slice(&eth(0x0800, IP4));
        assert_eq!(run(47, v4(), &g).0, Ok(Some(L3::Ip(IP4))));
        // Cut inside the optional fields; source routing; PPTP's version 1.
        assert!(matches!(
            run(47, v4(), &[0xb0, 0, 0x08, 0, 1, 2]).0,
            Err(DecodeError::Truncated {
                need: 16,
                have: 6,
                ..
            })
        ));
        assert!(matches!(
            run(47, v4(), &[0x40, 0, 0x08, 0, 0, 0, 0, 0]).0,
            Err(DecodeError::Malformed { .. })
        ));
        assert_eq!(run(47, v4(), &[0x30, 0x81, 0x88, 0x0b]).0, Ok(None));
    }

    #[test]
    fn erspan_types() {
        let frame = eth(0x0800, IP4);
        // Type I: no sequence number, Ethernet right after GRE.
        let mut g = vec![0x00, 0x00, 0x88, 0xbe];
        g.extend_from_slice(&frame);
        let (r, hops) = run(47, v4(), &g);
        assert_eq!(
            (r, hops[0].kind),
            (Ok(Some(L3::Ip(IP4))), Encapsulation::ErspanI)
        );
        // Type II: sequence number, version 1, session 0x155.
        let mut g = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        g.extend_from_slice(&[0x10, 0x00, 0x01, 0x55, 0, 0, 0, 0]);
        g.extend_from_slice(&frame);
        let (r, hops) = run(47, v4(), &g);
        assert_eq!(r, Ok(Some(L3::Ip(IP4))));
        assert_eq!(
            (hops[0].kind, hops[0].id),
            (Encapsulation::ErspanII, Some(0x155))
        );
        // Type III with the platform sub-header (O bit), then with frame type IP.
        let mut g = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
        g.extend_from_slice(&[0x20, 0x00, 0x00, 0x2a, 0, 0, 0, 0, 0, 0, 0x00, 0x01]);
        g.extend_from_slice(&[0; 8]);
        g.extend_from_slice(&frame);
        let (r, hops) = run(47, v4(), &g);
        assert_eq!(r, Ok(Some(L3::Ip(IP4))));
        assert_eq!(
            (hops[0].kind, hops[0].id),
            (Encapsulation::ErspanIII, Some(42))
        );
        let mut g = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
        g.extend_from_slice(&[0x20, 0x00, 0x00, 0x2a, 0, 0, 0, 0, 0, 0, 2 << 2, 0x00]);
        g.extend_from_slice(IP4);
        assert_eq!(run(47, v4(), &g).0, Ok(Some(L3::Ip(IP4))));
        // Wrong version; cut before the sub-header ends.
        let mut bad = g.clone();
        bad[8] = 0x10;
        assert!(matches!(
            run(47, v4(), &bad).0,
            Err(DecodeError::Malformed { .. })
        ));
        let mut cut = g[..20].to_vec();
        cut[19] = 0x01;
        assert!(matches!(
            run(47, v4(), &cut).0,
            Err(DecodeError::Truncated {
                need: 20,
                have: 12,
                ..
            })
        ));
    }

    fn udp(dport: u16, body: &[u8]) -> Vec<u8> {
        let mut u = vec![0xc0, 0x01];
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(
            &u16::try_from(body.len() + 8)
                .expect("test datagram fits a UDP length")
                .to_be_bytes(),
        );
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(body);
        u
    }

    #[test]
    fn vxlan_and_geneve() {
        let mut v = vec![0x08, 0, 0, 0, 0x00, 0x00, 0x2a, 0];
        v.extend_from_slice(&eth(0x86dd, IP6));
        let pkt = udp(4789, &v);
        let (r, hops) = run(17, v4(), &pkt);
        assert_eq!(r, Ok(Some(L3::Ip(IP6))));
        assert_eq!((hops[0].kind, hops[0].id), (Encapsulation::Vxlan, Some(42)));
        // Geneve with 8 bytes of options and IPv4 inside; then Ethernet inside.
        let mut g = vec![0x02, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00, 0x00];
        g.extend_from_slice(&[0x01, 0x02, 0x03, 0x01, 0, 0, 0, 0]);
        g.extend_from_slice(IP4);
        let pkt = udp(6081, &g);
        let (r, hops) = run(17, v4(), &pkt);
        assert_eq!(r, Ok(Some(L3::Ip(IP4))));
        assert_eq!(
            (hops[0].kind, hops[0].id),
            (Encapsulation::Geneve, Some(256))
        );
        let mut g = vec![0x00, 0x00, 0x65, 0x58, 0, 0, 1, 0];
        g.extend_from_slice(&eth(0x0800, IP4));
        assert_eq!(run(17, v4(), &udp(6081, &g)).0, Ok(Some(L3::Ip(IP4))));
        // Options longer than the packet; version 1.
        assert!(matches!(
            run(17, v4(), &udp(6081, &[0x3f, 0, 0x65, 0x58, 0, 0, 1, 0])).0,
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            run(17, v4(), &udp(6081, &[0x40, 0, 0x65, 0x58, 0, 0, 1, 0])).0,
            Err(DecodeError::Malformed { .. })
        ));
        // Other UDP, short or not, is no tunnel and no error.
        assert_eq!(run(17, v4(), &udp(53, b"x")).0, Ok(None));
        assert_eq!(run(17, v4(), &[0, 53]).0, Ok(None));
        // A VXLAN port with a cut header is.
        assert!(matches!(
            run(17, v4(), &udp(4789, &[0x08, 0])).0,
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn depth_is_bounded() {
        let mut o = Outer::default();
        for _ in 0..MAX_DEPTH {
            assert_eq!(unwrap(4, v4(), IP4, &mut o), Ok(Some(L3::Ip(IP4))));
        }
        assert!(matches!(
            unwrap(4, v4(), IP4, &mut o),
            Err(DecodeError::Malformed { .. })
        ));
        assert_eq!(o.as_slice().len(), MAX_DEPTH);
    }

    #[test]
    fn set_prints_in_a_stable_order() {
        let mut s = EncapSet::default();
        assert!(s.is_empty());
        s.insert(Encapsulation::Vxlan);
        s.insert(Encapsulation::Gre);
        s.insert(Encapsulation::Vxlan);
        assert_eq!(s.to_string(), "GRE, VXLAN");
    }
}
