//! The transaction itself (see the parent module's doc for its steps): the plan, the
//! journal (JSON, paths relative to the root), prepare, the roll forward shared by a commit
//! and by [`recover`], the roll back, and the sweep of leftovers.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use serde::{Deserialize, Serialize};

use super::{
    DIR_MODE, Faults, JOURNAL_FILE, KEY_DIR_MODE, KEY_MODE, LEGACY_STAGING, PRIVATE_MODE, RootLock,
    STAGING_PREFIX, Step, TMP_PREFIX, absolute, check_inside, exists, fsync_dir, missing_dirs,
    next_backup, open_nofollow, parent, write_atomic,
};
use crate::pki::PkiError;

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
            Ok(m) => return Err(in_the_way(base, &m)),
            Err(_) => base = parent(base),
        }
    }
}

/// Why the folder `path` cannot be created where `meta` describes something else: a link
/// (to a folder, maybe: links are not followed here, so it is named with where it leads) or a
/// file.
fn in_the_way(path: &Path, meta: &fs::Metadata) -> PkiError {
    let why = if meta.file_type().is_symlink() {
        let to = fs::read_link(path)
            .map(|t| format!(" to {}", t.display()))
            .unwrap_or_default();
        format!(
            "it is a symbolic link{to}, and sfdiag does not follow links in a root: name the folder it leads to instead"
        )
    } else {
        "a file of that name is in the way".to_string()
    };
    PkiError::io("create folder", path, io::Error::other(why))
}

/// 16 random hex digits: the name of a change's staging folders and of temporary files.
pub(super) fn random_id() -> Result<String, PkiError> {
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
    // JSON holds only UTF-8: name the file the journal cannot record, not the journal.
    if let Some(bad) = journal_paths(&stored).find(|p| p.to_str().is_none()) {
        return Err(PkiError::Parse {
            path: root.join(bad),
            reason: format!(
                "its name is not UTF-8, so the journal of this change ({}) cannot record it: rename it or move it out of the root, then run again",
                path.display()
            ),
        });
    }
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
                Ok(m) => return Err(in_the_way(path, &m)),
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

#[cfg(test)]
mod tests {
    use super::super::PUBLIC_MODE;
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().mode() & 0o7777
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

    /// Finding 10: a root that is a link says so (and where it leads); a name the journal
    /// cannot hold is named, not the journal.
    #[test]
    fn a_link_in_the_way_and_a_non_utf8_name_are_named() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let lock = RootLock::acquire(&link).unwrap();
        let mut tx = Transaction::new(&lock, "test");
        tx.write(link.join("fmc/x.pem"), b"x".to_vec(), PUBLIC_MODE);
        let e = tx.commit().unwrap_err().to_string();
        assert!(e.contains("is a symbolic link to"), "{e}");
        assert!(e.contains(&real.display().to_string()), "{e}");
        drop(lock);

        let lock = RootLock::acquire(&real).unwrap();
        let odd = real.join(std::ffi::OsStr::from_bytes(b"stray\xff.pem"));
        fs::write(&odd, b"x").unwrap();
        let mut tx = Transaction::new(&lock, "test");
        tx.retire(&odd);
        let e = tx.commit().unwrap_err();
        assert!(
            matches!(&e, PkiError::Parse { path, .. } if *path == odd),
            "{e}"
        );
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        assert!(odd.exists(), "nothing changed");
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
}
