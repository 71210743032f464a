//! Test helper: writes pcap and pcapng bytes by hand, field by field, so unit tests can build
//! exactly the file (byte order, resolution, padding, odd blocks) a case needs.

/// A classic pcap file.
pub(crate) struct Pcap {
    pub(crate) be: bool,
    pub(crate) bytes: Vec<u8>,
}

impl Pcap {
    pub(crate) fn new(be: bool, nanos: bool, linktype: u32) -> Pcap {
        let mut p = Pcap {
            be,
            bytes: Vec::new(),
        };
        let magic = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        p.u32(magic);
        p.u16(2);
        p.u16(4);
        p.u32(0); // thiszone
        p.u32(0); // sigfigs
        p.u32(262_144); // snaplen
        p.u32(linktype);
        p
    }

    fn u16(&mut self, v: u16) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    /// A record; `frac` is micro- or nanoseconds per the file's magic.
    pub(crate) fn packet(mut self, sec: u32, frac: u32, data: &[u8]) -> Pcap {
        self.u32(sec);
        self.u32(frac);
        let len = u32::try_from(data.len()).expect("test packet fits a u32 length");
        self.u32(len);
        self.u32(len + 10);
        self.bytes.extend_from_slice(data);
        self
    }
}

/// A pcapng file, one section at a time (each section may have its own byte order).
#[derive(Default)]
pub(crate) struct PcapNg {
    be: bool,
    pub(crate) bytes: Vec<u8>,
}

impl PcapNg {
    pub(crate) fn new() -> PcapNg {
        PcapNg::default()
    }

    fn u16(&mut self, out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn u32v(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// Any block: type, length, body padded to 32 bits, length.
    pub(crate) fn block(mut self, btype: u32, body: &[u8]) -> PcapNg {
        let padded = body.len().div_ceil(4) * 4;
        let len = u32::try_from(12 + padded).expect("test block fits a u32 length");
        let t = if btype == 0x0A0D_0D0A {
            btype.to_le_bytes()
        } else {
            self.u32v(btype)
        };
        self.bytes.extend_from_slice(&t);
        let l = self.u32v(len);
        self.bytes.extend_from_slice(&l);
        self.bytes.extend_from_slice(body);
        self.bytes.resize(self.bytes.len() + padded - body.len(), 0);
        self.bytes.extend_from_slice(&l);
        self
    }

    pub(crate) fn section(mut self, be: bool) -> PcapNg {
        self.be = be;
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32v(0x1A2B_3C4D));
        self.u16(&mut body, 1);
        self.u16(&mut body, 0);
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        self.block(0x0A0D_0D0A, &body)
    }

    fn option(&mut self, out: &mut Vec<u8>, code: u16, value: &[u8]) {
        self.u16(out, code);
        self.u16(
            out,
            u16::try_from(value.len()).expect("test option fits a u16 length"),
        );
        out.extend_from_slice(value);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }

    pub(crate) fn interface(
        mut self,
        linktype: u16,
        snaplen: u32,
        tsresol: Option<u8>,
        tsoffset: Option<i64>,
    ) -> PcapNg {
        let mut body = Vec::new();
        self.u16(&mut body, linktype);
        self.u16(&mut body, 0);
        body.extend_from_slice(&self.u32v(snaplen));
        if let Some(r) = tsresol {
            self.option(&mut body, 9, &[r]);
        }
        if let Some(o) = tsoffset {
            let v = if self.be {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            };
            self.option(&mut body, 14, &v);
        }
        if tsresol.is_some() || tsoffset.is_some() {
            self.option(&mut body, 0, &[]);
        }
        self.block(1, &body)
    }

    pub(crate) fn epb(self, if_id: u32, ticks: u64, data: &[u8], origlen: u32) -> PcapNg {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32v(if_id));
        let [high, low] = [ticks >> 32, ticks & 0xffff_ffff]
            .map(|half| u32::try_from(half).expect("32 bits each"));
        body.extend_from_slice(&self.u32v(high));
        body.extend_from_slice(&self.u32v(low));
        body.extend_from_slice(
            &self.u32v(u32::try_from(data.len()).expect("test packet fits a u32 length")),
        );
        body.extend_from_slice(&self.u32v(origlen));
        body.extend_from_slice(data);
        self.block(6, &body)
    }

    pub(crate) fn spb(self, data: &[u8], origlen: u32) -> PcapNg {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32v(origlen));
        body.extend_from_slice(data);
        self.block(3, &body)
    }
}
