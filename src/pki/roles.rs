//! Naming a certificate file by the part it plays in an FMC/FTD tree.
//!
//! `classify` is pure: it matches the end of a path against the appliance layout
//! (`etc/sf/ca_root/cacert.pem`, `etc/sf/keys/sftunnel-cert.pem`,
//! `var/sf/peers/<UUID>/[certs_pushed/]...`) and says which appliance root the file sits in.
//! `RoleNamer` then reads that appliance's `ims.conf`/`sftunnel.conf` (once per root) to turn
//! UUIDs into names: "device ftd1's cert" rather than a folder of hex. It works on a lab root
//! made by `pki init` and on a copy of a real appliance's files alike; where the identity
//! files are missing it falls back to UUIDs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::conf::{self, ImsConf, SftunnelConf};
use super::layout::{CACERT_FILE, CERT_FILE, read_text, rel};
use super::{Role, Uuid};

/// What a path says about a certificate file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathRole {
    /// `etc/sf/ca_root/cacert.pem`: the InternalCA on the FMC.
    InternalCa,
    /// `etc/sf/keys/sftunnel-cert.pem`: the FMC's own sftunnel certificate.
    FmcCert,
    /// `var/sf/peers/<peer>/certs_pushed/sftunnel-cert.pem`: on the FMC, the cert it pushed.
    PushedCert {
        /// The device's UUID (folder name).
        peer: String,
    },
    /// `var/sf/peers/<peer>/certs_pushed/cacert.pem`: the CA it pushed with it.
    PushedCa {
        /// The device's UUID (folder name).
        peer: String,
    },
    /// `var/sf/peers/<manager>/sftunnel-cert.pem`: on a device, its own certificate.
    OwnPeerCert {
        /// The managing FMC's UUID (folder name).
        manager: String,
    },
    /// `var/sf/peers/<manager>/cacert.pem`: on a device, the InternalCA it trusts.
    CaCopy {
        /// The managing FMC's UUID (folder name).
        manager: String,
    },
}

/// A path's role, the appliance root it lies under, and whether it is a `*.backup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    /// The role from the path.
    pub role: PathRole,
    /// The folder the appliance's `etc/` and `var/` are in.
    pub appliance_root: PathBuf,
    /// The file is a `*.backup` (or `*.backup.N`) kept by `--force`, renewal or copy.
    pub backup: bool,
}

/// Matches `path` against the appliance layout (no file access).
pub fn classify(path: &Path) -> Option<Classified> {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        if let Component::Normal(s) = c {
            parts.push(s.to_string_lossy().into_owned());
        }
    }
    let mut last = parts.pop()?;
    let backup = match super::fsio::backup_of(&last).map(str::to_string) {
        Some(s) => {
            last = s;
            true
        }
        None => false,
    };
    let n = parts.len();
    let tail = |k: usize| -> Option<Vec<&str>> {
        (n >= k).then(|| parts[n - k..].iter().map(String::as_str).collect())
    };
    let (role, depth) = match last.as_str() {
        CACERT_FILE | CERT_FILE => {
            let is_ca = last == CACERT_FILE;
            if is_ca && tail(3).as_deref() == Some(&["etc", "sf", "ca_root"]) {
                (PathRole::InternalCa, 3)
            } else if !is_ca && tail(3).as_deref() == Some(&["etc", "sf", "keys"]) {
                (PathRole::FmcCert, 3)
            } else if let Some(t) = tail(5).filter(|t| {
                t[0] == "var" && t[1] == "sf" && t[2] == "peers" && t[4] == "certs_pushed"
            }) {
                let peer = t[3].to_string();
                if is_ca {
                    (PathRole::PushedCa { peer }, 5)
                } else {
                    (PathRole::PushedCert { peer }, 5)
                }
            } else if let Some(t) =
                tail(4).filter(|t| t[0] == "var" && t[1] == "sf" && t[2] == "peers")
            {
                let manager = t[3].to_string();
                if is_ca {
                    (PathRole::CaCopy { manager }, 4)
                } else {
                    (PathRole::OwnPeerCert { manager }, 4)
                }
            } else {
                return None;
            }
        }
        _ => return None,
    };
    // Rebuild the root from the original path so absolute/relative forms are kept.
    let mut root = path.to_path_buf();
    for _ in 0..=depth {
        root.pop();
    }
    Some(Classified {
        role,
        appliance_root: root,
        backup,
    })
}

/// A certificate's role with the names filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRole {
    /// The role from the path.
    pub role: PathRole,
    /// The appliance holding the file, if its `ims.conf` says.
    pub holder: Option<String>,
    /// The peer concerned (the device a cert belongs to), by name when known.
    pub peer: Option<String>,
    /// That peer's role, when known.
    pub peer_role: Option<Role>,
    /// The HA secondary whose InternalCA this file belongs to (its own files, what it pushed,
    /// a device's set for it); `None` for the primary's (FMC HA: each FMC has its own CA).
    pub fmc: Option<String>,
    /// The file is a `*.backup`.
    pub backup: bool,
}

impl CertRole {
    /// A short machine-friendly kind: `internal_ca`, `fmc_cert`, `device_cert`,
    /// `pushed_device_cert`, `pushed_ca`, `ca_copy`.
    pub fn kind(&self) -> &'static str {
        match self.role {
            PathRole::InternalCa => "internal_ca",
            PathRole::FmcCert => "fmc_cert",
            PathRole::OwnPeerCert { .. } => "device_cert",
            PathRole::PushedCert { .. } => "pushed_device_cert",
            PathRole::PushedCa { .. } => "pushed_ca",
            PathRole::CaCopy { .. } => "ca_copy",
        }
    }
}

fn peer_noun(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::HaSecondary) => "HA secondary",
        Some(Role::Fmc) => "FMC",
        _ => "device",
    }
}

impl fmt::Display for CertRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = self.peer.as_deref().unwrap_or("?");
        // The primary's files keep their short names; an HA secondary's say whose they are.
        let ca = match &self.fmc {
            Some(s) => format!("InternalCA of HA secondary {s}"),
            None => "InternalCA".to_string(),
        };
        match &self.role {
            PathRole::InternalCa => f.write_str(&ca)?,
            PathRole::FmcCert => match &self.fmc {
                Some(s) => write!(f, "FMC sftunnel cert of HA secondary {s}")?,
                None => f.write_str("FMC sftunnel cert")?,
            },
            PathRole::PushedCert { .. } => write!(
                f,
                "{} {peer}'s cert ({}'s pushed copy)",
                peer_noun(self.peer_role),
                self.fmc.as_deref().unwrap_or("FMC")
            )?,
            PathRole::PushedCa { .. } => write!(f, "{ca} (pushed to {peer})")?,
            PathRole::OwnPeerCert { .. } => {
                write!(f, "{} {peer}'s cert", peer_noun(self.peer_role))?;
                if let Some(s) = &self.fmc {
                    write!(f, " for HA secondary {s}")?;
                }
            }
            PathRole::CaCopy { .. } => write!(f, "{ca} ({peer}'s copy)")?,
        }
        if self.backup {
            f.write_str(" [backup]")?;
        }
        Ok(())
    }
}

/// Names roles, reading each appliance's identity files once.
#[derive(Debug, Default)]
pub struct RoleNamer {
    ims: HashMap<PathBuf, Option<ImsConf>>,
    sftunnel: HashMap<PathBuf, Option<SftunnelConf>>,
}

impl RoleNamer {
    /// A namer with empty caches.
    pub fn new() -> Self {
        Self::default()
    }

    fn ims(&mut self, root: &Path) -> Option<&ImsConf> {
        self.ims
            .entry(root.to_path_buf())
            .or_insert_with(|| {
                let p = root.join(rel::IMS_CONF);
                let text = read_text(&p).ok()?;
                conf::parse_ims_conf(&text, &p)
                    .map_err(|e| tracing::debug!(error = %e, "ims.conf unusable"))
                    .ok()
            })
            .as_ref()
    }

    fn sftunnel(&mut self, root: &Path) -> Option<&SftunnelConf> {
        self.sftunnel
            .entry(root.to_path_buf())
            .or_insert_with(|| {
                let p = root.join(rel::SFTUNNEL_CONF);
                let text = read_text(&p).ok()?;
                conf::parse_sftunnel_conf(&text, &p)
                    .map_err(|e| tracing::debug!(error = %e, "sftunnel.conf unusable"))
                    .ok()
            })
            .as_ref()
    }

    /// The role of the certificate file at `path`, or `None` outside an appliance layout.
    pub fn role_of(&mut self, path: &Path) -> Option<CertRole> {
        let c = classify(path)?;
        let root = c.appliance_root.clone();
        let holder = self.ims(&root).map(|i| i.identity.clone());
        let (peer, peer_role) = match &c.role {
            PathRole::PushedCert { peer } | PathRole::PushedCa { peer } => {
                let uuid = peer.parse::<Uuid>().ok();
                let found = uuid.and_then(|u| {
                    self.sftunnel(&root)
                        .and_then(|s| s.peers.iter().find(|p| p.identity.uuid == u))
                        .map(|p| (p.identity.name.clone(), p.identity.role))
                });
                match found {
                    Some((n, r)) => (Some(n), Some(r)),
                    None => (Some(peer.clone()), None),
                }
            }
            PathRole::OwnPeerCert { .. } | PathRole::CaCopy { .. } => match &holder {
                Some(h) => (Some(h.name.clone()), Some(h.role)),
                // Without ims.conf the appliance's folder name is the best name we have.
                None => (
                    root.file_name().map(|n| n.to_string_lossy().into_owned()),
                    None,
                ),
            },
            PathRole::InternalCa | PathRole::FmcCert => (None, None),
        };
        // Whose InternalCA: an HA secondary's own tree, or a set an HA secondary gave.
        let fmc = match &c.role {
            PathRole::InternalCa
            | PathRole::FmcCert
            | PathRole::PushedCert { .. }
            | PathRole::PushedCa { .. } => holder
                .as_ref()
                .filter(|h| h.role == Role::HaSecondary)
                .map(|h| h.name.clone()),
            PathRole::OwnPeerCert { manager } | PathRole::CaCopy { manager } => {
                let uuid = manager.parse::<Uuid>().ok();
                uuid.and_then(|u| {
                    self.sftunnel(&root)?
                        .peers
                        .iter()
                        .find(|p| p.identity.uuid == u && p.identity.role == Role::HaSecondary)
                        .map(|p| p.identity.name.clone())
                })
            }
        };
        Some(CertRole {
            role: c.role,
            holder: holder.map(|h| h.name),
            peer,
            peer_role,
            fmc,
            backup: c.backup,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";

    #[test]
    fn classifies_the_appliance_paths() {
        let c = classify(Path::new("/lab/fmc/etc/sf/ca_root/cacert.pem")).unwrap();
        assert_eq!(c.role, PathRole::InternalCa);
        assert_eq!(c.appliance_root, PathBuf::from("/lab/fmc"));
        let c = classify(Path::new("etc/sf/keys/sftunnel-cert.pem")).unwrap();
        assert_eq!(c.role, PathRole::FmcCert);
        assert_eq!(c.appliance_root, PathBuf::from(""));
        let p = format!("/lab/fmc/var/sf/peers/{U}/certs_pushed/sftunnel-cert.pem");
        let c = classify(Path::new(&p)).unwrap();
        assert_eq!(c.role, PathRole::PushedCert { peer: U.into() });
        assert_eq!(c.appliance_root, PathBuf::from("/lab/fmc"));
        let p = format!("/x/ftd1/var/sf/peers/{U}/cacert.pem.backup");
        let c = classify(Path::new(&p)).unwrap();
        assert_eq!(c.role, PathRole::CaCopy { manager: U.into() });
        assert!(c.backup);
        assert_eq!(c.appliance_root, PathBuf::from("/x/ftd1"));
    }

    #[test]
    fn other_paths_have_no_role() {
        for p in [
            "cacert.pem",
            "/tmp/sftunnel-cert.pem",
            "/etc/sf/keys/sftunnel-key.pem",
            "/etc/ssl/ca_root/cacert.pem",
            "/var/sf/peers/sftunnel-cert.pem",
            "",
        ] {
            assert_eq!(classify(Path::new(p)), None, "{p}");
        }
    }

    #[test]
    fn display_names() {
        let r = CertRole {
            role: PathRole::PushedCert { peer: U.into() },
            holder: Some("fmc".into()),
            peer: Some("ftd1".into()),
            peer_role: Some(Role::Device),
            fmc: None,
            backup: false,
        };
        assert_eq!(r.to_string(), "device ftd1's cert (FMC's pushed copy)");
        let r = CertRole {
            fmc: Some("FMC2".into()),
            ..r
        };
        assert_eq!(r.to_string(), "device ftd1's cert (FMC2's pushed copy)");
        let r = CertRole {
            role: PathRole::CaCopy { manager: U.into() },
            ..r
        };
        assert_eq!(
            r.to_string(),
            "InternalCA of HA secondary FMC2 (ftd1's copy)"
        );
        let r = CertRole {
            role: PathRole::OwnPeerCert { manager: U.into() },
            holder: Some("fmc2".into()),
            peer: Some("fmc2".into()),
            peer_role: Some(Role::HaSecondary),
            fmc: None,
            backup: true,
        };
        assert_eq!(r.to_string(), "HA secondary fmc2's cert [backup]");
    }
}
