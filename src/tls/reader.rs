//! One direction of a connection: in-order bytes in, record-level items out.
//!
//! Owns the byte-level framing: where TLS starts (first bytes, an SSLv2-format ClientHello, or a
//! record found after plaintext by `scan`), records split across `feed` calls, and handshake
//! messages split across records. It buffers at most one partial record, one partial handshake
//! message (bounded by `Limits::max_handshake`) and a few bytes of scan tail. What the items mean
//! for the connection (roles, versions, done-ness) is `session`'s job.
//!
//! Every item carries the caller's mark (frame, time) of the chunk that completed its record;
//! a message spanning records gets the latest mark of the records it spans, the frame a
//! dissector like tshark shows it in.
//!
//! When the session installs a `RecordCipher` (its secrets were in a key log), protected
//! records are opened here, as they arrive, and their content goes the way plaintext does:
//! handshake messages through the same defragmenting, alerts as alerts. A record that does
//! not open is reported and the direction goes back to counting. Each cipher comes with a
//! budget of records it may open, so decrypting stays bounded whatever a connection sends.

use super::decrypt::RecordCipher;
use super::record::{HEADER_LEN, MAX_RECORD_LEN, RecordHeader};
use super::registry::{AlertDescription, AlertLevel, ContentType, HandshakeType};
use super::scan::{self, Found};
use super::{Alert, Limits, TlsError};

/// What one direction produced. The consumer answers each item with an [`Action`].
#[derive(Debug)]
pub(super) enum Item<'a> {
    /// TLS starts here, after this many bytes of another protocol.
    Start {
        plaintext: u64,
    },
    /// An SSLv2-format ClientHello (its body after the 2-byte length).
    Sslv2ClientHello(&'a [u8]),
    /// A complete handshake message; `decrypted`: it came out of protected records.
    Handshake {
        typ: HandshakeType,
        body: &'a [u8],
        decrypted: bool,
    },
    /// A handshake record after this side's ChangeCipherSpec (Finished, renegotiation).
    EncryptedHandshake,
    ChangeCipherSpec,
    /// `alert: None`: encrypted (after ChangeCipherSpec, or a record that is not 2 bytes
    /// long); `decrypted`: opened with a key log's secret.
    Alert {
        alert: Option<Alert>,
        decrypted: bool,
    },
    /// An application data record (in TLS 1.3 not decrypted, any protected record) of `len`
    /// bytes; `decrypted`: opened with a key log's secret.
    ApplicationData {
        len: u16,
        decrypted: bool,
    },
    Heartbeat,
    Error(TlsError),
}

/// What the consumer wants done after an item.
#[derive(Debug, Default)]
pub(super) enum Action {
    #[default]
    Nothing,
    /// TLS 1.3 was negotiated: ChangeCipherSpec is only a middlebox-compatibility no-op from
    /// now on; the next protected records open with the cipher, if one is given.
    Tls13(Option<(Box<RecordCipher>, u32)>),
    /// From the next record on, records are protected with this cipher, which may open this
    /// many of them (TLS 1.2 ChangeCipherSpec, a TLS 1.3 Finished).
    Install(Box<RecordCipher>, u32),
    /// A KeyUpdate: the next generation, with the budget left of the current one.
    Update(Box<RecordCipher>),
    /// Stop decrypting this direction (the next secret is not in the key log).
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing decided: the first bytes say whether TLS starts at once.
    Start,
    /// Looking for the first record after plaintext.
    Scanning,
    /// Collecting an SSLv2-format ClientHello of this total size (length prefix included).
    Sslv2 { total: usize },
    /// Inside the record stream.
    Records,
    /// Not TLS (any more): ignore the rest.
    Stopped,
}

/// The per-direction framer.
#[derive(Debug)]
pub(super) struct DirReader<M> {
    state: State,
    /// Partial record (in `Records`), or unsearched bytes (in `Start`/`Scanning`/`Sslv2`).
    pending: Vec<u8>,
    pending_mark: Option<M>,
    /// Bytes fed so far: stream offsets for error messages.
    fed: u64,
    /// Plaintext bytes skipped while scanning.
    skipped: u64,
    /// Partial handshake message.
    hs: Vec<u8>,
    hs_mark: Option<M>,
    /// Bytes left of a message too large to buffer, dropped as they come.
    hs_skip: u64,
    /// This side sent ChangeCipherSpec: its later records are encrypted.
    pub(super) ccs: bool,
    /// TLS 1.3 was negotiated: ChangeCipherSpec is a compatibility no-op.
    pub(super) tls13: bool,
    /// Skim mode: records are counted, payloads not buffered (`skim`).
    skim: bool,
    /// Skim mode: payload bytes left of the current record, its type and length.
    skip: usize,
    skip_type: ContentType,
    skip_len: u16,
    /// Opens this direction's protected records (the key log had the secret).
    cipher: Option<Box<RecordCipher>>,
    /// Records the cipher may still open.
    decrypt_left: u32,
    /// An action replaced or dropped the cipher while a record it opened was being read.
    rekeyed: bool,
    limits: Limits,
}

fn later<M: Ord + Copy>(a: Option<M>, b: M) -> M {
    a.map_or(b, |a| a.max(b))
}

impl<M: Copy + Ord> DirReader<M> {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            state: State::Start,
            pending: Vec::new(),
            pending_mark: None,
            fed: 0,
            skipped: 0,
            hs: Vec::new(),
            hs_mark: None,
            hs_skip: 0,
            ccs: false,
            tls13: false,
            skim: false,
            skip: 0,
            skip_type: ContentType(0),
            skip_len: 0,
            cipher: None,
            decrypt_left: 0,
            rekeyed: false,
            limits,
        }
    }

    /// Applies the consumer's answer to an item.
    pub(super) fn apply(&mut self, action: Action) {
        match action {
            Action::Nothing => return,
            Action::Tls13(cipher) => {
                self.tls13 = true;
                if let Some((c, budget)) = cipher {
                    self.cipher = Some(c);
                    self.decrypt_left = budget;
                }
            }
            Action::Install(c, budget) => {
                self.cipher = Some(c);
                self.decrypt_left = budget;
            }
            Action::Update(c) => self.cipher = Some(c),
            Action::Stop => self.cipher = None,
        }
        self.rekeyed = true;
    }

    /// TLS 1.3 records are being decrypted: the handshake, or the records after it where
    /// post-handshake messages may come.
    pub(super) fn decrypting_tls13(&self) -> bool {
        self.cipher.as_ref().is_some_and(|c| c.is_tls13())
    }

    /// Skim mode keeps a TLS 1.2 encrypted alert whole, so it can be decrypted: a few bytes.
    fn keep_whole(&self, h: &RecordHeader) -> bool {
        self.cipher.is_some() && h.content_type == ContentType::ALERT && h.len <= 64
    }

    /// Found TLS (or settled into records), as opposed to still looking or given up.
    pub(super) fn in_records(&self) -> bool {
        self.state == State::Records
    }

    /// From now on only count records: a record that spans `feed` calls is skipped rather
    /// than buffered, and partial handshake messages are dropped. For a connection whose
    /// handshake is over: its alerts (encrypted) and application data are still seen, at the
    /// cost of a 5-byte header buffer.
    pub(super) fn skim(&mut self) {
        self.skim = true;
        // Skimming skips records split across feeds: TLS 1.3 sequence numbers would be lost.
        if self.decrypting_tls13() {
            self.cipher = None;
        }
        self.hs = Vec::new();
        self.hs_mark = None;
        self.hs_skip = 0;
        if self.state == State::Records && self.pending.len() > HEADER_LEN {
            if let Some(h) = RecordHeader::read(&self.pending) {
                self.skip = h.total_len() - self.pending.len();
                self.skip_type = h.content_type;
                self.skip_len = h.len;
            }
            self.pending = Vec::new();
        } else {
            self.pending.shrink_to(HEADER_LEN);
        }
    }

    /// Not TLS, or stopped at bytes that are not: later bytes are of no use.
    pub(super) fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Bytes held in buffers (partial record, partial message, scan tail).
    pub(super) fn buffered(&self) -> usize {
        self.pending.capacity() + self.hs.capacity()
    }

    /// Takes the next in-order bytes of this direction.
    pub(super) fn feed(&mut self, data: &[u8], mark: M, f: &mut impl FnMut(Item<'_>, M) -> Action) {
        let base = self.fed;
        self.fed += data.len() as u64;
        match self.state {
            State::Stopped => {}
            State::Records => self.records(data, mark, base, f),
            State::Start | State::Scanning | State::Sslv2 { .. } => {
                self.pending.extend_from_slice(data);
                self.pending_mark = Some(later(self.pending_mark, mark));
                self.prefix(f);
            }
        }
    }

    /// Bytes are missing before the next `feed`: record boundaries are lost, so look for a
    /// fresh handshake record as after an upgrade. Returns the partial message dropped, if any.
    pub(super) fn gap(&mut self) -> Option<TlsError> {
        let dropped = self.incomplete();
        self.pending.clear();
        self.pending_mark = None;
        self.hs.clear();
        self.hs_mark = None;
        self.hs_skip = 0;
        if self.state != State::Stopped {
            self.state = State::Scanning;
        }
        dropped
    }

    /// What is left half-done: a record or handshake message the stream ended inside.
    pub(super) fn incomplete(&self) -> Option<TlsError> {
        if self.state != State::Records {
            return None;
        }
        if let Some(h) = RecordHeader::read(&self.pending) {
            return Some(TlsError::Incomplete {
                what: "record",
                have: self.pending.len(),
                need: h.total_len(),
            });
        }
        if self.hs.len() >= 4 {
            return Some(TlsError::Incomplete {
                what: HandshakeType(self.hs[0])
                    .name()
                    .unwrap_or("handshake message"),
                have: self.hs.len(),
                need: 4 + be24(&self.hs[1..4]),
            });
        }
        None
    }

    /// Start, Scanning or Sslv2: everything not yet in records is in `pending`.
    fn prefix(&mut self, f: &mut impl FnMut(Item<'_>, M) -> Action) {
        let Some(mark) = self.pending_mark else {
            return;
        };
        loop {
            match self.state {
                State::Start => {
                    let Some(h) = RecordHeader::read(&self.pending) else {
                        return;
                    };
                    if h.is_valid() {
                        return self.enter_records(0, mark, f);
                    }
                    self.state = match sslv2_hello_len(&self.pending) {
                        Some(len) => State::Sslv2 { total: 2 + len },
                        None => State::Scanning,
                    };
                }
                State::Sslv2 { total } => {
                    if self.pending.len() < total {
                        return;
                    }
                    f(Item::Sslv2ClientHello(&self.pending[2..total]), mark);
                    return self.enter_records(total, mark, f);
                }
                State::Scanning => match scan::find_start(&self.pending) {
                    // The window bounds where TLS may start, however the bytes were cut:
                    // a record past it is not looked at, in one chunk or many.
                    Found::At(i) if self.skipped + i as u64 <= self.limits.scan_window => {
                        self.skipped += i as u64;
                        return self.enter_records(i, mark, f);
                    }
                    Found::At(_) => {
                        self.state = State::Stopped;
                        self.pending = Vec::new();
                        return;
                    }
                    Found::Not { keep_from } => {
                        self.skipped += keep_from as u64;
                        self.pending.drain(..keep_from);
                        if self.skipped > self.limits.scan_window {
                            self.state = State::Stopped;
                            self.pending = Vec::new();
                        }
                        return;
                    }
                },
                State::Records | State::Stopped => return,
            }
        }
    }

    /// Switches to record parsing at `pending[at..]`.
    fn enter_records(&mut self, at: usize, mark: M, f: &mut impl FnMut(Item<'_>, M) -> Action) {
        self.state = State::Records;
        f(
            Item::Start {
                plaintext: self.skipped,
            },
            mark,
        );
        let mut rest = std::mem::take(&mut self.pending);
        rest.drain(..at);
        self.pending_mark = None;
        let base = self.fed - rest.len() as u64;
        self.records(&rest, mark, base, f);
    }

    /// Records state: completes a buffered partial record, then parses whole records straight
    /// from `data`, buffering the tail.
    fn records(
        &mut self,
        mut data: &[u8],
        mark: M,
        base: u64,
        f: &mut impl FnMut(Item<'_>, M) -> Action,
    ) {
        let mut pos = base;
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
            pos += n as u64;
            if self.skip > 0 {
                return;
            }
            self.skipped(mark, f);
        }
        if !self.pending.is_empty() {
            let rec_start = base - self.pending.len() as u64;
            if self.pending.len() < HEADER_LEN {
                let n = (HEADER_LEN - self.pending.len()).min(data.len());
                self.pending.extend_from_slice(&data[..n]);
                data = &data[n..];
                pos += n as u64;
            }
            let Some(h) = RecordHeader::read(&self.pending) else {
                self.pending_mark = Some(later(self.pending_mark, mark));
                return;
            };
            if !h.is_valid() {
                return self.not_tls(h, rec_start, mark, f);
            }
            if self.skim && h.len > 0 && !self.keep_whole(&h) {
                self.pending.clear();
                self.skip = h.len.into();
                self.skip_type = h.content_type;
                self.skip_len = h.len;
                return self.records(data, mark, pos, f);
            }
            let n = (h.total_len() - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            pos += n as u64;
            let m = later(self.pending_mark, mark);
            if self.pending.len() < h.total_len() {
                self.pending_mark = Some(m);
                return;
            }
            let rec = std::mem::take(&mut self.pending);
            self.pending_mark = None;
            self.record(h, &rec[HEADER_LEN..], m, f);
            self.pending = rec; // keep the allocation
            self.pending.clear();
        }
        while let Some(h) = RecordHeader::read(data) {
            if !h.is_valid() {
                return self.not_tls(h, pos, mark, f);
            }
            if data.len() < h.total_len() {
                if self.skim && !self.keep_whole(&h) {
                    self.skip = h.total_len() - data.len();
                    self.skip_type = h.content_type;
                    self.skip_len = h.len;
                    return;
                }
                break;
            }
            self.record(h, &data[HEADER_LEN..h.total_len()], mark, f);
            data = &data[h.total_len()..];
            pos += h.total_len() as u64;
        }
        self.pending.extend_from_slice(data);
        self.pending_mark = Some(mark);
    }

    /// Skim mode: the record whose payload was skipped is complete.
    fn skipped(&mut self, mark: M, f: &mut impl FnMut(Item<'_>, M) -> Action) {
        // Only TLS 1.2 ciphers live in skim mode: count the record for the sequence number.
        if let Some(c) = &mut self.cipher {
            c.skip();
        }
        let item = match self.skip_type {
            ContentType::APPLICATION_DATA => Item::ApplicationData {
                len: self.skip_len,
                decrypted: false,
            },
            // Its two bytes were not kept: report it as an alert of unknown content.
            ContentType::ALERT => Item::Alert {
                alert: None,
                decrypted: false,
            },
            ContentType::HANDSHAKE if self.ccs => Item::EncryptedHandshake,
            ContentType::CHANGE_CIPHER_SPEC => {
                self.ccs |= !self.tls13;
                Item::ChangeCipherSpec
            }
            _ => return,
        };
        let a = f(item, mark);
        self.apply(a);
    }

    fn not_tls(
        &mut self,
        h: RecordHeader,
        offset: u64,
        mark: M,
        f: &mut impl FnMut(Item<'_>, M) -> Action,
    ) {
        self.state = State::Stopped;
        self.pending = Vec::new();
        let err = if h.content_type.is_known() && h.version.is_record_version() {
            TlsError::RecordTooLong {
                len: h.len.into(),
                max: MAX_RECORD_LEN,
                offset,
            }
        } else {
            TlsError::NotTls {
                offset,
                header: h.bytes(),
            }
        };
        f(Item::Error(err), mark);
    }

    /// One complete record.
    fn record(
        &mut self,
        h: RecordHeader,
        payload: &[u8],
        mark: M,
        f: &mut impl FnMut(Item<'_>, M) -> Action,
    ) {
        if self.cipher.is_some() && self.protected(h, payload, mark, f) {
            return;
        }
        match h.content_type {
            ContentType::CHANGE_CIPHER_SPEC => {
                if !self.tls13 {
                    self.ccs = true;
                }
                let a = f(Item::ChangeCipherSpec, mark);
                self.apply(a);
            }
            ContentType::ALERT => {
                let alert = match payload {
                    [level, desc] if !self.ccs => Some(Alert {
                        level: AlertLevel(*level),
                        description: AlertDescription(*desc),
                    }),
                    _ => None,
                };
                f(
                    Item::Alert {
                        alert,
                        decrypted: false,
                    },
                    mark,
                );
            }
            ContentType::HANDSHAKE if self.ccs => {
                f(Item::EncryptedHandshake, mark);
            }
            ContentType::HANDSHAKE => self.handshake(payload, mark, false, f),
            ContentType::APPLICATION_DATA => {
                f(
                    Item::ApplicationData {
                        len: h.len,
                        decrypted: false,
                    },
                    mark,
                );
            }
            _ => {
                f(Item::Heartbeat, mark);
            }
        }
    }

    /// A record while a cipher is installed. TLS 1.3: application data records are opened
    /// (ChangeCipherSpec and plaintext alerts stay plaintext); TLS 1.2: alerts are opened, the
    /// others only counted. Returns false when the record is left to the plaintext path
    /// (not opened, or it did not open).
    fn protected(
        &mut self,
        h: RecordHeader,
        payload: &[u8],
        mark: M,
        f: &mut impl FnMut(Item<'_>, M) -> Action,
    ) -> bool {
        let Some(mut c) = self.cipher.take() else {
            return false;
        };
        let tls13 = c.is_tls13();
        let wanted = if tls13 {
            h.content_type == ContentType::APPLICATION_DATA
        } else {
            h.content_type == ContentType::ALERT
        };
        if !wanted || self.decrypt_left == 0 {
            if !tls13 {
                c.skip();
            }
            if self.decrypt_left > 0 || !tls13 {
                self.cipher = Some(c);
            }
            return false;
        }
        self.rekeyed = false;
        let (typ, plain) = match c.open(&h, payload) {
            Ok(opened) => opened,
            Err(e) => {
                f(
                    Item::Error(TlsError::Undecryptable {
                        seq: e.seq,
                        len: h.len.into(),
                    }),
                    mark,
                );
                return false;
            }
        };
        self.decrypt_left -= 1;
        match typ {
            ContentType::HANDSHAKE => self.handshake(plain, mark, true, f),
            ContentType::ALERT => {
                let alert = match plain {
                    [level, desc] => Some(Alert {
                        level: AlertLevel(*level),
                        description: AlertDescription(*desc),
                    }),
                    _ => None,
                };
                let a = f(
                    Item::Alert {
                        alert,
                        decrypted: alert.is_some(),
                    },
                    mark,
                );
                self.apply(a);
            }
            ContentType::APPLICATION_DATA => {
                let a = f(
                    Item::ApplicationData {
                        len: h.len,
                        decrypted: true,
                    },
                    mark,
                );
                self.apply(a);
            }
            _ => {}
        }
        if !self.rekeyed && self.decrypt_left > 0 {
            self.cipher = Some(c);
        }
        true
    }

    /// Handshake record payload: emits every message it completes.
    fn handshake(
        &mut self,
        mut payload: &[u8],
        mark: M,
        decrypted: bool,
        f: &mut impl FnMut(Item<'_>, M) -> Action,
    ) {
        if self.hs_skip > 0 {
            let n = usize::try_from(self.hs_skip).map_or(payload.len(), |s| s.min(payload.len()));
            self.hs_skip -= n as u64;
            payload = &payload[n..];
        }
        if payload.is_empty() {
            return;
        }
        if self.hs.is_empty() {
            // Fast path: whole messages straight from the record.
            let rest = self.messages(payload, mark, decrypted, f);
            let tail = &payload[payload.len() - rest..];
            self.hs.extend_from_slice(tail);
            self.hs_mark = (!tail.is_empty()).then_some(mark);
            return;
        }
        let m = later(self.hs_mark, mark);
        self.hs.extend_from_slice(payload);
        let buf = std::mem::take(&mut self.hs);
        let rest = self.messages(&buf, m, decrypted, f);
        self.hs = buf;
        let done = self.hs.len() - rest;
        self.hs.drain(..done);
        // The bytes left over all came from this record: they start a message of their own.
        self.hs_mark = (!self.hs.is_empty()).then_some(mark);
    }

    /// Emits the complete messages at the front of `b`; returns how many bytes remain.
    /// A message longer than the limit is reported and skipped, never buffered.
    fn messages(
        &mut self,
        mut b: &[u8],
        mark: M,
        decrypted: bool,
        f: &mut impl FnMut(Item<'_>, M) -> Action,
    ) -> usize {
        while b.len() >= 4 {
            let typ = HandshakeType(b[0]);
            let len = be24(&b[1..4]);
            if len > self.limits.max_handshake {
                f(
                    Item::Error(TlsError::HandshakeTooLarge {
                        msg: typ,
                        claimed: len,
                        max: self.limits.max_handshake,
                    }),
                    mark,
                );
                let have = (b.len() - 4) as u64;
                self.hs_skip = len as u64 - have.min(len as u64);
                return 0;
            }
            if b.len() < 4 + len {
                break;
            }
            let body = &b[4..4 + len];
            let a = f(
                Item::Handshake {
                    typ,
                    body,
                    decrypted,
                },
                mark,
            );
            self.apply(a);
            b = &b[4 + len..];
        }
        b.len()
    }
}

fn be24(b: &[u8]) -> usize {
    usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2])
}

/// The body length of an SSLv2-format ClientHello at the start of `b` (2-byte header with the
/// high bit set, message type 1, version SSLv2 or SSLv3+).
fn sslv2_hello_len(b: &[u8]) -> Option<usize> {
    let &[h0, h1, typ, vmaj, vmin, ..] = b else {
        return None;
    };
    let len = usize::from(h0 & 0x7f) << 8 | usize::from(h1);
    let version_ok = (vmaj == 0 && vmin == 2) || (vmaj == 3 && vmin <= 4);
    (h0 & 0x80 != 0 && typ == 1 && version_ok && len >= 9).then_some(len)
}
