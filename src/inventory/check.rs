//! `sfdiag check` decided: each certificate's expiry (`pki::expiry`) and, with anchors, its
//! chain (`judge`, like `openssl verify -CAfile F -attime T` on that certificate alone), the
//! cross-check of an appliance tree (`peers`), and the one status a monitoring system keeps.
//!
//! Statuses rank as the monitoring-plugin convention has them when several occur: CRITICAL
//! outranks UNKNOWN, which outranks WARNING and OK ([`severity`]); an unreadable input never
//! hides an expired certificate. Everything is sorted worst first: by status, then by what
//! breaks soonest (a failed chain or a peer problem breaks now, a certificate by its days
//! left), then by label, so the status line can name the worst and the list reads down.
//! The appliance's own two messages (the 30-day one-liner and the FMC health alert) are
//! decided here too, from the InternalCA; `report` only lays them out.

use std::cmp::Reverse;

use time::OffsetDateTime;

use super::collect::{Collection, FileCert, Skipped, Unreadable};
use super::peers::{self, PeerProblem};
use crate::cert::CertInfo;
use crate::judge::{self, Verdict};
use crate::pki::expiry::{self, Assessment, Status, Thresholds};
use crate::pki::roles::PathRole;
use crate::sftunnel::SubjectRole;

/// How to judge.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The moment to judge at.
    pub at: OffsetDateTime,
    /// `--warn-days`/`--critical-days`: the days left that make WARNING and CRITICAL.
    pub thresholds: Thresholds,
    /// `--ca`: when given, every certificate's chain is judged against these.
    pub anchors: Vec<CertInfo>,
}

/// One certificate judged.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The certificate, where it was found and the part it plays.
    pub cert: FileCert,
    /// Its validity window at `at`; always `Some` in a [`CheckReport`] (a certificate whose
    /// dates do not decode is listed as [`Unreadable`] instead).
    pub expiry: Option<Assessment>,
    /// With anchors: the chain's verdict (OpenSSL's code, depth and text); `None` without
    /// `--ca`.
    pub chain: Option<Verdict>,
    /// The worse of the two (CRITICAL for a failed chain, UNKNOWN for unreadable dates).
    pub status: Status,
}

impl Checked {
    /// Whole days left (negative once expired), when the dates could be read.
    pub fn days_left(&self) -> Option<i64> {
        self.expiry.map(|a| a.days_left)
    }
}

/// Something the report lists, in the order it lists them.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A certificate, with the status it was given.
    Cert(&'a Checked),
    /// A cross-check problem of an appliance tree (CRITICAL).
    Problem(&'a PeerProblem),
    /// An input that could not be read (UNKNOWN).
    Unreadable(&'a Unreadable),
}

impl Item<'_> {
    /// The status it counts for in the one status.
    pub fn status(&self) -> Status {
        match self {
            Item::Cert(c) => c.status,
            Item::Problem(_) => Status::Critical,
            Item::Unreadable(_) => Status::Unknown,
        }
    }
}

/// What `check` found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The moment judged at ([`CheckOptions::at`]).
    pub at: OffsetDateTime,
    /// The thresholds judged by ([`CheckOptions::thresholds`]).
    pub thresholds: Thresholds,
    /// Whether chains were judged (`--ca` given).
    pub chains_judged: bool,
    /// Worst first.
    pub checked: Vec<Checked>,
    /// Peer problems of an appliance tree, worst first (all CRITICAL).
    pub problems: Vec<PeerProblem>,
    /// Inputs that could not be read, and certificates whose dates did not decode (UNKNOWN).
    pub unreadable: Vec<Unreadable>,
    /// Files passed over in the folders walked (listed with `-v`, no status).
    pub skipped: Vec<Skipped>,
    /// The one status (UNKNOWN when there was nothing to check).
    pub status: Status,
}

impl CheckReport {
    /// Everything listed, worst first: the first one is what the status line names.
    pub fn items(&self) -> Vec<Item<'_>> {
        let mut items: Vec<Item<'_>> = self
            .checked
            .iter()
            .map(Item::Cert)
            .chain(self.problems.iter().map(Item::Problem))
            .chain(self.unreadable.iter().map(Item::Unreadable))
            .collect();
        // A stable sort: equal items keep their input order (problems by appliance, files
        // sorted by path).
        items.sort_by_key(|i| {
            let soon = match i {
                Item::Cert(c) if c.chain.as_ref().is_some_and(|v| !v.is_ok()) => {
                    c.days_left().map_or(0, |d| d.min(0))
                }
                Item::Cert(c) => c.days_left().unwrap_or(0),
                Item::Problem(_) => 0,
                Item::Unreadable(_) => 0,
            };
            (Reverse(severity(i.status())), soon)
        });
        items
    }

    /// How many certificates have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checked.iter().filter(|c| c.status == status).count()
    }

    /// The InternalCA certificates the appliance's own messages are about: the FMC's
    /// `ca_root/cacert.pem` when the inputs hold one, else any certificate titled
    /// `InternalCA`, else every certificate (a file given alone); one per distinct DER,
    /// worst first.
    pub fn internal_cas(&self) -> Vec<&Checked> {
        let by_place: Vec<&Checked> = self
            .checked
            .iter()
            .filter(|c| {
                c.cert
                    .place
                    .as_ref()
                    .is_some_and(|p| p.role == PathRole::InternalCa && !p.backup)
            })
            .collect();
        let picked = if !by_place.is_empty() {
            by_place
        } else {
            let titled: Vec<&Checked> = self
                .checked
                .iter()
                .filter(|c| c.cert.info.sftunnel_identity().role == SubjectRole::InternalCa)
                .collect();
            if titled.is_empty() {
                self.checked.iter().collect()
            } else {
                titled
            }
        };
        let mut seen = std::collections::HashSet::new();
        picked
            .into_iter()
            .filter(|c| c.expiry.is_some() && seen.insert(c.cert.info.sha256.clone()))
            .collect()
    }
}

/// The monitoring-plugin rank: OK < WARNING < UNKNOWN < CRITICAL.
pub fn severity(s: Status) -> u8 {
    match s {
        Status::Ok => 0,
        Status::Warning => 1,
        Status::Unknown => 2,
        Status::Critical => 3,
    }
}

/// The worst of several statuses by [`severity`] (OK when there are none).
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses
        .into_iter()
        .max_by_key(|s| severity(*s))
        .unwrap_or(Status::Ok)
}

/// Judges what was collected.
pub fn check(collection: Collection, opts: &CheckOptions) -> CheckReport {
    let Collection {
        mut certs,
        mut unreadable,
        skipped,
    } = collection;
    // `check a.pem ./a.pem` (or a folder and a file in it) is one certificate: counted once,
    // one perfdata label. The first one given is kept.
    let mut seen = std::collections::HashSet::new();
    certs.retain(|c| seen.insert((entry_key(&c.file), c.index)));
    let problems = peers::cross_check(&certs, opts.at);
    let mut checked = Vec::with_capacity(certs.len());
    for cert in certs {
        let expiry = match (cert.info.not_before, cert.info.not_after) {
            (Some(nb), Some(na)) => Some(expiry::assess(nb, na, opts.at, &opts.thresholds)),
            _ => None,
        };
        let Some(expiry) = expiry else {
            unreadable.push(Unreadable {
                file: cert.file.clone(),
                message: format!(
                    "{}: certificate {}: validity unreadable: {}",
                    cert.file.display(),
                    cert.index,
                    cert.info.parse_error.as_deref().unwrap_or("missing")
                ),
            });
            continue;
        };
        let chain = (!opts.anchors.is_empty()).then(|| {
            judge::verify(std::slice::from_ref(&cert.info), &opts.anchors, opts.at).overall
        });
        let chain_status = match &chain {
            Some(v) if !v.is_ok() => Status::Critical,
            _ => Status::Ok,
        };
        checked.push(Checked {
            status: worst([expiry.status, chain_status]),
            expiry: Some(expiry),
            chain,
            cert,
        });
    }
    checked.sort_by_key(|c| {
        (
            Reverse(severity(c.status)),
            c.days_left().unwrap_or(0),
            c.cert.label.clone(),
        )
    });
    let status = worst(
        checked
            .iter()
            .map(|c| c.status)
            .chain(problems.iter().map(|_| Status::Critical))
            .chain(unreadable.iter().map(|_| Status::Unknown))
            .chain(
                (checked.is_empty() && problems.is_empty() && unreadable.is_empty())
                    .then_some(Status::Unknown),
            ),
    );
    CheckReport {
        at: opts.at,
        thresholds: opts.thresholds,
        chains_judged: !opts.anchors.is_empty(),
        checked,
        problems,
        unreadable,
        skipped,
        status,
    }
}

/// The directory entry `file` names, however it was spelled: its folder resolved
/// (`.`, `..`, symbolic links to folders), its own name kept, so a symbolic link to a
/// certificate stays an entry of its own (it may play another part in an appliance tree).
/// The path as given when the folder cannot be resolved.
fn entry_key(file: &std::path::Path) -> std::path::PathBuf {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    match (std::fs::canonicalize(parent), file.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => file.to_path_buf(),
    }
}

/// Which of the 30-day one-liner's three messages a certificate gets, by its own arithmetic:
/// whole days rounded down, expired when notAfter <= now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneLiner {
    /// `The certificate has expired N days ago.`
    Expired {
        /// Whole days since notAfter (0 on the day it ends).
        days_expired: i64,
    },
    /// `The certificate will expire within the next 30 days!`
    Within30 {
        /// Whole days until notAfter, 0 to 29.
        days_left: i64,
    },
    /// `The certificate is valid for more than 30 days.`
    Valid {
        /// Whole days until notAfter, 30 or more.
        days_left: i64,
    },
}

/// The one-liner's verdict on `not_after` at `at`.
pub fn one_liner(not_after: OffsetDateTime, at: OffsetDateTime) -> OneLiner {
    let secs = (not_after - at).whole_seconds();
    if secs <= 0 {
        OneLiner::Expired {
            days_expired: (-secs).div_euclid(86_400),
        }
    } else {
        let days_left = secs.div_euclid(86_400);
        if days_left < 30 {
            OneLiner::Within30 { days_left }
        } else {
            OneLiner::Valid { days_left }
        }
    }
}

/// Which FMC health alert (VDB 399+) shows for the InternalCA: none more than 90 days
/// before its end, then a warning, then an error once expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthAlert {
    /// More than 90 days left: no alert.
    None,
    /// `... is expiring in N days. ...`
    Expiring {
        /// Whole days until notAfter, 0 to 89.
        days: i64,
    },
    /// `... has expired. ...`
    Expired,
}

/// The health alert for `not_after` at `at` (days rounded down).
pub fn health_alert(not_after: OffsetDateTime, at: OffsetDateTime) -> HealthAlert {
    let secs = (not_after - at).whole_seconds();
    if secs <= 0 {
        HealthAlert::Expired
    } else {
        let days = secs.div_euclid(86_400);
        if days < 90 {
            HealthAlert::Expiring { days }
        } else {
            HealthAlert::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

    #[test]
    fn critical_outranks_unknown_which_outranks_warning() {
        assert_eq!(worst([Status::Unknown, Status::Critical]), Status::Critical);
        assert_eq!(worst([Status::Warning, Status::Unknown]), Status::Unknown);
        assert_eq!(worst([Status::Ok, Status::Warning]), Status::Warning);
        assert_eq!(worst([]), Status::Ok);
    }

    #[test]
    fn the_one_liners_arithmetic() {
        let d = Duration::days;
        assert_eq!(
            one_liner(AT, AT),
            OneLiner::Expired { days_expired: 0 },
            "notAfter == now is expired"
        );
        assert_eq!(
            one_liner(AT - d(3) - Duration::hours(5), AT),
            OneLiner::Expired { days_expired: 3 }
        );
        assert_eq!(
            one_liner(AT + Duration::SECOND, AT),
            OneLiner::Within30 { days_left: 0 }
        );
        assert_eq!(
            one_liner(AT + d(30) - Duration::SECOND, AT),
            OneLiner::Within30 { days_left: 29 }
        );
        assert_eq!(one_liner(AT + d(30), AT), OneLiner::Valid { days_left: 30 });
        assert_eq!(health_alert(AT + d(90), AT), HealthAlert::None);
        assert_eq!(
            health_alert(AT + d(15) + Duration::hours(1), AT),
            HealthAlert::Expiring { days: 15 }
        );
        assert_eq!(health_alert(AT, AT), HealthAlert::Expired);
    }
}
