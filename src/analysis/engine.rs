//! The analysis loop: `net` events in, `tls` sessions per connection, `Finding`s out.
//!
//! Owns the per-connection state the report needs (TLS session, first/last frame, how TCP
//! closed, chain verdicts and identities per side) and its lifetime: a connection is reported
//! when `net` closes it (FIN/RST, port reuse, eviction, end of capture) and then forgotten. Once
//! a handshake is over the TLS session only skims records (counting alerts and application
//! data, buffering nothing), and a connection that turns out not to be TLS is handed back to
//! `net` to count only. What is decoded and judged is `certs`'s business; the outcome wording is
//! `outcome`'s. Findings go to the caller's sink as they are made; once it says stop (or fails)
//! nothing more is sent, and the read loop ends after the current frame. Where something
//! happened is one `net::Mark` throughout: on each `net` event, carried by `tls::Session` to
//! the message it completes, and copied into the finding.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use time::OffsetDateTime;
use tracing::debug;

use super::certs::CertJudge;
use super::findings::{
    AlertFinding, CertificateFinding, CertsSeen, ChainFinding, Checked, Finding, Identity,
    NoteFinding, NoteKind, SessionFinding,
};
use super::outcome::{Close, Outcome, Wire, outcome};
use super::remedy::{self, End, Facts, JudgedChain};
use super::sink::{FindingSink, ReadProgress};
use super::unlock;
use crate::capture::Timestamp;
use crate::net::{self, ConnId, Dir, EventKind as NetEvent, GapCause, Mark, Opening};
use crate::pki::conf::SFTUNNEL_PORT;
use crate::sftunnel::TlsSide;
use crate::tls::{self, EventKind as TlsEvent, Side};

struct Conn {
    id: ConnId,
    /// TCP client and server (`Side::A` is the TCP client).
    tcp: [SocketAddr; 2],
    tls: tls::Session<Mark>,
    first: Mark,
    last: Mark,
    close: Option<Close>,
    /// Where the first FIN or RST was.
    close_mark: Option<Mark>,
    skimming: bool,
    /// Per side (`Side::index`): the chain as judged and the leaf's identity.
    chain: [Option<JudgedChain>; 2],
    identity: [Option<Identity>; 2],
    /// Tunnel layers around the connection's first packet (empty: none).
    outer: Vec<net::Encap>,
    /// The TCP server and the handshake bytes each side lost (`snaplen` is filled in when
    /// the session is reported).
    wire: Wire,
}

impl Conn {
    fn addr(&self, side: Side) -> SocketAddr {
        self.tcp[side.index()]
    }

    /// The TLS role of `side`, from the hellos or else from TCP.
    fn role(&self, side: Side) -> Option<TlsSide> {
        self.wire.role(self.tls.progress(), side)
    }
}

/// The TCP server, as far as TCP tells: the SYN's receiver, else (joined mid-stream) the
/// one end on the sftunnel port.
fn tcp_server(how: Opening, client: SocketAddr, server: SocketAddr) -> Option<Side> {
    match how {
        Opening::Syn | Opening::SynAck => Some(Side::B),
        Opening::MidStream => match (client.port(), server.port()) {
            (c, s) if s == SFTUNNEL_PORT && c != SFTUNNEL_PORT => Some(Side::B),
            (c, s) if c == SFTUNNEL_PORT && s != SFTUNNEL_PORT => Some(Side::A),
            _ => None,
        },
    }
}

fn side(dir: Dir) -> Side {
    match dir {
        Dir::ClientToServer => Side::A,
        Dir::ServerToClient => Side::B,
    }
}

/// Counts over one capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Session findings.
    pub sessions: u64,
    /// Certificate findings (each certificate of each Certificate message).
    pub certificates: u64,
    /// Alert findings.
    pub alerts: u64,
    /// Findings that make `analyze` exit 1.
    pub problems: u64,
    /// TCP connections that carried no TLS.
    pub not_tls: u64,
}

/// Why the run ended before its input did.
#[derive(Debug)]
pub(super) enum Halt {
    /// The sink said stop.
    Stopped,
    /// The sink failed.
    Failed(io::Error),
}

pub(super) struct Engine<'s, S: FindingSink + ?Sized> {
    file: Arc<str>,
    at: Option<OffsetDateTime>,
    limits: tls::Limits,
    keys: Option<Arc<tls::KeyLog>>,
    conns: HashMap<ConnId, Conn>,
    judge: CertJudge,
    sink: &'s mut S,
    /// Set once the sink stopped or failed: nothing more is sent to it.
    pub(super) halt: Option<Halt>,
    events: Vec<tls::Event<Mark>>,
    /// Connections whose bytes are no longer wanted, handed to `net` after each frame.
    pub(super) done_with: Vec<ConnId>,
    /// The capture's snap length: the captured length of the frames it cut (the largest, if
    /// they differ); `None` until a cut frame is read.
    pub(super) snaplen: Option<u32>,
    pub(super) counts: Counts,
}

impl<'s, S: FindingSink + ?Sized> Engine<'s, S> {
    pub(super) fn new(
        file: Arc<str>,
        at: Option<OffsetDateTime>,
        limits: tls::Limits,
        keys: Option<Arc<tls::KeyLog>>,
        judge: CertJudge,
        sink: &'s mut S,
    ) -> Self {
        Self {
            file,
            at,
            limits,
            keys,
            conns: HashMap::new(),
            judge,
            sink,
            halt: None,
            events: Vec::new(),
            done_with: Vec::new(),
            snaplen: None,
            counts: Counts::default(),
        }
    }

    /// Hands a finding to the sink, unless it has already said stop.
    fn emit(&mut self, f: Finding) {
        if self.halt.is_some() {
            return;
        }
        match &f {
            Finding::Certificate(_) => self.counts.certificates += 1,
            Finding::Alert(_) => self.counts.alerts += 1,
            Finding::Session(_) => self.counts.sessions += 1,
            Finding::Chain(_) | Finding::Note(_) => {}
        }
        if f.is_problem() {
            self.counts.problems += 1;
        }
        let answer = self.sink.finding(f);
        self.obey(answer);
    }

    /// Tells the sink how far the read is.
    pub(super) fn progress(&mut self, at: ReadProgress) {
        if self.halt.is_none() {
            let answer = self.sink.progress(at);
            self.obey(answer);
        }
    }

    fn obey(&mut self, answer: io::Result<ControlFlow<()>>) {
        match answer {
            Ok(ControlFlow::Continue(())) => {}
            Ok(ControlFlow::Break(())) => {
                debug!(file = %self.file, "the sink said stop");
                self.halt = Some(Halt::Stopped);
            }
            Err(e) => {
                debug!(file = %self.file, error = %e, "the sink failed");
                self.halt = Some(Halt::Failed(e));
            }
        }
    }

    fn note(&mut self, mark: Mark, kind: NoteKind) {
        self.note_at(Some(mark.frame), Some(mark.ts), kind);
    }

    /// A note that may lack a frame or a time (a capture that breaks off after frame N).
    pub(super) fn note_at(&mut self, frame: Option<u64>, ts: Option<Timestamp>, kind: NoteKind) {
        let f = Finding::Note(NoteFinding {
            file: self.file.clone(),
            frame,
            ts,
            kind,
        });
        self.emit(f);
    }

    /// One event from the connection tracker.
    pub(super) fn on_net(&mut self, ev: net::Event<'_>) {
        let m = ev.mark;
        match ev.kind {
            NetEvent::Opened {
                conn,
                client,
                server,
                how,
                outer,
            } => {
                self.conns.insert(
                    conn,
                    Conn {
                        id: conn,
                        tcp: [client, server],
                        tls: match &self.keys {
                            Some(k) => tls::Session::with_keys(self.limits, k.clone()),
                            None => tls::Session::new(self.limits),
                        },
                        first: m,
                        last: m,
                        close: None,
                        close_mark: None,
                        skimming: false,
                        chain: [None, None],
                        identity: [None, None],
                        outer: outer.to_vec(),
                        wire: Wire {
                            tcp_server: tcp_server(how, client, server),
                            ..Wire::default()
                        },
                    },
                );
            }
            NetEvent::Data {
                conn, dir, bytes, ..
            } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.last = c.last.max(m);
                c.tls.feed(side(dir), bytes, m, &mut self.events);
                if c.tls.is_dead() {
                    debug!(conn = conn.0, client = %c.tcp[0], server = %c.tcp[1],
                        "no TLS on this connection: only counted from now on");
                    self.done_with.push(conn);
                } else if !c.skimming && c.tls.is_finished() {
                    debug!(conn = conn.0, client = %c.tcp[0], server = %c.tcp[1],
                        "handshake over: records only skimmed from now on");
                    c.skimming = true;
                    c.tls.skim();
                }
                self.drain(conn);
            }
            NetEvent::Gap {
                conn,
                dir,
                offset,
                len,
                cause,
            } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let s = side(dir);
                // Bytes lost after the handshake was done change nothing of its outcome.
                if !c.tls.progress().done {
                    let lost = &mut c.wire.missing[s.index()];
                    lost.bytes += len;
                    if cause == GapCause::SnapLength {
                        lost.cut += len;
                    }
                }
                c.tls.gap(s, m, &mut self.events);
                if c.tls.is_tls() {
                    let kind = NoteKind::TcpGap {
                        src: c.addr(s),
                        dst: c.addr(s.other()),
                        offset,
                        len,
                        cause,
                        snaplen: self.snaplen.filter(|_| cause == GapCause::SnapLength),
                    };
                    self.note(m, kind);
                }
                self.drain(conn);
            }
            NetEvent::Fin { conn, dir } | NetEvent::Rst { conn, dir } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.last = c.last.max(m);
                    let s = side(dir);
                    let close = if matches!(ev.kind, NetEvent::Rst { .. }) {
                        Close::Rst(s)
                    } else {
                        Close::Fin(s)
                    };
                    if c.close.is_none() {
                        c.close = Some(close);
                        c.close_mark = Some(m);
                    }
                }
            }
            NetEvent::Closed { conn, .. } => {
                if let Some(c) = self.conns.remove(&conn) {
                    self.finish(c);
                }
            }
            NetEvent::Note { note, .. } => {
                let kind = match note {
                    net::Note::Fragment { src, dst, protocol } => {
                        NoteKind::IpFragment { src, dst, protocol }
                    }
                    net::Note::Undecodable(e) => NoteKind::Undecodable(e),
                    net::Note::Conflict { dir, offset, len } => {
                        NoteKind::TcpConflict { dir, offset, len }
                    }
                    // The session's reason says when its start was not captured.
                    net::Note::MidStream { .. } => return,
                    net::Note::Encapsulations { seen, frames } => {
                        return self.note_at(None, None, NoteKind::Encapsulations { seen, frames });
                    }
                };
                self.note(m, kind);
            }
        }
    }

    /// Turns the TLS events of `conn` into findings.
    fn drain(&mut self, conn: ConnId) {
        let events = std::mem::take(&mut self.events);
        for e in &events {
            self.on_tls(conn, e);
        }
        self.events = events;
        self.events.clear();
    }

    fn on_tls(&mut self, conn: ConnId, e: &tls::Event<Mark>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (src, dst) = (c.addr(e.side), c.addr(e.side.other()));
        let role = c.role(e.side);
        match &e.kind {
            TlsEvent::Certificate {
                role,
                ders,
                decrypted,
                post_handshake,
            } => {
                let at = self.at.unwrap_or_else(|| datetime(&e.mark.ts));
                let chain: Vec<_> = ders.iter().map(|d| self.judge.decode(d)).collect();
                if chain.is_empty() {
                    return;
                }
                let verdict = self.judge.judge(&chain, *role, at);
                debug!(conn = conn.0, %src, %dst, role = ?role, certificates = chain.len(),
                    code = verdict.overall.code.code(), depth = ?verdict.overall.depth,
                    trusted = verdict.trusted, "chain judged");
                let mismatch = self.judge.anchor_mismatch(&chain, &verdict);
                let at_fault = verdict
                    .overall
                    .depth
                    .and_then(|d| self.judge.at_depth(&chain, &verdict, d))
                    .map(|c| c.sftunnel_identity().role);
                c.chain[e.side.index()] = Some(JudgedChain {
                    verdict: verdict.overall.clone(),
                    at_fault,
                    mismatch: mismatch.clone(),
                });
                c.identity[e.side.index()] = Identity::of(chain[0].sftunnel_identity());
                let id = c.id;
                let chain_finding = ChainFinding {
                    file: self.file.clone(),
                    frame: e.mark.frame,
                    ts: e.mark.ts,
                    src,
                    dst,
                    role: *role,
                    length: chain.len(),
                    verdict: verdict.overall.clone(),
                    trusted: verdict.trusted && verdict.overall.is_ok(),
                    checked: self.judge.checked(),
                    anchor_mismatch: mismatch,
                    conn: id.0,
                };
                for (i, (cert, v)) in chain.iter().zip(verdict.per_cert).enumerate() {
                    let f = CertificateFinding {
                        file: self.file.clone(),
                        frame: e.mark.frame,
                        ts: e.mark.ts,
                        src,
                        dst,
                        role: *role,
                        chain_index: i,
                        sha256: cert.sha256.clone(),
                        serial: cert.serial.clone(),
                        version: cert.version,
                        subject: cert.subject.as_ref().map(|n| n.rfc4514()),
                        issuer: cert.issuer.as_ref().map(|n| n.rfc4514()),
                        not_before: cert.not_before,
                        not_after: cert.not_after,
                        sig_alg: cert.sig_alg.clone(),
                        key: cert.key.clone(),
                        verdict: v,
                        der_len: cert.len,
                        self_signed: cert.self_signed,
                        sftunnel: Identity::of(cert.sftunnel_identity()),
                        parse_error: cert.parse_error.clone(),
                        conn: id.0,
                        subject_oneline: cert.subject.as_ref().map(|n| n.oneline()),
                        issuer_oneline: cert.issuer.as_ref().map(|n| n.oneline()),
                        decrypted: *decrypted,
                        post_handshake: *post_handshake,
                    };
                    self.emit(Finding::Certificate(Box::new(f)));
                }
                self.emit(Finding::Chain(Box::new(chain_finding)));
            }
            TlsEvent::Alert {
                alert, decrypted, ..
            } => {
                let f = AlertFinding {
                    file: self.file.clone(),
                    frame: e.mark.frame,
                    ts: e.mark.ts,
                    src,
                    dst,
                    level: alert.map(|a| a.level),
                    code: alert.map(|a| a.description.0),
                    description: alert.map(|a| a.description.to_string()),
                    encrypted: alert.is_none() || *decrypted,
                    decrypted: *decrypted,
                    role,
                    conn: c.id.0,
                };
                self.emit(Finding::Alert(f));
            }
            TlsEvent::Error(error) => {
                let kind = NoteKind::Tls {
                    src,
                    dst,
                    error: error.clone(),
                };
                self.note(e.mark, kind);
            }
            _ => {}
        }
    }

    /// The connection is over: report its session.
    fn finish(&mut self, c: Conn) {
        if !c.tls.is_tls() {
            debug!(conn = c.id.0, client = %c.tcp[0], server = %c.tcp[1], "closed, no TLS seen");
            self.counts.not_tls += 1;
            return;
        }
        if !c.tls.is_finished() {
            c.tls.finish(c.last, &mut self.events);
            for e in std::mem::take(&mut self.events) {
                if let TlsEvent::Error(error) = e.kind {
                    let kind = NoteKind::Tls {
                        src: c.addr(e.side),
                        dst: c.addr(e.side.other()),
                        error,
                    };
                    self.note(e.mark, kind);
                }
            }
        }
        let mut c = c;
        c.wire.snaplen = self.snaplen;
        let s = session(&c, self.file.clone(), self.judge.checked());
        debug!(conn = c.id.0, client = %s.client, server = %s.server,
            outcome = s.outcome.as_str(), reason = ?s.reason, "session reported");
        self.emit(Finding::Session(Box::new(s)));
    }

    /// End of input: every connection still open is reported (`net::Tracker::finish` closes
    /// them all, so this only catches what it did not know).
    pub(super) fn finish_all(&mut self) {
        let mut left: Vec<Conn> = self.conns.drain().map(|(_, c)| c).collect();
        left.sort_by_key(|c| c.id);
        for c in left {
            self.finish(c);
        }
    }
}

/// A capture time as a `time` value (the epoch for years `time` cannot hold).
pub(super) fn datetime(ts: &Timestamp) -> OffsetDateTime {
    ts.to_datetime().unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// What the capture shows of `side`'s certificates.
fn certs_seen(c: &Conn, side: Side, outcome: Outcome) -> CertsSeen {
    let p = c.tls.progress();
    match p.certificates[side.index()] {
        _ if c.chain[side.index()].is_some() => CertsSeen::Sent,
        Some(0) => CertsSeen::Empty,
        Some(_) => CertsSeen::Sent,
        // With the key log's secrets for this side its handshake was read: no Certificate
        // message then means none was sent.
        None if (outcome == Outcome::EncryptedCertificates || p.is_tls13())
            && !p.decryption.decrypted[side.index()] =>
        {
            CertsSeen::Encrypted
        }
        None if c.wire.lost(side) => CertsSeen::PartlyCaptured,
        None if !p.hello_seen() => CertsSeen::NotCaptured,
        None => CertsSeen::NotSent,
    }
}

fn session(c: &Conn, file: Arc<str>, checked: Checked) -> SessionFinding {
    let p = c.tls.progress();
    let server = p
        .side_of(TlsSide::Server)
        .or(c.wire.tcp_server)
        .unwrap_or(Side::B);
    let client = server.other();
    let (outcome, mut reason, failed_by) = outcome(p, c.close, &c.wire);
    // What stayed encrypted: what its records still show, and the key-log lines that would
    // open it.
    let d = &p.decryption;
    if outcome == Outcome::EncryptedCertificates
        && let Some(facts) = unlock::without_keys(p, c.close.zip(c.close_mark), &c.wire)
    {
        reason += "; ";
        reason += &facts;
    }
    if let Some(lines) = unlock::key_lines(p) {
        reason += "; ";
        reason += &lines;
    }
    let missing_secrets: Vec<&'static str> = unlock::needed_secrets(p)
        .iter()
        .map(|k| k.label())
        .collect();
    let show_random = d.keylog || !missing_secrets.is_empty();
    for (name, s) in [("server", server), ("client", client)] {
        if let Some(j) = c.chain[s.index()].as_ref().filter(|j| !j.verdict.is_ok()) {
            let v = &j.verdict;
            reason += &match (v.code, v.depth) {
                // No OpenSSL code and no depth: the words alone (`describe`), no `err -1:`.
                (crate::judge::VerifyCode::NotDecoded, _) => {
                    format!("; {name} chain: {}", v.describe())
                }
                (_, Some(d)) => format!("; {name} chain: err {} (depth {d})", v.describe()),
                (_, None) => format!("; {name} chain: err {}", v.describe()),
            };
            if j.mismatch.is_some() {
                reason += &format!(", against a --ca anchor that is not the CA the {name} sent");
            }
        }
    }
    let end = |side: Side, tls: TlsSide| End {
        side: tls,
        identity: c.identity[side.index()].as_ref(),
        certs: certs_seen(c, side, outcome),
        chain: c.chain[side.index()].as_ref(),
    };
    let facts = Facts {
        outcome,
        failed_by,
        fatal: p.fatal_alert.and_then(|f| {
            let by = c.role(f.side)?;
            Some((by, f.alert.map(|a| a.description)))
        }),
        fatal_seen: p.fatal_alert.is_some(),
        checked,
        certificate_requested: p.certificate_requested,
        server: end(server, TlsSide::Server),
        client: end(client, TlsSide::Client),
    };
    let remedy = remedy::remedy(&facts);
    SessionFinding {
        file,
        client: c.addr(client),
        server: c.addr(server),
        first_frame: c.first.frame,
        last_frame: c.last.frame,
        first_ts: c.first.ts,
        last_ts: c.last.ts,
        version: p.version.map(|v| v.to_string()),
        cipher: p.cipher.map(|v| v.to_string()),
        sni: p.sni.clone(),
        client_cert: p.certificates[client.index()].is_some_and(|n| n > 0),
        certificate_requested: p.certificate_requested,
        outcome,
        reason,
        failed_by,
        server_chain_verdict: c.chain[server.index()].as_ref().map(|j| j.verdict.clone()),
        client_chain_verdict: c.chain[client.index()].as_ref().map(|j| j.verdict.clone()),
        server_certificates: facts.server.certs,
        client_certificates: facts.client.certs,
        checked,
        remedy,
        server_identity: c.identity[server.index()].clone(),
        client_identity: c.identity[client.index()].clone(),
        alerts: [p.alerts[client.index()], p.alerts[server.index()]],
        conn: c.id.0,
        outer: c.outer.clone(),
        decrypted: d.decrypted.contains(&true),
        client_random: p.client_random.filter(|_| show_random).map(hex::encode),
        missing_secrets,
    }
}
