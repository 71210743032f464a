//! The default report: one messages-log line per finding worth a line, stamped with the packet's
//! time and naming the frame, then a per-session summary for each capture.
//!
//! Lines, in capture order:
//! - `-- FILE: stamps are UTC, year 2026 ...` before the first stamped line of a file (the
//!   messages-log stamp has no year, verdicts depend on it), again if the year changes;
//! - a certificate the first time it is seen in a file (`[INFO]`, `[WARN]` when its own verdict
//!   fails), logged by its receiver;
//! - a chain whose verdict fails, the way OpenSSL logs it: `[ERROR] err 10:certificate has
//!   expired (depth 1, issuer=/title=InternalCA/...)`, and a `[WARN]` line when the `--ca`
//!   anchor it was judged against is not the CA the peer sent;
//! - a plaintext or decrypted (`--keylog`) alert, logged by its receiver (encrypted ones are
//!   counted in the summary); decrypted certificates and alerts say so;
//! - `[ERROR] SSL handshake failed: <reason>` for a failed session;
//! - notes (gaps, parse errors, a cut capture).
//!
//! The summary groups sessions that share everything but the client port, frames and times, so
//! an hours-long capture of one device reconnecting gives one line, not thousands; each group
//! gives its first and last time with the year, says per side what the capture shows of the
//! certificates (a verdict, and whether it covers the chain or only dates; empty, encrypted,
//! not captured), and a remediation line for a session that is a problem. Groups are capped;
//! memory stays bounded.
//!
//! Names are OpenSSL's one-line form throughout (`/title=InternalCA/OU=.../CN=<uuid>`, the
//! certificate's own order, as the appliance's messages log prints them); JSON uses RFC 4514.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::net::SocketAddr;

use super::Renderer;
use super::syslog::write_line;
use crate::analysis::{
    AlertFinding, CertificateFinding, CertsSeen, ChainFinding, Checked, Finding, Identity,
    NoteFinding, Outcome, Remedy, SessionFinding, Summary, timestamp_rfc3339,
};
use crate::capture::Timestamp;
use crate::judge::{Verdict, VerifyCode};
use crate::sftunnel::{Level, SubjectRole, TlsSide, rfc3339};

/// Distinct session groups kept per file; more are counted only.
const GROUP_CAP: usize = 1000;
/// Distinct certificates remembered per file for "first time seen".
const SEEN_CAP: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    client_ip: std::net::IpAddr,
    server: SocketAddr,
    version: Option<String>,
    cipher: Option<String>,
    client_cert: bool,
    certificate_requested: bool,
    outcome: Outcome,
    reason: String,
    /// "FMC <uuid>" / "FTD <uuid>" (server, client).
    identities: [Option<String>; 2],
    /// Chain verdict codes (server, client).
    codes: [Option<i32>; 2],
    certs: [CertsSeen; 2],
    checked: Checked,
    remedy: Option<Remedy>,
}

#[derive(Debug, Clone)]
struct Group {
    key: GroupKey,
    count: u64,
    first_frame: u64,
    last_frame: u64,
    first_ts: Timestamp,
    last_ts: Timestamp,
    client: SocketAddr,
    verdicts: [Option<Verdict>; 2],
}

/// `--format text`.
pub struct Text<W: Write> {
    w: W,
    seen: HashSet<(String, i32)>,
    groups: HashMap<GroupKey, usize>,
    order: Vec<Group>,
    ungrouped: u64,
    /// The year last announced for this file's stamps (`None`: no stamped line yet).
    year: Option<i32>,
    /// A chain of this file was judged on its dates only (no `--ca`): the summary hints.
    dates_only: bool,
}

impl<W: Write> Text<W> {
    /// Lines written to `w` as findings come; the summary at each `file_done`.
    pub fn new(w: W) -> Self {
        Self {
            w,
            seen: HashSet::new(),
            groups: HashMap::new(),
            order: Vec::new(),
            ungrouped: 0,
            year: None,
            dates_only: false,
        }
    }

    /// One messages-log line, after the `-- FILE: ... year` line its stamp needs.
    fn line(
        &mut self,
        file: &str,
        ts: &Timestamp,
        host: &str,
        frame: u64,
        level: Level,
        text: &str,
    ) -> io::Result<()> {
        if let Some(t) = ts.to_datetime()
            && self.year != Some(t.year())
        {
            let first = self.year.is_none();
            self.year = Some(t.year());
            if first {
                writeln!(
                    self.w,
                    "-- {file}: stamps are UTC, year {} (first line at {})",
                    t.year(),
                    timestamp_rfc3339(ts)
                )?;
            } else {
                writeln!(
                    self.w,
                    "-- {file}: year {} from here ({})",
                    t.year(),
                    timestamp_rfc3339(ts)
                )?;
            }
        }
        write_line(&mut self.w, ts, host, Some(frame), level, text)
    }

    fn certificate(&mut self, c: &CertificateFinding) -> io::Result<()> {
        let code = c.verdict.code.code();
        if self.seen.len() >= SEEN_CAP {
            self.seen.clear();
        }
        if !self.seen.insert((c.sha256.clone(), code)) {
            return Ok(());
        }
        let role = c.role.map_or("peer".to_string(), |r| r.to_string());
        let level = if c.verdict.is_ok() {
            Level::Info
        } else {
            Level::Warn
        };
        let how = match (c.decrypted, c.post_handshake) {
            (true, true) => " (decrypted, post-handshake)",
            (true, false) => " (decrypted)",
            (false, true) => " (post-handshake)",
            (false, false) => "",
        };
        let mut text = format!(
            "{role} {} sent certificate {}{how}: subject={} issuer={} serial={} notBefore={} notAfter={} sha256={}",
            c.src,
            c.chain_index,
            c.subject_oneline.as_deref().unwrap_or("-"),
            c.issuer_oneline.as_deref().unwrap_or("-"),
            c.serial.as_deref().unwrap_or("-"),
            c.not_before.as_ref().map_or("-".into(), rfc3339),
            c.not_after.as_ref().map_or("-".into(), rfc3339),
            c.sha256,
        );
        if !c.verdict.is_ok() {
            text.push_str(&format!(" verdict={}", err_text(&c.verdict)));
        }
        if let Some(e) = &c.parse_error {
            text.push_str(&format!(" parse_error=\"{e}\""));
        }
        let host = c.dst.ip().to_string();
        self.line(&c.file, &c.ts, &host, c.frame, level, &text)
    }

    fn chain(&mut self, c: &ChainFinding) -> io::Result<()> {
        if c.checked == Checked::Dates {
            self.dates_only = true;
        }
        if c.verdict.is_ok() {
            return Ok(());
        }
        let role = c.role.map_or("peer".to_string(), |r| r.to_string());
        let text = format!(
            "{} ({}) in the chain from {role} {}",
            err_text(&c.verdict),
            where_(&c.verdict),
            c.src,
        );
        let host = c.dst.ip().to_string();
        self.line(&c.file, &c.ts, &host, c.frame, Level::Error, &text)?;
        if let Some(m) = &c.anchor_mismatch {
            let text = format!(
                "the --ca anchor at depth {} is not the CA the {role} sent: --ca has subject={} \
                 sha256={} notAfter={}, the {role} sent sha256={} notAfter={}: the verdict above \
                 is about the --ca file",
                m.depth,
                m.anchor.subject_oneline.as_deref().unwrap_or("-"),
                m.anchor.sha256,
                m.anchor.not_after.as_ref().map_or("-".into(), rfc3339),
                m.sent.sha256,
                m.sent.not_after.as_ref().map_or("-".into(), rfc3339),
            );
            self.line(&c.file, &c.ts, &host, c.frame, Level::Warn, &text)?;
        }
        Ok(())
    }

    fn alert(&mut self, a: &AlertFinding) -> io::Result<()> {
        let (Some(level), Some(code), Some(desc)) = (&a.level, a.code, &a.description) else {
            return Ok(());
        };
        let tag = match (level.is_fatal(), code) {
            (true, _) => Level::Error,
            (false, 0) => Level::Info,
            (false, _) => Level::Warn,
        };
        let role = a.role.map_or("peer".to_string(), |r| r.to_string());
        let how = if a.decrypted { " (decrypted)" } else { "" };
        let text = format!(
            "received {level} alert {code} {desc}{how} from {role} {}",
            a.src
        );
        let host = a.dst.ip().to_string();
        self.line(&a.file, &a.ts, &host, a.frame, tag, &text)
    }

    fn session(&mut self, s: &SessionFinding) -> io::Result<()> {
        if s.outcome == Outcome::Failed {
            let host = match s.failed_by {
                Some(TlsSide::Client) => s.client.ip(),
                _ => s.server.ip(),
            };
            let text = format!(
                "SSL handshake failed: {} ({} -> {})",
                s.reason, s.client, s.server
            );
            let host = host.to_string();
            self.line(
                &s.file,
                &s.last_ts,
                &host,
                s.last_frame,
                Level::Error,
                &text,
            )?;
        }
        let key = GroupKey {
            client_ip: s.client.ip(),
            server: s.server,
            version: s.version.clone(),
            cipher: s.cipher.clone(),
            client_cert: s.client_cert,
            certificate_requested: s.certificate_requested,
            outcome: s.outcome,
            reason: s.reason.clone(),
            identities: [identity(&s.server_identity), identity(&s.client_identity)],
            codes: [&s.server_chain_verdict, &s.client_chain_verdict]
                .map(|v| v.as_ref().map(|v| v.code.code())),
            certs: [s.server_certificates, s.client_certificates],
            checked: s.checked,
            remedy: s.remedy.clone(),
        };
        match self.groups.get(&key) {
            Some(&i) => {
                let g = &mut self.order[i];
                g.count += 1;
                g.first_frame = g.first_frame.min(s.first_frame);
                g.last_frame = g.last_frame.max(s.last_frame);
                g.first_ts = g.first_ts.min(s.first_ts);
                g.last_ts = g.last_ts.max(s.last_ts);
            }
            None if self.order.len() < GROUP_CAP => {
                self.groups.insert(key.clone(), self.order.len());
                self.order.push(Group {
                    key,
                    count: 1,
                    first_frame: s.first_frame,
                    last_frame: s.last_frame,
                    first_ts: s.first_ts,
                    last_ts: s.last_ts,
                    client: s.client,
                    verdicts: [
                        s.server_chain_verdict.clone(),
                        s.client_chain_verdict.clone(),
                    ],
                });
            }
            None => self.ungrouped += 1,
        }
        Ok(())
    }

    fn note(&mut self, n: &NoteFinding) -> io::Result<()> {
        match n.frame {
            Some(f) => writeln!(self.w, "note: [frame {f}] {}", n.kind),
            None => writeln!(self.w, "note: {}", n.kind),
        }
    }
}

/// `err 10:certificate has expired`, or for a certificate that could not be decoded (no
/// OpenSSL code) its words alone.
fn err_text(v: &Verdict) -> String {
    match v.code {
        VerifyCode::NotDecoded => v.describe(),
        _ => format!("err {}", v.describe()),
    }
}

/// `depth 1, issuer=/title=InternalCA/...`: the certificate a verdict is about.
fn where_(v: &Verdict) -> String {
    let depth = v.depth.map_or("-".to_string(), |d| d.to_string());
    let issuer = v.issuer_oneline.as_deref().unwrap_or("-");
    match &v.subject_oneline {
        Some(s) if v.issuer_oneline.as_ref() != Some(s) => {
            format!("depth {depth}, subject={s}, issuer={issuer}")
        }
        _ => format!("depth {depth}, issuer={issuer}"),
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A capture time to the second, with its year: `2026-11-26T15:21:19Z`.
fn when(t: &Timestamp) -> String {
    match t.to_datetime() {
        Some(dt) => rfc3339(&crate::sftunnel::whole_seconds(dt)),
        None => t.to_string(),
    }
}

/// One side's certificates as the capture shows them: a verdict (and what it covers), or why
/// there is none.
fn chain_text(certs: CertsSeen, v: &Option<Verdict>, checked: Checked) -> String {
    let unverified = match checked {
        Checked::Dates => "; chain not verified (no --ca)",
        Checked::Chain => "",
    };
    match (certs, v) {
        (_, Some(v)) => {
            let what = match checked {
                Checked::Chain => "chain",
                Checked::Dates => "dates",
            };
            if v.is_ok() {
                return format!("{what} ok{unverified}");
            }
            if v.code == VerifyCode::NotDecoded {
                // Nothing was verified, with or without --ca: the chain could not be read.
                return v.describe();
            }
            let depth = v.depth.map_or("-".to_string(), |d| d.to_string());
            format!("{what} {} (depth {depth}){unverified}", err_text(v))
        }
        (CertsSeen::Sent, None) => "certificates sent, not judged".to_string(),
        (CertsSeen::Empty, None) => "no certificate (an empty Certificate message)".to_string(),
        (CertsSeen::NotSent, None) => "no Certificate message".to_string(),
        (CertsSeen::Encrypted, None) => {
            "certificates encrypted (TLS 1.3), not seen (--keylog opens them)".to_string()
        }
        (CertsSeen::NotCaptured, None) => "handshake not in the capture".to_string(),
        (CertsSeen::PartlyCaptured, None) => {
            "no Certificate message read (bytes of the handshake not captured)".to_string()
        }
    }
}

/// The `client cert:` of a session line.
fn client_cert_text(k: &GroupKey) -> &'static str {
    match (k.certs[1], k.certificate_requested) {
        (CertsSeen::Sent, _) => "yes",
        (CertsSeen::Empty, true) => "no (asked for; an empty Certificate sent)",
        (CertsSeen::Empty, false) => "no (an empty Certificate sent)",
        (CertsSeen::NotSent, true) => "no (asked for; none sent)",
        (CertsSeen::NotSent, false) => "no (not asked for)",
        (CertsSeen::Encrypted, _) => "unknown (encrypted)",
        (CertsSeen::NotCaptured, _) => "unknown (handshake not in the capture)",
        (CertsSeen::PartlyCaptured, _) => "unknown (bytes of the handshake not captured)",
    }
}

fn identity(i: &Option<Identity>) -> Option<String> {
    let i = i.as_ref()?;
    let who = match i.role {
        SubjectRole::Fmc => "FMC",
        SubjectRole::Ftd => "FTD",
        SubjectRole::InternalCa => "InternalCA of FMC",
        SubjectRole::Other => return None,
    };
    Some(format!("{who} {}", i.uuid.as_deref().unwrap_or("?")))
}

impl<W: Write> Renderer for Text<W> {
    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        match f {
            Finding::Certificate(c) => self.certificate(c),
            Finding::Chain(c) => self.chain(c),
            Finding::Alert(a) => self.alert(a),
            Finding::Session(s) => self.session(s),
            Finding::Note(n) => self.note(n),
        }
    }

    fn file_done(&mut self, s: &Summary) -> io::Result<()> {
        let c = &s.counts;
        let filtered = if s.ports.is_empty() || s.net.filtered == 0 {
            String::new()
        } else {
            format!(
                "; {} on other ports left out by --port",
                plural(s.net.filtered, "TCP segment")
            )
        };
        writeln!(
            self.w,
            "== {}: {}, {} ({} not TLS{filtered}), {}, {}, {}, {}",
            s.file,
            plural(s.net.frames, "frame"),
            plural(s.net.connections, "TCP connection"),
            c.not_tls,
            plural(c.sessions, "TLS session"),
            plural(c.certificates, "certificate"),
            plural(c.alerts, "alert"),
            plural(c.problems, "problem"),
        )?;
        if !s.ports.is_empty() && s.net.connections == 0 && s.net.filtered > 0 {
            let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
            writeln!(
                self.w,
                "note: every TCP segment of this capture ({}) is on other ports than --port {}: \
                 nothing was analyzed; leave out --port, or name the port the tunnel uses \
                 (sftunnel: 8305)",
                s.net.filtered,
                ports.join(", ")
            )?;
        }
        for g in std::mem::take(&mut self.order) {
            let k = &g.key;
            let who = if g.count == 1 {
                format!("session {} -> {}", g.client, k.server)
            } else {
                format!("{} sessions {} -> {}", g.count, k.client_ip, k.server)
            };
            let (first, last) = (when(&g.first_ts), when(&g.last_ts));
            let span = if first == last {
                first
            } else {
                format!("{first} to {last}")
            };
            writeln!(
                self.w,
                "{who} (frames {}-{}, {span}): {} {} {}, client cert: {}",
                g.first_frame,
                g.last_frame,
                k.outcome.as_str(),
                k.version.as_deref().unwrap_or("-"),
                k.cipher.as_deref().unwrap_or("-"),
                client_cert_text(k),
            )?;
            writeln!(self.w, "    reason: {}", k.reason)?;
            for (name, i, certs, v) in [
                ("server", &k.identities[0], k.certs[0], &g.verdicts[0]),
                ("client", &k.identities[1], k.certs[1], &g.verdicts[1]),
            ] {
                let id = i.as_ref().map(|s| format!(" {s},")).unwrap_or_default();
                writeln!(
                    self.w,
                    "    {name}:{id} {}",
                    chain_text(certs, v, k.checked)
                )?;
            }
            if let Some(r) = &k.remedy {
                writeln!(self.w, "    remedy: {r}")?;
            }
        }
        if self.ungrouped > 0 {
            writeln!(
                self.w,
                "... and {} more sessions in other groups (see --format jsonl)",
                self.ungrouped
            )?;
        }
        if self.dates_only {
            writeln!(
                self.w,
                "hint: without --ca only the certificates' dates were judged; to verify the \
                 chains as the receiving side does, pass the CA it trusts with --ca (an FMC: \
                 /etc/sf/ca_root/cacert.pem, a device: /var/sf/peers/<FMC-UUID>/cacert.pem)"
            )?;
        }
        if let Some(e) = &s.read_error {
            if s.net.frames == 0 {
                writeln!(self.w, "capture could not be read: {e}")?;
            } else {
                writeln!(self.w, "capture not read to its end: {e}")?;
            }
        }
        self.groups.clear();
        self.seen.clear();
        self.ungrouped = 0;
        self.year = None;
        self.dates_only = false;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
