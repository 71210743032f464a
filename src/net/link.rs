//! Link layers: from a frame's bytes and link type to the start of its IP packet.
//!
//! Parsed by hand rather than with etherparse because etherparse does not decode Linux cooked
//! captures of loopback (SLL with ARPHRD 772), SLL2, NULL/LOOP families, PPPoE sessions or
//! MPLS, and because finding an IP header behind a few fixed offsets is cheaper than building
//! a full header model per packet. IP and TCP themselves are left to `decode`, tunnels (which
//! may carry Ethernet again, see [`ethernet`]) to `encap`.

use super::{DecodeError, Layer};
use crate::capture::Linktype;

/// What sits on top of the link layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L3<'a> {
    /// An IPv4 or IPv6 packet (the version nibble tells which).
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, STP, PPP control...), with its EtherType when it has one.
    NotIp(Option<u16>),
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_QINQ_OLD2: u16 = 0x9200;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const ARPHRD_NETLINK: u16 = 824;

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn need(d: &[u8], n: usize) -> Result<(), DecodeError> {
    if d.len() < n {
        Err(DecodeError::Truncated {
            layer: Layer::Link,
            need: n,
            have: d.len(),
        })
    } else {
        Ok(())
    }
}

/// Strips the link layer of `data` according to `linktype`.
pub(crate) fn strip(linktype: Linktype, data: &[u8]) -> Result<L3<'_>, DecodeError> {
    match linktype {
        Linktype::ETHERNET => ethernet(data),
        Linktype::LINUX_SLL => {
            // packet type, ARPHRD, address length, 8 address bytes, protocol.
            need(data, 16)?;
            cooked(be16(data, 2), be16(data, 14), &data[16..])
        }
        Linktype::LINUX_SLL2 => {
            // protocol, reserved, interface index, ARPHRD, packet type, address length, address.
            need(data, 20)?;
            cooked(be16(data, 8), be16(data, 0), &data[20..])
        }
        Linktype::NULL | Linktype::LOOP => {
            // The address family in the capturing host's byte order (NULL) or network order
            // (LOOP, but writers disagree): take whichever reading is a small number.
            need(data, 4)?;
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let family = if le <= 0xffff { le } else { le.swap_bytes() };
            match family {
                // AF_INET; AF_INET6 as BSD, FreeBSD and Darwin number it.
                2 | 24 | 28 | 30 => Ok(L3::Ip(&data[4..])),
                _ => Ok(L3::NotIp(None)),
            }
        }
        Linktype::RAW | Linktype::RAW_12 | Linktype::RAW_14 | Linktype::IPV4 | Linktype::IPV6 => {
            Ok(L3::Ip(data))
        }
        other => Err(DecodeError::UnsupportedLinktype(other)),
    }
}

/// An Ethernet frame (the link layer, or what VXLAN, Geneve, ERSPAN and GRE 0x6558 carry).
pub(super) fn ethernet(data: &[u8]) -> Result<L3<'_>, DecodeError> {
    need(data, 14)?;
    let ethertype = be16(data, 12);
    if ethertype < 0x0600 {
        // An 802.3 length field: LLC/SNAP, never IP in practice.
        return Ok(L3::NotIp(None));
    }
    by_ethertype(ethertype, &data[14..])
}

/// Linux cooked captures: the protocol field is an EtherType except for a few ARPHRD types.
fn cooked(arphrd: u16, protocol: u16, rest: &[u8]) -> Result<L3<'_>, DecodeError> {
    if arphrd == ARPHRD_NETLINK || protocol < 0x0600 {
        // Netlink families, or Linux's pseudo-protocols (802.2 LLC, Novell 802.3, CAN...).
        return Ok(L3::NotIp(Some(protocol)));
    }
    by_ethertype(protocol, rest)
}

/// Follows VLAN tags, PPPoE sessions and MPLS labels down to IP.
pub(super) fn by_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Result<L3<'_>, DecodeError> {
    // Bounded so that a frame of nothing but tags cannot loop for long.
    for _ in 0..16 {
        match ethertype {
            ETH_IPV4 | ETH_IPV6 => return Ok(L3::Ip(rest)),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD | ETH_QINQ_OLD2 => {
                need(rest, 4)?;
                ethertype = be16(rest, 2);
                rest = &rest[4..];
            }
            ETH_PPPOE_SESSION => {
                // version/type, code, session id, length, then the PPP protocol.
                need(rest, 8)?;
                let len = usize::from(be16(rest, 4));
                let protocol = be16(rest, 6);
                let body = &rest[8..];
                // The PPPoE length counts the PPP protocol field; it also trims Ethernet padding.
                let body = &body[..body.len().min(len.saturating_sub(2))];
                return match protocol {
                    PPP_IPV4 | PPP_IPV6 => Ok(L3::Ip(body)),
                    _ => Ok(L3::NotIp(Some(ETH_PPPOE_SESSION))),
                };
            }
            ETH_MPLS | ETH_MPLS_MC => {
                // Pop labels to the bottom of the stack; the payload carries no type, so guess
                // from the IP version nibble as every dissector does.
                loop {
                    need(rest, 4)?;
                    let bottom = rest[2] & 1 == 1;
                    rest = &rest[4..];
                    if bottom {
                        break;
                    }
                }
                return match rest.first().map(|b| b >> 4) {
                    Some(4) | Some(6) => Ok(L3::Ip(rest)),
                    _ => Ok(L3::NotIp(Some(ethertype))),
                };
            }
            other => return Ok(L3::NotIp(Some(other))),
        }
    }
    Err(DecodeError::Malformed {
        layer: Layer::Link,
        reason: "too many stacked VLAN tags",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &[u8] = &[0x45, 0, 0, 20, 1, 2, 3, 4];

    fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0xaa; 12];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn ethernet_plain_and_tagged() {
        assert_eq!(strip(Linktype::ETHERNET, &eth(0x0800, IP)), Ok(L3::Ip(IP)));
        let mut tagged = vec![0x00, 0x64, 0x08, 0x00];
        tagged.extend_from_slice(IP);
        assert_eq!(
            strip(Linktype::ETHERNET, &eth(0x8100, &tagged)),
            Ok(L3::Ip(IP))
        );
        // QinQ: 802.1ad outer tag, 802.1Q inner tag.
        let mut qinq = vec![0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd];
        qinq.extend_from_slice(IP);
        assert_eq!(
            strip(Linktype::ETHERNET, &eth(0x88a8, &qinq)),
            Ok(L3::Ip(IP))
        );
        let mut old = vec![0x00, 0x0a, 0x08, 0x00];
        old.extend_from_slice(IP);
        assert_eq!(
            strip(Linktype::ETHERNET, &eth(0x9100, &old)),
            Ok(L3::Ip(IP))
        );
    }

    #[test]
    fn ethernet_non_ip_and_short_frames() {
        assert_eq!(
            strip(Linktype::ETHERNET, &eth(0x0806, &[0; 28])),
            Ok(L3::NotIp(Some(0x0806)))
        );
        assert_eq!(
            strip(Linktype::ETHERNET, &eth(0x0026, &[0; 28])),
            Ok(L3::NotIp(None))
        );
        assert_eq!(
            strip(Linktype::ETHERNET, &[0; 10]),
            Err(DecodeError::Truncated {
                layer: Layer::Link,
                need: 14,
                have: 10
            })
        );
        assert!(matches!(
            strip(Linktype::ETHERNET, &eth(0x8100, &[0, 1])),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn pppoe_session_to_ipv4_and_ipv6_trimming_padding() {
        let mut s = vec![0x11, 0x00, 0x12, 0x34];
        s.extend_from_slice(
            &u16::try_from(IP.len() + 2)
                .expect("test packet fits a PPPoE length")
                .to_be_bytes(),
        );
        s.extend_from_slice(&0x0021u16.to_be_bytes());
        s.extend_from_slice(IP);
        s.extend_from_slice(&[0; 6]); // Ethernet padding
        assert_eq!(strip(Linktype::ETHERNET, &eth(0x8864, &s)), Ok(L3::Ip(IP)));
        s[6..8].copy_from_slice(&0x0057u16.to_be_bytes());
        assert_eq!(strip(Linktype::ETHERNET, &eth(0x8864, &s)), Ok(L3::Ip(IP)));
        s[6..8].copy_from_slice(&0xc021u16.to_be_bytes()); // LCP
        assert_eq!(
            strip(Linktype::ETHERNET, &eth(0x8864, &s)),
            Ok(L3::NotIp(Some(0x8864)))
        );
        // PPPoE inside QinQ, as in zeek's pppoe-over-qinq.
        let mut q = vec![0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x88, 0x64];
        s[6..8].copy_from_slice(&0x0021u16.to_be_bytes());
        q.extend_from_slice(&s);
        assert_eq!(strip(Linktype::ETHERNET, &eth(0x88a8, &q)), Ok(L3::Ip(IP)));
    }

    #[test]
    fn mpls_labels_are_popped() {
        let mut m = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
        m.extend_from_slice(IP);
        assert_eq!(strip(Linktype::ETHERNET, &eth(0x8847, &m)), Ok(L3::Ip(IP)));
    }

    #[test]
    fn linux_sll_including_loopback() {
        // Outgoing (4), ARPHRD_LOOPBACK (772), address length 6, address, protocol IPv4.
        let mut sll = vec![
            0x00, 0x04, 0x03, 0x04, 0x00, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00,
        ];
        sll.extend_from_slice(IP);
        assert_eq!(strip(Linktype::LINUX_SLL, &sll), Ok(L3::Ip(IP)));
        // ARPHRD_ETHER with a VLAN protocol left in place.
        let mut vlan = sll.clone();
        vlan[2..4].copy_from_slice(&1u16.to_be_bytes());
        vlan[14..16].copy_from_slice(&0x8100u16.to_be_bytes());
        vlan.splice(16..16, [0x00, 0x05, 0x86, 0xdd]);
        assert_eq!(strip(Linktype::LINUX_SLL, &vlan), Ok(L3::Ip(IP)));
        // Netlink.
        let mut nl = sll.clone();
        nl[2..4].copy_from_slice(&824u16.to_be_bytes());
        nl[14..16].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(strip(Linktype::LINUX_SLL, &nl), Ok(L3::NotIp(Some(0))));
        assert!(strip(Linktype::LINUX_SLL, &sll[..15]).is_err());
    }

    #[test]
    fn linux_sll2() {
        // protocol IPv6, reserved, ifindex 1, ARPHRD_LOOPBACK, packet type, addr len, address.
        let mut sll2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0x00, 0x06];
        sll2.extend_from_slice(&[0; 8]);
        sll2.extend_from_slice(IP);
        assert_eq!(strip(Linktype::LINUX_SLL2, &sll2), Ok(L3::Ip(IP)));
        assert!(strip(Linktype::LINUX_SLL2, &sll2[..19]).is_err());
    }

    #[test]
    fn null_and_loop_families_in_either_byte_order() {
        for fam in [2u32, 24, 28, 30] {
            for bytes in [fam.to_le_bytes(), fam.to_be_bytes()] {
                let mut v = bytes.to_vec();
                v.extend_from_slice(IP);
                assert_eq!(strip(Linktype::NULL, &v), Ok(L3::Ip(IP)), "family {fam}");
                assert_eq!(strip(Linktype::LOOP, &v), Ok(L3::Ip(IP)), "family {fam}");
            }
        }
        let mut other = 7u32.to_le_bytes().to_vec();
        other.extend_from_slice(IP);
        assert_eq!(strip(Linktype::NULL, &other), Ok(L3::NotIp(None)));
    }

    #[test]
    fn raw_ip_link_types_and_unknown_ones() {
        for lt in [101, 12, 14, 228, 229] {
            assert_eq!(strip(Linktype(lt), IP), Ok(L3::Ip(IP)));
        }
        assert_eq!(
            strip(Linktype(147), IP),
            Err(DecodeError::UnsupportedLinktype(Linktype(147)))
        );
    }
}
