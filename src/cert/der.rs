//! A small, lenient DER walker: splits a certificate into its top-level pieces (TBS, names,
//! validity, key, extensions, signature) as byte ranges, without judging their contents.
//!
//! x509-parser is the parser of record for what each piece means; this walker exists so that a
//! certificate x509-parser refuses as a whole (odd key parameters, a new key algorithm, a
//! malformed extension) still yields its names, dates and serial. It only reads definite-length
//! TLVs with single-byte tags (all a certificate's skeleton uses) and never panics: every length
//! is checked against what is left before it is used.

use std::ops::Range;

/// One TLV: its tag byte, the range of the whole TLV and of its content, relative to the input
/// the walker was started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tlv {
    pub tag: u8,
    pub full: Range<usize>,
    pub content: Range<usize>,
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OID: u8 = 0x06;

/// Reads the TLV starting at `pos` in `data`; `None` when it does not fit or is not plain DER.
pub(crate) fn read_tlv(data: &[u8], pos: usize) -> Option<Tlv> {
    let tag = *data.get(pos)?;
    if tag & 0x1f == 0x1f {
        // High tag numbers never occur in a certificate's skeleton.
        return None;
    }
    let first = *data.get(pos + 1)? as usize;
    let (len, hdr) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        // 0x80 is BER's indefinite length; more than 4 length bytes cannot fit in memory anyway.
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(pos + 2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let start = pos.checked_add(hdr)?;
    let end = start.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    Some(Tlv {
        tag,
        full: pos..end,
        content: start..end,
    })
}

/// Iterates over the TLVs inside `range` of `data` (the content of a SEQUENCE or SET). Stops at
/// the first element that does not parse; `truncated()` tells whether that happened.
pub(crate) struct Children<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
    broken: bool,
}

impl<'a> Children<'a> {
    pub(crate) fn new(data: &'a [u8], range: Range<usize>) -> Self {
        let end = range.end.min(data.len());
        Children {
            data,
            pos: range.start.min(end),
            end,
            broken: false,
        }
    }

    /// True when an element could not be read (the rest of the range was skipped).
    pub(crate) fn truncated(&self) -> bool {
        self.broken
    }
}

impl Iterator for Children<'_> {
    type Item = Tlv;
    fn next(&mut self) -> Option<Tlv> {
        if self.broken || self.pos >= self.end {
            return None;
        }
        match read_tlv(&self.data[..self.end], self.pos) {
            Some(t) => {
                self.pos = t.full.end;
                Some(t)
            }
            None => {
                self.broken = true;
                None
            }
        }
    }
}

/// The byte ranges of a certificate's parts, as far as they could be found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Skeleton {
    /// The outer SEQUENCE (may be shorter than the input if bytes trail it).
    pub cert: Option<Range<usize>>,
    pub tbs: Option<Range<usize>>,
    pub version: Option<Range<usize>>,
    pub serial: Option<Range<usize>>,
    pub tbs_sig_alg: Option<Range<usize>>,
    pub issuer: Option<Range<usize>>,
    pub validity: Option<Range<usize>>,
    pub subject: Option<Range<usize>>,
    pub spki: Option<Range<usize>>,
    /// The SEQUENCE OF Extension inside `[3]`.
    pub extensions: Option<Range<usize>>,
    pub sig_alg: Option<Range<usize>>,
    /// The BIT STRING's content, unused-bits byte included.
    pub signature: Option<Range<usize>>,
    /// Why the walk stopped early, if it did.
    pub error: Option<&'static str>,
}

/// Walks a certificate's structure as far as it goes.
pub(crate) fn skeleton(der: &[u8]) -> Skeleton {
    let mut s = Skeleton::default();
    let Some(cert) = read_tlv(der, 0).filter(|t| t.tag == SEQUENCE) else {
        s.error = Some("not a DER SEQUENCE");
        return s;
    };
    s.cert = Some(cert.full.clone());
    let mut top = Children::new(der, cert.content.clone());
    let Some(tbs) = top.next().filter(|t| t.tag == SEQUENCE) else {
        s.error = Some("no tbsCertificate");
        return s;
    };
    s.tbs = Some(tbs.full.clone());
    if let Some(alg) = top.next().filter(|t| t.tag == SEQUENCE) {
        s.sig_alg = Some(alg.full);
        if let Some(sig) = top.next().filter(|t| t.tag == BIT_STRING) {
            s.signature = Some(sig.content);
        }
    }
    if s.signature.is_none() {
        s.error = Some("no signatureAlgorithm or signatureValue after tbsCertificate");
    }

    let mut it = Children::new(der, tbs.content).peekable();
    if let Some(v) = it.next_if(|t| t.tag == 0xa0) {
        s.version = Some(v.content);
    }
    const FIELDS: [(u8, &str); 6] = [
        (INTEGER, "no serialNumber"),
        (
            SEQUENCE,
            "no signature AlgorithmIdentifier in tbsCertificate",
        ),
        (SEQUENCE, "no issuer Name"),
        (SEQUENCE, "no validity"),
        (SEQUENCE, "no subject Name"),
        (SEQUENCE, "no subjectPublicKeyInfo"),
    ];
    let mut found: [Option<Range<usize>>; 6] = Default::default();
    for (i, (tag, err)) in FIELDS.iter().enumerate() {
        match it.next_if(|t| t.tag == *tag) {
            Some(t) => found[i] = Some(t.full),
            None => {
                s.error.get_or_insert(err);
                break;
            }
        }
    }
    let [serial, tbs_sig_alg, issuer, validity, subject, spki] = found;
    s.serial = serial;
    s.tbs_sig_alg = tbs_sig_alg;
    s.issuer = issuer;
    s.validity = validity;
    s.subject = subject;
    if spki.is_none() {
        return s;
    }
    s.spki = spki;
    // issuerUniqueID [1] and subjectUniqueID [2] (IMPLICIT, primitive or constructed).
    while it
        .next_if(|t| matches!(t.tag, 0x81 | 0x82 | 0xa1 | 0xa2))
        .is_some()
    {}
    if let Some(ext) = it.next_if(|t| t.tag == 0xa3) {
        match read_tlv(der, ext.content.start).filter(|t| t.tag == SEQUENCE) {
            Some(seq) => s.extensions = Some(seq.content),
            None => {
                s.error.get_or_insert("malformed extensions");
            }
        }
    }
    s
}

/// Decodes an OBJECT IDENTIFIER's content bytes to dotted form; `None` if malformed.
pub(crate) fn oid_to_string(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u128> = Vec::new();
    let mut cur: u128 = 0;
    let mut in_arc = false;
    for &b in content {
        if !in_arc && b == 0x80 {
            return None; // non-minimal encoding
        }
        cur = cur.checked_mul(128)? | u128::from(b & 0x7f);
        in_arc = b & 0x80 != 0;
        if !in_arc {
            arcs.push(cur);
            cur = 0;
        }
    }
    if in_arc || arcs.is_empty() {
        return None;
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in &arcs[1..] {
        out.push('.');
        out.push_str(&arc.to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths_and_refuses_overruns() {
        let short = [0x04, 0x02, 0xaa, 0xbb];
        let t = read_tlv(&short, 0).unwrap();
        assert_eq!((t.tag, t.content), (0x04, 2..4));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(0u8, 0x80));
        assert_eq!(read_tlv(&long, 0).unwrap().content, 3..131);
        assert!(read_tlv(&[0x04, 0x05, 0x00], 0).is_none());
        assert!(
            read_tlv(&[0x30, 0x80, 0x00, 0x00], 0).is_none(),
            "indefinite length"
        );
        assert!(read_tlv(&[0x30, 0x85, 1, 2, 3, 4, 5], 0).is_none());
        assert!(read_tlv(&[], 0).is_none());
    }

    #[test]
    fn decodes_oids() {
        assert_eq!(oid_to_string(&[0x55, 0x04, 0x0c]).unwrap(), "2.5.4.12");
        assert_eq!(
            oid_to_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]).unwrap(),
            "1.2.840.113549.1.1.11"
        );
        assert!(oid_to_string(&[0x55, 0x84]).is_none());
        assert!(oid_to_string(&[]).is_none());
    }

    #[test]
    fn skeleton_of_garbage_is_empty_not_a_panic() {
        for bytes in [
            &[][..],
            &[0x30],
            &[0x30, 0x03, 0x30, 0x01, 0x02],
            &[0xff; 8],
        ] {
            let s = skeleton(bytes);
            assert!(s.error.is_some());
            assert!(s.subject.is_none());
        }
    }
}
