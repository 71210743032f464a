//! Where every file of a lab PKI lives, and reading a root back.
//!
//! Under `--root DIR`, each appliance has its own folder laid out like its real file system:
//! `DIR/fmc/...` for the FMC and `DIR/<NAME>/...` for each managed device (or HA secondary).
//! `Layout` is pure path arithmetic (no I/O) so the tunnel, renewal and `check` agree on
//! names; `PkiRoot::load` reads `ims.conf` and `sftunnel.conf` to learn names, UUIDs, IPs
//! and roles. Certificates themselves are not read here.
//!
//! FMC high availability: an HA secondary is its own FMC (its own InternalCA, sftunnel
//! certificate and `certs_pushed/` per device, in `DIR/<NAME>/etc/sf/...`) and, at the same
//! time, a peer the primary manages like a device (`DIR/<NAME>/var/sf/peers/<primary>/`).
//! So a root has one or two FMCs ([`PkiRoot::fmcs`]); one of them *acts* in a command (the
//! primary unless `--fmc NAME` picks the secondary, [`PkiRoot::as_fmc`]): `layout`, `fmc` and
//! `peers` are the acting FMC's, so renewal, `serve`, `status`, FAILED_PUSH, the generation
//! log and the control socket all work on that FMC's folder without knowing which it is.
//! [`PkiRoot::links`] lists every tunnel of the root: each device to each FMC, and the
//! secondary to the primary (the FMC-to-FMC tunnel rests on the primary's InternalCA).

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
pub(super) const CACERT_FILE: &str = "cacert.pem";
/// The sftunnel certificate's file name in a peer folder.
pub(super) const CERT_FILE: &str = "sftunnel-cert.pem";
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

/// Path arithmetic for a lab root, seen from its acting FMC (the primary, `fmc/`, unless
/// [`Layout::for_fmc`] names the HA secondary's folder): every `fmc_*`, `ca_*`, `pushed_*`
/// and `failed_push` path is under that FMC's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    fmc: String,
}

impl Layout {
    /// The layout under `root`, the primary acting.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout {
            root: root.into(),
            fmc: FMC_DIR.to_string(),
        }
    }

    /// The same root with the FMC whose folder is `ROOT/<name>` acting (an HA secondary).
    pub fn for_fmc(&self, name: &str) -> Self {
        Layout {
            root: self.root.clone(),
            fmc: name.to_string(),
        }
    }

    /// The acting FMC's folder name (`fmc` for the primary).
    pub fn fmc_name(&self) -> &str {
        &self.fmc
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/<name>`: an appliance's own file system (`fmc` for the FMC).
    pub fn appliance_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `ROOT/fmc` (the acting FMC's folder).
    pub fn fmc_dir(&self) -> PathBuf {
        self.appliance_dir(&self.fmc)
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

/// One FMC of a root (the primary or an HA secondary with its own InternalCA) and the peers it
/// manages, in its `sftunnel.conf` order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FmcPeers {
    identity: Identity,
    peers: Vec<Identity>,
}

/// One sftunnel of a root: a managed peer and the FMC it talks to, with both ends' files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The FMC end (the primary or the HA secondary).
    pub fmc: Identity,
    /// The peer end: a device, or the HA secondary on its tunnel to the primary.
    pub peer: Identity,
    /// The FMC's own files: its InternalCA, its sftunnel certificate and key.
    pub fmc_files: PeerFiles,
    /// The peer's files for this FMC: `<peer>/var/sf/peers/<fmc uuid>/...`.
    pub peer_files: PeerFiles,
    /// The FMC's copies of what it gave the peer: `<fmc>/var/sf/peers/<peer uuid>/certs_pushed/`.
    pub pushed: PeerFiles,
}

/// A lab root read back: its FMCs and their peers, and where their files are. `layout`,
/// `fmc` and `peers` are the acting FMC's (the primary as loaded; see [`PkiRoot::as_fmc`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkiRoot {
    /// Path arithmetic for this root, from the acting FMC.
    pub layout: Layout,
    /// The acting FMC: the primary, unless [`PkiRoot::as_fmc`] picked the HA secondary.
    pub fmc: Identity,
    /// The acting FMC's peers, in its `sftunnel.conf` order: for the primary, the managed
    /// devices and the HA secondary; for the secondary, the devices.
    pub peers: Vec<Identity>,
    /// Every FMC of the root, the primary first.
    fmcs: Vec<FmcPeers>,
}

impl PkiRoot {
    /// Reads `ROOT/fmc/etc/sf/ims.conf` and `ROOT/fmc/etc/sf/sftunnel.conf`, and for an HA
    /// secondary that has an InternalCA of its own, its `sftunnel.conf`. Refuses a root
    /// a dead run left in the middle of a change (its files may be a mix of old and new):
    /// the commands that change a root finish or undo it first.
    pub fn load(root: &Path) -> Result<Self, PkiError> {
        super::guard::refuse_writable_by_others(root)?;
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
        let peers = read_peers(&layout, FMC_DIR)?;
        let mut secondaries = Vec::new();
        // An HA secondary is an FMC of its own once it has its own InternalCA (a root made
        // before that had only its device-like folder for the primary).
        for p in peers.iter().filter(|p| p.role == Role::HaSecondary) {
            if layout.appliance_dir(&p.name).join(rel::CA_CERT).exists() {
                let managed = read_peers(&layout, &p.name)?
                    .into_iter()
                    .filter(|q| q.uuid != ims.identity.uuid)
                    .collect();
                secondaries.push((p.clone(), managed));
            }
        }
        Ok(PkiRoot::assemble(layout, ims.identity, peers, secondaries))
    }

    /// A root from its parts, the primary acting.
    pub(crate) fn assemble(
        layout: Layout,
        primary: Identity,
        peers: Vec<Identity>,
        secondaries: Vec<(Identity, Vec<Identity>)>,
    ) -> Self {
        let mut fmcs = vec![FmcPeers {
            identity: primary.clone(),
            peers: peers.clone(),
        }];
        fmcs.extend(
            secondaries
                .into_iter()
                .map(|(identity, peers)| FmcPeers { identity, peers }),
        );
        PkiRoot {
            layout,
            fmc: primary,
            peers,
            fmcs,
        }
    }

    /// Every FMC of the root, the primary first, then an HA secondary with its own InternalCA.
    pub fn fmcs(&self) -> Vec<&Identity> {
        self.fmcs.iter().map(|f| &f.identity).collect()
    }

    /// The primary FMC (whichever acts).
    pub fn primary(&self) -> &Identity {
        &self.fmcs[0].identity
    }

    /// True when the primary acts.
    pub fn primary_acts(&self) -> bool {
        self.fmc.uuid == self.primary().uuid
    }

    /// The FMC called `name` (`fmc` is the primary's folder name).
    pub fn fmc_named(&self, name: &str) -> Option<&Identity> {
        self.fmcs
            .iter()
            .map(|f| &f.identity)
            .find(|f| f.name == name)
    }

    /// The same root with the FMC called `name` acting (`serve`, `connect`, `pki renew`,
    /// `status`: `--fmc NAME`): its folder, identity and peers.
    pub fn as_fmc(&self, name: &str) -> Result<PkiRoot, PkiError> {
        let f = self
            .fmcs
            .iter()
            .find(|f| f.identity.name == name)
            .ok_or_else(|| PkiError::NotAnFmc {
                name: name.to_string(),
                root: self.layout.root().to_path_buf(),
                fmcs: self.fmcs.iter().map(|f| f.identity.name.clone()).collect(),
            })?;
        Ok(PkiRoot {
            layout: self.layout.for_fmc(&f.identity.name),
            fmc: f.identity.clone(),
            peers: f.peers.clone(),
            fmcs: self.fmcs.clone(),
        })
    }

    /// The peers `fmc` manages (none for an FMC the root does not have).
    pub fn peers_of(&self, fmc: &Identity) -> &[Identity] {
        self.fmcs
            .iter()
            .find(|f| f.identity.uuid == fmc.uuid)
            .map_or(&[], |f| &f.peers)
    }

    /// The acting FMC's managed devices (its peers but the HA secondary).
    pub fn devices(&self) -> impl Iterator<Item = &Identity> {
        self.peers.iter().filter(|p| p.role == Role::Device)
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
    pub fn tls_version(&self, appliance: &str) -> Result<conf::TlsVersion, PkiError> {
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

    /// FMC `fmc`'s own tunnel files (InternalCA, sftunnel certificate and key).
    pub fn fmc_files_of(&self, fmc: &Identity) -> PeerFiles {
        self.layout.for_fmc(&fmc.name).fmc_files()
    }

    /// Device `name`'s tunnel files, on the device.
    pub fn device_files(&self, name: &str) -> Option<PeerFiles> {
        self.peer(name)
            .map(|p| self.layout.device_files(&p.name, &self.fmc.uuid))
    }

    /// Peer `name`'s files for its tunnel to `fmc` (`<name>/var/sf/peers/<fmc uuid>/`), when
    /// `fmc` manages it.
    pub fn device_files_for(&self, name: &str, fmc: &Identity) -> Option<PeerFiles> {
        self.peers_of(fmc)
            .iter()
            .find(|p| p.name == name)
            .map(|p| self.layout.device_files(&p.name, &fmc.uuid))
    }

    /// The FMC's pushed copies for device `name`.
    pub fn pushed_files(&self, name: &str) -> Option<PeerFiles> {
        self.peer(name).map(|p| self.layout.pushed_files(&p.uuid))
    }

    /// Every tunnel of the root, FMC by FMC (the primary's first, in `sftunnel.conf` order):
    /// each device to each FMC that manages it, and the HA secondary to the primary.
    pub fn links(&self) -> Vec<Link> {
        let mut out = Vec::new();
        for f in &self.fmcs {
            let l = self.layout.for_fmc(&f.identity.name);
            for p in &f.peers {
                out.push(Link {
                    fmc: f.identity.clone(),
                    peer: p.clone(),
                    fmc_files: l.fmc_files(),
                    peer_files: l.device_files(&p.name, &f.identity.uuid),
                    pushed: l.pushed_files(&p.uuid),
                });
            }
        }
        out
    }
}

/// The managed peers in `ROOT/<fmc>/etc/sf/sftunnel.conf`, their names checked. An FMC
/// listed there (the primary, in the HA secondary's file) is its manager, not a peer.
fn read_peers(layout: &Layout, fmc: &str) -> Result<Vec<Identity>, PkiError> {
    let conf_path = layout.sftunnel_conf(fmc);
    let mut sft = conf::parse_sftunnel_conf(&read_text(&conf_path)?, &conf_path)?;
    sft.peers.retain(|p| p.identity.role != Role::Fmc);
    // Peer names become folder names under the root: `../x` or `/etc` must not.
    for p in &sft.peers {
        super::init::valid_name(&p.identity.name).map_err(|reason| PkiError::InvalidName {
            name: p.identity.name.clone(),
            reason: format!("{reason}; in {}", conf_path.display()),
        })?;
    }
    Ok(sft.peers.into_iter().map(|p| p.identity).collect())
}

/// A configuration file's text: a link is followed, a FIFO or device is refused at once, and
/// so is a file of more than 1 MiB (config files are small) or one that is not UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    const MAX: u64 = 1 << 20;
    crate::files::read_text_bounded(path, MAX, crate::files::Links::Follow).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::FileTooLarge => PkiError::Parse {
                path: path.to_path_buf(),
                reason: format!("{e}: too large for a configuration file"),
            },
            _ => PkiError::io("read", path, e),
        }
    })
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

    #[test]
    fn an_ha_secondary_acting_has_its_own_folder_for_everything() {
        let l = Layout::new("/lab").for_fmc("FMC2");
        let dev: Uuid = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e".parse().unwrap();
        assert_eq!(l.fmc_name(), "FMC2");
        assert_eq!(
            l.ca_cert(),
            PathBuf::from("/lab/FMC2/etc/sf/ca_root/cacert.pem")
        );
        assert_eq!(
            l.fmc_files().cert,
            PathBuf::from("/lab/FMC2/etc/sf/keys/sftunnel-cert.pem")
        );
        assert_eq!(
            l.pushed_dir(&dev),
            PathBuf::from(
                "/lab/FMC2/var/sf/peers/c8d5d5c6-87c9-11ef-a993-b9831565bc4e/certs_pushed"
            )
        );
        assert_eq!(
            l.failed_push(1),
            PathBuf::from("/lab/FMC2/var/tmp/certs/1/FAILED_PUSH")
        );
        // Devices' folders do not depend on who acts.
        assert_eq!(l.appliance_dir("ftd1"), PathBuf::from("/lab/ftd1"));
        assert_eq!(l.for_fmc(FMC_DIR), Layout::new("/lab"));
    }
}
