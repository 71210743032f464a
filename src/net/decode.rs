//! IP and TCP: from a frame to a [`TcpSegment`] (or the reason it is not one).
//!
//! etherparse's lax slicers do the IP work (IPv4 options, IPv6 extension headers, Ethernet
//! padding trimmed by the IP length, snap-length-cut packets kept with what was captured).
//! Fragments are reported, not reassembled: sftunnel never fragments, and a TLS analyzer that
//! silently skipped them would be worse than one that says so. Tunnels (IP-in-IP, GRE, ERSPAN,
//! VXLAN, Geneve) are unwrapped by `encap` when the IP protocol or UDP port names one, and the
//! inner packet is decoded the same way. Nothing here allocates.

use std::net::{IpAddr, SocketAddr};

use etherparse::err::{ip, ipv6_exts, tcp};
use etherparse::{IpNumber, LaxIpPayloadSlice, LaxIpSlice, TcpSlice};

use super::encap::{self, Outer};
use super::link::{self, L3};
use super::{DecodeError, Layer};
use crate::capture::Linktype;

/// TCP flags: the header's byte 13 as sent (CWR, ECE, URG, ACK, PSH, RST, SYN, FIN from the
/// high bit down; RFC 9293 section 3.1). The constants are its bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers: the segment's sequence number is the ISN.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push: hand the data to the application now.
    pub const PSH: u8 = 0x08;
    /// The acknowledgment number is valid.
    pub const ACK: u8 = 0x10;

    /// FIN is set.
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// SYN is set (SYN or SYN-ACK).
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// RST is set.
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    /// ACK is set.
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One TCP segment, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Sender: the (inner, when tunneled) IP source address and TCP source port.
    pub src: SocketAddr,
    /// Receiver: the IP destination address and TCP destination port.
    pub dst: SocketAddr,
    /// The sequence number as on the wire (absolute, not relative to the ISN).
    pub seq: u32,
    /// The acknowledgment number as on the wire; meaningful only with [`TcpFlags::ACK`].
    pub ack: u32,
    /// The header's flag byte.
    pub flags: TcpFlags,
    /// The captured payload.
    pub payload: &'a [u8],
    /// Payload bytes the sender sent but the capture did not keep (the IP length says they
    /// exist). The reassembler leaves them as a hole a retransmission may fill.
    pub missing: u32,
}

/// What a frame turned out to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A TCP segment (IPv4 or IPv6, after any tunnels).
    Tcp(TcpSegment<'a>),
    /// An IPv4 or IPv6 fragment (first or later): skipped, not reassembled.
    Fragment {
        /// The fragment's IP source address.
        src: IpAddr,
        /// The fragment's IP destination address.
        dst: IpAddr,
        /// The IP protocol number of the fragmented payload.
        protocol: u8,
    },
    /// IP, but not TCP (UDP, ICMP, ESP...).
    OtherIp {
        /// The IP protocol number (IPv4's protocol field, IPv6's next header after its
        /// extension headers), e.g. 17 for UDP. Tunnel protocols carrying nothing `net`
        /// unwraps land here too: UDP to other ports, GRE version 1 (PPTP).
        protocol: u8,
    },
    /// Not IP (ARP, LLDP, STP...), with the EtherType when the link layer has one.
    NotIp {
        /// The EtherType that is not IP (or the Linux cooked protocol, Geneve's protocol
        /// type; 0x8864 for a PPPoE session without IP, the MPLS EtherType for labels over
        /// no IP). `None` for an 802.3 length field and NULL/LOOP families other than IP.
        ethertype: Option<u16>,
    },
}

fn ip_error(e: ip::LaxHeaderSliceError) -> DecodeError {
    match e {
        ip::LaxHeaderSliceError::Len(l) => DecodeError::Truncated {
            layer: Layer::Ip,
            need: l.required_len,
            have: l.len,
        },
        ip::LaxHeaderSliceError::Content(ip::HeaderError::UnsupportedIpVersion { .. }) => {
            DecodeError::Malformed {
                layer: Layer::Ip,
                reason: "IP version is neither 4 nor 6",
            }
        }
        ip::LaxHeaderSliceError::Content(_) => DecodeError::Malformed {
            layer: Layer::Ipv4,
            reason: "header length below 20 bytes",
        },
    }
}

fn ext_error(e: ipv6_exts::HeaderSliceError) -> DecodeError {
    match e {
        ipv6_exts::HeaderSliceError::Len(l) => DecodeError::Truncated {
            layer: Layer::IpExtension,
            need: l.required_len,
            have: l.len,
        },
        ipv6_exts::HeaderSliceError::Content(_) => DecodeError::Malformed {
            layer: Layer::IpExtension,
            reason: "bad extension header",
        },
    }
}

fn tcp_error(e: tcp::HeaderSliceError) -> DecodeError {
    match e {
        tcp::HeaderSliceError::Len(l) => DecodeError::Truncated {
            layer: Layer::Tcp,
            need: l.required_len,
            have: l.len,
        },
        tcp::HeaderSliceError::Content(_) => DecodeError::Malformed {
            layer: Layer::Tcp,
            reason: "data offset below 5 words",
        },
    }
}

/// Decodes a frame's link, IP and TCP headers, unwrapping tunnels (their layers are dropped;
/// see [`decode_with`] to keep them).
pub fn decode(linktype: Linktype, data: &[u8]) -> Result<Packet<'_>, DecodeError> {
    decode_with(linktype, data, &mut Outer::default())
}

/// [`decode`], recording into `outer` the tunnel layers unwrapped on the way to the inner
/// packet (outermost first; emptied first, so it describes this frame only). Addresses,
/// ports and payload are the inner packet's.
pub fn decode_with<'a>(
    linktype: Linktype,
    data: &'a [u8],
    outer: &mut Outer,
) -> Result<Packet<'a>, DecodeError> {
    outer.clear();
    let mut l3 = link::strip(linktype, data)?;
    // Each round unwraps one tunnel; `Outer` refuses more than `MAX_DEPTH`, which ends it.
    loop {
        let ip_bytes = match l3 {
            L3::Ip(b) => b,
            L3::NotIp(ethertype) => return Ok(Packet::NotIp { ethertype }),
        };
        let (ip, ext_err) = LaxIpSlice::from_slice(ip_bytes).map_err(ip_error)?;
        let payload = ip.payload();
        if payload.fragmented {
            return Ok(Packet::Fragment {
                src: ip.source_addr(),
                dst: ip.destination_addr(),
                protocol: payload.ip_number.0,
            });
        }
        if let Some((e, _)) = ext_err {
            return Err(ext_error(e));
        }
        if payload.ip_number == IpNumber::TCP {
            return tcp(&ip, ip_bytes, payload);
        }
        let protocol = payload.ip_number.0;
        if !encap::may_tunnel(protocol) {
            return Ok(Packet::OtherIp { protocol });
        }
        let carrier = encap::Carrier {
            v6: matches!(ip, LaxIpSlice::Ipv6(_)),
            src: ip.source_addr(),
            dst: ip.destination_addr(),
        };
        match encap::unwrap(protocol, carrier, payload.payload, outer)? {
            Some(inner) => l3 = inner,
            None => return Ok(Packet::OtherIp { protocol }),
        }
    }
}

/// The TCP segment of an IP packet whose protocol is TCP.
fn tcp<'a>(
    ip: &LaxIpSlice<'a>,
    ip_bytes: &'a [u8],
    payload: &LaxIpPayloadSlice<'a>,
) -> Result<Packet<'a>, DecodeError> {
    let seg = TcpSlice::from_slice(payload.payload).map_err(tcp_error)?;
    let missing = if payload.incomplete {
        // The IP header's length says how much was sent; the capture kept less.
        let declared = match ip {
            LaxIpSlice::Ipv4(v4) => u32::from(v4.header().total_len()),
            LaxIpSlice::Ipv6(v6) => 40 + u32::from(v6.header().payload_length()),
        };
        // More bytes kept than any IP length can declare: nothing is missing.
        u32::try_from(ip_bytes.len()).map_or(0, |kept| declared.saturating_sub(kept))
    } else {
        0
    };
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    Ok(Packet::Tcp(TcpSegment {
        src: SocketAddr::new(src, seg.source_port()),
        dst: SocketAddr::new(dst, seg.destination_port()),
        seq: seg.sequence_number(),
        ack: seg.acknowledgment_number(),
        flags: TcpFlags(seg.header_slice()[13]),
        payload: seg.payload(),
        missing,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// IPv4 + TCP bytes (no link layer) with the given flags.
    pub(crate) fn ipv4_tcp(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut b =
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 8305, seq, 1000);
        if flags & TcpFlags::SYN != 0 {
            b = b.syn();
        }
        if flags & TcpFlags::ACK != 0 {
            b = b.ack(7);
        }
        if flags & TcpFlags::FIN != 0 {
            b = b.fin();
        }
        if flags & TcpFlags::RST != 0 {
            b = b.rst();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut v = vec![0x02; 12];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(ip);
        v
    }

    #[test]
    fn ipv4_tcp_over_ethernet_with_padding() {
        let mut frame = eth(
            0x0800,
            &ipv4_tcp(1234, TcpFlags::ACK | TcpFlags::PSH, b"hi"),
        );
        frame.extend_from_slice(&[0; 6]); // Ethernet padding must not become payload
        let Packet::Tcp(s) = decode(Linktype::ETHERNET, &frame).unwrap() else {
            panic!("not tcp")
        };
        assert_eq!(s.src.to_string(), "10.0.0.1:40000");
        assert_eq!(s.dst.to_string(), "10.0.0.2:8305");
        assert_eq!(s.seq, 1234);
        assert_eq!(s.ack, 7);
        assert!(s.flags.ack() && !s.flags.syn());
        assert_eq!(s.payload, b"hi");
        assert_eq!(s.missing, 0);
    }

    #[test]
    fn ipv6_with_extension_header_and_endpoint_format() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut tcp_ip = Vec::new();
        PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
            .tcp(8305, 50000, 99, 1000)
            .write(&mut tcp_ip, b"x")
            .unwrap();
        // Insert a hop-by-hop options header (8 bytes) between the IPv6 header and TCP.
        let mut pkt = tcp_ip[..40].to_vec();
        pkt[6] = 0; // next header: hop-by-hop
        let plen = u16::from_be_bytes([pkt[4], pkt[5]]) + 8;
        pkt[4..6].copy_from_slice(&plen.to_be_bytes());
        pkt.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        pkt.extend_from_slice(&tcp_ip[40..]);
        let Packet::Tcp(s) = decode(Linktype::RAW, &pkt).unwrap() else {
            panic!("not tcp")
        };
        assert_eq!(s.src.to_string(), "[2001:db8::1]:8305");
        assert_eq!(s.dst.to_string(), "[2001:db8::2]:50000");
        assert_eq!(s.payload, b"x");
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let plain = ipv4_tcp(5, TcpFlags::ACK, b"data");
        let mut pkt = plain[..20].to_vec();
        pkt[0] = 0x46; // IHL 6: 4 bytes of options
        let total = u16::from_be_bytes([pkt[2], pkt[3]]) + 4;
        pkt[2..4].copy_from_slice(&total.to_be_bytes());
        pkt.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        pkt.extend_from_slice(&plain[20..]);
        let Packet::Tcp(s) = decode(Linktype::IPV4, &pkt).unwrap() else {
            panic!("not tcp")
        };
        assert_eq!(s.payload, b"data");
        assert_eq!(s.seq, 5);
    }

    #[test]
    fn snaplen_cut_payload_reports_the_missing_bytes() {
        let pkt = ipv4_tcp(1, TcpFlags::ACK, &[7; 100]);
        let cut = &pkt[..pkt.len() - 60];
        let Packet::Tcp(s) = decode(Linktype::RAW, cut).unwrap() else {
            panic!("not tcp")
        };
        assert_eq!(s.payload.len(), 40);
        assert_eq!(s.missing, 60);
    }

    #[test]
    // why: the PRNG's words are cut to the width they fill.
    #[allow(clippy::cast_possible_truncation)]
    fn random_bytes_never_panic_on_any_link_type() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut buf = [0u8; 200];
        // Bare, and inside each kind of tunnel and a nest of them.
        let tcp = ipv4_tcp(1, TcpFlags::ACK, b"payload");
        let bases = [
            tcp.clone(),
            nested(&tcp),
            ipv4_over(4, &tcp),
            ipv4_over(47, &gre(0xb0, 0x22eb, &erspan3(&eth(0x0800, &tcp)))),
            ipv4_over(17, &udp(6081, &geneve(0x6558, &eth(0x0800, &tcp)))),
        ];
        for round in 0..30_000u32 {
            let base = &bases[round as usize % bases.len()];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            // Half the rounds mutate a real packet, so the parsers get past the first checks.
            let len = (x % 200) as usize;
            let mut data = buf[..len].to_vec();
            if round % 3 != 0 {
                data = base.clone();
                let at = (x as usize >> 8) % data.len();
                data[at] = x as u8;
                data.truncate((x as usize >> 16) % (data.len() + 1));
            }
            for lt in [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 999] {
                let _ = decode(Linktype(lt), &data);
            }
        }
    }

    /// An IPv4 header (no options, checksum left 0) carrying `payload` as IP `protocol`.
    pub(crate) fn ipv4_over(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).expect("test packet fits an IPv4 length");
        let mut v = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, protocol, 0, 0];
        v[2..4].copy_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        v.extend_from_slice(payload);
        v
    }

    fn gre(flags: u8, protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flags, 0];
        v.extend_from_slice(&protocol.to_be_bytes());
        let words = [0x80u8, 0x20, 0x10]
            .iter()
            .filter(|f| flags & **f != 0)
            .count();
        for i in 0..words {
            v.extend_from_slice(
                &(u32::try_from(i).expect("a handful of option words") + 1).to_be_bytes(),
            );
        }
        v.extend_from_slice(payload);
        v
    }

    fn erspan3(frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0x20, 0x00, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0, 0x01];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(frame);
        v
    }

    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0xc3, 0x50];
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(
            &u16::try_from(8 + payload.len())
                .expect("test datagram fits a UDP length")
                .to_be_bytes(),
        );
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    fn geneve(protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x01, 0x00];
        v.extend_from_slice(&protocol.to_be_bytes());
        v.extend_from_slice(&[0x00, 0x00, 0x2a, 0x00, 0x01, 0x02, 0x01, 0x00]);
        v.extend_from_slice(payload);
        v
    }

    /// `ip` in VXLAN (VNI 5) in GRE with a key (9) in IPv4-in-IPv4.
    fn nested(ip: &[u8]) -> Vec<u8> {
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 5, 0];
        vxlan.extend_from_slice(&eth(0x0800, ip));
        let gre = gre(0x20, 0x0800, &ipv4_over(17, &udp(4789, &vxlan)));
        ipv4_over(4, &ipv4_over(47, &gre))
    }

    #[test]
    fn nested_tunnels_are_unwrapped_outermost_first() {
        use crate::net::Encapsulation as E;
        let inner = ipv4_tcp(42, TcpFlags::ACK, b"inner");
        let mut frame = eth(0x0800, &nested(&inner));
        frame.extend_from_slice(&[0; 4]); // padding behind the outer packet
        let mut outer = Outer::default();
        let Packet::Tcp(s) = decode_with(Linktype::ETHERNET, &frame, &mut outer).unwrap() else {
            panic!("not tcp")
        };
        assert_eq!(
            (s.src.to_string(), s.dst.to_string()),
            ("10.0.0.1:40000".into(), "10.0.0.2:8305".into())
        );
        assert_eq!((s.seq, s.payload), (42, &b"inner"[..]));
        let hops: Vec<_> = outer.as_slice().iter().map(|h| (h.kind, h.id)).collect();
        assert_eq!(
            hops,
            [
                (E::Ipv4InIpv4, None),
                (E::Gre, Some(1)),
                (E::Vxlan, Some(5))
            ]
        );
        // The next frame, bare, starts from an empty list.
        let bare = eth(0x0800, &inner);
        assert!(matches!(
            decode_with(Linktype::ETHERNET, &bare, &mut outer),
            Ok(Packet::Tcp(_))
        ));
        assert!(outer.is_empty());
        // A cut tunnel header is an error naming it; UDP to other ports is just UDP.
        let cut = ipv4_over(47, &[0x30, 0, 0x08, 0, 0, 0]);
        assert_eq!(
            decode(Linktype::RAW, &cut),
            Err(DecodeError::Truncated {
                layer: Layer::Tunnel(E::Gre),
                need: 12,
                have: 6
            })
        );
        assert_eq!(
            decode(Linktype::RAW, &ipv4_over(17, &udp(53, b"dns"))),
            Ok(Packet::OtherIp { protocol: 17 })
        );
        // Too deep a nest is refused, not followed for ever.
        let mut deep = inner.clone();
        for _ in 0..=crate::net::MAX_DEPTH {
            deep = ipv4_over(4, &deep);
        }
        assert!(matches!(
            decode(Linktype::RAW, &deep),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn fragments_other_protocols_and_garbage() {
        let mut frag = ipv4_tcp(1, TcpFlags::ACK, &[0; 16]);
        frag[6] = 0x20; // more fragments
        assert!(matches!(
            decode(Linktype::RAW, &frag).unwrap(),
            Packet::Fragment { protocol: 6, .. }
        ));
        let mut udp = Vec::new();
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .udp(53, 53)
            .write(&mut udp, b"q")
            .unwrap();
        assert_eq!(
            decode(Linktype::RAW, &udp).unwrap(),
            Packet::OtherIp { protocol: 17 }
        );
        assert_eq!(
            decode(Linktype::RAW, &[0x75, 0, 0]),
            Err(DecodeError::Malformed {
                layer: Layer::Ip,
                reason: "IP version is neither 4 nor 6"
            })
        );
        assert!(matches!(
            decode(Linktype::RAW, &[0x45, 0, 0]),
            Err(DecodeError::Truncated {
                layer: Layer::Ip,
                ..
            })
        ));
        // TCP header cut short.
        let pkt = ipv4_tcp(1, TcpFlags::ACK, b"");
        assert!(matches!(
            decode(Linktype::RAW, &pkt[..30]),
            Err(DecodeError::Truncated {
                layer: Layer::Tcp,
                ..
            })
        ));
        let _ = Ipv4Addr::LOCALHOST;
    }
}
