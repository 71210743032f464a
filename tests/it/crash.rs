//! Crash safety of the commands that change a root (issue "Nothing lost, no one in", data
//! items 1-4): `pki renew` and `pki copy` killed with SIGKILL before each of their
//! file-system steps in turn, then run again; two renewals of one root at once; a disk that
//! fills at any step.
//!
//! The kill is the binary's own hidden, test-only `--fault-after N`: a real SIGKILL of the
//! real process (no destructor, no cleanup, like `kill -9` or a power cut as far as the
//! process is concerned), at an exact step, with no ptrace: `strace -e inject=...:signal=KILL`
//! would also do, but it needs ptrace rights CI containers often lack, and it only sees
//! syscalls by name (`rename` vs `renameat2`, `link` vs `linkat`), where the hook sees every
//! step of the transaction. The steps are counted from a `-vv` run of the same change, so the
//! sweep covers all of them, whatever their number. Every set is checked with `openssl`.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{have_openssl, sfdiag};
use crate::renew::{ims, verifies};

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

/// Runs sfdiag in `cwd` (a killed process must not leave anything in the source tree).
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    sfdiag()
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run sfdiag")
}

fn init(root: &Path, devices: &str) {
    let o = run_in(
        root.parent().unwrap(),
        &["pki", "init", "--root", s(root), "--devices", devices],
    );
    assert!(o.status.success(), "{}", text(&o));
}

/// A copy of the tree at `from` (modes kept), as `cp -a` would make it.
fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
    let mode = std::fs::metadata(from).unwrap().permissions().mode();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The kinds of file-system step a change makes, in order, from its `-vv` log.
fn steps(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains("file-system step"))
        .map(|l| {
            l.split("kind=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

fn killed(o: &Output) -> bool {
    o.status.signal() == Some(9)
}

/// Staging folders, temporary files and journals anywhere under `root`.
fn leftovers(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if n.starts_with(".sfdiag-") || n.ends_with(".journal") {
                v.push(p.clone());
            }
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    v
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl").args(args).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `cert` verifies under `ca` and `key` is its key (same public key, by openssl).
fn set_ok(ca: &Path, cert: &Path, key: &Path) {
    verifies(ca, cert, None);
    let of_cert = openssl(&["x509", "-noout", "-pubkey", "-in", s(cert)]);
    let of_key = openssl(&["pkey", "-pubout", "-in", s(key)]);
    assert_eq!(
        of_cert,
        of_key,
        "{} is not the key of {}",
        key.display(),
        cert.display()
    );
}

/// Each of the root's sets: the InternalCA and its key, the FMC's, the FMC's copy for each
/// device, and each device's own.
fn every_set_verifies(root: &Path, devices: &[&str]) {
    let fmc = root.join("fmc/etc/sf");
    let ca = fmc.join("ca_root/cacert.pem");
    let of_ca = openssl(&["x509", "-noout", "-pubkey", "-in", s(&ca)]);
    let of_cakey = openssl(&["pkey", "-pubout", "-in", s(&fmc.join("ca_root/cakey.pem"))]);
    assert_eq!(of_ca, of_cakey, "the InternalCA and its key");
    set_ok(
        &ca,
        &fmc.join("keys/sftunnel-cert.pem"),
        &fmc.join("keys/sftunnel-key.pem"),
    );
    let fmc_uuid = ims(root, "fmc", "APPLIANCE_UUID");
    for dev in devices {
        let uuid = ims(root, dev, "APPLIANCE_UUID");
        let pushed = root.join(format!("fmc/var/sf/peers/{uuid}/certs_pushed"));
        let own = root.join(format!("{dev}/var/sf/peers/{fmc_uuid}"));
        set_ok(
            &ca,
            &pushed.join("sftunnel-cert.pem"),
            &pushed.join("sftunnel-key.pem"),
        );
        verifies(
            &pushed.join("cacert.pem"),
            &pushed.join("sftunnel-cert.pem"),
            None,
        );
        set_ok(
            &own.join("cacert.pem"),
            &own.join("sftunnel-cert.pem"),
            &own.join("sftunnel-key.pem"),
        );
    }
}

/// Runs `body(n)` for n in 0..count on up to four threads (each n has its own root).
fn sweep(count: usize, body: impl Fn(usize) + Sync) {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|sc| {
        for t in 0..threads {
            let body = &body;
            sc.spawn(move || {
                for n in (t..count).step_by(threads) {
                    body(n);
                }
            });
        }
    });
}

fn devices_csv(dir: &Path, lines: &[&str]) -> PathBuf {
    let csv = dir.join("devices.csv");
    let mut t = String::from("# device_name,ipaddr,login,password\n");
    for l in lines {
        t += &format!("{l},0.0.0.0,admin,pw\n");
    }
    std::fs::write(&csv, t).unwrap();
    csv
}

/// `pki renew` killed before each of its steps in turn; the next run (`pki copy` here: any
/// command that changes the root first finishes or undoes what a dead run left) leaves every
/// set verifying, the originals kept, and nothing staged.
#[test]
fn renew_killed_at_every_step_leaves_old_or_new_and_the_next_run_completes_it() {
    assert!(
        have_openssl(),
        "this test cross-checks with openssl (.ci/run installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let template = d.path().join("template");
    init(&template, "1");
    let csv = devices_csv(d.path(), &["ftd1"]);
    let original = std::fs::read(template.join("fmc/etc/sf/ca_root/cacert.pem")).unwrap();

    let probe = d.path().join("probe");
    copy_tree(&template, &probe);
    let o = run_in(
        d.path(),
        &["-vv", "pki", "renew", "--root", s(&probe), "--yes"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let kinds = steps(&o);
    assert!(
        kinds.iter().filter(|k| *k == "rename").count() >= 8,
        "{kinds:?}"
    );

    let outcomes = std::sync::Mutex::new(Vec::new());
    sweep(kinds.len() + 1, |n| {
        let root = d.path().join(format!("r{n}"));
        copy_tree(&template, &root);
        let n_s = n.to_string();
        let o = run_in(
            d.path(),
            &[
                "pki",
                "renew",
                "--root",
                s(&root),
                "--yes",
                "--fault-after",
                &n_s,
            ],
        );
        if n == kinds.len() {
            assert_eq!(
                o.status.code(),
                Some(1),
                "no step left to kill: {}",
                text(&o)
            );
        } else {
            assert!(killed(&o), "step {n} ({}): {}", kinds[n], text(&o));
        }
        let next = run_in(
            d.path(),
            &["pki", "copy", "--root", s(&root), "--devices", s(&csv)],
        );
        assert_eq!(
            next.status.code(),
            Some(0),
            "after a kill at step {n}: {}",
            text(&next)
        );
        every_set_verifies(&root, &["ftd1"]);
        let ca = std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem")).unwrap();
        let renewed = ca != original;
        if renewed {
            assert_eq!(
                std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem.backup")).unwrap(),
                original,
                "step {n}: the original InternalCA is kept"
            );
        }
        assert!(
            leftovers(&root).is_empty(),
            "step {n}: {:?}",
            leftovers(&root)
        );
        outcomes.lock().unwrap().push((n, renewed));
        std::fs::remove_dir_all(&root).unwrap();
    });
    let outcomes = outcomes.into_inner().unwrap();
    let commit = kinds.iter().filter(|k| *k == "journal").count();
    assert_eq!(commit, 2, "prepare and commit: {kinds:?}");
    // Killed before the commit journal is written: undone; after it: finished.
    let commit_at = kinds.iter().rposition(|k| k == "journal").unwrap();
    for (n, renewed) in outcomes {
        assert_eq!(renewed, n > commit_at, "step {n} of {kinds:?}");
    }
}

/// A renewal killed in the middle of its renames, then `pki renew` again: the second run
/// says it finished the first, renews once more, and every generation is kept in order.
#[test]
fn renew_after_a_killed_renew_finishes_it_and_keeps_every_generation() {
    assert!(
        have_openssl(),
        "this test cross-checks with openssl (.ci/run installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(&root, "1");
    let ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
    let original = std::fs::read(&ca).unwrap();
    // 1 journal + 3 staging folders + 8 staged files + the commit + 3 backups and renames.
    let o = run_in(
        d.path(),
        &[
            "pki",
            "renew",
            "--root",
            s(&root),
            "--yes",
            "--fault-after",
            "19",
        ],
    );
    assert!(killed(&o), "{}", text(&o));
    assert!(
        root.join(".sfdiag-journal").is_file(),
        "a committed journal is left"
    );
    // Readers do not take a half-renewed root for a whole one.
    let o = run_in(d.path(), &["status", "--root", s(&root)]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("in the middle of a change"),
        "{}",
        text(&o)
    );
    let o = run_in(d.path(), &["pki", "renew", "--root", s(&root), "--yes"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("Finished an interrupted renewal"), "{out}");
    every_set_verifies(&root, &[]);
    let first = std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem.backup.1")).unwrap();
    assert_eq!(
        std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem.backup")).unwrap(),
        original
    );
    assert_ne!(first, original);
    assert_ne!(std::fs::read(&ca).unwrap(), first);
    let log = std::fs::read_to_string(root.join("fmc/var/log/sf/sfca_generation.log")).unwrap();
    assert!(log.contains("finished an interrupted renewal"), "{log}");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
}

/// `pki copy` killed before each of its steps in turn, with ftd1 listed twice: no device ever
/// holds a mix of old and new files (on disk a set is whole, or its journal is there for the
/// next run), and after the next copy each device's set verifies, its originals are its
/// `.backup` files, and the second listing made no second backup.
#[test]
fn copy_killed_at_every_step_never_mixes_a_set_and_keeps_the_originals() {
    assert!(
        have_openssl(),
        "this test cross-checks with openssl (.ci/run installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let template = d.path().join("template");
    init(&template, "2");
    let fmc_uuid = ims(&template, "fmc", "APPLIANCE_UUID");
    let own = |root: &Path, dev: &str| root.join(format!("{dev}/var/sf/peers/{fmc_uuid}"));
    let files = ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"];
    let originals: Vec<Vec<Vec<u8>>> = ["ftd1", "ftd2"]
        .iter()
        .map(|dev| {
            files
                .iter()
                .map(|f| std::fs::read(own(&template, dev).join(f)).unwrap())
                .collect()
        })
        .collect();
    // A renewal nobody could push: certs_pushed differs from what the devices hold.
    let o = run_in(d.path(), &["pki", "renew", "--root", s(&template), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let csv = devices_csv(d.path(), &["ftd1", "ftd2", "ftd1"]);

    let probe = d.path().join("probe");
    copy_tree(&template, &probe);
    let o = run_in(
        d.path(),
        &[
            "-vv",
            "pki",
            "copy",
            "--root",
            s(&probe),
            "--devices",
            s(&csv),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let kinds = steps(&o);
    assert_eq!(
        kinds.iter().filter(|k| *k == "rename").count(),
        6,
        "{kinds:?}"
    );

    sweep(kinds.len() + 1, |n| {
        let root = d.path().join(format!("c{n}"));
        copy_tree(&template, &root);
        let n_s = n.to_string();
        let o = run_in(
            d.path(),
            &[
                "pki",
                "copy",
                "--root",
                s(&root),
                "--devices",
                s(&csv),
                "--fault-after",
                &n_s,
            ],
        );
        if n == kinds.len() {
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        } else {
            assert!(killed(&o), "step {n} ({}): {}", kinds[n], text(&o));
        }
        for (i, dev) in ["ftd1", "ftd2"].iter().enumerate() {
            let dir = own(&root, dev);
            let now: Vec<Vec<u8>> = files
                .iter()
                .map(|f| std::fs::read(dir.join(f)).unwrap())
                .collect();
            let pending = dir.join(".sftunnel-push.journal").exists();
            let all_old = now == originals[i];
            let uuid = ims(&root, dev, "APPLIANCE_UUID");
            let pushed = root.join(format!("fmc/var/sf/peers/{uuid}/certs_pushed"));
            let all_new = files
                .iter()
                .zip(&now)
                .all(|(f, b)| std::fs::read(pushed.join(f)).unwrap() == *b);
            assert!(
                all_old || all_new || pending,
                "step {n}: {dev} holds a mix with no journal"
            );
        }
        let next = run_in(
            d.path(),
            &["pki", "copy", "--root", s(&root), "--devices", s(&csv)],
        );
        assert_eq!(
            next.status.code(),
            Some(0),
            "after a kill at step {n}: {}",
            text(&next)
        );
        every_set_verifies(&root, &["ftd1", "ftd2"]);
        for (i, dev) in ["ftd1", "ftd2"].iter().enumerate() {
            let dir = own(&root, dev);
            for (j, f) in files.iter().enumerate() {
                assert_eq!(
                    std::fs::read(dir.join(format!("{f}.backup"))).unwrap(),
                    originals[i][j],
                    "step {n}: {dev}'s original {f}"
                );
                assert!(
                    !dir.join(format!("{f}.backup.1")).exists(),
                    "step {n}: {dev} {f}"
                );
            }
        }
        assert!(
            leftovers(&root).is_empty(),
            "step {n}: {:?}",
            leftovers(&root)
        );
        std::fs::remove_dir_all(&root).unwrap();
    });
}

/// A root another run holds is refused at once by renew, copy and init (exit 2, nothing
/// changed); two renewals started together never both go ahead on the same files: the
/// original InternalCA is always kept and the final set verifies.
#[test]
fn two_changes_of_one_root_at_once_never_both_proceed() {
    assert!(
        have_openssl(),
        "this test cross-checks with openssl (.ci/run installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(&root, "1");
    let csv = devices_csv(d.path(), &["ftd1"]);
    let before = crate::renew::snapshot(&root);
    {
        let _held = sfdiag::pki::fsio::RootLock::acquire(&root).unwrap();
        for args in [
            vec!["pki", "renew", "--root", s(&root), "--yes"],
            vec!["pki", "copy", "--root", s(&root), "--devices", s(&csv)],
            vec!["pki", "init", "--root", s(&root), "--force"],
        ] {
            let o = run_in(d.path(), &args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
            assert!(
                text(&o).contains("another sfdiag run is changing"),
                "{}",
                text(&o)
            );
        }
        assert_eq!(crate::renew::snapshot(&root), before, "nothing changed");
    }
    let original = std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem")).unwrap();
    let mut refused = 0;
    for _ in 0..3 {
        let spawn = || {
            sfdiag()
                .args(["pki", "renew", "--root", s(&root), "--yes"])
                .current_dir(d.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for o in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
            match o.status.code() {
                Some(1) => {}
                Some(2) => {
                    assert!(
                        text(&o).contains("another sfdiag run is changing"),
                        "{}",
                        text(&o)
                    );
                    refused += 1;
                }
                _ => panic!("{}", text(&o)),
            }
        }
        assert_eq!(
            std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem.backup")).unwrap(),
            original
        );
        every_set_verifies(&root, &[]);
    }
    assert!(
        refused > 0,
        "two renewals started together: one must have been refused"
    );
}

/// A disk that fills at step N, for every N: exit 2 ("refused: nothing changed") exactly when
/// nothing changed; after the commit the run says what it could not record (exit 1), and a
/// renewal that could not finish is finished by the next run.
#[test]
fn a_disk_full_at_any_step_gives_an_exit_code_that_tells_the_truth() {
    assert!(
        have_openssl(),
        "this test cross-checks with openssl (.ci/run installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let template = d.path().join("template");
    init(&template, "1");
    let csv = devices_csv(d.path(), &["ftd1"]);
    let before = crate::renew::snapshot(&template);
    let probe = d.path().join("probe");
    copy_tree(&template, &probe);
    let kinds = steps(&run_in(
        d.path(),
        &["-vv", "pki", "renew", "--root", s(&probe), "--yes"],
    ));
    let commit_at = kinds.iter().rposition(|k| k == "journal").unwrap();
    let first_write = kinds.iter().position(|k| k == "write").unwrap();
    // Before the commit, at it, in the renames, and every write after the transaction.
    let mut picks = vec![0, commit_at - 1, commit_at, commit_at + 1, commit_at + 6];
    picks.extend(first_write..kinds.len());
    sweep(picks.len(), |i| {
        let n = picks[i];
        let root = d.path().join(format!("f{n}"));
        copy_tree(&template, &root);
        let n_s = n.to_string();
        let o = run_in(
            d.path(),
            &[
                "pki",
                "renew",
                "--root",
                s(&root),
                "--yes",
                "--fault-after",
                &n_s,
                "--fault-kind",
                "enospc",
            ],
        );
        let out = text(&o);
        assert!(out.contains("No space left on device"), "step {n}: {out}");
        if n <= commit_at {
            assert_eq!(o.status.code(), Some(2), "step {n}: {out}");
            assert!(
                crate::renew::snapshot(&root) == before,
                "step {n}: refused, yet changed"
            );
        } else if n < first_write {
            assert_eq!(o.status.code(), Some(1), "step {n}: {out}");
            assert!(
                out.contains("the next sfdiag run on this root finishes it"),
                "{out}"
            );
        } else {
            assert_eq!(o.status.code(), Some(1), "step {n}: {out}");
            assert!(out.contains("could not write"), "step {n}: {out}");
            assert!(out.contains("what it would have held"), "step {n}: {out}");
        }
        let next = run_in(
            d.path(),
            &["pki", "copy", "--root", s(&root), "--devices", s(&csv)],
        );
        assert_eq!(
            next.status.code(),
            Some(0),
            "after a full disk at step {n}: {}",
            text(&next)
        );
        every_set_verifies(&root, &["ftd1"]);
        assert!(
            leftovers(&root).is_empty(),
            "step {n}: {:?}",
            leftovers(&root)
        );
        std::fs::remove_dir_all(&root).unwrap();
    });
}

/// Audit #5: `check` and `inventory` on a root a killed renewal left after its commit point
/// say so (kind `interrupted`, naming the journal and what finishes it) instead of reporting
/// the half-renewed files' chains as broken.
#[test]
fn check_and_inventory_name_a_change_a_kill_left_half_made() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(&root, "1");
    // As in the test above: killed at the second of its renames.
    let o = run_in(
        d.path(),
        &[
            "pki",
            "renew",
            "--root",
            s(&root),
            "--yes",
            "--fault-after",
            "19",
        ],
    );
    assert!(killed(&o), "{}", text(&o));
    let journal = root.join(".sfdiag-journal");
    assert!(journal.is_file(), "a committed journal is left");
    let o = run_in(d.path(), &["check", s(&root)]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.starts_with("CRITICAL: interrupted: "), "{out}");
    assert!(out.contains(s(&journal)), "{out}");
    assert!(
        out.contains("sfdiag pki renew") && out.contains("pki copy"),
        "{out}"
    );
    assert!(!out.contains("err 7"), "the mix is not judged: {out}");
    let o = run_in(d.path(), &["inventory", "--format", "json", s(&root)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ftd1 = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "ftd1")
        .unwrap()
        .clone();
    assert_eq!(ftd1["action"], "copy", "{ftd1}");
    assert_eq!(
        ftd1["problems"],
        serde_json::json!(["interrupted"]),
        "{ftd1}"
    );
    // The FMC's own row says the renewal is to be finished, not "none".
    let fmc = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["role"] == "fmc")
        .unwrap()
        .clone();
    assert_eq!(fmc["action"], "renew", "{fmc}");
    assert!(
        fmc["reason"].as_str().unwrap_or("").contains("interrupted"),
        "{fmc}"
    );
    // Reading changed nothing: the journal is left for the next change to finish.
    assert!(journal.is_file());
}
