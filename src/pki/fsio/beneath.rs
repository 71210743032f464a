//! Writes outside a transaction (the generation log, `FAILED_PUSH`) and the sweep of their
//! temporary files, made under a locked root with no window between a check and the write.
//!
//! Every folder on the way is opened from the lock's own descriptor of the root, one name at a
//! time, with `O_DIRECTORY | O_NOFOLLOW` (the walk `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` makes in one call, done by hand so it works on every Linux kernel),
//! and each folder opened is judged by the guard's rule (`guard::judge`). The file is then
//! created, appended to or renamed relative to the last folder's descriptor: a folder swapped
//! for a link after the guard ran is refused, never followed, and the path reported is the
//! one written.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{Faults, RootLock, Step, TMP_PREFIX, absolute};
use crate::pki::PkiError;

/// A folder under the root, opened by [`open_folder`]: its descriptor and its path.
struct Folder {
    fd: OwnedFd,
    path: PathBuf,
}

/// `path`'s folders below the lock's root, and its file name. Refuses a path that is not
/// under the root or that has a `..`.
fn split<'p>(lock: &RootLock, path: &'p Path) -> Result<(PathBuf, &'p OsStr), PkiError> {
    let outside = || PkiError::OutsideRoot {
        path: path.to_path_buf(),
        root: lock.root.clone(),
    };
    let abs = absolute(path)?;
    let rel = abs.strip_prefix(&lock.root).map_err(|_| outside())?;
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(outside());
    }
    let name = path.file_name().ok_or_else(outside)?;
    let dir = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((dir, name))
}

fn io_err(op: &'static str, path: &Path, e: Errno) -> PkiError {
    PkiError::io(op, path, e.into())
}

/// Judges an opened file or folder by the guard's rule (mode and owner, by `fstat`).
fn judge(fd: BorrowedFd<'_>, path: &Path) -> Result<(), PkiError> {
    let st = rustix::fs::fstat(fd).map_err(|e| io_err("inspect", path, e))?;
    crate::pki::guard::judge(path, st.st_mode, st.st_uid, st.st_gid)
}

/// Opens the folder `name` in `parent` (at `path`) without following a link; creates it
/// with exactly `create` when missing and `create` is given. `None`: missing, not created.
fn open_child(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    root: &Path,
    create: Option<u32>,
) -> Result<Option<OwnedFd>, PkiError> {
    let open = || {
        rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let not_a_folder = |e: Errno| -> PkiError {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode).is_symlink() => PkiError::Symlink {
                path: path.to_path_buf(),
                root: root.to_path_buf(),
            },
            Ok(_) => PkiError::io(
                "open folder",
                path,
                io::Error::other("it is not a folder: move it out of the way"),
            ),
            Err(_) => io_err("open folder", path, e),
        }
    };
    let mut created = false;
    let fd = match open() {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            let Some(mode) = create else { return Ok(None) };
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
                Ok(()) => created = true,
                Err(Errno::EXIST) => {}
                Err(e) => return Err(io_err("create folder", path, e)),
            }
            let fd = open().map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => not_a_folder(e),
                e => io_err("open folder", path, e),
            })?;
            if created {
                // Exactly `mode`, whatever the umask did.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                    .map_err(|e| io_err("set the mode of", path, e))?;
                rustix::fs::fsync(parent).map_err(|e| io_err("fsync folder", path, e))?;
            }
            fd
        }
        Err(e @ (Errno::LOOP | Errno::NOTDIR)) => return Err(not_a_folder(e)),
        Err(e) => return Err(io_err("open folder", path, e)),
    };
    judge(fd.as_fd(), path)?;
    Ok(Some(fd))
}

/// Opens `rel` (a folder relative to the lock's root) from the lock's descriptor, one name at
/// a time (see the module doc); missing folders are created with `create`, or give `None`.
fn open_folder(
    lock: &RootLock,
    rel: &Path,
    create: Option<u32>,
) -> Result<Option<Folder>, PkiError> {
    let root = &lock.root;
    judge(lock.file.as_fd(), root)?;
    let mut fd = rustix::io::dup(&lock.file).map_err(|e| io_err("open", root, e))?;
    let mut path = root.clone();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(PkiError::OutsideRoot {
                path: root.join(rel),
                root: root.clone(),
            });
        };
        path.push(name);
        match open_child(fd.as_fd(), name, &path, root, create)? {
            Some(next) => fd = next,
            None => return Ok(None),
        }
    }
    Ok(Some(Folder { fd, path }))
}

/// Opens `path`'s folder under the lock's root, creating missing ones with `dir_mode`.
fn folder_of<'p>(
    lock: &RootLock,
    path: &'p Path,
    dir_mode: u32,
) -> Result<(Folder, &'p OsStr), PkiError> {
    let (dir, name) = split(lock, path)?;
    let folder = open_folder(lock, &dir, Some(dir_mode))?.expect("missing folders are created");
    Ok((folder, name))
}

/// Appends `text` to the file at `path` under `lock`'s root, created with exactly `mode` when
/// missing (and its missing folders with `dir_mode`), calling `faults` first. Refuses a file
/// that is not a regular one, or that has more than one name (a hard link: the lines would
/// also reach the other name, maybe outside the root). For logs that grow; everything else
/// goes through a [`super::Transaction`].
pub(in crate::pki) fn append(
    lock: &RootLock,
    path: &Path,
    text: &[u8],
    mode: u32,
    dir_mode: u32,
    faults: &Faults,
) -> Result<(), PkiError> {
    let (folder, name) = folder_of(lock, path, dir_mode)?;
    let path = folder.path.join(name);
    faults
        .check(&Step::Write(&path))
        .map_err(|e| PkiError::io("write", &path, e))?;
    // O_NONBLOCK: a FIFO planted there fails at once (no reader) instead of hanging.
    let flags =
        OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let open = |extra: OFlags| {
        rustix::fs::openat(&folder.fd, name, flags | extra, Mode::from_raw_mode(mode))
    };
    let (fd, created) = match open(OFlags::CREATE | OFlags::EXCL) {
        Ok(fd) => (Ok(fd), true),
        Err(Errno::EXIST) => (open(OFlags::empty()), false),
        Err(e) => (Err(e), false),
    };
    let fd = fd.map_err(|e| match e {
        Errno::LOOP => PkiError::Symlink {
            path: path.clone(),
            root: lock.root.clone(),
        },
        Errno::NXIO => not_regular(&path),
        e => io_err("open", &path, e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err("inspect", &path, e))?;
    if !FileType::from_raw_mode(st.st_mode).is_file() {
        return Err(not_regular(&path));
    }
    if st.st_nlink > 1 {
        return Err(PkiError::io(
            "append to",
            &path,
            io::Error::other(format!(
                "it has {} names (hard links), and the lines would reach every one, maybe outside the root: give it a name of its own (`cp -p FILE FILE.new && mv FILE.new FILE`)",
                st.st_nlink
            )),
        ));
    }
    if created {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| io_err("set the mode of", &path, e))?;
    } else {
        judge(fd.as_fd(), &path)?;
    }
    let mut f = File::from(fd);
    f.write_all(text)
        .and_then(|()| f.sync_data())
        .map_err(|e| PkiError::io("write", &path, e))
}

fn not_regular(path: &Path) -> PkiError {
    PkiError::io(
        "open",
        path,
        io::Error::other("it is not a regular file (a FIFO, socket or device?): move it away"),
    )
}

/// Writes `bytes` to `path` under `lock`'s root atomically with exactly `mode` (a temporary
/// file in the same folder, fsynced, renamed over it), creating missing folders with
/// `dir_mode` and calling `faults` first. The target is replaced even if it is a link (the
/// link, not what it names).
pub(in crate::pki) fn write_atomic(
    lock: &RootLock,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    dir_mode: u32,
    faults: &Faults,
) -> Result<(), PkiError> {
    let (folder, name) = folder_of(lock, path, dir_mode)?;
    let path = folder.path.join(name);
    faults
        .check(&Step::Write(&path))
        .map_err(|e| PkiError::io("write", &path, e))?;
    let tmp = format!("{TMP_PREFIX}{}", super::transaction::random_id()?);
    let tmp_path = folder.path.join(&tmp);
    let fd = rustix::fs::openat(
        &folder.fd,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(|e| io_err("create a temporary file in", &folder.path, e))?;
    let written = (|| {
        // Mode first: a key must never exist on disk with wider permissions, even briefly.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| io_err("set the mode of", &tmp_path, e))?;
        let mut f = File::from(fd);
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| PkiError::io("write", &tmp_path, e))?;
        rustix::fs::renameat(&folder.fd, tmp.as_str(), &folder.fd, name)
            .map_err(|e| io_err("rename a temporary file to", &path, e))
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&folder.fd, tmp.as_str(), AtFlags::empty());
    }
    written?;
    rustix::fs::fsync(&folder.fd).map_err(|e| io_err("fsync folder", &folder.path, e))
}

/// Removes the file at `path` under `lock`'s root if it is there (calling `faults` first),
/// then its folder if that is left empty.
pub(in crate::pki) fn remove(
    lock: &RootLock,
    path: &Path,
    faults: &Faults,
) -> Result<(), PkiError> {
    let (dir, name) = split(lock, path)?;
    let Some(folder) = open_folder(lock, &dir, None)? else {
        return Ok(());
    };
    let path = folder.path.join(name);
    if rustix::fs::statat(&folder.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_err() {
        return Ok(());
    }
    faults
        .check(&Step::Write(&path))
        .map_err(|e| PkiError::io("remove", &path, e))?;
    match rustix::fs::unlinkat(&folder.fd, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(io_err("remove", &path, e)),
    }
    rustix::fs::fsync(&folder.fd).map_err(|e| io_err("fsync folder", &folder.path, e))?;
    if let (Some(up), Some(base)) = (dir.parent(), dir.file_name())
        && let Some(parent) = open_folder(lock, up, None)?
    {
        // Left in place when something else is in it.
        match rustix::fs::unlinkat(&parent.fd, base, AtFlags::REMOVEDIR) {
            Ok(()) => rustix::fs::fsync(&parent.fd)
                .map_err(|e| io_err("fsync folder", &parent.path, e))?,
            Err(Errno::NOTEMPTY | Errno::EXIST | Errno::NOENT) => {}
            Err(e) => return Err(io_err("remove", &folder.path, e)),
        }
    }
    Ok(())
}

/// Removes the temporary files a [`write_atomic`] killed before its rename left
/// (`.sfdiag-tmp-*`, regular files only) in `dir` under `lock`'s root and in its subfolders
/// `levels` deep, never through a link; returns what it removed. A missing `dir` has none.
/// Only for folders no one writes without this root's lock.
pub(in crate::pki) fn sweep_temporaries(
    lock: &RootLock,
    dir: &Path,
    levels: usize,
) -> Result<Vec<PathBuf>, PkiError> {
    let (rel, name) = split(lock, dir)?;
    let mut swept = Vec::new();
    if let Some(folder) = open_folder(lock, &rel.join(name), None)? {
        sweep_in(&folder, &lock.root, levels, &mut swept)?;
    }
    Ok(swept)
}

fn sweep_in(
    folder: &Folder,
    root: &Path,
    levels: usize,
    swept: &mut Vec<PathBuf>,
) -> Result<(), PkiError> {
    let list = |e: Errno| io_err("list", &folder.path, e);
    let mut removed = false;
    let mut subfolders = Vec::new();
    for entry in rustix::fs::Dir::read_from(&folder.fd).map_err(list)? {
        let entry = entry.map_err(list)?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let path = folder.path.join(name);
        let ty = match entry.file_type() {
            FileType::Unknown => rustix::fs::statat(&folder.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode))
                .map_err(|e| io_err("inspect", &path, e))?,
            t => t,
        };
        if ty.is_file() && name.as_bytes().starts_with(TMP_PREFIX.as_bytes()) {
            rustix::fs::unlinkat(&folder.fd, name, AtFlags::empty())
                .map_err(|e| io_err("remove", &path, e))?;
            swept.push(path);
            removed = true;
        } else if ty.is_dir() && levels > 0 {
            subfolders.push((name.to_os_string(), path));
        }
    }
    if removed {
        rustix::fs::fsync(&folder.fd).map_err(|e| io_err("fsync folder", &folder.path, e))?;
    }
    for (name, path) in subfolders {
        if let Some(fd) = open_child(folder.fd.as_fd(), &name, &path, root, None)? {
            sweep_in(&Folder { fd, path }, root, levels - 1, swept)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{DIR_MODE, PUBLIC_MODE};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn lab() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let out = d.path().join("out");
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::fs::create_dir(&out).unwrap();
        for p in [&root, &root.join("var"), &out] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        (d, root, out)
    }

    /// The auditor's swap (finding 1): a folder on the way becomes a link out of the root after
    /// the lock is taken. Neither write follows it, and nothing appears outside.
    #[test]
    fn a_folder_swapped_for_a_link_after_the_lock_is_refused_not_followed() {
        let (_d, root, out) = lab();
        let lock = RootLock::acquire(&root).unwrap();
        let log = root.join("var/log/sf/gen.log");
        append(
            &lock,
            &log,
            b"one\n",
            PUBLIC_MODE,
            DIR_MODE,
            &Faults::none(),
        )
        .unwrap();
        std::fs::rename(root.join("var/log"), root.join("var/log.x")).unwrap();
        std::os::unix::fs::symlink(&out, root.join("var/log")).unwrap();
        let e = append(
            &lock,
            &log,
            b"two\n",
            PUBLIC_MODE,
            DIR_MODE,
            &Faults::none(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, PkiError::Symlink { path, .. } if *path == root.join("var/log")),
            "{e}"
        );
        let fp = root.join("var/log/certs/1/FAILED_PUSH");
        let e =
            write_atomic(&lock, &fp, b"x\n", PUBLIC_MODE, DIR_MODE, &Faults::none()).unwrap_err();
        assert!(matches!(e, PkiError::Symlink { .. }), "{e}");
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "nothing outside"
        );
        // The file itself a link: refused too.
        std::fs::remove_file(root.join("var/log")).unwrap();
        std::fs::rename(root.join("var/log.x"), root.join("var/log")).unwrap();
        std::fs::remove_file(&log).unwrap();
        std::os::unix::fs::symlink(out.join("planted"), &log).unwrap();
        let e = append(
            &lock,
            &log,
            b"two\n",
            PUBLIC_MODE,
            DIR_MODE,
            &Faults::none(),
        )
        .unwrap_err();
        assert!(matches!(e, PkiError::Symlink { .. }), "{e}");
        assert!(!out.join("planted").exists());
    }

    #[test]
    fn a_hard_linked_or_special_log_is_refused_and_modes_are_exact() {
        let (_d, root, out) = lab();
        let lock = RootLock::acquire(&root).unwrap();
        let log = root.join("var/log/sf/gen.log");
        append(
            &lock,
            &log,
            b"one\n",
            PUBLIC_MODE,
            DIR_MODE,
            &Faults::none(),
        )
        .unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&log), 0o644);
        assert_eq!(mode(&root.join("var/log/sf")), 0o755);
        std::fs::hard_link(&log, out.join("hl")).unwrap();
        let e = append(
            &lock,
            &log,
            b"two\n",
            PUBLIC_MODE,
            DIR_MODE,
            &Faults::none(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("2 names (hard links)"), "{e}");
        assert!(e.to_string().contains(&log.display().to_string()), "{e}");
        assert_eq!(std::fs::read(out.join("hl")).unwrap(), b"one\n");
        // A FIFO with no reader: refused at once, no hang.
        std::fs::remove_file(&log).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &log,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = append(
            &lock,
            &log,
            b"two\n",
            PUBLIC_MODE,
            DIR_MODE,
            &Faults::none(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn write_atomic_replaces_remove_cleans_up_and_sweep_finds_leftovers() {
        let (_d, root, _out) = lab();
        let lock = RootLock::acquire(&root).unwrap();
        let fp = root.join("var/tmp/certs/7/FAILED_PUSH");
        write_atomic(&lock, &fp, b"a\n", PUBLIC_MODE, DIR_MODE, &Faults::none()).unwrap();
        write_atomic(&lock, &fp, b"b\n", PUBLIC_MODE, DIR_MODE, &Faults::none()).unwrap();
        assert_eq!(std::fs::read(&fp).unwrap(), b"b\n");
        let dir = fp.parent().unwrap();
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            1,
            "no temporary left"
        );
        let tmp = dir.join(format!("{TMP_PREFIX}x"));
        std::fs::write(&tmp, b"half").unwrap();
        let swept = sweep_temporaries(&lock, &root.join("var/tmp/certs"), 1).unwrap();
        assert_eq!(swept, [tmp]);
        remove(&lock, &fp, &Faults::none()).unwrap();
        assert!(!dir.exists(), "an emptied folder goes too");
        remove(&lock, &fp, &Faults::none()).unwrap();
        assert!(
            sweep_temporaries(&lock, &root.join("missing"), 1)
                .unwrap()
                .is_empty()
        );
    }
}
