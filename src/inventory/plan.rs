//! `sfdiag inventory`: one entry per FMC, device and HA secondary, and what renewal asks of it.
//!
//! Entries come from two kinds of evidence, joined by UUID:
//! - files: an appliance tree (a lab root, or a copy of real appliances' folders) names each
//!   appliance in its `ims.conf` and holds the certificate and InternalCA it uses (a device's
//!   `var/sf/peers/<FMC>/`, an FMC's `etc/sf/`); a loose folder of certificates names them by
//!   their subjects (`title`, `generationQualifier=sftunnel_<uuid>`, the InternalCA's CN);
//! - captures (`capture`): the same names on the wire, the addresses, and how handshakes ended.
//!
//! The action ([`decide`]) is pure and follows FN #74214's procedure: an FMC whose InternalCA
//! or own certificate (or one of its peers' certificates) ends within the health-alert window
//! (`warn_days`, 90 by default) must `renew`; then each of its peers either takes the `push`
//! (it is connected, or nothing says otherwise) or needs a `copy` (it is not connected: it will
//! be in FAILED_PUSH). A peer that already trusts another InternalCA than its FMC's current one,
//! or whose files do not fit together, or that showed the FMC it talked to a certificate of
//! another FMC's InternalCA, needs a `copy` now; so does one whose last handshake failed on a
//! certificate that is not merely out of its dates (by the chain's verdict, or by the fatal
//! certificate alert one end sent: the refusal on the wire counts whatever `--ca` was given).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::capture::{FatalAlert, Handshakes, Seen};
use super::collect::{Collection, FileCert, Unreadable};
use super::peers::{PeerProblem, ProblemKind};
use crate::judge::VerifyCode;
use crate::pki::conf;
use crate::pki::expiry::{self, Status, Thresholds};
use crate::pki::layout::{read_text, rel};
use crate::pki::roles::PathRole;
use crate::sftunnel::{Role, SubjectRole};

/// What renewal asks of an appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Nothing to do.
    None,
    /// It is connected: `pki renew` (generate_certs.pl) pushes its new files.
    Push,
    /// It is not (or its files are already out of step): `pki copy` (copy_sftunnel_certs.py).
    Copy,
    /// Its InternalCA or certificate ends soon: run the renewal on it.
    Renew,
}

impl Action {
    /// `none`, `push`, `copy`, `renew` (CLI.md).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Push => "push",
            Action::Copy => "copy",
            Action::Renew => "renew",
        }
    }
}

/// Why an action was chosen, with its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Nothing ends within the thresholds and nothing failed.
    Fine,
    /// Its InternalCA or its certificate ends in `days_left` days (negative: expired).
    Ends {
        /// `InternalCA` or `certificate`: whichever ends first.
        what: &'static str,
        /// Whole days until it ends.
        days_left: i64,
    },
    /// A peer's certificate ends soon: the FMC reissues it by renewing.
    PeerEnds {
        /// The peer, by name, else UUID.
        peer: String,
        /// Whole days until its certificate ends.
        days_left: i64,
    },
    /// Its FMC renews; it is connected (or nothing says it is not).
    FmcRenewsConnected,
    /// Its FMC renews; its last handshake failed.
    FmcRenewsNotConnected,
    /// The cross-check found this problem.
    Problem(ProblemKind),
    /// Its last handshake failed with this certificate verdict.
    HandshakeFailed(VerifyCode),
    /// Its last handshake failed on this fatal certificate alert, sent by its FMC (refusing
    /// its certificate) or by itself (refusing the FMC's).
    Refused {
        /// The alert's registry name (`unknown_ca`).
        alert: String,
        /// The FMC sent it (else the peer itself did).
        by_fmc: bool,
    },
    /// In its latest session that showed both, its certificate's issuer was not the
    /// InternalCA of the FMC it talked to: the wire's `ca_mismatch`.
    ForeignIssuer {
        /// The FMC it talked to, by UUID.
        fmc: String,
        /// Its certificate issuer's CN (the UUID of the FMC whose InternalCA issued it).
        issuer: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Fine => f.write_str("nothing ends within the thresholds"),
            Reason::Ends { what, days_left } if *days_left < 0 => {
                write!(f, "its {what} expired {} days ago", -days_left)
            }
            Reason::Ends { what, days_left } => write!(f, "its {what} ends in {days_left} days"),
            Reason::PeerEnds { peer, days_left } => {
                write!(f, "{peer}'s certificate ends in {days_left} days")
            }
            Reason::FmcRenewsConnected => {
                f.write_str("its FMC renews; connected, so the renewal pushes its files")
            }
            Reason::FmcRenewsNotConnected => f.write_str(
                "its FMC renews; not connected, so the push will fail (FAILED_PUSH): copy its files",
            ),
            Reason::Problem(ProblemKind::CaMismatch) => f.write_str(
                "it trusts another InternalCA than its FMC's current one (renewed, not copied)",
            ),
            Reason::Problem(ProblemKind::Chain) => {
                f.write_str("its certificate does not chain to the InternalCA it trusts")
            }
            Reason::Problem(ProblemKind::KeyMismatch) => {
                f.write_str("its key does not match its certificate")
            }
            Reason::Problem(ProblemKind::KeyUnreadable) => f.write_str("its key cannot be read"),
            Reason::Problem(ProblemKind::Missing) => f.write_str("some of its tunnel files are missing"),
            Reason::Problem(ProblemKind::Interrupted) => f.write_str(
                "a change to its root was interrupted: run `sfdiag pki renew` or `sfdiag pki copy` to finish it",
            ),
            Reason::HandshakeFailed(code) => write!(
                f,
                "its last handshake failed: err {}:{}",
                code.code(),
                code.text()
            ),
            Reason::Refused {
                alert,
                by_fmc: true,
            } => write!(
                f,
                "its last handshake failed: the FMC refused its certificate (fatal {alert})"
            ),
            Reason::Refused {
                alert,
                by_fmc: false,
            } => write!(
                f,
                "its last handshake failed: it refused the FMC's certificate (fatal {alert})"
            ),
            Reason::ForeignIssuer { fmc, issuer } => write!(
                f,
                "its certificate was issued by the InternalCA of {issuer}, not of the FMC {fmc} it talked to"
            ),
        }
    }
}

/// A certificate an entry refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSource {
    /// `None` when it did not decode.
    pub not_after: Option<OffsetDateTime>,
    /// Lowercase hex SHA-256 of its DER.
    pub sha256: String,
    /// The file it came from, or `None` when it was seen on the wire.
    pub file: Option<PathBuf>,
}

/// One appliance.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Lowercase, from its certificates' subjects or its `ims.conf`; `None` for a client address
    /// whose sessions named nobody.
    pub uuid: Option<String>,
    /// From its `ims.conf`; `None` when no appliance tree names it.
    pub name: Option<String>,
    /// From its `ims.conf`, else its certificate's subject (a device when nothing says).
    pub role: Role,
    /// From its `ims.conf`, else the captures; `None` when neither says.
    pub ip: Option<IpAddr>,
    /// Its sftunnel certificate; `None` when the inputs hold none.
    pub cert: Option<CertSource>,
    /// The InternalCA it uses: an FMC's own, a peer's copy (or, from a capture, the one that
    /// issued its certificate); `None` when the inputs hold none.
    pub ca: Option<CertSource>,
    /// The UUID of the FMC that manages it (`None` for an FMC).
    pub manager: Option<String>,
    /// Whole days until the first of `cert` and `ca` ends; `None` when neither has a date.
    pub days_left: Option<i64>,
    /// That by the thresholds (OK, WARNING within the health-alert window, CRITICAL);
    /// UNKNOWN when `days_left` is `None`.
    pub status: Status,
    /// From captures only; `None` when no capture was given or it never showed it.
    pub handshakes: Option<Handshakes>,
    /// Cross-check problems of its files.
    pub problems: Vec<ProblemKind>,
    /// What renewal asks of it ([`decide`]).
    pub action: Action,
    /// Why, with the facts.
    pub reason: Reason,
}

/// What `inventory` found.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The moment judged at.
    pub at: OffsetDateTime,
    /// `warn_days` is the health-alert window that makes an FMC renew.
    pub thresholds: Thresholds,
    /// FMCs first, then devices and HA secondaries, each by name (or UUID, or address).
    pub entries: Vec<Entry>,
    /// Inputs that could not be read.
    pub unreadable: Vec<Unreadable>,
}

impl Inventory {
    /// 0 every entry fine, 1 some entry needs action, 2 an input could not be read (CLI.md).
    pub fn exit_code(&self) -> u8 {
        if !self.unreadable.is_empty() {
            2
        } else if self.entries.iter().any(|e| e.action != Action::None) {
            1
        } else {
            0
        }
    }
}

/// An appliance being assembled, keyed by UUID (or by address when nothing names it).
#[derive(Debug, Default, Clone)]
struct Draft {
    uuid: Option<String>,
    name: Option<String>,
    role: Option<Role>,
    ip: Option<IpAddr>,
    /// (certificate, priority): the appliance's own file beats an FMC's pushed copy, which
    /// beats a loose file or the wire.
    cert: Option<(CertSource, u8, Option<String>)>,
    ca: Option<(CertSource, u8)>,
    manager: Option<String>,
    handshakes: Option<Handshakes>,
    problems: Vec<ProblemKind>,
}

impl Draft {
    fn offer_cert(&mut self, c: CertSource, prio: u8, issuer_cn: Option<String>) {
        if self.cert.as_ref().is_none_or(|(_, p, _)| prio > *p) {
            self.cert = Some((c, prio, issuer_cn));
        }
    }
    fn offer_ca(&mut self, c: CertSource, prio: u8) {
        if self.ca.as_ref().is_none_or(|(_, p)| prio > *p) {
            self.ca = Some((c, prio));
        }
    }
}

fn source(c: &FileCert) -> CertSource {
    CertSource {
        not_after: c.info.not_after,
        sha256: c.info.sha256.clone(),
        file: Some(c.file.clone()),
    }
}

fn issuer_cn(c: &FileCert) -> Option<String> {
    c.info
        .issuer
        .as_ref()
        .and_then(|n| n.get("CN"))
        .map(|s| s.to_ascii_lowercase())
}

/// An appliance folder's `ims.conf`, read once.
fn identity(
    root: &Path,
    cache: &mut BTreeMap<PathBuf, Option<conf::ImsConf>>,
) -> Option<conf::ImsConf> {
    cache
        .entry(root.to_path_buf())
        .or_insert_with(|| {
            let p = root.join(rel::IMS_CONF);
            let text = read_text(&p).ok()?;
            conf::parse_ims_conf(&text, &p).ok()
        })
        .clone()
}

/// Builds the plan from files (`collection`, with the cross-check's `problems`) and what
/// captures showed (`seen`), judged at `at`.
pub fn plan(
    collection: &Collection,
    problems: &[PeerProblem],
    seen: Option<&Seen>,
    at: OffsetDateTime,
    thresholds: Thresholds,
) -> Inventory {
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    let mut ims = BTreeMap::new();
    // Appliance folder -> the UUID its entry goes by, to attach cross-check problems.
    let mut folder_uuid: BTreeMap<PathBuf, String> = BTreeMap::new();
    // The InternalCA of each FMC UUID: its own `ca_root` copy, else the latest-ending copy.
    let mut cas: BTreeMap<String, (CertSource, bool)> = BTreeMap::new();

    for c in &collection.certs {
        if c.place.as_ref().is_some_and(|p| p.backup) {
            continue;
        }
        let id = c.info.sftunnel_identity();
        let Some(uuid) = id.uuid.as_ref().map(|u| u.to_ascii_lowercase()) else {
            continue;
        };
        if id.role == SubjectRole::Other {
            continue;
        }
        let place = c.place.as_ref();
        let conf = place.and_then(|p| identity(&p.appliance_root, &mut ims));
        match id.role {
            SubjectRole::InternalCa => {
                // The FMC's own copy (ca_root) wins over a device's or a pushed copy.
                let own = place.is_some_and(|p| p.role == PathRole::InternalCa);
                let better = cas.get(&uuid).is_none_or(|(old, old_own)| {
                    own || (!old_own && c.info.not_after > old.not_after)
                });
                if better {
                    cas.insert(uuid.clone(), (source(c), own));
                }
                let d = drafts.entry(uuid.clone()).or_default();
                d.uuid = Some(uuid.clone());
                d.role = d.role.or(Some(Role::Fmc));
                d.offer_ca(source(c), if own { 3 } else { 1 });
                if own && let Some(place) = place {
                    folder_uuid.insert(place.appliance_root.clone(), uuid.clone());
                    if let Some(conf) = &conf {
                        d.name = Some(conf.identity.name.clone());
                        d.ip = Some(conf.identity.ip);
                    }
                }
                // A device's copy is the CA that device uses.
                if let (Some(PathRole::CaCopy { .. }), Some(conf)) = (place.map(|p| &p.role), &conf)
                {
                    let dev = conf.identity.uuid.to_string();
                    // Its problems find it by its folder even when its certificate is missing.
                    if let Some(place) = place {
                        folder_uuid
                            .entry(place.appliance_root.clone())
                            .or_insert_with(|| dev.clone());
                    }
                    let d = drafts.entry(dev.clone()).or_default();
                    d.uuid = Some(dev);
                    d.name = d.name.take().or(Some(conf.identity.name.clone()));
                    d.ip = d.ip.or(Some(conf.identity.ip));
                    d.offer_ca(source(c), 3);
                }
            }
            SubjectRole::Fmc | SubjectRole::Ftd => {
                let prio = match place.map(|p| &p.role) {
                    Some(PathRole::FmcCert | PathRole::OwnPeerCert { .. }) => 3,
                    Some(PathRole::PushedCert { .. }) => 2,
                    _ => 1,
                };
                let d = drafts.entry(uuid.clone()).or_default();
                d.uuid = Some(uuid.clone());
                let role = match id.role {
                    SubjectRole::Fmc => Role::Fmc,
                    _ => Role::Device,
                };
                d.role = Some(match (d.role, role) {
                    (Some(Role::HaSecondary), _) => Role::HaSecondary,
                    (_, r) => r,
                });
                d.offer_cert(source(c), prio, issuer_cn(c));
                if prio == 3 {
                    let place = place.expect("priority 3 comes from a place");
                    folder_uuid.insert(place.appliance_root.clone(), uuid.clone());
                    if let Some(conf) = conf
                        .as_ref()
                        .filter(|c| c.identity.uuid.to_string() == uuid)
                    {
                        d.name = Some(conf.identity.name.clone());
                        d.ip = Some(conf.identity.ip);
                        d.role = Some(conf.identity.role);
                    }
                    if let PathRole::OwnPeerCert { manager } = &place.role {
                        d.manager = Some(manager.to_ascii_lowercase());
                    }
                }
            }
            SubjectRole::Other => {}
        }
    }
    for p in problems {
        // A problem of an FMC's own files (`etc/sf/keys`) and one of its peer folders share
        // the folder; the peer folder's problems go to the appliance named there.
        if let Some(uuid) = folder_uuid.get(&p.appliance)
            && let Some(d) = drafts.get_mut(uuid)
            && !d.problems.contains(&p.kind)
        {
            d.problems.push(p.kind);
        }
    }

    if let Some(seen) = seen {
        for (uuid, ca) in &seen.cas {
            let src = CertSource {
                not_after: ca.not_after,
                sha256: ca.sha256.clone(),
                file: None,
            };
            cas.entry(uuid.clone())
                .or_insert_with(|| (src.clone(), false));
            let d = drafts.entry(uuid.clone()).or_default();
            d.uuid = Some(uuid.clone());
            d.role = d.role.or(Some(Role::Fmc));
            d.offer_ca(src, 0);
        }
        for (uuid, a) in &seen.appliances {
            let d = drafts.entry(uuid.clone()).or_default();
            d.uuid = Some(uuid.clone());
            d.role = d.role.or(match a.role {
                Some(SubjectRole::Fmc) => Some(Role::Fmc),
                Some(SubjectRole::Ftd) => Some(Role::Device),
                _ => None,
            });
            d.ip = d.ip.or(a.ip);
            if let Some(c) = &a.cert {
                d.offer_cert(
                    CertSource {
                        not_after: c.not_after,
                        sha256: c.sha256.clone(),
                        file: None,
                    },
                    0,
                    c.issuer_cn.clone(),
                );
            }
            d.handshakes = Some(a.handshakes.clone());
        }
        for (ip, h) in &seen.unnamed {
            drafts.insert(
                format!("ip:{ip}"),
                Draft {
                    ip: Some(*ip),
                    role: Some(Role::Device),
                    handshakes: Some(h.clone()),
                    ..Draft::default()
                },
            );
        }
    }

    // A managed peer with no CA of its own in the inputs uses the one that issued its
    // certificate; its manager is the FMC it was seen talking to, else that CA's FMC.
    for d in drafts.values_mut() {
        if d.role == Some(Role::Fmc) {
            if d.ca.is_none()
                && let Some(u) = &d.uuid
                && let Some((ca, _)) = cas.get(u)
            {
                d.offer_ca(ca.clone(), 0);
            }
            continue;
        }
        let issuer = d.cert.as_ref().and_then(|(_, _, i)| i.clone());
        if d.manager.is_none() {
            d.manager = d
                .handshakes
                .as_ref()
                .and_then(|h| h.issuer_check.as_ref())
                .map(|c| c.fmc.clone())
                .or(issuer.clone());
        }
        if d.ca.is_none()
            && let Some((ca, _)) = issuer.and_then(|i| cas.get(&i))
        {
            d.offer_ca(ca.clone(), 0);
        }
    }

    let mut entries: Vec<Entry> = drafts
        .into_values()
        .map(|d| {
            let days = |c: &Option<CertSource>| {
                c.as_ref()
                    .and_then(|c| c.not_after)
                    .map(|na| (na - at).whole_days())
            };
            let cert = d.cert.map(|(c, _, _)| c);
            let ca = d.ca.map(|(c, _)| c);
            let cert_days = days(&cert);
            let ca_days = days(&ca);
            let days_left = match (cert_days, ca_days) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let ends = [cert.as_ref(), ca.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|c| c.not_after)
                .min();
            let status = match ends {
                Some(na) => expiry::assess(OffsetDateTime::UNIX_EPOCH, na, at, &thresholds).status,
                None => Status::Unknown,
            };
            Entry {
                uuid: d.uuid,
                name: d.name,
                role: d.role.unwrap_or(Role::Device),
                ip: d.ip,
                cert,
                ca,
                manager: d.manager,
                days_left,
                status,
                handshakes: d.handshakes,
                problems: d.problems,
                action: Action::None,
                reason: Reason::Fine,
            }
            .with_days(cert_days, ca_days)
        })
        .collect();
    decide(&mut entries, &thresholds);
    entries.sort_by(|a, b| {
        let rank = |e: &Entry| u8::from(e.role != Role::Fmc);
        let name = |e: &Entry| {
            e.name
                .clone()
                .or(e.uuid.clone())
                .unwrap_or_else(|| e.ip.map(|i| i.to_string()).unwrap_or_default())
        };
        (rank(a), name(a)).cmp(&(rank(b), name(b)))
    });
    Inventory {
        at,
        thresholds,
        entries,
        unreadable: collection.unreadable.clone(),
    }
}

impl Entry {
    /// Keeps which of its certificates ends first for [`decide`]'s reason.
    fn with_days(mut self, cert_days: Option<i64>, ca_days: Option<i64>) -> Self {
        self.reason = match (cert_days, ca_days) {
            (Some(c), Some(a)) if a <= c => Reason::Ends {
                what: "InternalCA",
                days_left: a,
            },
            (Some(c), _) => Reason::Ends {
                what: "certificate",
                days_left: c,
            },
            (None, Some(a)) => Reason::Ends {
                what: "InternalCA",
                days_left: a,
            },
            (None, None) => Reason::Fine,
        };
        self
    }
}

/// Sets every entry's action (see the module doc). Entries come with `reason` saying which
/// of their certificates ends first.
pub fn decide(entries: &mut [Entry], t: &Thresholds) {
    let soon = |days: Option<i64>| days.is_some_and(|d| d < i64::from(t.warn_days));
    // FMCs that renew: their own files end soon, or a peer's certificate does.
    let mut renewing: BTreeMap<String, Reason> = BTreeMap::new();
    for e in entries.iter() {
        if e.role == Role::Fmc
            && soon(e.days_left)
            && let Some(u) = &e.uuid
        {
            renewing.insert(u.clone(), e.reason.clone());
        }
    }
    for e in entries.iter() {
        if e.role == Role::Fmc {
            continue;
        }
        if let (
            Some(m),
            Reason::Ends {
                what: "certificate",
                days_left,
            },
        ) = (&e.manager, &e.reason)
            && soon(Some(*days_left))
        {
            renewing.entry(m.clone()).or_insert(Reason::PeerEnds {
                peer: e
                    .name
                    .clone()
                    .or(e.uuid.clone())
                    .unwrap_or_else(|| "a peer".into()),
                days_left: *days_left,
            });
        }
    }
    for e in entries.iter_mut() {
        let connected = e.handshakes.as_ref().and_then(Handshakes::connected);
        let foreign = e
            .handshakes
            .as_ref()
            .and_then(|h| h.issuer_check.as_ref())
            .filter(|c| c.foreign());
        let (action, reason) =
            if e.role == Role::Fmc && e.problems.contains(&ProblemKind::Interrupted) {
                // A renewal a kill left half made: `pki renew` (or `pki copy`) finishes it first.
                (Action::Renew, Reason::Problem(ProblemKind::Interrupted))
            } else if e.role == Role::Fmc {
                match e.uuid.as_ref().and_then(|u| renewing.get(u)) {
                    Some(r) => (Action::Renew, r.clone()),
                    None => (Action::None, Reason::Fine),
                }
            } else if let Some(p) = e.problems.first() {
                (Action::Copy, Reason::Problem(*p))
            } else if let Some(c) = foreign {
                let reason = Reason::ForeignIssuer {
                    fmc: c.fmc.clone(),
                    issuer: c.issuer.clone(),
                };
                e.problems.push(ProblemKind::CaMismatch);
                (Action::Copy, reason)
            } else if e.manager.as_ref().is_some_and(|m| renewing.contains_key(m)) {
                if connected == Some(false) {
                    (Action::Copy, Reason::FmcRenewsNotConnected)
                } else {
                    (Action::Push, Reason::FmcRenewsConnected)
                }
            } else if connected == Some(false)
                && let Some(code) = e.handshakes.as_ref().and_then(|h| h.last_code)
                && code != VerifyCode::CertHasExpired
                && code != VerifyCode::CertNotYetValid
            {
                (Action::Copy, Reason::HandshakeFailed(code))
            } else if connected == Some(false)
                && let Some(h) = e.handshakes.as_ref()
                && !h.last_code.is_some_and(|c| {
                    c == VerifyCode::CertHasExpired || c == VerifyCode::CertNotYetValid
                })
                && let Some(a) = h.last_alert.as_ref().filter(|a| refusal(a))
            {
                let by_fmc = a.sender == Some(SubjectRole::Fmc);
                (
                    Action::Copy,
                    Reason::Refused {
                        alert: a.description.clone(),
                        by_fmc,
                    },
                )
            } else {
                (Action::None, Reason::Fine)
            };
        e.action = action;
        e.reason = reason;
    }
}

/// A fatal alert of a failed handshake that a `copy` answers: the FMC refused the peer's
/// certificate (any certificate alert), or the peer refused the FMC's for want of the right
/// InternalCA (48 unknown_ca, 51 decrypt_error: what a `ca_mismatch` looks like on the wire).
/// The peer's other refusals (expired, not yet valid: OpenSSL's bad_certificate) are the FMC's
/// to renew or a clock's; a chain verdict out of dates is left to them too (the caller checks
/// that).
fn refusal(a: &FatalAlert) -> bool {
    a.refuses_a_certificate()
        && match a.sender {
            Some(SubjectRole::Fmc) => true,
            Some(SubjectRole::Ftd) => matches!(a.code, 48 | 51),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::capture::IssuerCheck;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2034-09-01 00:00 UTC);
    const FMC: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";

    fn entry(role: Role, uuid: &str, days: i64, h: Option<Handshakes>) -> Entry {
        let src = CertSource {
            not_after: Some(AT + time::Duration::days(days)),
            sha256: String::new(),
            file: None,
        };
        Entry {
            uuid: Some(uuid.into()),
            name: None,
            role,
            ip: None,
            cert: Some(src.clone()),
            ca: Some(src),
            manager: (role != Role::Fmc).then(|| FMC.to_string()),
            days_left: Some(days),
            status: Status::Ok,
            handshakes: h,
            problems: Vec::new(),
            action: Action::None,
            reason: Reason::Ends {
                what: "InternalCA",
                days_left: days,
            },
        }
    }

    fn failed(code: VerifyCode) -> Option<Handshakes> {
        Some(Handshakes {
            ok: 3,
            failed: 1,
            last_error: Some("x".into()),
            last_code: Some(code),
            last_alert: None,
            last_ok: Some(AT - time::Duration::days(2)),
            last_failed: Some(AT - time::Duration::days(1)),
            issuer_check: None,
        })
    }

    #[test]
    fn renewal_pushes_to_the_connected_and_copies_to_the_rest() {
        let t = Thresholds::default();
        let mut es = vec![
            entry(Role::Fmc, FMC, 40, None),
            entry(Role::Device, "a", 40, None),
            entry(Role::Device, "b", 40, failed(VerifyCode::CertHasExpired)),
            entry(Role::HaSecondary, "c", 40, None),
        ];
        decide(&mut es, &t);
        let got: Vec<Action> = es.iter().map(|e| e.action).collect();
        assert_eq!(
            got,
            [Action::Renew, Action::Push, Action::Copy, Action::Push]
        );
        assert_eq!(es[2].reason, Reason::FmcRenewsNotConnected);
    }

    #[test]
    fn far_from_the_end_only_a_failing_certificate_asks_for_a_copy() {
        let t = Thresholds::default();
        let mut es = vec![
            entry(Role::Fmc, FMC, 3000, None),
            entry(
                Role::Device,
                "a",
                3000,
                failed(VerifyCode::CertSignatureFailure),
            ),
            entry(Role::Device, "b", 3000, failed(VerifyCode::CertHasExpired)),
            entry(Role::Device, "c", 3000, None),
        ];
        es[3].problems.push(ProblemKind::KeyMismatch);
        decide(&mut es, &t);
        let got: Vec<Action> = es.iter().map(|e| e.action).collect();
        assert_eq!(
            got,
            [Action::None, Action::Copy, Action::None, Action::Copy]
        );
        assert_eq!(
            es[1].reason.to_string(),
            "its last handshake failed: err 7:certificate signature failure"
        );
    }

    fn refused(code: u8, sender: SubjectRole, verdict: Option<VerifyCode>) -> Option<Handshakes> {
        let mut h = failed(VerifyCode::Ok)?;
        h.last_code = verdict;
        h.last_alert = Some(FatalAlert {
            code,
            description: format!("alert {code}"),
            sender: Some(sender),
            side: None,
        });
        Some(h)
    }

    #[test]
    fn a_certificate_refused_on_the_wire_asks_for_a_copy_unless_dates_explain_it() {
        use SubjectRole::{Fmc, Ftd};
        let t = Thresholds::default();
        let cases = [
            // The FMC refuses the device's certificate: any certificate alert.
            (refused(48, Fmc, None), Action::Copy),
            (refused(45, Fmc, None), Action::Copy),
            (refused(42, Fmc, None), Action::Copy),
            // The device refuses the FMC's for want of its InternalCA ...
            (refused(51, Ftd, None), Action::Copy),
            (refused(48, Ftd, None), Action::Copy),
            // ... but an expired or not yet valid FMC chain is not a copy's to fix.
            (refused(45, Ftd, None), Action::None),
            (refused(42, Ftd, None), Action::None),
            // A verdict out of dates, whoever sent the alert.
            (
                refused(42, Fmc, Some(VerifyCode::CertNotYetValid)),
                Action::None,
            ),
            (
                refused(45, Fmc, Some(VerifyCode::CertHasExpired)),
                Action::None,
            ),
            // Not a certificate alert, or no sender known.
            (refused(40, Fmc, None), Action::None),
        ];
        for (h, want) in cases {
            let mut es = vec![
                entry(Role::Fmc, FMC, 3000, None),
                entry(Role::Device, "a", 3000, h.clone()),
            ];
            decide(&mut es, &t);
            assert_eq!(es[1].action, want, "{h:?}");
        }
        let mut es = vec![entry(Role::Device, "a", 3000, refused(48, Fmc, None))];
        decide(&mut es, &t);
        assert_eq!(
            es[0].reason.to_string(),
            "its last handshake failed: the FMC refused its certificate (fatal alert 48)"
        );
        // Connected again since: nothing to do.
        let mut h = refused(48, Fmc, None);
        if let Some(h) = h.as_mut() {
            h.last_ok = Some(AT);
        }
        let mut es = vec![entry(Role::Device, "a", 3000, h)];
        decide(&mut es, &t);
        assert_eq!(es[0].action, Action::None);
    }

    #[test]
    fn a_certificate_of_another_fmcs_internal_ca_is_a_ca_mismatch() {
        let t = Thresholds::default();
        let check = |issuer: &str| IssuerCheck {
            fmc: FMC.into(),
            issuer: issuer.into(),
            at: Some(AT),
        };
        let mut h = Handshakes {
            ok: 1,
            last_ok: Some(AT),
            issuer_check: Some(check("6a0e4d52-0c1f-4b8e-a1d3-5e6f7a8b9c0d")),
            ..Handshakes::default()
        };
        let mut es = vec![entry(Role::Device, "a", 3000, Some(h.clone()))];
        decide(&mut es, &t);
        assert_eq!(
            es[0].action,
            Action::Copy,
            "connected or not, like the tree's"
        );
        assert_eq!(es[0].problems, [ProblemKind::CaMismatch]);
        assert_eq!(
            es[0].reason,
            Reason::ForeignIssuer {
                fmc: FMC.into(),
                issuer: "6a0e4d52-0c1f-4b8e-a1d3-5e6f7a8b9c0d".into()
            }
        );
        h.issuer_check = Some(check(FMC));
        let mut es = vec![entry(Role::Device, "a", 3000, Some(h))];
        decide(&mut es, &t);
        assert_eq!((es[0].action, es[0].problems.len()), (Action::None, 0));
    }

    #[test]
    fn a_device_certificate_ending_soon_makes_its_fmc_renew() {
        let t = Thresholds::default();
        let mut es = vec![
            entry(Role::Fmc, FMC, 3000, None),
            entry(Role::Device, "a", 3000, None),
        ];
        es[1].reason = Reason::Ends {
            what: "certificate",
            days_left: 10,
        };
        decide(&mut es, &t);
        assert_eq!(es[0].action, Action::Renew);
        assert_eq!(
            es[0].reason,
            Reason::PeerEnds {
                peer: "a".into(),
                days_left: 10
            }
        );
        assert_eq!(es[1].action, Action::Push);
    }
}
