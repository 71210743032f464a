//! PATH arguments -> the certificates they hold, each with a stable label and, inside an
//! appliance layout, the part it plays; plus what could not be read and what was passed over.
//!
//! A folder is walked in sorted order without following symlinked folders (no loops, no
//! escaping the tree). Files named like certificates (`.pem`, `.crt`, `.cer`, `.der`, `.cert`)
//! or PKCS#12 bundles (`.p12`, `.pfx`) are read; everything else (`.key`, `.csr`, `ims.conf`,
//! `*.backup`, our own staging files) is passed over and recorded as [`Skipped`], and so is a
//! picked file that holds only a private key. A file named on the command line is always read.
//! The walk is bounded in depth and each file in size, and a FIFO or device is refused, not
//! read (`files::read_bounded`), so a wrong PATH cannot run away or hang. In a lab root, a
//! tunnel file that is there but is not a regular file is unreadable too.

use std::path::{Path, PathBuf};

use crate::cert::{self, CertError, CertInfo};
use crate::pki::roles::{self, CertRole, Classified, RoleNamer};
use crate::pki::scan;

/// Files bigger than this are not certificate files (a bundle of a thousand certs is ~2 MB);
/// `cert`'s reader refuses them too, and FIFOs and devices, without reading them.
pub const MAX_FILE: u64 = crate::files::MAX_CERT_FILE;

/// One certificate found in the inputs.
#[derive(Debug, Clone)]
pub struct FileCert {
    /// The file it is in.
    pub file: PathBuf,
    /// A name that stays the same across runs of the same command line: the path relative to
    /// the folder given (or the path as given), `#N` for the Nth certificate of a bundle.
    pub label: String,
    /// 1-based position in its file.
    pub index: usize,
    /// How many certificates the file holds.
    pub of: usize,
    /// What it says, decoded (`parse_error` set when part of it would not).
    pub info: CertInfo,
    /// The part it plays in an appliance tree, names filled in (first certificate only);
    /// `None` outside the appliance layout.
    pub role: Option<CertRole>,
    /// Where in the appliance layout the file is (first certificate only); `None` outside it.
    pub place: Option<Classified>,
}

/// An input that could not be read (UNKNOWN for `check`).
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The file or folder, as given or as found in the walk.
    pub file: PathBuf,
    /// What went wrong, naming the file.
    pub message: String,
}

/// Why a file found in a folder was not read as a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// It holds a private key (`cakey.pem`, `sftunnel-key.pem`).
    PrivateKey,
    /// `*.backup`, `*.backup.N`: retired by `--force` or renewal, expected to be stale.
    Backup,
    /// Its name is not a certificate's (`.key`, `.csr`, configuration, logs).
    NotACertificateName,
}

impl SkipReason {
    /// Words for `-v` and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::PrivateKey => "holds a private key",
            SkipReason::Backup => "a backup copy",
            SkipReason::NotACertificateName => "not a certificate file name",
        }
    }
}

/// A file passed over.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// As found in the walk.
    pub file: PathBuf,
    /// Why it was not read.
    pub reason: SkipReason,
}

/// What the inputs held.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    /// Every certificate read, in input order (each folder's files sorted by path).
    pub certs: Vec<FileCert>,
    /// Inputs that could not be read, or a folder that held no certificate.
    pub unreadable: Vec<Unreadable>,
    /// Files found in folders and passed over.
    pub skipped: Vec<Skipped>,
}

/// True for a file name the walk reads.
pub fn is_candidate(name: &str) -> bool {
    !scan::is_ours(name)
        && !scan::is_backup(name)
        && (scan::has_extension(name, &scan::CERT_EXTENSIONS)
            || scan::has_extension(name, &scan::BUNDLE_EXTENSIONS))
}

/// Reads every PATH: files as given, folders walked.
pub fn collect(paths: &[PathBuf]) -> Collection {
    let mut c = Collection::default();
    let mut namer = RoleNamer::new();
    // With one folder, labels are relative to it; with several inputs, the folder as given
    // stays in front so two roots' `fmc/etc/sf/ca_root/cacert.pem` stay apart.
    let relative = paths.len() == 1;
    for path in paths {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                c.unreadable.push(Unreadable {
                    file: path.clone(),
                    message: format!("{}: {e}", path.display()),
                });
                continue;
            }
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files, &mut c);
            files.sort();
            let before = c.certs.len() + c.unreadable.len();
            for f in files {
                let label = match f.strip_prefix(path) {
                    Ok(rel) if relative => rel.display().to_string(),
                    _ => f.display().to_string(),
                };
                read_file(&f, label, false, &mut namer, &mut c);
            }
            if c.certs.len() + c.unreadable.len() == before {
                c.unreadable.push(Unreadable {
                    file: path.clone(),
                    message: format!("{}: no certificate found under this folder", path.display()),
                });
            }
        } else {
            read_file(path, path.display().to_string(), true, &mut namer, &mut c);
        }
    }
    unusable_expected(&mut c);
    c
}

/// The walk passes over what is not a regular file; in a lab root, a FIFO or device where the
/// layout expects a tunnel file (`peers::expected`) is an input that cannot be read, and so is
/// a root whose `ims.conf` or `sftunnel.conf` is there and cannot be read.
fn unusable_expected(c: &mut Collection) {
    let roots = super::peers::roots(&c.certs);
    for r in &roots {
        if let super::peers::RootState::Unreadable(e) = &r.state {
            c.unreadable.push(Unreadable {
                file: r.root.clone(),
                message: e.to_string(),
            });
        }
    }
    for e in super::peers::expected(&roots) {
        for f in e.files {
            let not_a_file = std::fs::metadata(&f).is_ok_and(|m| !m.is_file());
            if !not_a_file || c.unreadable.iter().any(|u| u.file == f) {
                continue;
            }
            if let Err(e) = crate::files::read_bounded(&f, MAX_FILE, crate::files::Links::Follow) {
                c.unreadable.push(Unreadable {
                    message: format!("{}: {e}", f.display()),
                    file: f,
                });
            }
        }
    }
}

/// The candidate files under `dir` (through [`scan::walk`]), recording the folders it could
/// not list and the files it passed over in `c`.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, c: &mut Collection) {
    scan::walk(dir, &mut |e| match e {
        scan::Entry::File { path, name } if is_candidate(name) => files.push(path.to_path_buf()),
        // Our own half-written files are not the user's: not worth a line.
        scan::Entry::File { name, .. } if scan::is_ours(name) => {}
        scan::Entry::File { path, name } => {
            let reason = if scan::is_backup(name) {
                SkipReason::Backup
            } else {
                SkipReason::NotACertificateName
            };
            c.skipped.push(Skipped {
                file: path.to_path_buf(),
                reason,
            });
        }
        scan::Entry::Unreadable { path, error } => c.unreadable.push(Unreadable {
            file: path.to_path_buf(),
            message: format!("{}: {error}", path.display()),
        }),
    });
}

/// Reads every certificate of one file. Found in a folder (`explicit == false`), a file that
/// holds only a private key is passed over: appliance trees keep keys beside certificates.
fn read_file(
    path: &Path,
    label: String,
    explicit: bool,
    namer: &mut RoleNamer,
    c: &mut Collection,
) {
    let unreadable = |message: String| Unreadable {
        file: path.to_path_buf(),
        message,
    };
    if let Ok(m) = std::fs::metadata(path)
        && m.len() > MAX_FILE
    {
        c.unreadable.push(unreadable(format!(
            "{}: {} bytes is too large for a certificate file",
            path.display(),
            m.len()
        )));
        return;
    }
    let certs = match cert::read_certs(path) {
        Ok(certs) => certs,
        Err(CertError::PrivateKey { .. }) if !explicit => {
            c.skipped.push(Skipped {
                file: path.to_path_buf(),
                reason: SkipReason::PrivateKey,
            });
            return;
        }
        Err(e) => {
            c.unreadable.push(unreadable(e.to_string()));
            return;
        }
    };
    let of = certs.len();
    let role = namer.role_of(path);
    let place = roles::classify(path);
    for (i, info) in certs.into_iter().enumerate() {
        let index = i + 1;
        c.certs.push(FileCert {
            file: path.to_path_buf(),
            label: if of > 1 {
                format!("{label}#{index}")
            } else {
                label.clone()
            },
            index,
            of,
            // A role names the file's first certificate; extra ones in a bundle go by
            // their subject.
            role: if index == 1 { role.clone() } else { None },
            place: if index == 1 { place.clone() } else { None },
            info,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_certificate_and_pkcs12_names_only() {
        for yes in [
            "cacert.pem",
            "a.CRT",
            "x.der",
            "y.cer",
            "z.cert",
            "b.p12",
            "c.PFX",
        ] {
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
            "sftunnel-key.key",
            "req.csr",
        ] {
            assert!(!is_candidate(no), "{no}");
        }
    }

    #[test]
    fn walks_sorted_skips_symlinked_folders_and_records_what_it_passed_over() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b/c")).unwrap();
        std::fs::write(d.path().join("b/c/z.pem"), b"").unwrap();
        std::fs::write(d.path().join("a.pem"), b"").unwrap();
        std::fs::write(d.path().join("b/k.pem.backup"), b"").unwrap();
        std::fs::write(d.path().join("b/req.csr"), b"").unwrap();
        std::os::unix::fs::symlink(d.path(), d.path().join("b/loop")).unwrap();
        let mut files = Vec::new();
        let mut c = Collection::default();
        walk(d.path(), &mut files, &mut c);
        assert_eq!(
            files,
            vec![d.path().join("a.pem"), d.path().join("b/c/z.pem")]
        );
        let skipped: Vec<_> = c
            .skipped
            .iter()
            .map(|s| (s.file.file_name().unwrap().to_str().unwrap(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                ("k.pem.backup", SkipReason::Backup),
                ("req.csr", SkipReason::NotACertificateName)
            ]
        );
    }
}
