//! `pki renew`: the `generate_certs.pl` step of the renewal runbook, on a lab root.
//!
//! Owns the FMC side of a renewal: the "critical operation" check, the current InternalCA's
//! standing for the confirmation prompt ([`preflight`]), a new v1 InternalCA for the **same**
//! FMC UUID with the FMC's and every peer's sftunnel certificate reissued ([`renew`]), the
//! `sfca_generation.log`, and, once the caller has tried to push each peer's files over its
//! tunnel, the `FAILED_PUSH` list of what could not be pushed ([`record_push`]).
//!
//! Renewal never edits a file in place. Every key and certificate is made in memory and the new
//! files are written into a staging folder inside the root; only then are they moved over the
//! old ones, each old file first renamed to `*.backup` (an older backup is set aside and comes
//! back if the renewal is undone). A failure while moving undoes every move, newest first, so
//! the old InternalCA stays usable and earlier backups stay where they were. Device trees are
//! not touched: devices get their files by push (the tunnel's job, see
//! `tunnel::renewal`) or by `pki copy`. Pushing, prompting and the clock are the caller's.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::expiry::{self, Standing};
use super::fsio::{self, DIR_MODE, KEY_DIR_MODE, KEY_MODE, Moves, PUBLIC_MODE};
use super::issue;
use super::layout::{CACERT_FILE, CERT_FILE, KEY_FILE, rel};
use super::{Identity, Layout, PkiError, PkiRoot, Uuid, Validity, rfc3339};

/// Where the appliance says a critical operation (deployment, backup, upgrade) is running,
/// relative to the FMC's folder. Its first line names the operation.
pub const CRITICAL_LOCK: &str = "var/tmp/critical_operation.lock";
/// The renewal's own log on the FMC, relative to the FMC's folder.
pub const GENERATION_LOG: &str = "var/log/sf/sfca_generation.log";

/// A critical operation in progress, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriticalOperation {
    /// The lock file.
    pub path: PathBuf,
    /// Its first line (or `unknown operation` when empty).
    pub operation: String,
}

/// The lock file's verdict: `Some` while a critical operation runs on the FMC.
pub fn critical_operation(layout: &Layout) -> Result<Option<CriticalOperation>, PkiError> {
    let path = layout.fmc_dir().join(CRITICAL_LOCK);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
            let operation = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("unknown operation")
                .to_string();
            Ok(Some(CriticalOperation { path, operation }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io("read", path, e)),
    }
}

/// What the confirmation prompt shows before anything changes.
#[derive(Clone, Debug)]
pub struct Preflight {
    /// The root as loaded.
    pub root: PkiRoot,
    /// The current InternalCA's validity.
    pub ca_not_before: OffsetDateTime,
    /// When the current InternalCA ends.
    pub ca_not_after: OffsetDateTime,
    /// Where `at` falls in it ("valid for N more days", "expired N days ago").
    pub standing: Standing,
    /// A critical operation that forbids renewing now.
    pub lock: Option<CriticalOperation>,
}

/// Reads the root, the current InternalCA's dates and the lock file; changes nothing.
pub fn preflight(root: &Path, at: OffsetDateTime) -> Result<Preflight, PkiError> {
    let root = PkiRoot::load(root)?;
    let ca_path = root.layout.ca_cert();
    let (nb, na) = cert_validity(&ca_path)?;
    let standing = expiry::assess(nb, na, at, &expiry::Thresholds::default()).standing;
    let lock = critical_operation(&root.layout)?;
    Ok(Preflight {
        root,
        ca_not_before: nb,
        ca_not_after: na,
        standing,
        lock,
    })
}

/// notBefore and notAfter of the first certificate in a PEM file.
fn cert_validity(path: &Path) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    let c = super::first_cert(path)?;
    c.not_before
        .zip(c.not_after)
        .ok_or_else(|| PkiError::Parse {
            path: path.to_path_buf(),
            reason: format!(
                "no readable validity: {}",
                c.parse_error.as_deref().unwrap_or("unknown")
            ),
        })
}

/// Everything `pki renew` needs; times are resolved by the caller.
#[derive(Clone, Debug)]
pub struct RenewOptions {
    /// The lab root (made by `pki init`).
    pub root: PathBuf,
    /// "Now": stamps the log and names the `var/tmp/certs/<unix time>` folder.
    pub at: OffsetDateTime,
    /// The new InternalCA's validity.
    pub ca_validity: Validity,
    /// The reissued peer certificates' validity.
    pub peer_validity: Validity,
    /// RSA key size for every new key.
    pub key_bits: u32,
}

/// One file of a peer's bundle: what goes over the tunnel, and where it lives on each side.
#[derive(Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// `cacert.pem`, `sftunnel-cert.pem` or `sftunnel-key.pem`.
    pub name: &'static str,
    /// Unix mode the receiver gives it (0600 for the key).
    pub mode: u32,
    /// The PEM bytes.
    pub data: Vec<u8>,
    /// The FMC's copy under the lab root (`certs_pushed/`).
    pub source: PathBuf,
    /// That copy's path as the FMC itself sees it (`/var/sf/peers/<peer>/certs_pushed/...`).
    pub source_on_fmc: String,
    /// Where the peer keeps it (`/var/sf/peers/<fmc>/...`), as the peer sees it.
    pub dest_on_peer: String,
}

impl std::fmt::Debug for BundleFile {
    // The key's bytes never reach a log: only their length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleFile")
            .field("name", &self.name)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("len", &self.data.len())
            .field("source", &self.source)
            .field("dest_on_peer", &self.dest_on_peer)
            .finish_non_exhaustive()
    }
}

/// A peer's new files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerBundle {
    /// The device or HA secondary.
    pub identity: Identity,
    /// Its new certificate's serial.
    pub serial: u64,
    /// cacert, sftunnel-cert, sftunnel-key, in that order.
    pub files: Vec<BundleFile>,
}

/// A finished renewal (files in place, nothing pushed yet).
#[derive(Clone, Debug)]
pub struct Renewal {
    /// The root as loaded before the renewal.
    pub root: PkiRoot,
    /// The renewal's "now".
    pub at: OffsetDateTime,
    /// The old InternalCA's notAfter.
    pub old_ca_not_after: OffsetDateTime,
    /// The new InternalCA's validity.
    pub ca_validity: Validity,
    /// The peer certificates' validity.
    pub peer_validity: Validity,
    /// SHA-256 of the new InternalCA's DER, lowercase hex.
    pub ca_sha256: String,
    /// The FMC's new certificate serial.
    pub fmc_serial: u64,
    /// Each peer's new files, in `sftunnel.conf` order.
    pub peers: Vec<PeerBundle>,
    /// The replaced files' backups (`*.backup`).
    pub backups: Vec<PathBuf>,
    /// `sfca_generation.log`.
    pub log: PathBuf,
}

impl Renewal {
    /// The unix time naming `var/tmp/certs/<unix time>/`.
    pub fn unix_time(&self) -> i64 {
        self.at.unix_timestamp()
    }
}

/// The outcome of pushing one peer's bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOutcome {
    /// The peer.
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// `Ok(what the peer answered)` or `Err(why it was not pushed)`.
    pub result: Result<String, String>,
}

/// What [`record_push`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRecord {
    /// Peers whose files were pushed.
    pub pushed: usize,
    /// Peers whose files were not.
    pub failed: usize,
    /// The `FAILED_PUSH` file, when some push failed.
    pub failed_push: Option<PathBuf>,
}

/// One file of the plan.
struct Planned {
    target: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
}

/// Makes a new InternalCA for the same FMC UUID and reissues the FMC's and every peer's
/// sftunnel certificate; moves them into place keeping `*.backup`; appends to
/// `sfca_generation.log`. Refuses while a critical operation runs.
pub fn renew(opts: &RenewOptions) -> Result<Renewal, PkiError> {
    renew_inner(opts, None)
}

fn renew_inner(opts: &RenewOptions, fail_after: Option<usize>) -> Result<Renewal, PkiError> {
    let pre = preflight(&opts.root, opts.at)?;
    if let Some(lock) = pre.lock {
        return Err(PkiError::CriticalOperation {
            path: lock.path,
            operation: lock.operation,
        });
    }
    let root = pre.root;
    let layout = &root.layout.clone();
    let fmc = &root.fmc.clone();

    let first_serial = match super::read_next_serial(&layout.ca_serial()) {
        Ok(n) => n,
        Err(PkiError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => 1,
        Err(e) => return Err(e),
    };
    // Nothing on disk changes until everything is issued and staged.
    let devices: Vec<_> = root.peers.iter().map(|p| p.uuid).collect();
    let generation = issue::issue(&issue::Request {
        fmc: fmc.uuid,
        devices: &devices,
        key_bits: opts.key_bits,
        ca_validity: &opts.ca_validity,
        peer_validity: &opts.peer_validity,
        first_serial,
    })?;
    let ca_pem = &generation.ca_pem;

    let mut plan = Vec::new();
    let fmc_files = layout.fmc_files();
    let fmc_serial = generation.fmc.serial;
    plan.push(planned(&fmc_files.ca, ca_pem.clone(), PUBLIC_MODE));
    plan.push(planned(
        &layout.ca_key(),
        generation.ca_key_pem.clone(),
        KEY_MODE,
    ));
    plan.push(planned(
        &fmc_files.cert,
        generation.fmc.cert_pem.clone(),
        PUBLIC_MODE,
    ));
    plan.push(planned(
        &fmc_files.key,
        generation.fmc.key_pem.clone(),
        KEY_MODE,
    ));

    let mut peers = Vec::new();
    for (p, issued) in root.peers.iter().zip(&generation.devices) {
        let pushed = layout.pushed_files(&p.uuid);
        let mut files = Vec::new();
        for (name, data, mode, source) in [
            (CACERT_FILE, ca_pem.clone(), PUBLIC_MODE, pushed.ca),
            (CERT_FILE, issued.cert_pem.clone(), PUBLIC_MODE, pushed.cert),
            (KEY_FILE, issued.key_pem.clone(), KEY_MODE, pushed.key),
        ] {
            plan.push(planned(&source, data.clone(), mode));
            files.push(BundleFile {
                name,
                mode,
                data,
                source,
                source_on_fmc: format!("/{}/{name}", rel::pushed_dir(&p.uuid)),
                dest_on_peer: format!("/{}/{name}", rel::peer_dir(&fmc.uuid)),
            });
        }
        peers.push(PeerBundle {
            identity: p.clone(),
            serial: issued.serial,
            files,
        });
    }
    plan.push(planned(
        &layout.ca_serial(),
        format!("{:02X}\n", generation.next_serial).into_bytes(),
        PUBLIC_MODE,
    ));

    // Stage everything inside the root (same file system: the moves below are renames).
    let staging = tempfile::Builder::new()
        .prefix(".sfdiag-renew-")
        .tempdir_in(layout.root())
        .map_err(|e| PkiError::io("create a staging folder in", layout.root(), e))?;
    let mut staged = Vec::new();
    for (i, f) in plan.iter().enumerate() {
        let s = staging.path().join(format!("{i}"));
        fsio::write_atomic(&s, &f.bytes, f.mode)?;
        staged.push(s);
    }
    let retired = staging.path().join("retired");
    fsio::ensure_dir(&retired, KEY_DIR_MODE)?;

    let mut moves = Moves::default();
    let mut backups = Vec::new();
    match install(
        &mut moves,
        &plan,
        &staged,
        &retired,
        &mut backups,
        fail_after,
    ) {
        Ok(()) => moves.commit()?,
        Err(e) => {
            moves.rollback();
            return Err(e);
        }
    }
    drop(staging);

    let log = layout.fmc_dir().join(GENERATION_LOG);
    let renewal = Renewal {
        old_ca_not_after: pre.ca_not_after,
        at: opts.at,
        ca_validity: opts.ca_validity,
        peer_validity: opts.peer_validity,
        ca_sha256: hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            generation.ca.cert_der(),
        )),
        fmc_serial,
        peers,
        backups,
        log,
        root,
    };
    let mut lines = vec![
        format!(
            "certificate generation started for FMC {} (old InternalCA notAfter {})",
            fmc.uuid,
            rfc3339(&renewal.old_ca_not_after)
        ),
        format!(
            "new InternalCA CN={} serial 0 notBefore {} notAfter {} sha256 {}",
            fmc.uuid,
            rfc3339(&opts.ca_validity.not_before),
            rfc3339(&opts.ca_validity.not_after),
            renewal.ca_sha256
        ),
        format!("issued sftunnel certificate for the FMC, serial {fmc_serial:X}"),
    ];
    for p in &renewal.peers {
        lines.push(format!(
            "issued sftunnel certificate for {} {} ({}), serial {:X}",
            p.identity.role, p.identity.name, p.identity.uuid, p.serial
        ));
    }
    lines.push(format!(
        "{} old files kept as *.backup",
        renewal.backups.len()
    ));
    append_log(layout, opts.at, &lines)?;
    tracing::info!(root = %layout.root().display(), peers = renewal.peers.len(), "renewed");
    Ok(renewal)
}

fn planned(target: &Path, bytes: Vec<u8>, mode: u32) -> Planned {
    Planned {
        target: target.to_path_buf(),
        bytes,
        mode,
    }
}

/// Moves the staged files over the old ones, keeping each old one as `*.backup` (an older
/// backup goes to `retired`, so undoing brings it back). `fail_after` stops after that many
/// files, for the tests of an interrupted renewal.
fn install(
    moves: &mut Moves,
    plan: &[Planned],
    staged: &[PathBuf],
    retired: &Path,
    backups: &mut Vec<PathBuf>,
    fail_after: Option<usize>,
) -> Result<(), PkiError> {
    for (i, (f, s)) in plan.iter().zip(staged).enumerate() {
        if fail_after == Some(i) {
            return Err(PkiError::io(
                "rename into place",
                &f.target,
                std::io::Error::other("interrupted (test)"),
            ));
        }
        let backup = fsio::backup_path(&f.target);
        if backup.exists() {
            moves.rename(&backup, &retired.join(format!("{i}")))?;
        }
        if f.target.exists() {
            moves.rename(&f.target, &backup)?;
            backups.push(backup);
        } else if let Some(parent) = f.target.parent() {
            moves.create_dirs(parent)?;
            // A folder that holds a key stays private even when renewal had to create it.
            if f.mode == KEY_MODE {
                fsio::ensure_dir(parent, KEY_DIR_MODE)?;
            }
        }
        moves.rename(s, &f.target)?;
    }
    Ok(())
}

/// Appends `lines` to `sfca_generation.log`, each stamped with `at`.
pub fn append_log(layout: &Layout, at: OffsetDateTime, lines: &[String]) -> Result<(), PkiError> {
    let path = layout.fmc_dir().join(GENERATION_LOG);
    if let Some(dir) = path.parent() {
        fsio::ensure_dir(dir, DIR_MODE)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| PkiError::io("open", &path, e))?;
    let stamp = rfc3339(&at);
    let mut text = String::new();
    for l in lines {
        text += &format!("{stamp} {l}\n");
    }
    f.write_all(text.as_bytes())
        .map_err(|e| PkiError::io("write", &path, e))
}

/// The `FAILED_PUSH` lines for the peers whose push failed: one per file,
/// `FTD_UUID FTD_NAME FTD_IP SOURCE_PATH_ON_FMC DESTINATION_PATH_ON_FTD`.
pub fn failed_push_lines(renewal: &Renewal, outcomes: &[PushOutcome]) -> Vec<String> {
    let mut lines = Vec::new();
    for p in &renewal.peers {
        let failed = outcomes
            .iter()
            .find(|o| o.uuid == p.identity.uuid)
            .is_none_or(|o| o.result.is_err());
        if !failed {
            continue;
        }
        for f in &p.files {
            lines.push(format!(
                "{} {} {} {} {}",
                p.identity.uuid, p.identity.name, p.identity.ip, f.source_on_fmc, f.dest_on_peer
            ));
        }
    }
    lines
}

/// Records the pushes: writes `var/tmp/certs/<unix time>/FAILED_PUSH` when some peer was not
/// pushed (a peer missing from `outcomes` counts as not pushed) and appends to the log.
pub fn record_push(renewal: &Renewal, outcomes: &[PushOutcome]) -> Result<PushRecord, PkiError> {
    let layout = &renewal.root.layout;
    let mut log = Vec::new();
    let mut pushed = 0;
    for p in &renewal.peers {
        match outcomes.iter().find(|o| o.uuid == p.identity.uuid) {
            Some(PushOutcome { result: Ok(m), .. }) => {
                pushed += 1;
                log.push(format!("pushed certificates to {} ({m})", p.identity.name));
            }
            Some(PushOutcome { result: Err(e), .. }) => log.push(format!(
                "failed to push certificates to {}: {e}",
                p.identity.name
            )),
            None => log.push(format!(
                "failed to push certificates to {}: not attempted",
                p.identity.name
            )),
        }
    }
    let lines = failed_push_lines(renewal, outcomes);
    let failed = renewal.peers.len() - pushed;
    let failed_push = if lines.is_empty() {
        None
    } else {
        let path = layout.failed_push(renewal.unix_time());
        if let Some(dir) = path.parent() {
            fsio::ensure_dir(dir, DIR_MODE)?;
        }
        fsio::write_atomic(&path, (lines.join("\n") + "\n").as_bytes(), PUBLIC_MODE)?;
        log.push(format!(
            "{failed} peer(s) not pushed, listed in {}",
            path.display()
        ));
        Some(path)
    };
    append_log(layout, renewal.at, &log)?;
    Ok(PushRecord {
        pushed,
        failed,
        failed_push,
    })
}

fn rel_to<'a>(root: &Path, p: &'a Path) -> std::borrow::Cow<'a, str> {
    match p.strip_prefix(root) {
        Ok(r) => r.to_string_lossy(),
        Err(_) => p.to_string_lossy(),
    }
}

/// The lines `pki renew` prints before asking to continue.
pub fn render_preflight(w: &mut dyn Write, p: &Preflight) -> std::io::Result<()> {
    let l = &p.root.layout;
    writeln!(
        w,
        "Setting log file to {}",
        l.fmc_dir().join(GENERATION_LOG).display()
    )?;
    writeln!(
        w,
        "This generates a new InternalCA for FMC {} and new sftunnel certificates for the FMC and {} peer(s), then pushes each peer's files over its tunnel.",
        p.root.fmc.uuid,
        p.root.peers.len()
    )?;
    writeln!(
        w,
        "Current InternalCA ({}) notAfter {}: {}",
        rel_to(l.root(), &l.ca_cert()),
        rfc3339(&p.ca_not_after),
        p.standing
    )
}

/// What `pki renew` prints once the new files are in place.
pub fn render_renewal(w: &mut dyn Write, r: &Renewal) -> std::io::Result<()> {
    let root = r.root.layout.root();
    writeln!(
        w,
        "New InternalCA for FMC {}: v1, serial 0, {} .. {}, sha256 {}",
        r.root.fmc.uuid,
        rfc3339(&r.ca_validity.not_before),
        rfc3339(&r.ca_validity.not_after),
        &r.ca_sha256[..16]
    )?;
    writeln!(
        w,
        "Reissued sftunnel certificate for the FMC (serial {:X})",
        r.fmc_serial
    )?;
    for p in &r.peers {
        writeln!(
            w,
            "Reissued sftunnel certificate for {} {} {} (serial {:X}) -> {}",
            p.identity.role,
            p.identity.name,
            p.identity.uuid,
            p.serial,
            rel_to(
                root,
                p.files[0]
                    .source
                    .parent()
                    .unwrap_or(Path::new("certs_pushed"))
            )
        )?;
    }
    writeln!(w, "Kept {} replaced file(s) as *.backup", r.backups.len())
}

/// What `pki renew` prints after the pushes.
pub fn render_push(
    w: &mut dyn Write,
    r: &Renewal,
    outcomes: &[PushOutcome],
    rec: &PushRecord,
) -> std::io::Result<()> {
    for o in outcomes {
        let ip = r
            .peers
            .iter()
            .find(|p| p.identity.uuid == o.uuid)
            .map(|p| p.identity.ip.to_string())
            .unwrap_or_default();
        match &o.result {
            Ok(m) => writeln!(
                w,
                "Pushed certificates to {} ({}, {ip}): {m}",
                o.name, o.uuid
            )?,
            Err(e) => writeln!(
                w,
                "Could not push certificates to {} ({}, {ip}): {e}",
                o.name, o.uuid
            )?,
        }
    }
    match &rec.failed_push {
        None => writeln!(
            w,
            "Certificates pushed to all {} peer(s). Done.",
            rec.pushed
        ),
        Some(path) => writeln!(
            w,
            "Failed to push certificates to {} of {} peer(s). The list of their files is in {}: copy them to those devices (sfdiag pki copy, as copy_sftunnel_certs.py does).",
            rec.failed,
            rec.failed + rec.pushed,
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{DeviceSpec, InitOptions, InternalCa, init};
    use time::macros::datetime;

    fn lab(dir: &Path) -> PkiRoot {
        let v = Validity::days(datetime!(2024-10-05 12:00 UTC), 3650).unwrap();
        init(&InitOptions {
            root: dir.join("lab"),
            fmc_uuid: None,
            devices: vec![
                DeviceSpec {
                    name: "ftd1".into(),
                    uuid: None,
                },
                DeviceSpec {
                    name: "ftd2".into(),
                    uuid: None,
                },
            ],
            ha_secondary: None,
            ca_validity: v,
            peer_validity: v,
            key_bits: 2048,
            force: false,
        })
        .unwrap()
    }

    fn opts(root: &Path) -> RenewOptions {
        let at = datetime!(2034-10-10 00:00 UTC);
        let v = Validity::days(at, 3650).unwrap();
        RenewOptions {
            root: root.to_path_buf(),
            at,
            ca_validity: v,
            peer_validity: v,
            key_bits: 2048,
        }
    }

    #[test]
    fn interrupted_renewal_leaves_the_old_ca_and_older_backups() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let l = &root.layout;
        let ca_before = std::fs::read(l.ca_cert()).unwrap();
        let pushed = l.pushed_files(&root.peers[1].uuid);
        // A backup from an earlier renewal must survive an interrupted one.
        std::fs::write(fsio::backup_path(&pushed.cert), b"older backup").unwrap();
        for stop in [1, 6, 10] {
            let e = renew_inner(&opts(l.root()), Some(stop)).unwrap_err();
            assert!(e.to_string().contains("interrupted"), "{e}");
            assert_eq!(std::fs::read(l.ca_cert()).unwrap(), ca_before);
            assert!(!fsio::backup_path(&l.ca_cert()).exists());
            assert_eq!(
                std::fs::read(fsio::backup_path(&pushed.cert)).unwrap(),
                b"older backup"
            );
            let ca = InternalCa::load(&l.ca_cert(), &l.ca_key()).unwrap();
            assert_eq!(ca.fmc_uuid(), root.fmc.uuid);
            let leftovers: Vec<_> = std::fs::read_dir(l.root())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(".sfdiag"))
                .collect();
            assert!(leftovers.is_empty());
        }
        assert!(!l.fmc_dir().join(GENERATION_LOG).exists());
    }

    #[test]
    fn renewal_keeps_the_uuid_backs_up_and_lists_failed_pushes() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let l = &root.layout;
        let old_cert = std::fs::read(l.fmc_files().cert).unwrap();
        let r = renew(&opts(l.root())).unwrap();
        let ca = InternalCa::load(&l.ca_cert(), &l.ca_key()).unwrap();
        assert_eq!(ca.fmc_uuid(), root.fmc.uuid);
        assert_eq!(
            std::fs::read(fsio::backup_path(&l.fmc_files().cert)).unwrap(),
            old_cert
        );
        // CA cert, CA key, FMC cert, FMC key, 3 files per peer, serial.
        assert_eq!(r.backups.len(), 4 + 3 * 2 + 1);
        assert_eq!(r.fmc_serial, 4);
        assert_eq!(r.peers[1].serial, 6);
        assert_eq!(
            crate::pki::read_next_serial(&l.ca_serial()).unwrap(),
            7,
            "serials go on from the old CA's counter"
        );
        let p = &r.peers[0];
        assert_eq!(std::fs::read(&p.files[1].source).unwrap(), p.files[1].data);
        assert_eq!(
            p.files[2].dest_on_peer,
            format!("/var/sf/peers/{}/sftunnel-key.pem", root.fmc.uuid)
        );

        let outcomes = vec![
            PushOutcome {
                uuid: root.peers[0].uuid,
                name: "ftd1".into(),
                result: Ok("installed 3 file(s)".into()),
            },
            PushOutcome {
                uuid: root.peers[1].uuid,
                name: "ftd2".into(),
                result: Err("not connected".into()),
            },
        ];
        let rec = record_push(&r, &outcomes).unwrap();
        assert_eq!((rec.pushed, rec.failed), (1, 1));
        let fp = rec.failed_push.unwrap();
        assert_eq!(fp, l.failed_push(r.unix_time()));
        let text = std::fs::read_to_string(&fp).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let u = root.peers[1].uuid;
        assert_eq!(
            lines[0],
            format!(
                "{u} ftd2 {} /var/sf/peers/{u}/certs_pushed/cacert.pem /var/sf/peers/{}/cacert.pem",
                root.peers[1].ip, root.fmc.uuid
            )
        );
        let log = std::fs::read_to_string(&r.log).unwrap();
        assert!(log.contains("new InternalCA CN="), "{log}");
        assert!(log.contains("failed to push certificates to ftd2: not connected"));
    }

    #[test]
    fn a_critical_operation_blocks_renewal_and_is_named() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let lock = root.layout.fmc_dir().join(CRITICAL_LOCK);
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(&lock, "policy deployment to ftd1\n").unwrap();
        let ca_before = std::fs::read(root.layout.ca_cert()).unwrap();
        let e = renew(&opts(root.layout.root())).unwrap_err();
        match &e {
            PkiError::CriticalOperation { operation, path } => {
                assert_eq!(operation, "policy deployment to ftd1");
                assert_eq!(path, &lock);
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("policy deployment"), "{e}");
        assert_eq!(std::fs::read(root.layout.ca_cert()).unwrap(), ca_before);
    }
}
