//! Local trust around a lab root (issue "Nothing lost, no one in", items 7-11), each with the
//! reproducer's input: symbolic links out of the root for `pki copy` and the world-writable
//! guard, `pki init` on existing and system folders, `--at` offsets too large, and the modes
//! of what sfdiag creates under umask 000.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::sfdiag;
use crate::renew::{ims, snapshot};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_in(cwd: &Path, args: &[&str]) -> Output {
    sfdiag()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run sfdiag")
}

/// sfdiag run under `umask 000` (through the shell: the test harness keeps its own umask).
fn run_umask000(cwd: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_sfdiag"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run sfdiag under umask 000")
}

fn init(dir: &Path, root: &Path, devices: &str) {
    let o = run_in(
        dir,
        &["pki", "init", "--root", s(root), "--devices", devices],
    );
    assert!(o.status.success(), "{}", text(&o));
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Every file and folder under `dir` (links not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

fn csv(dir: &Path, names: &[&str]) -> PathBuf {
    let p = dir.join("devices.csv");
    let mut t = String::new();
    for n in names {
        t += &format!("{n},0.0.0.0,admin,pw\n");
    }
    std::fs::write(&p, t).unwrap();
    p
}

/// Item 7, the reproducer: a device's `sftunnel-cert.pem` linked to a secret outside the
/// root (`/etc/shadow`). `pki copy` refuses the root, names the link, and neither copies the
/// secret into a backup nor writes anything.
#[test]
fn copy_refuses_a_root_with_a_symlink_out_of_it() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(d.path(), &root, "1");
    let o = run_in(d.path(), &["pki", "renew", "--root", s(&root), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let fmc = ims(&root, "fmc", "APPLIANCE_UUID");
    let secret = d.path().join("shadow");
    std::fs::write(&secret, "root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    chmod(&secret, 0o600);
    let cert = root.join(format!("ftd1/var/sf/peers/{fmc}/sftunnel-cert.pem"));
    std::fs::remove_file(&cert).unwrap();
    symlink(&secret, &cert).unwrap();
    let before = snapshot(&root);
    let list = csv(d.path(), &["ftd1"]);
    let o = run_in(
        d.path(),
        &["pki", "copy", "--root", s(&root), "--devices", s(&list)],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("symbolic link") && out.contains("sftunnel-cert.pem"),
        "{out}"
    );
    assert_eq!(
        snapshot(&root),
        before,
        "nothing read into or written under the root"
    );
    assert!(!cert.with_file_name("sftunnel-cert.pem.backup").exists());
}

/// Item 7, inside the root: links that would make `pki copy` read the InternalCA's key as a
/// device's key, or write a device's files over the FMC's own. Each such device is refused
/// with why, the others are copied, and the FMC's files stay as they were.
#[test]
fn copy_never_reads_or_writes_through_a_symlink() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(d.path(), &root, "3");
    let o = run_in(d.path(), &["pki", "renew", "--root", s(&root), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let fmc = ims(&root, "fmc", "APPLIANCE_UUID");
    let cakey = root.join("fmc/etc/sf/ca_root/cakey.pem");
    let fmc_keys = root.join("fmc/etc/sf/keys");
    let fmc_before = snapshot(&root.join("fmc/etc/sf"));

    // ftd1: its certificate is a link to the InternalCA's key.
    let own1 = root.join(format!("ftd1/var/sf/peers/{fmc}"));
    std::fs::remove_file(own1.join("sftunnel-cert.pem")).unwrap();
    symlink(&cakey, own1.join("sftunnel-cert.pem")).unwrap();
    // ftd2: its peer folder is a link to the FMC's own key folder.
    let own2 = root.join(format!("ftd2/var/sf/peers/{fmc}"));
    std::fs::remove_dir_all(&own2).unwrap();
    symlink(&fmc_keys, &own2).unwrap();
    // ftd3: the FMC's copy of its key is a link to the InternalCA's key.
    let uuid3 = ims(&root, "ftd3", "APPLIANCE_UUID");
    let pushed3 = root.join(format!(
        "fmc/var/sf/peers/{uuid3}/certs_pushed/sftunnel-key.pem"
    ));
    std::fs::remove_file(&pushed3).unwrap();
    symlink(&cakey, &pushed3).unwrap();

    let list = csv(d.path(), &["ftd1", "ftd2", "ftd3"]);
    let o = run_in(
        d.path(),
        &["pki", "copy", "--root", s(&root), "--devices", s(&list)],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    for dev in ["ftd1", "ftd2", "ftd3"] {
        assert!(
            out.lines().any(|l| l
                .starts_with(&format!("sfdiag: could not copy certificates to {dev}: "))
                && l.contains("symbolic link")),
            "{dev}: {out}"
        );
    }
    assert_eq!(
        snapshot(&root.join("fmc/etc/sf")),
        fmc_before,
        "the FMC's files"
    );
    let key = std::fs::read(&cakey).unwrap();
    for p in walk(&root) {
        if p.is_file() && !p.is_symlink() && p != cakey {
            assert_ne!(
                std::fs::read(&p).unwrap(),
                key,
                "the CA key copied to {}",
                p.display()
            );
        }
    }
    // With the links gone, the same copy goes through.
    std::fs::remove_file(own1.join("sftunnel-cert.pem")).unwrap();
    let o = run_in(
        d.path(),
        &[
            "pki",
            "copy",
            "--root",
            s(&root),
            "--devices",
            s(&csv(d.path(), &["ftd1"])),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Item 8: `certs_pushed` linked to a 0777 folder outside the root is refused (and renewal
/// writes no private key there); a link that stays inside the root is fine.
#[test]
fn the_guard_judges_symlinks_by_where_they_lead() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(d.path(), &root, "1");
    let uuid = ims(&root, "ftd1", "APPLIANCE_UUID");
    let pushed = root.join(format!("fmc/var/sf/peers/{uuid}/certs_pushed"));
    let open = d.path().join("open");
    std::fs::rename(&pushed, &open).unwrap();
    chmod(&open, 0o777);
    symlink(&open, &pushed).unwrap();
    let before = snapshot(&open);
    for args in [
        vec!["pki", "renew", "--root", s(&root), "--yes"],
        vec!["status", "--root", s(&root)],
    ] {
        let o = run_in(d.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("symbolic link"), "{}", text(&o));
    }
    assert_eq!(
        snapshot(&open),
        before,
        "no key written into the open folder"
    );

    // Back inside the root (a relative link to a private folder of the root): accepted.
    std::fs::remove_file(&pushed).unwrap();
    let inside = root.join("fmc/var/sf/peers").join(format!("{uuid}.real"));
    std::fs::rename(&open, &inside).unwrap();
    chmod(&inside, 0o700);
    symlink(format!("../{uuid}.real"), &pushed).unwrap();
    let o = run_in(d.path(), &["status", "--root", s(&root)]);
    assert!(!text(&o).contains("symbolic link"), "{}", text(&o));
}

/// Item 9: `pki init` into folders that exist keeps their modes; a world-writable one is
/// refused as renew and serve would refuse it later; `/` and system folders are refused
/// before anything is written.
#[test]
fn init_keeps_existing_modes_and_refuses_system_roots() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    chmod(&home, 0o700);
    init(d.path(), &home, "1");
    assert_eq!(mode(&home), 0o700, "an existing 0700 folder stays 0700");
    assert_eq!(
        mode(&home.join("fmc")),
        0o755,
        "folders init makes are 0755"
    );

    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o1777);
    let o = run_in(
        d.path(),
        &["pki", "init", "--root", s(&shared), "--devices", "1"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("writable by every user"), "{}", text(&o));
    assert_eq!(mode(&shared), 0o1777, "its mode is not changed");
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing written"
    );

    for root in [
        "/",
        "/etc",
        "/usr",
        "/var",
        "/home",
        "/usr/local",
        "/tmp/..",
        "/root",
    ] {
        let o = run_in(d.path(), &["pki", "init", "--root", root, "--devices", "1"]);
        assert_eq!(o.status.code(), Some(2), "{root}: {}", text(&o));
        assert!(text(&o).contains("refusing to use"), "{root}: {}", text(&o));
    }
    assert!(!Path::new("/fmc").exists() && !Path::new("/etc/fmc").exists());
}

/// Item 10: offsets too large for `--at` are usage errors naming the value (exit 2; 3 for
/// `check`), in
/// analyze, check and renew; a plain date is midnight UTC everywhere a time is taken.
#[test]
fn at_offsets_too_large_are_usage_errors_and_plain_dates_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(d.path(), &root, "1");
    let capture = crate::common::project_captures().join("sfdiag-ca-expired.pcap");
    let before = snapshot(&root);
    for at in ["+999999999d", "+99999999w", "+9999999y"] {
        for args in [
            vec!["analyze", "--at", at, s(&capture)],
            vec!["check", "--at", at, s(&root)],
            vec!["pki", "renew", "--root", s(&root), "--yes", "--at", at],
        ] {
            let o = run_in(d.path(), &args);
            // `check` is a monitoring plugin: its usage errors are UNKNOWN (3).
            let usage = if args[0] == "check" { 3 } else { 2 };
            assert_eq!(o.status.code(), Some(usage), "{args:?}: {}", text(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("--at") && err.contains(at) && err.contains("too large"),
                "{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    assert_eq!(snapshot(&root), before, "nothing changed");
    // A plain date: the check judges at that midnight.
    let o = run_in(d.path(), &["check", "--at", "2020-01-01", s(&root)]);
    assert!(text(&o).contains("not yet valid"), "{}", text(&o));
    let o = run_in(
        d.path(),
        &[
            "pki",
            "renew",
            "--root",
            s(&root),
            "--yes",
            "--not-before",
            "2030-01-01",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("2030-01-01T00:00:00Z .."), "{}", text(&o));
}

/// Item 11: under umask 000, nothing sfdiag creates is writable by others (keys 0600, key
/// folders 0700, the generation log 0644, the key log 0600), so the next renew, status and
/// check do not refuse the root.
#[test]
fn under_umask_000_every_file_gets_an_explicit_mode() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let o = run_umask000(
        d.path(),
        &["pki", "init", "--root", s(&root), "--devices", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run_umask000(d.path(), &["pki", "renew", "--root", s(&root), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let list = csv(d.path(), &["ftd1"]);
    let o = run_umask000(
        d.path(),
        &["pki", "copy", "--root", s(&root), "--devices", s(&list)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (pcap, keylog, log) = (
        d.path().join("c.pcap"),
        d.path().join("keys.log"),
        d.path().join("m.log"),
    );
    // Nothing listens on port 1: the files are made, the handshake fails.
    let o = run_umask000(
        d.path(),
        &[
            "connect",
            "127.0.0.1:1",
            "--root",
            s(&root),
            "--device",
            "ftd1",
            "--once",
            "--pcap",
            s(&pcap),
            "--keylog",
            s(&keylog),
            "--log",
            s(&log),
        ],
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let man = d.path().join("man");
    let o = run_umask000(d.path(), &["man", "--dir", s(&man)]);
    assert!(o.status.success(), "{}", text(&o));

    let mut checked = 0;
    for p in walk(&root)
        .into_iter()
        .chain(walk(&man))
        .chain([pcap, log.clone()])
    {
        let m = mode(&p);
        assert_eq!(m & 0o022, 0, "{} is {m:o}", p.display());
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("key.pem") {
            assert_eq!(m, 0o600, "{}", p.display());
            assert_eq!(mode(p.parent().unwrap()), 0o700, "{}", p.display());
        }
        checked += 1;
    }
    assert!(checked > 40, "{checked}");
    assert_eq!(mode(&keylog), 0o600);
    assert_eq!(mode(&log), 0o644);
    assert_eq!(
        mode(&root.join("fmc/var/log/sf/sfca_generation.log")),
        0o644
    );
    for args in [
        vec!["pki", "renew", "--root", s(&root), "--yes"],
        vec!["status", "--root", s(&root)],
    ] {
        let o = run_in(d.path(), &args);
        assert!(
            !text(&o).contains("writable by every user"),
            "{args:?}: {}",
            text(&o)
        );
    }
}
