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
//! guard (`super::guard`) makes sure nobody but the owner (or root) can write in the root, so
//! nobody else can swap a folder for a link between the check and the write. The writes made
//! outside a transaction while a change holds the lock (a log line, `FAILED_PUSH`), which may
//! come long after the guard ran, do not rely on that: `beneath` opens every folder on the
//! way from the lock's descriptor of the root, refusing links, so there is no window at all.
//!
//! Every step calls a [`Faults`] hook first: tests make step N fail or kill the process there.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::PkiError;

pub(super) mod beneath;
mod transaction;

pub use transaction::{Outcome, Recovery, Transaction, interrupted, recover, recover_with};

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
pub(super) const JOURNAL_FILE: &str = ".sfdiag-journal";
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
pub(super) fn backup_of(name: &str) -> Option<&str> {
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
    /// The root folder, open: [`beneath`] walks from it.
    file: File,
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
            file,
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
    Journal {
        /// The journal file.
        path: &'a Path,
        /// Whether this write is the commit point.
        committed: bool,
    },
    /// Creating a staging folder.
    CreateStaging(&'a Path),
    /// Writing the new content of `target` into staging.
    Stage {
        /// The file the staged copy will replace.
        target: &'a Path,
    },
    /// Creating a folder of the new state.
    CreateDir(&'a Path),
    /// Keeping `from` as its backup `to` (a hard link).
    Backup {
        /// The file kept.
        from: &'a Path,
        /// Its backup (`*.backup`, `*.backup.N`).
        to: &'a Path,
    },
    /// Renaming a staged file over its target.
    Rename {
        /// The staged file.
        from: &'a Path,
        /// Its target.
        to: &'a Path,
    },
    /// Moving a file the new state does not have to its backup.
    Retire {
        /// The file retired.
        from: &'a Path,
        /// Its backup.
        to: &'a Path,
    },
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
pub(super) type FaultHook = Arc<dyn Fn(&Step<'_>) -> io::Result<()> + Send + Sync>;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
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
