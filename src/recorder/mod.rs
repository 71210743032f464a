//! The recorder behind `--pcap FILE`: a pcap of a side's own TLS traffic, without root,
//! tcpdump or a network namespace.
//!
//! Owns turning what a socket wrapper sees into packets: [`Recorder`] is the file (shared by
//! every connection of one `serve`, `connect` or `lab`), [`Flow`] one TCP connection's
//! bookkeeping (sequence and acknowledgement numbers per direction, the three-way handshake,
//! payload cut into [`pcap::MSS`]-sized segments, FIN exchange), and [`Tapped`] the
//! `AsyncRead + AsyncWrite` wrapper that sits between the TCP stream and tokio-rustls and tells
//! the flow what was written and read. The bytes are the real TLS records; only the Ethernet,
//! IP and TCP headers are synthesized ([`pcap`]), stamped with the time an injected clock shows
//! (the tunnel's lab clock, so a capture taken ten lab-years ahead is judged at that time by
//! `sfdiag analyze`, Wireshark or tshark).
//!
//! What a wrapper cannot see is not invented: no retransmissions, no window updates, no pure
//! ACKs between data (each segment acknowledges everything received so far). A write error on
//! the file stops recording (logged once) and never disturbs the tunnel.

#![warn(missing_docs)] // every pub item of the recorder says what it holds (issue 10)

pub mod pcap;
mod tap;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

pub use tap::Tapped;

use pcap::flags::{ACK, FIN, PSH, SYN};

use crate::sftunnel::TlsSide;

type Now = Box<dyn Fn() -> OffsetDateTime + Send + Sync>;

struct Sink {
    w: Box<dyn Write + Send>,
    packets: u64,
    failed: bool,
}

struct Inner {
    sink: Mutex<Sink>,
    now: Now,
    flows: AtomicU32,
}

/// A pcap file being written; clones share it.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("packets", &self.packets())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates (truncates) `path`, mode 0644 whatever the umask, and writes the pcap header;
    /// `now` stamps every packet.
    pub fn create(
        path: &Path,
        now: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        Self::to_writer(std::io::BufWriter::new(f), now)
    }

    /// Records into any writer (the header is written now).
    pub fn to_writer(
        mut w: impl Write + Send + 'static,
        now: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        w.write_all(&pcap::file_header())?;
        w.flush()?;
        Ok(Recorder {
            inner: Arc::new(Inner {
                sink: Mutex::new(Sink {
                    w: Box::new(w),
                    packets: 0,
                    failed: false,
                }),
                now: Box::new(now),
                flows: AtomicU32::new(0),
            }),
        })
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.sink().packets
    }

    /// Connections recorded so far.
    pub fn flows(&self) -> u32 {
        self.inner.flows.load(Ordering::Relaxed)
    }

    /// Pushes buffered packets to the file.
    pub fn flush(&self) -> std::io::Result<()> {
        self.sink().w.flush()
    }

    fn sink(&self) -> std::sync::MutexGuard<'_, Sink> {
        crate::sync::lock(&self.inner.sink)
    }

    fn write(&self, seg: &pcap::Segment<'_>) {
        let rec = pcap::record((self.inner.now)(), &pcap::frame(seg));
        let mut s = self.sink();
        if s.failed {
            return;
        }
        // Flushed per packet: a capture of a long-running serve is readable while it runs and
        // complete when the process is killed.
        match s.w.write_all(&rec).and_then(|()| s.w.flush()) {
            Ok(()) => s.packets += 1,
            Err(e) => {
                s.failed = true;
                tracing::warn!(error = %e, "pcap recording stopped");
            }
        }
    }

    /// Starts recording a connection between `client` and `server` that `local` holds, with
    /// its three-way handshake.
    pub fn flow(&self, client: SocketAddr, server: SocketAddr, local: TlsSide) -> Flow {
        let n = self.inner.flows.fetch_add(1, Ordering::Relaxed);
        // Arbitrary but distinct initial sequence numbers per connection.
        let isn_c = 0x1000_0000u32.wrapping_add(n.wrapping_mul(0x0101_0000));
        let isn_s = 0x8000_0000u32.wrapping_add(n.wrapping_mul(0x0011_0000));
        let mut f = Flow {
            rec: self.clone(),
            addr: [client, server],
            next: [isn_c, isn_s],
            ip_id: [0, 0],
            fin: [false, false],
            local,
        };
        f.emit(TlsSide::Client, SYN, &[], false);
        f.next[0] = f.next[0].wrapping_add(1);
        f.emit(TlsSide::Server, SYN | ACK, &[], true);
        f.next[1] = f.next[1].wrapping_add(1);
        f.emit(TlsSide::Client, ACK, &[], true);
        f
    }

    /// Wraps a stream so its traffic is recorded as the connection `client` -> `server`.
    pub fn tap<S>(
        &self,
        inner: S,
        client: SocketAddr,
        server: SocketAddr,
        local: TlsSide,
    ) -> Tapped<S> {
        Tapped::recorded(inner, self.flow(client, server, local))
    }
}

fn idx(s: TlsSide) -> usize {
    match s {
        TlsSide::Client => 0,
        TlsSide::Server => 1,
    }
}

/// One recorded TCP connection.
pub struct Flow {
    rec: Recorder,
    /// Client, server.
    addr: [SocketAddr; 2],
    /// Next sequence number each side sends.
    next: [u32; 2],
    ip_id: [u16; 2],
    /// Each side's FIN was recorded.
    fin: [bool; 2],
    local: TlsSide,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("client", &self.addr[0])
            .field("server", &self.addr[1])
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Flow {
    fn emit(&mut self, from: TlsSide, flags: u8, payload: &[u8], acks: bool) {
        let (i, j) = (idx(from), idx(from.peer()));
        let id = self.ip_id[i];
        self.ip_id[i] = id.wrapping_add(1);
        self.rec.write(&pcap::Segment {
            src: self.addr[i],
            dst: self.addr[j],
            seq: self.next[i],
            ack: if acks { self.next[j] } else { 0 },
            flags,
            ip_id: id,
            payload,
        });
    }

    fn data(&mut self, from: TlsSide, bytes: &[u8]) {
        let i = idx(from);
        if self.fin[i] {
            return;
        }
        let mut chunks = bytes.chunks(pcap::MSS).peekable();
        while let Some(c) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                PSH | ACK
            } else {
                ACK
            };
            self.emit(from, flags, c, true);
            self.next[i] = self.next[i].wrapping_add(c.len() as u32);
        }
    }

    fn close(&mut self, from: TlsSide) {
        let i = idx(from);
        if self.fin[i] {
            return;
        }
        self.emit(from, FIN | ACK, &[], true);
        self.next[i] = self.next[i].wrapping_add(1);
        self.fin[i] = true;
        if self.fin[idx(from.peer())] {
            // Both FINs seen: the last ACK comes from the side that closed first.
            self.emit(from.peer(), ACK, &[], true);
        }
    }

    /// The recording side wrote `bytes`.
    pub fn sent(&mut self, bytes: &[u8]) {
        self.data(self.local, bytes);
    }

    /// The recording side read `bytes` from its peer.
    pub fn received(&mut self, bytes: &[u8]) {
        self.data(self.local.peer(), bytes);
    }

    /// The recording side shut its sending half (or closed the socket).
    pub fn local_closed(&mut self) {
        self.close(self.local);
    }

    /// The peer's end of stream was read.
    pub fn peer_closed(&mut self) {
        self.close(self.local.peer());
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        // Dropping the socket closes it: the kernel sends our FIN.
        self.local_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// (flags, seq, ack, payload len, from client) of every packet.
    fn packets(bytes: &[u8]) -> Vec<(u8, u32, u32, usize, bool)> {
        use etherparse::{SlicedPacket, TransportSlice};
        let mut out = Vec::new();
        let mut off = 24;
        while off < bytes.len() {
            let len = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
            let f = &bytes[off + 16..off + 16 + len];
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!()
            };
            out.push((
                f[14 + 20 + 13],
                t.sequence_number(),
                t.acknowledgment_number(),
                t.payload().len(),
                t.source_port() == 40000,
            ));
            off += 16 + len;
        }
        out
    }

    #[test]
    fn sequence_numbers_follow_the_bytes_and_segments_are_mss_sized() {
        let buf = Buf::default();
        let rec = Recorder::to_writer(buf.clone(), || datetime!(2034-10-05 12:00 UTC)).unwrap();
        let mut f = rec.flow(
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:8305".parse().unwrap(),
            TlsSide::Server,
        );
        f.received(&[1u8; 100]); // client hello
        f.sent(&[2u8; 3000]); // server flight, three segments
        f.received(&[3u8; 10]);
        f.local_closed();
        f.peer_closed();
        drop(f);
        let p = packets(&buf.0.lock().unwrap());
        let c0 = p[0].1;
        let s0 = p[1].1;
        assert_eq!(p[0].0, SYN);
        assert_eq!((p[1].0, p[1].2), (SYN | ACK, c0 + 1));
        assert_eq!((p[2].0, p[2].1, p[2].2), (ACK, c0 + 1, s0 + 1));
        assert_eq!((p[3].1, p[3].3, p[3].4), (c0 + 1, 100, true));
        assert_eq!(
            p[4..7].iter().map(|x| x.3).collect::<Vec<_>>(),
            vec![1448, 1448, 104]
        );
        assert_eq!(p[5].1, s0 + 1 + 1448);
        assert_eq!(p[6].0, PSH | ACK);
        assert_eq!(p[4].2, c0 + 101, "server segments ack the client hello");
        assert_eq!(p[7].2, s0 + 3001);
        // FIN from the server, FIN from the client, last ACK from the server.
        assert_eq!((p[8].0, p[8].4), (FIN | ACK, false));
        assert_eq!((p[9].0, p[9].4, p[9].2), (FIN | ACK, true, s0 + 3002));
        assert_eq!((p[10].0, p[10].2), (ACK, c0 + 112));
        assert_eq!(p.len(), 11, "drop after both FINs adds nothing");
        assert_eq!(rec.packets(), 11);
    }
}
