//! Careful file writing: explicit modes, atomic replacement, one transaction for every
//! multi-file change, one lock per root, and never a symbolic link out of the root.
//!
//! Owns how sfdiag changes files, not which files: `init`, `renew`, `copy` and the device's
//! install of a push (`tunnel::install`) say what goes where, this module makes it happen so
//! that a crash at any moment leaves the old state or the new one, never a mix.
//!
//! A [`Transaction`] (the shape of a database's write-ahead log, and of dpkg's and git's
//! lock-file-then-rename updates):
//!
//! 1. *plan*: every new file is held in memory; targets that already hold those bytes are left
//!    alone; each replaced file gets the next free backup name (`X.backup`, then `X.backup.1`,
//!    `X.backup.2`, ...: a backup is never overwritten, so the user's originals survive any
//!    number of runs);
//! 2. *prepare*: a journal naming the staging folders is written, then each new file is
//!    written and fsynced into a staging folder (`.sfdiag-stage-<id>`) in the nearest existing
//!    folder of its target, so every later move is a rename on one file system;
//! 3. *commit point*: the journal is rewritten (atomically) with every step of the change:
//!    folders to create, backups to link, renames to make;
//! 4. *roll forward*: each step is made, each one safe to repeat; the folders are fsynced, the
//!    staging folders and the journal removed.
//!
//! A backup is a hard link to the original (a copy where links are not supported), made
//! before the new file is renamed over it, so the target is never missing, not even between
//! two steps. [`recover`], run under the root's lock before any change, finds a journal left
//! by a run that died: before the commit point it removes the staging folders (the old state
//! stays: nothing outside staging had changed), after it it makes the remaining steps (the
//! new state). It also sweeps the staging folders of older sfdiag versions.
//!
//! [`RootLock`] is `flock(2)` on the root folder: one change per root at a time, and a run that
//! dies releases it with its last file descriptor, so a crash never leaves a root locked.
//! A transaction only writes below its root and refuses any path that goes through a symbolic
//! link there ([`check_inside`]); [`read_inside`] reads the same way, with `O_NOFOLLOW`. The
//! guard (`super::guard`) makes sure nobody but the owner can write in the root, so nobody
//! else can swap a folder for a link between the check and the write.
//!
//! Every step calls a [`Faults`] hook first: tests make step N fail or kill the process there.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::PkiError;

/// Mode for private keys.
pub const KEY_MODE: u32 = 0o600;
/// Mode for certificates and configuration.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode for folders holding private keys.
pub const KEY_DIR_MODE: u32 = 0o700;
/// Mode for other folders.
pub const DIR_MODE: u32 = 0o755;
/// Mode for the lock file and journals (they name files, the owner's business).
pub const PRIVATE_MODE: u32 = 0o600;

/// The journal of a change in progress, in a root.
pub const JOURNAL_FILE: &str = ".sfdiag-journal";
/// Prefix of staging folders.
const STAGING_PREFIX: &str = ".sfdiag-stage-";
/// Prefix of `write_atomic`'s temporary files.
const TMP_PREFIX: &str = ".sfdiag-tmp-";
/// Staging folders of sfdiag versions before the transaction (`pki renew`, `pki init`).
const LEGACY_STAGING: [&str; 2] = [".sfdiag-renew-", ".sfdiag-init-"];

/// Writes `bytes` to `path` atomically with `mode` (temp file in the same folder + rename).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| PkiError::io("create a temporary file in", dir, e))?;
    // Mode first: a key must never exist on disk with wider permissions, even briefly.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
        .map_err(|e| PkiError::io("set the mode of", tmp.path(), e))?;
    tmp.write_all(bytes)
        .map_err(|e| PkiError::io("write", tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| PkiError::io("fsync", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| PkiError::io("rename a temporary file to", path, e.error))?;
    fsync_dir(dir)
}

/// Creates `dir` and its missing parents, each created one with exactly `mode` (whatever the
/// umask). Folders that exist keep their mode: a 1777 or 0700 folder given as a root stays so.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), PkiError> {
    for d in missing_dirs(dir) {
        match fs::DirBuilder::new().mode(mode).create(&d) {
            Ok(()) => fs::set_permissions(&d, fs::Permissions::from_mode(mode))
                .map_err(|e| PkiError::io("set the mode of", &d, e))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(PkiError::io("create folder", &d, e)),
        }
    }
    Ok(())
}

/// `dir` and its ancestors that do not exist, outermost first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    missing.reverse();
    missing
}

/// fsyncs a folder so renames and creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), PkiError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| PkiError::io("fsync folder", dir, e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// `name.backup` beside `path`: the first backup a change keeps.
pub fn backup_path(path: &Path) -> PathBuf {
    numbered_backup(path, 0)
}

fn numbered_backup(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".backup");
    if n > 0 {
        s.push(format!(".{n}"));
    }
    PathBuf::from(s)
}

/// The first of `X.backup`, `X.backup.1`, `X.backup.2`, ... that does not exist and is not in
/// `taken`.
fn next_backup(path: &Path, taken: &[PathBuf]) -> PathBuf {
    (0..)
        .map(|n| numbered_backup(path, n))
        .find(|b| !exists(b) && !taken.contains(b))
        .expect("an unbounded range has a free name")
}

/// The file name a backup name was made from: `cacert.pem` for `cacert.pem.backup` and
/// `cacert.pem.backup.3`; `None` for a name that is not a backup.
pub fn backup_of(name: &str) -> Option<&str> {
    if let Some(stem) = name.strip_suffix(".backup") {
        return Some(stem);
    }
    let (stem, n) = name.rsplit_once('.')?;
    let stem = stem.strip_suffix(".backup")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(stem)
}

/// `path` made absolute against the current folder (lexically: links are not resolved).
fn absolute(path: &Path) -> Result<PathBuf, PkiError> {
    std::path::absolute(path).map_err(|e| PkiError::io("resolve", path, e))
}

/// Errors unless `path` is `root` or lies under it without a `..` and without passing
/// through a symbolic link (the final name included). Parts that do not exist yet pass: they
/// will be created by us. Both paths must be absolute.
pub fn check_inside(root: &Path, path: &Path) -> Result<(), PkiError> {
    let outside = || PkiError::OutsideRoot {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
    };
    let rel = path.strip_prefix(root).map_err(|_| outside())?;
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(outside());
        };
        cur.push(name);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(PkiError::Symlink {
                    path: cur,
                    root: root.to_path_buf(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(PkiError::io("inspect", &cur, e)),
        }
    }
    Ok(())
}

/// Opens `path` for reading without following a link (`O_NOFOLLOW`).
fn open_nofollow(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Reads `path`, which must lie under `root` with no symbolic link on the way (see
/// [`check_inside`]); the file itself is opened with `O_NOFOLLOW`.
pub fn read_inside(root: &Path, path: &Path) -> Result<Vec<u8>, PkiError> {
    let (root, path) = (absolute(root)?, absolute(path)?);
    check_inside(&root, &path)?;
    let mut out = Vec::new();
    open_nofollow(&path)
        .and_then(|mut f| f.read_to_end(&mut out))
        .map_err(|e| match rustix::io::Errno::from_io_error(&e) {
            Some(rustix::io::Errno::LOOP) => PkiError::Symlink {
                path: path.clone(),
                root: root.clone(),
            },
            _ => PkiError::io("read", &path, e),
        })?;
    Ok(out)
}

/// The right to change a root: an exclusive `flock(2)` on the root folder itself, held until
/// dropped. The kernel releases it when the process dies, so a crash never leaves it stuck.
pub struct RootLock {
    root: PathBuf,
    journal: PathBuf,
    confined: bool,
    _file: File,
}

impl fmt::Debug for RootLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootLock")
            .field("root", &self.root)
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl RootLock {
    /// Locks `root` (an existing folder), or refuses at once when another run holds it.
    pub fn acquire(root: &Path) -> Result<Self, PkiError> {
        Self::acquire_with_journal(root, JOURNAL_FILE)
    }

    /// [`Self::acquire`], with the journal of this root's changes called `journal`.
    pub fn acquire_with_journal(root: &Path, journal: &str) -> Result<Self, PkiError> {
        let root = absolute(root)?;
        // The folder itself is locked: no lock file to leave behind or to be planted.
        let fd = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| PkiError::io("open", &root, e.into()))?;
        let file = File::from(fd);
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(PkiError::Busy { root }),
            Err(e) => return Err(PkiError::io("lock", &root, e.into())),
        }
        Ok(RootLock {
            journal: root.join(journal),
            root,
            confined: true,
            _file: file,
        })
    }

    /// Changes under this lock may touch files outside its root (files the user named one by
    /// one, such as `--cert F`), and so may the recovery of its journal. Without this, every
    /// path of a change, and of a journal found there, must lie under the root.
    pub fn unconfined(mut self) -> Self {
        self.confined = false;
        self
    }

    /// The locked root (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where this root's journal lives.
    pub fn journal(&self) -> &Path {
        &self.journal
    }
}

/// One step of a change, as the [`Faults`] hook sees it just before it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step<'a> {
    /// Writing the journal: before the commit point (`committed: false`) or the commit itself.
    Journal { path: &'a Path, committed: bool },
    /// Creating a staging folder.
    CreateStaging(&'a Path),
    /// Writing the new content of `target` into staging.
    Stage { target: &'a Path },
    /// Creating a folder of the new state.
    CreateDir(&'a Path),
    /// Keeping `from` as its backup `to` (a hard link).
    Backup { from: &'a Path, to: &'a Path },
    /// Renaming a staged file over its target.
    Rename { from: &'a Path, to: &'a Path },
    /// Moving a file the new state does not have to its backup.
    Retire { from: &'a Path, to: &'a Path },
    /// Removing a staging folder.
    RemoveStaging(&'a Path),
    /// Removing the journal: the change is complete.
    RemoveJournal(&'a Path),
    /// A write outside any transaction (a log line, `FAILED_PUSH`).
    Write(&'a Path),
}

impl Step<'_> {
    /// A one-word name of the kind of step (`journal`, `stage`, `rename`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Journal { .. } => "journal",
            Step::CreateStaging(_) => "create-staging",
            Step::Stage { .. } => "stage",
            Step::CreateDir(_) => "create-dir",
            Step::Backup { .. } => "backup",
            Step::Rename { .. } => "rename",
            Step::Retire { .. } => "retire",
            Step::RemoveStaging(_) => "remove-staging",
            Step::RemoveJournal(_) => "remove-journal",
            Step::Write(_) => "write",
        }
    }

    /// The file or folder the step changes.
    pub fn path(&self) -> &Path {
        match self {
            Step::Journal { path, .. } => path,
            Step::CreateStaging(p)
            | Step::CreateDir(p)
            | Step::RemoveStaging(p)
            | Step::RemoveJournal(p)
            | Step::Write(p) => p,
            Step::Stage { target } => target,
            Step::Backup { to, .. } | Step::Rename { to, .. } | Step::Retire { to, .. } => to,
        }
    }
}

/// A hook called before every step; an error it returns becomes that step's error.
pub type FaultHook = Arc<dyn Fn(&Step<'_>) -> io::Result<()> + Send + Sync>;

/// Fault injection for tests: nothing by default.
#[derive(Clone, Default)]
pub struct Faults(Option<FaultHook>);

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Faults(hook)"
        } else {
            "Faults(none)"
        })
    }
}

impl Faults {
    /// No fault.
    pub fn none() -> Self {
        Faults(None)
    }

    /// `hook` is called before every step.
    pub fn new(hook: impl Fn(&Step<'_>) -> io::Result<()> + Send + Sync + 'static) -> Self {
        Faults(Some(Arc::new(hook)))
    }

    /// Asks the hook about `step` (and tells the tool's log at debug level: `-vv` lists
    /// every step a change makes, which is also how tests count them).
    pub fn check(&self, step: &Step<'_>) -> io::Result<()> {
        tracing::debug!(kind = %step.kind(), path = %step.path().display(), "file-system step");
        match &self.0 {
            Some(h) => h(step),
            None => Ok(()),
        }
    }
}

/// What a journal says: the change's name, where it staged, and, once committed, its steps.
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    version: u32,
    what: String,
    committed: bool,
    staging: Vec<PathBuf>,
    ops: Vec<Op>,
}

const JOURNAL_VERSION: u32 = 1;

/// One step of the roll forward; each is safe to make again after a crash.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    /// Create the folder (if missing) with `mode`.
    Dir { path: PathBuf, mode: u32 },
    /// Move `path` to `backup` (if `path` is still there).
    Retire { path: PathBuf, backup: PathBuf },
    /// Link `target` to `backup` (if given and not made yet), then rename `staged` over
    /// `target` (if still staged).
    File {
        staged: PathBuf,
        target: PathBuf,
        backup: Option<PathBuf>,
    },
}

/// What a finished change did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Files given new content, in the order they were planned.
    pub written: Vec<PathBuf>,
    /// Files that already held the planned bytes and mode (left alone).
    pub unchanged: Vec<PathBuf>,
    /// Backups kept of replaced files.
    pub backups: Vec<PathBuf>,
    /// Files the new state does not have, moved to these backups.
    pub retired: Vec<PathBuf>,
}

/// What [`recover`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The interrupted change's name (`renew`, `copy`, `init`, `push`), when a journal was left.
    pub what: Option<String>,
    /// True when it had passed its commit point and was finished; false when it was undone.
    pub finished: bool,
    /// Files put in place while finishing it.
    pub written: Vec<PathBuf>,
    /// Leftover staging folders and temporary files removed.
    pub swept: Vec<PathBuf>,
}

/// A planned file.
struct FileOp {
    target: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
    backup: bool,
}

/// A multi-file change made as one (see the module doc). Build it, then [`Self::commit`].
pub struct Transaction<'a> {
    lock: &'a RootLock,
    what: String,
    confine: Option<PathBuf>,
    dirs: Vec<(PathBuf, u32)>,
    files: Vec<FileOp>,
    retire: Vec<PathBuf>,
    faults: Faults,
}

impl fmt::Debug for Transaction<'_> {
    // Contents never reach a log (keys): only the paths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("root", &self.lock.root)
            .field("what", &self.what)
            .field(
                "files",
                &self.files.iter().map(|f| &f.target).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<'a> Transaction<'a> {
    /// A change under the root `lock` holds, named `what` in its journal. Every path must lie
    /// under that root unless [`Self::confine_to`] or [`RootLock::unconfined`] says otherwise.
    pub fn new(lock: &'a RootLock, what: &str) -> Self {
        Transaction {
            lock,
            what: what.to_string(),
            confine: lock.confined.then(|| lock.root.clone()),
            dirs: Vec::new(),
            files: Vec::new(),
            retire: Vec::new(),
            faults: Faults::none(),
        }
    }

    /// Paths must lie under `root` (an ancestor of the lock's root), walked from there for
    /// symbolic links.
    pub fn confine_to(mut self, root: &Path) -> Self {
        self.confine = Some(root.to_path_buf());
        self
    }

    /// Calls `faults` before every step.
    pub fn with_faults(mut self, faults: &Faults) -> Self {
        self.faults = faults.clone();
        self
    }

    /// A folder the new state has, created with `mode` when missing (an existing one keeps
    /// its mode).
    pub fn dir(&mut self, path: impl Into<PathBuf>, mode: u32) {
        self.dirs.push((path.into(), mode));
    }

    /// `target` gets `bytes` with `mode`; what it held is kept as its next free backup.
    pub fn write(&mut self, target: impl Into<PathBuf>, bytes: Vec<u8>, mode: u32) {
        self.push_file(target.into(), bytes, mode, true);
    }

    /// `target` gets `bytes` with `mode`, keeping no backup.
    pub fn replace(&mut self, target: impl Into<PathBuf>, bytes: Vec<u8>, mode: u32) {
        self.push_file(target.into(), bytes, mode, false);
    }

    fn push_file(&mut self, target: PathBuf, bytes: Vec<u8>, mode: u32, backup: bool) {
        self.files.push(FileOp {
            target,
            bytes,
            mode,
            backup,
        });
    }

    /// `path`, if it exists, moves to its next free backup (a file the new state drops).
    pub fn retire(&mut self, path: impl Into<PathBuf>) {
        self.retire.push(path.into());
    }

    fn checked(&self, p: &Path) -> Result<PathBuf, PkiError> {
        let p = absolute(p)?;
        if let Some(root) = &self.confine {
            check_inside(&absolute(root)?, &p)?;
        }
        Ok(p)
    }

    /// Makes the change (see the module doc). An error before the commit point leaves every
    /// file as it was (staging removed); an error after it is [`PkiError::Unfinished`]: the
    /// journal stays, and the next [`recover`] on this root finishes the change.
    pub fn commit(self) -> Result<Outcome, PkiError> {
        let root = self.lock.root.clone();
        let plan = self.plan()?;
        if plan.ops.is_empty() {
            return Ok(plan.out);
        }
        let jpath = self.lock.journal.clone();
        let mut journal = Journal {
            version: JOURNAL_VERSION,
            what: self.what.clone(),
            committed: false,
            staging: plan.staging,
            ops: Vec::new(),
        };
        if let Err(e) = self.prepare(&journal, &plan.staged) {
            rollback(&root, &jpath, &journal.staging);
            return Err(e);
        }
        journal.committed = true;
        journal.ops = plan.ops;
        if let Err(e) = write_journal(&root, &jpath, &journal, &self.faults) {
            // Nothing was renamed yet: undoing is right whether or not the journal landed.
            rollback(&root, &jpath, &journal.staging);
            return Err(e);
        }
        finish(&root, &jpath, &journal, &self.faults).map_err(|e| PkiError::Unfinished {
            what: self.what.clone(),
            journal: jpath.clone(),
            source: Box::new(e),
        })?;
        Ok(plan.out)
    }

    /// Every step, decided before anything is written: which targets change, where each is
    /// staged, which backup name each replaced file gets, which folders are created.
    fn plan(&self) -> Result<Plan<'_>, PkiError> {
        let id = random_id()?;
        let mut out = Outcome::default();
        let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
        let mut ops = Vec::new();
        let mut staging: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        let mut taken: Vec<PathBuf> = Vec::new();
        let mut staged = Vec::new();
        let explicit: Vec<(PathBuf, u32)> = self
            .dirs
            .iter()
            .map(|(d, m)| Ok((self.checked(d)?, *m)))
            .collect::<Result<_, PkiError>>()?;
        let explicit_mode = |d: &Path| explicit.iter().find(|(p, _)| p == d).map(|(_, m)| *m);
        // Missing folders, outermost first, each once; a key's own folder is private.
        let mut add_dirs = |dir: &Path, key_dir: bool| {
            for d in missing_dirs(dir) {
                if !dirs.iter().any(|(p, _)| *p == d) {
                    let m = explicit_mode(&d).unwrap_or(if key_dir && d == dir {
                        KEY_DIR_MODE
                    } else {
                        DIR_MODE
                    });
                    dirs.push((d, m));
                }
            }
        };
        for (d, _) in &explicit {
            add_dirs(d, false);
        }
        for path in &self.retire {
            let path = self.checked(path)?;
            if exists(&path) {
                let backup = next_backup(&path, &taken);
                taken.push(backup.clone());
                out.retired.push(backup.clone());
                ops.push(Op::Retire { path, backup });
            }
        }
        for (i, f) in self.files.iter().enumerate() {
            let target = self.checked(&f.target)?;
            let current = fs::symlink_metadata(&target).ok();
            if let Some(m) = &current {
                if m.is_dir() {
                    return Err(PkiError::io(
                        "replace",
                        &target,
                        io::Error::other("is a folder"),
                    ));
                }
                if holds(&target, m, &f.bytes, f.mode) {
                    out.unchanged.push(target);
                    continue;
                }
            }
            let dir = parent(&target).to_path_buf();
            let base = nearest_dir(&dir)?;
            let stage_dir = staging
                .entry(base.clone())
                .or_insert_with(|| base.join(format!("{STAGING_PREFIX}{id}")));
            add_dirs(&dir, f.mode == KEY_MODE);
            let staged_as = stage_dir.join(i.to_string());
            let backup = (current.is_some() && f.backup).then(|| {
                let b = next_backup(&target, &taken);
                taken.push(b.clone());
                out.backups.push(b.clone());
                b
            });
            out.written.push(target.clone());
            staged.push((staged_as.clone(), f));
            ops.push(Op::File {
                staged: staged_as,
                target,
                backup,
            });
        }
        let mut all: Vec<Op> = dirs
            .into_iter()
            .map(|(path, mode)| Op::Dir { path, mode })
            .collect();
        all.extend(ops);
        Ok(Plan {
            out,
            ops: all,
            staging: staging.into_values().collect(),
            staged,
        })
    }

    /// Before the commit point: the journal naming the staging folders, then every new file
    /// written and fsynced there.
    fn prepare(&self, journal: &Journal, staged: &[(PathBuf, &FileOp)]) -> Result<(), PkiError> {
        write_journal(&self.lock.root, &self.lock.journal, journal, &self.faults)?;
        for s in &journal.staging {
            self.faults
                .check(&Step::CreateStaging(s))
                .and_then(|()| fs::DirBuilder::new().mode(KEY_DIR_MODE).create(s))
                .map_err(|e| PkiError::io("create a staging folder", s, e))?;
        }
        for (path, f) in staged {
            self.faults
                .check(&Step::Stage { target: &f.target })
                .and_then(|()| write_new(path, &f.bytes, f.mode))
                .map_err(|e| PkiError::io("stage", &f.target, e))?;
        }
        for s in &journal.staging {
            fsync_dir(s)?;
        }
        Ok(())
    }
}

/// What [`Transaction::plan`] decided.
struct Plan<'t> {
    out: Outcome,
    ops: Vec<Op>,
    staging: Vec<PathBuf>,
    staged: Vec<(PathBuf, &'t FileOp)>,
}

/// True when `path` (described by `meta`) already holds `bytes` with `mode`.
fn holds(path: &Path, meta: &fs::Metadata, bytes: &[u8], mode: u32) -> bool {
    meta.mode() & 0o7777 == mode
        && meta.len() == bytes.len() as u64
        && open_nofollow(path)
            .and_then(|mut r| {
                let mut b = Vec::new();
                r.read_to_end(&mut b).map(|_| b)
            })
            .is_ok_and(|b| b == bytes)
}

/// `dir` or its nearest ancestor that exists: where a new file under `dir` is staged, so that
/// its rename stays on one file system.
fn nearest_dir(dir: &Path) -> Result<PathBuf, PkiError> {
    let mut base = dir;
    loop {
        match fs::symlink_metadata(base) {
            Ok(m) if m.is_dir() => return Ok(base.to_path_buf()),
            Ok(_) => {
                return Err(PkiError::io(
                    "create folder",
                    base,
                    io::Error::other("a file of that name is in the way"),
                ));
            }
            Err(_) => base = parent(base),
        }
    }
}

fn random_id() -> Result<String, PkiError> {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| PkiError::Random)?;
    Ok(hex::encode(b))
}

/// Creates `path` (which must not exist) with exactly `mode`, writes and fsyncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    // Mode again, whatever the umask did: a key never exists with wider permissions.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The journal's paths are kept relative to the root when under it (a root may be moved).
fn rel(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

fn write_journal(root: &Path, path: &Path, j: &Journal, faults: &Faults) -> Result<(), PkiError> {
    let stored = Journal {
        version: j.version,
        what: j.what.clone(),
        committed: j.committed,
        staging: j.staging.iter().map(|s| rel(root, s)).collect(),
        ops: j
            .ops
            .iter()
            .map(|op| match op {
                Op::Dir { path, mode } => Op::Dir {
                    path: rel(root, path),
                    mode: *mode,
                },
                Op::Retire { path, backup } => Op::Retire {
                    path: rel(root, path),
                    backup: rel(root, backup),
                },
                Op::File {
                    staged,
                    target,
                    backup,
                } => Op::File {
                    staged: rel(root, staged),
                    target: rel(root, target),
                    backup: backup.as_ref().map(|b| rel(root, b)),
                },
            })
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&stored).map_err(|e| PkiError::Parse {
        path: path.to_path_buf(),
        reason: format!("cannot encode the journal: {e}"),
    })?;
    faults
        .check(&Step::Journal {
            path,
            committed: j.committed,
        })
        .map_err(|e| PkiError::io("write the journal", path, e))?;
    write_atomic(path, &text, PRIVATE_MODE)
}

fn read_journal(root: &Path, path: &Path) -> Result<Option<Journal>, PkiError> {
    let bytes = match open_nofollow(path).and_then(|mut f| {
        let mut b = Vec::new();
        f.read_to_end(&mut b).map(|_| b)
    }) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PkiError::io("read the journal", path, e)),
    };
    let j: Journal = serde_json::from_slice(&bytes).map_err(|e| PkiError::Parse {
        path: path.to_path_buf(),
        reason: format!(
            "not a journal sfdiag can finish ({e}); move it away once the files beside it are checked by hand"
        ),
    })?;
    if j.version != JOURNAL_VERSION {
        return Err(PkiError::Parse {
            path: path.to_path_buf(),
            reason: format!("journal version {} is not 1", j.version),
        });
    }
    let abs = |p: &PathBuf| root.join(p);
    Ok(Some(Journal {
        staging: j.staging.iter().map(abs).collect(),
        ops: j
            .ops
            .iter()
            .map(|op| match op {
                Op::Dir { path, mode } => Op::Dir {
                    path: abs(path),
                    mode: *mode,
                },
                Op::Retire { path, backup } => Op::Retire {
                    path: abs(path),
                    backup: abs(backup),
                },
                Op::File {
                    staged,
                    target,
                    backup,
                } => Op::File {
                    staged: abs(staged),
                    target: abs(target),
                    backup: backup.as_ref().map(abs),
                },
            })
            .collect(),
        ..j
    }))
}

/// Undoes a change that had not reached its commit point: only staging existed. Best
/// effort: what cannot be removed now is removed by the next [`recover`] (the journal stays
/// until the staging folders are gone).
fn rollback(root: &Path, journal: &Path, staging: &[PathBuf]) {
    let mut ok = true;
    for s in staging {
        match fs::remove_dir_all(s) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                ok = false;
                tracing::error!(path = %s.display(), error = %e, "cannot remove a staging folder");
            }
        }
    }
    if ok {
        let _ = fs::remove_file(journal);
        let _ = fsync_dir(root);
    }
}

/// The roll forward: every step of a committed journal, each skipped when already made, then
/// the staging folders and the journal removed.
fn finish(
    root: &Path,
    jpath: &Path,
    j: &Journal,
    faults: &Faults,
) -> Result<Vec<PathBuf>, PkiError> {
    let mut written = Vec::new();
    let mut touched: Vec<PathBuf> = Vec::new();
    let mut touch = |d: &Path| {
        if !touched.iter().any(|t| t == d) {
            touched.push(d.to_path_buf());
        }
    };
    for op in &j.ops {
        match op {
            Op::Dir { path, mode } => match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(PkiError::io(
                        "create folder",
                        path,
                        io::Error::other("a file of that name is in the way"),
                    ));
                }
                Err(_) => {
                    faults
                        .check(&Step::CreateDir(path))
                        .and_then(|()| match fs::DirBuilder::new().mode(*mode).create(path) {
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                            r => r,
                        })
                        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(*mode)))
                        .map_err(|e| PkiError::io("create folder", path, e))?;
                    touch(parent(path));
                }
            },
            Op::Retire { path, backup } => {
                if exists(path) && !exists(backup) {
                    faults
                        .check(&Step::Retire {
                            from: path,
                            to: backup,
                        })
                        .and_then(|()| fs::rename(path, backup))
                        .map_err(|e| PkiError::io("move aside", path, e))?;
                    touch(parent(path));
                }
            }
            Op::File {
                staged,
                target,
                backup,
            } => {
                if !exists(staged) {
                    // Renamed before the interruption.
                    continue;
                }
                if let Some(b) = backup
                    && !exists(b)
                    && exists(target)
                {
                    faults
                        .check(&Step::Backup {
                            from: target,
                            to: b,
                        })
                        .map_err(|e| PkiError::io("keep a backup of", target, e))?;
                    keep_backup(target, b)?;
                }
                faults
                    .check(&Step::Rename {
                        from: staged,
                        to: target,
                    })
                    .and_then(|()| fs::rename(staged, target))
                    .map_err(|e| PkiError::io("rename into place", target, e))?;
                touch(parent(target));
                written.push(target.clone());
            }
        }
    }
    for d in &touched {
        fsync_dir(d)?;
    }
    for s in &j.staging {
        if exists(s) {
            faults
                .check(&Step::RemoveStaging(s))
                .and_then(|()| fs::remove_dir_all(s))
                .map_err(|e| PkiError::io("remove the staging folder", s, e))?;
            fsync_dir(parent(s))?;
        }
    }
    faults
        .check(&Step::RemoveJournal(jpath))
        .and_then(|()| fs::remove_file(jpath))
        .map_err(|e| PkiError::io("remove the journal", jpath, e))?;
    fsync_dir(root)?;
    Ok(written)
}

/// `backup` becomes a second name of `target`'s file (same bytes, same mode, no window where
/// either is missing); where hard links are not supported, an atomic copy with its mode.
fn keep_backup(target: &Path, backup: &Path) -> Result<(), PkiError> {
    match fs::hard_link(target, backup) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(link_err) => {
            tracing::debug!(error = %link_err, "no hard link for a backup: copying");
            let mut bytes = Vec::new();
            let meta = open_nofollow(target)
                .and_then(|mut f| {
                    f.read_to_end(&mut bytes)?;
                    f.metadata()
                })
                .map_err(|e| PkiError::io("read", target, e))?;
            write_atomic(backup, &bytes, meta.mode() & 0o7777)
        }
    }
}

/// The journal a dead run left in `root`, if any: one is there and nobody holds the root's
/// lock (while a run holds it, its journal is its own business). Reads only.
pub fn interrupted(root: &Path) -> Option<PathBuf> {
    let journal = root.join(JOURNAL_FILE);
    if !exists(&journal) {
        return None;
    }
    match RootLock::acquire(root) {
        Ok(_) => Some(journal),
        Err(_) => None,
    }
}

/// Finishes or undoes a change a dead run left under `lock`'s root (see the module doc) and
/// sweeps leftover staging; `None` when there was nothing to do. Run it before reading files
/// the change may have been writing.
pub fn recover(lock: &RootLock) -> Result<Option<Recovery>, PkiError> {
    recover_with(lock, &Faults::none())
}

/// [`recover`], calling `faults` before each step.
pub fn recover_with(lock: &RootLock, faults: &Faults) -> Result<Option<Recovery>, PkiError> {
    let root = &lock.root;
    let mut rec = Recovery {
        what: None,
        finished: false,
        written: Vec::new(),
        swept: Vec::new(),
    };
    if let Some(j) = read_journal(root, &lock.journal)? {
        if lock.confined {
            // A journal is followed blindly: it may not name anything outside its root.
            for p in journal_paths(&j) {
                check_inside(root, p)?;
            }
        }
        rec.what = Some(j.what.clone());
        if j.committed {
            rec.written = finish(root, &lock.journal, &j, faults)?;
            rec.finished = true;
        } else {
            rollback(root, &lock.journal, &j.staging);
            if exists(&lock.journal) {
                return Err(PkiError::io(
                    "undo the interrupted change in",
                    root,
                    io::Error::other("its staging folders cannot be removed"),
                ));
            }
        }
        rec.swept.extend(j.staging.iter().cloned());
    }
    rec.swept.extend(sweep(root)?);
    if rec.what.is_none() && rec.swept.is_empty() {
        return Ok(None);
    }
    for s in &rec.swept {
        tracing::info!(path = %s.display(), "removed leftover staging");
    }
    Ok(Some(rec))
}

fn journal_paths(j: &Journal) -> impl Iterator<Item = &PathBuf> {
    j.staging.iter().chain(j.ops.iter().flat_map(|op| match op {
        Op::Dir { path, .. } => vec![path],
        Op::Retire { path, backup } => vec![path, backup],
        Op::File {
            staged,
            target,
            backup,
        } => {
            let mut v = vec![staged, target];
            v.extend(backup);
            v
        }
    }))
}

/// Staging folders and temporary files directly in `root` that no journal owns (a journal,
/// if any, was handled first): left by a crash of an older sfdiag, or by a `write_atomic`.
fn sweep(root: &Path) -> Result<Vec<PathBuf>, PkiError> {
    let mut swept = Vec::new();
    let entries = fs::read_dir(root).map_err(|e| PkiError::io("list", root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PkiError::io("list", root, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ty = entry
            .file_type()
            .map_err(|e| PkiError::io("inspect", entry.path(), e))?;
        let path = entry.path();
        let staging =
            name.starts_with(STAGING_PREFIX) || LEGACY_STAGING.iter().any(|p| name.starts_with(p));
        if staging && ty.is_dir() {
            fs::remove_dir_all(&path).map_err(|e| PkiError::io("remove", &path, e))?;
            swept.push(path);
        } else if name.starts_with(TMP_PREFIX) && ty.is_file() {
            fs::remove_file(&path).map_err(|e| PkiError::io("remove", &path, e))?;
            swept.push(path);
        }
    }
    if !swept.is_empty() {
        fsync_dir(root)?;
    }
    Ok(swept)
}

/// Appends `text` to the file at `path` (created with exactly `mode` when missing), calling
/// `faults` first. For logs that grow; everything else goes through a [`Transaction`].
pub fn append(path: &Path, text: &[u8], mode: u32, faults: &Faults) -> Result<(), PkiError> {
    faults
        .check(&Step::Write(path))
        .map_err(|e| PkiError::io("write", path, e))?;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| PkiError::io("open", path, e))?;
    f.write_all(text)
        .and_then(|()| f.sync_data())
        .map_err(|e| PkiError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        write_atomic(&p, b"one", KEY_MODE).unwrap();
        assert_eq!(mode(&p), 0o600);
        write_atomic(&p, b"two", PUBLIC_MODE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o644);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn ensure_dir_keeps_the_mode_of_folders_that_exist() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("shared");
        fs::create_dir(&top).unwrap();
        fs::set_permissions(&top, fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_dir(&top.join("a/b"), KEY_DIR_MODE).unwrap();
        assert_eq!(mode(&top), 0o1777);
        assert_eq!(mode(&top.join("a")), 0o700);
        assert_eq!(mode(&top.join("a/b")), 0o700);
    }

    #[test]
    fn backup_names_are_recognised() {
        assert_eq!(backup_of("cacert.pem.backup"), Some("cacert.pem"));
        assert_eq!(backup_of("cacert.pem.backup.12"), Some("cacert.pem"));
        assert_eq!(backup_of("cacert.pem"), None);
        assert_eq!(backup_of("cacert.pem.backup.x"), None);
        assert_eq!(backup_of("x.1"), None);
    }

    /// Three files in two folders (one missing), one replaced: the set each run checks.
    fn plan<'a>(lock: &'a RootLock, tag: &str) -> Transaction<'a> {
        let r = lock.root();
        let mut tx = Transaction::new(lock, "test");
        tx.dir(r.join("keys"), KEY_DIR_MODE);
        tx.write(
            r.join("ca.pem"),
            format!("ca {tag}").into_bytes(),
            PUBLIC_MODE,
        );
        tx.write(
            r.join("keys/key.pem"),
            format!("key {tag}").into_bytes(),
            KEY_MODE,
        );
        tx.write(
            r.join("new/sub/cert.pem"),
            format!("cert {tag}").into_bytes(),
            PUBLIC_MODE,
        );
        tx
    }

    fn state(root: &Path) -> Vec<String> {
        ["ca.pem", "keys/key.pem", "new/sub/cert.pem"]
            .iter()
            .map(|f| fs::read_to_string(root.join(f)).unwrap_or_else(|_| "-".into()))
            .collect()
    }

    fn leftovers(root: &Path) -> Vec<String> {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                if n.starts_with(STAGING_PREFIX) || n.starts_with(TMP_PREFIX) || n == JOURNAL_FILE {
                    v.push(p.display().to_string());
                }
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        v
    }

    /// The transaction killed (a panic: nothing is cleaned up, as with SIGKILL) before each
    /// of its steps in turn: the next recovery leaves exactly the old or the new set, the
    /// old files in backups when new, and no staging or journal.
    #[test]
    fn killed_before_any_step_the_next_recovery_gives_old_or_new() {
        let mut n = 0;
        let mut saw = (false, false);
        loop {
            let d = tempfile::tempdir().unwrap();
            let r = d.path();
            fs::write(r.join("ca.pem"), "ca old").unwrap();
            fs::set_permissions(r.join("ca.pem"), fs::Permissions::from_mode(0o644)).unwrap();
            let lock = RootLock::acquire(r).unwrap();
            let steps = Arc::new(AtomicUsize::new(0));
            let s = steps.clone();
            let faults = Faults::new(move |_| {
                if s.fetch_add(1, Ordering::SeqCst) == n {
                    // Unwinds without the panic hook's message: a quiet "kill".
                    std::panic::resume_unwind(Box::new("killed"));
                }
                Ok(())
            });
            let tx = plan(&lock, "new").with_faults(&faults);
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tx.commit()));
            if let Ok(r) = done {
                r.unwrap();
                assert!(n > 10, "a change of three files has more than {n} steps");
                break;
            }
            drop(lock);
            let lock = RootLock::acquire(r).unwrap();
            let rec = recover(&lock).unwrap();
            let finished = rec.as_ref().is_some_and(|r| r.finished);
            let now = state(r);
            if now == ["ca old", "-", "-"] {
                assert!(!finished, "step {n}");
                saw.0 = true;
                assert!(!r.join("ca.pem.backup").exists());
            } else {
                assert_eq!(now, ["ca new", "key new", "cert new"], "step {n}");
                assert!(finished);
                saw.1 = true;
                assert_eq!(
                    fs::read_to_string(r.join("ca.pem.backup")).unwrap(),
                    "ca old"
                );
                assert_eq!(mode(&r.join("keys/key.pem")), 0o600);
                assert_eq!(mode(&r.join("keys")), 0o700);
                assert_eq!(mode(&r.join("new/sub")), 0o755);
            }
            assert!(leftovers(r).is_empty(), "step {n}: {:?}", leftovers(r));
            assert_eq!(recover(&lock).unwrap(), None, "nothing left to do");
            n += 1;
        }
        assert!(saw.0 && saw.1, "kills before and after the commit point");
    }

    /// A step that fails (disk full) before the commit point changes nothing; after it the
    /// error says the change is unfinished and the next recovery finishes it.
    #[test]
    fn a_failing_step_rolls_back_before_the_commit_and_forward_after() {
        for fail_on_rename in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let r = d.path();
            fs::write(r.join("ca.pem"), "ca old").unwrap();
            let lock = RootLock::acquire(r).unwrap();
            let faults = Faults::new(move |step| match step {
                Step::Stage { .. } if !fail_on_rename => Err(io::Error::from_raw_os_error(28)),
                Step::Rename { .. } if fail_on_rename => Err(io::Error::from_raw_os_error(28)),
                _ => Ok(()),
            });
            let e = plan(&lock, "new")
                .with_faults(&faults)
                .commit()
                .unwrap_err();
            assert!(e.to_string().contains("No space left"), "{e}");
            if fail_on_rename {
                assert!(matches!(e, PkiError::Unfinished { .. }), "{e}");
                assert!(lock.journal().exists());
                let rec = recover(&lock).unwrap().unwrap();
                assert!(rec.finished);
                assert_eq!(state(r), ["ca new", "key new", "cert new"]);
            } else {
                assert!(!matches!(e, PkiError::Unfinished { .. }), "{e}");
                assert_eq!(state(r), ["ca old", "-", "-"]);
            }
            assert!(leftovers(r).is_empty(), "{:?}", leftovers(r));
        }
    }

    #[test]
    fn backups_are_never_overwritten_and_unchanged_files_are_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let lock = RootLock::acquire(r).unwrap();
        for tag in ["one", "two", "two", "three"] {
            let mut tx = Transaction::new(&lock, "test");
            tx.write(r.join("ca.pem"), tag.as_bytes().to_vec(), PUBLIC_MODE);
            tx.commit().unwrap();
        }
        assert_eq!(fs::read_to_string(r.join("ca.pem")).unwrap(), "three");
        assert_eq!(fs::read_to_string(r.join("ca.pem.backup")).unwrap(), "one");
        assert_eq!(
            fs::read_to_string(r.join("ca.pem.backup.1")).unwrap(),
            "two"
        );
        assert!(!r.join("ca.pem.backup.2").exists(), "the same bytes twice");
    }

    #[test]
    fn a_second_lock_on_a_root_is_refused_and_freed_by_drop() {
        let d = tempfile::tempdir().unwrap();
        let first = RootLock::acquire(d.path()).unwrap();
        let e = RootLock::acquire(d.path()).unwrap_err();
        assert!(matches!(&e, PkiError::Busy { .. }), "{e}");
        drop(first);
        RootLock::acquire(d.path()).unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "no lock file");
    }

    #[test]
    fn paths_through_a_symlink_or_out_of_the_root_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let out = d.path().join("outside");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir(&out).unwrap();
        std::os::unix::fs::symlink(&out, root.join("a/link")).unwrap();
        fs::write(out.join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(out.join("secret"), root.join("a/file")).unwrap();
        check_inside(&root, &root.join("a/new/deeper")).unwrap();
        for bad in [
            root.join("a/link/x"),
            root.join("a/file"),
            root.join("a/../../outside/x"),
            out.join("x"),
        ] {
            assert!(check_inside(&root, &bad).is_err(), "{}", bad.display());
        }
        let e = read_inside(&root, &root.join("a/file")).unwrap_err();
        assert!(matches!(e, PkiError::Symlink { .. }), "{e}");
        let lock = RootLock::acquire(&root).unwrap();
        let mut tx = Transaction::new(&lock, "test");
        tx.write(root.join("a/link/planted"), b"key".to_vec(), KEY_MODE);
        assert!(tx.commit().is_err());
        assert!(!out.join("planted").exists());
    }
}
