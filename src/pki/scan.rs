//! Finding certificate files under a folder: the one walk and the one naming rule of `pki show`,
//! `check` and `inventory` on a directory.
//!
//! Walks recursively without following symlinked folders (no loops, no escaping the tree),
//! in sorted order so reports are stable. Picks files whose extension says certificate or
//! PEM (`.pem`, `.crt`, `.cer`, `.der`, `.cert`); skips `*.backup`, `*.backup.N` (retired by `--force` or
//! renewal, expected to be stale) and our own temporary and staging files. Whether a picked
//! file really holds a certificate is for the caller to find out.

use std::path::{Path, PathBuf};

/// What a walk found: candidate files, and folders or entries it could not read.
#[derive(Debug, Default)]
pub struct Found {
    /// Candidate certificate files, sorted.
    pub files: Vec<PathBuf>,
    /// Entries that could not be listed, with the error.
    pub errors: Vec<(PathBuf, std::io::Error)>,
}

/// Extensions that name a certificate file (PEM or DER).
pub const CERT_EXTENSIONS: [&str; 5] = ["pem", "crt", "cer", "der", "cert"];
/// Extensions that name a PKCS#12 bundle.
pub const BUNDLE_EXTENSIONS: [&str; 2] = ["p12", "pfx"];

/// Our own staging and temporary files and folders (`.sfdiag-...`): half-written, never read.
pub fn is_ours(name: &str) -> bool {
    name.starts_with(".sfdiag-")
}

/// `*.backup`, `*.backup.N`: retired by `--force` or a renewal, expected to be stale.
pub fn is_backup(name: &str) -> bool {
    super::fsio::backup_of(name).is_some()
}

/// `name` has a stem and one of `extensions` (any case).
pub fn has_extension(name: &str, extensions: &[&str]) -> bool {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            extensions.iter().any(|e| e.eq_ignore_ascii_case(ext))
        }
        _ => false,
    }
}

/// True for a name the walk would pick.
pub(super) fn is_candidate(name: &str) -> bool {
    !is_ours(name) && !is_backup(name) && has_extension(name, &CERT_EXTENSIONS)
}

/// Candidate certificate files under `dir`.
pub fn cert_files(dir: &Path) -> Found {
    let mut found = Found::default();
    walk(dir, &mut |e| match e {
        Entry::File { path, name } if is_candidate(name) => found.files.push(path.to_path_buf()),
        Entry::File { .. } => {}
        Entry::Unreadable { path, error } => found.errors.push((path.to_path_buf(), error)),
    });
    found.files.sort();
    found
}

/// One thing [`walk`] met.
#[derive(Debug)]
pub enum Entry<'a> {
    /// A regular file (or a link to one), with its name.
    File {
        /// Under the folder walked.
        path: &'a Path,
        /// Its file name (lossy UTF-8).
        name: &'a str,
    },
    /// A folder that could not be listed.
    Unreadable {
        /// Under the folder walked (or that folder itself).
        path: &'a Path,
        /// Why it could not be listed.
        error: std::io::Error,
    },
}

/// Walks `dir` in sorted order, depth first, without following symlinked folders (no loops,
/// no escaping the tree) and without entering our own staging folders, telling `visit` of
/// every file and every folder it could not list. The one walk of `pki show` and of
/// `check`/`inventory`.
pub fn walk(dir: &Path, visit: &mut dyn FnMut(Entry<'_>)) {
    walk_at(dir, visit, 0);
}

/// Appliance trees are a dozen levels deep; a bound keeps odd mounts from running away.
const MAX_DEPTH: usize = 64;

fn walk_at(dir: &Path, visit: &mut dyn FnMut(Entry<'_>), depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(error) => {
            visit(Entry::Unreadable { path: dir, error });
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(ty) = entry.file_type() else { continue };
        if ty.is_dir() {
            if !is_ours(&name) {
                walk_at(&path, visit, depth + 1);
            }
        } else if ty.is_file() || (ty.is_symlink() && path.is_file()) {
            visit(Entry::File {
                path: &path,
                name: &name,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_certificate_names_only() {
        for yes in ["cacert.pem", "a.CRT", "x.der", "y.cer", "z.cert"] {
            assert!(is_candidate(yes), "{yes}");
        }
        for no in [
            "cacert.pem.backup",
            "cacert.pem.backup.2",
            "ims.conf",
            "serial",
            ".pem",
            ".sfdiag-tmp-x.pem",
            "pem",
        ] {
            assert!(!is_candidate(no), "{no}");
        }
    }

    #[test]
    fn walks_sorted_and_skips_symlinked_folders() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b/c")).unwrap();
        std::fs::write(d.path().join("b/c/z.pem"), b"").unwrap();
        std::fs::write(d.path().join("a.pem"), b"").unwrap();
        std::fs::write(d.path().join("b/k.pem.backup"), b"").unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("b/loop")).unwrap();
        let f = cert_files(d.path());
        assert_eq!(
            f.files,
            vec![d.path().join("a.pem"), d.path().join("b/c/z.pem")]
        );
    }
}
