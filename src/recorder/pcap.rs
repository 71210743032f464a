//! Synthesized packets: Ethernet + IPv4/IPv6 + TCP around payload bytes, and the classic
//! pcap file and record headers.
//!
//! Pure byte building (no I/O, no clock): the caller says who sends what with which sequence
//! numbers and at what time. Checksums are computed (IPv4 header, TCP over its pseudo-header)
//! so Wireshark and tshark show no checksum errors. MAC addresses are made up from the IP
//! addresses (locally administered, `02:00:` + the IPv4 address or the IPv6 address' last four
//! bytes).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use time::OffsetDateTime;

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest TCP payload per segment: a 1500-byte MTU minus IPv4 and TCP headers minus the
/// 12 bytes of the timestamp option Linux sends (what a real capture on Ethernet shows).
pub const MSS: usize = 1448;
/// The MSS a SYN advertises (1500 - 40).
pub const SYN_MSS: u16 = 1460;
/// Snap length written in the file header.
pub const SNAPLEN: u32 = 65535;

/// TCP flag bits.
pub mod flags {
    /// The sender has no more data.
    pub const FIN: u8 = 0x01;
    /// Opens a connection (the handshake's first two segments).
    pub const SYN: u8 = 0x02;
    /// Aborts the connection.
    pub const RST: u8 = 0x04;
    /// Hand the payload to the application now.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement number is valid.
    pub const ACK: u8 = 0x10;
}

/// One TCP segment to frame.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    /// The sender's address and port.
    pub src: SocketAddr,
    /// The receiver's (if only one of the two is IPv6, both are framed as IPv6, IPv4-mapped).
    pub dst: SocketAddr,
    /// Sequence number of the payload's first byte (or of the SYN/FIN).
    pub seq: u32,
    /// Next sequence number expected from the other side (meaningful with [`flags::ACK`]).
    pub ack: u32,
    /// [`flags`] bits, or-ed.
    pub flags: u8,
    /// IPv4 identification (ignored for IPv6).
    pub ip_id: u16,
    /// TCP payload: the TLS bytes as sent (a [`Flow`](super::Flow) cuts them to [`MSS`]).
    pub payload: &'a [u8],
}

/// The 24-byte pcap file header (microsecond timestamps, Ethernet).
pub fn file_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone, sigfigs: 0
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// A pcap record: header (time, lengths) then the frame. Times outside what the format holds
/// (before 1970, after 2106) are clamped.
pub fn record(ts: OffsetDateTime, frame: &[u8]) -> Vec<u8> {
    let secs = ts.unix_timestamp().clamp(0, u32::MAX as i64) as u32;
    let usecs = if (0..=u32::MAX as i64).contains(&ts.unix_timestamp()) {
        ts.microsecond()
    } else {
        0
    };
    let len = frame.len() as u32;
    let mut r = Vec::with_capacity(16 + frame.len());
    r.extend_from_slice(&secs.to_le_bytes());
    r.extend_from_slice(&usecs.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(frame);
    r
}

fn mac(ip: IpAddr) -> [u8; 6] {
    let b = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// Ones' complement sum of 16-bit words, folded.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The TCP header (with an MSS option on SYNs) and payload, checksum left at 0.
fn tcp_bytes(s: &Segment<'_>) -> Vec<u8> {
    let opts: &[u8] = if s.flags & flags::SYN != 0 {
        let m = SYN_MSS.to_be_bytes();
        &[2, 4, m[0], m[1]]
    } else {
        &[]
    };
    let hlen = 20 + opts.len();
    let mut t = Vec::with_capacity(hlen + s.payload.len());
    t.extend_from_slice(&s.src.port().to_be_bytes());
    t.extend_from_slice(&s.dst.port().to_be_bytes());
    t.extend_from_slice(&s.seq.to_be_bytes());
    t.extend_from_slice(&s.ack.to_be_bytes());
    t.push(((hlen / 4) as u8) << 4);
    t.push(s.flags);
    t.extend_from_slice(&65535u16.to_be_bytes()); // window
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    t.extend_from_slice(opts);
    t.extend_from_slice(s.payload);
    t
}

/// Ethernet + IP + TCP for `s`. Mixed address families are written as IPv6 (v4-mapped).
pub fn frame(s: &Segment<'_>) -> Vec<u8> {
    let mut tcp = tcp_bytes(s);
    let tcp_len = tcp.len();
    let mut f = Vec::with_capacity(14 + 40 + tcp_len);
    f.extend_from_slice(&mac(s.dst.ip()));
    f.extend_from_slice(&mac(s.src.ip()));
    match (s.src.ip(), s.dst.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&s.ip_id.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&src.octets());
            ip[16..20].copy_from_slice(&dst.octets());
            let c = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let mut pseudo = Vec::with_capacity(12);
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            let c = fold(sum16(&tcp, sum16(&pseudo, 0)));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (a, b) => {
            let v6 = |ip: IpAddr| -> Ipv6Addr {
                match ip {
                    IpAddr::V4(v) => v.to_ipv6_mapped(),
                    IpAddr::V6(v) => v,
                }
            };
            let (src, dst) = (v6(a), v6(b));
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            ip[6] = 6;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&src.octets());
            ip[24..40].copy_from_slice(&dst.octets());
            let mut pseudo = Vec::with_capacity(40);
            pseudo.extend_from_slice(&src.octets());
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
            let c = fold(sum16(&tcp, sum16(&pseudo, 0)));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
    }
    f.extend_from_slice(&tcp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn seg(payload: &[u8], fl: u8) -> Vec<u8> {
        frame(&Segment {
            src: "127.0.0.1:50000".parse().unwrap(),
            dst: "127.0.0.1:8305".parse().unwrap(),
            seq: 1000,
            ack: 2000,
            flags: fl,
            ip_id: 7,
            payload,
        })
    }

    #[test]
    fn frames_decode_with_etherparse_and_checksums_verify() {
        let f = seg(b"\x16\x03\x03hello", flags::PSH | flags::ACK);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        assert_eq!(ip.header().ttl(), 64);
        // A correct header sums to 0xffff including its own checksum.
        assert_eq!(fold(sum16(ip.header().slice(), 0)), 0);
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("not TCP")
        };
        assert_eq!(
            (tcp.sequence_number(), tcp.acknowledgment_number()),
            (1000, 2000)
        );
        assert!(tcp.psh() && tcp.ack() && !tcp.syn());
        assert_eq!(tcp.payload(), b"\x16\x03\x03hello");
        let expected = tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap();
        assert_eq!(tcp.checksum(), expected);

        let syn = seg(b"", flags::SYN);
        let p = SlicedPacket::from_ethernet(&syn).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
            panic!("not TCP")
        };
        assert!(tcp.syn());
        assert_eq!(tcp.options(), &[2, 4, 0x05, 0xb4]);
    }

    #[test]
    fn ipv6_and_record_headers() {
        let f = frame(&Segment {
            src: "[::1]:1".parse().unwrap(),
            dst: "127.0.0.1:2".parse().unwrap(),
            seq: 0,
            ack: 0,
            flags: flags::ACK,
            ip_id: 0,
            payload: b"x",
        });
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        assert!(matches!(p.net, Some(NetSlice::Ipv6(_))));
        let r = record(
            OffsetDateTime::from_unix_timestamp_nanos(2_000_000_123_456_789).unwrap(),
            &f,
        );
        assert_eq!(&r[0..4], &2_000_000u32.to_le_bytes());
        assert_eq!(&r[4..8], &123_456u32.to_le_bytes());
        assert_eq!(&r[8..12], &(f.len() as u32).to_le_bytes());
        assert_eq!(file_header()[20], 1);
    }
}
