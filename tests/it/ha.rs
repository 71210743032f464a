//! FMC high availability as the appliance has it: two InternalCAs (the primary's and the HA
//! secondary's), every device holding a set from each, the secondary holding a device-like set
//! from the primary; `--fmc NAME` picking which FMC serves, dials, renews and answers `status`;
//! and the two lab stories (case 1 `ha`, case 2 `ha-secondary`). Certificates are checked with
//! the `openssl` command; sockets bind 127.0.0.1 port 0 and every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfdiag::lab::{self, LabOptions, Out, Scenario};
use sfdiag::pki::layout::PkiRoot;

use crate::common::{have_openssl, sfdiag};
use crate::renew::{ims, snapshot, verifies};

const FMC: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
const FMC2: &str = "f1e2d3c4-4347-11ef-aca1-f3aa241412a1";

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

/// `pki init` of the primary `fmc`, ftd1, ftd2 and HA secondary FMC2 whose InternalCA is
/// its own: made in 2026, while the primary's runs from 2024.
fn ha_root(dir: &Path) -> PathBuf {
    let root = dir.join("lab");
    let o = run(&[
        "pki",
        "init",
        "--root",
        s(&root),
        "--fmc-uuid",
        FMC,
        "--devices",
        "2",
        "--ha-secondary",
        &format!("FMC2={FMC2}"),
        "--not-before",
        "2024-10-05T12:16:56Z",
        "--ha-not-before",
        "2026-05-12T09:00:00Z",
        "--ha-days",
        "3650",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    root
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `openssl verify -CAfile ca cert` refuses.
fn does_not_verify(ca: &Path, cert: &Path) {
    let o = Command::new("openssl")
        .args(["verify", "-CAfile", s(ca), s(cert)])
        .output()
        .expect("openssl");
    assert!(
        !o.status.success(),
        "{} verified against {}",
        s(cert),
        s(ca)
    );
}

#[test]
fn each_fmc_has_its_own_internal_ca_and_each_device_holds_a_set_from_both() {
    let d = tempfile::tempdir().unwrap();
    let root = ha_root(d.path());
    let primary_ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
    let fmc2_ca = root.join("FMC2/etc/sf/ca_root/cacert.pem");
    for k in [
        "FMC2/etc/sf/ca_root/cakey.pem",
        "FMC2/etc/sf/keys/sftunnel-key.pem",
    ] {
        assert!(root.join(k).is_file(), "{k}");
    }

    // The library's view: two FMCs, each with its peers; five tunnels in all.
    let r = PkiRoot::load(&root).unwrap();
    let names: Vec<&str> = r.fmcs().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["fmc", "FMC2"]);
    let primary_peers: Vec<&str> = r.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(primary_peers, ["ftd1", "ftd2", "FMC2"]);
    let fmc2 = r.as_fmc("FMC2").unwrap();
    let fmc2_peers: Vec<&str> = fmc2.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        fmc2_peers,
        ["ftd1", "ftd2"],
        "the primary is FMC2's manager"
    );
    assert_eq!(fmc2.fmc_files().ca, fmc2_ca);
    assert_eq!(r.links().len(), 5);
    assert!(r.as_fmc("ftd1").is_err(), "a device is not an FMC");

    // The secondary's sftunnel.conf: its own files, the devices, and the primary as an FMC;
    // the primary lists it as the HA secondary, not as a device.
    let conf = std::fs::read_to_string(root.join("FMC2/etc/sf/sftunnel.conf")).unwrap();
    assert!(
        conf.contains("proxy_ca /etc/sf/ca_root/cacert.pem;"),
        "{conf}"
    );
    assert!(
        conf.contains(&format!(
            "uuid {FMC};\n        name fmc;\n        ip 127.0.0.1;\n        role fmc;"
        )),
        "{conf}"
    );
    let conf = std::fs::read_to_string(root.join("fmc/etc/sf/sftunnel.conf")).unwrap();
    assert!(
        conf.contains(&format!(
            "uuid {FMC2};\n        name FMC2;\n        ip 127.0.0.2;\n        role ha-secondary;"
        )),
        "{conf}"
    );
    assert_eq!(ims(&root, "FMC2", "APPLIANCE_ROLE"), "ha-secondary");
    assert_eq!(ims(&root, "FMC2", "MANAGER_UUID"), FMC);

    if !have_openssl() {
        eprintln!("skipped the openssl half: no openssl");
        return;
    }
    // Two v1 InternalCAs, each with its own UUID in the CN and its own dates.
    for (ca, uuid, not_before) in [
        (&primary_ca, FMC, "Oct  5 12:16:56 2024 GMT"),
        (&fmc2_ca, FMC2, "May 12 09:00:00 2026 GMT"),
    ] {
        let t = openssl(&["x509", "-noout", "-text", "-in", s(ca)]);
        assert!(t.contains("Version: 1 (0x0)"), "{t}");
        let subject = openssl(&[
            "x509",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
            s(ca),
        ]);
        assert!(subject.contains(&format!("CN={uuid},")), "{subject}");
        assert!(subject.contains("title=InternalCA"), "{subject}");
        let dates = openssl(&["x509", "-noout", "-startdate", "-in", s(ca)]);
        assert_eq!(dates.trim(), format!("notBefore={not_before}"));
    }
    // Each FMC's own sftunnel certificate, signed by its own CA only.
    let fmc2_cert = root.join("FMC2/etc/sf/keys/sftunnel-cert.pem");
    verifies(&fmc2_ca, &fmc2_cert, None);
    does_not_verify(&primary_ca, &fmc2_cert);
    let subject = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        s(&fmc2_cert),
    ]);
    assert!(subject.contains(&format!("title={FMC2}")), "{subject}");

    // Every device holds both sets, each signed by its own FMC's CA, and each FMC kept a copy.
    for dev in ["ftd1", "ftd2"] {
        let uuid = ims(&root, dev, "APPLIANCE_UUID");
        for (fmc_dir, fmc_uuid, ca, other) in [
            ("fmc", FMC, &primary_ca, &fmc2_ca),
            ("FMC2", FMC2, &fmc2_ca, &primary_ca),
        ] {
            let own = root.join(format!("{dev}/var/sf/peers/{fmc_uuid}"));
            let cert = own.join("sftunnel-cert.pem");
            verifies(ca, &cert, None);
            does_not_verify(other, &cert);
            assert_eq!(
                std::fs::read(own.join("cacert.pem")).unwrap(),
                std::fs::read(ca).unwrap()
            );
            let pushed = root.join(format!("{fmc_dir}/var/sf/peers/{uuid}/certs_pushed"));
            for f in ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"] {
                assert_eq!(
                    std::fs::read(own.join(f)).unwrap(),
                    std::fs::read(pushed.join(f)).unwrap(),
                    "{dev} {fmc_dir} {f}"
                );
            }
        }
    }
    // The secondary's device-like set for its tunnel to the primary rests on the primary's CA.
    let to_primary = root.join(format!("FMC2/var/sf/peers/{FMC}"));
    verifies(&primary_ca, &to_primary.join("sftunnel-cert.pem"), None);
    assert_eq!(
        std::fs::read(to_primary.join("cacert.pem")).unwrap(),
        std::fs::read(&primary_ca).unwrap()
    );
    // FMC2's own InternalCA signs nothing for the primary.
    assert!(
        !root
            .join(format!("FMC2/var/sf/peers/{FMC}/certs_pushed"))
            .exists()
    );
    assert!(
        !root
            .join(format!("fmc/var/sf/peers/{FMC2}/cacert.pem"))
            .exists()
    );
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

    /// The first line matching `pred`, waiting up to 30 s.
    fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "no expected line in 30 s:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve --root ROOT [--fmc NAME]` on port 0: the process and its address.
fn serve(root: &Path, fmc: Option<&str>) -> (Proc, String) {
    let mut args = vec![
        "serve",
        "--root",
        s(root),
        "--listen",
        "127.0.0.1:0",
        "--heartbeat",
        "1",
    ];
    if let Some(f) = fmc {
        args.extend(["--fmc", f]);
    }
    let p = Proc::spawn(&args);
    let l = p.wait_for(|l| l.contains("Listening on 127.0.0.1:"));
    let addr = l.rsplit(' ').next().unwrap().to_string();
    p.wait_for(|l| l.contains("Control socket at"));
    (p, addr)
}

/// `status --root ROOT [--fmc NAME] --format json` until `names` are all connected (10 s).
fn wait_status(root: &Path, fmc: Option<&str>, names: &[&str]) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut args = vec!["status", "--root", s(root), "--format", "json"];
        if let Some(f) = fmc {
            args.extend(["--fmc", f]);
        }
        let o = run(&args);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let up = |n: &&str| {
            v["peers"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == *n && p["connected"] == true))
        };
        if o.status.success() && names.iter().all(up) {
            return v;
        }
        assert!(
            Instant::now() < end,
            "{fmc:?}: {names:?} not all connected: {}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_device_holds_tunnels_to_both_fmcs_at_once() {
    let d = tempfile::tempdir().unwrap();
    let root = ha_root(d.path());
    let (primary, p_addr) = serve(&root, None);
    let (secondary, s_addr) = serve(&root, Some("FMC2"));
    // Each FMC's control socket is its own.
    assert!(root.join("fmc/var/run/sftunnel.sock").exists());
    assert!(root.join("FMC2/var/run/sftunnel.sock").exists());

    // ftd1's sftunnel: one tunnel per FMC, each with that FMC's set; FMC2's to the primary.
    let dial = |addr: &str, dev: &str, fmc: Option<&str>| {
        let mut args = vec![
            "connect",
            addr,
            "--root",
            s(&root),
            "--device",
            dev,
            "--heartbeat",
            "1",
            "--retry-max",
            "1",
        ];
        if let Some(f) = fmc {
            args.extend(["--fmc", f]);
        }
        Proc::spawn(&args)
    };
    let _to_primary = dial(&p_addr, "ftd1", None);
    let _to_secondary = dial(&s_addr, "ftd1", Some("FMC2"));
    let _fmc2 = dial(&p_addr, "FMC2", None);

    let p = wait_status(&root, None, &["ftd1", "FMC2"]);
    let sec = wait_status(&root, Some("FMC2"), &["ftd1"]);
    assert_eq!(p["server"]["uuid"], FMC);
    assert_eq!(sec["server"]["uuid"], FMC2);
    // The secondary lists only the devices it manages; the primary the devices and FMC2.
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&p), ["ftd1", "ftd2", "FMC2"]);
    assert_eq!(names(&sec), ["ftd1", "ftd2"]);
    // Both servers saw ftd1 by the UUID in the certificate its own CA signed.
    let ftd1 = ims(&root, "ftd1", "APPLIANCE_UUID");
    primary.wait_for(|l| l.contains(&format!("Peer ftd1 ({ftd1}) connected from")));
    secondary.wait_for(|l| l.contains(&format!("Peer ftd1 ({ftd1}) connected from")));

    // A device that dials the secondary with the primary's set is refused: the two
    // InternalCAs are distinct (same shape, other key and CN).
    let o = run(&[
        "connect",
        &s_addr,
        "--root",
        s(&root),
        "--device",
        "ftd2",
        "--once",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&format!("CN={FMC2}")), "{}", text(&o));
    // --fmc names an FMC of the root.
    let o = run(&["status", "--root", s(&root), "--fmc", "ftd1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("ftd1 is not an FMC of"), "{}", text(&o));
}

/// Every file under `root/dir`, as (path, bytes).
fn tree(root: &Path, dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    snapshot(&root.join(dir))
}

/// The one FAILED_PUSH under `root/<fmc>/var/tmp/certs/`.
fn failed_push(root: &Path, fmc: &str) -> String {
    let dir = root.join(fmc).join("var/tmp/certs");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().join("FAILED_PUSH"))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read_to_string(&files[0]).unwrap()
}

#[test]
fn renew_on_the_primary_lists_devices_and_secondary_renew_on_the_secondary_only_devices() {
    let d = tempfile::tempdir().unwrap();
    let root = ha_root(d.path());
    let fmc2_before = tree(&root, "FMC2/etc");
    let fmc2_pushed_before = tree(
        &root,
        &format!("FMC2/var/sf/peers/{}", ims(&root, "ftd1", "APPLIANCE_UUID")),
    );

    // What each FMC's renewal is for, as its preflight reads the root.
    let at = time::OffsetDateTime::now_utc();
    let peers_of = |fmc: Option<&str>| -> Vec<String> {
        let pre = sfdiag::pki::renew::preflight_for(&root, fmc, at).unwrap();
        pre.root.peers.iter().map(|p| p.name.clone()).collect()
    };
    assert_eq!(peers_of(None), ["ftd1", "ftd2", "FMC2"]);
    assert_eq!(peers_of(Some("FMC2")), ["ftd1", "ftd2"]);

    // Case 1: the primary renews for ftd1, ftd2 and the secondary (no serve: all in FAILED_PUSH).
    let o = run(&["pki", "renew", "--root", s(&root), "--yes"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    for name in ["ftd1", "ftd2", "FMC2"] {
        assert!(
            // generate_certs.pl's line per file of every peer it renewed for (none is up).
            out.lines()
                .any(|l| l.starts_with(&format!("Failed to push to {name} = "))),
            "{name}: {out}"
        );
    }
    let list = failed_push(&root, "fmc");
    let peers: Vec<&str> = list.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        peers,
        [
            "ftd1", "ftd1", "ftd1", "ftd2", "ftd2", "ftd2", "FMC2", "FMC2", "FMC2"
        ]
    );
    // The secondary takes the primary's files in its device-like folder.
    assert!(
        list.lines()
            .all(|l| l.contains(&format!(" /var/sf/peers/{FMC}/"))),
        "{list}"
    );
    assert!(root.join("fmc/var/log/sf/sfca_generation.log").is_file());
    // Nothing of the secondary's own changed: its InternalCA, its keys, what it gave devices.
    assert_eq!(tree(&root, "FMC2/etc"), fmc2_before);
    let ftd1 = ims(&root, "ftd1", "APPLIANCE_UUID");
    assert_eq!(
        tree(&root, &format!("FMC2/var/sf/peers/{ftd1}")),
        fmc2_pushed_before
    );
    let fmc_after_case1 = tree(&root, "fmc");

    // Case 2: the secondary renews its own InternalCA, for the devices only.
    let o = run(&["pki", "renew", "--root", s(&root), "--fmc", "FMC2", "--yes"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        !out.lines()
            .any(|l| l.starts_with("Failed to push to FMC2 ")),
        "the secondary does not renew for itself: {out}"
    );
    let log = std::fs::read_to_string(root.join("FMC2/var/log/sf/sfca_generation.log")).unwrap();
    assert!(log.contains(&format!("new InternalCA CN={FMC2} ")), "{log}");
    let list = failed_push(&root, "FMC2");
    assert_eq!(list.lines().count(), 6, "{list}");
    assert!(
        list.lines()
            .all(|l| l.ends_with(".pem") && l.contains(&format!(" /var/sf/peers/{FMC2}/"))),
        "{list}"
    );
    assert!(root.join("FMC2/var/log/sf/sfca_generation.log").is_file());
    assert!(root.join("FMC2/etc/sf/ca_root/cacert.pem.backup").is_file());
    // The primary's folder is as case 1 left it: its CA, its log, its FAILED_PUSH.
    assert_eq!(tree(&root, "fmc"), fmc_after_case1);
    // The FMC-to-FMC set still rests on the primary's CA.
    assert!(
        !root
            .join(format!("FMC2/var/sf/peers/{FMC}/certs_pushed"))
            .exists()
    );

    if have_openssl() {
        let fmc2_ca = root.join("FMC2/etc/sf/ca_root/cacert.pem");
        let subject = openssl(&[
            "x509",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
            s(&fmc2_ca),
        ]);
        assert!(
            subject.contains(&format!("CN={FMC2},")),
            "same UUID: {subject}"
        );
        for dev in ["ftd1", "ftd2"] {
            let uuid = ims(&root, dev, "APPLIANCE_UUID");
            let pushed = root.join(format!(
                "FMC2/var/sf/peers/{uuid}/certs_pushed/sftunnel-cert.pem"
            ));
            verifies(&fmc2_ca, &pushed, None);
            does_not_verify(
                &fmc2_ca,
                &root.join(format!(
                    "fmc/var/sf/peers/{uuid}/certs_pushed/sftunnel-cert.pem"
                )),
            );
        }
        verifies(
            &fmc2_ca,
            &root.join("FMC2/etc/sf/keys/sftunnel-cert.pem"),
            None,
        );
    }
    let o = run(&["pki", "renew", "--root", s(&root), "--fmc", "nope", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("its FMCs: fmc, FMC2"), "{}", text(&o));
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `scenario` in-process with its root kept under `root`: the report and the transcript.
fn play(scenario: Scenario, root: &Path) -> (lab::LabReport, String) {
    let buf = Buf::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = LabOptions {
        root: Some(root.to_path_buf()),
        pcap: None,
        no_analysis: false,
        ..LabOptions::default()
    };
    let report = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(180),
                lab::run(scenario, &opts, Out::new(buf.clone())),
            )
            .await
        })
        .expect("the lab finishes in time")
        .unwrap_or_else(|e| {
            panic!(
                "lab failed: {e}\n{}",
                String::from_utf8_lossy(&buf.0.lock().unwrap())
            )
        });
    let t = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    // Release builds play each story in under 2 s (key generation is most of it).
    if !cfg!(debug_assertions) {
        assert!(
            report.elapsed < Duration::from_secs(2),
            "{:?}",
            report.elapsed
        );
    }
    (report, t)
}

fn connected(r: &lab::LabReport, title: &str, name: &str) -> bool {
    let st = r
        .steps
        .iter()
        .find(|s| s.title == title)
        .unwrap_or_else(|| panic!("no step {title:?} in {:?}", r.steps));
    st.peers
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} in {title}"))
        .connected
}

/// Log lines of `host` (`Mon DD HH:MM:SS HOST SF-IMS[...]`).
fn lines_of<'a>(t: &'a str, host: &str) -> Vec<&'a str> {
    t.lines()
        .filter(|l| {
            l.get(16..)
                .is_some_and(|r| r.starts_with(&format!("{host} SF-IMS[")))
        })
        .collect()
}

#[test]
fn lab_ha_case_1_the_primary_expires_role_switch_renew_and_copy() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let (r, t) = play(Scenario::Ha, &root);

    // ftd2 and FMC2 reject the primary's expired CA at depth 1.
    for host in ["ftd2", "FMC2"] {
        let l = lines_of(&t, host);
        let i = l
            .iter()
            .position(|l| l.ends_with("[ERROR] err 10:certificate has expired"))
            .unwrap_or_else(|| panic!("{host}: {t}"));
        assert!(
            l[i - 2].contains(&format!(
                "issuer = /title=InternalCA/OU=Intrusion Management System/CN={FMC}/"
            )),
            "{}",
            l[i - 2]
        );
    }
    // The role switch: FMC2 still manages both devices while the primary cannot.
    assert!(
        !connected(&r, "ftd2 and FMC2 down", "ftd2")
            && !connected(&r, "ftd2 and FMC2 down", "FMC2")
    );
    assert!(connected(&r, "FMC2 active", "ftd1") && connected(&r, "FMC2 active", "ftd2"));
    assert!(t.contains("Switch Peer Roles"), "{t}");
    // Renewal on the primary: pushed to ftd1; ftd2 and the secondary are in its FAILED_PUSH.
    assert_eq!(r.failed_push.len(), 1);
    let (fp, list) = &r.failed_push[0];
    assert!(
        fp.starts_with(root.join("fmc/var/tmp/certs")),
        "{}",
        fp.display()
    );
    let peers: Vec<&str> = list.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(peers, ["ftd2", "ftd2", "ftd2", "FMC2", "FMC2", "FMC2"]);
    // copy_sftunnel_certs.py's row for the FMC listed first.
    assert!(
        t.contains(" - fmc is not an HA-peer. Certificates will not be copied"),
        "{t}"
    );
    for l in [
        "Successfully copied certificates to ftd2",
        "Successfully copied certificates to FMC2",
    ] {
        assert!(
            t.lines().any(|x| x.ends_with(&format!(" - {l}"))),
            "missing {l:?}"
        );
    }
    for who in ["ftd1", "ftd2", "FMC2"] {
        assert!(connected(&r, "all connected", who), "{who}");
    }
    for who in ["ftd1", "ftd2"] {
        assert!(connected(&r, "FMC2 all connected", who), "{who}");
    }
    // The secondary's own InternalCA was never replaced; the primary's was.
    assert!(!root.join("FMC2/etc/sf/ca_root/cacert.pem.backup").exists());
    assert!(root.join("fmc/etc/sf/ca_root/cacert.pem.backup").is_file());
    let validated = t.rsplit("$ sfdiag validate").next().unwrap();
    assert_eq!(validated.matches(": ok, TLSv1.2").count(), 5, "{t}");
    assert!(validated.contains("ftd2 -> FMC2 ("), "{t}");
    if have_openssl() {
        let at = r.steps.last().unwrap().at.clone();
        let at = time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
            .to_string();
        let primary_ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
        for who in ["ftd1", "ftd2", "FMC2"] {
            verifies(
                &primary_ca,
                &root.join(format!("{who}/var/sf/peers/{FMC}/sftunnel-cert.pem")),
                Some(&at),
            );
        }
        let fmc2_ca = root.join("FMC2/etc/sf/ca_root/cacert.pem");
        for who in ["ftd1", "ftd2"] {
            verifies(
                &fmc2_ca,
                &root.join(format!("{who}/var/sf/peers/{FMC2}/sftunnel-cert.pem")),
                Some(&at),
            );
        }
    }
    // The capture of both FMCs' sides, analyzed: the failed reconnects are in it.
    assert!(r.analysis_problems.unwrap() >= 1);
    assert!(
        t.contains("received fatal alert 45 certificate_expired"),
        "{t}"
    );
}

#[test]
fn lab_ha_secondary_case_2_through_the_binary_renew_and_copy_on_the_secondary() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let o = run(&["lab", "ha-secondary", "--root", s(&root)]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");

    // ftd2 rejects FMC2's expired CA; the primary keeps it.
    let l = lines_of(&t, "ftd2");
    let i = l
        .iter()
        .position(|l| l.ends_with("[ERROR] err 10:certificate has expired"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(l[i - 2].contains(&format!("/CN={FMC2}/")), "{}", l[i - 2]);
    assert!(
        t.contains(&format!(
            "sfdiag pki renew --root {} --fmc FMC2 --yes",
            s(&root)
        )),
        "{t}"
    );
    // Only the secondary renewed, only for the devices; its FAILED_PUSH is its own.
    assert!(!root.join("fmc/var/tmp/certs").exists());
    assert!(!root.join("fmc/etc/sf/ca_root/cacert.pem.backup").exists());
    assert!(root.join("FMC2/etc/sf/ca_root/cacert.pem.backup").is_file());
    let list = failed_push(&root, "FMC2");
    let ftd2 = ims(&root, "ftd2", "APPLIANCE_UUID");
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(
        list.lines().all(|l| l.starts_with(&format!("{ftd2} ftd2 "))
            && l.contains(&format!(" /var/sf/peers/{FMC2}/"))),
        "{list}"
    );
    assert!(
        t.lines()
            .any(|l| l.ends_with(" - FMC2 is not an HA-peer. Certificates will not be copied")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.ends_with(" - Successfully copied certificates to ftd2")),
        "{t}"
    );
    let validated = t.rsplit("$ sfdiag validate").next().unwrap();
    assert_eq!(validated.matches(": ok, TLSv1.2").count(), 5, "{t}");
    if have_openssl() {
        let ca = root.join("FMC2/etc/sf/ca_root/cacert.pem");
        verifies(
            &ca,
            &root.join(format!("ftd2/var/sf/peers/{FMC2}/sftunnel-cert.pem")),
            Some("2043578816"),
        );
        assert!(
            root.join(format!("ftd2/var/sf/peers/{FMC2}/sftunnel-cert.pem.backup"))
                .is_file()
        );
    }
    // The capture was analyzed: the failed reconnect to FMC2 is in it.
    assert!(t.contains("err 10:certificate has expired (depth 1"), "{t}");
    let pcap = root.join("lab.pcap");
    let o = run(&["analyze", "--format", "jsonl", s(&pcap)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.contains("\"type\":\"alert\"") && l.contains("\"code\":45"))
    );
}
