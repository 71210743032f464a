//! `pki renew`: the `generate_certs.pl` step of the renewal runbook, on a lab root.
//!
//! Owns the FMC side of a renewal: the "critical operation" check, the current InternalCA's
//! standing for the confirmation prompt ([`preflight`]), a new v1 InternalCA for the **same**
//! FMC UUID with the FMC's and every peer's sftunnel certificate reissued ([`renew`]), the
//! `sfca_generation.log`, and, once the caller has tried to push each peer's files over its
//! tunnel, the `FAILED_PUSH` list of what could not be pushed ([`record_push`]).
//!
//! [`preflight`] takes the root's lock (a second renewal of the same root is refused until the
//! first ends; a crashed one holds nothing), finishes or undoes whatever change a dead run
//! left (`fsio::recover`) and loads the root, once: [`renew`] and [`record_push`] work on that
//! load under that lock. Every key and certificate is made in memory, then all files change as
//! one `fsio::Transaction`: a crash at any moment leaves the old InternalCA set or the new
//! one, and every replaced file is kept as its next free `*.backup` (never overwritten).
//! The transaction also writes a provisional `FAILED_PUSH` listing every peer, so a run killed
//! before its pushes are recorded leaves the list of devices that may still need `pki copy`.
//! What happens after the commit (the log, the final `FAILED_PUSH`) cannot undo it: a write
//! that fails there is reported as [`Unrecorded`], with the lines it would have written, and
//! the renewal stands. Those writes are made from the lock's descriptor of the root, folder by
//! folder, refusing links (`fsio::beneath`): the pushes between the guard and them take
//! network time, and the path reported is the one written. Device trees are not touched: devices get their files by push (the tunnel's job,
//! see `tunnel::renewal`) or by `pki copy`. Pushing, prompting, printing (`report::renew`) and
//! the clock are the caller's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::{fs, io};

use time::OffsetDateTime;

use super::expiry::{self, Standing};
use super::fsio::{self, DIR_MODE, Faults, KEY_MODE, PUBLIC_MODE, Recovery, RootLock, Transaction};
use super::issue;
use super::layout::{CACERT_FILE, CERT_FILE, KEY_FILE, rel};
use super::layout::{Identity, Layout, PkiRoot};
use super::{PkiError, Uuid, Validity, rfc3339};

/// Where the appliance says a critical operation (deployment, backup, upgrade) is running,
/// relative to the FMC's folder. Its first line names the operation.
pub(super) const CRITICAL_LOCK: &str = "var/tmp/critical_operation.lock";
/// The renewal's own log on the FMC, relative to the FMC's folder.
pub const GENERATION_LOG: &str = "var/log/sf/sfca_generation.log";
/// Where `FAILED_PUSH` files live, one folder per renewal, relative to the FMC's folder
/// (`Layout::failed_push`).
const CERTS_TMP: &str = "var/tmp/certs";

/// A critical operation in progress, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriticalOperation {
    /// The lock file.
    pub path: PathBuf,
    /// Its first line (or `unknown operation` when empty).
    pub operation: String,
}

/// The lock file's verdict: `Some` while a critical operation runs on the FMC.
pub(super) fn critical_operation(layout: &Layout) -> Result<Option<CriticalOperation>, PkiError> {
    let path = layout.fmc_dir().join(CRITICAL_LOCK);
    // Only its first line matters; a FIFO or device there is refused at once, not waited on
    // with the root locked, and a lock file of more than 64 KiB is not the appliance's.
    match crate::files::read_bounded(&path, 64 << 10, crate::files::Links::Follow) {
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

/// What the confirmation prompt shows before anything changes, and the root's lock.
#[derive(Clone, Debug)]
pub struct Preflight {
    /// The root as loaded.
    pub root: PkiRoot,
    /// The time the renewal is judged and stamped at (`--at`, or now).
    pub at: OffsetDateTime,
    /// The current InternalCA's validity.
    pub ca_not_before: OffsetDateTime,
    /// When the current InternalCA ends.
    pub ca_not_after: OffsetDateTime,
    /// Where `at` falls in it ("valid for N more days", "expired N days ago").
    pub standing: Standing,
    /// A critical operation that forbids renewing now.
    pub lock: Option<CriticalOperation>,
    /// What finishing or undoing a change a dead run had left did, before the root was read.
    pub recovered: Option<Recovery>,
    held: Arc<RootLock>,
}

/// Locks the root, finishes or undoes a change a dead run left in it, then reads the root,
/// the current InternalCA's dates and the critical-operation lock file. Refuses a root another
/// run is changing ([`PkiError::Busy`]). The primary renews; see [`preflight_for`].
pub fn preflight(root: &Path, at: OffsetDateTime) -> Result<Preflight, PkiError> {
    preflight_for(root, None, at)
}

/// [`preflight`] for the FMC called `fmc` (`pki renew --fmc NAME`; `None`: the primary). Each
/// FMC of an HA pair renews its own InternalCA, for its own peers, in its own folder (its
/// log, FAILED_PUSH and critical-operation lock): the primary's peers are the devices and the
/// HA secondary, the secondary's only the devices; neither touches the other's InternalCA.
pub fn preflight_for(
    root: &Path,
    fmc: Option<&str>,
    at: OffsetDateTime,
) -> Result<Preflight, PkiError> {
    let layout = Layout::new(root);
    if !root.is_dir() {
        return Err(PkiError::NotAPki {
            root: root.to_path_buf(),
            missing: layout.ca_cert(),
        });
    }
    // Nobody but the owner may have written there (a journal is followed blindly).
    super::refuse_writable_by_others(root)?;
    let held = Arc::new(RootLock::acquire(root)?);
    let recovered = recover(&held)?;
    let root = PkiRoot::load(root)?;
    let root = match fmc {
        Some(name) => root.as_fmc(name)?,
        None => root,
    };
    let ca_path = root.layout.ca_cert();
    let (nb, na) = cert_validity(&ca_path)?;
    let standing = expiry::assess(nb, na, at, &expiry::Thresholds::default()).standing;
    let lock = critical_operation(&root.layout)?;
    Ok(Preflight {
        root,
        at,
        ca_not_before: nb,
        ca_not_after: na,
        standing,
        lock,
        recovered,
        held,
    })
}

/// `fsio::recover`, then the sweep of the temporary files a run killed while it wrote the log
/// or a `FAILED_PUSH` left in an appliance folder's `var/log/sf/` or `var/tmp/certs/*/`
/// (written only under the root's lock: nothing live is removed). Run under `lock`, after the
/// guard has passed the whole root.
pub(super) fn recover(lock: &RootLock) -> Result<Option<Recovery>, PkiError> {
    let mut rec = fsio::recover(lock)?;
    let root = lock.root();
    let mut swept = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| PkiError::io("list", root, e))? {
        let entry = entry.map_err(|e| PkiError::io("list", root, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| PkiError::io("inspect", entry.path(), e))?
            .is_dir();
        if !is_dir || entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let top = entry.path();
        let log_dir = top.join(GENERATION_LOG);
        let log_dir = log_dir.parent().unwrap_or(&top);
        swept.extend(fsio::beneath::sweep_temporaries(lock, log_dir, 0)?);
        swept.extend(fsio::beneath::sweep_temporaries(
            lock,
            &top.join(CERTS_TMP),
            1,
        )?);
    }
    if swept.is_empty() {
        return Ok(rec);
    }
    for s in &swept {
        tracing::info!(path = %s.display(), "removed a leftover temporary file");
    }
    match &mut rec {
        Some(r) => r.swept.extend(swept),
        None => {
            rec = Some(Recovery {
                what: None,
                finished: false,
                written: Vec::new(),
                swept,
            })
        }
    }
    Ok(rec)
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

/// Everything `pki renew` needs besides the [`Preflight`]; times are resolved by the caller.
#[derive(Clone, Debug)]
pub struct RenewOptions {
    /// "Now": stamps the log and names the `var/tmp/certs/<unix time>` folder.
    pub at: OffsetDateTime,
    /// The new InternalCA's validity.
    pub ca_validity: Validity,
    /// The reissued peer certificates' validity.
    pub peer_validity: Validity,
    /// RSA key size for every new key.
    pub key_bits: u32,
    /// Called before every file-system step (tests make one fail or kill the run there).
    pub faults: Faults,
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
    /// Where the FMC itself reads it, as `FAILED_PUSH` names it: `/etc/sf/ca_root/cacert.pem`
    /// for the CA, `/var/sf/peers/<peer>/certs_pushed//<file>` (sic: the appliance's `//`)
    /// for the key and the certificate.
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
    /// cacert, sftunnel-key, sftunnel-cert: the order `generate_certs.pl` pushes and lists
    /// them in ([`BUNDLE_ORDER`]).
    pub files: Vec<BundleFile>,
}

/// The files of a peer's bundle in the appliance's order: `generate_certs.pl` pushes, reports
/// (`Failed to push to ...`) and lists (`FAILED_PUSH`) the CA, then the key, then the
/// certificate.
pub const BUNDLE_ORDER: [&str; 3] = [CACERT_FILE, KEY_FILE, CERT_FILE];

/// A write after the commit that failed: the change stands, its record is incomplete. The
/// report prints `lines` so the user can keep them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrecorded {
    /// The file that could not be written.
    pub path: PathBuf,
    /// Why.
    pub error: String,
    /// What it would have received.
    pub lines: Vec<String>,
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
    /// The replaced files' backups (`*.backup`, `*.backup.N`).
    pub backups: Vec<PathBuf>,
    /// `sfca_generation.log`.
    pub log: PathBuf,
    /// Log lines that could not be written.
    pub unrecorded: Vec<Unrecorded>,
    faults: Faults,
    held: Option<Arc<RootLock>>,
}

impl Renewal {
    /// The unix time naming `var/tmp/certs/<unix time>/`.
    pub fn unix_time(&self) -> i64 {
        self.at.unix_timestamp()
    }

    /// Lets go of the root's lock (held since [`preflight`] so that [`record_push`] writes
    /// under it); the lock also goes when the last clone of this renewal is dropped.
    pub fn unlock(&mut self) {
        self.held = None;
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
    /// The `FAILED_PUSH` file, when some push failed and it could be written.
    pub failed_push: Option<PathBuf>,
    /// `FAILED_PUSH` or log lines that could not be written.
    pub unrecorded: Vec<Unrecorded>,
}

/// Makes a new InternalCA for the same FMC UUID and reissues the FMC's and every peer's
/// sftunnel certificate, all in one transaction under `pre`'s lock (old files kept as
/// backups), with a provisional `FAILED_PUSH` listing every peer (see [`record_push`]); appends
/// to `sfca_generation.log`. Refuses while a critical operation runs.
pub fn renew(opts: &RenewOptions, pre: Preflight) -> Result<Renewal, PkiError> {
    if let Some(lock) = pre.lock {
        return Err(PkiError::CriticalOperation {
            path: lock.path,
            operation: lock.operation,
        });
    }
    let Preflight {
        root,
        ca_not_after: old_ca_not_after,
        recovered,
        held,
        ..
    } = pre;
    let layout = &root.layout;
    let fmc = &root.fmc;

    let first_serial = match super::read_next_serial(&layout.ca_serial()) {
        Ok(n) => n,
        Err(PkiError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => 1,
        Err(e) => return Err(e),
    };
    // Nothing on disk changes until everything is issued.
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

    // Folders that hold a key are made 0700 by the transaction when it has to create them.
    let mut tx = Transaction::new(&held, "renewal").with_faults(&opts.faults);
    let fmc_files = layout.fmc_files();
    let fmc_serial = generation.fmc.serial;
    tx.write(&fmc_files.ca, ca_pem.clone(), PUBLIC_MODE);
    tx.write(layout.ca_key(), generation.ca_key_pem.clone(), KEY_MODE);
    tx.write(
        &fmc_files.cert,
        generation.fmc.cert_pem.clone(),
        PUBLIC_MODE,
    );
    tx.write(&fmc_files.key, generation.fmc.key_pem.clone(), KEY_MODE);

    let mut peers = Vec::new();
    for (p, issued) in root.peers.iter().zip(&generation.devices) {
        let pushed = layout.pushed_files(&p.uuid);
        let mut files = Vec::new();
        // BUNDLE_ORDER. The lab keeps a copy of the CA beside each peer's pair (what `pki copy`
        // and a push send), but the appliance reads the CA from ca_root, and says so.
        for (name, data, mode, source, source_on_fmc) in [
            (
                CACERT_FILE,
                ca_pem.clone(),
                PUBLIC_MODE,
                pushed.ca,
                format!("/{}", rel::CA_CERT),
            ),
            (
                KEY_FILE,
                issued.key_pem.clone(),
                KEY_MODE,
                pushed.key,
                format!("/{}//{KEY_FILE}", rel::pushed_dir(&p.uuid)),
            ),
            (
                CERT_FILE,
                issued.cert_pem.clone(),
                PUBLIC_MODE,
                pushed.cert,
                format!("/{}//{CERT_FILE}", rel::pushed_dir(&p.uuid)),
            ),
        ] {
            tx.write(&source, data.clone(), mode);
            files.push(BundleFile {
                name,
                mode,
                data,
                source,
                source_on_fmc,
                dest_on_peer: format!("/{}/{name}", rel::peer_dir(&fmc.uuid)),
            });
        }
        peers.push(PeerBundle {
            identity: p.clone(),
            serial: issued.serial,
            files,
        });
    }
    tx.write(
        layout.ca_serial(),
        format!("{:02X}\n", generation.next_serial).into_bytes(),
        PUBLIC_MODE,
    );
    // Until `record_push` says otherwise, no peer has its new files: a run killed between the
    // commit and that record leaves this list (a peer pushed twice is harmless, one forgotten
    // is not). Replaced without a backup, as `record_push` replaces it.
    let provisional = push_lines(peers.iter());
    if !provisional.is_empty() {
        tx.replace(
            layout.failed_push(opts.at.unix_timestamp()),
            (provisional.join("\n") + "\n").into_bytes(),
            PUBLIC_MODE,
        );
    }
    let done = tx.commit()?;
    let lock = Ok(held.clone());

    let mut renewal = Renewal {
        old_ca_not_after,
        at: opts.at,
        ca_validity: opts.ca_validity,
        peer_validity: opts.peer_validity,
        ca_sha256: hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            generation.ca.cert_der(),
        )),
        fmc_serial,
        peers,
        backups: done.backups,
        log: layout.fmc_dir().join(GENERATION_LOG),
        unrecorded: Vec::new(),
        faults: opts.faults.clone(),
        held: Some(held),
        root,
    };
    let mut lines: Vec<String> = recovered.iter().filter_map(recovery_line).collect();
    lines.extend(log_lines(&renewal));
    // The new files are in place: a log that cannot be written does not undo them.
    let layout = &renewal.root.layout;
    if let Err(u) = append_log(&lock, layout, opts.at, &lines, &opts.faults) {
        renewal.unrecorded.push(u);
    }
    tracing::info!(root = %renewal.root.layout.root().display(), peers = renewal.peers.len(), "renewed");
    Ok(renewal)
}

/// What `sfca_generation.log` says about a renewal.
fn log_lines(r: &Renewal) -> Vec<String> {
    let fmc = &r.root.fmc;
    let mut lines = vec![
        format!(
            "certificate generation started for FMC {} (old InternalCA notAfter {})",
            fmc.uuid,
            rfc3339(&r.old_ca_not_after)
        ),
        format!(
            "new InternalCA CN={} serial 0 notBefore {} notAfter {} sha256 {}",
            fmc.uuid,
            rfc3339(&r.ca_validity.not_before),
            rfc3339(&r.ca_validity.not_after),
            r.ca_sha256
        ),
        format!(
            "issued sftunnel certificate for the FMC, serial {:X}",
            r.fmc_serial
        ),
    ];
    for p in &r.peers {
        lines.push(format!(
            "issued sftunnel certificate for {} {} ({}), serial {:X}",
            p.identity.role, p.identity.name, p.identity.uuid, p.serial
        ));
    }
    lines.push(format!("{} old files kept as *.backup", r.backups.len()));
    lines
}

/// The log line saying what recovering from a dead run did, if it did something.
fn recovery_line(r: &Recovery) -> Option<String> {
    let what = r.what.as_deref()?;
    Some(if r.finished {
        format!(
            "finished an interrupted {what} ({} file(s) put in place)",
            r.written.len()
        )
    } else {
        format!("undid an interrupted {what} (it had changed nothing)")
    })
}

/// Appends `lines` to `sfca_generation.log`, each stamped with `at`; on failure, says what
/// could not be written.
fn append_log(
    lock: &Result<Arc<RootLock>, PkiError>,
    layout: &Layout,
    at: OffsetDateTime,
    lines: &[String],
    faults: &Faults,
) -> Result<(), Unrecorded> {
    let path = layout.fmc_dir().join(GENERATION_LOG);
    let stamp = rfc3339(&at);
    let stamped: Vec<String> = lines.iter().map(|l| format!("{stamp} {l}")).collect();
    let mut text = stamped.join("\n");
    text.push('\n');
    let write = || -> Result<(), PkiError> {
        let lock = locked(lock, layout)?;
        fsio::beneath::append(lock, &path, text.as_bytes(), PUBLIC_MODE, DIR_MODE, faults)
    };
    write().map_err(|e| {
        tracing::error!(error = %e, "cannot append to the generation log");
        Unrecorded {
            path: path.clone(),
            error: e.to_string(),
            lines: stamped.clone(),
        }
    })
}

/// The root's lock for the writes after the commit: the renewal's own, or taken again when
/// [`Renewal::unlock`] let it go.
fn lock_of(renewal: &Renewal) -> Result<Arc<RootLock>, PkiError> {
    match &renewal.held {
        Some(l) => Ok(l.clone()),
        None => RootLock::acquire(renewal.root.layout.root()).map(Arc::new),
    }
}

/// The lock [`lock_of`] gave, or why there is none (a `Busy` root: another run changes it).
fn locked<'l>(
    lock: &'l Result<Arc<RootLock>, PkiError>,
    layout: &Layout,
) -> Result<&'l RootLock, PkiError> {
    lock.as_deref().map_err(|e| {
        PkiError::io(
            "lock",
            layout.root(),
            io::Error::other(format!("cannot write there now: {e}")),
        )
    })
}

/// The `FAILED_PUSH` lines for the peers whose push failed, as the appliance writes them: one
/// per file in [`BUNDLE_ORDER`],
/// `FTD_UUID FTD_NAME FTD_IP SOURCE_PATH_ON_FMC DESTINATION_PATH_ON_FTD`.
pub(super) fn failed_push_lines(renewal: &Renewal, outcomes: &[PushOutcome]) -> Vec<String> {
    push_lines(not_pushed(renewal, outcomes))
}

/// The `FAILED_PUSH` lines of `peers` (see [`failed_push_lines`]).
fn push_lines<'a>(peers: impl Iterator<Item = &'a PeerBundle>) -> Vec<String> {
    let mut lines = Vec::new();
    for p in peers {
        for f in &p.files {
            lines.push(format!(
                "{} {} {} {} {}",
                p.identity.uuid, p.identity.name, p.identity.ip, f.source_on_fmc, f.dest_on_peer
            ));
        }
    }
    lines
}

/// The bundles of the peers whose push failed (or was not attempted: missing from
/// `outcomes`), in the renewal's order.
pub fn not_pushed<'a>(
    renewal: &'a Renewal,
    outcomes: &'a [PushOutcome],
) -> impl Iterator<Item = &'a PeerBundle> + 'a {
    renewal.peers.iter().filter(|p| {
        outcomes
            .iter()
            .find(|o| o.uuid == p.identity.uuid)
            .is_none_or(|o| o.result.is_err())
    })
}

/// One line of a `FAILED_PUSH` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedPushLine {
    /// 1-based line number.
    pub line: usize,
    /// `FTD_UUID`: the peer's.
    pub uuid: Uuid,
    /// `FTD_NAME`: the peer's folder name.
    pub name: String,
    /// `FTD_IP`: the peer's address, as written (not checked).
    pub ip: String,
    /// Where the FMC reads the file (appliance path).
    pub source: String,
    /// Where the device keeps it (appliance path).
    pub dest: String,
}

impl FailedPushLine {
    /// Which file of the bundle the line is about (`cacert.pem`, ...), from its destination.
    pub fn file(&self) -> &str {
        self.dest.rsplit('/').next().unwrap_or(&self.dest)
    }
}

/// Reads a `FAILED_PUSH` file's text: both the appliance's own lines (CA from
/// `/etc/sf/ca_root/`, `certs_pushed//`, order cacert, key, cert) and those of sfdiag before it
/// wrote them so (every source under `certs_pushed/`, order cacert, cert, key): the five columns
/// are the same, only the source paths and the order differ. Blank lines are skipped; a line
/// without five columns or with a bad UUID is an error naming the file and the line.
pub fn parse_failed_push(text: &str, path: &Path) -> Result<Vec<FailedPushLine>, PkiError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| PkiError::Parse {
            path: path.to_path_buf(),
            reason: format!("line {}: {reason}", i + 1),
        };
        let cols: Vec<&str> = raw.split_whitespace().collect();
        let [uuid, name, ip, source, dest] = cols[..] else {
            return Err(bad(format!(
                "{} columns, expected FTD_UUID FTD_NAME FTD_IP SOURCE_PATH_ON_FMC DESTINATION_PATH_ON_FTD",
                cols.len()
            )));
        };
        out.push(FailedPushLine {
            line: i + 1,
            uuid: uuid
                .parse()
                .map_err(|e| bad(format!("FTD_UUID {uuid:?}: {e}")))?,
            name: name.to_owned(),
            ip: ip.to_owned(),
            source: source.to_owned(),
            dest: dest.to_owned(),
        });
    }
    Ok(out)
}

/// Records the pushes: rewrites the provisional `var/tmp/certs/<unix time>/FAILED_PUSH` with
/// the peers not pushed (a peer missing from `outcomes` counts as not pushed), or removes it
/// (and its folder, when emptied) once every peer is pushed, and appends to the log; both
/// under the renewal's lock, taken again if [`Renewal::unlock`] let it go. A
/// write that fails is returned in [`PushRecord::unrecorded`]: the renewal stands whatever
/// the disk says now.
pub fn record_push(renewal: &Renewal, outcomes: &[PushOutcome]) -> PushRecord {
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
    let mut unrecorded = Vec::new();
    let mut failed_push = None;
    let lock = lock_of(renewal);
    let path = layout.failed_push(renewal.unix_time());
    if lines.is_empty() && !renewal.peers.is_empty() {
        // Every peer has its files: the provisional list the renewal wrote goes.
        let remove = || fsio::beneath::remove(locked(&lock, layout)?, &path, &renewal.faults);
        if let Err(e) = remove() {
            tracing::error!(error = %e, "cannot remove the provisional FAILED_PUSH");
            log.push(format!(
                "every peer pushed, but {} (which lists them all) could not be removed: {e}",
                path.display()
            ));
            unrecorded.push(Unrecorded {
                path: path.clone(),
                error: format!("{e}; it lists every peer, though each was pushed"),
                lines: Vec::new(),
            });
        }
    }
    if !lines.is_empty() {
        let write = || -> Result<(), PkiError> {
            fsio::beneath::write_atomic(
                locked(&lock, layout)?,
                &path,
                (lines.join("\n") + "\n").as_bytes(),
                PUBLIC_MODE,
                DIR_MODE,
                &renewal.faults,
            )
        };
        match write() {
            Ok(()) => {
                log.push(format!(
                    "{failed} peer(s) not pushed, listed in {}",
                    path.display()
                ));
                failed_push = Some(path);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write FAILED_PUSH");
                log.push(format!(
                    "{failed} peer(s) not pushed; {} could not be written: {e}",
                    path.display()
                ));
                unrecorded.push(Unrecorded {
                    path,
                    error: e.to_string(),
                    lines,
                });
            }
        }
    }
    if let Err(u) = append_log(&lock, layout, renewal.at, &log, &renewal.faults) {
        unrecorded.push(u);
    }
    PushRecord {
        pushed,
        failed,
        failed_push,
        unrecorded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{DeviceSpec, InitOptions, InternalCa, init};
    use std::sync::atomic::{AtomicUsize, Ordering};
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
            ha_ca_validity: None,
            ha_peer_validity: None,
            ca_validity: v,
            peer_validity: v,
            key_bits: 2048,
            force: false,
            tls_version: Default::default(),
        })
        .unwrap()
    }

    const AT: OffsetDateTime = datetime!(2034-10-10 00:00 UTC);

    fn opts(faults: Faults) -> RenewOptions {
        let v = Validity::days(AT, 3650).unwrap();
        RenewOptions {
            at: AT,
            ca_validity: v,
            peer_validity: v,
            key_bits: 2048,
            faults,
        }
    }

    fn run(root: &Path, faults: Faults) -> Result<Renewal, PkiError> {
        renew(&opts(faults), preflight(root, AT)?)
    }

    /// Fails the `n`th step (0-based) of kind `pick` with ENOSPC.
    fn fail_nth(pick: fn(&fsio::Step<'_>) -> bool, n: usize) -> Faults {
        let seen = AtomicUsize::new(0);
        Faults::new(move |step| {
            if pick(step) && seen.fetch_add(1, Ordering::SeqCst) == n {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            Ok(())
        })
    }

    fn staging_left(root: &Path) -> Vec<PathBuf> {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".sfdiag")
                {
                    v.push(p.clone());
                }
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        v
    }

    #[test]
    fn a_renewal_failing_before_its_commit_changes_nothing_and_after_it_is_finished_next() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let l = &root.layout;
        let ca_before = std::fs::read(l.ca_cert()).unwrap();
        let pushed = l.pushed_files(&root.peers[1].uuid);
        // A backup from an earlier renewal must survive anything later runs do.
        std::fs::write(fsio::backup_path(&pushed.cert), b"older backup").unwrap();

        let stage = |s: &fsio::Step<'_>| matches!(s, fsio::Step::Stage { .. });
        let e = run(l.root(), fail_nth(stage, 6)).unwrap_err();
        assert!(!matches!(e, PkiError::Unfinished { .. }), "{e}");
        assert!(e.to_string().contains("No space left"), "{e}");
        assert_eq!(std::fs::read(l.ca_cert()).unwrap(), ca_before);
        assert!(!fsio::backup_path(&l.ca_cert()).exists());
        assert!(
            staging_left(l.root()).is_empty(),
            "{:?}",
            staging_left(l.root())
        );
        assert!(!l.fmc_dir().join(GENERATION_LOG).exists());

        let rename = |s: &fsio::Step<'_>| matches!(s, fsio::Step::Rename { .. });
        let e = run(l.root(), fail_nth(rename, 5)).unwrap_err();
        assert!(matches!(e, PkiError::Unfinished { .. }), "{e}");
        assert!(e.to_string().contains("next sfdiag run"), "{e}");
        // The next run finishes the interrupted one before it looks at the root.
        let pre = preflight(l.root(), AT).unwrap();
        let rec = pre.recovered.clone().unwrap();
        assert!(rec.finished, "{rec:?}");
        assert_eq!(rec.what.as_deref(), Some("renewal"));
        assert_ne!(std::fs::read(l.ca_cert()).unwrap(), ca_before);
        assert_eq!(
            std::fs::read(fsio::backup_path(&l.ca_cert())).unwrap(),
            ca_before
        );
        let ca = InternalCa::load(&l.ca_cert(), &l.ca_key()).unwrap();
        assert_eq!(ca.fmc_uuid(), root.fmc.uuid);
        assert_eq!(
            std::fs::read(fsio::backup_path(&pushed.cert)).unwrap(),
            b"older backup"
        );
        let kept = std::fs::read(pushed.cert.with_file_name("sftunnel-cert.pem.backup.1"));
        assert!(
            kept.is_ok(),
            "the init's certificate is kept beside the older backup"
        );
        assert!(
            staging_left(l.root()).is_empty(),
            "{:?}",
            staging_left(l.root())
        );
        drop(pre);
    }

    #[test]
    fn a_second_renewal_of_a_root_is_refused_while_the_first_holds_it() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let first = preflight(root.layout.root(), AT).unwrap();
        let e = preflight(root.layout.root(), AT).unwrap_err();
        assert!(matches!(e, PkiError::Busy { .. }), "{e}");
        let mut r = renew(&opts(Faults::none()), first).unwrap();
        assert!(
            preflight(root.layout.root(), AT).is_err(),
            "held until unlocked"
        );
        r.unlock();
        preflight(root.layout.root(), AT).unwrap();
    }

    #[test]
    fn writes_after_the_commit_that_fail_are_reported_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let write = |s: &fsio::Step<'_>| matches!(s, fsio::Step::Write(_));
        // Every write after the commit fails: the log, FAILED_PUSH, the log again.
        let full = Faults::new(move |s| {
            if write(s) {
                Err(std::io::Error::from_raw_os_error(28))
            } else {
                Ok(())
            }
        });
        let r = run(root.layout.root(), full).unwrap();
        assert_eq!(r.unrecorded.len(), 1);
        assert!(
            r.unrecorded[0]
                .lines
                .iter()
                .any(|l| l.contains("new InternalCA"))
        );
        let rec = record_push(&r, &[]);
        assert_eq!((rec.pushed, rec.failed), (0, 2));
        assert_eq!(rec.failed_push, None);
        assert_eq!(rec.unrecorded.len(), 2, "{:?}", rec.unrecorded);
        let fp = &rec.unrecorded[0];
        assert!(fp.path.ends_with("FAILED_PUSH"));
        assert_eq!(fp.lines, failed_push_lines(&r, &[]));
        assert!(fp.error.contains("No space left"), "{}", fp.error);
        // The renewal stands.
        let ca = InternalCa::load(&root.layout.ca_cert(), &root.layout.ca_key()).unwrap();
        assert_eq!(
            hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                ca.cert_der()
            )),
            r.ca_sha256
        );
    }

    #[test]
    fn renewal_keeps_the_uuid_backs_up_and_lists_failed_pushes() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let l = &root.layout;
        let old_cert = std::fs::read(l.fmc_files().cert).unwrap();
        let r = run(l.root(), Faults::none()).unwrap();
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
            p.files[1].dest_on_peer,
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
        let rec = record_push(&r, &outcomes);
        assert_eq!((rec.pushed, rec.failed), (1, 1));
        assert!(rec.unrecorded.is_empty());
        let fp = rec.failed_push.unwrap();
        assert_eq!(fp, l.failed_push(r.unix_time()));
        let text = std::fs::read_to_string(&fp).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // As the appliance writes it: the CA from ca_root, `certs_pushed//`, cacert, key, cert.
        let (u, ip, f) = (root.peers[1].uuid, root.peers[1].ip, root.fmc.uuid);
        assert_eq!(
            lines,
            [
                format!("{u} ftd2 {ip} /etc/sf/ca_root/cacert.pem /var/sf/peers/{f}/cacert.pem"),
                format!(
                    "{u} ftd2 {ip} /var/sf/peers/{u}/certs_pushed//sftunnel-key.pem /var/sf/peers/{f}/sftunnel-key.pem"
                ),
                format!(
                    "{u} ftd2 {ip} /var/sf/peers/{u}/certs_pushed//sftunnel-cert.pem /var/sf/peers/{f}/sftunnel-cert.pem"
                ),
            ]
        );
        // Every source exists on the FMC's side of the lab root (`//` is one slash there).
        for l in parse_failed_push(&text, &fp).unwrap() {
            assert!(l.source.starts_with('/'), "{l:?}");
            let on_fmc = root.layout.fmc_dir().join(l.source.trim_start_matches('/'));
            assert!(on_fmc.is_file(), "{}", on_fmc.display());
            assert_eq!(l.uuid, u);
        }
        let log = std::fs::read_to_string(&r.log).unwrap();
        assert!(log.contains("new InternalCA CN="), "{log}");
        assert!(log.contains("failed to push certificates to ftd2: not connected"));
    }

    /// Finding 7: right after the commit a provisional FAILED_PUSH lists every peer (a run
    /// killed before `record_push` leaves it); the record replaces it, or removes it once every
    /// peer is pushed. Finding 1: a folder swapped for a link after the preflight is refused by
    /// the record's writes, which report what they could not write, and nothing goes outside.
    #[test]
    fn failed_push_is_provisional_until_recorded_and_never_written_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let r = run(root.layout.root(), Faults::none()).unwrap();
        let fp = root.layout.failed_push(r.unix_time());
        let text = std::fs::read_to_string(&fp).unwrap();
        assert_eq!(text, failed_push_lines(&r, &[]).join("\n") + "\n");
        assert_eq!(text.lines().count(), 6, "three files for each of two peers");
        let pushed = |i: usize| PushOutcome {
            uuid: root.peers[i].uuid,
            name: root.peers[i].name.clone(),
            result: Ok("installed".into()),
        };
        let rec = record_push(&r, &[pushed(0)]);
        assert_eq!(rec.failed_push.as_ref(), Some(&fp));
        assert_eq!(std::fs::read_to_string(&fp).unwrap().lines().count(), 3);
        let rec = record_push(&r, &[pushed(0), pushed(1)]);
        assert_eq!(rec.failed_push, None);
        assert!(rec.unrecorded.is_empty(), "{:?}", rec.unrecorded);
        assert!(!fp.exists() && !fp.parent().unwrap().exists());

        // The swap of toctou.sh, after the renewal: var/tmp and var/log become links out.
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let var = root.layout.fmc_dir().join("var");
        for sub in ["tmp", "log"] {
            std::fs::rename(var.join(sub), var.join(format!("{sub}.x"))).unwrap();
            std::os::unix::fs::symlink(&out, var.join(sub)).unwrap();
        }
        let rec = record_push(&r, &[]);
        assert_eq!(rec.failed_push, None);
        assert_eq!(rec.unrecorded.len(), 2, "{:?}", rec.unrecorded);
        for u in &rec.unrecorded {
            assert!(u.error.contains("is a symbolic link"), "{}", u.error);
        }
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "nothing outside"
        );
    }

    /// Finding 7: a temporary file a killed record left beside FAILED_PUSH or the log is swept
    /// by the next run's preflight.
    #[test]
    fn the_next_preflight_sweeps_temporaries_of_the_log_and_failed_push_folders() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let r = run(root.layout.root(), Faults::none()).unwrap();
        let fp = root.layout.failed_push(r.unix_time());
        let left = [
            fp.with_file_name(".sfdiag-tmp-AbCdEf"),
            root.layout.fmc_dir().join("var/log/sf/.sfdiag-tmp-1"),
        ];
        for l in &left {
            std::fs::write(l, b"half").unwrap();
        }
        drop(r);
        let pre = preflight(root.layout.root(), AT).unwrap();
        let mut swept = pre.recovered.clone().unwrap().swept;
        swept.sort();
        let mut want = left.to_vec();
        want.sort();
        assert_eq!(swept, want);
        assert!(left.iter().all(|l| !l.exists()));
    }

    #[test]
    fn failed_push_files_of_both_formats_are_read() {
        let appliance = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e BSNS-1120-1 10.48.67.54 /etc/sf/ca_root/cacert.pem /var/sf/peers/cdb123c8-4347-11ef-aca1-f3aa241412a1/cacert.pem
c8d5d5c6-87c9-11ef-a993-b9831565bc4e BSNS-1120-1 10.48.67.54 /var/sf/peers/c8d5d5c6-87c9-11ef-a993-b9831565bc4e/certs_pushed//sftunnel-key.pem /var/sf/peers/cdb123c8-4347-11ef-aca1-f3aa241412a1/sftunnel-key.pem
c8d5d5c6-87c9-11ef-a993-b9831565bc4e BSNS-1120-1 10.48.67.54 /var/sf/peers/c8d5d5c6-87c9-11ef-a993-b9831565bc4e/certs_pushed//sftunnel-cert.pem /var/sf/peers/cdb123c8-4347-11ef-aca1-f3aa241412a1/sftunnel-cert.pem
";
        let v = parse_failed_push(appliance, Path::new("FAILED_PUSH")).unwrap();
        let files: Vec<&str> = v.iter().map(FailedPushLine::file).collect();
        assert_eq!(files, BUNDLE_ORDER);
        assert_eq!(v[0].name, "BSNS-1120-1");
        assert_eq!(v[2].ip, "10.48.67.54");
        // sfdiag's earlier lines: every source under certs_pushed/, cert before key.
        let older = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e ftd1 127.1.0.1 /var/sf/peers/c8d5d5c6-87c9-11ef-a993-b9831565bc4e/certs_pushed/cacert.pem /var/sf/peers/cdb123c8-4347-11ef-aca1-f3aa241412a1/cacert.pem

c8d5d5c6-87c9-11ef-a993-b9831565bc4e ftd1 127.1.0.1 /var/sf/peers/c8d5d5c6-87c9-11ef-a993-b9831565bc4e/certs_pushed/sftunnel-cert.pem /var/sf/peers/cdb123c8-4347-11ef-aca1-f3aa241412a1/sftunnel-cert.pem
";
        let v = parse_failed_push(older, Path::new("FAILED_PUSH")).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[1].line, v[1].file()), (3, "sftunnel-cert.pem"));
        let e = parse_failed_push("x ftd1 1.2.3.4 /a /b\n", Path::new("/tmp/FAILED_PUSH"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/tmp/FAILED_PUSH") && e.contains("line 1"),
            "{e}"
        );
        let e = parse_failed_push("only three cols\n", Path::new("F")).unwrap_err();
        assert!(e.to_string().contains("3 columns"), "{e}");
    }

    #[test]
    fn a_critical_operation_blocks_renewal_and_is_named() {
        let d = tempfile::tempdir().unwrap();
        let root = lab(d.path());
        let lock = root.layout.fmc_dir().join(CRITICAL_LOCK);
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(&lock, "policy deployment to ftd1\n").unwrap();
        let ca_before = std::fs::read(root.layout.ca_cert()).unwrap();
        let e = run(root.layout.root(), Faults::none()).unwrap_err();
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
