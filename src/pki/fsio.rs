//! Careful file writing: atomic replacement, private modes, and moves that can be undone.
//!
//! Every file is written to a temporary file in its own folder, fsynced, given its mode and
//! renamed over the target (readers see the old file or the new one, never half of one), then
//! the folder is fsynced so the rename survives a crash. `Moves` records renames so a
//! multi-file change (installing a PKI) can be rolled back when one step fails.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::PkiError;

/// Mode for private keys.
pub const KEY_MODE: u32 = 0o600;
/// Mode for certificates and configuration.
pub const PUBLIC_MODE: u32 = 0o644;
/// Mode for folders holding private keys.
pub const KEY_DIR_MODE: u32 = 0o700;
/// Mode for other folders.
pub const DIR_MODE: u32 = 0o755;

/// Writes `bytes` to `path` atomically with `mode` (temp file in the same folder + rename).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".sfdiag-tmp-")
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

/// Creates `dir` (and missing parents) and sets its mode; existing folders get `mode` too.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| PkiError::io("create folder", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| PkiError::io("set the mode of", dir, e))
}

/// fsyncs a folder so renames and creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), PkiError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| PkiError::io("fsync folder", dir, e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `name.backup` beside `path`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".backup");
    PathBuf::from(s)
}

/// A sequence of renames and folder creations that can be undone in reverse order.
#[derive(Debug, Default)]
pub struct Moves {
    done: Vec<Step>,
    touched_dirs: Vec<PathBuf>,
}

#[derive(Debug)]
enum Step {
    Renamed {
        from: PathBuf,
        to: PathBuf,
    },
    /// A folder that did not exist before.
    CreatedDir(PathBuf),
}

impl Moves {
    /// Renames `from` to `to` (which must not exist unless it is a file we may replace).
    pub fn rename(&mut self, from: &Path, to: &Path) -> Result<(), PkiError> {
        fs::rename(from, to).map_err(|e| PkiError::io("rename into place", to, e))?;
        self.done.push(Step::Renamed {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        self.touch(parent(to));
        self.touch(parent(from));
        Ok(())
    }

    /// Creates the missing folders down to `dir` (recorded, so rollback removes them).
    pub fn create_dirs(&mut self, dir: &Path) -> Result<(), PkiError> {
        let mut missing = Vec::new();
        let mut d = dir;
        while !d.exists() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) if !p.as_os_str().is_empty() => d = p,
                _ => break,
            }
        }
        for m in missing.into_iter().rev() {
            fs::DirBuilder::new()
                .mode(DIR_MODE)
                .create(&m)
                .map_err(|e| PkiError::io("create folder", &m, e))?;
            self.touch(parent(&m));
            self.done.push(Step::CreatedDir(m));
        }
        Ok(())
    }

    fn touch(&mut self, dir: &Path) {
        if !self.touched_dirs.iter().any(|d| d == dir) {
            self.touched_dirs.push(dir.to_path_buf());
        }
    }

    /// Makes every change durable (fsync of each folder touched).
    pub fn commit(self) -> Result<(), PkiError> {
        for d in &self.touched_dirs {
            if d.exists() {
                fsync_dir(d)?;
            }
        }
        Ok(())
    }

    /// Undoes what was done, newest first. Best effort: a step that cannot be undone is
    /// logged and the rest still are.
    pub fn rollback(self) {
        for step in self.done.into_iter().rev() {
            let r = match &step {
                Step::Renamed { from, to } => fs::rename(to, from),
                Step::CreatedDir(d) => fs::remove_dir(d),
            };
            if let Err(e) = r {
                tracing::error!(?step, error = %e, "rollback step failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        write_atomic(&p, b"one", KEY_MODE).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        write_atomic(&p, b"two", PUBLIC_MODE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn rollback_restores_renames_and_removes_created_folders() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        fs::write(&a, b"x").unwrap();
        let mut m = Moves::default();
        m.create_dirs(&d.path().join("n/o")).unwrap();
        m.rename(&a, &d.path().join("n/o/a")).unwrap();
        m.rollback();
        assert_eq!(fs::read(&a).unwrap(), b"x");
        assert!(!d.path().join("n").exists());
    }
}
