//! A device installing the files an FMC pushed: `cacert.pem`, `sftunnel-cert.pem`,
//! `sftunnel-key.pem` over the files its tunnel runs with.
//!
//! Owns the safety rules: only those three names are accepted (never a path from the network),
//! each file must parse as what it claims to be before anything is written, keys are written
//! mode 0600, and a push lands whole or not at all, even when the device is killed halfway.
//! Three renames cannot be one atomic step, so a journal makes them one:
//!
//! 1. each file is written and synced beside its target as `.<name>.push`;
//! 2. the journal (`.sftunnel-push.journal` beside the key, naming the files) is written
//!    atomically: this is the commit point;
//! 3. each staged file is renamed over its target, then the journal is removed.
//!
//! [`recover`], run before the files are loaded, finishes a committed push (step 3 again for
//! what is still staged) or, without a journal, deletes staged leftovers of a push that died
//! before its commit. Either way the device loads all the old files or all the new ones.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::material::TlsFiles;
use super::proto::PushFile;
use crate::cert;
use crate::pki::fsio;

/// The pushed file names, in the order they are installed.
const NAMES: [&str; 3] = ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"];

/// The pushed file names and where each goes.
pub fn target<'a>(files: &'a TlsFiles, name: &str) -> Option<&'a Path> {
    match name {
        "cacert.pem" => Some(&files.ca),
        "sftunnel-cert.pem" => Some(&files.cert),
        "sftunnel-key.pem" => Some(&files.key),
        _ => None,
    }
}

/// Where a push is committed: beside the key.
pub fn journal(files: &TlsFiles) -> PathBuf {
    files.key.with_file_name(".sftunnel-push.journal")
}

/// Where the new `dest` waits for its rename.
fn staged(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.push"))
}

fn dir_of(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The pushed file holds what its name says (read by `cert`, whose error names the file and
/// what it holds instead).
fn check(name: &str, data: &[u8]) -> Result<(), String> {
    let read = if name == "sftunnel-key.pem" {
        cert::parse_key_pem(data, name).map(drop)
    } else {
        cert::parse_named(data, name).map(drop)
    };
    read.map_err(|e| e.to_string())
}

/// Steps 1 and 2: every file checked, staged and synced, then the journal committed.
fn stage(files: &TlsFiles, pushed: &[PushFile]) -> Result<(), String> {
    if pushed.is_empty() {
        return Err("empty push".into());
    }
    for f in pushed {
        target(files, &f.name).ok_or_else(|| format!("unexpected file {:?}", f.name))?;
        check(&f.name, &f.data)?;
    }
    // A push that died before its commit may have left staged files: they are not ours.
    recover(files)?;
    let mut names = Vec::new();
    for f in pushed {
        let dest = target(files, &f.name).unwrap_or(Path::new(""));
        let mode = if f.name == "sftunnel-key.pem" {
            fsio::KEY_MODE
        } else {
            f.mode & fsio::PUBLIC_MODE
        };
        let path = staged(dest);
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&path);
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            // Mode first: a key never sits on disk readable by others, even briefly.
            out.set_permissions(std::fs::Permissions::from_mode(mode))?;
            out.write_all(&f.data)?;
            out.sync_all()
        };
        if let Err(e) = write() {
            let _ = recover(files);
            return Err(format!("{}: {e}", path.display()));
        }
        names.push(f.name.as_str());
    }
    let list = names.join("\n") + "\n";
    if let Err(e) = fsio::write_atomic(&journal(files), list.as_bytes(), fsio::KEY_MODE) {
        let _ = recover(files);
        return Err(e.to_string());
    }
    Ok(())
}

/// Step 3 for a committed push, or the cleanup of one that never committed. Returns the
/// files it put in place. Run it before loading the files.
pub fn recover(files: &TlsFiles) -> Result<Vec<PathBuf>, String> {
    let j = journal(files);
    let committed = match std::fs::read_to_string(&j) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", j.display())),
    };
    let mut done = Vec::new();
    let Some(text) = committed else {
        for name in NAMES {
            if let Some(dest) = target(files, name) {
                let _ = std::fs::remove_file(staged(dest));
            }
        }
        return Ok(done);
    };
    for name in text.lines() {
        let Some(dest) = target(files, name) else {
            continue;
        };
        let from = staged(dest);
        match std::fs::rename(&from, dest) {
            Ok(()) => done.push(dest.to_owned()),
            // Renamed before the interruption.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", dest.display())),
        }
    }
    for name in NAMES {
        if let Some(dest) = target(files, name) {
            fsio::fsync_dir(dir_of(dest)).map_err(|e| e.to_string())?;
        }
    }
    std::fs::remove_file(&j).map_err(|e| format!("{}: {e}", j.display()))?;
    fsio::fsync_dir(dir_of(&j)).map_err(|e| e.to_string())?;
    Ok(done)
}

/// Installs `pushed` over `files`, all or nothing (see the module doc); on error nothing was
/// renamed.
pub fn install(files: &TlsFiles, pushed: &[PushFile]) -> Result<Vec<PathBuf>, String> {
    stage(files, pushed)?;
    recover(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    /// A real certificate and its key (the install reads what it is given).
    static KEY_PAIR: LazyLock<rcgen::KeyPair> =
        LazyLock::new(|| rcgen::KeyPair::generate().unwrap());
    static CERT: LazyLock<String> = LazyLock::new(|| {
        rcgen::CertificateParams::new(vec!["ftd".into()])
            .unwrap()
            .self_signed(&*KEY_PAIR)
            .unwrap()
            .pem()
    });
    static KEY: LazyLock<String> = LazyLock::new(|| KEY_PAIR.serialize_pem());

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("cacert.pem"),
            cert: dir.join("sftunnel-cert.pem"),
            key: dir.join("sftunnel-key.pem"),
        }
    }

    fn push(name: &str, data: &str) -> PushFile {
        PushFile {
            name: name.into(),
            mode: 0o644,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_bad_file_anywhere_in_the_push_leaves_every_old_file_in_place() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        std::fs::write(&f.ca, "old ca").unwrap();
        for bad in [
            vec![push("cacert.pem", &CERT), push("../etc/passwd", &CERT)],
            vec![
                push("cacert.pem", &CERT),
                push("sftunnel-key.pem", "not a key"),
            ],
            vec![],
        ] {
            assert!(install(&f, &bad).is_err());
            assert_eq!(std::fs::read_to_string(&f.ca).unwrap(), "old ca");
            assert!(!f.key.exists());
        }
        // No staging files are left behind either.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    fn three(tag: &str) -> Vec<PushFile> {
        vec![
            push("cacert.pem", &format!("{}# {tag}\n", *CERT)),
            push("sftunnel-cert.pem", &format!("{}# {tag}\n", *CERT)),
            push("sftunnel-key.pem", &format!("{}# {tag}\n", *KEY)),
        ]
    }

    fn tags(f: &TlsFiles) -> Vec<String> {
        [&f.ca, &f.cert, &f.key]
            .iter()
            .map(|p| {
                let t = std::fs::read_to_string(p).unwrap();
                t.rsplit("# ").next().unwrap().trim().to_owned()
            })
            .collect()
    }

    /// A device killed after the commit and after k of the three renames: the next start
    /// finishes the push.
    #[test]
    fn a_push_killed_after_its_commit_is_finished_by_recover() {
        for k in 0..=3 {
            let d = tempfile::tempdir().unwrap();
            let f = files(d.path());
            install(&f, &three("old")).unwrap();
            stage(&f, &three("new")).unwrap();
            for name in &NAMES[..k] {
                let dest = target(&f, name).unwrap();
                std::fs::rename(staged(dest), dest).unwrap();
            }
            let mixed = tags(&f);
            assert_eq!(mixed.iter().filter(|t| *t == "new").count(), k);
            recover(&f).unwrap();
            assert_eq!(tags(&f), ["new", "new", "new"], "after {k} renames");
            assert!(!journal(&f).exists());
            let mode = std::fs::metadata(&f.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3);
        }
    }

    /// A device killed before the commit: the old files stay, the staged ones go.
    #[test]
    fn a_push_killed_before_its_commit_leaves_the_old_files() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        install(&f, &three("old")).unwrap();
        stage(&f, &three("new")).unwrap();
        std::fs::remove_file(journal(&f)).unwrap();
        recover(&f).unwrap();
        assert_eq!(tags(&f), ["old", "old", "old"]);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3);
        // And a later push goes through over the leftovers.
        stage(&f, &three("newer")).unwrap();
        std::fs::remove_file(journal(&f)).unwrap();
        install(&f, &three("newest")).unwrap();
        assert_eq!(tags(&f), ["newest", "newest", "newest"]);
    }

    #[test]
    fn a_good_push_replaces_all_three_and_keeps_the_key_private() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        let mut key = push("sftunnel-key.pem", &KEY);
        key.mode = 0o666;
        let done = install(
            &f,
            &[
                push("cacert.pem", &CERT),
                push("sftunnel-cert.pem", &CERT),
                key,
            ],
        )
        .unwrap();
        assert_eq!(done, vec![f.ca.clone(), f.cert.clone(), f.key.clone()]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.key), 0o600);
        assert_eq!(mode(&f.ca), 0o644);
        assert_eq!(std::fs::read_to_string(&f.cert).unwrap(), *CERT);
    }
}
