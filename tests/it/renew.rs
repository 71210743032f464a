//! The renewal runbook on the command line: `pki renew` (refusals, staged files and backups,
//! FAILED_PUSH, pushes through a running `serve`), `pki copy`, and `validate --root` before and
//! after. Certificates are checked with the `openssl` command; sockets bind 127.0.0.1 port 0
//! and every wait has a deadline.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{have_openssl, sfdiag};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> Output {
    sfdiag()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sfdiag")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn init(root: &Path, extra: &[&str]) {
    let mut args = vec!["pki", "init", "--root", s(root)];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
}

/// Every file under `dir`, relative path -> bytes.
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl")
}

/// `openssl verify -CAfile ca cert` says OK (at unix time `at` when given).
pub(crate) fn verifies(ca: &Path, cert: &Path, at: Option<&str>) {
    let mut args = vec!["verify", "-CAfile", s(ca)];
    if let Some(t) = at {
        args.extend(["-attime", t]);
    }
    args.push(s(cert));
    let o = openssl(&args);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "openssl verify {}: {}",
        cert.display(),
        text(&o)
    );
}

fn failed_push_files(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("fmc/var/tmp/certs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.map(|e| e.unwrap().path().join("FAILED_PUSH")).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v
}

/// `ims.conf` value of `key` for appliance folder `name`.
pub(crate) fn ims(root: &Path, name: &str, key: &str) -> String {
    let t = std::fs::read_to_string(root.join(name).join("etc/sf/ims.conf")).unwrap();
    t.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap()
        .to_string()
}

#[test]
fn renew_refuses_during_a_critical_operation_and_without_confirmation() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(&root, &["--devices", "1"]);
    let before = snapshot(&root);

    let lock = root.join("fmc/var/tmp/critical_operation.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "policy deployment (task 42)\n").unwrap();
    let o = run(&["pki", "renew", "--root", s(&root), "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("policy deployment (task 42)"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("critical operation"), "{}", text(&o));
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(snapshot(&root), before, "a refused renewal changes nothing");

    // No --yes and stdin is not a terminal: refuse rather than guess.
    let o = run(&["pki", "renew", "--root", s(&root)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--yes"), "{}", text(&o));
    // The script's notice and question were shown, then the refusal.
    assert!(
        text(&o).contains("You are about to generate new certificates for FMC and devices."),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(&root), before);
}

#[test]
fn renew_without_serve_fails_every_push_and_copy_then_validate_recovers() {
    if !have_openssl() {
        eprintln!("skipped: no openssl");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    // The InternalCA expired ten days ago; the devices' own certificates are still valid.
    init(
        &root,
        &[
            "--devices",
            "2",
            "--not-before",
            "-3660d",
            "--days",
            "3650",
            "--peer-not-before",
            "-100d",
            "--peer-days",
            "3650",
        ],
    );
    let old_ca = std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem")).unwrap();
    let old_fmc_cert = std::fs::read(root.join("fmc/etc/sf/keys/sftunnel-cert.pem")).unwrap();
    let fmc_uuid = ims(&root, "fmc", "APPLIANCE_UUID");

    let o = run(&["validate", "--root", s(&root)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("err 10:certificate has expired"),
        "{}",
        text(&o)
    );

    let o = run(&["pki", "renew", "--root", s(&root), "--yes"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // generate_certs.pl's arithmetic: whole days, negative once the CA has ended.
    assert!(
        out.contains("Current ca_root expires in -10 days - at "),
        "{out}"
    );
    assert!(out.contains("sftunnel is not running on the FMC"), "{out}");
    assert!(
        out.contains("certificates pushed to 0 of 2 peer(s)"),
        "{out}"
    );
    assert!(
        out.contains(
            "Some files were failed to be pushed to remote peers. For more details check "
        ),
        "{out}"
    );

    // FAILED_PUSH: one line per file, FTD_UUID FTD_NAME FTD_IP SOURCE DEST, as the appliance
    // writes it (the CA from ca_root, `certs_pushed//`, cacert, key, cert).
    let fp = failed_push_files(&root);
    assert_eq!(fp.len(), 1, "{fp:?}");
    assert!(out.contains(s(&fp[0])), "{out}");
    let list = std::fs::read_to_string(&fp[0]).unwrap();
    let lines: Vec<Vec<&str>> = list.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 6, "{list}");
    for (i, dev) in ["ftd1", "ftd2"].iter().enumerate() {
        let uuid = ims(&root, dev, "APPLIANCE_UUID");
        let ip = ims(&root, dev, "APPLIANCE_IP");
        for (j, file) in ["cacert.pem", "sftunnel-key.pem", "sftunnel-cert.pem"]
            .iter()
            .enumerate()
        {
            let source = if j == 0 {
                "/etc/sf/ca_root/cacert.pem".to_string()
            } else {
                format!("/var/sf/peers/{uuid}/certs_pushed//{file}")
            };
            assert_eq!(
                lines[i * 3 + j],
                vec![
                    uuid.as_str(),
                    dev,
                    ip.as_str(),
                    &source,
                    &format!("/var/sf/peers/{fmc_uuid}/{file}"),
                ],
                "{list}"
            );
            // The source path exists on the FMC's side of the lab root.
            assert!(root.join("fmc").join(&source[1..]).is_file(), "{source}");
            // And the script said so, per file.
            assert!(
                out.lines()
                    .any(|l| l
                        == format!("Failed to push to {dev} = /var/sf/peers/{fmc_uuid}/{file}")),
                "{out}"
            );
        }
    }

    // Old files kept as *.backup; the new CA is v1, serial 0, same FMC UUID.
    let ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
    assert_eq!(
        std::fs::read(root.join("fmc/etc/sf/ca_root/cacert.pem.backup")).unwrap(),
        old_ca
    );
    assert_eq!(
        std::fs::read(root.join("fmc/etc/sf/keys/sftunnel-cert.pem.backup")).unwrap(),
        old_fmc_cert
    );
    assert!(root.join("fmc/etc/sf/ca_root/cakey.pem.backup").is_file());
    assert_ne!(std::fs::read(&ca).unwrap(), old_ca);
    let x = openssl(&[
        "x509",
        "-in",
        s(&ca),
        "-noout",
        "-text",
        "-nameopt",
        "RFC2253",
    ]);
    let xt = String::from_utf8_lossy(&x.stdout);
    assert!(xt.contains("Version: 1 (0x0)"), "{xt}");
    assert!(xt.contains("Serial Number: 0 (0x0)"), "{xt}");
    assert!(xt.contains(&format!("CN={fmc_uuid}")), "{xt}");
    let log = std::fs::read_to_string(root.join("fmc/var/log/sf/sfca_generation.log")).unwrap();
    assert!(
        log.contains("new InternalCA") && log.contains("not pushed"),
        "{log}"
    );

    // openssl accepts every renewed certificate against the new CA.
    verifies(&ca, &root.join("fmc/etc/sf/keys/sftunnel-cert.pem"), None);
    for dev in ["ftd1", "ftd2"] {
        let uuid = ims(&root, dev, "APPLIANCE_UUID");
        verifies(
            &ca,
            &root.join(format!(
                "fmc/var/sf/peers/{uuid}/certs_pushed/sftunnel-cert.pem"
            )),
            None,
        );
    }

    // The devices still hold the old files: validate still fails.
    let o = run(&["validate", "--root", s(&root)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    let csv = d.path().join("devices.csv");
    std::fs::write(
        &csv,
        format!(
            "# device_name,ipaddr,login,password\nfmc,{},admin,x\nftd1,{},admin,pw\nftd2,{},admin,pw,with,commas\nftd9,10.9.9.9,admin,pw\n",
            ims(&root, "fmc", "APPLIANCE_IP"),
            ims(&root, "ftd1", "APPLIANCE_IP"),
            ims(&root, "ftd2", "APPLIANCE_IP"),
        ),
    )
    .unwrap();
    let old_dev_key =
        std::fs::read(root.join(format!("ftd1/var/sf/peers/{fmc_uuid}/sftunnel-key.pem"))).unwrap();
    let o = run(&["pki", "copy", "--root", s(&root), "--devices", s(&csv)]);
    let out = text(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "one device cannot be reached: {out}"
    );
    // copy_sftunnel_certs.py's lines, each after its `YYYY-MM-DD HH:MM:SS - ` stamp.
    for l in [
        "fmc is not an HA-peer. Certificates will not be copied",
        "Attempting connection to ftd1",
        "Successfully copied certificates to ftd1",
        "Attempting connection to ftd2",
        "Successfully copied certificates to ftd2",
        "Attempting connection to ftd9",
        "Could not connect to ftd9",
    ] {
        assert!(
            out.lines()
                .any(|x| x.len() == 22 + l.len() && x.ends_with(&format!(" - {l}"))),
            "missing {l:?} in:\n{out}"
        );
    }
    assert!(
        !out.contains("pw,with"),
        "passwords are never printed: {out}"
    );
    for dev in ["ftd1", "ftd2"] {
        let uuid = ims(&root, dev, "APPLIANCE_UUID");
        let own = root.join(format!("{dev}/var/sf/peers/{fmc_uuid}"));
        for file in ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"] {
            assert_eq!(
                std::fs::read(own.join(file)).unwrap(),
                std::fs::read(root.join(format!("fmc/var/sf/peers/{uuid}/certs_pushed/{file}")))
                    .unwrap(),
                "{dev} {file}"
            );
            assert!(
                own.join(format!("{file}.backup")).is_file(),
                "{dev} {file}.backup"
            );
        }
        let mode = std::fs::metadata(own.join("sftunnel-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        verifies(
            &own.join("cacert.pem"),
            &own.join("sftunnel-cert.pem"),
            None,
        );
    }
    assert_eq!(
        std::fs::read(root.join(format!(
            "ftd1/var/sf/peers/{fmc_uuid}/sftunnel-key.pem.backup"
        )))
        .unwrap(),
        old_dev_key
    );

    let o = run(&["validate", "--root", s(&root)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// A child process whose output lines are collected as they come; killed on drop.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = sfdiag()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for r in [out, err] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        Proc { child, lines }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The first line matching `pred` after the first `skip` lines, waiting up to 30 s.
    fn wait_for(&self, skip: usize, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find(|l| pred(l))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "no expected line in 30 s:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn renew_pushes_to_connected_devices_through_serve_and_lists_the_rest() {
    if !have_openssl() {
        eprintln!("skipped: no openssl");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(&root, &["--devices", "2"]);
    let fmc_uuid = ims(&root, "fmc", "APPLIANCE_UUID");
    let pcap = d.path().join("serve.pcap");
    let serve = Proc::spawn(&[
        "serve",
        "--root",
        s(&root),
        "--listen",
        "127.0.0.1:0",
        "--heartbeat",
        "1",
        "--pcap",
        s(&pcap),
    ]);
    let listening = serve.wait_for(0, |l| l.contains("Listening on 127.0.0.1:"));
    let addr = listening.rsplit(' ').next().unwrap().to_string();
    serve.wait_for(0, |l| l.contains("Control socket at"));
    let ftd1 = Proc::spawn(&[
        "connect",
        &addr,
        "--root",
        s(&root),
        "--device",
        "ftd1",
        "--heartbeat",
        "1",
        "--retry-max",
        "1",
    ]);
    serve.wait_for(0, |l| {
        l.contains("Peer ftd1") && l.contains("connected from")
    });
    let seen = ftd1.count();

    let o = run(&["pki", "renew", "--root", s(&root), "--yes", "-v"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The script names only what failed; -v details follow sfdiag's summary line.
    assert!(
        out.lines()
            .any(|l| l == format!("Failed to push to ftd2 = /var/sf/peers/{fmc_uuid}/cacert.pem")),
        "{out}"
    );
    assert!(!out.contains("Failed to push to ftd1"), "{out}");
    assert!(
        out.contains("certificates pushed to 1 of 2 peer(s); not pushed: ftd2 (not connected)"),
        "{out}"
    );
    assert!(
        out.contains("sftunnel on the FMC loaded the new certificates"),
        "{out}"
    );
    assert!(out.contains("  pushed to ftd1"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  not pushed to ftd2") && l.ends_with("not connected")),
        "{out}"
    );

    // Only ftd2 is in FAILED_PUSH.
    let fp = failed_push_files(&root);
    let list = std::fs::read_to_string(&fp[0]).unwrap();
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(
        list.lines().all(|l| l.split(' ').nth(1) == Some("ftd2")),
        "{list}"
    );

    // ftd1 got its files, wrote them and came back with them.
    ftd1.wait_for(seen, |l| {
        l.contains("Restarting tunnel: new certificates from push")
    });
    ftd1.wait_for(seen, |l| l.contains("registered this device as ftd1"));
    let uuid1 = ims(&root, "ftd1", "APPLIANCE_UUID");
    let own = root.join(format!("ftd1/var/sf/peers/{fmc_uuid}"));
    for file in ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"] {
        assert_eq!(
            std::fs::read(own.join(file)).unwrap(),
            std::fs::read(root.join(format!("fmc/var/sf/peers/{uuid1}/certs_pushed/{file}")))
                .unwrap(),
            "{file}"
        );
    }
    verifies(
        &root.join("fmc/etc/sf/ca_root/cacert.pem"),
        &own.join("sftunnel-cert.pem"),
        None,
    );
    let st = run(&["status", "--root", s(&root), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let peers = v["peers"].as_array().unwrap();
    let p1 = peers.iter().find(|p| p["name"] == "ftd1").unwrap();
    assert_eq!(p1["connected"], true, "{v}");
    let p2 = peers.iter().find(|p| p["name"] == "ftd2").unwrap();
    assert_eq!(p2["connected"], false, "{v}");
    drop(ftd1);
    drop(serve);

    // The recording of serve's own traffic is a capture others can read.
    let o = run(&["analyze", "--format", "jsonl", s(&pcap)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "no problem in a clean renewal: {}",
        text(&o)
    );
    let sessions: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "session")
        .collect();
    // ftd1's two channels (control, events) before the push and after its restart.
    assert_eq!(sessions.len(), 4, "{sessions:?}");
    assert!(
        sessions
            .iter()
            .all(|v| v["outcome"] == "established" && v["client_cert"] == true)
    );
    if Command::new("tshark").arg("-v").output().is_ok() {
        let t = Command::new("tshark")
            .args([
                "-r",
                s(&pcap),
                "-Y",
                "tls.handshake.type == 11",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ])
            .output()
            .unwrap();
        assert!(t.status.success(), "{}", text(&t));
        // Four handshakes (both channels before and after the push), a Certificate message
        // from each side.
        assert_eq!(
            String::from_utf8_lossy(&t.stdout).lines().count(),
            8,
            "{}",
            text(&t)
        );
    }
}

/// The guard (audit finding 2) refuses a group-writable folder, and as root a folder owned by
/// another user, before anything changes, naming the entry and the fix.
#[test]
fn renew_refuses_a_group_writable_or_foreign_owned_folder_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(&root, &["--devices", "1"]);
    let before = snapshot(&root);
    let ca_root = root.join("fmc/etc/sf/ca_root");
    let set =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    // Writable by a group that is not the user's own (the user's own group passes: a umask
    // of 002 with user private groups). Giving a folder to another group needs root.
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(&ca_root, None, Some(100)).unwrap();
        set(&ca_root, 0o2775);
        let o = run(&["pki", "renew", "--root", s(&root), "--yes"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(&format!("{} is writable by its group", ca_root.display())));
        assert!(text(&o).contains("chmod g-w"), "{}", text(&o));
        set(&ca_root, 0o755);
        let egid = rustix::process::getegid().as_raw();
        std::os::unix::fs::chown(&ca_root, None, Some(egid)).unwrap();
        assert_eq!(snapshot(&root), before);
    }
    if rustix::process::geteuid().is_root() {
        let ftd1 = root.join("ftd1");
        std::os::unix::fs::chown(&ftd1, Some(65534), None).unwrap();
        let o = run(&["pki", "renew", "--root", s(&root), "--yes"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("is owned by uid 65534"), "{}", text(&o));
        assert!(text(&o).contains("chown 0"), "{}", text(&o));
        assert_eq!(snapshot(&root), before);
    }
}

/// Audit findings 11 (a hard-linked log) and 7 (FAILED_PUSH recoverable): the log that has a
/// second name is not appended to (its other name, outside the root, is left as it was), the
/// renewal stands and says what it could not write; FAILED_PUSH lists the unpushed peer.
#[test]
fn renew_does_not_append_to_a_hard_linked_log_and_lists_the_unpushed_peers() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    init(&root, &["--devices", "1"]);
    let log = root.join("fmc/var/log/sf/sfca_generation.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "earlier\n").unwrap();
    let outside = d.path().join("outside.log");
    std::fs::hard_link(&log, &outside).unwrap();
    let o = run(&["pki", "renew", "--root", s(&root), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("hard links"), "{}", text(&o));
    assert!(text(&o).contains("could not write"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "earlier\n");
    let fp = failed_push_files(&root);
    assert_eq!(fp.len(), 1, "{fp:?}");
    assert_eq!(std::fs::read_to_string(&fp[0]).unwrap().lines().count(), 3);
}
