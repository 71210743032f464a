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
//! All of them are CRITICAL: sftunnel fails at its next handshake.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::collect::FileCert;
use crate::judge::{self, Verdict, VerifyCode};
use crate::pki::layout::KEY_FILE;
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
}

impl ProblemKind {
    /// The JSON `kind` (CLI.md).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::CaMismatch => "ca_mismatch",
            ProblemKind::Chain => "chain",
            ProblemKind::KeyMismatch => "key_mismatch",
            ProblemKind::KeyUnreadable => "key_unreadable",
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
        // A folder of certificates copied off the appliances may hold no keys at all.
        return None;
    }
    match crate::pki::load_key(&key_file) {
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
