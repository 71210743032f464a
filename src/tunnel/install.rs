//! A device installing the files an FMC pushed: `cacert.pem`, `sftunnel-cert.pem`,
//! `sftunnel-key.pem` over the files its tunnel runs with.
//!
//! Owns the safety rules: only those three names are accepted (never a path from the network),
//! each file must parse as what it claims to be before anything is written, every file is
//! first written beside its target and synced, and only then are all renamed into place, so
//! an interrupted push leaves the old set (or, past the first rename, files that were all
//! checked). Keys are written mode 0600.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::material::TlsFiles;
use super::proto::PushFile;

/// The pushed file names and where each goes.
pub fn target<'a>(files: &'a TlsFiles, name: &str) -> Option<&'a Path> {
    match name {
        "cacert.pem" => Some(&files.ca),
        "sftunnel-cert.pem" => Some(&files.cert),
        "sftunnel-key.pem" => Some(&files.key),
        _ => None,
    }
}

fn check(name: &str, data: &[u8]) -> Result<(), String> {
    let ok = if name == "sftunnel-key.pem" {
        PrivateKeyDer::from_pem_slice(data).is_ok()
    } else {
        CertificateDer::pem_slice_iter(data)
            .next()
            .is_some_and(|r| r.is_ok())
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name} does not contain a usable {}",
            if name == "sftunnel-key.pem" {
                "key"
            } else {
                "certificate"
            }
        ))
    }
}

/// Installs `pushed` over `files`; on error nothing was renamed.
pub fn install(files: &TlsFiles, pushed: &[PushFile]) -> Result<Vec<PathBuf>, String> {
    if pushed.is_empty() {
        return Err("empty push".into());
    }
    let mut staged = Vec::new();
    for f in pushed {
        let dest = target(files, &f.name).ok_or_else(|| format!("unexpected file {:?}", f.name))?;
        check(&f.name, &f.data)?;
        let dir = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".push-")
            .tempfile_in(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = if f.name == "sftunnel-key.pem" {
            0o600
        } else {
            f.mode & 0o644
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .and_then(|()| tmp.write_all(&f.data))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        staged.push((tmp, dest.to_owned()));
    }
    let mut done = Vec::new();
    for (tmp, dest) in staged {
        tmp.persist(&dest)
            .map_err(|e| format!("{}: {}", dest.display(), e.error))?;
        done.push(dest);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";

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
            vec![push("cacert.pem", CERT), push("../etc/passwd", CERT)],
            vec![
                push("cacert.pem", CERT),
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

    #[test]
    fn a_good_push_replaces_all_three_and_keeps_the_key_private() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        let mut key = push("sftunnel-key.pem", KEY);
        key.mode = 0o666;
        let done = install(
            &f,
            &[
                push("cacert.pem", CERT),
                push("sftunnel-cert.pem", CERT),
                key,
            ],
        )
        .unwrap();
        assert_eq!(done, vec![f.ca.clone(), f.cert.clone(), f.key.clone()]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.key), 0o600);
        assert_eq!(mode(&f.ca), 0o644);
        assert_eq!(std::fs::read_to_string(&f.cert).unwrap(), CERT);
    }
}
