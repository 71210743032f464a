//! The per-connection state machine: two directions of bytes in, `Event`s out, and a running
//! `Progress` (roles, version, cipher, who sent what last) for the session summary.
//!
//! The TLS server is the side that sent ServerHello, not the side that accepted the TCP
//! connection (GridFTP data channels, for one, reverse them); before any ServerHello the
//! ClientHello's sender is taken as the client. For TLS <= 1.2 the handshake is done once both
//! sides have sent ChangeCipherSpec and their (encrypted) Finished; a TLS 1.3 (or draft)
//! ServerHello ends what can be seen: certificates are encrypted and the session says so.
//! What a connection's outcome means (failed, incomplete, the reason) is `analysis`'s call; this
//! module keeps the facts it needs.
//!
//! Sessions end as they really do: a side that sent an alert after the handshake (its
//! close_notify, encrypted) and then speaks cleartext has left TLS (FTP's CCC) - a fact in
//! `Progress::left_tls`, not a parse error - and a connection first seen mid-session (no
//! hello in the capture) has its encrypted alerts counted, never taken as a failed handshake.
//!
//! With a key log (`Session::with_keys`) that holds the connection's client random, it also
//! decides when each direction's records change keys, and the readers open them: TLS 1.3
//! handshake keys at ServerHello, the first application generation at each side's Finished,
//! the next one at each KeyUpdate; TLS 1.2 keys at each side's ChangeCipherSpec. TLS 1.3
//! handshake messages then count as they do in TLS 1.2 (certificates, CertificateRequest,
//! Finished: done once both sides sent theirs), and after a side's Finished its first
//! [`POST_HANDSHAKE_RECORDS`] records are still opened, for post-handshake CertificateRequest,
//! Certificate and KeyUpdate. Without keys nothing of this runs: the cost of a connection is
//! what it was.

use std::fmt;
use std::sync::Arc;

use super::decrypt::{RecordCipher, Suite};
use super::keylog::{KeyLog, Secret, SecretKind, Secrets};
use super::keyschedule::next_traffic_secret;
use super::messages::{
    CertificateRequest, ClientHello, ServerHello, certificate_list, certificate_list_tls13,
};
use super::reader::{Action, DirReader, Item};
use super::registry::{CipherSuite, HandshakeType, ProtocolVersion};
use super::{Alert, Limits, Side, TlsError};
use crate::sftunnel::TlsSide;

/// Records a TLS 1.3 handshake cipher may open: many times what a handshake flight needs (a
/// 1 MB certificate chain is 64 records), so only a stream that never ends its handshake
/// reaches it.
const HANDSHAKE_RECORDS: u32 = 256;

/// Records per direction decrypted after that side's Finished, looking for post-handshake
/// messages (CertificateRequest, Certificate, CertificateVerify, Finished, KeyUpdate,
/// NewSessionTicket); later records are only counted. Post-handshake authentication comes in
/// the first exchanges of a connection (an FMC asks for the device's certificate right after
/// the handshake), and a direction that sends many records is past it. A KeyUpdate does not
/// renew the budget.
pub const POST_HANDSHAKE_RECORDS: u32 = 32;

/// TLS 1.2 alert records a direction may decrypt (a session has one or two).
const TLS12_ALERTS: u32 = 16;

/// The TLS 1.3 secrets a whole session needs.
const TLS13_SECRETS: [SecretKind; 4] = [
    SecretKind::ClientHandshake,
    SecretKind::ServerHandshake,
    SecretKind::ClientTraffic0,
    SecretKind::ServerTraffic0,
];

/// A step a side took, for "after which message" in reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A handshake message of this type, plaintext or decrypted (an SSLv2-format hello is a
    /// ClientHello; a HelloRetryRequest is `HELLO_RETRY_REQUEST` in either of its forms).
    Handshake(HandshakeType),
    /// A ChangeCipherSpec record (in TLS 1.3 the compatibility one too).
    ChangeCipherSpec,
    /// TLS <= 1.2: the first handshake record after ChangeCipherSpec; TLS 1.3: the decrypted
    /// Finished.
    Finished,
    /// The side's first application data record; later ones are no step of their own
    /// (undecrypted TLS 1.3 records are each also `Protected`).
    ApplicationData,
    /// TLS 1.3 protected records that were not decrypted (handshake or application data).
    Protected,
    /// An alert record: plaintext, encrypted or decrypted.
    Alert,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Handshake(t) => t.fmt(f),
            Step::ChangeCipherSpec => f.write_str("ChangeCipherSpec"),
            Step::Finished => f.write_str("Finished"),
            Step::ApplicationData => f.write_str("application data"),
            Step::Protected => f.write_str("encrypted records"),
            Step::Alert => f.write_str("alert"),
        }
    }
}

/// Something that happened on the wire, with the side that sent it and the caller's mark of
/// the chunk that completed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<M> {
    /// The side that sent it; for an `Error` from `Session::gap` or `Session::finish`, the
    /// side whose stream it is in.
    pub side: Side,
    /// The caller's mark of the chunk that completed it (the latest of the chunks a message
    /// spans); from `Session::gap` or `Session::finish`, the mark given to it.
    pub mark: M,
    /// What happened: a message, a record, a change of state, or an error.
    pub kind: EventKind,
}

/// What a [`Session`] reports. One side's events come in the order of its bytes; the two
/// sides interleave in the order of the `feed` calls.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// This side's TLS starts here, after `plaintext` bytes of another protocol (0 if none).
    /// It comes again when the stream finds records again after a gap.
    Start {
        /// Plaintext bytes skipped while looking for TLS in this direction, all searches so
        /// far added up.
        plaintext: u64,
    },
    /// A ClientHello that parsed, plaintext or SSLv2-format (the second one after a
    /// HelloRetryRequest too).
    ClientHello(ClientHello),
    /// Also a HelloRetryRequest (`retry_request`).
    ServerHello(ServerHello),
    /// A Certificate message, possibly empty (a client with no certificate): TLS <= 1.2 in
    /// plaintext, or TLS 1.3 `decrypted` with the key log, `post_handshake` when it came
    /// after its sender's Finished (post-handshake authentication).
    Certificate {
        /// The sender's TLS role (`Progress::role`); `None` if no hello was seen.
        role: Option<TlsSide>,
        /// The DER certificates in the sender's order (the leaf first, in a chain as RFC 5246
        /// and 8446 want it); of a malformed list, those that parsed, and an `Error` follows.
        ders: Vec<Vec<u8>>,
        /// It came out of TLS 1.3 records the key log opened.
        decrypted: bool,
        /// Its sender had already sent its Finished.
        post_handshake: bool,
    },
    /// TLS <= 1.2, or TLS 1.3 decrypted (its certificate types are then empty).
    CertificateRequest(CertificateRequest),
    /// Any other handshake message (ServerKeyExchange, ServerHelloDone, and in decrypted TLS
    /// 1.3 EncryptedExtensions, CertificateVerify, Finished, NewSessionTicket, KeyUpdate).
    Message(HandshakeType),
    /// A ChangeCipherSpec record; in TLS 1.3 the compatibility one, which changes nothing.
    ChangeCipherSpec,
    /// The first encrypted handshake record after this side's ChangeCipherSpec: its Finished.
    EncryptedHandshake,
    /// An alert record from this side.
    Alert {
        /// `None` when encrypted and not opened (after the sender's ChangeCipherSpec, a record
        /// that is not 2 bytes long, or one skimmed past): an alert was sent, its content is
        /// unknowable.
        alert: Option<Alert>,
        /// The last step the other side had taken; `None` if it had taken none.
        after: Option<Step>,
        /// It was encrypted and the key log opened it.
        decrypted: bool,
    },
    /// This side's first application data record.
    ApplicationData,
    /// TLS 1.3 or a draft was negotiated and no key log opens it: the rest of the handshake,
    /// certificates included, is encrypted.
    /// Reported once per connection, from the ServerHello's side.
    EncryptedCertificates {
        /// The negotiated version (`TLSv1.3`, or a draft).
        version: ProtocolVersion,
    },
    /// Both sides sent their Finished (TLS <= 1.2: after ChangeCipherSpec; TLS 1.3:
    /// decrypted).
    HandshakeDone,
    /// This side closed its TLS (an alert after the handshake) and went on in cleartext at
    /// this stream offset, as FTP does after CCC.
    LeftTls {
        /// Where the cleartext starts, as `TlsError::NotTls`'s offset.
        offset: u64,
    },
    /// A message that does not parse, a record or message cut by the end of the capture or
    /// a gap, a record that does not decrypt, or bytes that are not TLS. After `NotTls` and
    /// `RecordTooLong` the direction is not read any further; after the others it goes on.
    Error(TlsError),
}

/// The protected TLS 1.3 records (after ServerHello) that were not decrypted: what can be
/// said of a handshake without its keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protected {
    /// Records per side (`Side::index`).
    pub records: [u32; 2],
    /// Their payload bytes per side (ciphertext; the 5-byte headers not counted).
    pub bytes: [u64; 2],
    /// The payload length of each side's last record: 19 is an encrypted alert (2 bytes, the
    /// inner content type, a 16-byte tag).
    pub last_len: [u16; 2],
    /// Turns: runs of records from one side before the other sends (the server's flight is
    /// turn 1, the client's flight turn 2, ...).
    pub turns: u32,
    /// Records in the current turn.
    pub in_turn: u32,
    /// Whose turn it is: the sender of the last record; `None` before the first.
    pub last: Option<Side>,
}

impl Protected {
    /// Counts one record of `len` payload bytes from `side`.
    pub fn add(&mut self, side: Side, len: u16) {
        let i = side.index();
        self.records[i] += 1;
        self.bytes[i] += u64::from(len);
        self.last_len[i] = len;
        if self.last == Some(side) {
            self.in_turn += 1;
        } else {
            self.turns += 1;
            self.in_turn = 1;
            self.last = Some(side);
        }
    }
}

/// What decryption did for a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decryption {
    /// A key log was given.
    pub keylog: bool,
    /// TLS 1.3 secrets the connection needs that no key log line gives (all four without a
    /// key log); TLS 1.2: `CLIENT_RANDOM` when a key log was given without it.
    pub missing: Vec<SecretKind>,
    /// Sides (by `Side::index`) some of whose records were opened.
    pub decrypted: [bool; 2],
    /// Sides where a record did not open with the logged secret.
    pub failed: [bool; 2],
    /// The suite is not one this tool can open (CCM, 3DES, ...).
    pub unsupported_suite: bool,
}

/// What is known about the connection so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// The side that sent ServerHello.
    pub server: Option<Side>,
    /// The side that sent the (first) ClientHello.
    pub client_hello_from: Option<Side>,
    /// The `server_name` host of the first ClientHello that carried one.
    pub sni: Option<String>,
    /// The first ClientHello's random: what a key log is keyed by.
    pub client_random: Option<[u8; 32]>,
    /// Negotiated version (ServerHello's supported_versions, else its version).
    pub version: Option<ProtocolVersion>,
    /// The suite of the last ServerHello (or HelloRetryRequest) that named one.
    pub cipher: Option<CipherSuite>,
    /// A HelloRetryRequest was seen (either form): the client had to hello again.
    pub retry_request: bool,
    /// Certificates in each side's last Certificate message (`Some(0)`: an empty one), by
    /// `Side as usize`.
    pub certificates: [Option<usize>; 2],
    /// Each side's last Certificate came after its Finished (TLS 1.3 post-handshake).
    pub post_handshake_certificate: [bool; 2],
    /// A CertificateRequest was seen: in plaintext (TLS <= 1.2, even one that does not
    /// parse), or decrypted TLS 1.3 (one that parses).
    pub certificate_requested: bool,
    /// A CertificateRequest came after the server's Finished (TLS 1.3 post-handshake
    /// authentication, decrypted).
    pub post_handshake_request: bool,
    /// Each side sent ChangeCipherSpec (in TLS 1.3 the compatibility one), by `Side::index`.
    pub change_cipher_spec: [bool; 2],
    /// Each side sent its Finished (`Step::Finished`), by `Side::index`.
    pub finished: [bool; 2],
    /// Each side sent application data, by `Side::index`; in TLS 1.3 every protected record
    /// not decrypted counts, the encrypted handshake too.
    pub application_data: [bool; 2],
    /// Alert records per side (plaintext, encrypted or decrypted), by `Side::index`.
    pub alerts: [u32; 2],
    /// The first fatal alert: plaintext fatal, decrypted fatal, or an encrypted one before the
    /// handshake was done (TLS <= 1.2).
    pub fatal_alert: Option<FatalAlert>,
    /// Each side's last step, by `Side as usize`.
    pub last: [Option<Step>; 2],
    /// Where each side went back to cleartext after closing its TLS (stream offset), by
    /// `Side as usize`.
    pub left_tls: [Option<u64>; 2],
    /// The last step on the wire, either side.
    pub latest: Option<(Side, Step)>,
    /// The handshake is done: both sides' Finished were seen (TLS <= 1.2: each after its
    /// ChangeCipherSpec), and `EventKind::HandshakeDone` was reported.
    pub done: bool,
    /// TLS 1.3: the protected records that were not decrypted.
    pub protected: Protected,
    /// What the key log did for this connection, filled in from ServerHello on.
    pub decryption: Decryption,
}

impl Progress {
    /// The TLS role of `side`: from ServerHello, else from ClientHello.
    pub fn role(&self, side: Side) -> Option<TlsSide> {
        if let Some(s) = self.server {
            return Some(if s == side {
                TlsSide::Server
            } else {
                TlsSide::Client
            });
        }
        self.client_hello_from.map(|c| {
            if c == side {
                TlsSide::Client
            } else {
                TlsSide::Server
            }
        })
    }

    /// The side playing `role`, if known.
    pub fn side_of(&self, role: TlsSide) -> Option<Side> {
        [Side::A, Side::B]
            .into_iter()
            .find(|&s| self.role(s) == Some(role))
    }

    fn took(&mut self, side: Side, step: Step) {
        self.last[side.index()] = Some(step);
        self.latest = Some((side, step));
    }

    /// TLS 1.3 or a draft was negotiated (or asked for by a HelloRetryRequest).
    pub fn is_tls13(&self) -> bool {
        self.version.is_some_and(|v| v.is_tls13())
    }

    /// A hello of this connection is in the capture: its handshake began while capturing
    /// (otherwise it is a session already under way when the capture started).
    pub fn hello_seen(&self) -> bool {
        self.client_hello_from.is_some() || self.server.is_some()
    }
}

/// The alert that ended a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatalAlert {
    /// The side that sent it.
    pub side: Side,
    /// `None`: encrypted.
    pub alert: Option<Alert>,
    /// The other side's last step before it.
    pub after: Option<Step>,
}

/// What a key log gives one connection.
#[derive(Debug)]
struct Keys {
    log: Arc<KeyLog>,
    /// The secrets logged for this connection's client random, once its ClientHello is seen.
    secrets: Option<Secrets>,
    suite: Option<Suite>,
    /// TLS 1.3: each side's current application traffic secret, by `Side::index`.
    app: [Option<Secret>; 2],
    /// TLS 1.2: each side's cipher, made at ServerHello, installed at its ChangeCipherSpec.
    tls12: [Option<Box<RecordCipher>>; 2],
    /// TLS 1.3 handshake ciphers were installed.
    tls13: bool,
}

impl Keys {
    fn secret(&self, kind: SecretKind) -> Option<&Secret> {
        self.secrets.as_ref()?.get(kind)
    }

    /// A TLS 1.3 cipher for `secret` in the negotiated suite.
    fn tls13_cipher(&self, secret: &[u8]) -> Option<Box<RecordCipher>> {
        RecordCipher::tls13(self.suite?, secret).map(Box::new)
    }
}

/// The state both directions share.
#[derive(Debug, Default)]
struct State {
    progress: Progress,
    encrypted_reported: bool,
    keys: Option<Box<Keys>>,
    /// Some direction entered the record stream at some point (it may have left it since).
    tls_seen: bool,
}

/// What the readers are to do after an item: the one that produced it, and the other.
#[derive(Default)]
struct Reply {
    me: Action,
    peer: Action,
}

/// One connection's TLS, both directions.
#[derive(Debug)]
pub struct Session<M> {
    dirs: [DirReader<M>; 2],
    state: State,
}

impl<M: Copy + Ord> Default for Session<M> {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl<M: Copy + Ord> Session<M> {
    /// A session without a key log: nothing is decrypted, and a TLS 1.3 handshake is reported
    /// as `EncryptedCertificates`.
    pub fn new(limits: Limits) -> Self {
        Self {
            dirs: [DirReader::new(limits), DirReader::new(limits)],
            state: State::default(),
        }
    }

    /// A session that decrypts what `keys` holds secrets for (looked up by the ClientHello's
    /// random).
    pub fn with_keys(limits: Limits, keys: Arc<KeyLog>) -> Self {
        let mut s = Self::new(limits);
        s.state.keys = Some(Box::new(Keys {
            log: keys,
            secrets: None,
            suite: None,
            app: [None, None],
            tls12: [None, None],
            tls13: false,
        }));
        s
    }

    /// What is known so far; all a summary needs once `is_finished()`.
    pub fn progress(&self) -> &Progress {
        &self.state.progress
    }

    /// `side`'s TLS role, as `Progress::role`: from ServerHello, else ClientHello; `None`
    /// before either.
    pub fn role(&self, side: Side) -> Option<TlsSide> {
        self.state.progress.role(side)
    }

    /// Bytes this session holds in buffers: what keeping it costs.
    pub fn buffered(&self) -> usize {
        self.dirs.iter().map(|d| d.buffered()).sum()
    }

    /// Some direction has been recognised as TLS.
    pub fn is_tls(&self) -> bool {
        self.state.tls_seen || self.dirs.iter().any(|d| d.in_records())
    }

    /// Nothing more of interest can come: the handshake is done (and no direction is still
    /// decrypting its first records after it), TLS 1.3 hid the rest, or a fatal alert ended
    /// it. The caller may stop feeding and keep only `progress()`.
    pub fn is_finished(&self) -> bool {
        let p = &self.state.progress;
        if p.fatal_alert.is_some() {
            return true;
        }
        if self.dirs.iter().any(|d| d.decrypting_tls13()) {
            return false;
        }
        p.done || self.state.encrypted_reported || self.state.keys.as_ref().is_some_and(|k| k.tls13)
    }

    /// Stop buffering: from now on records are only counted (alerts, application data), so a
    /// finished connection costs a few bytes. Call it once `is_finished()`.
    pub fn skim(&mut self) {
        for d in &mut self.dirs {
            d.skim();
        }
    }

    /// Neither direction can yield anything more (both are not TLS): the caller may stop
    /// delivering bytes.
    pub fn is_dead(&self) -> bool {
        self.dirs.iter().all(|d| d.is_stopped())
    }

    /// The next in-order bytes `side` sent; `mark` is the caller's (frame, time) of the chunk.
    pub fn feed(&mut self, side: Side, data: &[u8], mark: M, out: &mut Vec<Event<M>>) {
        let [a, b] = &mut self.dirs;
        let (me, peer) = match side {
            Side::A => (a, b),
            Side::B => (b, a),
        };
        let state = &mut self.state;
        me.feed(data, mark, &mut |item, mark| {
            state.tls_seen |= matches!(item, Item::Start { .. });
            let reply = on_item(state, side, item, mark, out);
            peer.apply(reply.peer);
            reply.me
        });
    }

    /// Bytes of `side` were lost (a TCP gap): resynchronise on the next handshake record.
    pub fn gap(&mut self, side: Side, mark: M, out: &mut Vec<Event<M>>) {
        if let Some(e) = self.dirs[side.index()].gap() {
            out.push(Event {
                side,
                mark,
                kind: EventKind::Error(e),
            });
        }
    }

    /// The capture ended: reports a record or handshake message left half-done on either side.
    pub fn finish(&self, mark: M, out: &mut Vec<Event<M>>) {
        for side in [Side::A, Side::B] {
            if let Some(e) = self.dirs[side.index()].incomplete() {
                out.push(Event {
                    side,
                    mark,
                    kind: EventKind::Error(e),
                });
            }
        }
    }
}

/// Applies one item to the progress and emits its events. Tells the readers what changes:
/// TLS 1.3 negotiated (ChangeCipherSpec is then a no-op), a cipher to install or drop.
fn on_item<M: Copy>(
    st: &mut State,
    side: Side,
    item: Item<'_>,
    mark: M,
    out: &mut Vec<Event<M>>,
) -> Reply {
    let State {
        progress: p,
        encrypted_reported,
        keys,
        ..
    } = st;
    let i = side.index();
    let mut emit = |kind| out.push(Event { side, mark, kind });
    let mut reply = Reply::default();
    match item {
        Item::Start { plaintext } => emit(EventKind::Start { plaintext }),
        Item::Sslv2ClientHello(body) => {
            p.took(side, Step::Handshake(HandshakeType::CLIENT_HELLO));
            match ClientHello::parse_sslv2(body) {
                Ok(h) => {
                    p.client_hello_from.get_or_insert(side);
                    emit(EventKind::ClientHello(h));
                }
                Err(e) => emit(EventKind::Error(e)),
            }
        }
        Item::Handshake {
            typ,
            body,
            decrypted: true,
        } => {
            return decrypted_handshake(p, keys, side, typ, body, &mut emit);
        }
        Item::Handshake {
            typ,
            body,
            decrypted: false,
        } => {
            p.took(side, Step::Handshake(typ));
            match typ {
                HandshakeType::CLIENT_HELLO => match ClientHello::parse(body) {
                    Ok(h) => {
                        p.client_hello_from.get_or_insert(side);
                        if p.sni.is_none() {
                            p.sni.clone_from(&h.sni);
                        }
                        // A second ClientHello (after HelloRetryRequest) has the same random.
                        if p.client_random.is_none() {
                            p.client_random = Some(h.random);
                            if let Some(k) = keys.as_deref_mut() {
                                k.secrets = k.log.get(&h.random).cloned();
                            }
                        }
                        emit(EventKind::ClientHello(h));
                    }
                    Err(e) => emit(EventKind::Error(e)),
                },
                HandshakeType::SERVER_HELLO | HandshakeType::HELLO_RETRY_REQUEST => {
                    let parsed = if typ == HandshakeType::SERVER_HELLO {
                        ServerHello::parse(body)
                    } else {
                        ServerHello::parse_retry_request(body)
                    };
                    match parsed {
                        Ok(sh) => {
                            p.server = Some(side);
                            p.version = Some(sh.version);
                            if sh.cipher_suite.is_some() {
                                p.cipher = sh.cipher_suite;
                            }
                            p.retry_request |= sh.retry_request;
                            if sh.retry_request {
                                // A HelloRetryRequest: not the ServerHello that counts yet.
                                p.took(side, Step::Handshake(HandshakeType::HELLO_RETRY_REQUEST));
                            }
                            let tls13 = sh.version.is_tls13();
                            let version = sh.version;
                            let mut decrypting = false;
                            if tls13 && !sh.retry_request {
                                let [client, server] = start_tls13(p, keys, &sh);
                                decrypting = client.is_some() || server.is_some();
                                reply.me = Action::Tls13(server.map(|c| (c, HANDSHAKE_RECORDS)));
                                reply.peer = Action::Tls13(client.map(|c| (c, HANDSHAKE_RECORDS)));
                            } else if tls13 {
                                reply.me = Action::Tls13(None);
                                reply.peer = Action::Tls13(None);
                            } else if !sh.retry_request {
                                prepare_tls12(p, keys, side, &sh);
                            }
                            let report =
                                tls13 && !sh.retry_request && !decrypting && !*encrypted_reported;
                            emit(EventKind::ServerHello(sh));
                            if report {
                                *encrypted_reported = true;
                                emit(EventKind::EncryptedCertificates { version });
                            }
                        }
                        Err(e) => emit(EventKind::Error(e)),
                    }
                }
                HandshakeType::CERTIFICATE if !p.is_tls13() => {
                    let (ders, err) = certificate_list(body);
                    p.certificates[i] = Some(ders.len());
                    emit(EventKind::Certificate {
                        role: p.role(side),
                        ders,
                        decrypted: false,
                        post_handshake: false,
                    });
                    if let Some(e) = err {
                        emit(EventKind::Error(e));
                    }
                }
                HandshakeType::CERTIFICATE_REQUEST if !p.is_tls13() => {
                    let tls12 = p.version.is_none_or(|v| v >= ProtocolVersion::TLS12);
                    let parsed = CertificateRequest::parse(body, tls12).or_else(|e| {
                        // Without a ServerHello the shape is a guess: try the other one.
                        match p.version {
                            None => CertificateRequest::parse(body, false),
                            Some(_) => Err(e),
                        }
                    });
                    p.certificate_requested = true;
                    match parsed {
                        Ok(r) => emit(EventKind::CertificateRequest(r)),
                        Err(e) => emit(EventKind::Error(e)),
                    }
                }
                _ => emit(EventKind::Message(typ)),
            }
        }
        Item::EncryptedHandshake => {
            if !p.finished[i] {
                p.finished[i] = true;
                p.took(side, Step::Finished);
                emit(EventKind::EncryptedHandshake);
                if p.finished == [true, true] && p.change_cipher_spec == [true, true] && !p.done {
                    p.done = true;
                    emit(EventKind::HandshakeDone);
                }
            }
        }
        Item::ChangeCipherSpec => {
            p.change_cipher_spec[i] = true;
            p.took(side, Step::ChangeCipherSpec);
            if !p.is_tls13()
                && let Some(c) = keys.as_deref_mut().and_then(|k| k.tls12[i].take())
            {
                reply.me = Action::Install(c, TLS12_ALERTS);
            }
            emit(EventKind::ChangeCipherSpec);
        }
        Item::Alert { alert, decrypted } => {
            p.alerts[i] += 1;
            if decrypted {
                p.decryption.decrypted[i] = true;
            }
            // An encrypted alert ends a handshake only if the capture shows one going on: on a
            // connection first seen mid-session it is a closure of a session already set up.
            let fatal = match alert {
                Some(a) => a.level.is_fatal(),
                None => !p.done && !p.is_tls13() && p.hello_seen(),
            };
            let after = p.last[side.other().index()];
            if fatal && p.fatal_alert.is_none() {
                p.fatal_alert = Some(FatalAlert { side, alert, after });
            }
            p.took(side, Step::Alert);
            emit(EventKind::Alert {
                alert,
                after,
                decrypted,
            });
        }
        Item::ApplicationData { len, decrypted } => {
            let hidden = p.is_tls13() && !decrypted;
            if hidden {
                p.protected.add(side, len);
            }
            if !p.application_data[i] {
                p.application_data[i] = true;
                p.took(side, Step::ApplicationData);
                emit(EventKind::ApplicationData);
            }
            if hidden {
                p.took(side, Step::Protected);
            }
        }
        Item::Heartbeat => {}
        Item::Error(TlsError::NotTls { offset, .. }) if left_tls(p, side) => {
            p.left_tls[i] = Some(offset);
            emit(EventKind::LeftTls { offset });
        }
        Item::Error(e) => {
            if matches!(e, TlsError::Undecryptable { .. }) {
                p.decryption.failed[i] = true;
            }
            emit(EventKind::Error(e));
        }
    }
    reply
}

/// Bytes that are not TLS right after `side` closed its TLS: it went back to cleartext. Its
/// last record was an alert (close_notify, encrypted) sent once the session was set up (TLS
/// <= 1.2 done, or application data under TLS 1.3).
fn left_tls(p: &Progress, side: Side) -> bool {
    let i = side.index();
    p.last[i] == Some(Step::Alert)
        && (p.done || (p.is_tls13() && p.application_data[i]))
        && p.fatal_alert.is_none_or(|f| f.alert.is_none())
}

/// A TLS 1.3 ServerHello: the handshake ciphers (client's, server's) the key log gives, and
/// what it lacks.
fn start_tls13(
    p: &mut Progress,
    keys: &mut Option<Box<Keys>>,
    sh: &ServerHello,
) -> [Option<Box<RecordCipher>>; 2] {
    let Some(k) = keys.as_deref_mut() else {
        p.decryption.missing = TLS13_SECRETS.to_vec();
        return [None, None];
    };
    p.decryption.keylog = true;
    p.decryption.missing = match &k.secrets {
        Some(s) => s.missing(&TLS13_SECRETS),
        None => TLS13_SECRETS.to_vec(),
    };
    k.suite = sh.cipher_suite.and_then(|c| Suite::of(c, true));
    if k.suite.is_none() {
        p.decryption.unsupported_suite = k.secrets.is_some();
        return [None, None];
    }
    let make = |kind| k.secret(kind).and_then(|s| k.tls13_cipher(s.as_bytes()));
    let ciphers = [
        make(SecretKind::ClientHandshake),
        make(SecretKind::ServerHandshake),
    ];
    k.tls13 = ciphers.iter().any(Option::is_some);
    ciphers
}

/// A TLS 1.2 ServerHello: both directions' ciphers from the master secret, for their
/// ChangeCipherSpec.
fn prepare_tls12(p: &mut Progress, keys: &mut Option<Box<Keys>>, server: Side, sh: &ServerHello) {
    let Some(k) = keys.as_deref_mut() else {
        return;
    };
    p.decryption.keylog = true;
    let Some(master) = k.secret(SecretKind::Master) else {
        p.decryption.missing = vec![SecretKind::Master];
        return;
    };
    let (Some(client_random), Some(suite)) = (
        p.client_random,
        sh.cipher_suite.and_then(|c| Suite::of(c, false)),
    ) else {
        p.decryption.unsupported_suite = p.client_random.is_some();
        return;
    };
    if let Some((c, s)) = RecordCipher::tls12_pair(
        suite,
        master.as_bytes(),
        &client_random,
        &sh.random,
        sh.encrypt_then_mac,
    ) {
        k.tls12[server.other().index()] = Some(Box::new(c));
        k.tls12[server.index()] = Some(Box::new(s));
    }
}

/// A handshake message that came out of TLS 1.3 protected records.
fn decrypted_handshake(
    p: &mut Progress,
    keys: &mut Option<Box<Keys>>,
    side: Side,
    typ: HandshakeType,
    body: &[u8],
    emit: &mut impl FnMut(EventKind),
) -> Reply {
    let i = side.index();
    let mut reply = Reply::default();
    p.took(side, Step::Handshake(typ));
    p.decryption.decrypted[i] = true;
    match typ {
        HandshakeType::CERTIFICATE => {
            let (ders, _context, err) = certificate_list_tls13(body);
            let post_handshake = p.finished[i];
            p.certificates[i] = Some(ders.len());
            p.post_handshake_certificate[i] = post_handshake;
            emit(EventKind::Certificate {
                role: p.role(side),
                ders,
                decrypted: true,
                post_handshake,
            });
            if let Some(e) = err {
                emit(EventKind::Error(e));
            }
        }
        HandshakeType::CERTIFICATE_REQUEST => match CertificateRequest::parse_tls13(body) {
            Ok((r, _context)) => {
                p.certificate_requested = true;
                p.post_handshake_request |= p.finished[i];
                emit(EventKind::CertificateRequest(r));
            }
            Err(e) => emit(EventKind::Error(e)),
        },
        HandshakeType::FINISHED if !p.finished[i] => {
            p.finished[i] = true;
            p.took(side, Step::Finished);
            emit(EventKind::Message(typ));
            if p.finished == [true, true] && !p.done {
                p.done = true;
                emit(EventKind::HandshakeDone);
            }
            // This side's next records are under its first application traffic secret.
            let kind = match p.role(side) {
                Some(TlsSide::Server) => SecretKind::ServerTraffic0,
                _ => SecretKind::ClientTraffic0,
            };
            reply.me = Action::Stop;
            if let Some(k) = keys.as_deref_mut()
                && let Some(secret) = k.secret(kind).cloned()
                && let Some(c) = k.tls13_cipher(secret.as_bytes())
            {
                k.app[i] = Some(secret);
                reply.me = Action::Install(c, POST_HANDSHAKE_RECORDS);
            }
        }
        HandshakeType::KEY_UPDATE => {
            emit(EventKind::Message(typ));
            reply.me = Action::Stop;
            if let Some(k) = keys.as_deref_mut()
                && let (Some(suite), Some(current)) = (k.suite, k.app[i].as_ref())
                && let Some(next) = next_traffic_secret(suite.hash, current.as_bytes())
                && let Some(c) = k.tls13_cipher(&next)
            {
                k.app[i] = Some(Secret::new(&next));
                reply.me = Action::Update(c);
            }
        }
        _ => emit(EventKind::Message(typ)),
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{AlertDescription, AlertLevel, HEADER_LEN, MAX_RECORD_LEN};

    /// A test length as its 16-bit wire bytes.
    fn be16(n: usize) -> [u8; 2] {
        u16::try_from(n)
            .expect("test length fits 16 bits")
            .to_be_bytes()
    }

    /// A test length as its 24-bit wire bytes.
    fn be24(n: usize) -> [u8; 3] {
        let [top, b @ ..] = n32(n).to_be_bytes();
        assert_eq!(top, 0, "test length fits 24 bits");
        b
    }

    /// A test count or frame number.
    fn n32(n: usize) -> u32 {
        u32::try_from(n).expect("test count fits 32 bits")
    }

    fn record(ct: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![ct, 3, 3];
        r.extend_from_slice(&be16(payload.len()));
        r.extend_from_slice(payload);
        r
    }

    fn hs(typ: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![typ];
        m.extend_from_slice(&be24(body.len()));
        m.extend_from_slice(body);
        m
    }

    fn client_hello(sni: &str) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[1; 32]);
        b.extend_from_slice(&[0, 0, 4, 0xc0, 0x30, 0x13, 0x01, 1, 0]);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&be16(sni.len() + 5));
        ext.extend_from_slice(&be16(sni.len() + 3));
        ext.push(0);
        ext.extend_from_slice(&be16(sni.len()));
        ext.extend_from_slice(sni.as_bytes());
        b.extend_from_slice(&be16(ext.len()));
        b.extend_from_slice(&ext);
        hs(1, &b)
    }

    fn server_hello(suite: u16, supported_version: Option<u16>) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[2; 32]);
        b.push(0);
        b.extend_from_slice(&suite.to_be_bytes());
        b.push(0);
        if let Some(v) = supported_version {
            b.extend_from_slice(&[0, 6, 0, 43, 0, 2]);
            b.extend_from_slice(&v.to_be_bytes());
        }
        hs(2, &b)
    }

    fn certificate(ders: &[Vec<u8>]) -> Vec<u8> {
        let mut list = Vec::new();
        for d in ders {
            list.extend_from_slice(&be24(d.len()));
            list.extend_from_slice(d);
        }
        let mut b = be24(list.len()).to_vec();
        b.extend_from_slice(&list);
        hs(11, &b)
    }

    fn kinds(events: &[Event<u32>]) -> Vec<(Side, &EventKind)> {
        events.iter().map(|e| (e.side, &e.kind)).collect()
    }

    /// A TLS 1.2 mutual-auth handshake as sftunnel does it: A is the client.
    fn mutual_tls12() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let c1 = record(22, &client_hello("localhost"));
        let mut flight = server_hello(0xc030, None);
        flight.extend(certificate(&[vec![0x30, 1, 2], vec![0x30, 3]]));
        flight.extend(hs(13, &[1, 1, 0, 2, 4, 1, 0, 0]));
        flight.extend(hs(14, &[]));
        let s1 = record(22, &flight);
        let mut c2 = record(22, &certificate(&[vec![0x30, 9]]));
        c2.extend(record(22, &hs(16, &[0; 10])));
        c2.extend(record(22, &hs(15, &[0; 8])));
        c2.extend(record(20, &[1]));
        c2.extend(record(22, &[0x55; 40]));
        let mut s2 = record(20, &[1]);
        s2.extend(record(22, &[0x66; 40]));
        (c1, s1, c2, s2)
    }

    /// A TLS 1.3 connection sealed with known secrets (our own key schedule and aws-lc-rs's
    /// AEAD; the recorded captures in tests/it/keylog.rs are the real-bytes check): a key
    /// log for the client random of `client_hello`, and a sealer per secret.
    struct Tls13 {
        suite: crate::tls::Suite,
        log: Arc<KeyLog>,
        secrets: [[u8; 48]; 4],
    }

    impl Tls13 {
        fn new() -> Self {
            let secrets = [[0x11; 48], [0x22; 48], [0x33; 48], [0x44; 48]];
            let random = hex::encode([1u8; 32]);
            let text: String = TLS13_SECRETS
                .iter()
                .zip(&secrets)
                .map(|(k, s)| format!("{} {random} {}\n", k.label(), hex::encode(s)))
                .collect();
            let (log, report) = KeyLog::parse("test", text.as_bytes());
            assert_eq!(report.secrets, 4);
            Self {
                suite: crate::tls::Suite::of(CipherSuite(0x1302), true).unwrap(),
                log: Arc::new(log),
                secrets,
            }
        }

        /// A record of `typ` sealed under secret `which` (0 client hs, 1 server hs, 2 client
        /// app, 3 server app) at `seq`.
        fn seal(&self, which: usize, seq: u64, typ: u8, plain: &[u8]) -> Vec<u8> {
            super::super::decrypt::seal13(self.suite, &self.secrets[which], seq, typ, plain)
        }

        /// The handshake up to both Finished, in-handshake client certificate requested
        /// but not sent (`Certificate` empty): a session and its events.
        fn handshake(&self) -> (Session<u32>, Vec<Event<u32>>) {
            let mut s = Session::with_keys(Limits::default(), self.log.clone());
            let mut ev = Vec::new();
            s.feed(Side::A, &record(22, &client_hello("fmc")), 1, &mut ev);
            let mut flight = record(22, &server_hello(0x1302, Some(0x0304)));
            flight.extend(record(20, &[1]));
            let mut msgs = hs(8, &[0, 0]);
            msgs.extend(hs(13, &[0, 0, 0]));
            msgs.extend(tls13_certificate(&[], &[vec![0x30, 3, 1, 2, 3]]));
            msgs.extend(hs(15, &[8, 4, 0, 2, 0, 0]));
            msgs.extend(hs(20, &[0x5a; 48]));
            flight.extend(self.seal(1, 0, 22, &msgs));
            s.feed(Side::B, &flight, 2, &mut ev);
            let mut client = record(20, &[1]);
            let mut msgs = tls13_certificate(&[], &[]);
            msgs.extend(hs(20, &[0xa5; 48]));
            client.extend(self.seal(0, 0, 22, &msgs));
            s.feed(Side::A, &client, 3, &mut ev);
            (s, ev)
        }
    }

    fn tls13_certificate(context: &[u8], ders: &[Vec<u8>]) -> Vec<u8> {
        let mut list = Vec::new();
        for d in ders {
            list.extend_from_slice(&be24(d.len()));
            list.extend_from_slice(d);
            list.extend_from_slice(&[0, 0]); // no extensions
        }
        let mut b = vec![u8::try_from(context.len()).expect("short test context")];
        b.extend_from_slice(context);
        b.extend_from_slice(&be24(list.len()));
        b.extend_from_slice(&list);
        hs(11, &b)
    }

    #[test]
    fn tls13_with_keys_decrypts_the_handshake_post_handshake_auth_and_key_updates() {
        let t = Tls13::new();
        let (mut s, mut ev) = t.handshake();
        assert!(s.progress().done && s.progress().certificate_requested);
        assert!(
            !s.is_finished(),
            "post-handshake records are still to be read"
        );
        // The server asks for the certificate after the handshake, the client answers, then
        // the server updates its keys and rejects the certificate under the new ones.
        let mut cr = vec![2, 0xaa, 0xbb];
        cr.extend_from_slice(&[0, 0]);
        s.feed(Side::B, &t.seal(3, 0, 22, &hs(13, &cr)), 4, &mut ev);
        let mut answer = tls13_certificate(&[0xaa, 0xbb], &[vec![0x30, 2, 7, 7]]);
        answer.extend(hs(15, &[8, 4, 0, 2, 0, 0]));
        answer.extend(hs(20, &[0x77; 48]));
        s.feed(Side::A, &t.seal(2, 0, 22, &answer), 5, &mut ev);
        s.feed(Side::B, &t.seal(3, 1, 22, &hs(24, &[0])), 6, &mut ev);
        let next = next_traffic_secret(t.suite.hash, &t.secrets[3]).unwrap();
        let alert = super::super::decrypt::seal13(t.suite, &next, 0, 21, &[2, 48]);
        s.feed(Side::B, &alert, 7, &mut ev);
        let certs: Vec<_> = ev
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Certificate {
                    role,
                    ders,
                    decrypted,
                    post_handshake,
                } => Some((e.mark, *role, ders.len(), *decrypted, *post_handshake)),
                _ => None,
            })
            .collect();
        assert_eq!(
            certs,
            [
                (2, Some(TlsSide::Server), 1, true, false),
                (3, Some(TlsSide::Client), 0, true, false),
                (5, Some(TlsSide::Client), 1, true, true),
            ]
        );
        let p = s.progress();
        assert!(p.post_handshake_request && p.post_handshake_certificate[0]);
        assert_eq!(
            p.fatal_alert.unwrap().alert.unwrap().description,
            crate::tls::AlertDescription::UNKNOWN_CA
        );
        assert_eq!(p.decryption.decrypted, [true, true]);
        assert!(p.decryption.missing.is_empty());
        assert!(
            !ev.iter().any(|e| matches!(e.kind, EventKind::Error(_))),
            "{ev:?}"
        );
    }

    #[test]
    fn post_handshake_decryption_stops_after_its_budget_and_the_session_is_skimmed() {
        let t = Tls13::new();
        let (mut s, mut ev) = t.handshake();
        let n = u64::from(POST_HANDSHAKE_RECORDS);
        for (side, which) in [(Side::A, 2), (Side::B, 3)] {
            for seq in 0..n {
                assert!(!s.is_finished());
                s.feed(
                    side,
                    &t.seal(which, seq, 23, &[seq.to_le_bytes()[0]; 100]),
                    10,
                    &mut ev,
                );
            }
        }
        assert!(s.is_finished(), "both directions used their budget");
        s.skim();
        // later records are counted, not opened: garbage costs nothing and says nothing
        ev.clear();
        s.feed(Side::A, &record(23, &[0; 200]), 11, &mut ev);
        assert!(ev.is_empty(), "{ev:?}");
        assert!(s.buffered() <= 2 * HEADER_LEN);
        assert!(!s.progress().decryption.failed.contains(&true));
    }

    #[test]
    fn without_the_keys_the_same_connection_counts_encrypted_records() {
        let t = Tls13::new();
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &record(22, &client_hello("fmc")), 1, &mut ev);
        let mut flight = record(22, &server_hello(0x1302, Some(0x0304)));
        flight.extend(t.seal(1, 0, 22, &hs(8, &[0, 0])));
        flight.extend(t.seal(1, 1, 22, &hs(20, &[0; 48])));
        s.feed(Side::B, &flight, 2, &mut ev);
        s.feed(Side::A, &t.seal(0, 0, 21, &[2, 42]), 3, &mut ev);
        let p = s.progress();
        assert!(s.is_finished());
        assert_eq!(p.client_random, Some([1; 32]));
        assert_eq!(p.decryption.missing, TLS13_SECRETS);
        assert_eq!(p.protected.records, [1, 2]);
        // content, its type, the sealer's 3 bytes of zero padding, the tag
        assert_eq!(p.protected.last_len, [2 + 1 + 3 + 16, 4 + 48 + 1 + 3 + 16]);
        assert_eq!(p.protected.turns, 2);
        assert_eq!(p.last[1], Some(Step::Protected));
    }

    #[test]
    fn mutual_handshake_gives_roles_certificates_and_done() {
        let (c1, s1, c2, s2) = mutual_tls12();
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &c1, 1, &mut ev);
        s.feed(Side::B, &s1, 2, &mut ev);
        s.feed(Side::A, &c2, 3, &mut ev);
        s.feed(Side::B, &s2, 4, &mut ev);
        let certs: Vec<_> = ev
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Certificate { role, ders, .. } => Some((e.mark, *role, ders.len())),
                _ => None,
            })
            .collect();
        assert_eq!(
            certs,
            [(2, Some(TlsSide::Server), 2), (3, Some(TlsSide::Client), 1)]
        );
        assert!(matches!(ev.last().unwrap().kind, EventKind::HandshakeDone));
        let p = s.progress();
        assert_eq!(p.server, Some(Side::B));
        assert_eq!(p.sni.as_deref(), Some("localhost"));
        assert_eq!(p.cipher, Some(CipherSuite(0xc030)));
        assert_eq!(p.version, Some(ProtocolVersion::TLS12));
        assert!(p.certificate_requested && p.done && s.is_finished());
        assert_eq!(p.certificates, [Some(1), Some(2)]);
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_events() {
        let (c1, s1, c2, s2) = mutual_tls12();
        let mut whole = Session::default();
        let mut ev_whole = Vec::new();
        let mut split = Session::default();
        let mut ev_split = Vec::new();
        for (side, bytes) in [
            (Side::A, &c1),
            (Side::B, &s1),
            (Side::A, &c2),
            (Side::B, &s2),
        ] {
            whole.feed(side, bytes, 0, &mut ev_whole);
            for b in bytes.chunks(1) {
                split.feed(side, b, 0, &mut ev_split);
            }
        }
        assert_eq!(ev_whole, ev_split);
        assert_eq!(whole.progress(), split.progress());
    }

    #[test]
    fn the_tls_server_is_whoever_sends_server_hello() {
        // B opened the TCP connection but A answers with ServerHello (GridFTP data channels).
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::B, &record(22, &client_hello("x")), 1, &mut ev);
        let mut flight = server_hello(0x002f, None);
        flight.extend(certificate(&[vec![0x30, 0]]));
        s.feed(Side::A, &record(22, &flight), 2, &mut ev);
        assert_eq!(s.role(Side::A), Some(TlsSide::Server));
        assert!(ev.iter().any(|e| e.side == Side::A
            && matches!(
                e.kind,
                EventKind::Certificate {
                    role: Some(TlsSide::Server),
                    ..
                }
            )));
    }

    #[test]
    fn large_certificate_over_many_records_comes_out_whole_with_the_last_mark() {
        // ~360 KB in one Certificate message, cut into 22 records, delivered as 1448-byte
        // segments: the message appears once, complete, marked with the segment that ended it.
        let ders: Vec<Vec<u8>> = (0..30u8).map(|i| vec![i; 12_000]).collect();
        let msg = certificate(&ders);
        let per = msg.len().div_ceil(22);
        let mut stream = Vec::new();
        for part in msg.chunks(per) {
            stream.extend(record(22, part));
        }
        assert_eq!(msg.chunks(per).count(), 22);
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(
            Side::B,
            &record(22, &server_hello(0x009c, None)),
            0,
            &mut ev,
        );
        let segments: Vec<_> = stream.chunks(1448).collect();
        for (i, seg) in segments.iter().enumerate() {
            s.feed(Side::B, seg, n32(i) + 1, &mut ev);
        }
        let got: Vec<_> = ev
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Certificate { ders, .. } => Some((e.mark, ders)),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, n32(segments.len()));
        assert_eq!(got[0].1, &ders);
    }

    #[test]
    fn a_handshake_claiming_16_mb_is_reported_and_skipped() {
        let mut s = Session::default();
        let mut ev = Vec::new();
        // header claims 0xffffff bytes; 3 records of junk follow, then a real alert
        let mut first = vec![11, 0xff, 0xff, 0xff];
        first.extend_from_slice(&[0; 1000]);
        s.feed(
            Side::B,
            &record(22, &server_hello(0x002f, None)),
            0,
            &mut ev,
        );
        s.feed(Side::B, &record(22, &first), 1, &mut ev);
        for _ in 0..3 {
            s.feed(Side::B, &record(22, &[0; 16384]), 2, &mut ev);
        }
        s.feed(Side::B, &record(21, &[2, 40]), 3, &mut ev);
        let errors: Vec<_> = ev
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Error(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            errors,
            [TlsError::HandshakeTooLarge {
                msg: HandshakeType::CERTIFICATE,
                claimed: 0xff_ffff,
                max: Limits::default().max_handshake
            }]
        );
        assert!(s.dirs[1].buffered() < 64 * 1024);
        assert!(matches!(
            ev.last().unwrap().kind,
            EventKind::Alert { alert: Some(_), .. }
        ));
    }

    #[test]
    fn alerts_after_ccs_or_of_odd_length_are_encrypted_and_unknown_codes_kept() {
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &record(22, &client_hello("h")), 0, &mut ev);
        s.feed(Side::B, &record(21, &[2, 200]), 1, &mut ev);
        s.feed(Side::B, &record(21, &[2, 40, 0]), 2, &mut ev);
        s.feed(Side::A, &record(20, &[1]), 3, &mut ev);
        s.feed(Side::A, &record(21, &[1, 0]), 4, &mut ev);
        let alerts: Vec<_> = ev
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Alert { alert, .. } => Some((e.mark, alert)),
                _ => None,
            })
            .collect();
        let fatal_200 = Alert {
            level: AlertLevel::FATAL,
            description: AlertDescription(200),
        };
        assert_eq!(alerts, [(1, Some(fatal_200)), (2, None), (4, None)]);
        assert_eq!(fatal_200.description.to_string(), "unknown(200)");
        assert_eq!(
            s.progress().fatal_alert,
            Some(FatalAlert {
                side: Side::B,
                alert: Some(fatal_200),
                after: Some(Step::Handshake(HandshakeType::CLIENT_HELLO))
            })
        );
    }

    #[test]
    fn alert_names_what_the_peer_sent_last() {
        let (c1, s1, c2, _) = mutual_tls12();
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &c1, 1, &mut ev);
        s.feed(Side::B, &s1, 2, &mut ev);
        s.feed(Side::A, &c2, 3, &mut ev);
        s.feed(Side::B, &record(21, &[2, 45]), 4, &mut ev);
        let EventKind::Alert { alert, after, .. } = &ev.last().unwrap().kind else {
            panic!("no alert: {ev:?}");
        };
        assert_eq!(
            alert.unwrap().description,
            AlertDescription::CERTIFICATE_EXPIRED
        );
        assert_eq!(*after, Some(Step::Finished));
        assert!(s.is_finished() && !s.progress().done);
    }

    #[test]
    fn tls_found_after_starttls_plaintext_on_both_sides() {
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, b"a001 STARTTLS\r\n", 1, &mut ev);
        s.feed(
            Side::B,
            b"a001 OK Begin TLS negotiation now\r\n",
            2,
            &mut ev,
        );
        let mut c = b"".to_vec();
        c.extend(record(22, &client_hello("imap.example")));
        s.feed(Side::A, &c, 3, &mut ev);
        s.feed(
            Side::B,
            &record(22, &server_hello(0xc02f, None)),
            4,
            &mut ev,
        );
        assert_eq!(
            kinds(&ev)
                .iter()
                .filter(|(_, k)| matches!(k, EventKind::Start { .. }))
                .count(),
            2
        );
        assert!(
            ev.iter()
                .any(|e| e.kind == EventKind::Start { plaintext: 15 })
        );
        assert_eq!(s.progress().server, Some(Side::B));
        assert!(s.is_tls());
    }

    #[test]
    fn plaintext_that_never_turns_into_tls_is_dropped_quietly() {
        let mut s = Session::<u32>::default();
        let mut ev = Vec::new();
        for _ in 0..2000 {
            s.feed(
                Side::A,
                b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
                0,
                &mut ev,
            );
        }
        assert!(ev.is_empty() && !s.is_tls());
        assert!(s.dirs[0].buffered() < 16);
    }

    #[test]
    fn garbage_inside_the_record_stream_is_an_error_naming_the_offset() {
        let mut s = Session::default();
        let mut ev = Vec::new();
        let mut b = record(22, &client_hello("h"));
        let at = b.len() as u64;
        b.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\n");
        s.feed(Side::A, &b, 7, &mut ev);
        let EventKind::Error(TlsError::NotTls { offset, .. }) = ev.last().unwrap().kind else {
            panic!("{ev:?}");
        };
        assert_eq!(offset, at);
    }

    #[test]
    fn tls13_says_certificates_are_encrypted_and_ignores_compat_ccs() {
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &record(22, &client_hello("h")), 1, &mut ev);
        let mut b = record(22, &server_hello(0x1301, Some(0x0304)));
        b.extend(record(20, &[1]));
        b.extend(record(23, &[9; 100]));
        s.feed(Side::B, &b, 2, &mut ev);
        assert!(ev.iter().any(|e| e.kind
            == EventKind::EncryptedCertificates {
                version: ProtocolVersion::TLS13
            }));
        assert!(
            !ev.iter()
                .any(|e| matches!(e.kind, EventKind::Certificate { .. }))
        );
        assert!(s.is_finished() && !s.progress().done);
        // a plaintext alert after the compat CCS stays readable
        s.feed(Side::B, &record(21, &[2, 80]), 3, &mut ev);
        assert!(matches!(
            ev.last().unwrap().kind,
            EventKind::Alert { alert: Some(_), .. }
        ));
    }

    #[test]
    fn hello_retry_request_is_recognised_and_waits_for_the_real_server_hello() {
        const HRR: [u8; 32] = [
            0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65,
            0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2,
            0xc8, 0xa8, 0x33, 0x9c,
        ];
        let mut hrr = server_hello(0x1301, Some(0x0304));
        hrr[6..38].copy_from_slice(&HRR);
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &record(22, &client_hello("h")), 1, &mut ev);
        s.feed(Side::B, &record(22, &hrr), 2, &mut ev);
        assert!(s.progress().retry_request && !s.is_finished());
        let mut again = record(20, &[1]);
        again.extend(record(22, &client_hello("h")));
        s.feed(Side::A, &again, 3, &mut ev);
        // the second ClientHello after the compat CCS is still plaintext
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e.kind, EventKind::ClientHello(_)))
                .count(),
            2
        );
        s.feed(
            Side::B,
            &record(22, &server_hello(0x1301, Some(0x0304))),
            4,
            &mut ev,
        );
        assert!(s.is_finished());
    }

    #[test]
    fn sslv2_client_hello_is_recognised_and_skipped() {
        let body = [
            1, 3, 1, 0, 6, 0, 0, 0, 16, 0x07, 0x00, 0xc0, 0x00, 0x00, 0x2f,
        ];
        let mut b = vec![0x80, u8::try_from(body.len()).expect("short test body")];
        b.extend_from_slice(&body);
        b.extend_from_slice(&[0x11; 16]); // challenge
        b[1] += 16;
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &b, 1, &mut ev);
        s.feed(
            Side::B,
            &record(22, &server_hello(0x002f, None)),
            2,
            &mut ev,
        );
        let EventKind::ClientHello(h) = &ev[0].kind else {
            panic!("{ev:?}");
        };
        assert!(h.sslv2_format);
        assert_eq!(s.progress().server, Some(Side::B));
    }

    #[test]
    fn a_stream_cut_inside_a_message_says_so_at_finish() {
        let mut s = Session::default();
        let mut ev = Vec::new();
        let msg = certificate(&[vec![0x30; 3000]]);
        s.feed(
            Side::B,
            &record(22, &server_hello(0x002f, None)),
            1,
            &mut ev,
        );
        s.feed(Side::B, &record(22, &msg[..1000]), 2, &mut ev);
        ev.clear();
        s.finish(9, &mut ev);
        assert_eq!(
            ev[0].kind,
            EventKind::Error(TlsError::Incomplete {
                what: "Certificate",
                have: 1000,
                need: msg.len()
            })
        );
    }

    #[test]
    fn after_a_gap_the_next_handshake_record_is_found_again() {
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(
            Side::B,
            &record(22, &server_hello(0x002f, None)),
            1,
            &mut ev,
        );
        let msg = record(22, &certificate(&[vec![0x30; 3000]]));
        s.feed(Side::B, &msg[..500], 2, &mut ev);
        s.gap(Side::B, 3, &mut ev);
        s.feed(Side::B, &msg[2000..], 4, &mut ev);
        s.feed(Side::B, &record(21, &[2, 42]), 5, &mut ev);
        assert!(matches!(
            ev.iter().find(|e| e.mark == 3).unwrap().kind,
            EventKind::Error(TlsError::Incomplete { .. })
        ));
        assert!(matches!(
            ev.last().unwrap().kind,
            EventKind::Alert { alert: Some(_), .. }
        ));
    }

    #[test]
    fn skimming_a_finished_session_counts_records_without_buffering_them() {
        let (c1, s1, c2, s2) = mutual_tls12();
        let mut s = Session::default();
        let mut ev = Vec::new();
        s.feed(Side::A, &c1, 1, &mut ev);
        s.feed(Side::B, &s1, 2, &mut ev);
        s.feed(Side::A, &c2, 3, &mut ev);
        s.feed(Side::B, &s2, 4, &mut ev);
        assert!(s.is_finished());
        s.skim();
        ev.clear();
        let mut tail = record(23, &[7; 16000]);
        tail.extend(record(23, &[8; 16000]));
        tail.extend(record(21, &[9; 26]));
        for (i, chunk) in tail.chunks(1000).enumerate() {
            s.feed(Side::B, chunk, 10 + n32(i), &mut ev);
            assert!(s.buffered() <= 2 * HEADER_LEN, "{}", s.buffered());
        }
        let last = n32(tail.chunks(1000).count()) + 9;
        assert_eq!(
            kinds(&ev),
            [
                (Side::B, &EventKind::ApplicationData),
                (
                    Side::B,
                    &EventKind::Alert {
                        alert: None,
                        after: Some(Step::Finished),
                        decrypted: false
                    }
                )
            ]
        );
        assert_eq!(ev[1].mark, last);
        assert_eq!(s.progress().alerts, [0, 1]);
    }

    #[test]
    // why: the PRNG's words are cut to the width they fill, and `rand(n)` is below `n`.
    #[allow(clippy::cast_possible_truncation)]
    fn mangled_bytes_in_random_chunks_never_panic_and_stay_bounded() {
        // A small xorshift: deterministic, no dependency.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let (c1, s1, c2, s2) = mutual_tls12();
        let flights = [(Side::A, c1), (Side::B, s1), (Side::A, c2), (Side::B, s2)];
        let limits = Limits::default();
        for _ in 0..3000 {
            let mut s = Session::new(limits);
            let mut ev = Vec::new();
            for (side, bytes) in &flights {
                let mut b = bytes.clone();
                for _ in 0..rand(6) {
                    let i = rand(b.len());
                    b[i] = rand(256) as u8;
                }
                b.truncate(b.len() - rand(b.len() / 4 + 1));
                let mut rest = &b[..];
                while !rest.is_empty() {
                    let n = 1 + rand(rest.len());
                    s.feed(*side, &rest[..n], 0u32, &mut ev);
                    rest = &rest[n..];
                    if rand(50) == 0 {
                        s.gap(*side, 0, &mut ev);
                    }
                }
                assert!(s.buffered() <= 2 * (limits.max_handshake + MAX_RECORD_LEN + 64));
            }
            s.finish(0, &mut ev);
        }
    }
}
