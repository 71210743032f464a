//! The cross-check of an FMC/FTD tree: will each peer's next reconnect work with the files it
//! has?
//!
//! Works on the certificates `collect` found, grouped by the appliance folder their path puts
//! them in (`pki::roles::classify`), so it needs no `sftunnel.conf`: a lab root and a copy of
//! real appliances' files are read alike. For every appliance that keeps a peer folder for a
//! manager (`var/sf/peers/<FMC-UUID>/`: a device, or an HA secondary), and for every FMC's
//! own `etc/sf/keys/`:
//! - `ca_mismatch`: the `cacert.pem` it trusts is not its FMC's current InternalCA (the FMC
//!   whose InternalCA's CN is that folder's UUID, when it is among the inputs): renewed, not
//!   yet copied. The FMC will reject its certificate and it will reject the FMC's.
//! - `chain`: its certificate does not chain to the InternalCA it trusts, judged by `judge`
//!   at `at` like `openssl verify -CAfile cacert.pem -attime`; an expired or not yet valid
//!   certificate is left to the expiry lines (9 and 10 are not repeated here).
//! - `key_mismatch` / `key_unreadable`: the `sftunnel-key.pem` beside the certificate is not
//!   its key (or cannot be read). Keys are compared by their public half only; no key byte
//!   leaves this module.
//!
//!
//! When those appliance folders belong to a lab root (`ROOT/fmc/etc/sf/sftunnel.conf` lists
//! the peers, read by `pki::layout::PkiRoot`), the files the root's [`Layout`] expects are
//! checked too, for every tunnel of an appliance the inputs hold certificates of:
//! - `missing`: a peer's (or an FMC's own) `cacert.pem`, `sftunnel-cert.pem` or
//!   `sftunnel-key.pem` is not there. (One that is there and is not a regular file, a FIFO,
//!   is `collect`'s to report as unreadable.)
//! - `interrupted`: a run that changed the root died after its commit point and left its
//!   journal (`pki::fsio::interrupted`): the files may be a mix of old and new, so they are
//!   not cross-checked; `sfdiag pki renew` or `pki copy` finishes the change.
//!
//! All of them are CRITICAL: sftunnel fails at its next handshake.
//!
//! [`Layout`]: crate::pki::layout::Layout

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::collect::FileCert;
use crate::judge::{self, Verdict, VerifyCode};
use crate::pki::fsio;
use crate::pki::layout::{FMC_DIR, KEY_FILE, PkiRoot};
use crate::pki::roles::PathRole;
use crate::sftunnel::Role;

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProblemKind {
    /// `ca_mismatch`: the InternalCA it trusts is not its FMC's current one.
    CaMismatch,
    /// `chain`: its certificate does not chain to the InternalCA it trusts (not for 9 or 10).
    Chain,
    /// `key_mismatch`: the `sftunnel-key.pem` beside its certificate is another key.
    KeyMismatch,
    /// `key_unreadable`: that key file cannot be read as a key.
    KeyUnreadable,
    /// `missing`: a tunnel file its root's layout expects is not there.
    Missing,
    /// `interrupted`: its root holds the journal of a change that a dead run left half made.
    Interrupted,
}

impl ProblemKind {
    /// The JSON `kind` (CLI.md).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::CaMismatch => "ca_mismatch",
            ProblemKind::Chain => "chain",
            ProblemKind::KeyMismatch => "key_mismatch",
            ProblemKind::KeyUnreadable => "key_unreadable",
            ProblemKind::Missing => "missing",
            ProblemKind::Interrupted => "interrupted",
        }
    }
}

/// One certificate a problem is about, by the facts a report prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    /// The file it was read from.
    pub file: PathBuf,
    /// Lowercase hex SHA-256 of its DER.
    pub sha256: String,
    /// Its serial number, lowercase hex; `None` when it did not decode.
    pub serial: Option<String>,
    /// `None` when it did not decode.
    pub not_after: Option<OffsetDateTime>,
}

impl CertRef {
    fn of(c: &FileCert) -> Self {
        CertRef {
            file: c.file.clone(),
            sha256: c.info.sha256.clone(),
            serial: c.info.serial.clone(),
            not_after: c.info.not_after,
        }
    }
}

/// The facts of a problem.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Facts {
    /// The peer trusts `trusted`; its FMC's current InternalCA is `current`.
    CaMismatch {
        /// The peer's `cacert.pem`.
        trusted: CertRef,
        /// The FMC's `ca_root/cacert.pem`.
        current: CertRef,
        /// The FMC, by name when known.
        fmc: String,
    },
    /// `cert` judged against `ca` gave `verdict`.
    Chain {
        /// The appliance's own sftunnel certificate.
        cert: CertRef,
        /// The InternalCA beside it, which it was judged against.
        ca: CertRef,
        /// `judge`'s verdict at `at` (never `Ok`, 9 or 10).
        verdict: Box<Verdict>,
    },
    /// The key file beside `cert` holds another key.
    KeyMismatch {
        /// The certificate whose key it should be.
        cert: CertRef,
        /// The `sftunnel-key.pem` in the certificate's folder.
        key_file: PathBuf,
    },
    /// The key file beside `cert` cannot be read as a key.
    KeyUnreadable {
        /// The certificate whose key it should be.
        cert: CertRef,
        /// The `sftunnel-key.pem` in the certificate's folder.
        key_file: PathBuf,
        /// Why it could not be read (the `pki` error's text).
        reason: String,
    },
    /// Tunnel files its root's layout expects are not there.
    Missing {
        /// The missing files, in the layout's order (InternalCA, certificate, key).
        files: Vec<PathBuf>,
        /// The FMC this tunnel is to, by name (the appliance's own name for an FMC's files).
        fmc: String,
    },
    /// A change to the root was left half made by a run that died.
    Interrupted {
        /// The lab root.
        root: PathBuf,
        /// Its `.sfdiag-journal`.
        journal: PathBuf,
    },
}

/// A peer whose next reconnect fails.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerProblem {
    /// What kind (the JSON `kind`); `facts` is the same variant.
    pub kind: ProblemKind,
    /// The appliance concerned, by name (its `ims.conf`, else its folder).
    pub peer: String,
    /// Its role, when its `ims.conf` says.
    pub role: Option<Role>,
    /// Its folder (the appliance root).
    pub appliance: PathBuf,
    /// The certificates and files it is about.
    pub facts: Facts,
}

/// The files one appliance uses toward one manager (or, for an FMC, its own).
#[derive(Default)]
struct Side<'a> {
    cert: Option<&'a FileCert>,
    ca: Option<&'a FileCert>,
    name: Option<String>,
    role: Option<Role>,
}

/// Cross-checks the appliances the certificates belong to, at `at`.
pub fn cross_check(certs: &[FileCert], at: OffsetDateTime) -> Vec<PeerProblem> {
    let roots = roots(certs);
    let mut out = Vec::new();
    // A half-changed root's files are a mix of old and new: cross-checking them would report
    // forged-looking failures, so the journal is what is reported, once per appliance.
    let mut interrupted: BTreeSet<PathBuf> = BTreeSet::new();
    for r in &roots {
        if let RootState::Interrupted(journal) = &r.state {
            for app in &r.appliances {
                interrupted.insert(app.clone());
                out.push(PeerProblem {
                    kind: ProblemKind::Interrupted,
                    peer: app
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| app.display().to_string()),
                    role: role_of(certs, app),
                    appliance: app.clone(),
                    facts: Facts::Interrupted {
                        root: r.root.clone(),
                        journal: journal.clone(),
                    },
                });
            }
        }
    }
    let certs: Vec<FileCert> = certs
        .iter()
        .filter(|c| {
            c.place
                .as_ref()
                .is_none_or(|p| !interrupted.contains(&p.appliance_root))
        })
        .cloned()
        .collect();
    out.extend(cross_check_files(&certs, at));
    out.extend(missing(&roots));
    out
}

/// The role the certificates of appliance folder `app` give it: an FMC's own files make it
/// an FMC, a peer folder's the role its `ims.conf` says.
fn role_of(certs: &[FileCert], app: &Path) -> Option<Role> {
    let mine = || {
        certs
            .iter()
            .filter(move |c| c.place.as_ref().is_some_and(|p| p.appliance_root == app))
    };
    if mine().any(|c| {
        c.place
            .as_ref()
            .is_some_and(|p| matches!(p.role, PathRole::InternalCa | PathRole::FmcCert))
    }) {
        return Some(Role::Fmc);
    }
    mine().find_map(|c| c.role.as_ref().and_then(|r| r.peer_role))
}

/// The cross-check of the certificates found (see the module doc), without the roots'.
fn cross_check_files(certs: &[FileCert], at: OffsetDateTime) -> Vec<PeerProblem> {
    // The current InternalCA of every FMC among the inputs, by its UUID (the CA's CN).
    let mut fmc_ca: HashMap<String, (&FileCert, Option<String>)> = HashMap::new();
    // (appliance root, manager UUID or "" for an FMC's own files) -> files.
    let mut sides: HashMap<(PathBuf, String), Side<'_>> = HashMap::new();
    for c in certs {
        let (Some(place), Some(role)) = (&c.place, &c.role) else {
            continue;
        };
        if place.backup || c.index != 1 {
            continue;
        }
        let key = |m: &str| (place.appliance_root.clone(), m.to_string());
        match &place.role {
            PathRole::InternalCa => {
                if let Some(uuid) = c.info.sftunnel_identity().uuid {
                    fmc_ca.insert(uuid.to_ascii_lowercase(), (c, role.holder.clone()));
                }
                let s = sides.entry(key("")).or_default();
                s.ca = Some(c);
                s.name = s.name.take().or(role.holder.clone());
            }
            PathRole::FmcCert => {
                let s = sides.entry(key("")).or_default();
                s.cert = Some(c);
                s.name = s.name.take().or(role.holder.clone());
            }
            PathRole::CaCopy { manager } | PathRole::OwnPeerCert { manager } => {
                let s = sides.entry(key(&manager.to_ascii_lowercase())).or_default();
                if matches!(place.role, PathRole::CaCopy { .. }) {
                    s.ca = Some(c);
                } else {
                    s.cert = Some(c);
                }
                s.name = s.name.take().or(role.peer.clone());
                s.role = s.role.or(role.peer_role);
            }
            PathRole::PushedCert { .. } | PathRole::PushedCa { .. } => {}
        }
    }
    let mut keys: Vec<_> = sides.keys().cloned().collect();
    keys.sort();
    let mut out = Vec::new();
    for key in keys {
        let side = &sides[&key];
        let (root, manager) = &key;
        let peer = side.name.clone().unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| root.display().to_string())
        });
        let role = if manager.is_empty() {
            side.role.or(Some(Role::Fmc))
        } else {
            side.role
        };
        let problem = |kind, facts| PeerProblem {
            kind,
            peer: peer.clone(),
            role,
            appliance: root.clone(),
            facts,
        };
        if !manager.is_empty()
            && let (Some(ca), Some((current, fmc_name))) = (side.ca, fmc_ca.get(manager))
            && ca.info.sha256 != current.info.sha256
        {
            out.push(problem(
                ProblemKind::CaMismatch,
                Facts::CaMismatch {
                    trusted: CertRef::of(ca),
                    current: CertRef::of(current),
                    fmc: fmc_name.clone().unwrap_or_else(|| manager.clone()),
                },
            ));
        }
        if let (Some(cert), Some(ca)) = (side.cert, side.ca) {
            let v = judge::verify(
                std::slice::from_ref(&cert.info),
                std::slice::from_ref(&ca.info),
                at,
            );
            let code = v.overall.code;
            if !code.is_ok()
                && code != VerifyCode::CertHasExpired
                && code != VerifyCode::CertNotYetValid
            {
                out.push(problem(
                    ProblemKind::Chain,
                    Facts::Chain {
                        cert: CertRef::of(cert),
                        ca: CertRef::of(ca),
                        verdict: Box::new(v.overall),
                    },
                ));
            }
        }
        if let Some(cert) = side.cert
            && let Some(p) = key_problem(cert)
        {
            out.push(problem(p.0, p.1));
        }
    }
    out
}

/// The key beside `cert` (same folder, `sftunnel-key.pem`), compared by its public half.
fn key_problem(cert: &FileCert) -> Option<(ProblemKind, Facts)> {
    let key_file = cert.file.parent().unwrap_or(Path::new("")).join(KEY_FILE);
    if !key_file.is_file() {
        // A folder of certificates copied off the appliances may hold no keys at all (and in
        // a lab root, a missing key is `missing`).
        return None;
    }
    let key = crate::files::read_text_bounded(
        &key_file,
        crate::files::MAX_CERT_FILE,
        crate::files::Links::Follow,
    )
    .map_err(|e| crate::pki::PkiError::io("read", &key_file, e))
    .and_then(|text| crate::pki::load_key_pem(&text, &key_file));
    match key {
        Ok(key) => {
            let public = crate::pki::public_key_summary(&key);
            (cert.info.public_key() != Some(&public.key_bits[..])).then(|| {
                (
                    ProblemKind::KeyMismatch,
                    Facts::KeyMismatch {
                        cert: CertRef::of(cert),
                        key_file,
                    },
                )
            })
        }
        Err(e) => Some((
            ProblemKind::KeyUnreadable,
            Facts::KeyUnreadable {
                cert: CertRef::of(cert),
                key_file,
                reason: e.to_string(),
            },
        )),
    }
}

/// A lab root that appliance folders among the inputs belong to.
pub(crate) struct Root {
    /// The folder holding `fmc/`.
    pub(crate) root: PathBuf,
    /// The appliance folders under it that the inputs hold certificates of, sorted.
    pub(crate) appliances: BTreeSet<PathBuf>,
    /// What reading it back gave.
    pub(crate) state: RootState,
}

/// A [`Root`] read back.
pub(crate) enum RootState {
    /// A change was left half made: its journal.
    Interrupted(PathBuf),
    /// Its `ims.conf` or `sftunnel.conf` could not be read (a FIFO, a device, no permission):
    /// the I/O error, naming the file.
    Unreadable(crate::pki::PkiError),
    /// Its FMCs, peers and where their files are.
    Loaded(Box<PkiRoot>),
}

/// The lab roots (folders with an `fmc/` that `PkiRoot::load` reads) that the inputs'
/// appliance folders are in, sorted. A folder that is not one (a loose copy of appliance files
/// with no `sftunnel.conf`, a world-writable folder) is left out.
pub(crate) fn roots(certs: &[FileCert]) -> Vec<Root> {
    let mut by_root: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for c in certs {
        if let Some(place) = &c.place
            && let Some(root) = place.appliance_root.parent()
        {
            by_root
                .entry(root.to_path_buf())
                .or_default()
                .insert(place.appliance_root.clone());
        }
    }
    by_root
        .into_iter()
        // Only a folder that holds the primary FMC's folder can be a lab root.
        .filter(|(root, _)| root.join(FMC_DIR).is_dir())
        .filter_map(|(root, appliances)| {
            let state = if let Some(journal) = fsio::interrupted(&root) {
                RootState::Interrupted(journal)
            } else {
                match PkiRoot::load(&root) {
                    Ok(r) => RootState::Loaded(Box::new(r)),
                    // A folder with an `fmc/` whose configuration is there and cannot be read
                    // (not one that is missing or does not parse: a copy of real appliances'
                    // files need not have them in sfdiag's form).
                    Err(e @ crate::pki::PkiError::Io { .. })
                        if !matches!(&e, crate::pki::PkiError::Io { source, .. }
                            if source.kind() == std::io::ErrorKind::NotFound) =>
                    {
                        RootState::Unreadable(e)
                    }
                    Err(_) => return None,
                }
            };
            Some(Root {
                root,
                appliances,
                state,
            })
        })
        .collect()
}

/// One set of tunnel files a root's layout expects.
pub(crate) struct Expected {
    /// The appliance's folder.
    pub(crate) appliance: PathBuf,
    /// Its name (its folder's name under the root).
    pub(crate) name: String,
    /// Its role.
    pub(crate) role: Role,
    /// The FMC the files are toward, by name.
    pub(crate) fmc: String,
    /// The InternalCA, certificate and key, in that order.
    pub(crate) files: [PathBuf; 3],
}

/// The tunnel files of every loaded root that concern an appliance the inputs hold
/// certificates of: each FMC's own (when the inputs hold that FMC's), and each peer's toward
/// each FMC (when the inputs hold the peer's or that FMC's). An appliance whose folder is not
/// there at all is a partial copy, not a broken appliance, and is left out.
pub(crate) fn expected(roots: &[Root]) -> Vec<Expected> {
    let mut out = Vec::new();
    for r in roots {
        let RootState::Loaded(root) = &r.state else {
            continue;
        };
        let asked = |dir: &Path| r.appliances.contains(dir);
        for fmc in root.fmcs() {
            let dir = root.layout.appliance_dir(&fmc.name);
            let f = root.fmc_files_of(fmc);
            if asked(&dir) {
                out.push(Expected {
                    appliance: dir,
                    name: fmc.name.clone(),
                    role: Role::Fmc,
                    fmc: fmc.name.clone(),
                    files: [f.ca, f.cert, f.key],
                });
            }
        }
        for link in root.links() {
            let dir = root.layout.appliance_dir(&link.peer.name);
            let fmc_dir = root.layout.appliance_dir(&link.fmc.name);
            if (asked(&dir) || asked(&fmc_dir)) && dir.is_dir() {
                let f = link.peer_files;
                out.push(Expected {
                    appliance: dir,
                    name: link.peer.name.clone(),
                    role: link.peer.role,
                    fmc: link.fmc.name.clone(),
                    files: [f.ca, f.cert, f.key],
                });
            }
        }
    }
    out
}

/// `missing` problems: expected files that are not there (a dangling link counts as not
/// there).
fn missing(roots: &[Root]) -> Vec<PeerProblem> {
    expected(roots)
        .into_iter()
        .filter_map(|e| {
            let files: Vec<PathBuf> = e
                .files
                .iter()
                .filter(|f| {
                    matches!(std::fs::metadata(f), Err(err) if err.kind() == std::io::ErrorKind::NotFound)
                })
                .cloned()
                .collect();
            (!files.is_empty()).then_some(PeerProblem {
                kind: ProblemKind::Missing,
                peer: e.name,
                role: Some(e.role),
                appliance: e.appliance,
                facts: Facts::Missing { files, fmc: e.fmc },
            })
        })
        .collect()
}
