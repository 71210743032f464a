//! A capture -> what it says about each appliance: who it is (the sftunnel names in the
//! certificates), where it is (the flows), which certificates it presented, and how its
//! handshakes ended.
//!
//! One pass through `analysis` (the same engine and speed as `sfdiag analyze`), with a sink
//! that folds findings into per-appliance counters as they arrive: nothing per session is kept,
//! so memory grows with the number of appliances, not the length of the capture. A failed
//! handshake often carries no client certificate (the device gave up on the FMC's chain first);
//! it is counted against its client address and given to the device seen at that address
//! in any other session of the captures (bound at the end, so the order does not matter).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::analysis::{self, Finding, Outcome, SessionFinding};
use crate::judge::VerifyCode;
use crate::sftunnel::{SubjectRole, TlsSide};

/// Distinct appliances and addresses kept per run; beyond that they are counted only.
const CAP: usize = 100_000;

/// A certificate as last seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenCert {
    /// `None` when it did not decode.
    pub not_after: Option<OffsetDateTime>,
    /// Lowercase hex SHA-256 of its DER.
    pub sha256: String,
    /// The issuer's CN (the FMC's UUID for a certificate the InternalCA issued).
    pub issuer_cn: Option<String>,
    /// When it was last seen (the packet's time); `None` for a time out of range.
    pub seen: Option<OffsetDateTime>,
}

/// The last fatal alert of a failed handshake, as far as the capture could read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatalAlert {
    /// The AlertDescription number (48).
    pub code: u8,
    /// Its TLS registry name (`unknown_ca`).
    pub description: String,
    /// The sender's sftunnel role (`Fmc` or `Ftd`), by its own certificate in that session or,
    /// when it sent none, as the other end of one that did; `None` when neither end named
    /// itself.
    pub sender: Option<SubjectRole>,
    /// The sender's TLS side, by the hellos or else by its address; `None` when neither tells.
    pub side: Option<TlsSide>,
}

impl FatalAlert {
    /// A certificate alert: what OpenSSL sends when it refuses the peer's certificate
    /// (`ssl_verify_alarm_type`: 42 bad_certificate, 43 unsupported_certificate, 44
    /// certificate_revoked, 45 certificate_expired, 46 certificate_unknown, 48 unknown_ca,
    /// 51 decrypt_error for a bad signature).
    pub fn refuses_a_certificate(&self) -> bool {
        matches!(self.code, 42..=46 | 48 | 51)
    }
}

/// A managed peer's certificate against the FMC it talked to, in the latest session that
/// showed both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerCheck {
    /// The FMC's UUID, from its certificate's subject.
    pub fmc: String,
    /// The CN of the peer certificate's issuer, lowercase (an InternalCA's CN is its FMC's
    /// UUID).
    pub issuer: String,
    /// That session's last packet time.
    pub at: Option<OffsetDateTime>,
}

impl IssuerCheck {
    /// The certificate comes from another InternalCA than that FMC's: its CN names another
    /// FMC (a renewed InternalCA keeps its CN, so this does not see a renewal).
    pub fn foreign(&self) -> bool {
        self.fmc != self.issuer
    }
}

/// How an appliance's handshakes ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handshakes {
    /// Sessions that reached Established.
    pub ok: u64,
    /// Sessions that failed (a fatal alert, or a FIN/RST before the handshake finished).
    pub failed: u64,
    /// The reason of the last failed handshake, as the analyzer words it.
    pub last_error: Option<String>,
    /// The OpenSSL code of the last failed handshake's chain verdict, when one failed.
    pub last_code: Option<VerifyCode>,
    /// The last fatal alert of the last failed handshake; `None` when it had none that could
    /// be read (none sent, or encrypted without a key log).
    pub last_alert: Option<FatalAlert>,
    /// The last packet time of the latest established session; `None` when none was.
    pub last_ok: Option<OffsetDateTime>,
    /// The last packet time of the latest failed session; `None` when none failed.
    pub last_failed: Option<OffsetDateTime>,
    /// Its certificate's issuer against the FMC it talked to, in the latest session that
    /// showed both (a managed peer's only); `None` when none did.
    pub issuer_check: Option<IssuerCheck>,
}

/// What one session showed beyond its [`SessionFinding`], from the findings before it.
#[derive(Debug, Clone, Default)]
struct SessionFacts {
    alert: Option<FatalAlert>,
    issuer_check: Option<IssuerCheck>,
}

impl Handshakes {
    fn add(&mut self, s: &SessionFinding, facts: &SessionFacts) {
        let ts = s.last_ts.to_datetime();
        match s.outcome {
            Outcome::Established => {
                self.ok += 1;
                self.last_ok = later(self.last_ok, ts);
            }
            Outcome::Failed => {
                self.failed += 1;
                if ts >= self.last_failed || self.last_error.is_none() {
                    self.last_failed = later(self.last_failed, ts);
                    self.last_error = Some(s.reason.clone());
                    self.last_code = [&s.server_chain_verdict, &s.client_chain_verdict]
                        .into_iter()
                        .flatten()
                        .find(|v| !v.is_ok())
                        .map(|v| v.code);
                    self.last_alert = facts.alert.clone();
                }
            }
            Outcome::Incomplete | Outcome::EncryptedCertificates => {}
        }
        if let Some(c) = &facts.issuer_check {
            self.take_issuer_check(c);
        }
    }

    fn take_issuer_check(&mut self, c: &IssuerCheck) {
        if self.issuer_check.as_ref().is_none_or(|old| c.at >= old.at) {
            self.issuer_check = Some(c.clone());
        }
    }

    fn merge(&mut self, o: &Handshakes) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.last_ok = later(self.last_ok, o.last_ok);
        if o.last_error.is_some() && (self.last_error.is_none() || o.last_failed > self.last_failed)
        {
            self.last_failed = o.last_failed;
            self.last_error = o.last_error.clone();
            self.last_code = o.last_code;
            self.last_alert = o.last_alert.clone();
        }
        if let Some(c) = &o.issuer_check {
            self.take_issuer_check(c);
        }
    }

    /// Whether the last handshake seen succeeded (`None` when none ended either way).
    pub fn connected(&self) -> Option<bool> {
        match (self.ok, self.failed) {
            (0, 0) => None,
            (_, 0) => Some(true),
            (0, _) => Some(false),
            _ => Some(self.last_ok >= self.last_failed),
        }
    }
}

fn later(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    a.max(b)
}

/// One appliance as the captures show it.
#[derive(Debug, Clone, Default)]
pub struct SeenAppliance {
    /// FMC (its own certificate or its InternalCA was seen) or a managed peer.
    pub role: Option<SubjectRole>,
    /// The address it sent its certificate from, else (an FMC) the server address of its
    /// sessions; `None` when neither was seen.
    pub ip: Option<IpAddr>,
    /// Its own certificate, as last seen; `None` when it sent none.
    pub cert: Option<SeenCert>,
    /// Its sessions, and those from its address that named nobody.
    pub handshakes: Handshakes,
}

/// What the captures showed, by UUID, plus failed handshakes from addresses no certificate
/// names.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// By lowercase UUID, as its certificate's subject names it.
    pub appliances: BTreeMap<String, SeenAppliance>,
    /// The InternalCAs seen, by the FMC UUID in their CN.
    pub cas: BTreeMap<String, SeenCert>,
    /// Handshakes from client addresses that no certificate names.
    pub unnamed: BTreeMap<IpAddr, Handshakes>,
    /// Appliances or addresses beyond the cap, not kept.
    pub dropped: u64,
}

/// Folds findings into [`Seen`].
#[derive(Debug, Default)]
pub struct Fold {
    seen: Seen,
    /// Address -> UUID, learned from any session that named the peer there.
    by_ip: HashMap<IpAddr, String>,
    /// Handshakes per client address whose session named nobody.
    anonymous: HashMap<IpAddr, Handshakes>,
    /// What the findings before a session showed of it, by capture and connection index
    /// (the analyzer reports a connection's certificates and alerts before its session).
    pending: HashMap<(Arc<str>, u64), Pending>,
}

/// One connection's findings that its [`SessionFinding`] does not carry.
#[derive(Debug, Default)]
struct Pending {
    /// The last readable fatal alert: code, description, sender address, sender TLS side.
    alert: Option<(u8, String, SocketAddr, Option<TlsSide>)>,
    /// The issuer CN of the managed peer's own certificate sent in it (lowercase).
    peer_issuer: Option<String>,
}

impl Fold {
    /// An empty fold.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one finding.
    pub fn finding(&mut self, f: &Finding) {
        match f {
            Finding::Certificate(c) => {
                let Some(id) = &c.sftunnel else { return };
                let Some(uuid) = id.uuid.as_ref().map(|u| u.to_ascii_lowercase()) else {
                    return;
                };
                let seen = SeenCert {
                    not_after: c.not_after,
                    sha256: c.sha256.clone(),
                    issuer_cn: issuer_cn(c.issuer.as_deref()),
                    seen: c.ts.to_datetime(),
                };
                if id.role == SubjectRole::Ftd
                    && c.chain_index == 0
                    && let Some(p) = self.pending(&c.file, c.conn)
                {
                    p.peer_issuer = seen.issuer_cn.clone();
                }
                if id.role == SubjectRole::InternalCa {
                    let newer = self
                        .seen
                        .cas
                        .get(&uuid)
                        .is_none_or(|old| seen.seen >= old.seen);
                    if newer && (self.seen.cas.len() < CAP || self.seen.cas.contains_key(&uuid)) {
                        self.seen.cas.insert(uuid, seen);
                    }
                    return;
                }
                if c.chain_index != 0 {
                    return;
                }
                let ip = c.src.ip();
                let Some(a) = self.appliance(&uuid) else {
                    return;
                };
                a.role = Some(id.role);
                a.ip = Some(ip);
                if a.cert.as_ref().is_none_or(|old| seen.seen >= old.seen) {
                    a.cert = Some(seen);
                }
                if self.by_ip.len() < CAP {
                    self.by_ip.insert(ip, uuid);
                }
            }
            Finding::Alert(a) => {
                if a.is_fatal_plaintext()
                    && let (Some(code), Some(desc)) = (a.code, &a.description)
                    && let Some(p) = self.pending(&a.file, a.conn)
                {
                    p.alert = Some((code, desc.clone(), a.src, a.role));
                }
            }
            Finding::Session(s) => self.session(s),
            Finding::Chain(_) | Finding::Note(_) => {}
        }
    }

    /// The pending facts of a connection; `None` past the cap (its session then goes without).
    fn pending(&mut self, file: &Arc<str>, conn: u64) -> Option<&mut Pending> {
        let key = (file.clone(), conn);
        if self.pending.len() >= CAP && !self.pending.contains_key(&key) {
            return None;
        }
        Some(self.pending.entry(key).or_default())
    }

    fn appliance(&mut self, uuid: &str) -> Option<&mut SeenAppliance> {
        if !self.seen.appliances.contains_key(uuid) {
            if self.seen.appliances.len() >= CAP {
                self.seen.dropped += 1;
                return None;
            }
            self.seen
                .appliances
                .insert(uuid.to_string(), SeenAppliance::default());
        }
        self.seen.appliances.get_mut(uuid)
    }

    fn session(&mut self, s: &SessionFinding) {
        // The managed peer of the session: the client (a device dialing its FMC) or the
        // server (the FMC dialing a device), by the certificate it sent.
        let peer = [
            (TlsSide::Client, &s.client_identity, s.client.ip()),
            (TlsSide::Server, &s.server_identity, s.server.ip()),
        ]
        .into_iter()
        .find_map(|(_, id, ip)| {
            let id = id.as_ref()?;
            (id.role == SubjectRole::Ftd)
                .then(|| id.uuid.as_ref().map(|u| (u.to_ascii_lowercase(), ip)))
                .flatten()
        });
        let fmc = [&s.server_identity, &s.client_identity]
            .into_iter()
            .flatten()
            .find(|id| id.role == SubjectRole::Fmc)
            .and_then(|id| id.uuid.as_ref().map(|u| u.to_ascii_lowercase()));
        let pending = self
            .pending
            .remove(&(s.file.clone(), s.conn))
            .unwrap_or_default();
        let mut facts = SessionFacts {
            alert: pending.alert.map(|(code, description, src, role)| {
                let side = role.or(if src == s.client {
                    Some(TlsSide::Client)
                } else if src == s.server {
                    Some(TlsSide::Server)
                } else {
                    None
                });
                FatalAlert {
                    code,
                    description,
                    sender: side.and_then(|side| sender_role(s, side)),
                    side,
                }
            }),
            issuer_check: None,
        };
        if let Some(uuid) = &fmc
            && let Some(a) = self.appliance(uuid)
        {
            a.role = Some(SubjectRole::Fmc);
            a.handshakes.add(s, &facts);
            if a.ip.is_none() {
                a.ip = Some(s.server.ip());
            }
        }
        // Only the peer's own entry is judged by its certificate's issuer.
        facts.issuer_check = match (&fmc, pending.peer_issuer, &peer) {
            (Some(fmc), Some(issuer), Some(_)) => Some(IssuerCheck {
                fmc: fmc.clone(),
                issuer,
                at: s.last_ts.to_datetime(),
            }),
            _ => None,
        };
        match peer {
            Some((uuid, _)) => {
                if let Some(a) = self.appliance(&uuid) {
                    a.handshakes.add(s, &facts);
                }
            }
            None => {
                let ip = s.client.ip();
                if self.anonymous.len() < CAP || self.anonymous.contains_key(&ip) {
                    self.anonymous.entry(ip).or_default().add(s, &facts);
                } else {
                    self.seen.dropped += 1;
                }
            }
        }
    }

    /// Binds anonymous handshakes to the appliance seen at their address, and returns all.
    pub fn finish(mut self) -> Seen {
        for (ip, h) in std::mem::take(&mut self.anonymous) {
            match self.by_ip.get(&ip).cloned() {
                Some(uuid)
                    if self.seen.appliances.get(&uuid).and_then(|a| a.role)
                        != Some(SubjectRole::Fmc) =>
                {
                    if let Some(a) = self.seen.appliances.get_mut(&uuid) {
                        a.handshakes.merge(&h);
                    }
                }
                _ => {
                    self.seen.unnamed.entry(ip).or_default().merge(&h);
                }
            }
        }
        self.seen
    }
}

/// The sftunnel role of the end on `side`: by its own certificate, else as the other end of
/// one that named itself (an FMC's peer is a managed one, and the other way round).
fn sender_role(s: &SessionFinding, side: TlsSide) -> Option<SubjectRole> {
    let (own, other) = match side {
        TlsSide::Client => (&s.client_identity, &s.server_identity),
        TlsSide::Server => (&s.server_identity, &s.client_identity),
    };
    let role = |id: &Option<analysis::Identity>| {
        id.as_ref()
            .map(|i| i.role)
            .filter(|r| matches!(r, SubjectRole::Fmc | SubjectRole::Ftd))
    };
    role(own).or(match role(other) {
        Some(SubjectRole::Fmc) => Some(SubjectRole::Ftd),
        Some(SubjectRole::Ftd) => Some(SubjectRole::Fmc),
        _ => None,
    })
}

/// `CN=...` of an RFC 4514 issuer string.
fn issuer_cn(issuer: Option<&str>) -> Option<String> {
    let issuer = issuer?;
    // RFC 4514 escapes a comma inside a value as `\,`: split on the others only.
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for ch in issuer.chars() {
        if escaped {
            cur.push(ch);
            escaped = false;
        } else if ch == '\\' {
            cur.push(ch);
            escaped = true;
        } else if ch == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    parts.push(cur);
    parts
        .iter()
        .find_map(|p| p.strip_prefix("CN="))
        .map(|v| v.to_ascii_lowercase())
}

/// True when `head` (a file's first four bytes) is a pcap, pcapng or gzip magic number.
pub fn looks_like_capture(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some(
            [0xa1, 0xb2, 0xc3, 0xd4]
                | [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
    ) || head.starts_with(&[0x1f, 0x8b])
}

/// Runs one capture through the analyzer into `fold` (`at`: judge as if then).
pub fn read_capture(
    path: &Path,
    at: Option<OffsetDateTime>,
    anchors: &[crate::cert::CertInfo],
    fold: &mut Fold,
) -> Result<analysis::Summary, analysis::AnalysisError> {
    let opts = analysis::Options {
        anchors: anchors.to_vec(),
        at,
        ..analysis::Options::default()
    };
    let mut sink = |f: Finding| fold.finding(&f);
    analysis::analyze_path(path, &opts, &mut sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_cn_with_an_escaped_comma_before_it() {
        assert_eq!(
            issuer_cn(Some(
                "O=Cisco Systems\\, Inc,CN=CDB123C8-4347-11ef-aca1-f3aa241412a1,OU=Intrusion Management System,title=InternalCA"
            ))
            .as_deref(),
            Some("cdb123c8-4347-11ef-aca1-f3aa241412a1")
        );
        assert_eq!(issuer_cn(Some("O=x")), None);
    }

    #[test]
    fn connected_is_the_last_outcome() {
        let t = |s: i64| Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s));
        let mut h = Handshakes::default();
        assert_eq!(h.connected(), None);
        h.ok = 1;
        h.last_ok = t(10);
        h.failed = 2;
        h.last_failed = t(5);
        assert_eq!(h.connected(), Some(true));
        h.last_failed = t(20);
        assert_eq!(h.connected(), Some(false));
    }
}
