//! The live tunnel against real OpenSSL peers and against itself: `serve`, `connect`,
//! `validate`, `status`, pushes over the control socket. Certificates come from stock openssl
//! (`certs/openssl-pki.sh`) and from our own `pki init`. Everything binds 127.0.0.1 port 0 and every
//! wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{have_openssl, sfdiag};

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A child process whose stdout and stderr lines are collected as they come.
pub(crate) struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    what: String,
}

impl Proc {
    pub(crate) fn spawn(cmd: &mut Command) -> Proc {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for r in [out, err] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines() {
                    match l {
                        Ok(l) => lines.lock().unwrap().push(l),
                        Err(_) => break,
                    }
                }
            });
        }
        Proc {
            stdin: child.stdin.take(),
            child,
            lines,
            what,
        }
    }

    pub(crate) fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The first line matching `pred`, waiting up to `secs`.
    pub(crate) fn wait_for(&self, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < end,
                "{}: no expected line in {secs}s; output:\n{}",
                self.what,
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return st;
            }
            assert!(
                Instant::now() < end,
                "{}: still running after {secs}s; output:\n{}",
                self.what,
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes stdin (s_client then says goodbye, s_server stops).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin.take();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion like `Command::output`, but kills it and fails after `secs`.
pub(crate) fn run(cmd: &mut Command, secs: u64) -> std::process::Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let end = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {secs}s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs a control-socket conversation with a deadline.
fn block<T>(rt: &tokio::runtime::Runtime, f: impl std::future::Future<Output = T>) -> T {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), f).await })
        .expect("control socket conversation timed out")
}

/// One side's three files.
#[derive(Clone, Debug)]
pub(crate) struct Side {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Side {
    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            "--ca".into(),
            s(&self.ca).into(),
            "--cert".into(),
            s(&self.cert).into(),
            "--key".into(),
            s(&self.key).into(),
        ]
    }
}

pub(crate) struct Pki {
    pub(crate) fmc: Side,
    pub(crate) ftd: Side,
}

pub(crate) fn need_openssl() {
    assert!(
        have_openssl(),
        "these tests talk to openssl s_server/s_client (.ci/run installs it)"
    );
}

/// A PKI made by stock openssl (`certs/openssl-pki.sh`), with the CA valid START..END if given.
pub(crate) fn openssl_pki(dir: &Path, ca_window: Option<(&str, &str)>) -> Pki {
    need_openssl();
    crate::common::openssl_pki(dir, ca_window);
    let side = |n: &str| Side {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{n}.pem")),
        key: dir.join(format!("{n}.key")),
    };
    Pki {
        fmc: side("fmc"),
        ftd: side("ftd"),
    }
}

/// A PKI made by `sfdiag pki init` under `root` (devices ftd1..ftdN, unless `extra` names them).
pub(crate) fn our_pki(root: &Path, devices: u32, extra: &[&str]) -> Pki {
    let mut cmd = sfdiag();
    cmd.args(["pki", "init", "--root", s(root)]);
    if !extra.contains(&"--device") {
        cmd.args(["--devices", &devices.to_string()]);
    }
    let out = run(cmd.args(extra), 120);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fmc = root.join("fmc/etc/sf");
    let peers = root.join("ftd1/var/sf/peers");
    let fmc_uuid = std::fs::read_dir(&peers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let d = peers.join(fmc_uuid);
    Pki {
        fmc: Side {
            ca: fmc.join("ca_root/cacert.pem"),
            cert: fmc.join("keys/sftunnel-cert.pem"),
            key: fmc.join("keys/sftunnel-key.pem"),
        },
        ftd: Side {
            ca: d.join("cacert.pem"),
            cert: d.join("sftunnel-cert.pem"),
            key: d.join("sftunnel-key.pem"),
        },
    }
}

pub(crate) const EXPIRED_CA: (&str, &str) = ("20140601000000Z", "20240601000000Z");
pub(crate) const FUTURE_CA: (&str, &str) = ("20400101000000Z", "20500101000000Z");
/// `pki init` flags for an InternalCA that expired in 2024 with peer certs still valid.
pub(crate) const OUR_EXPIRED: &[&str] = &[
    "--not-before",
    "2014-06-01T00:00:00Z",
    "--not-after",
    "2024-06-01T00:00:00Z",
    "--peer-not-before",
    "-1d",
    "--peer-days",
    "3650",
];

/// `sfdiag serve` on 127.0.0.1 port 0; returns the process and its address.
pub(crate) fn serve(args: &[String]) -> (Proc, String) {
    let p = Proc::spawn(
        sfdiag()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args),
    );
    let l = p.wait_for(20, |l| l.contains("Listening on "));
    let addr = l.rsplit("Listening on ").next().unwrap().trim().to_owned();
    (p, addr)
}

/// `openssl s_server` as sftunnel's FMC would be configured; returns it and its address.
pub(crate) fn s_server(side: &Side, extra: &[&str]) -> (Proc, String) {
    let p = Proc::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-tls1_2",
                "-Verify",
                "1",
            ])
            .args(["-verify_return_error", "-CAfile", s(&side.ca)])
            .args(["-cert", s(&side.cert), "-key", s(&side.key)])
            .args(extra),
    );
    let l = p.wait_for(20, |l| l.starts_with("ACCEPT "));
    let addr = l.trim_start_matches("ACCEPT ").trim().to_owned();
    (p, addr)
}

pub(crate) fn s_client(addr: &str, side: Option<&Side>) -> Proc {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", addr, "-tls1_2"]);
    if let Some(side) = side {
        cmd.args([
            "-CAfile",
            s(&side.ca),
            "-cert",
            s(&side.cert),
            "-key",
            s(&side.key),
        ]);
    }
    Proc::spawn(&mut cmd)
}

/// `connect ADDR --count 1`: one handshake, no protocol after it (what an openssl peer
/// understands). Returns the exit status and the log lines.
pub(crate) fn connect_handshake_only(
    addr: &str,
    side: &Side,
    extra: &[&str],
) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ftd.log");
    let mut p = Proc::spawn(
        sfdiag()
            .args(["connect", addr, "--count", "1", "--log", s(&log)])
            .args(side.args())
            .args(extra),
    );
    let st = p.wait_exit(30);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (st, format!("{text}\n--- stdout/stderr:\n{}", p.text()))
}

pub(crate) fn connect_once(addr: &str, side: &Side, extra: &[&str]) -> (ExitStatus, String) {
    let mut p = Proc::spawn(
        sfdiag()
            .args(["connect", addr, "--once"])
            .args(side.args())
            .args(extra),
    );
    let st = p.wait_exit(30);
    (st, p.text())
}

pub(crate) fn has_line(text: &str, needle: &str) -> bool {
    text.lines().any(|l| l.contains(needle))
}

/// Asserts the appliance's failure block for an expired InternalCA in `log`.
pub(crate) fn assert_err10_block(log: &str) {
    for want in [
        "sftunnel:sf_ssl [ERROR] -Error with certificate at depth 1",
        "sftunnel:sf_ssl [ERROR] issuer = /title=InternalCA/OU=Intrusion Management System/CN=",
        "sftunnel:sf_ssl [ERROR] subject = /title=InternalCA/OU=Intrusion Management System/CN=",
        "sftunnel:sf_ssl [ERROR] err 10:certificate has expired",
        "sftunnel:sf_ssl [ERROR] SSL_renegotiate error: 1: error:0A000086:SSL routines::certificate verify failed",
        ":SSL handshake failed",
        "sftunnel:sf_ssl [WARN] SSL Verification status: certificate has expired",
    ] {
        assert!(has_line(log, want), "missing {want:?} in:\n{log}");
    }
    // The lines have the messages-log shape: `Mon dd HH:MM:SS host SF-IMS[pid]: [tid] ...`.
    let l = log
        .lines()
        .find(|l| l.contains("[ERROR] err 10:"))
        .unwrap()
        .trim();
    let parts: Vec<&str> = l.split_whitespace().collect();
    assert!(
        parts[4].starts_with("SF-IMS[") && parts[4].ends_with("]:"),
        "{l}"
    );
    assert!(parts[5].starts_with('[') && parts[5].ends_with(']'), "{l}");
}

// ---- sfdiag serve <- openssl s_client ----

fn serve_vs_s_client_valid(pki: &Pki) {
    let (srv, addr) = serve(&pki.fmc.args());
    let mut cli = s_client(&addr, Some(&pki.ftd));
    cli.wait_for(20, |l| l.contains("Verify return code: 0 (ok)"));
    srv.wait_for(20, |l| {
        l.contains("SSL connection established with 127.0.0.1")
            && l.contains("ECDHE-RSA-AES256-GCM-SHA384")
    });
    assert!(cli.text().contains("Protocol  : TLSv1.2") || cli.text().contains("TLSv1.2"));
    cli.close_stdin();
    cli.wait_exit(20);
}

fn serve_vs_s_client_expired(pki: &Pki) {
    let (srv, addr) = serve(&pki.fmc.args());
    let mut cli = s_client(&addr, Some(&pki.ftd));
    cli.wait_exit(20);
    let out = cli.text();
    // s_client judged our server certificate (it does not stop on errors by default) ...
    assert!(
        out.contains("verify error:num=10:certificate has expired"),
        "{out}"
    );
    // ... and got our alert when we judged its certificate.
    assert!(out.contains("SSL alert number 45"), "{out}");
    assert!(out.contains("sslv3 alert certificate expired"), "{out}");
    srv.wait_for(20, |l| l.contains("SSL handshake failed"));
    assert_err10_block(&srv.text());
}

#[test]
fn serve_accepts_openssl_client_with_openssl_made_pki() {
    let d = tempfile::tempdir().unwrap();
    serve_vs_s_client_valid(&openssl_pki(d.path(), None));
}

#[test]
fn serve_accepts_openssl_client_with_our_pki() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    serve_vs_s_client_valid(&our_pki(d.path(), 1, &[]));
}

#[test]
fn serve_rejects_expired_internal_ca_with_err10_and_alert45_openssl_made() {
    let d = tempfile::tempdir().unwrap();
    serve_vs_s_client_expired(&openssl_pki(d.path(), Some(EXPIRED_CA)));
}

#[test]
fn serve_rejects_expired_internal_ca_with_err10_and_alert45_our_pki() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    serve_vs_s_client_expired(&our_pki(d.path(), 1, OUR_EXPIRED));
}

#[test]
fn serve_sends_bad_certificate_42_for_a_not_yet_valid_ca() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), Some(FUTURE_CA));
    let (srv, addr) = serve(&pki.fmc.args());
    let mut cli = s_client(&addr, Some(&pki.ftd));
    cli.wait_exit(20);
    let out = cli.text();
    assert!(
        out.contains("verify error:num=9:certificate is not yet valid"),
        "{out}"
    );
    assert!(out.contains("SSL alert number 42"), "{out}");
    srv.wait_for(20, |l| l.contains("SSL handshake failed"));
    assert!(
        has_line(&srv.text(), "err 9:certificate is not yet valid"),
        "{}",
        srv.text()
    );
}

#[test]
fn serve_refuses_a_client_without_certificate() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), None);
    let (srv, addr) = serve(&pki.fmc.args());
    let mut cli = s_client(&addr, None);
    cli.wait_exit(20);
    let out = cli.text();
    // OpenSSL's answer to an empty client Certificate in TLS 1.2 is handshake_failure (40);
    // rustls alone would send certificate_required (116), a TLS 1.3 alert.
    assert!(out.contains("SSL alert number 40"), "{out}");
    assert!(!out.contains("SSL alert number 116"), "{out}");
    srv.wait_for(20, |l| l.contains("peer did not return a certificate"));
    srv.wait_for(20, |l| l.contains("SSL handshake failed"));
}

// ---- sfdiag connect -> openssl s_server ----

fn connect_vs_s_server_valid(pki: &Pki) {
    let (mut srv, addr) = s_server(&pki.fmc, &["-naccept", "1"]);
    let (st, log) = connect_handshake_only(&addr, &pki.ftd, &[]);
    assert!(st.success(), "{log}");
    assert!(
        has_line(&log, "Initiating IPv4 connection to 127.0.0.1:"),
        "{log}"
    );
    assert!(has_line(&log, "Wait to connect to "), "{log}");
    // APPLIANCE.md's cut line, `Connected to 10.10.200.31 f`: the prefix must match.
    assert!(
        has_line(&log, "Connected to 127.0.0.1 from 127.0.0.1:"),
        "{log}"
    );
    assert!(
        has_line(&log, "Successfully connected using SSL to: 127.0.0.1"),
        "{log}"
    );
    srv.wait_for(20, |l| l.contains("ECDHE-RSA-AES256-GCM-SHA384"));
    srv.wait_exit(20);
    // s_server verified our device certificate (-Verify 1 -verify_return_error).
    assert!(!srv.text().contains("verify error"), "{}", srv.text());
}

fn connect_vs_s_server_expired(pki: &Pki) {
    let (mut srv, addr) = s_server(&pki.fmc, &["-naccept", "1"]);
    let (st, log) = connect_handshake_only(&addr, &pki.ftd, &[]);
    assert_eq!(st.code(), Some(1), "{log}");
    assert_err10_block(&log);
    srv.wait_exit(20);
    let out = srv.text();
    assert!(out.contains("SSL alert number 45"), "{out}");
    assert!(out.contains("sslv3 alert certificate expired"), "{out}");
}

#[test]
fn connect_handshakes_with_openssl_server_openssl_made_pki() {
    let d = tempfile::tempdir().unwrap();
    connect_vs_s_server_valid(&openssl_pki(d.path(), None));
}

#[test]
fn connect_handshakes_with_openssl_server_our_pki() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    connect_vs_s_server_valid(&our_pki(d.path(), 1, &[]));
}

#[test]
fn connect_rejects_expired_internal_ca_of_openssl_server_openssl_made() {
    let d = tempfile::tempdir().unwrap();
    connect_vs_s_server_expired(&openssl_pki(d.path(), Some(EXPIRED_CA)));
}

#[test]
fn connect_rejects_expired_internal_ca_of_openssl_server_our_pki() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    connect_vs_s_server_expired(&our_pki(d.path(), 1, OUR_EXPIRED));
}

#[test]
fn connect_sends_bad_certificate_42_for_a_not_yet_valid_ca() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), Some(FUTURE_CA));
    let (mut srv, addr) = s_server(&pki.fmc, &["-naccept", "1"]);
    let (st, log) = connect_handshake_only(&addr, &pki.ftd, &[]);
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(
        has_line(&log, "err 9:certificate is not yet valid"),
        "{log}"
    );
    srv.wait_exit(20);
    assert!(srv.text().contains("SSL alert number 42"), "{}", srv.text());
}

#[test]
fn connect_fails_with_exit_2_on_missing_files() {
    let d = tempfile::tempdir().unwrap();
    let missing = Side {
        ca: d.path().join("nope.pem"),
        cert: d.path().join("nope.pem"),
        key: d.path().join("nope.key"),
    };
    let (st, out) = connect_once("127.0.0.1:9", &missing, &[]);
    assert_eq!(st.code(), Some(2), "{out}");
    assert!(out.contains("nope.pem"), "{out}");
}

// ---- sfdiag against itself ----

#[test]
fn serve_and_connect_once_exchange_hello_and_heartbeat() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let pki = our_pki(d.path(), 1, &[]);
    let keylog = d.path().join("keys.log");
    let mut args = pki.fmc.args();
    args.extend(["--keylog".into(), s(&keylog).into()]);
    let (srv, addr) = serve(&args);
    let (st, out) = connect_once(&addr, &pki.ftd, &["--name", "ftd1"]);
    assert!(st.success(), "{out}");
    assert!(has_line(&out, "registered this device as ftd1"), "{out}");
    // Each side names the certificate it accepted.
    assert!(
        out.lines()
            .any(|l| l.contains("Successfully connected using SSL") && l.contains("/CN=localhost")),
        "{out}"
    );
    srv.wait_for(20, |l| {
        l.contains("SSL connection established with 127.0.0.1")
            && l.contains("peer /generationQualifier=sftunnel_")
    });
    srv.wait_for(20, |l| {
        l.contains("Peer ftd1 (") && l.contains("connected from 127.0.0.1")
    });
    srv.wait_for(20, |l| {
        l.contains("Peer ftd1 (") && l.contains("disconnected")
    });
    let keys = std::fs::read_to_string(&keylog).unwrap();
    assert!(
        keys.lines()
            .any(|l| l.starts_with("CLIENT_RANDOM ") && l.split(' ').count() == 3),
        "{keys}"
    );
}

#[test]
fn serve_on_a_lab_clock_past_the_ca_rejects_the_device() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let pki = our_pki(d.path(), 1, &[]);
    let mut args = pki.fmc.args();
    args.extend(["--at".into(), "+11y".into()]);
    let (srv, addr) = serve(&args);
    let (st, out) = connect_once(&addr, &pki.ftd, &[]);
    assert_eq!(st.code(), Some(1), "{out}");
    assert!(
        has_line(
            &out,
            "[ERROR] SSL_renegotiate error: 1: error:0A000415:SSL routines::sslv3 alert certificate expired"
        ),
        "{out}"
    );
    srv.wait_for(20, |l| l.contains("SSL handshake failed"));
    assert_err10_block(&srv.text());
    // The server's lines carry its lab time, eleven years on.
    let year_on = (time::OffsetDateTime::now_utc() + time::Duration::days(11 * 365)).month();
    let l = srv.wait_for(5, |l| l.contains("err 10:"));
    assert!(
        l.starts_with(&format!("{:.3}", format!("{year_on:?}"))),
        "{l}"
    );
}

#[test]
fn serve_survives_silent_and_garbage_clients() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let pki = our_pki(d.path(), 1, &[]);
    let mut args = pki.fmc.args();
    args.extend(["--timeout".into(), "2".into()]);
    let (srv, addr) = serve(&args);
    // A client that connects and says nothing, and one that sends junk.
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut junk = TcpStream::connect(&addr).unwrap();
    junk.write_all(b"GET / HTTP/1.0\r\n\r\n\x16\x03\x01\xff\xff garbage")
        .unwrap();
    // Neither delays a real device.
    let (st, out) = connect_once(&addr, &pki.ftd, &[]);
    assert!(st.success(), "{out}");
    // The junk gets an alert or a close, the silent one is dropped after the handshake deadline.
    for sock in [&mut junk, &mut silent] {
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = Vec::new();
        // The server closed it (a reset counts: it may close with junk unread); a read that
        // timed out would mean the connection was left hanging.
        match sock.read_to_end(&mut buf) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    srv.wait_for(20, |l| l.contains("Timed out after 2 seconds in handshake"));
    // And the server still serves.
    let (st, out) = connect_once(&addr, &pki.ftd, &[]);
    assert!(st.success(), "{out}");
}

#[test]
fn fleet_mode_counts_handshakes_and_failures_by_reason() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let pki = our_pki(&d.path().join("ok"), 1, &[]);
    let (_srv, addr) = serve(&pki.fmc.args());
    let mut p = Proc::spawn(
        sfdiag()
            .args(["connect", &addr, "--count", "20", "--concurrency", "4"])
            .args(pki.ftd.args()),
    );
    assert!(p.wait_exit(60).success(), "{}", p.text());
    assert!(
        p.text()
            .contains("20 handshakes attempted, 20 succeeded, 0 failed"),
        "{}",
        p.text()
    );
    assert!(p.text().contains("handshakes/s"), "{}", p.text());
    // A device from another PKI: every attempt fails, counted under one reason (the device
    // sees the FMC's chain end in an InternalCA it does not trust, as OpenSSL would).
    let other = our_pki(&d.path().join("other"), 1, &[]);
    let mut p = Proc::spawn(
        sfdiag()
            .args(["connect", &addr, "--count", "6", "--concurrency", "3"])
            .args(other.ftd.args()),
    );
    assert_eq!(p.wait_exit(60).code(), Some(1), "{}", p.text());
    assert!(p.text().contains("6 failed"), "{}", p.text());
    assert!(
        p.text()
            .contains("     6  err 19:self-signed certificate in certificate chain (depth 1)"),
        "{}",
        p.text()
    );
}

// ---- validate ----

#[test]
fn validate_passes_on_a_fresh_pki_and_fails_with_err10_on_an_expired_ca() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let fresh = d.path().join("fresh");
    our_pki(&fresh, 2, &[]);
    let out = run(sfdiag().args(["validate", "--root", s(&fresh)]), 120);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(": ok, TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384"))
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("ftd1 (") && text.contains("ftd2 ("), "{text}");

    // The same PKI eleven years on: now passes, --at fails.
    let out = run(
        sfdiag().args(["validate", "--root", s(&fresh), "--at", "+11y"]),
        120,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains(": ok,")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("FAILED: device rejected the FMC's certificate: err 10:certificate has expired at depth 1"), "{text}");

    let expired = d.path().join("expired");
    our_pki(&expired, 1, OUR_EXPIRED);
    let out = run(sfdiag().args(["validate", "--root", s(&expired)]), 120);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED:") && text.contains("err 10:certificate has expired at depth 1"),
        "{text}"
    );
    assert_err10_block(&text);
}

#[test]
fn validate_with_explicit_files_and_setup_errors() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), None);
    let out = run(
        sfdiag().arg("validate").args(pki.fmc.args()).args([
            "--peer-cert",
            s(&pki.ftd.cert),
            "--peer-key",
            s(&pki.ftd.key),
        ]),
        120,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(
        sfdiag().args(["validate", "--root", s(&d.path().join("none"))]),
        60,
    );
    assert_eq!(out.status.code(), Some(2));
}

// ---- status and push over the control socket ----

/// Both ends dial: `serve --root` dials the root's devices, and a device that only listens
/// (`connect --listen --listen-only`, DONTRESOLVE) gets both its channels from the FMC, while
/// one that dials gets both from itself; `status --brief` shows each peer's two channels,
/// and a device that went away as down.
#[test]
fn serve_dials_a_listening_device_and_status_brief_shows_both_channels() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    our_pki(&root, 2, &[]);
    let (srv, addr) = serve(&[
        "--root".into(),
        s(&root).into(),
        "--heartbeat".into(),
        "1".into(),
    ]);
    srv.wait_for(10, |l| l.contains("Control socket at "));
    let port = addr.rsplit(':').next().unwrap();
    // ftd1 dials (from its own address); ftd2 listens at its address on the FMC's port.
    let ftd1 = Proc::spawn(sfdiag().args([
        "connect",
        &addr,
        "--root",
        s(&root),
        "--device",
        "ftd1",
        "--heartbeat",
        "1",
        "--listen",
        "127.1.0.1:0",
    ]));
    let ftd2 = Proc::spawn(sfdiag().args([
        "connect",
        &addr,
        "--root",
        s(&root),
        "--device",
        "ftd2",
        "--heartbeat",
        "1",
        "--listen",
        &format!("127.1.0.2:{port}"),
        "--listen-only",
    ]));
    for (dev, by) in [
        ("ftd1", "dialed by the peer"),
        ("ftd2", "dialed by the FMC"),
    ] {
        for ch in ["Channel-A CONTROL", "Channel-B EVENT"] {
            srv.wait_for(30, |l| {
                l.contains(&format!("Peer {dev} (")) && l.ends_with(&format!(": {ch} ({by})"))
            });
        }
    }
    // A listen-only device never dials.
    assert!(
        !ftd2.text().contains("Initiating IPv4 connection"),
        "{}",
        ftd2.text()
    );
    let brief = |want: &dyn Fn(&str) -> bool| {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let out = run(sfdiag().args(["status", "--root", s(&root), "--brief"]), 60);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if want(&text) || Instant::now() > end {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let text = brief(&|t| {
        t.contains("Heartbeat Received Time: ") && t.matches("Peer channel").count() == 4
    });
    for ip in ["127.1.0.1", "127.1.0.2"] {
        let block = &text[text
            .find(&format!("PEER:{ip}\n"))
            .unwrap_or_else(|| panic!("{text}"))..];
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(
            lines[1],
            format!(
                "Peer channel Channel-A is valid type (CONTROL), using 'lo', connected to '{ip}' via '127.0.0.1'"
            ),
            "{text}"
        );
        assert_eq!(
            lines[2],
            format!(
                "Peer channel Channel-B is valid type (EVENT), using 'lo', connected to '{ip}' via '127.0.0.1'"
            ),
            "{text}"
        );
        assert_eq!(lines[3], "Registration: Completed.", "{text}");
        assert!(
            lines[4].starts_with(&format!("IPv4 Connection to peer '{ip}' Start Time: ")),
            "{text}"
        );
        // `Wed Jun 10 14:27:12 2020 UTC`: C's ctime and the zone.
        let start = lines[4].rsplit("Start Time: ").next().unwrap();
        assert_eq!(start.len(), 28, "{text}");
        assert!(start.ends_with(" UTC"), "{text}");
    }
    drop(ftd2);
    let text = brief(&|t| t.contains("Last disconnect reason"));
    let block = &text[text
        .find("PEER:127.1.0.2\n")
        .unwrap_or_else(|| panic!("{text}"))..];
    let lines: Vec<&str> = block.lines().take(5).collect();
    assert_eq!(lines[1], "Registration: Completed.", "{text}");
    assert!(
        lines[2].starts_with("Connection to peer '127.1.0.2' Attempted at "),
        "{text}"
    );
    assert!(lines[3].starts_with("Last disconnect time : "), "{text}");
    assert_eq!(
        lines[4],
        "Last disconnect reason : Both control and event channel connections with peer went down",
        "{text}"
    );
    drop(ftd1);
    drop(srv);
}

#[test]
fn status_lists_connected_and_known_devices_from_the_control_socket() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    our_pki(&root, 2, &[]);
    let (srv, addr) = serve(&["--root".into(), s(&root).into()]);
    srv.wait_for(10, |l| l.contains("Control socket at "));
    let dev = Proc::spawn(sfdiag().args([
        "connect",
        &addr,
        "--root",
        s(&root),
        "--device",
        "ftd1",
        "--heartbeat",
        "1",
    ]));
    srv.wait_for(20, |l| {
        l.contains("Peer ftd1 (") && l.contains("connected from")
    });
    let end = Instant::now() + Duration::from_secs(20);
    let v: serde_json::Value = loop {
        let out = run(
            sfdiag().args(["status", "--root", s(&root), "--format", "json"]),
            120,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["peers"][0]["last_heartbeat"].is_string() || Instant::now() > end {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let peers = v["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{v}");
    assert_eq!(peers[0]["name"], "ftd1");
    assert_eq!(peers[0]["connected"], true);
    assert!(peers[0]["last_heartbeat"].is_string(), "{v}");
    assert!(peers[0]["cert_not_after"].is_string(), "{v}");
    assert_eq!(peers[1]["name"], "ftd2");
    assert_eq!(peers[1]["connected"], false);
    assert!(v["server"]["uuid"].is_string());
    let out = run(sfdiag().args(["status", "--root", s(&root)]), 120);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("ftd1 ") && l.contains(" connected ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ftd2 ") && l.contains(" disconnected")),
        "{text}"
    );
    // A device that left keeps its row: when it went down and its last heartbeat.
    let heartbeat = peers[0]["last_heartbeat"].as_str().unwrap().to_owned();
    drop(dev);
    srv.wait_for(20, |l| {
        l.contains("Peer ftd1 (") && l.contains("disconnected")
    });
    // Down once both its channels are (each its own connection, each its own line).
    let end = Instant::now() + Duration::from_secs(20);
    let v: serde_json::Value = loop {
        let out = run(
            sfdiag().args(["status", "--root", s(&root), "--format", "json"]),
            120,
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["peers"][0]["connected"] == false || Instant::now() > end {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let left = &v["peers"][0];
    assert_eq!(left["name"], "ftd1", "{v}");
    assert_eq!(left["connected"], false, "{v}");
    assert!(left["since"].is_string(), "when it went down: {v}");
    assert!(
        left["last_heartbeat"].as_str().unwrap() >= heartbeat.as_str(),
        "{v}"
    );
    assert!(v["peers"][1]["since"].is_null(), "ftd2 never came: {v}");
    drop(srv);
    // With no server: the known devices, not running, exit 1.
    let out = run(sfdiag().args(["status", "--root", s(&root)]), 120);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sftunnel is not running"));
}

#[test]
fn push_over_the_control_socket_installs_files_and_the_device_reconnects() {
    use sfdiag::tunnel::control::ControlClient;
    use sfdiag::tunnel::proto::PushFile;
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pki = our_pki(&root, 1, &[]);
    let (srv, addr) = serve(&["--root".into(), s(&root).into()]);
    let dev =
        Proc::spawn(sfdiag().args(["connect", &addr, "--root", s(&root), "--device", "ftd1"]));
    srv.wait_for(20, |l| {
        l.contains("Peer ftd1 (") && l.contains("connected from")
    });
    let lab = sfdiag::pki::layout::PkiRoot::load(&root).unwrap();
    let uuid = lab.peer("ftd1").unwrap().uuid.to_string();

    // The renewal step: the same three files back (a renewal would send new ones).
    let file = |name: &str, p: &Path, mode: u32| PushFile {
        name: name.into(),
        mode,
        data: std::fs::read(p).unwrap(),
    };
    let files = vec![
        file("cacert.pem", &pki.ftd.ca, 0o644),
        file("sftunnel-cert.pem", &pki.ftd.cert, 0o644),
        file("sftunnel-key.pem", &pki.ftd.key, 0o600),
    ];
    std::fs::write(&pki.ftd.cert, "stale\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sock = root.join("fmc/var/run/sftunnel.sock");
    let ack = block(&rt, async {
        let mut c = ControlClient::connect(&sock).await?;
        c.push(&uuid, &files).await
    })
    .unwrap();
    assert!(ack.ok, "{ack:?}");
    assert_eq!(std::fs::read(&pki.ftd.cert).unwrap(), files[1].data);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pki.ftd.key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    dev.wait_for(20, |l| {
        l.contains("Restarting tunnel: new certificates from push")
    });
    // The device came back with the installed files.
    let end = Instant::now() + Duration::from_secs(20);
    while srv
        .text()
        .lines()
        .filter(|l| l.contains("Peer ftd1 (") && l.contains("connected from"))
        .count()
        < 2
    {
        assert!(Instant::now() < end, "{}", srv.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A push too big for one frame is refused by the FMC before it is sent, saying why, and
    // the tunnel stays up (the next push below still gets the device's answer).
    let huge = vec![PushFile {
        name: "sftunnel-cert.pem".into(),
        mode: 0o644,
        data: vec![b'A'; 2 << 20],
    }];
    let err = block(&rt, async {
        let mut c = ControlClient::connect(&sock).await?;
        c.push(&uuid, &huge).await
    })
    .unwrap_err();
    assert!(err.to_string().contains("frame limit"), "{err}");
    assert_ne!(std::fs::read(&pki.ftd.cert).unwrap(), huge[0].data);
    // A push with a name the device does not know is refused, nothing written.
    let bad = vec![PushFile {
        name: "../../etc/passwd".into(),
        mode: 0o644,
        data: b"x".to_vec(),
    }];
    let ack = block(&rt, async {
        let mut c = ControlClient::connect(&sock).await?;
        c.push(&uuid, &bad).await
    })
    .unwrap();
    assert!(
        !ack.ok && ack.message.contains("unexpected file"),
        "{ack:?}"
    );
    // Pushing to a device that is not connected is an error naming it.
    let err = block(&rt, async {
        let mut c = ControlClient::connect(&sock).await?;
        c.push("00000000-0000-0000-0000-000000000000", &files).await
    })
    .unwrap_err();
    assert!(err.to_string().contains("is not connected"), "{err}");
}

#[test]
fn connect_keeps_retrying_and_logs_every_failure() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    our_pki(&root, 1, OUR_EXPIRED);
    let (_srv, addr) = serve(&["--root".into(), s(&root).into()]);
    let dev = Proc::spawn(sfdiag().args([
        "connect",
        &addr,
        "--root",
        s(&root),
        "--device",
        "ftd1",
        "--retry-max",
        "1",
    ]));
    let end = Instant::now() + Duration::from_secs(30);
    while dev.text().matches("SSL handshake failed").count() < 2 {
        assert!(Instant::now() < end, "{}", dev.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = dev.text();
    assert!(
        t.matches("err 10:certificate has expired").count() >= 2,
        "{t}"
    );
    assert!(has_line(&t, "Next connection attempt to "), "{t}");
    assert!(
        t.matches("Initiating IPv4 connection to").count() >= 2,
        "{t}"
    );
}

/// The renewal of issue 5 driven through the control socket: a new InternalCA with the same
/// FMC UUID, the device's new files pushed over its live tunnel, the device restarting into a
/// FMC that still shows the old chain (err 7, alert 51, as when certificates were not pushed
/// everywhere), then the FMC's tunnel service restarted with its new files: the device is back.
#[test]
fn renewal_push_then_fmc_restart_brings_the_device_back_on_the_new_ca() {
    use sfdiag::tunnel::control::ControlClient;
    use sfdiag::tunnel::proto::PushFile;
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    our_pki(&root, 1, &[]);
    let lab = sfdiag::pki::layout::PkiRoot::load(&root).unwrap();
    let dev_uuid = lab.peer("ftd1").unwrap().uuid.to_string();
    let renewed = d.path().join("renewed");
    let new = our_pki(
        &renewed,
        1,
        &[
            "--fmc-uuid",
            &lab.fmc.uuid.to_string(),
            "--device",
            &format!("ftd1={dev_uuid}"),
        ][..],
    );
    let (srv, addr) = serve(&["--root".into(), s(&root).into()]);
    let dev = Proc::spawn(sfdiag().args([
        "connect",
        &addr,
        "--root",
        s(&root),
        "--device",
        "ftd1",
        "--retry-max",
        "1",
    ]));
    srv.wait_for(20, |l| {
        l.contains("Peer ftd1 (") && l.contains("connected from")
    });

    let file = |name: &str, p: &Path, mode: u32| PushFile {
        name: name.into(),
        mode,
        data: std::fs::read(p).unwrap(),
    };
    let files = vec![
        file("cacert.pem", &new.ftd.ca, 0o644),
        file("sftunnel-cert.pem", &new.ftd.cert, 0o644),
        file("sftunnel-key.pem", &new.ftd.key, 0o600),
    ];
    let sock = root.join("fmc/var/run/sftunnel.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ack = block(&rt, async {
        ControlClient::connect(&sock)
            .await?
            .push(&dev_uuid, &files)
            .await
    })
    .unwrap();
    assert!(ack.ok, "{ack:?}");
    // The device now trusts the new CA; the FMC still presents the old chain.
    dev.wait_for(20, |l| l.contains("err 7:certificate signature failure"));
    srv.wait_for(20, |l| {
        l.contains(
            "SSL_renegotiate error: 1: error:0A00041B:SSL routines::tlsv1 alert decrypt error",
        )
    });

    // The FMC side of the renewal: its new files in place, its tunnel service restarted.
    let fmc = root.join("fmc/etc/sf");
    std::fs::copy(&new.fmc.ca, fmc.join("ca_root/cacert.pem")).unwrap();
    std::fs::copy(&new.fmc.cert, fmc.join("keys/sftunnel-cert.pem")).unwrap();
    std::fs::copy(&new.fmc.key, fmc.join("keys/sftunnel-key.pem")).unwrap();
    // The server re-reads the files it was started with: no paths travel on the socket.
    block(&rt, async {
        ControlClient::connect(&sock).await?.restart().await
    })
    .unwrap();
    srv.wait_for(10, |l| {
        l.contains("Restarting the tunnel service: closing all tunnels")
    });
    let end = Instant::now() + Duration::from_secs(20);
    while srv
        .text()
        .lines()
        .filter(|l| l.contains("Peer ftd1 (") && l.contains("connected from"))
        .count()
        < 2
    {
        assert!(Instant::now() < end, "{}\n---\n{}", srv.text(), dev.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- who may steer the server, and who it admits (issue 11, items 5, 6, 13) ----

/// The `nobody` user, that the tests act as.
const NOBODY: u32 = 65534;

/// Acting as `nobody` needs root; a test that cannot says so on one line and stops.
fn is_root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0");
    if !root {
        eprintln!("skipped {test}: needs root to act as user nobody");
    }
    root
}

/// `sfdiag` run as user nobody.
fn sfdiag_as_nobody() -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = sfdiag();
    c.uid(NOBODY).gid(NOBODY);
    c
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The UUID `sftunnel.conf` of `root` gives peer `name`.
fn peer_uuid(root: &Path, name: &str) -> String {
    let conf = std::fs::read_to_string(root.join("fmc/etc/sf/sftunnel.conf")).unwrap();
    let mut uuid = None;
    for l in conf.lines().map(str::trim) {
        if let Some(u) = l.strip_prefix("uuid ") {
            uuid = Some(u.trim_end_matches(';').to_owned());
        }
        if l == format!("name {name};") {
            return uuid.unwrap();
        }
    }
    panic!("no peer {name} in {conf}")
}

/// Issue 11 item 5's reproducer: `serve` under umask 000. The control socket's folder is
/// created 0700 and the socket 0600, so user nobody cannot reach it; with the modes opened by
/// hand he reaches it and the server still turns him away on his credentials; and even the
/// owner cannot point `reload` at files of his choosing.
#[test]
fn control_socket_is_owner_only_under_umask_000_and_checks_who_connects() {
    if !is_root("control_socket_is_owner_only_under_umask_000_and_checks_who_connects") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    our_pki(&root, 1, &[]);
    let srv = Proc::spawn(Command::new("sh").args([
        "-c",
        "umask 000; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_sfdiag"),
        "serve",
        "--root",
        s(&root),
        "--listen",
        "127.0.0.1:0",
    ]));
    srv.wait_for(20, |l| l.contains("Control socket at "));
    let run_dir = root.join("fmc/var/run");
    let sock = run_dir.join("sftunnel.sock");
    assert_eq!(mode(&run_dir), 0o700, "the socket's folder");
    assert_eq!(mode(&sock), 0o600, "the socket");
    let left: Vec<_> = std::fs::read_dir(&run_dir).unwrap().collect();
    assert_eq!(left.len(), 1, "a staging folder was left: {left:?}");

    let status_as_nobody = || {
        run(
            sfdiag_as_nobody().args(["status", "--socket", s(&sock)]),
            30,
        )
    };
    let out = status_as_nobody();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Permission denied"), "{err}");

    // A careless chmod lets him reach it: his uid is still refused before any request.
    chmod(d.path(), 0o711);
    chmod(&run_dir, 0o711);
    chmod(&sock, 0o777);
    let out = status_as_nobody();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("uid {NOBODY} may not use this socket")),
        "{err}"
    );
    srv.wait_for(10, |l| {
        l.contains(&format!("Control socket: refused uid {NOBODY}"))
    });

    // The owner asks for a reload with a CA of his choosing (what nobody sent in the
    // reproducer): refused as a bad request; a plain reload re-reads the server's own files.
    let evil = d.path().join("evil");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resp = block(&rt, async {
        let mut c = sfdiag::tunnel::control::ControlClient::connect(&sock).await?;
        c.request(&serde_json::json!({
            "op": "reload",
            "ca": evil.join("ca.pem"),
            "cert": evil.join("cert.pem"),
            "key": evil.join("key.pem"),
        }))
        .await
    })
    .unwrap();
    assert!(!resp.ok);
    assert_eq!(
        resp.kind,
        Some(sfdiag::tunnel::control::ErrorKind::BadRequest)
    );
    assert!(
        resp.error
            .as_deref()
            .unwrap_or("")
            .contains("takes no paths"),
        "{resp:?}"
    );
    block(&rt, async {
        sfdiag::tunnel::control::ControlClient::connect(&sock)
            .await?
            .reload()
            .await
    })
    .unwrap();
    srv.wait_for(10, |l| l.contains("Loaded new certificates: "));
}

/// Issue 11 item 6: `serve --control PATH` on a regular file refuses and leaves it as it
/// was; a stale socket (its server gone) is replaced; a live one is left to its server.
#[test]
fn serve_control_replaces_only_a_stale_socket() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    our_pki(&root, 1, &[]);
    let serve_at = |control: &Path| {
        run(
            sfdiag().args([
                "serve",
                "--root",
                s(&root),
                "--listen",
                "127.0.0.1:0",
                "--control",
                s(control),
            ]),
            30,
        )
    };
    let notes = d.path().join("notes.txt");
    std::fs::write(&notes, "do not delete\n").unwrap();
    let out = serve_at(&notes);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a socket; not replacing it"), "{err}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "do not delete\n");

    let stale = d.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(std::os::unix::net::UnixStream::connect(&stale).is_err());
    let (srv, _) = serve(&[
        "--root".into(),
        s(&root).into(),
        "--control".into(),
        s(&stale).into(),
    ]);
    srv.wait_for(20, |l| l.contains("Control socket at "));
    let out = run(sfdiag().args(["status", "--socket", s(&stale)]), 30);
    assert!(out.status.success(), "{out:?}");

    let out = serve_at(&stale);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("another server is already listening"), "{err}");
    let out = run(sfdiag().args(["status", "--socket", s(&stale)]), 30);
    assert!(
        out.status.success(),
        "the live server lost its socket: {out:?}"
    );
}

/// Issue 11 item 13's reproducer: a certificate the CA signed for a device the root does not
/// list is refused; a listed device whose HELLO claims another device's name with a forged
/// log line after a newline is named by the root, and the claim forges nothing. Without a
/// root (`--ca/--cert/--key`) the claim is all there is: it is shown, escaped.
#[test]
fn serve_root_admits_only_its_peers_named_by_the_root_and_escapes_what_they_claim() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pki = our_pki(&root, 2, &[]);
    let (ftd1, ftd2) = (peer_uuid(&root, "ftd1"), peer_uuid(&root, "ftd2"));
    // ftd2 leaves the FMC's peer list; its certificate, signed by the InternalCA, stays.
    let conf = root.join("fmc/etc/sf/sftunnel.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let start = text
        .find(&format!("    peer {{\n        uuid {ftd2};"))
        .unwrap();
    let end = start + text[start..].find("    };\n").unwrap() + "    };\n".len();
    std::fs::write(&conf, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let fmc_uuid = std::fs::read_dir(root.join("ftd2/var/sf/peers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ftd2_files = Side {
        ca: fmc_uuid.join("cacert.pem"),
        cert: fmc_uuid.join("sftunnel-cert.pem"),
        key: fmc_uuid.join("sftunnel-key.pem"),
    };

    let (srv, addr) = serve(&["--root".into(), s(&root).into()]);
    let (st, log) = connect_once(&addr, &ftd2_files, &[]);
    assert_eq!(st.code(), Some(1), "{log}");
    srv.wait_for(20, |l| {
        l.contains(&format!("Refusing peer {ftd2} (subject "))
            && l.ends_with("): not a peer of this FMC")
    });

    let forged = "ftd2\nDec  1 00:00:00 FMC SF-IMS[1]: [1] sftunnel:sf_ssl [ERROR] err 10:forged";
    let (st, log) = connect_once(&addr, &pki.ftd, &["--name", forged]);
    assert!(st.success(), "{log}");
    srv.wait_for(20, |l| {
        l.contains(&format!("Peer ftd1 ({ftd1}) connected from 127.0.0.1"))
    });
    srv.wait_for(20, |l| {
        l.contains(&format!("Peer ftd1 ({ftd1}) disconnected"))
    });
    let out = run(
        sfdiag().args(["status", "--root", s(&root), "--format", "json"]),
        30,
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ftd1"], "{v}");
    let text = srv.text();
    assert!(
        !text.contains("err 10:forged"),
        "the claimed name reached the log:\n{text}"
    );
    drop(srv);

    // No root: any certificate the CA signed, named by its claim, escaped.
    let (srv, addr) = serve(&pki.fmc.args());
    let (st, log) = connect_once(&addr, &pki.ftd, &["--name", forged]);
    assert!(st.success(), "{log}");
    srv.wait_for(20, |l| {
        l.contains(&format!(
            "Peer ftd2\\x0ADec  1 00:00:00 FMC SF-IMS[1]: [1] sftunnel:sf_ssl [ERROR] err \
             10:forged ({ftd1}) connected from"
        ))
    });
    srv.wait_for(20, |l| l.contains(") disconnected"));
    let text = srv.text();
    assert!(
        !text.lines().any(|l| l.starts_with("Dec  1 00:00:00 FMC")),
        "a forged line reached the log:\n{text}"
    );
}

/// A device certificate whose subject holds an ESC: the FMC's `SSL connection established`
/// line shows the subject as `X509_NAME_oneline` writes it (`\x1B`, what the verify block's
/// `subject =` line shows), escaped once, not `\\x1B`.
#[test]
fn a_subject_with_control_bytes_is_escaped_once_in_the_established_line() {
    let d = tempfile::tempdir().unwrap();
    let pki = openssl_pki(d.path(), None);
    let p = |n: &str| d.path().join(n);
    let ok = |cmd: &mut Command| {
        let o = run(cmd, 60);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/O=x/CN=ev\u{1b}[2Jx", "-keyout", s(&p("ev.key"))])
        .args(["-out", s(&p("ev.csr"))]));
    ok(Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            s(&p("ev.csr")),
            "-CA",
            s(&p("ca.pem")),
        ])
        .args(["-CAkey", s(&p("ca.key")), "-set_serial", "7", "-days", "30"])
        .args(["-out", s(&p("ev.pem"))]));
    let (srv, addr) = serve(&pki.fmc.args());
    let ev = Side {
        ca: pki.ftd.ca.clone(),
        cert: p("ev.pem"),
        key: p("ev.key"),
    };
    let _ = connect_once(&addr, &ev, &[]);
    let l = srv.wait_for(30, |l| l.contains("SSL connection established"));
    assert!(l.ends_with("peer /O=x/CN=ev\\x1B[2Jx"), "{l}");
}
