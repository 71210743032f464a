//! Refusing a PKI root that any local user could write: whoever can replace `cacert.pem` or a
//! key there decides which peers the lab trusts. OpenSSH refuses group/world-writable key
//! folders for the same reason.
//!
//! Owns only the permission check, run by [`super::PkiRoot::load`] before it reads anything.
//! The root and everything under it (not its parents: `/tmp` itself is world-writable) must
//! not be writable by others; symbolic links are not followed (their own mode means nothing).

use std::path::Path;

use super::PkiError;

/// How deep under the root to look: the appliance layout is 8 levels at most.
const MAX_DEPTH: usize = 12;

/// Errors with the first world-writable file or folder under `root` (the root included).
/// A root that does not exist passes: the loader reports what is missing.
pub fn refuse_world_writable(root: &Path) -> Result<(), PkiError> {
    check(root, 0)
}

#[cfg(unix)]
fn check(path: &Path, depth: usize) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PkiError::io("inspect", path, e)),
    };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(PkiError::WorldWritable {
            path: path.to_path_buf(),
        });
    }
    if meta.is_dir() && depth < MAX_DEPTH {
        let entries = std::fs::read_dir(path).map_err(|e| PkiError::io("list", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| PkiError::io("list", path, e))?;
            check(&entry.path(), depth + 1)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check(_path: &Path, _depth: usize) -> Result<(), PkiError> {
    Ok(())
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
        refuse_world_writable(&root).unwrap();

        chmod(&sf, 0o777);
        let e = refuse_world_writable(&root).unwrap_err();
        assert!(
            matches!(&e, PkiError::WorldWritable { path } if *path == sf),
            "{e}"
        );
        assert!(e.to_string().contains("chmod o-w"), "{e}");

        chmod(&sf, 0o755);
        chmod(&ca, 0o666);
        let e = refuse_world_writable(&root).unwrap_err();
        assert!(
            matches!(&e, PkiError::WorldWritable { path } if *path == ca),
            "{e}"
        );

        chmod(&ca, 0o644);
        chmod(&root, 0o1777);
        assert!(
            refuse_world_writable(&root).is_err(),
            "sticky does not make it safe"
        );
        chmod(&root, 0o755);
        assert!(refuse_world_writable(&dir.path().join("missing")).is_ok());
    }

    #[test]
    fn symbolic_links_are_not_judged_by_their_own_mode() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("link")).unwrap();
        chmod(dir.path(), 0o755);
        refuse_world_writable(dir.path()).unwrap();
    }
}
