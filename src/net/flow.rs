//! Connection identity: the canonical key of a TCP connection (the same whichever way a
//! packet goes), directions relative to the client, connection ids and endpoint text.
//!
//! The key is hashed with a small multiplicative hash instead of SipHash: it is looked up once
//! per packet and capture contents are not an attack surface worth SipHash's cost here (a
//! crafted capture can at worst slow its own analysis down).

use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// A connection's id, in order of first appearance in the capture (0, 1, 2, ...), like
/// tshark's `tcp.stream`. A port reused by a new connection gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A direction within a connection, relative to its client (the SYN sender, or the sender of
/// the first packet seen when the capture starts mid-stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the client to the server ([`Dir::index`] 0).
    ClientToServer = 0,
    /// From the server to the client ([`Dir::index`] 1).
    ServerToClient = 1,
}

impl Dir {
    /// The other direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ClientToServer => Dir::ServerToClient,
            Dir::ServerToClient => Dir::ClientToServer,
        }
    }

    /// 0 for client-to-server, 1 for server-to-client: for per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// `ip:port`, IPv6 as `[addr]:port` (the form the truth files and tshark-based tools use).
pub fn endpoint(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// An endpoint as 16 address bytes (IPv4 mapped) and a port, for cheap compare and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ep {
    addr: u128,
    port: u16,
}

impl Ep {
    fn of(sa: &SocketAddr) -> Ep {
        let addr = match sa.ip() {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        Ep {
            addr,
            port: sa.port(),
        }
    }
}

/// The canonical key: the lower endpoint first. IPv4 addresses are kept IPv4-mapped, and
/// the family is part of the key so `::ffff:a.b.c.d` over IPv6 stays distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowKey {
    lo: Ep,
    hi: Ep,
    v6: bool,
}

impl FlowKey {
    /// The key of a packet from `src` to `dst`, and whether `src` is the key's lower end.
    pub(crate) fn of(src: &SocketAddr, dst: &SocketAddr) -> (FlowKey, bool) {
        let (s, d) = (Ep::of(src), Ep::of(dst));
        let v6 = src.is_ipv6();
        if s <= d {
            (FlowKey { lo: s, hi: d, v6 }, true)
        } else {
            (FlowKey { lo: d, hi: s, v6 }, false)
        }
    }
}

impl Hash for FlowKey {
    // why: folding a 128-bit address into 64 bits keeps each half's low bits by design.
    #[allow(clippy::cast_possible_truncation)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.lo.addr as u64 ^ (self.lo.addr >> 64) as u64);
        state.write_u64(self.hi.addr as u64 ^ (self.hi.addr >> 64) as u64);
        state.write_u64(
            (u64::from(self.lo.port) << 32) | (u64::from(self.hi.port) << 8) | u64::from(self.v6),
        );
    }
}

/// FxHash-style hasher (rustc's): one rotate, xor and multiply per word.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub(crate) type FastBuild = BuildHasherDefault<FastHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_the_same_both_ways() {
        let a: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:8305".parse().unwrap();
        let (k1, a_lo) = FlowKey::of(&a, &b);
        let (k2, b_lo) = FlowKey::of(&b, &a);
        assert_eq!(k1, k2);
        assert_ne!(a_lo, b_lo);
        let c: SocketAddr = "10.0.0.2:8306".parse().unwrap();
        assert_ne!(FlowKey::of(&a, &c).0, k1);
    }

    #[test]
    fn ipv4_and_mapped_ipv6_are_different_flows() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let a6: SocketAddr = "[::ffff:10.0.0.1]:1".parse().unwrap();
        let b6: SocketAddr = "[::ffff:10.0.0.2]:2".parse().unwrap();
        assert_ne!(FlowKey::of(&a, &b).0, FlowKey::of(&a6, &b6).0);
    }

    #[test]
    fn endpoints_print_like_the_truth_files() {
        assert_eq!(
            endpoint("185.18.76.170".parse().unwrap(), 6667),
            "185.18.76.170:6667"
        );
        assert_eq!(
            endpoint("fd42:496a:d659:bb85::1".parse().unwrap(), 52464),
            "[fd42:496a:d659:bb85::1]:52464"
        );
    }
}
