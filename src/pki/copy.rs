//! `pki copy`: the `copy_sftunnel_certs.py` step, for the devices a renewal could not push to.
//!
//! Owns the `devices.csv` format (`device_name,ipaddr,login,password`, `#` comments), the order
//! of work for each listed device, and the steps it tells ([`CopyEvent`]: `report::copy` prints
//! them as `copy_sftunnel_certs.py` does, stamped by the caller's clock). How bytes reach an
//! appliance is a [`Transport`]'s job: [`LocalTransport`] works on a lab root (each appliance is
//! a folder); an SSH transport to real appliances can implement the same four calls (log in,
//! read a file, install a set of files, restart sftunnel) without touching the rest.
//!
//! The certificates come from the FMC: the appliance that runs the copy, or, when the first
//! line of `devices.csv` names an FMC, that FMC (jump-server use). Its `ims.conf` and
//! `sftunnel.conf` say which peers it has and their UUIDs; each device gets
//! `/var/sf/peers/<device>/certs_pushed/{cacert,sftunnel-cert,sftunnel-key}.pem` from the FMC
//! as `/var/sf/peers/<fmc>/...` on its own side, as one set. A listed FMC that is not the HA
//! secondary (the source itself, listed first, or another primary) is reached and left alone
//! (`is not an HA-peer`): it keeps its own files, and only devices and the secondary take the
//! FMC's. What happens is told as [`CopyEvent`]s while it happens; `report::copy`
//! lays them out.
//!
//! On a lab root ([`LocalTransport`]) the root is locked for the whole run and any change a
//! dead run left is finished or undone first, so the copy never reads a half-renewed
//! `certs_pushed`. Each device's set is one `fsio::Transaction` journaled beside the device's
//! key, like a push: a copy killed mid-set leaves the device all old or all new files, and the
//! next copy or the device's own start finishes it. What a set replaces is kept as its next
//! free `*.backup` (`.backup`, `.backup.1`, ...: never overwritten, also when a device is
//! listed twice, whose second copy changes nothing). No file is read or written through a
//! symbolic link, so nothing outside the root is.

use std::fmt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::conf::{self, SftunnelConf};
use super::fsio::{self, Faults, KEY_DIR_MODE, KEY_MODE, Recovery, RootLock, Transaction};
use super::layout::Identity;
use super::layout::{CACERT_FILE, CERT_FILE, DEVICE_JOURNAL, KEY_FILE, rel};
use super::{PkiError, Role};

/// One line of `devices.csv`.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceEntry {
    /// 1-based line number in the file.
    pub line: usize,
    /// The device's name (as the FMC knows it).
    pub name: String,
    /// Its management address.
    pub ip: String,
    /// The login a transport uses.
    pub login: String,
    /// The password a transport uses (never printed).
    pub password: String,
}

impl fmt::Debug for DeviceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceEntry")
            .field("line", &self.line)
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl DeviceEntry {
    /// An entry for an appliance known by identity (the local FMC), with no credentials.
    pub fn for_identity(id: &Identity) -> Self {
        DeviceEntry {
            line: 0,
            name: id.name.clone(),
            ip: id.ip.to_string(),
            login: String::new(),
            password: String::new(),
        }
    }
}

/// Parses `devices.csv`: `device_name,ipaddr,login,password` per line; blank lines and lines
/// starting with `#` are skipped; the password is the rest of the line (it may hold commas).
pub fn parse_devices_csv(text: &str, path: &Path) -> Result<Vec<DeviceEntry>, PkiError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.splitn(4, ',').collect();
        let bad = |reason: &str| PkiError::Parse {
            path: path.to_path_buf(),
            reason: format!("line {}: {reason}", i + 1),
        };
        if f.len() < 4 {
            return Err(bad("expected device_name,ipaddr,login,password"));
        }
        let name = f[0].trim();
        if name.is_empty() {
            return Err(bad("empty device name"));
        }
        out.push(DeviceEntry {
            line: i + 1,
            name: name.to_string(),
            ip: f[1].trim().to_string(),
            login: f[2].trim().to_string(),
            password: f[3].to_string(),
        });
    }
    Ok(out)
}

/// A file to install on an appliance, at the path the appliance sees (`/var/sf/...`).
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Absolute path on the appliance.
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
    /// Unix mode (0600 for keys).
    pub mode: u32,
}

impl fmt::Debug for RemoteFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteFile")
            .field("path", &self.path)
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// What restarting a device's sftunnel did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// sftunnel was restarted and reconnects with the new files now.
    Restarted,
    /// No running tunnel could be reached; the device's sftunnel reads its files again before
    /// its next connection attempt (`sfdiag connect` retries with backoff).
    OnNextAttempt,
}

/// How `pki copy` reaches appliances. Errors are reported per device and the copy goes on.
pub trait Transport {
    /// Logs in to `host` (an SSH transport would authenticate with its login and password).
    fn connect(&mut self, host: &DeviceEntry) -> Result<(), PkiError>;
    /// Reads a file from `host` (absolute appliance path).
    fn read(&mut self, host: &DeviceEntry, path: &str) -> Result<Vec<u8>, PkiError>;
    /// Installs `files` on `host` as one set: old files kept as `*.backup`, all new ones
    /// staged beside their targets, then renamed, so the device never holds a mix.
    fn install(&mut self, host: &DeviceEntry, files: &[RemoteFile]) -> Result<(), PkiError>;
    /// Restarts sftunnel on `host`.
    fn restart_sftunnel(&mut self, host: &DeviceEntry) -> Result<Restart, PkiError>;
}

/// A restart hook: given an appliance's name, restarts its emulated sftunnel if it runs in
/// this process and says whether it did (the lab wires its device clients here).
pub(super) type RestartHook = Box<dyn FnMut(&str) -> bool + Send>;

/// Appliances as folders of a lab root (`ROOT/fmc`, `ROOT/<name>`), found by the name or IP
/// in their `etc/sf/ims.conf`. Credentials are not needed and not checked.
pub struct LocalTransport {
    root: PathBuf,
    restart: Option<RestartHook>,
    faults: Faults,
    recovered: Option<Recovery>,
    _held: RootLock,
}

impl fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTransport")
            .field("root", &self.root)
            .field("restart_hook", &self.restart.is_some())
            .finish_non_exhaustive()
    }
}

impl LocalTransport {
    /// A transport over the appliances under `root`: refuses a root others may write, locks
    /// it until dropped (a renewal or another copy of it waits its turn) and finishes or
    /// undoes whatever change a dead run left in it.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, PkiError> {
        let root = root.into();
        super::refuse_writable_by_others(&root)?;
        let held = RootLock::acquire(&root)?;
        let recovered = super::renew::recover(&held)?;
        Ok(LocalTransport {
            root: held.root().to_path_buf(),
            restart: None,
            faults: Faults::none(),
            recovered,
            _held: held,
        })
    }

    /// What finishing or undoing a dead run's change did when the root was opened.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_ref()
    }

    /// Restarts in-process tunnels through `hook`.
    pub fn with_restart(mut self, hook: RestartHook) -> Self {
        self.restart = Some(hook);
        self
    }

    /// Calls `faults` before every file-system step of each device's install.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The folder that is `host`'s file system. Folders that are symbolic links are not
    /// appliances: they could lead anywhere.
    fn folder(&self, host: &DeviceEntry) -> Result<PathBuf, PkiError> {
        let unreachable = |reason: String| PkiError::Unreachable {
            host: host.name.clone(),
            reason,
        };
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| unreachable(format!("{}: {e}", self.root.display())))?;
        let mut by_ip = None;
        let mut linked = None;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for e in entries.filter_map(|e| e.ok()) {
            let Ok(ty) = e.file_type() else { continue };
            if ty.is_symlink() && e.file_name().eq_ignore_ascii_case(host.name.as_str()) {
                linked = Some(e.path());
            }
            if ty.is_dir() {
                dirs.push(e.path());
            }
        }
        dirs.sort();
        for dir in dirs {
            let path = dir.join(rel::IMS_CONF);
            let Ok(bytes) = fsio::read_inside(&self.root, &path) else {
                continue;
            };
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            let Ok(ims) = conf::parse_ims_conf(&text, &path) else {
                continue;
            };
            if ims.identity.name.eq_ignore_ascii_case(&host.name) {
                return Ok(dir);
            }
            if by_ip.is_none() && ims.identity.ip.to_string() == host.ip {
                by_ip = Some(dir);
            }
        }
        if let Some(dir) = by_ip {
            return Ok(dir);
        }
        if let Some(path) = linked {
            return Err(PkiError::Symlink {
                path,
                root: self.root.clone(),
            });
        }
        Err(unreachable(format!(
            "no appliance named {} or at {} under {}",
            host.name,
            host.ip,
            self.root.display()
        )))
    }
}

/// `/var/sf/x` under an appliance folder.
fn under(folder: &Path, path: &str) -> PathBuf {
    folder.join(path.trim_start_matches('/'))
}

impl Transport for LocalTransport {
    fn connect(&mut self, host: &DeviceEntry) -> Result<(), PkiError> {
        self.folder(host).map(|_| ())
    }

    fn read(&mut self, host: &DeviceEntry, path: &str) -> Result<Vec<u8>, PkiError> {
        let p = under(&self.folder(host)?, path);
        fsio::read_inside(&self.root, &p)
    }

    fn install(&mut self, host: &DeviceEntry, files: &[RemoteFile]) -> Result<(), PkiError> {
        let folder = self.folder(host)?;
        let targets: Vec<PathBuf> = files.iter().map(|f| under(&folder, &f.path)).collect();
        let Some(dir) = targets
            .first()
            .and_then(|t| t.parent())
            .map(Path::to_path_buf)
        else {
            return Ok(());
        };
        if let Some(other) = targets.iter().find(|t| t.parent() != Some(dir.as_path())) {
            return Err(PkiError::OutsideRoot {
                path: other.clone(),
                root: dir,
            });
        }
        // The device's folder must be the root's own before anything is made in it.
        fsio::check_inside(&self.root, &dir)?;
        fsio::ensure_dir(&dir, KEY_DIR_MODE)?;
        // The same journal and lock as a push to this device: one install at a time, and
        // whichever comes next finishes one that died.
        let lock = RootLock::acquire_with_journal(&dir, DEVICE_JOURNAL)?;
        fsio::recover(&lock)?;
        let mut tx = Transaction::new(&lock, "copy")
            .confine_to(&self.root)
            .with_faults(&self.faults);
        for (t, f) in targets.iter().zip(files) {
            tx.write(t, f.data.clone(), f.mode);
        }
        tx.commit().map(|_| ())
    }

    fn restart_sftunnel(&mut self, host: &DeviceEntry) -> Result<Restart, PkiError> {
        let folder = self.folder(host)?;
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let restarted = self.restart.as_mut().is_some_and(|hook| hook(&name));
        Ok(if restarted {
            Restart::Restarted
        } else {
            Restart::OnNextAttempt
        })
    }
}

/// One step of a copy, told as it happens (`report::copy` lays it out in
/// `copy_sftunnel_certs.py`'s words), in the script's order: for each listed appliance
/// `Attempting`, then `Unreachable`, or `Connected` ... `Closing`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyEvent {
    /// Trying a listed appliance.
    Attempting {
        /// The appliance, as `devices.csv` names it.
        name: String,
    },
    /// It could not be reached (its block ends here).
    Unreachable {
        /// The appliance, as `devices.csv` names it.
        name: String,
        /// Why (the `PkiError`'s text).
        error: String,
    },
    /// Logged in to it.
    Connected {
        /// The appliance, as `devices.csv` names it.
        name: String,
    },
    /// It is an FMC that is not the HA secondary (the FMC the certificates come from, listed
    /// first in `devices.csv`, or another primary): it keeps its own files.
    NotHaPeer {
        /// The appliance, as `devices.csv` names it.
        name: String,
    },
    /// It was skipped, and why (not a peer of the FMC: no certificates were made for it).
    Skipped {
        /// The appliance, as `devices.csv` names it.
        name: String,
        /// Why, in the words `CopyReport::skipped` keeps.
        why: String,
    },
    /// Its files are being installed.
    Copying {
        /// The appliance, as `devices.csv` names it.
        name: String,
    },
    /// Its files are in place.
    Copied {
        /// The appliance, as `devices.csv` names it.
        name: String,
    },
    /// Its sftunnel was restarted (or will read the files at its next attempt).
    Restarted {
        /// The appliance, as `devices.csv` names it.
        name: String,
        /// Restarted now, or reading the files at its next attempt.
        restart: Restart,
    },
    /// Its files could not be read or installed.
    Failed {
        /// The appliance, as `devices.csv` names it.
        name: String,
        /// Why (the `PkiError`'s text).
        error: String,
    },
    /// Done with it (its block ends here).
    Closing {
        /// The appliance, as `devices.csv` names it.
        name: String,
    },
    /// Every entry was handled.
    Done {
        /// How many appliances got their files.
        copied: usize,
        /// How many were unreachable or failed.
        failed: usize,
        /// How many were passed over (not a peer, not the HA secondary).
        skipped: usize,
    },
}

/// What happened to each listed device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Devices that got their files.
    pub copied: Vec<String>,
    /// Devices that could not be reached or written, with why.
    pub failed: Vec<(String, String)>,
    /// Entries skipped, with why (an FMC that is not the HA secondary, an unknown device).
    pub skipped: Vec<(String, String)>,
}

impl CopyReport {
    /// True when every device that was not skipped got its files.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Reads an appliance's identity and peers through the transport.
fn read_fmc(
    t: &mut dyn Transport,
    host: &DeviceEntry,
) -> Result<(Identity, SftunnelConf), PkiError> {
    let text = |t: &mut dyn Transport, p: &str| -> Result<String, PkiError> {
        let b = t.read(host, p)?;
        String::from_utf8(b).map_err(|_| PkiError::Parse {
            path: PathBuf::from(p),
            reason: "not UTF-8".into(),
        })
    };
    let ims_path = format!("/{}", rel::IMS_CONF);
    let ims = conf::parse_ims_conf(&text(t, &ims_path)?, Path::new(&ims_path))?;
    let conf_path = format!("/{}", rel::SFTUNNEL_CONF);
    let sft = conf::parse_sftunnel_conf(&text(t, &conf_path)?, Path::new(&conf_path))?;
    Ok((ims.identity, sft))
}

/// Copies each listed device's files from the FMC. `local_fmc` is the FMC the copy runs on,
/// used unless the first entry names an FMC (jump-server use, and what `devices.csv` lists
/// first for `copy_sftunnel_certs.py`). `event` hears each step as it happens, stamped by
/// `clock` (the caller's: the system clock, `--at`, or the lab's).
pub fn copy(
    entries: &[DeviceEntry],
    local_fmc: &DeviceEntry,
    t: &mut dyn Transport,
    clock: &dyn Fn() -> OffsetDateTime,
    event: &mut dyn FnMut(OffsetDateTime, &CopyEvent),
) -> Result<CopyReport, PkiError> {
    let mut say = |e: CopyEvent| event(clock(), &e);
    let mut report = CopyReport::default();
    let mut targets = entries;
    let mut source = local_fmc.clone();
    let mut source_row = None;
    if let Some(first) = entries.first()
        && t.connect(first).is_ok()
        && let Ok((id, _)) = read_fmc(t, first)
        && id.role == Role::Fmc
    {
        source = first.clone();
        source_row = Some(first);
        targets = &entries[1..];
    }
    t.connect(&source).map_err(|e| PkiError::Unreachable {
        host: source.name.clone(),
        reason: format!("the FMC cannot be reached: {e}"),
    })?;
    let (fmc, sft) = read_fmc(t, &source)?;
    // The FMC's own row, as the script prints it: reached, and left alone.
    if let Some(first) = source_row {
        let name = first.name.clone();
        say(CopyEvent::Attempting { name: name.clone() });
        say(CopyEvent::Connected { name: name.clone() });
        say(CopyEvent::NotHaPeer { name: name.clone() });
        say(CopyEvent::Closing { name: name.clone() });
        report
            .skipped
            .push((name, "the FMC the certificates come from".into()));
    }

    for dev in targets {
        let name = dev.name.clone();
        say(CopyEvent::Attempting { name: name.clone() });
        if let Err(e) = t.connect(dev) {
            say(CopyEvent::Unreachable {
                name: name.clone(),
                error: e.to_string(),
            });
            report.failed.push((name, e.to_string()));
            continue;
        }
        say(CopyEvent::Connected { name: name.clone() });
        let closing = CopyEvent::Closing { name: name.clone() };
        // Who the host says it is decides whether it may take the FMC's files.
        let own = read_fmc(t, dev).map(|(id, _)| id);
        // The FMC the copy runs on (the HA secondary under `--fmc`) keeps its own files.
        let source_itself = own.as_ref().is_ok_and(|id| id.uuid == fmc.uuid);
        if let Ok(id) = &own
            && (id.role == Role::Fmc || source_itself)
        {
            // copy_sftunnel_certs.py's words for an FMC's row; the report keeps which FMC.
            say(CopyEvent::NotHaPeer { name: name.clone() });
            let why = if source_itself {
                format!("{name} is the FMC the certificates come from")
            } else {
                format!(
                    "{name} is an FMC HA peer but not the secondary (only devices and the secondary FMC take these certificates)"
                )
            };
            report.skipped.push((name, why));
            say(closing);
            continue;
        }
        let peer = sft.peers.iter().map(|p| &p.identity).find(|p| match &own {
            Ok(id) => p.uuid == id.uuid,
            Err(_) => p.name.eq_ignore_ascii_case(&dev.name) || p.ip.to_string() == dev.ip,
        });
        let Some(peer) = peer else {
            let why = format!(
                "{name} is not a peer of FMC {}: no certificates were generated for it",
                fmc.name
            );
            say(CopyEvent::Skipped {
                name: name.clone(),
                why: why.clone(),
            });
            report.skipped.push((name, why));
            say(closing);
            continue;
        };
        say(CopyEvent::Copying { name: name.clone() });
        let installed = (|| -> Result<(), PkiError> {
            let mut files = Vec::new();
            for (file, mode) in [
                (CACERT_FILE, fsio::PUBLIC_MODE),
                (KEY_FILE, KEY_MODE),
                (CERT_FILE, fsio::PUBLIC_MODE),
            ] {
                let src = format!("/{}/{file}", rel::pushed_dir(&peer.uuid));
                let data = t.read(&source, &src)?;
                files.push(RemoteFile {
                    path: format!("/{}/{file}", rel::peer_dir(&fmc.uuid)),
                    data,
                    mode,
                });
            }
            t.install(dev, &files)
        })();
        let result = installed.and_then(|()| {
            say(CopyEvent::Copied { name: name.clone() });
            t.restart_sftunnel(dev)
        });
        match result {
            Ok(restart) => {
                say(CopyEvent::Restarted {
                    name: name.clone(),
                    restart,
                });
                report.copied.push(name);
            }
            Err(e) => {
                say(CopyEvent::Failed {
                    name: name.clone(),
                    error: e.to_string(),
                });
                report.failed.push((name, e.to_string()));
            }
        }
        say(closing);
    }
    say(CopyEvent::Done {
        copied: report.copied.len(),
        failed: report.failed.len(),
        skipped: report.skipped.len(),
    });
    Ok(report)
}

/// The FMC of a lab root as a copy source.
pub fn local_fmc_entry(root: &super::layout::PkiRoot) -> DeviceEntry {
    DeviceEntry::for_identity(&root.fmc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_comments_and_commas_in_passwords() {
        let text = "# name,ip,login,password\n\nfmc,10.0.0.1,admin,Adm!n123\n  ftd3 , 10.0.0.13 ,admin,pa,ss\n";
        let v = parse_devices_csv(text, Path::new("d.csv")).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].name, "ftd3");
        assert_eq!(v[1].ip, "10.0.0.13");
        assert_eq!(v[1].password, "pa,ss");
        assert_eq!(v[1].line, 4);
        assert!(!format!("{:?}", v[0]).contains("Adm!n"));
        let e = parse_devices_csv("ftd1,10.0.0.1\n", Path::new("d.csv")).unwrap_err();
        assert!(e.to_string().contains("d.csv: line 1"), "{e}");
    }
}
