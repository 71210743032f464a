//! `pki init`: a whole lab PKI, written as one transaction into the root.
//!
//! Order of work: check the request (names, UUIDs, times) and refuse `/`, system folders and
//! home roots before anything is touched; create the root if missing (a folder that exists
//! keeps its mode) and take its lock, finishing or undoing whatever change a dead run left;
//! refuse an existing PKI without `--force`; make every key, the InternalCA and the peer
//! certificates in memory; then write the whole tree as one `fsio::Transaction`, keeping every
//! replaced file, and under `--force` the files of peers the new PKI drops, as their next free
//! `*.backup`. A failure or a crash leaves the root as it was or the whole new PKI.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::conf::{self, ImsConf, PeerEntry, ProxySsl, SFTUNNEL_PORT, SftunnelConf, TlsVersion};
use super::fsio::{
    self, DIR_MODE, Faults, KEY_DIR_MODE, KEY_MODE, PUBLIC_MODE, RootLock, Transaction,
};
use super::issue;
use super::layout::{CACERT_FILE, CERT_FILE, FMC_DIR, KEY_FILE, rel};
use super::layout::{Identity, Layout, PkiRoot};
use super::{PkiError, Role, Uuid, Validity};

/// A device to create: its name (folder name) and, optionally, a fixed UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Folder name under the root, e.g. `ftd1`.
    pub name: String,
    /// Its UUID; random when `None`.
    pub uuid: Option<Uuid>,
}

/// Everything `pki init` needs; times are resolved by the caller.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The lab root (created if missing).
    pub root: PathBuf,
    /// The FMC's UUID; random when `None`.
    pub fmc_uuid: Option<Uuid>,
    /// Managed devices, in registration order.
    pub devices: Vec<DeviceSpec>,
    /// A secondary FMC in HA, `NAME` or `NAME=UUID`: an FMC of its own (its own InternalCA, sftunnel certificate and
    /// tunnels to every device) that the primary also manages like a device.
    pub ha_secondary: Option<String>,
    /// The HA secondary's InternalCA validity (default: the primary's): made when that FMC
    /// was installed, so the two end at different times.
    pub ha_ca_validity: Option<Validity>,
    /// The validity of the certificates the HA secondary's InternalCA signs (its own and the
    /// devices'; default: `peer_validity`).
    pub ha_peer_validity: Option<Validity>,
    /// The InternalCA's validity.
    pub ca_validity: Validity,
    /// The peer certificates' validity.
    pub peer_validity: Validity,
    /// RSA key size for every key.
    pub key_bits: u32,
    /// Replace an existing PKI, keeping its files as `*.backup`.
    pub force: bool,
    /// `proxy_tls_version` written to every `sftunnel.conf` (TLSv1.2 before 7.6, TLSv1.3
    /// from 7.6): what `serve`/`connect`/`validate --root` run by default.
    pub tls_version: TlsVersion,
}

/// One file of the plan, relative to the root.
struct PlannedFile {
    rel: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
}

/// Builds the PKI described by `opts` under `opts.root` and returns it as loaded.
pub fn init(opts: &InitOptions) -> Result<PkiRoot, PkiError> {
    init_with(opts, &Faults::none())
}

/// [`init`], calling `faults` before every file-system step of the change.
pub(super) fn init_with(opts: &InitOptions, faults: &Faults) -> Result<PkiRoot, PkiError> {
    let fmc_uuid = match opts.fmc_uuid {
        Some(u) => u,
        None => Uuid::random()?,
    };
    let (fmc, peers) = identities(opts, fmc_uuid)?;
    refuse_system_root(&opts.root)?;
    let layout = Layout::new(&opts.root);
    let tops: Vec<String> = std::iter::once(FMC_DIR.to_string())
        .chain(peers.iter().map(|p| p.name.clone()))
        .collect();

    fsio::ensure_dir(layout.root(), DIR_MODE)?;
    // Nobody but the owner may write where the PKI goes: they could swap the keys, or plant
    // a journal. Other folders already in the root are not ours to judge.
    super::guard::refuse_writable_by_others_folder(layout.root())?;
    for top in &tops {
        super::refuse_writable_by_others(&layout.appliance_dir(top))?;
    }
    let held = RootLock::acquire(layout.root())?;
    fsio::recover(&held)?;

    let existing = existing_pki_files(&layout, &tops)?;
    if !opts.force
        && let Some(first) = existing.first()
    {
        let top = first
            .strip_prefix(layout.root())
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| layout.root().join(c))
            .unwrap_or_else(|| first.clone());
        return Err(PkiError::Exists { path: top });
    }
    // Under --force, also retire the trees of peers the old PKI had and the new one drops.
    let mut old = existing;
    if opts.force
        && let Ok(was) = PkiRoot::load(layout.root())
    {
        let old_tops: Vec<String> = was
            .peers
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| !tops.contains(n) && valid_name(n).is_ok())
            .collect();
        old.extend(existing_pki_files(&layout, &old_tops)?);
    }

    let (files, key_dirs) = plan(opts, &fmc, &peers)?;
    let mut tx = Transaction::new(&held, "init").with_faults(faults);
    for d in &key_dirs {
        tx.dir(layout.root().join(d), KEY_DIR_MODE);
    }
    let targets: HashSet<PathBuf> = files.iter().map(|f| layout.root().join(&f.rel)).collect();
    for f in files {
        tx.write(layout.root().join(&f.rel), f.bytes, f.mode);
    }
    for p in old.into_iter().filter(|p| !targets.contains(p)) {
        tx.retire(p);
    }
    tx.commit()?;
    tracing::info!(root = %layout.root().display(), peers = peers.len(), "lab PKI written");
    let secondaries = peers
        .iter()
        .filter(|p| p.role == Role::HaSecondary)
        .map(|s| (s.clone(), devices_of(&peers).cloned().collect()))
        .collect();
    Ok(PkiRoot::assemble(layout, fmc, peers, secondaries))
}

/// The managed devices among `peers` (all but the HA secondary).
fn devices_of(peers: &[Identity]) -> impl Iterator<Item = &Identity> {
    peers.iter().filter(|p| p.role == Role::Device)
}

/// Folders a lab root must not be: `/`, the system's own, and where users' homes live (a
/// PKI there would scatter `fmc/` and device folders among the system's files).
fn refuse_system_root(root: &Path) -> Result<(), PkiError> {
    const SYSTEM: [&str; 24] = [
        "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
        "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
        "/usr", "/var", "/Users", "/private",
    ];
    // Both as written and as resolved: `/tmp/../etc` and a link to `/etc` are `/etc`.
    let mut forms = vec![lexical(
        &std::path::absolute(root).map_err(|e| PkiError::io("resolve", root, e))?,
    )];
    if let Ok(real) = root.canonicalize() {
        forms.push(real);
    }
    for p in &forms {
        let parent = p.parent().map(Path::to_path_buf);
        let reason = if SYSTEM.iter().any(|s| p == Path::new(s)) {
            Some("it is a system folder".to_string())
        } else if let Some(parent) = parent.as_deref()
            && ["/home", "/Users"].iter().any(|h| parent == Path::new(h))
        {
            Some("it is a user's home folder".to_string())
        } else if let Some(parent) = parent.as_deref()
            && ["/usr", "/var"].iter().any(|h| parent == Path::new(h))
        {
            Some(format!("it is one of {}'s own folders", parent.display()))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(PkiError::SystemRoot {
                path: root.to_path_buf(),
                reason,
            });
        }
    }
    Ok(())
}

/// `path` with `.` and `..` taken out by name (no file-system access).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The FMC's identity and its peers' (devices first, then the HA secondary), validated.
fn identities(opts: &InitOptions, fmc_uuid: Uuid) -> Result<(Identity, Vec<Identity>), PkiError> {
    let fmc = Identity {
        name: FMC_DIR.to_string(),
        uuid: fmc_uuid,
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        role: Role::Fmc,
    };
    let mut names: HashSet<String> = HashSet::new();
    let mut uuids: HashSet<Uuid> = HashSet::from([fmc_uuid]);
    let mut peers = Vec::new();
    let specs = opts
        .devices
        .iter()
        .map(|d| (d.name.clone(), d.uuid, Role::Device))
        .map(Ok::<_, PkiError>)
        .chain(opts.ha_secondary.iter().map(|n| {
            // `NAME` or `NAME=UUID`, like `--device` (`=` is not allowed in a name).
            Ok(match n.split_once('=') {
                Some((name, uuid)) => (name.to_string(), Some(uuid.parse()?), Role::HaSecondary),
                None => (n.clone(), None, Role::HaSecondary),
            })
        }));
    for (i, spec) in specs.enumerate() {
        let (name, uuid, role) = spec?;
        valid_name(&name).map_err(|reason| PkiError::InvalidName {
            name: name.clone(),
            reason,
        })?;
        if !names.insert(name.clone()) {
            let reason = if role == Role::HaSecondary {
                "the HA secondary's name is already a device's (--device/--devices names them \
                 ftd1, ftd2, ...): give the secondary another name"
            } else {
                "given twice"
            };
            return Err(PkiError::InvalidName {
                name,
                reason: reason.into(),
            });
        }
        let uuid = match uuid {
            Some(u) => u,
            None => Uuid::random()?,
        };
        if !uuids.insert(uuid) {
            return Err(PkiError::DuplicateUuid { uuid });
        }
        // Lab addresses are labels (FAILED_PUSH lines, status); the tunnel binds 127.0.0.1.
        let ip = match role {
            Role::HaSecondary => Ipv4Addr::new(127, 0, 0, 2),
            _ => Ipv4Addr::from(0x7f01_0000u32.wrapping_add(i as u32 + 1)),
        };
        peers.push(Identity {
            name,
            uuid,
            ip: IpAddr::V4(ip),
            role,
        });
    }
    Ok((fmc, peers))
}

/// A device name must be a plain folder name that cannot collide with the FMC's.
pub(crate) fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if name == FMC_DIR {
        return Err(format!("{FMC_DIR:?} is the FMC's own folder"));
    }
    if name.starts_with(['.', '-']) {
        return Err("must not start with '.' or '-'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

/// Every file of the new PKI, plus the folders that hold keys (mode 0700).
fn plan(
    opts: &InitOptions,
    fmc: &Identity,
    peers: &[Identity],
) -> Result<(Vec<PlannedFile>, Vec<PathBuf>), PkiError> {
    let all: Vec<_> = peers.iter().map(|p| p.uuid).collect();
    let generation = issue::issue(&issue::Request {
        fmc: fmc.uuid,
        devices: &all,
        key_bits: opts.key_bits,
        ca_validity: &opts.ca_validity,
        peer_validity: &opts.peer_validity,
        first_serial: 1,
    })?;
    let mut files = Vec::new();
    let mut key_dirs = Vec::new();
    let secondary = peers.iter().find(|p| p.role == Role::HaSecondary);
    let devices: Vec<&Identity> = devices_of(peers).collect();

    // The primary and what it gives every peer (the HA secondary included).
    fmc_files(&mut files, &mut key_dirs, fmc, &generation, peers);
    // The HA secondary as an FMC of its own: its InternalCA signs its own certificate and one
    // per device, never the primary's (the FMC-to-FMC tunnel rests on the primary's CA).
    if let Some(sec) = secondary {
        let uuids: Vec<_> = devices.iter().map(|p| p.uuid).collect();
        let own = issue::issue(&issue::Request {
            fmc: sec.uuid,
            devices: &uuids,
            key_bits: opts.key_bits,
            ca_validity: opts.ha_ca_validity.as_ref().unwrap_or(&opts.ca_validity),
            peer_validity: opts
                .ha_peer_validity
                .as_ref()
                .unwrap_or(&opts.peer_validity),
            first_serial: 1,
        })?;
        let managed: Vec<Identity> = devices.iter().map(|d| (*d).clone()).collect();
        fmc_files(&mut files, &mut key_dirs, sec, &own, &managed);
    }

    for p in peers {
        let peer_root = PathBuf::from(&p.name);
        files.push(PlannedFile {
            rel: peer_root.join(rel::IMS_CONF),
            bytes: conf::render_ims_conf(&ImsConf {
                identity: p.clone(),
                manager_uuid: Some(fmc.uuid),
            })
            .into_bytes(),
            mode: PUBLIC_MODE,
        });
        let conf = match (p.role, secondary) {
            // The secondary's tunnels rest on its own files; the primary is its manager.
            (Role::HaSecondary, _) => fmc_conf(
                opts.tls_version,
                devices
                    .iter()
                    .map(|d| (*d).clone())
                    .chain(std::iter::once(fmc.clone())),
            ),
            // A device's tunnel to the primary, and to the secondary when there is one.
            (_, sec) => {
                let own_abs = |file: &str| format!("/{}/{file}", rel::peer_dir(&fmc.uuid));
                SftunnelConf {
                    proxy: ProxySsl {
                        cert: own_abs(CERT_FILE),
                        key: own_abs(KEY_FILE),
                        ca: own_abs(CACERT_FILE),
                        tls_version: opts.tls_version.name().into(),
                    },
                    peers: std::iter::once(fmc)
                        .chain(sec)
                        .map(|m| PeerEntry {
                            identity: m.clone(),
                            port: SFTUNNEL_PORT,
                        })
                        .collect(),
                }
            }
        };
        files.push(PlannedFile {
            rel: peer_root.join(rel::SFTUNNEL_CONF),
            bytes: conf::render_sftunnel_conf(&conf).into_bytes(),
            mode: PUBLIC_MODE,
        });
    }
    let f = PathBuf::from(FMC_DIR);
    files.push(PlannedFile {
        rel: f.join(rel::IMS_CONF),
        bytes: conf::render_ims_conf(&ImsConf {
            identity: fmc.clone(),
            manager_uuid: None,
        })
        .into_bytes(),
        mode: PUBLIC_MODE,
    });
    files.push(PlannedFile {
        rel: f.join(rel::SFTUNNEL_CONF),
        bytes: conf::render_sftunnel_conf(&fmc_conf(opts.tls_version, peers.iter().cloned()))
            .into_bytes(),
        mode: PUBLIC_MODE,
    });
    Ok((files, key_dirs))
}

/// An FMC's `sftunnel.conf`: its own certificate, key and InternalCA, and its peers.
fn fmc_conf(tls: TlsVersion, peers: impl Iterator<Item = Identity>) -> SftunnelConf {
    SftunnelConf {
        proxy: ProxySsl {
            cert: format!("/{}", rel::FMC_CERT),
            key: format!("/{}", rel::FMC_KEY),
            ca: format!("/{}", rel::CA_CERT),
            tls_version: tls.name().into(),
        },
        peers: peers
            .map(|identity| PeerEntry {
                identity,
                port: SFTUNNEL_PORT,
            })
            .collect(),
    }
}

/// One FMC's files from its generation: its InternalCA (with key and serial counter), its own
/// sftunnel certificate, and for each peer `certs_pushed/` on the FMC and the same three
/// files in the peer's `var/sf/peers/<fmc uuid>/`.
fn fmc_files(
    files: &mut Vec<PlannedFile>,
    key_dirs: &mut Vec<PathBuf>,
    fmc: &Identity,
    generation: &issue::Generation,
    peers: &[Identity],
) {
    let ca_pem = &generation.ca_pem;
    let mut add =
        |rel: PathBuf, bytes: Vec<u8>, mode: u32| files.push(PlannedFile { rel, bytes, mode });
    let f = PathBuf::from(&fmc.name);
    add(f.join(rel::CA_CERT), ca_pem.clone(), PUBLIC_MODE);
    add(f.join(rel::CA_KEY), generation.ca_key_pem.clone(), KEY_MODE);
    add(
        f.join(rel::FMC_CERT),
        generation.fmc.cert_pem.clone(),
        PUBLIC_MODE,
    );
    add(
        f.join(rel::FMC_KEY),
        generation.fmc.key_pem.clone(),
        KEY_MODE,
    );
    // Same format `write_next_serial` keeps up to date after init.
    add(
        f.join(rel::CA_SERIAL),
        format!("{:02X}\n", generation.next_serial).into_bytes(),
        PUBLIC_MODE,
    );
    for k in [rel::CA_KEY, rel::FMC_KEY] {
        if let Some(d) = f.join(k).parent() {
            key_dirs.push(d.to_path_buf());
        }
    }
    for (p, issued) in peers.iter().zip(&generation.devices) {
        // The FMC keeps what it pushed; the peer holds the same bytes.
        let pushed = f.join(rel::pushed_dir(&p.uuid));
        let own = PathBuf::from(&p.name).join(rel::peer_dir(&fmc.uuid));
        for dir in [&pushed, &own] {
            add(dir.join(CACERT_FILE), ca_pem.clone(), PUBLIC_MODE);
            add(dir.join(CERT_FILE), issued.cert_pem.clone(), PUBLIC_MODE);
            add(dir.join(KEY_FILE), issued.key_pem.clone(), KEY_MODE);
            key_dirs.push(dir.clone());
        }
    }
}

/// The PKI files already present in the given appliance folders, backups excluded (every name
/// `fsio::backup_of` knows, `X.backup` and `X.backup.N`, and whatever is in a folder so named:
/// a backup is never renamed again): the CA and key folders, every peer folder, and the two
/// configuration files.
fn existing_pki_files(layout: &Layout, tops: &[String]) -> Result<Vec<PathBuf>, PkiError> {
    let mut found = Vec::new();
    for top in tops {
        let base = layout.appliance_dir(top);
        for f in [rel::IMS_CONF, rel::SFTUNNEL_CONF] {
            let p = base.join(f);
            if p.is_file() {
                found.push(p);
            }
        }
        for d in ["etc/sf/ca_root", "etc/sf/keys", rel::PEERS] {
            walk_files(&base.join(d), &mut found)?;
        }
    }
    found.retain(|p| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        fsio::backup_of(&n).is_none() && !n.starts_with(".sfdiag-tmp-")
    });
    found.sort();
    Ok(found)
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PkiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(PkiError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| PkiError::io("list", dir, e))?;
        let ty = entry
            .file_type()
            .map_err(|e| PkiError::io("stat", entry.path(), e))?;
        if ty.is_dir() {
            if fsio::backup_of(&entry.file_name().to_string_lossy()).is_none() {
                walk_files(&entry.path(), out)?;
            }
        } else if ty.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{InternalCa, PeerProfile, generate_rsa_key};
    use time::macros::datetime;

    /// One device `ftd1` and an HA secondary `ha` under `dir/lab`, ten years from 2025.
    fn ftd1_and_ha(dir: &Path, ha: &str) -> (InitOptions, Validity) {
        let v = Validity::days(datetime!(2025-01-01 0:00 UTC), 3650).unwrap();
        let opts = InitOptions {
            root: dir.join("lab"),
            fmc_uuid: None,
            devices: vec![DeviceSpec {
                name: "ftd1".into(),
                uuid: None,
            }],
            ha_secondary: Some(ha.into()),
            ha_ca_validity: None,
            ha_peer_validity: None,
            ca_validity: v,
            peer_validity: v,
            key_bits: 2048,
            force: false,
            tls_version: Default::default(),
        };
        (opts, v)
    }

    #[test]
    fn an_ha_secondary_named_like_a_device_says_so() {
        let d = tempfile::tempdir().unwrap();
        let (opts, _) = ftd1_and_ha(d.path(), "ftd1");
        let e = init(&opts).unwrap_err().to_string();
        assert!(
            e.contains("HA secondary's name is already a device's"),
            "{e}"
        );
        assert!(!opts.root.exists(), "nothing written");
    }

    #[test]
    fn init_then_load_gives_the_same_root_and_a_usable_ca() {
        let d = tempfile::tempdir().unwrap();
        let (opts, v) = ftd1_and_ha(d.path(), "fmc2");
        let made = init(&opts).unwrap();
        let loaded = PkiRoot::load(&opts.root).unwrap();
        assert_eq!(made, loaded);
        assert_eq!(loaded.peer("fmc2").unwrap().role, Role::HaSecondary);
        let files = loaded.device_files("ftd1").unwrap();
        assert!(files.cert.is_file() && files.key.is_file() && files.ca.is_file());

        // Renewal's path: take the CA back, issue the next serial, and bump the counter.
        let l = &loaded.layout;
        let ca = InternalCa::load(&l.ca_cert(), &l.ca_key()).unwrap();
        assert_eq!(ca.fmc_uuid(), loaded.fmc.uuid);
        let next = super::super::read_next_serial(&l.ca_serial()).unwrap();
        assert_eq!(next, 4);
        let key = generate_rsa_key(2048).unwrap();
        let der = ca
            .issue(PeerProfile::Device(Uuid::random().unwrap()), &key, next, &v)
            .unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (_, cac) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
        assert_eq!(c.issuer().as_raw(), cac.subject().as_raw());
        assert_eq!(c.raw_serial(), &[4]);
        super::super::write_next_serial(&l.ca_serial(), next + 1).unwrap();
        assert_eq!(super::super::read_next_serial(&l.ca_serial()).unwrap(), 5);
    }

    #[test]
    fn the_ha_secondary_is_an_fmc_of_its_own_only_with_its_own_internal_ca() {
        let d = tempfile::tempdir().unwrap();
        let (opts, _) = ftd1_and_ha(d.path(), "fmc2");
        let made = init(&opts).unwrap();
        let names =
            |r: &PkiRoot| -> Vec<String> { r.fmcs().iter().map(|f| f.name.clone()).collect() };
        assert_eq!(names(&made), ["fmc", "fmc2"]);
        let sec = made.as_fmc("fmc2").unwrap();
        assert!(!sec.primary_acts());
        assert_eq!(sec.fmc.role, Role::HaSecondary);
        assert_eq!(sec.peers.len(), 1, "the devices only: {:?}", sec.peers);
        assert_eq!(
            sec.layout.ca_cert(),
            opts.root.join("fmc2/etc/sf/ca_root/cacert.pem")
        );
        let ca = InternalCa::load(&sec.layout.ca_cert(), &sec.layout.ca_key()).unwrap();
        assert_eq!(ca.fmc_uuid(), sec.fmc.uuid);
        // ftd1's two sets, and FMC2's set for the primary.
        let ftd1 = &made.peers[0];
        let to_sec = made.device_files_for("ftd1", &sec.fmc).unwrap();
        assert!(
            to_sec.cert.starts_with(
                opts.root
                    .join(format!("ftd1/var/sf/peers/{}", sec.fmc.uuid))
            )
        );
        assert_eq!(sec.device_files("ftd1"), Some(to_sec));
        assert!(made.device_files_for("fmc2", &sec.fmc).is_none());
        assert_eq!(made.links().len(), 3);
        assert_eq!(made.peers_of(&sec.fmc), std::slice::from_ref(ftd1));

        // A root whose secondary has no InternalCA of its own (made before FMC HA was
        // emulated) has one FMC, and --fmc names it plainly.
        std::fs::remove_dir_all(opts.root.join("fmc2/etc/sf/ca_root")).unwrap();
        let old = PkiRoot::load(&opts.root).unwrap();
        assert_eq!(names(&old), ["fmc"]);
        let e = old.as_fmc("fmc2").unwrap_err();
        assert!(matches!(e, PkiError::NotAnFmc { .. }), "{e}");
        assert!(e.to_string().contains("its FMCs: fmc)"), "{e}");
    }

    /// Finding 6: numbered backups, and whatever is in a folder with a backup name, are not
    /// taken for PKI files (`init --force` would retire them under yet another name).
    #[test]
    fn backups_of_every_kind_are_not_pki_files() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        let keys = layout.appliance_dir(FMC_DIR).join("etc/sf/keys");
        std::fs::create_dir_all(keys.join("sftunnel-key.pem.backup")).unwrap();
        for f in [
            "cakey.pem",
            "cakey.pem.backup",
            "cakey.pem.backup.1",
            "cakey.pem.backup.12",
            "sftunnel-key.pem.backup/inside.pem",
            "cakey.pem.backup.x",
        ] {
            std::fs::write(keys.join(f), b"x").unwrap();
        }
        let found = existing_pki_files(&layout, &[FMC_DIR.to_string()]).unwrap();
        assert_eq!(
            found,
            [keys.join("cakey.pem"), keys.join("cakey.pem.backup.x")]
        );
    }

    #[test]
    fn names_are_folder_safe() {
        for ok in ["ftd1", "FTD-2", "a.b_c"] {
            assert!(valid_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "fmc", "..", ".x", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
