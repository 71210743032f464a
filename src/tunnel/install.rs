//! A device installing the files an FMC pushed: `cacert.pem`, `sftunnel-cert.pem`,
//! `sftunnel-key.pem` over the files its tunnel runs with.
//!
//! Owns the safety rules: only those three names are accepted (never a path from the network),
//! each file must parse as what it claims to be before anything is written, keys are written
//! mode 0600, and a push lands whole or not at all, even when the device is killed halfway:
//! the three files change as one `pki::fsio::Transaction` journaled in
//! `.sftunnel-push.journal` beside the key, under a lock on the key's folder (a `pki copy`
//! to the same device takes the same one and waits its turn).
//!
//! [`recover`], run before the files are loaded, finishes a push (or a copy) that died after
//! its commit point or undoes one that died before it. Either way the device loads all the
//! old files or all the new ones.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::material::TlsFiles;
use super::proto::PushFile;
use crate::cert;
use crate::pki::PkiError;
use crate::pki::fsio::{self, Faults, RootLock, Transaction};
use crate::pki::layout::DEVICE_JOURNAL;

/// The pushed file names and where each goes.
pub(crate) fn target<'a>(files: &'a TlsFiles, name: &str) -> Option<&'a Path> {
    match name {
        "cacert.pem" => Some(&files.ca),
        "sftunnel-cert.pem" => Some(&files.cert),
        "sftunnel-key.pem" => Some(&files.key),
        _ => None,
    }
}

/// Where a push is journaled: beside the key.
pub(crate) fn journal(files: &TlsFiles) -> PathBuf {
    dir_of(&files.key).join(DEVICE_JOURNAL)
}

fn dir_of(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// How long [`lock`] waits for another holder of the key folder's lock (a `pki copy`, a push
/// being installed, another sfdiag on the same files) before it gives up: such a change takes
/// milliseconds, and a tunnel attempt that waits is better than one refused at once.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The lock on the key's folder, waited for up to [`LOCK_WAIT`]. When the user named files in
/// other folders (`--ca F`), the change may touch them: they are the user's choice, not a
/// path from the network.
fn lock(files: &TlsFiles) -> Result<RootLock, String> {
    let dir = dir_of(&files.key);
    let until = Instant::now() + LOCK_WAIT;
    let lock = loop {
        match RootLock::acquire_with_journal(dir, DEVICE_JOURNAL) {
            Ok(l) => break l,
            // flock(2) has no timeout: poll, briefly (the callers are synchronous).
            Err(PkiError::Busy { .. }) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let inside = [&files.ca, &files.cert].iter().all(|p| dir_of(p) == dir);
    Ok(if inside { lock } else { lock.unconfined() })
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

/// A push or copy left something to finish here: its journal, or a staged `.<name>.push`
/// file of an older sfdiag. Files loaded while this is true may be a mix of old and new.
pub(crate) fn pending(files: &TlsFiles) -> bool {
    journal(files).exists()
        || [&files.ca, &files.cert, &files.key].iter().any(|dest| {
            let name = dest.file_name().unwrap_or_default().to_string_lossy();
            dest.with_file_name(format!(".{name}.push")).exists()
        })
}

/// Finishes or undoes a push (or `pki copy`) the device was killed in the middle of. Returns
/// the files it put in place. Run it before loading the files.
pub(crate) fn recover(files: &TlsFiles) -> Result<Vec<PathBuf>, String> {
    if !dir_of(&files.key).is_dir() {
        return Ok(Vec::new());
    }
    let l = lock(files)?;
    let mut done = finish_legacy(files)?;
    let rec = fsio::recover(&l).map_err(|e| e.to_string())?;
    done.extend(rec.map(|r| r.written).unwrap_or_default());
    Ok(done)
}

/// Before the transaction, a push staged `.<name>.push` beside each target and committed
/// with a journal listing the names, one per line. A device upgraded in the middle of such a
/// push finishes it the same way; staged files without that journal (a key among them) go.
fn finish_legacy(files: &TlsFiles) -> Result<Vec<PathBuf>, String> {
    const NAMES: [&str; 3] = ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"];
    let staged = |dest: &Path| {
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        dest.with_file_name(format!(".{name}.push"))
    };
    let j = journal(files);
    let listed = match std::fs::read_to_string(&j) {
        Ok(t) if !t.trim_start().starts_with('{') => Some(t),
        _ => None,
    };
    let mut done = Vec::new();
    for name in NAMES {
        let Some(dest) = target(files, name) else {
            continue;
        };
        let from = staged(dest);
        if !from.exists() {
            continue;
        }
        if listed
            .as_deref()
            .is_some_and(|t| t.lines().any(|l| l == name))
        {
            std::fs::rename(&from, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
            done.push(dest.to_path_buf());
        } else {
            std::fs::remove_file(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        }
    }
    if listed.is_some() {
        fsio::fsync_dir(dir_of(&files.key)).map_err(|e| e.to_string())?;
        std::fs::remove_file(&j).map_err(|e| format!("{}: {e}", j.display()))?;
    }
    Ok(done)
}

/// Installs `pushed` over `files`, all or nothing (see the module doc). Returns the pushed
/// files' paths; on error nothing was changed, or the change is finished by the next
/// [`recover`].
pub(crate) fn install(files: &TlsFiles, pushed: &[PushFile]) -> Result<Vec<PathBuf>, String> {
    install_with(files, pushed, &Faults::none())
}

/// [`install`], calling `faults` before every file-system step.
pub(crate) fn install_with(
    files: &TlsFiles,
    pushed: &[PushFile],
    faults: &Faults,
) -> Result<Vec<PathBuf>, String> {
    if pushed.is_empty() {
        return Err("empty push".into());
    }
    let mut targets = Vec::new();
    for f in pushed {
        let dest = target(files, &f.name).ok_or_else(|| format!("unexpected file {:?}", f.name))?;
        check(&f.name, &f.data)?;
        targets.push(dest.to_path_buf());
    }
    fsio::ensure_dir(dir_of(&files.key), fsio::KEY_DIR_MODE).map_err(|e| e.to_string())?;
    let l = lock(files)?;
    // A push or copy that died here first: its set is finished or undone, never mixed in.
    finish_legacy(files)?;
    fsio::recover(&l).map_err(|e| e.to_string())?;
    let mut tx = Transaction::new(&l, "push").with_faults(faults);
    for (f, dest) in pushed.iter().zip(&targets) {
        let mode = if f.name == "sftunnel-key.pem" {
            fsio::KEY_MODE
        } else {
            f.mode & fsio::PUBLIC_MODE
        };
        tx.replace(dest, f.data.clone(), mode);
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
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
    fn recover_waits_for_another_holder_of_the_folder_lock_instead_of_failing() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        // Another holder (flock(2) is per open file, so one in this process counts too).
        let held = RootLock::acquire_with_journal(d.path(), DEVICE_JOURNAL).unwrap();
        let start = Instant::now();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        recover(&f).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(250));
        release.join().unwrap();
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

    /// A device killed (a panic: nothing is cleaned up) before each step of a push in turn:
    /// the next start's recovery gives all old or all new files, mode 0600 for the key, and
    /// nothing staged is left.
    #[test]
    fn a_push_killed_at_any_step_is_finished_or_undone_by_recover() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut n = 0;
        let mut seen = (false, false);
        loop {
            let d = tempfile::tempdir().unwrap();
            let f = files(d.path());
            install(&f, &three("old")).unwrap();
            let count = Arc::new(AtomicUsize::new(0));
            let c = count.clone();
            let faults = Faults::new(move |_| {
                if c.fetch_add(1, Ordering::SeqCst) == n {
                    // Unwinds without the panic hook's message: a quiet "kill".
                    std::panic::resume_unwind(Box::new("killed"));
                }
                Ok(())
            });
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                install_with(&f, &three("new"), &faults)
            }));
            if let Ok(r) = r {
                r.unwrap();
                break;
            }
            recover(&f).unwrap();
            let now = tags(&f);
            assert!(now == ["old"; 3] || now == ["new"; 3], "step {n}: {now:?}");
            if now[0] == "new" {
                seen.1 = true;
            } else {
                seen.0 = true;
            }
            assert!(!journal(&f).exists());
            let mode = std::fs::metadata(&f.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3, "step {n}");
            n += 1;
        }
        assert!(seen.0 && seen.1, "kills on both sides of the commit");
    }

    /// A later push goes through over an undone one, and a second identical push changes
    /// nothing.
    #[test]
    fn pushes_after_an_interrupted_one_and_identical_pushes_go_through() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        install(&f, &three("old")).unwrap();
        let fail = Faults::new(|step| match step {
            fsio::Step::Stage { .. } => Err(std::io::Error::from_raw_os_error(28)),
            _ => Ok(()),
        });
        let e = install_with(&f, &three("new"), &fail).unwrap_err();
        assert!(e.contains("No space left"), "{e}");
        assert_eq!(tags(&f), ["old", "old", "old"]);
        install(&f, &three("newest")).unwrap();
        install(&f, &three("newest")).unwrap();
        assert_eq!(tags(&f), ["newest", "newest", "newest"]);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3);
    }

    /// A push committed by an sfdiag before the transaction (`.<name>.push` files and a
    /// journal of names) is finished by this one.
    #[test]
    fn a_push_left_by_the_older_format_is_finished() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        install(&f, &three("old")).unwrap();
        for (p, t) in three("new").iter().zip([&f.ca, &f.cert, &f.key]) {
            let name = t.file_name().unwrap().to_string_lossy();
            std::fs::write(t.with_file_name(format!(".{name}.push")), &p.data).unwrap();
        }
        std::fs::write(
            journal(&f),
            "cacert.pem\nsftunnel-cert.pem\nsftunnel-key.pem\n",
        )
        .unwrap();
        assert_eq!(recover(&f).unwrap().len(), 3);
        assert_eq!(tags(&f), ["new", "new", "new"]);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 3);
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
