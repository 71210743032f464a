//! The appliance's own words (APPLIANCE.md), as golden files: what `pki renew`, `FAILED_PUSH`
//! and `pki copy` print on a lab made with the transcripts' own names, UUIDs and times, whole,
//! compared with `tests/golden/*.snap` (refresh: `INSTA_UPDATE=always cargo test --locked
//! --test it words::`, then read `git diff tests/golden`). The lab root's path is the only
//! thing replaced (by `ROOT`): it is a temporary folder.

use std::path::Path;
use std::process::Output;

use crate::common::sfdiag;

/// The FMC and the first device of APPLIANCE.md's renewal transcript.
const FMC_UUID: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
const BSNS_UUID: &str = "c8d5d5c6-87c9-11ef-a993-b9831565bc4e";
/// A second device for the transcript's EMEA-FPR3110-08 (its UUID is not shown there).
const EMEA_UUID: &str = "d1e2f3a4-87c9-11ef-a993-b9831565bc4e";
/// The renewal's time: unix 1728915794, the transcript's `var/tmp/certs/1728915794`.
const RENEW_AT: &str = "2024-10-14T14:23:14Z";
/// An InternalCA of 3650 days that ends `Oct  9 10:12:50 2034 GMT`, as in the transcript.
const CA_NOT_BEFORE: &str = "2024-10-11T10:12:50Z";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> Output {
    sfdiag().args(args).output().expect("run sfdiag")
}

/// stdout with the root replaced, and the exit code.
fn transcript(o: &Output, root: &Path) -> String {
    let mut t = String::from_utf8_lossy(&o.stdout).replace(s(root), "ROOT");
    t.push_str(&format!("[exit {}]\n", o.status.code().unwrap_or(-1)));
    t
}

fn golden(name: &str, description: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../golden");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(description);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// `pki init` of the transcripts' FMC and two devices.
fn lab(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("lab");
    let o = run(&[
        "pki",
        "init",
        "--root",
        s(&root),
        "--fmc-uuid",
        FMC_UUID,
        "--device",
        &format!("BSNS-1120-1={BSNS_UUID}"),
        "--device",
        &format!("EMEA-FPR3110-08={EMEA_UUID}"),
        "--not-before",
        CA_NOT_BEFORE,
        "--days",
        "3650",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    root
}

/// generate_certs.pl's dialogue with `--yes`, no sftunnel running: every file of both devices
/// failed to push, in the order cacert, key, cert, then where FAILED_PUSH is; FAILED_PUSH as
/// the appliance writes it; then `pki copy` of copy_sftunnel_certs.py with the FMC's row, a
/// device, and a device that cannot be reached.
#[test]
fn renew_with_failed_pushes_failed_push_and_copy_in_the_appliances_words() {
    let d = tempfile::tempdir().unwrap();
    let root = lab(d.path());
    let args = [
        "pki",
        "renew",
        "--root",
        s(&root),
        "--yes",
        "--at",
        RENEW_AT,
    ];
    let o = run(&args);
    golden(
        "renew-failed-push.txt",
        "sfdiag pki renew --root ROOT --yes --at 2024-10-14T14:23:14Z (no serve running)",
        &transcript(&o, &root),
    );

    let fp = root.join("fmc/var/tmp/certs/1728915794/FAILED_PUSH");
    let list = std::fs::read_to_string(&fp).unwrap();
    golden(
        "failed-push.txt",
        "ROOT/fmc/var/tmp/certs/1728915794/FAILED_PUSH after that renewal",
        &list,
    );

    // The FMC first (as copy_sftunnel_certs.py's devices.csv lists it), a device, and one
    // that is not there.
    let csv = d.path().join("devices.csv");
    std::fs::write(
        &csv,
        "#device_name,ipaddr,login,password\n\
         fmc,127.0.0.1,admin,Admin123\n\
         BSNS-1120-1,127.1.0.1,admin,Admin123\n\
         FTDv,10.48.67.99,admin,Admin123\n",
    )
    .unwrap();
    let o = run(&[
        "pki",
        "copy",
        "--root",
        s(&root),
        "--devices",
        s(&csv),
        "--at",
        "2024-11-12T14:07:36Z",
    ]);
    golden(
        "copy.txt",
        "sfdiag pki copy --root ROOT --devices devices.csv --at 2024-11-12T14:07:36Z (fmc, BSNS-1120-1, an unreachable FTDv)",
        &transcript(&o, &root),
    );
    // The device that was copied to holds the FMC's files for it.
    let own = root.join(format!("BSNS-1120-1/var/sf/peers/{FMC_UUID}"));
    for f in ["cacert.pem", "sftunnel-key.pem", "sftunnel-cert.pem"] {
        assert_eq!(
            std::fs::read(own.join(f)).unwrap(),
            std::fs::read(root.join(format!("fmc/var/sf/peers/{BSNS_UUID}/certs_pushed/{f}")))
                .unwrap(),
            "{f}"
        );
    }
}

mod blocks {
    //! The failure blocks of the messages log, from real handshakes on loopback: a device
    //! dials the FMC after the InternalCA's end (APPLIANCE.md's first block), and what the
    //! FMC logs when the device's alert reaches it. Each failure is the value the tunnel
    //! returned; its lines are laid out with a fixed stamp, pid and tid (the lab's clock runs),
    //! and the live log is checked to hold the same texts.

    use std::time::Duration;

    use sfdiag::judge::OpenSsl;
    use sfdiag::pki::layout::PkiRoot;
    use sfdiag::sftunnel::{Component, Line, Pid, Role, TidOrFrame, TlsSide};
    use sfdiag::tunnel::client::{Backoff, Client, ClientSettings};
    use sfdiag::tunnel::failure::{HandshakeFailure, Words};
    use sfdiag::tunnel::server::{Server, ServerEvent, ServerSettings, Timeouts};
    use sfdiag::tunnel::{Clock, SfLog, TlsFiles, TunnelError};
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;

    /// The lab's clock: a day after the InternalCA of [`lab`] ended.
    pub(super) const AFTER_END: OffsetDateTime = datetime!(2034-10-10 04:10:47 UTC);

    pub(super) fn timeouts() -> Timeouts {
        Timeouts {
            handshake: Duration::from_secs(10),
            hello: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            push: Duration::from_secs(10),
        }
    }

    pub(super) fn files(p: sfdiag::pki::layout::PeerFiles) -> TlsFiles {
        TlsFiles {
            ca: p.ca,
            cert: p.cert,
            key: p.key,
        }
    }

    /// `failure`'s lines in `words`, as the log prints them at `at` from `host`.
    pub(super) fn laid_out(
        failure: &HandshakeFailure,
        words: &Words,
        host: &str,
        pid: u32,
        tid: u32,
    ) -> Vec<String> {
        failure
            .log_lines(words)
            .iter()
            .map(|(level, text)| {
                Line {
                    at: AFTER_END.into(),
                    host,
                    pid: Pid::Process(pid),
                    tid_or_frame: Some(TidOrFrame::Tid(tid)),
                    component: Component::SfSsl,
                    level: *level,
                    text,
                }
                .to_string()
            })
            .collect()
    }

    /// The live log holds `laid` (stamps aside), in order, as one block.
    pub(super) fn live_holds(live: &[String], laid: &[String]) {
        let strip = |l: &str| l[16..].to_owned();
        let live: Vec<String> = live.iter().map(|l| strip(l)).collect();
        let laid: Vec<String> = laid.iter().map(|l| strip(l)).collect();
        assert!(
            live.windows(laid.len()).any(|w| w == laid),
            "live log:\n{}\nlacks:\n{}",
            live.join("\n"),
            laid.join("\n")
        );
    }

    #[test]
    fn the_devices_and_the_fmcs_failure_blocks_for_an_expired_internal_ca() {
        let d = tempfile::tempdir().unwrap();
        let root = PkiRoot::load(&lab(d.path())).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let clock = Clock::lab(AFTER_END);
        let (device, fmc, dev_log, fmc_log) = rt.block_on(async {
            let fmc_log = SfLog::memory("FMC", 1504, clock.clone());
            let server = Server::start(ServerSettings {
                listen: "127.0.0.1:0".into(),
                files: files(root.fmc_files()),
                peers: Some(sfdiag::tunnel::server::KnownPeer::of_root(&root)),
                clock: clock.clone(),
                log: fmc_log.clone(),
                keylog: None,
                control: None,
                timeouts: timeouts(),
            })
            .await
            .unwrap();
            let mut ev = server.handle().subscribe();
            let dev_log = SfLog::memory("BSNS-1120-1", 50792, clock.clone());
            let client = Client::new(ClientSettings {
                server: server.local_addr().to_string(),
                files: files(root.device_files("BSNS-1120-1").unwrap()),
                name: "BSNS-1120-1".into(),
                clock: clock.clone(),
                log: dev_log.clone(),
                keylog: None,
                timeouts: timeouts(),
                backoff: Backoff::default(),
            })
            .unwrap();
            let device = match client.once().await {
                Err(TunnelError::Handshake(f)) => f,
                other => panic!("expected a failed handshake, got {other:?}"),
            };
            let fmc = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Ok(ServerEvent::Failed { failure, .. }) = ev.recv().await {
                        return failure;
                    }
                }
            })
            .await
            .expect("the FMC's account of the failed connection");
            server.shutdown().await;
            (device, fmc, dev_log.lines(), fmc_log.lines())
        });
        let words = |side, role, openssl| Words {
            side,
            role,
            openssl,
            peer: None,
        };
        let dev = laid_out(
            &device,
            &words(TlsSide::Client, Role::Device, OpenSsl::V3),
            "BSNS-1120-1",
            50792,
            50793,
        );
        live_holds(&dev_log, &dev);
        let srv = laid_out(
            &fmc,
            &words(TlsSide::Server, Role::Fmc, OpenSsl::V3),
            "FMC",
            1504,
            1505,
        );
        live_holds(&fmc_log, &srv);
        let old = laid_out(
            &device,
            &words(TlsSide::Client, Role::Device, OpenSsl::V1_1_1),
            "BSNS-1120-1",
            50792,
            50793,
        );
        let old_fmc = laid_out(
            &fmc,
            &words(TlsSide::Server, Role::Fmc, OpenSsl::V1_1_1),
            "FMC",
            1504,
            1505,
        );
        let text = format!(
            "# the device, dialing (OpenSSL 3)\n{}\n# the FMC, accepting: the device's alert (OpenSSL 3)\n{}\n# the device with --openssl 1.1.1\n{}\n# the FMC with --openssl 1.1.1\n{}\n",
            dev.join("\n"),
            srv.join("\n"),
            old.join("\n"),
            old_fmc.join("\n")
        );
        golden(
            "failure-device.txt",
            "a device dials the FMC a day after the InternalCA ended (err 10 at depth 1); the FMC receives alert 45",
            &text,
        );
    }

    /// The FMC dialing a device after the InternalCA's end (APPLIANCE.md's second block):
    /// the device only listens (`DONTRESOLVE`), the FMC dials it, judges the device's chain
    /// and rejects it (err 10 at depth 1: the InternalCA, its own trust anchor, has ended);
    /// the device, accepting, receives the FMC's alert.
    #[test]
    fn the_fmcs_block_when_it_dials_a_device_after_the_internal_ca_ended() {
        use sfdiag::tunnel::DialTarget;
        let d = tempfile::tempdir().unwrap();
        let root = PkiRoot::load(&lab(d.path())).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let clock = Clock::lab(AFTER_END);
        let dev_ip = root.peer("BSNS-1120-1").unwrap().ip;
        let (fmc, dialed, fmc_log, dev_log) = rt.block_on(async {
            let fmc_log = SfLog::memory("FMC", 1504, clock.clone());
            let mut server = Server::start(ServerSettings {
                listen: "127.0.0.1:0".into(),
                files: files(root.fmc_files()),
                peers: Some(sfdiag::tunnel::server::KnownPeer::of_root(&root)),
                clock: clock.clone(),
                log: fmc_log.clone(),
                keylog: None,
                control: None,
                timeouts: timeouts(),
            })
            .await
            .unwrap();
            let mut ev = server.handle().subscribe();
            // The device listens at its own address on the port the FMC listens on, as
            // both listen on 8305 on the appliances.
            let at = std::net::SocketAddr::new(dev_ip, server.local_addr().port());
            let listener = tokio::net::TcpListener::bind(at).await.unwrap();
            let dev_log = SfLog::memory("BSNS-1120-1", 50792, clock.clone());
            let device = Client::new(ClientSettings {
                server: server.local_addr().to_string(),
                files: files(root.device_files("BSNS-1120-1").unwrap()),
                name: "BSNS-1120-1".into(),
                clock: clock.clone(),
                log: dev_log.clone(),
                keylog: None,
                timeouts: timeouts(),
                backoff: Backoff::default(),
            })
            .unwrap()
            .spawn_listen_only(listener);
            server.dial(
                vec![DialTarget {
                    name: "BSNS-1120-1".into(),
                    uuid: BSNS_UUID.into(),
                    addr: at,
                }],
                Backoff {
                    initial: Duration::from_secs(30),
                    max: Duration::from_secs(30),
                },
            );
            server.handle().redial(BSNS_UUID);
            let fmc = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Ok(ServerEvent::DialFailed { failure, addr, .. }) = ev.recv().await {
                        return (failure, addr);
                    }
                }
            })
            .await
            .expect("the FMC's failed dial");
            // The device's account of the alert it received (bounded).
            for _ in 0..200 {
                if dev_log
                    .lines()
                    .iter()
                    .any(|l| l.contains("Accept:SSL handshake failed"))
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            device.stop().await;
            server.shutdown().await;
            (fmc.0, fmc.1, fmc_log.lines(), dev_log.lines())
        });
        assert!(
            matches!(fmc, HandshakeFailure::Rejected(_)),
            "the FMC rejects the device's chain: {fmc:?}"
        );
        let words = |openssl, peer| Words {
            side: TlsSide::Client,
            role: Role::Fmc,
            openssl,
            peer: Some(peer),
        };
        // The dialer's first connection is the log's first thread after the main one.
        let live = laid_out(&fmc, &words(OpenSsl::V3, dialed), "FMC", 1504, 1505);
        live_holds(&fmc_log, &live);
        // Laid out as the appliance's (APPLIANCE.md's pid and tid), which dials 8305.
        let on_8305 = std::net::SocketAddr::new(dialed.ip(), 8305);
        let v3 = laid_out(&fmc, &words(OpenSsl::V3, on_8305), "FMC", 1504, 4171);
        let old = laid_out(&fmc, &words(OpenSsl::V1_1_1, on_8305), "FMC", 1504, 4171);
        // The device's lines as it logged them (its stamps are the running lab clock's).
        let stamp = &v3[0][..16];
        let dev: Vec<String> = dev_log
            .iter()
            .filter(|l| l.contains("SSL_renegotiate error") || l.contains("Accept:SSL"))
            .map(|l| format!("{stamp}{}", &l[16..]))
            .collect();
        assert_eq!(dev.len(), 2, "{}", dev_log.join("\n"));
        let text = format!(
            "# the FMC, dialing the device (OpenSSL 3)\n{}\n# the FMC with --openssl 1.1.1\n{}\n# the device, accepting: the FMC's alert (OpenSSL 3)\n{}\n",
            v3.join("\n"),
            old.join("\n"),
            dev.join("\n")
        );
        golden(
            "failure-fmc-dialing.txt",
            "the FMC dials a device a day after the InternalCA ended (err 10 at depth 1); the device receives alert 45",
            &text,
        );
    }
}

/// `status --brief` (the FTD CLI's `sftunnel-status-brief`) for APPLIANCE.md's own peer, up
/// and then down, from rows holding its facts: its addresses and its times.
#[test]
fn status_brief_up_and_down_as_the_ftd_cli_prints_them() {
    use sfdiag::sftunnel::Channel;
    use sfdiag::tunnel::status::ChannelStatus;
    use sfdiag::tunnel::status::PeerStatus;
    use time::macros::datetime;

    let channel = |channel| ChannelStatus {
        channel,
        peer: "10.10.17.202:8305".into(),
        local: "10.10.17.222:48512".into(),
        iface: "eth0".into(),
        dialed_by: "device".into(),
        since: Some(datetime!(2020-06-10 14:27:12 UTC)),
    };
    let up = PeerStatus {
        connected: true,
        since: Some(datetime!(2020-06-10 14:27:12 UTC)),
        channels: vec![channel(Channel::Control), channel(Channel::Events)],
        heartbeat_sent: Some(datetime!(2020-06-15 09:02:08 UTC)),
        last_heartbeat: Some(datetime!(2020-06-15 09:02:16 UTC)),
        ..PeerStatus::unseen("FMC".into(), FMC_UUID.into(), "10.10.17.202".into())
    };
    let down = PeerStatus {
        connected: false,
        since: Some(datetime!(2020-06-15 09:19:09 UTC)),
        attempted: Some(datetime!(2020-06-15 09:21:57 UTC)),
        down_reason: Some("closed by peer".into()),
        ..up.clone()
    };
    let mut text = String::new();
    for (what, row) in [("# up", up), ("# down", down)] {
        let mut out = Vec::new();
        sfdiag::report::status::brief(&mut out, &[row]).unwrap();
        text.push_str(&format!("{what}\n{}", String::from_utf8(out).unwrap()));
    }
    golden(
        "status-brief.txt",
        "sftunnel-status-brief for APPLIANCE.md's peer 10.10.17.202 (via 10.10.17.222), up, then down",
        &text,
    );
}

/// The OpenSSL 3 strings the blocks quote are the installed OpenSSL's own: `s_client` judging
/// an expired InternalCA (`-attime` past its end) queues the error our dialing device logs,
/// and `s_server` receiving its alert queues the one our FMC logs (codes and reasons; the
/// printed queue adds function names and source lines that `ERR_error_string` leaves out).
#[test]
fn the_openssl_3_error_strings_are_those_of_openssl_itself() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use sfdiag::judge::OpenSsl;
    use sfdiag::sftunnel::{Role, TlsSide};
    use sfdiag::tls::AlertDescription;
    use sfdiag::tunnel::failure::{OpenSslError, Words, openssl_error};

    assert!(
        crate::common::have_openssl(),
        "this test runs openssl s_server/s_client (.ci/run installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let root = lab(d.path());
    let fmc = root.join("fmc/etc/sf");
    let dev = root.join(format!("BSNS-1120-1/var/sf/peers/{FMC_UUID}"));
    let srv_err = d.path().join("s_server.err");
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-tls1_2",
            "-naccept",
            "1",
        ])
        .args(["-Verify", "1", "-verify_return_error"])
        .arg("-CAfile")
        .arg(fmc.join("ca_root/cacert.pem"))
        .arg("-cert")
        .arg(fmc.join("keys/sftunnel-cert.pem"))
        .arg("-key")
        .arg(fmc.join("keys/sftunnel-key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&srv_err).unwrap())
        .spawn()
        .unwrap();
    // `ACCEPT 127.0.0.1:PORT` is its first line on stdout.
    let mut out = server.stdout.take().unwrap();
    let mut seen = Vec::new();
    let started = Instant::now();
    let addr = loop {
        let mut b = [0u8; 256];
        let n = out.read(&mut b).unwrap();
        assert!(
            n > 0 && started.elapsed() < Duration::from_secs(20),
            "no ACCEPT line"
        );
        seen.extend_from_slice(&b[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(l) = text.lines().find(|l| l.starts_with("ACCEPT ")) {
            break l.trim_start_matches("ACCEPT ").trim().to_owned();
        }
    };
    // Twelve days after the InternalCA's end (2034-10-09T10:12:50Z is unix 2044001970).
    let client = Command::new("openssl")
        .args(["s_client", "-connect", &addr, "-tls1_2", "-verify", "2"])
        .args(["-verify_return_error", "-attime", "2045000000"])
        .arg("-CAfile")
        .arg(dev.join("cacert.pem"))
        .arg("-cert")
        .arg(dev.join("sftunnel-cert.pem"))
        .arg("-key")
        .arg(dev.join("sftunnel-key.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let started = Instant::now();
    while server.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    let client_err = String::from_utf8_lossy(&client.stderr).into_owned();
    let server_err = std::fs::read_to_string(&srv_err).unwrap();
    let words = |side| Words {
        side,
        role: Role::Device,
        openssl: OpenSsl::V3,
        peer: None,
    };
    for (ours, theirs) in [
        (
            openssl_error(OpenSslError::VerifyFailed, &words(TlsSide::Client)),
            &client_err,
        ),
        (
            openssl_error(
                OpenSslError::Alert(AlertDescription::CERTIFICATE_EXPIRED),
                &words(TlsSide::Server),
            ),
            &server_err,
        ),
    ] {
        // error:CODE:SSL routines::REASON
        let parts: Vec<&str> = ours.splitn(5, ':').collect();
        let (code, reason) = (parts[1], parts[4]);
        assert!(
            theirs
                .lines()
                .any(|l| l.contains(&format!("error:{code}:SSL routines:"))
                    && l.contains(&format!(":{reason}:"))),
            "{ours} not in:\n{theirs}"
        );
    }
}

/// A peer that breaks the protocol before any certificate is judged (another TLS version,
/// bytes that are not TLS, a record out of order) is logged by our FMC with the error the
/// installed OpenSSL 3 queues for the very same bytes: each input goes to `sfdiag serve` and to
/// `openssl s_server` with the same files, and both must name the same code and reason
/// (`SSL_renegotiate error: 1: error:0A00010B:SSL routines::wrong version number`), never
/// rustls' words.
#[test]
fn protocol_errors_are_logged_as_openssl_3_words_them_for_the_same_bytes() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use crate::tunnel::{Proc, s_server, serve};

    assert!(
        crate::common::have_openssl(),
        "this test runs openssl s_server/s_client (.ci/run installs it)"
    );
    let d = tempfile::tempdir().unwrap();
    let root = lab(d.path());
    let fmc = root.join("fmc/etc/sf");
    let side = crate::tunnel::Side {
        ca: fmc.join("ca_root/cacert.pem"),
        cert: fmc.join("keys/sftunnel-cert.pem"),
        key: fmc.join("keys/sftunnel-key.pem"),
    };
    let files = side.args();
    // Sends `bytes`, reads until the peer closes (bounded), drops the socket.
    let poke = |addr: &str, bytes: &[u8]| {
        let mut t = TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = t.write_all(bytes);
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match t.read(&mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    };
    let cases: [(&str, Vec<u8>, &str, &str); 9] = [
        (
            "http",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "0A00009C",
            "http request",
        ),
        (
            "proxy",
            b"CONNECT x:8305 HTTP/1.1\r\n\r\n".to_vec(),
            "0A00009B",
            "https proxy request",
        ),
        (
            "text",
            b"\x1b[31mhello\r\nSep 20 FAKE\n".to_vec(),
            "0A00010B",
            "wrong version number",
        ),
        ("nul", vec![0u8; 600], "0A00010B", "wrong version number"),
        (
            "sslv2",
            [
                &[
                    0x80, 0x31, 0x01, 0x00, 0x03, 0x00, 0x18, 0x00, 0x00, 0x00, 0x10,
                ][..],
                &[0x11; 0x28],
            ]
            .concat(),
            "0A0000FC",
            "unknown protocol",
        ),
        (
            "ccs",
            vec![0x14, 3, 3, 0, 1, 1],
            "0A0000F4",
            "unexpected message",
        ),
        (
            "appdata",
            [&[0x17, 3, 3, 0, 16][..], &[0x22; 16]].concat(),
            "0A0000F4",
            "unexpected message",
        ),
        (
            "alert",
            vec![0x15, 3, 3, 0, 2, 2, 40],
            "0A0000F4",
            "unexpected message",
        ),
        (
            "empty",
            [0x16, 3, 3, 0, 0].repeat(50),
            "0A00012A",
            "record too small",
        ),
    ];
    let (srv, addr) = serve(&files);
    for (name, bytes, code, reason) in &cases {
        let (oss, oaddr) = s_server(&side, &["-naccept", "1"]);
        poke(&oaddr, bytes);
        let theirs = oss.wait_for(20, |l| l.contains(":error:"));
        assert!(
            theirs.contains(&format!(":error:{code}:SSL routines:"))
                && theirs.contains(&format!(":{reason}:")),
            "{name}: openssl says {theirs}"
        );
        drop(oss);
        poke(&addr, bytes);
        let want = format!("[ERROR] SSL_renegotiate error: 1: error:{code}:SSL routines::{reason}");
        srv.wait_for(20, |l| l.ends_with(&want));
    }
    // The device dialing something that answers in HTTP: `wrong version number`, as
    // `openssl s_client` says to the same answer.
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let haddr = http.local_addr().unwrap().to_string();
    let answering = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut c, _)) = http.accept() else {
                return;
            };
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.read(&mut [0u8; 4096]);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let theirs = crate::tunnel::run(
        std::process::Command::new("openssl")
            .args(["s_client", "-connect", &haddr])
            .stdin(std::process::Stdio::null()),
        20,
    );
    let theirs = String::from_utf8_lossy(&theirs.stderr).into_owned();
    assert!(
        theirs.contains(":error:0A00010B:SSL routines:")
            && theirs.contains(":wrong version number:"),
        "{theirs}"
    );
    let dev = root.join(format!("BSNS-1120-1/var/sf/peers/{FMC_UUID}"));
    let (_, ours) = crate::tunnel::connect_once(
        &haddr,
        &crate::tunnel::Side {
            ca: dev.join("cacert.pem"),
            cert: dev.join("sftunnel-cert.pem"),
            key: dev.join("sftunnel-key.pem"),
        },
        &[],
    );
    answering.join().unwrap();
    assert!(
        ours.contains(
            "[ERROR] SSL_renegotiate error: 1: error:0A00010B:SSL routines::wrong version number"
        ),
        "{ours}"
    );

    let log = srv.text();
    assert!(!log.contains("corrupt message"), "{log}");
    assert!(!log.contains("received unexpected message"), "{log}");
    drop(srv);

    // TLS 1.2 only against a TLS 1.3 FMC, and 1.3 only against 1.2: `unsupported protocol`,
    // as `openssl s_server` says for the same ClientHello.
    for (server, client) in [("1.3", "-tls1_3"), ("1.2", "-tls1_2")] {
        let offered = if client == "-tls1_3" {
            "-tls1_2"
        } else {
            "-tls1_3"
        };
        let mut args = files.clone();
        args.extend(["--tls-version".to_owned(), server.to_owned()]);
        let (srv, addr) = serve(&args);
        let oss = Proc::spawn(
            std::process::Command::new("openssl")
                .args([
                    "s_server",
                    "-accept",
                    "127.0.0.1:0",
                    "-naccept",
                    "1",
                    client,
                ])
                .args(["-cert", s(&side.cert), "-key", s(&side.key)]),
        );
        let oaddr = oss
            .wait_for(20, |l| l.starts_with("ACCEPT "))
            .trim_start_matches("ACCEPT ")
            .trim()
            .to_owned();
        for a in [&oaddr, &addr] {
            let _ = crate::tunnel::run(
                std::process::Command::new("openssl")
                    .args(["s_client", "-connect", a, offered])
                    .stdin(std::process::Stdio::null()),
                20,
            );
        }
        let theirs = oss.wait_for(20, |l| l.contains(":error:"));
        assert!(
            theirs.contains(":error:0A000102:SSL routines:")
                && theirs.contains(":unsupported protocol:"),
            "openssl {client}: {theirs}"
        );
        srv.wait_for(20, |l| {
            l.ends_with("[ERROR] SSL_renegotiate error: 1: error:0A000102:SSL routines::unsupported protocol")
        });
        assert!(!srv.text().contains("incompatible"), "{}", srv.text());
    }
}
