//! The live tunnel where both ends dial each other: `validate` each way, many FMC connections
//! at once to `connect --listen`, `status` after the FMC dialed, `serve` dialing an address
//! that is itself, and a failed SIGHUP restart in the messages log. Everything on loopback,
//! port 0 (or 0.0.0.0 port 0), every wait bounded.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::sfdiag;
use crate::tunnel::{Proc, need_openssl, our_pki, run, s, serve};

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn openssl(args: &[&str]) -> std::process::Output {
    run(Command::new("openssl").args(args), 30)
}

/// Polls `ok` every 50 ms for up to `secs`; panics with `what()` when it never holds.
fn wait_until(secs: u64, what: impl Fn() -> String, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < end, "not within {secs}s: {}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The device's certificate reissued by the root's InternalCA with `extendedKeyUsage =
/// clientAuth` only: a TLS client's, not a TLS server's. Returns its path.
fn client_only_cert(
    root: &Path,
    dir: &Path,
    dev_cert: &Path,
    dev_key: &Path,
) -> std::path::PathBuf {
    let ca = root.join("fmc/etc/sf/ca_root");
    let (req, ext, out) = (
        dir.join("req.pem"),
        dir.join("ext.cnf"),
        dir.join("client-only.pem"),
    );
    std::fs::write(&ext, "extendedKeyUsage = clientAuth\n").unwrap();
    let o = openssl(&[
        "x509",
        "-x509toreq",
        "-in",
        s(dev_cert),
        "-signkey",
        s(dev_key),
        "-out",
        s(&req),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = openssl(&[
        "x509",
        "-req",
        "-in",
        s(&req),
        "-CA",
        s(&ca.join("cacert.pem")),
        "-CAkey",
        s(&ca.join("cakey.pem")),
        "-set_serial",
        "4242",
        "-days",
        "30",
        "-extfile",
        s(&ext),
        "-out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    out
}

/// CLI.md: validate runs one mutual-TLS handshake each way. A device certificate without
/// serverAuth works when the device dials, and fails when the FMC dials it, with err 26 as
/// `openssl verify -purpose sslserver` says; the verdict names that way, and only that one.
#[test]
fn validate_fails_a_client_only_device_cert_on_the_fmc_dialing_the_device() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pki = our_pki(&root, 1, &[]);
    let cert = client_only_cert(&root, d.path(), &pki.ftd.cert, &pki.ftd.key);
    let oracle = openssl(&[
        "verify",
        "-CAfile",
        s(&pki.fmc.ca),
        "-purpose",
        "sslserver",
        s(&cert),
    ]);
    assert!(
        text(&oracle).contains("error 26 at 0 depth"),
        "{}",
        text(&oracle)
    );
    let mut cmd = sfdiag();
    cmd.args(["validate"]).args(pki.fmc.args()).args([
        "--peer-cert",
        s(&cert),
        "--peer-key",
        s(&pki.ftd.key),
    ]);
    let o = run(&mut cmd, 60);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let verdict = t.lines().next().unwrap();
    assert!(
        verdict.contains(
            "FAILED: FMC rejected the device's certificate: err 26:unsuitable certificate \
             purpose at depth 0"
        ) && verdict.ends_with("(the FMC dialing the device)"),
        "{t}"
    );
    assert!(!verdict.contains("the device dialing the FMC"), "{t}");
    // Both sides' words of the failed way are shown.
    assert!(
        t.contains("VERIFY ssl_verify_callback_internal: preverify_ok=0 depth=0 err 26:"),
        "{t}"
    );
    assert!(
        t.contains("sslv3 alert unsupported certificate")
            && t.contains("Accept:SSL handshake failed"),
        "{t}"
    );
    // The same files with the device's own certificate: ok both ways.
    let mut cmd = sfdiag();
    cmd.args(["validate", "--root", s(&root)]);
    let o = run(&mut cmd, 60);
    assert!(
        o.status.success() && text(&o).contains(": ok, TLSv1.2"),
        "{}",
        text(&o)
    );
}

/// Many FMC connections accepted at the same moment by one `connect --listen` each get the
/// device's files: none fails on the device folder's lock held by a sibling connection.
#[test]
fn connect_listen_serves_simultaneous_fmc_connections() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pki = our_pki(&root, 1, &[]);
    let dev = Proc::spawn(sfdiag().args([
        "connect",
        "127.0.0.1:1",
        "--root",
        s(&root),
        "--device",
        "ftd1",
        "--listen",
        "127.0.0.1:0",
        "--listen-only",
    ]));
    let l = dev.wait_for(20, |l| l.contains("for the FMC's connections"));
    let addr = l
        .rsplit("Listening on ")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    for round in 0..3 {
        let clients: Vec<_> = (0..12)
            .map(|_| {
                let (addr, fmc) = (addr.clone(), pki.fmc.clone());
                std::thread::spawn(move || {
                    let o = run(
                        Command::new("openssl").args([
                            "s_client",
                            "-connect",
                            &addr,
                            "-tls1_2",
                            "-verify_return_error",
                            "-CAfile",
                            s(&fmc.ca),
                            "-cert",
                            s(&fmc.cert),
                            "-key",
                            s(&fmc.key),
                        ]),
                        30,
                    );
                    (o.status.success(), text(&o))
                })
            })
            .collect();
        for c in clients {
            let (ok, t) = c.join().unwrap();
            assert!(ok, "round {round}: {t}\n--- device:\n{}", dev.text());
        }
    }
    let t = dev.text();
    assert!(!t.contains("cannot load certificates"), "{t}");
    assert!(!t.contains("another sfdiag run"), "{t}");
}

/// `status` keeps a device's CERT NOT AFTER once the FMC has dialed it and failed (nothing
/// listens at its address): the root's file stands in, as for a device never tried.
#[test]
fn status_keeps_the_cert_not_after_of_a_device_the_fmc_dialed() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pki = our_pki(&root, 1, &[]);
    let end = openssl(&[
        "x509",
        "-noout",
        "-enddate",
        "-dateopt",
        "iso_8601",
        "-in",
        s(&pki.ftd.cert),
    ]);
    // notAfter=2036-11-29 04:13:58Z -> 2036-11-29T04:13:58Z
    let want = String::from_utf8_lossy(&end.stdout)
        .trim()
        .trim_start_matches("notAfter=")
        .replace(' ', "T");
    let (srv, _addr) = serve(&["--root".into(), s(&root).into()]);
    srv.wait_for(10, |l| l.contains("Control socket at "));
    let status = || {
        let o = run(
            sfdiag().args(["status", "--root", s(&root), "--format", "json"]),
            30,
        );
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()
    };
    let ftd1 = |v: &serde_json::Value| v["peers"][0].clone();
    wait_until(
        20,
        || format!("{}\n{}", status(), srv.text()),
        || ftd1(&status())["attempted"].is_string(),
    );
    let row = ftd1(&status());
    assert_eq!(row["connected"], false, "{row}");
    assert_eq!(row["cert_not_after"], want.as_str(), "{row}");
    let o = run(sfdiag().args(["status", "--root", s(&root)]), 30);
    assert!(text(&o).contains(&want), "{}", text(&o));
}

/// A device address that reaches this FMC's own listener (0.0.0.0 takes 127.1.0.x too): the
/// FMC sees its own certificate, says so once, and dials that address no more.
#[test]
fn serve_stops_dialing_an_address_that_is_itself() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    our_pki(&root, 1, &[]);
    let p = Proc::spawn(sfdiag().args(["serve", "--root", s(&root), "--listen", "0.0.0.0:0"]));
    p.wait_for(20, |l| {
        l.contains("(ftd1) is this FMC itself: it presented this FMC's own certificate")
    });
    // Without the stop, the next attempts come 1 s and 2 s after the first.
    std::thread::sleep(Duration::from_millis(3500));
    let t = p.text();
    assert_eq!(
        t.matches("Initiating IPv4 connection to 127.1.0.1:")
            .count(),
        1,
        "{t}"
    );
    assert_eq!(t.matches("is this FMC itself").count(), 1, "{t}");
}

/// A SIGHUP restart refused (the key file is garbage now) is said in `--log`, the messages
/// log the operator reads, and the old certificates keep serving.
#[test]
fn a_failed_sighup_restart_reaches_the_messages_log() {
    need_openssl();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pki = our_pki(&root, 1, &[]);
    let log = d.path().join("fmc.log");
    let mut child = sfdiag()
        .args([
            "serve",
            "--root",
            s(&root),
            "--no-dial",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--log", s(&log)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(20, read, || read().contains("Control socket at "));
        std::fs::write(&pki.fmc.key, "garbage\n").unwrap();
        let o = run(
            Command::new("kill").args(["-HUP", &child.id().to_string()]),
            10,
        );
        assert!(o.status.success(), "{}", text(&o));
        wait_until(20, read, || {
            read().lines().any(|l| {
                l.contains("[ERROR] Cannot restart the tunnel service with new certificates: ")
                    && l.contains("sftunnel-key.pem")
                    && l.ends_with("; keeping the loaded ones")
            })
        });
        assert!(
            !read().contains("Restarting the tunnel service"),
            "{}",
            read()
        );
    }));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
