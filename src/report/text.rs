//! The default report: one messages-log line per finding worth a line, stamped with the packet's
//! time and naming the frame, then a per-session summary for each capture.
//!
//! Lines, in capture order:
//! - a certificate the first time it is seen in a file (`[INFO]`, `[WARN]` when its own verdict
//!   fails), logged by its receiver;
//! - a chain whose verdict fails, the way OpenSSL logs it: `[ERROR] err 10:certificate has
//!   expired (depth 1, issuer=/title=InternalCA/...)`;
//! - a plaintext or decrypted (`--keylog`) alert, logged by its receiver (encrypted ones are
//!   counted in the summary); decrypted certificates and alerts say so;
//! - `[ERROR] SSL handshake failed: <reason>` for a failed session;
//! - notes (gaps, parse errors, a cut capture).
//!
//! The summary groups sessions that share everything but the client port and frames, so an
//! hours-long capture of one device reconnecting gives one line, not thousands. Groups are
//! capped; memory stays bounded.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::net::SocketAddr;

use super::Renderer;
use super::syslog::write_line;
use crate::analysis::{
    AlertFinding, CertificateFinding, ChainFinding, Finding, Identity, NoteFinding, Outcome,
    SessionFinding, Summary,
};
use crate::judge::Verdict;
use crate::sftunnel::{Level, SubjectRole, rfc3339};

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
    outcome: Outcome,
    reason: String,
    /// "FMC <uuid>" / "FTD <uuid>" (server, client).
    identities: [Option<String>; 2],
    /// Chain verdict codes (server, client).
    codes: [Option<i32>; 2],
    /// TLS 1.3 whose records stayed encrypted: a chain not seen was not "none sent".
    hidden: bool,
}

#[derive(Debug, Clone)]
struct Group {
    key: GroupKey,
    count: u64,
    first_frame: u64,
    last_frame: u64,
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
}

impl<W: Write> Text<W> {
    pub fn new(w: W) -> Self {
        Self {
            w,
            seen: HashSet::new(),
            groups: HashMap::new(),
            order: Vec::new(),
            ungrouped: 0,
        }
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
            text.push_str(&format!(" verdict=err {}:{}", code, c.verdict.text()));
        }
        if let Some(e) = &c.parse_error {
            text.push_str(&format!(" parse_error=\"{e}\""));
        }
        let host = c.dst.ip().to_string();
        write_line(&mut self.w, &c.ts, &host, Some(c.frame), level, &text)
    }

    fn chain(&mut self, c: &ChainFinding) -> io::Result<()> {
        if c.verdict.is_ok() {
            return Ok(());
        }
        let role = c.role.map_or("peer".to_string(), |r| r.to_string());
        let text = format!(
            "err {}:{} ({}) in the chain from {role} {}",
            c.verdict.code.code(),
            c.verdict.text(),
            where_(&c.verdict),
            c.src,
        );
        let host = c.dst.ip().to_string();
        write_line(
            &mut self.w,
            &c.ts,
            &host,
            Some(c.frame),
            Level::Error,
            &text,
        )
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
        write_line(&mut self.w, &a.ts, &host, Some(a.frame), tag, &text)
    }

    fn session(&mut self, s: &SessionFinding) -> io::Result<()> {
        if s.outcome == Outcome::Failed {
            let host = match s.failed_by {
                Some(crate::sftunnel::TlsSide::Client) => s.client.ip(),
                _ => s.server.ip(),
            };
            let text = format!(
                "SSL handshake failed: {} ({} -> {})",
                s.reason, s.client, s.server
            );
            let host = host.to_string();
            write_line(
                &mut self.w,
                &s.last_ts,
                &host,
                Some(s.last_frame),
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
            outcome: s.outcome,
            reason: s.reason.clone(),
            identities: [identity(&s.server_identity), identity(&s.client_identity)],
            hidden: s
                .version
                .as_deref()
                .is_some_and(|v| v.starts_with("TLSv1.3"))
                && !s.decrypted,
            codes: [&s.server_chain_verdict, &s.client_chain_verdict]
                .map(|v| v.as_ref().map(|v| v.code.code())),
        };
        match self.groups.get(&key) {
            Some(&i) => {
                let g = &mut self.order[i];
                g.count += 1;
                g.first_frame = g.first_frame.min(s.first_frame);
                g.last_frame = g.last_frame.max(s.last_frame);
            }
            None if self.order.len() < GROUP_CAP => {
                self.groups.insert(key.clone(), self.order.len());
                self.order.push(Group {
                    key,
                    count: 1,
                    first_frame: s.first_frame,
                    last_frame: s.last_frame,
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

fn verdict_short(v: &Option<Verdict>) -> String {
    match v {
        None => "none sent".to_string(),
        Some(v) if v.is_ok() => "ok".to_string(),
        Some(v) => format!(
            "err {}:{} (depth {})",
            v.code.code(),
            v.text(),
            v.depth.map_or("-".to_string(), |d| d.to_string())
        ),
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
        writeln!(
            self.w,
            "== {}: {}, {} ({} not TLS), {}, {}, {}, {}",
            s.file,
            plural(s.net.frames, "frame"),
            plural(s.net.connections, "TCP connection"),
            c.not_tls,
            plural(c.sessions, "TLS session"),
            plural(c.certificates, "certificate"),
            plural(c.alerts, "alert"),
            plural(c.problems, "problem"),
        )?;
        for g in std::mem::take(&mut self.order) {
            let k = &g.key;
            let who = if g.count == 1 {
                format!("session {} -> {}", g.client, k.server)
            } else {
                format!("{} sessions {} -> {}", g.count, k.client_ip, k.server)
            };
            writeln!(
                self.w,
                "{who} (frames {}-{}): {} {} {}, client cert: {}",
                g.first_frame,
                g.last_frame,
                k.outcome.as_str(),
                k.version.as_deref().unwrap_or("-"),
                k.cipher.as_deref().unwrap_or("-"),
                if k.client_cert { "yes" } else { "no" },
            )?;
            writeln!(self.w, "    reason: {}", k.reason)?;
            let mut sides = Vec::new();
            for (name, i, v) in [
                ("server", &k.identities[0], &g.verdicts[0]),
                ("client", &k.identities[1], &g.verdicts[1]),
            ] {
                let id = i.as_ref().map(|s| format!(" {s},")).unwrap_or_default();
                let chain = match v {
                    None if k.hidden => "encrypted, not seen (--keylog opens it)".to_string(),
                    v => verdict_short(v),
                };
                sides.push(format!("{name}:{id} chain {chain}"));
            }
            writeln!(self.w, "    {}", sides.join("; "))?;
        }
        if self.ungrouped > 0 {
            writeln!(
                self.w,
                "... and {} more sessions in other groups (see --format jsonl)",
                self.ungrouped
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
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
