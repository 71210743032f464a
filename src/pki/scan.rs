//! Finding certificate files under a folder, for `sfdiag check` on a directory.
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

const EXTENSIONS: [&str; 5] = ["pem", "crt", "cer", "der", "cert"];

/// True for a name the walk would pick.
pub fn is_candidate(name: &str) -> bool {
    if name.starts_with(".sfdiag-") || super::fsio::backup_of(name).is_some() {
        return false;
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
        }
        _ => false,
    }
}

/// Candidate certificate files under `dir`.
pub fn cert_files(dir: &Path) -> Found {
    let mut found = Found::default();
    walk(dir, &mut found, 0);
    found.files.sort();
    found
}

fn walk(dir: &Path, found: &mut Found, depth: usize) {
    // Appliance trees are a dozen levels deep; a bound keeps odd mounts from running away.
    if depth > 64 {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            found.errors.push((dir.to_path_buf(), e));
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
            if !name.starts_with(".sfdiag-") {
                walk(&path, found, depth + 1);
            }
        } else if is_candidate(&name) && (ty.is_file() || path.is_file()) {
            found.files.push(path);
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
