//! Where every file of a lab PKI lives, and reading a root back.
//!
//! Under `--root DIR`, each appliance has its own folder laid out like its real file system:
//! `DIR/fmc/...` for the FMC and `DIR/<NAME>/...` for each managed device (or HA secondary).
//! `Layout` is pure path arithmetic (no I/O) so the tunnel, renewal and `check` agree on
//! names; `PkiRoot::load` reads `ims.conf` and `sftunnel.conf` to learn names, UUIDs, IPs
//! and roles. Certificates themselves are not read here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::conf::{self, ImsConf};
use super::{PkiError, Uuid};
use crate::sftunnel::Role;

/// The FMC's folder name under the root.
pub const FMC_DIR: &str = "fmc";

/// Appliance-relative paths (as the appliance itself sees them, without the leading `/`).
pub mod rel {
    /// The InternalCA certificate on the FMC.
    pub const CA_CERT: &str = "etc/sf/ca_root/cacert.pem";
    /// The InternalCA key on the FMC.
    pub const CA_KEY: &str = "etc/sf/ca_root/cakey.pem";
    /// The next serial number to issue (hex, like OpenSSL's `serial` file).
    pub const CA_SERIAL: &str = "etc/sf/ca_root/serial";
    /// The FMC's own sftunnel certificate.
    pub const FMC_CERT: &str = "etc/sf/keys/sftunnel-cert.pem";
    /// The FMC's own sftunnel key.
    pub const FMC_KEY: &str = "etc/sf/keys/sftunnel-key.pem";
    /// Every appliance's sftunnel configuration.
    pub const SFTUNNEL_CONF: &str = "etc/sf/sftunnel.conf";
    /// Every appliance's identity file.
    pub const IMS_CONF: &str = "etc/sf/ims.conf";
    /// Per-peer folders.
    pub const PEERS: &str = "var/sf/peers";

    /// On the FMC: what was pushed to device `uuid`.
    pub fn pushed_dir(uuid: &super::Uuid) -> String {
        format!("{PEERS}/{uuid}/certs_pushed")
    }

    /// On a device: the files its manager `fmc` gave it.
    pub fn peer_dir(fmc: &super::Uuid) -> String {
        format!("{PEERS}/{fmc}")
    }
}

/// File names inside a peer folder.
pub const CACERT_FILE: &str = "cacert.pem";
/// The sftunnel certificate's file name in a peer folder.
pub const CERT_FILE: &str = "sftunnel-cert.pem";
/// The sftunnel key's file name in a peer folder.
pub const KEY_FILE: &str = "sftunnel-key.pem";
/// The journal of a set of files being installed on a device (by a push or by `pki copy`),
/// beside its key: whichever comes next (the device's start, the next push or copy)
/// finishes or undoes an install that died.
pub const DEVICE_JOURNAL: &str = ".sftunnel-push.journal";

/// Who an appliance is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Its name (also its folder name under the root).
    pub name: String,
    /// Its UUID (in its certificate's `title`).
    pub uuid: Uuid,
    /// Its management address (a label in the lab).
    pub ip: IpAddr,
    /// Its role.
    pub role: Role,
}

/// The three files one end of a tunnel uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerFiles {
    /// The InternalCA it trusts.
    pub ca: PathBuf,
    /// Its sftunnel certificate.
    pub cert: PathBuf,
    /// Its sftunnel key.
    pub key: PathBuf,
}

/// Path arithmetic for a lab root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/<name>`: an appliance's own file system (`fmc` for the FMC).
    pub fn appliance_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `ROOT/fmc`.
    pub fn fmc_dir(&self) -> PathBuf {
        self.appliance_dir(FMC_DIR)
    }

    /// `ROOT/fmc/etc/sf/ca_root/cacert.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.fmc_dir().join(rel::CA_CERT)
    }

    /// `ROOT/fmc/etc/sf/ca_root/cakey.pem`.
    pub fn ca_key(&self) -> PathBuf {
        self.fmc_dir().join(rel::CA_KEY)
    }

    /// `ROOT/fmc/etc/sf/ca_root/serial`: the next serial number, hex.
    pub fn ca_serial(&self) -> PathBuf {
        self.fmc_dir().join(rel::CA_SERIAL)
    }

    /// The FMC's own files: InternalCA, `etc/sf/keys/sftunnel-{cert,key}.pem`.
    pub fn fmc_files(&self) -> PeerFiles {
        let f = self.fmc_dir();
        PeerFiles {
            ca: f.join(rel::CA_CERT),
            cert: f.join(rel::FMC_CERT),
            key: f.join(rel::FMC_KEY),
        }
    }

    /// `ROOT/<name>/etc/sf/sftunnel.conf`.
    pub fn sftunnel_conf(&self, name: &str) -> PathBuf {
        self.appliance_dir(name).join(rel::SFTUNNEL_CONF)
    }

    /// `ROOT/<name>/etc/sf/ims.conf`.
    pub fn ims_conf(&self, name: &str) -> PathBuf {
        self.appliance_dir(name).join(rel::IMS_CONF)
    }

    /// `ROOT/fmc/var/sf/peers/<device uuid>/certs_pushed`.
    pub fn pushed_dir(&self, device: &Uuid) -> PathBuf {
        self.fmc_dir().join(rel::pushed_dir(device))
    }

    /// The FMC's copies of what it pushed to `device` (cacert, sftunnel-cert, sftunnel-key).
    pub fn pushed_files(&self, device: &Uuid) -> PeerFiles {
        let d = self.pushed_dir(device);
        PeerFiles {
            ca: d.join(CACERT_FILE),
            cert: d.join(CERT_FILE),
            key: d.join(KEY_FILE),
        }
    }

    /// `ROOT/<name>/var/sf/peers/<fmc uuid>`.
    pub fn device_peer_dir(&self, name: &str, fmc: &Uuid) -> PathBuf {
        self.appliance_dir(name).join(rel::peer_dir(fmc))
    }

    /// A device's own files, as its manager `fmc` gave them.
    pub fn device_files(&self, name: &str, fmc: &Uuid) -> PeerFiles {
        let d = self.device_peer_dir(name, fmc);
        PeerFiles {
            ca: d.join(CACERT_FILE),
            cert: d.join(CERT_FILE),
            key: d.join(KEY_FILE),
        }
    }

    /// `ROOT/fmc/var/tmp/certs/<unix time>/FAILED_PUSH` (renewal's record of devices that
    /// could not be reached).
    pub fn failed_push(&self, unix_time: i64) -> PathBuf {
        self.fmc_dir()
            .join("var/tmp/certs")
            .join(unix_time.to_string())
            .join("FAILED_PUSH")
    }
}

/// A lab root read back: the FMC and its peers, and where their files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiRoot {
    /// Path arithmetic for this root.
    pub layout: Layout,
    /// The (primary) FMC.
    pub fmc: Identity,
    /// Managed devices and HA secondaries, in `sftunnel.conf` order.
    pub peers: Vec<Identity>,
}

impl PkiRoot {
    /// Reads `ROOT/fmc/etc/sf/ims.conf` and `ROOT/fmc/etc/sf/sftunnel.conf`. Refuses a root
    /// a dead run left in the middle of a change (its files may be a mix of old and new):
    /// the commands that change a root finish or undo it first.
    pub fn load(root: &Path) -> Result<Self, PkiError> {
        super::guard::refuse_world_writable(root)?;
        if let Some(journal) = super::fsio::interrupted(root) {
            return Err(PkiError::Interrupted {
                root: root.to_path_buf(),
                journal,
            });
        }
        let layout = Layout::new(root);
        let ims_path = layout.ims_conf(FMC_DIR);
        if !layout.ca_cert().exists() && !ims_path.exists() {
            return Err(PkiError::NotAPki {
                root: root.to_path_buf(),
                missing: layout.ca_cert(),
            });
        }
        let ims: ImsConf = conf::parse_ims_conf(&read_text(&ims_path)?, &ims_path)?;
        let conf_path = layout.sftunnel_conf(FMC_DIR);
        let sft = conf::parse_sftunnel_conf(&read_text(&conf_path)?, &conf_path)?;
        // Peer names become folder names under the root: `../x` or `/etc` must not.
        for p in &sft.peers {
            super::init::valid_name(&p.identity.name).map_err(|reason| PkiError::InvalidName {
                name: p.identity.name.clone(),
                reason: format!("{reason}; in {}", conf_path.display()),
            })?;
        }
        Ok(PkiRoot {
            layout,
            fmc: ims.identity,
            peers: sft.peers.into_iter().map(|p| p.identity).collect(),
        })
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&Identity> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// The peer with UUID `uuid`.
    pub fn peer_by_uuid(&self, uuid: &Uuid) -> Option<&Identity> {
        self.peers.iter().find(|p| &p.uuid == uuid)
    }

    /// `proxy_tls_version` of the appliance in folder `appliance` (`fmc`, or a device's name):
    /// the TLS version its tunnel runs. A missing line is TLS 1.2, as before 7.6.
    pub fn tls_version(&self, appliance: &str) -> Result<super::TlsVersion, PkiError> {
        let path = self.layout.sftunnel_conf(appliance);
        let sft = conf::parse_sftunnel_conf(&read_text(&path)?, &path)?;
        sft.proxy.version().map_err(|reason| PkiError::Parse {
            path: path.clone(),
            reason: format!("proxy_tls_version: {reason}"),
        })
    }

    /// The FMC's tunnel files.
    pub fn fmc_files(&self) -> PeerFiles {
        self.layout.fmc_files()
    }

    /// Device `name`'s tunnel files, on the device.
    pub fn device_files(&self, name: &str) -> Option<PeerFiles> {
        self.peer(name)
            .map(|p| self.layout.device_files(&p.name, &self.fmc.uuid))
    }

    /// The FMC's pushed copies for device `name`.
    pub fn pushed_files(&self, name: &str) -> Option<PeerFiles> {
        self.peer(name).map(|p| self.layout.pushed_files(&p.uuid))
    }
}

pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    // Config files are small; refuse anything absurd rather than reading it whole.
    const MAX: u64 = 1 << 20;
    let meta = std::fs::metadata(path).map_err(|e| PkiError::io("read", path, e))?;
    if meta.len() > MAX {
        return Err(PkiError::Parse {
            path: path.to_path_buf(),
            reason: format!("{} bytes is too large for a configuration file", meta.len()),
        });
    }
    std::fs::read_to_string(path).map_err(|e| PkiError::io("read", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_appliance_layout() {
        let l = Layout::new("/lab");
        let fmc: Uuid = "cdb123c8-4347-11ef-aca1-f3aa241412a1".parse().unwrap();
        let dev: Uuid = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e".parse().unwrap();
        assert_eq!(
            l.fmc_files(),
            PeerFiles {
                ca: "/lab/fmc/etc/sf/ca_root/cacert.pem".into(),
                cert: "/lab/fmc/etc/sf/keys/sftunnel-cert.pem".into(),
                key: "/lab/fmc/etc/sf/keys/sftunnel-key.pem".into(),
            }
        );
        assert_eq!(
            l.pushed_files(&dev).cert,
            PathBuf::from(
                "/lab/fmc/var/sf/peers/c8d5d5c6-87c9-11ef-a993-b9831565bc4e/certs_pushed/sftunnel-cert.pem"
            )
        );
        assert_eq!(
            l.device_files("ftd1", &fmc).key,
            PathBuf::from(
                "/lab/ftd1/var/sf/peers/cdb123c8-4347-11ef-aca1-f3aa241412a1/sftunnel-key.pem"
            )
        );
        assert_eq!(
            l.failed_push(1700000000),
            PathBuf::from("/lab/fmc/var/tmp/certs/1700000000/FAILED_PUSH")
        );
    }
}
