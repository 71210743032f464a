//! Refusing a PKI root that another local user could write: whoever can replace `cacert.pem` or
//! a key there decides which peers the lab trusts, and whoever can write a folder there can swap
//! it for a link between a check and a write. The rule is OpenSSH's StrictModes
//! (`auth_secure_path`): no entry group- or world-writable (`mode & 0o022`), and each owned by
//! the user sfdiag runs as (its effective uid) or by root. One difference: an entry of that
//! user's that is writable only by the user's own effective group passes, because a umask of
//! 002 with user private groups (Debian's and Ubuntu's default for people) leaves every folder
//! so; a group-writable entry of any other group is refused.
//!
//! Owns only the permission check, run by [`super::layout::PkiRoot::load`] before it reads anything
//! and by renew and init before they take the root's lock. The root and everything under it
//! (not its parents: `/tmp` itself is world-writable) must not be writable by others. A
//! symbolic link is judged by where it leads, not by its own mode (always 0777): a link out of
//! the root is refused (nothing outside the root is read or written, and a `certs_pushed`
//! linked to a 0777 folder would take a device's private key there); a link inside the root
//! leads to something this walk checks on its own.

use std::path::{Component, Path, PathBuf};

use super::PkiError;

/// How deep under the root to look: the appliance layout is 8 levels at most.
const MAX_DEPTH: usize = 12;

/// Errors with the first file or folder under `root` (the root included) that someone else may
/// write (see [`judge`]), or the first symbolic link that leads out of it. A root that does not
/// exist passes: the loader reports what is missing.
pub(super) fn refuse_writable_by_others(root: &Path) -> Result<(), PkiError> {
    let real = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    check(root, &real, 0)
}

/// The same check for `dir` alone, not what it holds (a folder `pki init` adds to).
pub(crate) fn refuse_writable_by_others_folder(dir: &Path) -> Result<(), PkiError> {
    let real = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    check(dir, &real, MAX_DEPTH)
}

fn check(path: &Path, root: &Path, depth: usize) -> Result<(), PkiError> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PkiError::io("inspect", path, e)),
    };
    if meta.file_type().is_symlink() {
        return check_link(path, root);
    }
    judge(path, meta.mode(), meta.uid(), meta.gid())?;
    if meta.is_dir() && depth < MAX_DEPTH {
        let entries = std::fs::read_dir(path).map_err(|e| PkiError::io("list", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| PkiError::io("list", path, e))?;
            check(&entry.path(), root, depth + 1)?;
        }
    }
    Ok(())
}

/// Errors when an entry with `mode` and owner `uid` could be changed by someone other than the
/// user sfdiag runs as: world-writable, group-writable, or owned by another user than that
/// one (the effective uid) or root. Checked in that order, so the message names the first
/// fix that applies. Group-writable passes for the user's own entry in its own effective
/// group `gid` (the umask 002 of user private groups; see the module doc).
pub(super) fn judge(path: &Path, mode: u32, uid: u32, gid: u32) -> Result<(), PkiError> {
    let path = || path.to_path_buf();
    if mode & 0o002 != 0 {
        return Err(PkiError::WorldWritable { path: path() });
    }
    let euid = rustix::process::geteuid().as_raw();
    let own_group = uid == euid && gid == rustix::process::getegid().as_raw();
    if mode & 0o020 != 0 && !own_group {
        return Err(PkiError::GroupWritable { path: path() });
    }
    if uid != euid && uid != 0 {
        return Err(PkiError::ForeignOwner {
            path: path(),
            owner: uid,
            euid,
        });
    }
    Ok(())
}

/// A link passes when it leads somewhere under `root` (canonical); a dangling one is judged
/// by the path it names.
fn check_link(link: &Path, root: &Path) -> Result<(), PkiError> {
    let target = std::fs::read_link(link).map_err(|e| PkiError::io("read the link", link, e))?;
    let named = link.parent().unwrap_or(Path::new("/")).join(&target);
    let resolved = named.canonicalize().unwrap_or_else(|_| lexical(&named));
    if resolved.starts_with(root) {
        Ok(())
    } else {
        Err(PkiError::Symlink {
            path: link.to_path_buf(),
            root: root.to_path_buf(),
        })
    }
}

fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_world_writable_folder_or_file_anywhere_under_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lab");
        let sf = root.join("fmc/etc/sf");
        std::fs::create_dir_all(&sf).unwrap();
        let ca = sf.join("cacert.pem");
        std::fs::write(&ca, b"x").unwrap();
        chmod(&ca, 0o644);
        chmod(&sf, 0o755);
        refuse_writable_by_others(&root).unwrap();

        chmod(&sf, 0o777);
        let e = refuse_writable_by_others(&root).unwrap_err();
        assert!(
            matches!(&e, PkiError::WorldWritable { path } if *path == sf),
            "{e}"
        );
        assert!(e.to_string().contains("chmod o-w"), "{e}");

        chmod(&sf, 0o755);
        chmod(&ca, 0o666);
        let e = refuse_writable_by_others(&root).unwrap_err();
        assert!(
            matches!(&e, PkiError::WorldWritable { path } if *path == ca),
            "{e}"
        );

        chmod(&ca, 0o644);
        chmod(&root, 0o1777);
        assert!(
            refuse_writable_by_others(&root).is_err(),
            "sticky does not make it safe"
        );
        chmod(&root, 0o755);
        assert!(refuse_writable_by_others(&dir.path().join("missing")).is_ok());
    }

    /// OpenSSH's StrictModes: group-writable, or owned by another user than the one running
    /// (or root), is refused too, with the fix named (finding 2).
    #[test]
    fn a_group_writable_entry_or_one_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lab");
        let ca_root = root.join("fmc/etc/sf/ca_root");
        std::fs::create_dir_all(&ca_root).unwrap();
        for p in [
            &root,
            &root.join("fmc"),
            &root.join("fmc/etc"),
            &root.join("fmc/etc/sf"),
        ] {
            chmod(p, 0o755);
        }
        let euid = rustix::process::geteuid().as_raw();
        let egid = rustix::process::getegid().as_raw();
        // Group-writable in another group: refused, naming the fix.
        let e = judge(&ca_root, 0o42775, euid, egid + 1).unwrap_err();
        assert!(
            matches!(&e, PkiError::GroupWritable { path } if *path == ca_root),
            "{e}"
        );
        assert!(e.to_string().contains("chmod g-w"), "{e}");
        // The user's own folder in its own group, as a umask of 002 leaves it: passes.
        chmod(&ca_root, 0o2775);
        refuse_writable_by_others(&root).unwrap();
        if euid == 0 {
            // As root, a real folder given to another group.
            std::os::unix::fs::chown(&ca_root, None, Some(100)).unwrap();
            let e = refuse_writable_by_others(&root).unwrap_err();
            assert!(
                matches!(&e, PkiError::GroupWritable { path } if *path == ca_root),
                "{e}"
            );
            std::os::unix::fs::chown(&ca_root, None, Some(egid)).unwrap();
        }
        chmod(&ca_root, 0o755);
        refuse_writable_by_others(&root).unwrap();

        let e = judge(&ca_root, 0o40755, euid + 1, egid).unwrap_err();
        assert!(
            matches!(&e, PkiError::ForeignOwner { owner, .. } if *owner == euid + 1),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("chown {euid}")), "{e}");
        judge(&ca_root, 0o40755, 0, egid).unwrap();
        if euid == 0 {
            // As root, a real file given to nobody.
            std::os::unix::fs::chown(&ca_root, Some(65534), None).unwrap();
            let e = refuse_writable_by_others(&root).unwrap_err();
            assert!(
                matches!(e, PkiError::ForeignOwner { owner: 65534, .. }),
                "{e}"
            );
        }
    }

    #[test]
    fn a_link_inside_the_root_passes_and_one_out_of_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lab");
        std::fs::create_dir(&root).unwrap();
        chmod(&root, 0o755);
        std::fs::write(root.join("real.pem"), b"x").unwrap();
        chmod(&root.join("real.pem"), 0o644);
        // A link's own mode (0777) means nothing: this one stays in the root.
        std::os::unix::fs::symlink("real.pem", root.join("link.pem")).unwrap();
        refuse_writable_by_others(&root).unwrap();

        // The reproducer: certs_pushed linked to a 0777 folder elsewhere.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        std::os::unix::fs::symlink(&open, root.join("certs_pushed")).unwrap();
        let e = refuse_writable_by_others(&root).unwrap_err();
        assert!(
            matches!(&e, PkiError::Symlink { path, .. } if path.ends_with("certs_pushed")),
            "{e}"
        );
        std::fs::remove_file(root.join("certs_pushed")).unwrap();
        // Dangling, and pointing out: refused too (it could be created later).
        std::os::unix::fs::symlink("/nonexistent", root.join("later")).unwrap();
        assert!(refuse_writable_by_others(&root).is_err());
    }
}
