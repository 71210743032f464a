//! `sfdiag lab`: the default story (in-process, through the library), `not-pushed` (through
//! the binary, with `--root` and `--pcap`) and `upgrade-76` (TLS 1.3, its key log read back by
//! tshark), asserted on the appliances' log lines, FAILED_PUSH,
//! the files on each device tree, the status tables, `openssl verify` of every renewed
//! certificate, and the capture read back by `sfdiag analyze` and tshark. Every wait has a
//! deadline; everything binds 127.0.0.1 port 0.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfdiag::lab::{self, LabOptions, LabReport, Out, Scenario};

use crate::common::{have_openssl, sfdiag};
use crate::renew::{ims, verifies};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
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

/// The appliance's log lines (`Mon DD HH:MM:SS HOST SF-IMS[pid]: [tid] sftunnel:... TEXT`) of
/// `host`, as (component+level, text).
fn lines_of<'a>(transcript: &'a str, host: &str) -> Vec<&'a str> {
    transcript
        .lines()
        .filter(|l| {
            l.get(16..)
                .is_some_and(|r| r.starts_with(&format!("{host} SF-IMS[")))
        })
        .collect()
}

fn step<'a>(r: &'a LabReport, title: &str) -> &'a lab::StepReport {
    r.steps
        .iter()
        .find(|s| s.title == title)
        .unwrap_or_else(|| panic!("no step {title:?} in {:?}", r.steps))
}

fn connected(st: &lab::StepReport, name: &str) -> bool {
    st.peers.iter().find(|p| p.name == name).unwrap().connected
}

/// `openssl verify` at the lab time `at` (RFC 3339): lab certificates live years ahead.
fn openssl_verify(ca: &Path, cert: &Path, at: &str) {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
        .to_string();
    verifies(ca, cert, Some(&t));
}

#[test]
fn default_story_expiry_failed_push_copy_and_recovery() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let buf = Buf::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = LabOptions {
        root: Some(root.clone()),
        pcap: None,
        no_analysis: false,
        ..LabOptions::default()
    };
    let report = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(180),
                lab::run(Scenario::Expiry, &opts, Out::new(buf.clone())),
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

    // The reboot: ftd3 rejects the expired InternalCA at depth 1, the FMC logs the alert.
    let ftd3 = lines_of(&t, "ftd3");
    let i = ftd3
        .iter()
        .position(|l| l.ends_with("sftunnel:sf_ssl [ERROR] -Error with certificate at depth 1"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(ftd3[i + 1].contains("[ERROR] issuer = /title=InternalCA/OU=Intrusion Management System/CN=cdb123c8-4347-11ef-aca1-f3aa241412a1/O=Cisco Systems, Inc"));
    assert!(ftd3[i + 3].ends_with("sftunnel:sf_ssl [ERROR] err 10:certificate has expired"));
    // APPLIANCE.md's block, line for line, after the verify callback's four lines.
    assert!(ftd3[i + 4].ends_with(
        "sftunnel:sf_ssl [ERROR] SSL_renegotiate error: 1: error:0A000086:SSL routines::certificate verify failed"
    ));
    assert!(ftd3[i + 5].ends_with("sftunnel:sf_ssl [ERROR] Connect:SSL handshake failed"));
    assert!(
        ftd3[i + 6]
            .ends_with("sftunnel:sf_ssl [WARN] SSL Verification status: certificate has expired")
    );
    let fmc = lines_of(&t, "FMC");
    let j = fmc
        .iter()
        .position(|l| {
            l.ends_with(
                "[ERROR] SSL_renegotiate error: 1: error:0A000415:SSL routines::sslv3 alert certificate expired",
            )
        })
        .unwrap_or_else(|| panic!("{t}"));
    assert!(fmc[j + 1].ends_with("[ERROR] Accept:SSL handshake failed"));
    // The FMC dials ftd3 too (it dials and listens): APPLIANCE.md's second block, the
    // FMC's, after its verify callback rejected ftd3's chain at the InternalCA.
    let k = fmc
        .iter()
        .position(|l| {
            l.contains("[INFO] VERIFY ssl_verify_callback_internal: preverify_ok=0 depth=1 err 10:certificate has expired")
        })
        .unwrap_or_else(|| panic!("{t}"));
    assert!(fmc[k + 1].ends_with(
        "[ERROR] SSL_renegotiate error: 1: error:0A000086:SSL routines::certificate verify failed"
    ));
    assert!(
        fmc[k + 2].contains("[WARN] establishConnectionUtil: SSL handshake failed with 127.1.0.3:")
    );
    assert!(
        fmc[k + 9].ends_with("[ERROR] establishSSLConnection: Failed to connect to peer 127.1.0.3")
    );
    // ftd3, accepting, received the FMC's alert.
    assert!(ftd3.iter().any(|l| l.ends_with(
        "[ERROR] SSL_renegotiate error: 1: error:0A000415:SSL routines::sslv3 alert certificate expired"
    )));
    // Two channels per device, each its own connection: ftd1 dials both, the FMC dials both
    // of ftd2's (DONTRESOLVE).
    for (dev, by) in [
        ("ftd1", "dialed by the peer"),
        ("ftd2", "dialed by the FMC"),
    ] {
        for ch in ["Channel-A CONTROL", "Channel-B EVENT"] {
            assert!(
                fmc.iter().any(|l| l.contains(&format!("Peer {dev} ("))
                    && l.ends_with(&format!(": {ch} ({by})"))),
                "{dev} {ch} {by}: {t}"
            );
        }
    }
    // status --brief: both channels of each of the three devices when all are up, and
    // ftd3's down block after its reboot.
    let brief = t.split("--brief\n").nth(1).unwrap_or_else(|| panic!("{t}"));
    let brief = &brief[..brief.find("\n\n===").unwrap_or(brief.len())];
    for ip in ["127.1.0.1", "127.1.0.2", "127.1.0.3"] {
        for ch in [
            "Channel-A is valid type (CONTROL)",
            "Channel-B is valid type (EVENT)",
        ] {
            assert!(
                brief.contains(&format!(
                    "Peer channel {ch}, using 'lo', connected to '{ip}' via '127.0.0.1'"
                )),
                "{ip} {ch}: {brief}"
            );
        }
    }
    let down = t.split("--brief\n").nth(2).unwrap_or_else(|| panic!("{t}"));
    let ftd3_block = &down[down
        .find("PEER:127.1.0.3\n")
        .unwrap_or_else(|| panic!("{down}"))..];
    let ftd3_block: Vec<&str> = ftd3_block.lines().take(5).collect();
    assert_eq!(ftd3_block[1], "Registration: Completed.", "{down}");
    assert!(
        ftd3_block[2].starts_with("Connection to peer '127.1.0.3' Attempted at Wed Oct  4 12:26:"),
        "{down}"
    );
    assert!(
        ftd3_block[3].starts_with("Last disconnect time : Wed Oct  4 12:26:"),
        "{down}"
    );
    assert_eq!(
        ftd3_block[4],
        "Last disconnect reason : Both control and event channel connections with peer went down"
    );
    // Lines carry the lab clock: the failure happened after the CA's end (Oct 3 2034).
    assert!(ftd3[i].starts_with("Oct  4 "), "{}", ftd3[i]);
    // The pushes: two devices took their files and restarted.
    for dev in ["ftd1", "ftd2"] {
        assert!(
            lines_of(&t, dev)
                .iter()
                .any(|l| l.contains("Restarting tunnel: new certificates from push"))
        );
        assert!(fmc.iter().any(|l| l.contains(&format!("Peer {dev} acknowledged push")) && l.contains(": ok")));
    }
    assert!(fmc.iter().any(|l| l.contains("Loaded new certificates")));
    // copy_sftunnel_certs.py's lines, stamped with the lab clock (the copy step starts at
    // 2034-10-04 12:46:56 and takes well under a minute).
    for l in [
        "fmc is not an HA-peer. Certificates will not be copied",
        "Attempting connection to ftd3",
        "Successfully copied certificates to ftd3",
        "Restarting sftunnel for ftd3",
        "Closing connection with ftd3",
    ] {
        assert!(
            t.lines().any(|x| x.starts_with("2034-10-04 12:46:")
                && x.len() == 22 + l.len()
                && x.ends_with(&format!(" - {l}"))),
            "missing {l:?}"
        );
    }

    // FAILED_PUSH lists ftd3's three files, and only those.
    assert_eq!(report.failed_push.len(), 1);
    let (fp, list) = &report.failed_push[0];
    assert!(fp.starts_with(root.join("fmc/var/tmp/certs")));
    assert_eq!(std::fs::read_to_string(fp).unwrap(), *list);
    let fmc_uuid = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
    let ftd3_uuid = ims(&root, "ftd3", "APPLIANCE_UUID");
    let ftd3_ip = ims(&root, "ftd3", "APPLIANCE_IP");
    // As the appliance writes it: the CA from ca_root, `certs_pushed//`, cacert, key, cert.
    let want: Vec<String> = ["cacert.pem", "sftunnel-key.pem", "sftunnel-cert.pem"]
        .iter()
        .map(|f| {
            let source = match *f {
                "cacert.pem" => "/etc/sf/ca_root/cacert.pem".to_string(),
                _ => format!("/var/sf/peers/{ftd3_uuid}/certs_pushed//{f}"),
            };
            format!("{ftd3_uuid} ftd3 {ftd3_ip} {source} /var/sf/peers/{fmc_uuid}/{f}")
        })
        .collect();
    assert_eq!(list.lines().collect::<Vec<_>>(), want);

    // Status along the way, and at the end.
    let expired = step(&report, "expired, still up");
    assert!(
        ["ftd1", "ftd2", "ftd3"]
            .iter()
            .all(|n| connected(expired, n))
    );
    let down = step(&report, "ftd3 down");
    assert!(connected(down, "ftd1") && connected(down, "ftd2") && !connected(down, "ftd3"));
    let renewed = step(&report, "renewed");
    assert!(
        connected(renewed, "ftd1") && connected(renewed, "ftd2") && !connected(renewed, "ftd3")
    );
    let last = step(&report, "all connected");
    assert!(["ftd1", "ftd2", "ftd3"].iter().all(|n| connected(last, n)));
    assert!(
        last.peers
            .iter()
            .all(|p| p.cert_not_after == Some(time::macros::datetime!(2044-10-01 12:36:56 UTC))),
        "{:?}",
        last.peers
    );

    // Files: every device holds what the FMC pushed or copied; the old set is kept on ftd3
    // (pki copy) and on the FMC (renew).
    let ca = root.join("fmc/etc/sf/ca_root/cacert.pem");
    assert!(root.join("fmc/etc/sf/ca_root/cacert.pem.backup").is_file());
    for dev in ["ftd1", "ftd2", "ftd3"] {
        let uuid = ims(&root, dev, "APPLIANCE_UUID");
        let own = root.join(format!("{dev}/var/sf/peers/{fmc_uuid}"));
        for f in ["cacert.pem", "sftunnel-cert.pem", "sftunnel-key.pem"] {
            assert_eq!(
                std::fs::read(own.join(f)).unwrap(),
                std::fs::read(root.join(format!("fmc/var/sf/peers/{uuid}/certs_pushed/{f}")))
                    .unwrap(),
                "{dev} {f}"
            );
        }
        assert_eq!(
            std::fs::read(own.join("cacert.pem")).unwrap(),
            std::fs::read(&ca).unwrap()
        );
        if have_openssl() {
            openssl_verify(&ca, &own.join("sftunnel-cert.pem"), &last.at);
        }
    }
    assert!(
        root.join(format!(
            "ftd3/var/sf/peers/{fmc_uuid}/sftunnel-cert.pem.backup"
        ))
        .is_file()
    );
    if have_openssl() {
        openssl_verify(
            &ca,
            &root.join("fmc/etc/sf/keys/sftunnel-cert.pem"),
            &last.at,
        );
    }
    // validate at the lab's end time passes for all three.
    let validated = t.rsplit("$ sfdiag validate").next().unwrap();
    assert_eq!(validated.matches(": ok, TLSv1.2").count(), 3, "{t}");

    // The capture: the analyzer found the expired CA in ftd3's failed handshake.
    assert!(report.packets > 50);
    assert!(report.analysis_problems.unwrap() >= 1);
    assert!(t.contains("err 10:certificate has expired (depth 1"), "{t}");
    assert!(
        t.contains("received fatal alert 45 certificate_expired"),
        "{t}"
    );
    let o = sfdiag()
        .args(["analyze", "--format", "jsonl", s(&report.pcap)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "alert" && v["code"] == 45)
        .collect();
    // The capture holds two TLS connections per device at the start (control and events),
    // named by the analyzer from the certificates: ftd1's and ftd3's dialed by the device,
    // ftd2's by the FMC.
    let sessions: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| {
            v["type"] == "session"
                && v["outcome"] == "established"
                && v["first_ts"].as_str().unwrap().starts_with("2034-10-01T")
        })
        .collect();
    for (dev, dialed_by_fmc) in [("ftd1", false), ("ftd2", true), ("ftd3", false)] {
        let uuid = ims(&root, dev, "APPLIANCE_UUID");
        let ip = ims(&root, dev, "APPLIANCE_IP");
        let mine: Vec<&serde_json::Value> = sessions
            .iter()
            .filter(|v| {
                let (client, server) = if dialed_by_fmc {
                    ("client_identity", "server_identity")
                } else {
                    ("server_identity", "client_identity")
                };
                v[server]["uuid"] == uuid.as_str()
                    && v[client]["uuid"] == fmc_uuid
                    && v[if dialed_by_fmc { "server" } else { "client" }]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{ip}:"))
            })
            .collect();
        assert_eq!(mine.len(), 2, "{dev}: {sessions:?}");
    }
    // ftd3's reboot, and any retry it made (every 2 s, then 4 s) before the copy.
    assert!(
        !alerts.is_empty(),
        "ftd3's failed reconnect is in the capture"
    );
    // Stamped with the lab clock at ftd3's reboot (10 minutes after the jump past the CA's end).
    assert!(
        alerts[0]["ts"]
            .as_str()
            .unwrap()
            .starts_with("2034-10-04T12:2"),
        "{}",
        alerts[0]
    );
}

#[test]
fn not_pushed_story_through_the_binary_err_7_until_copy() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab");
    let pcap = d.path().join("np.pcap");
    let mut child = sfdiag()
        .args(["lab", "not-pushed", "--root", s(&root), "--pcap", s(&pcap)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("sfdiag lab not-pushed did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = child.wait_with_output().unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        status.success(),
        "{t}{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // ftd2 came back with the old files: signature failure at depth 0, alert 51 at the FMC.
    let ftd2 = lines_of(&t, "ftd2");
    let i = ftd2
        .iter()
        .position(|l| l.ends_with("[ERROR] err 7:certificate signature failure"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(ftd2[i - 3].ends_with("[ERROR] -Error with certificate at depth 0"));
    assert!(ftd2[i - 1].contains(
        "subject = /generationQualifier=sftunnel/title=cdb123c8-4347-11ef-aca1-f3aa241412a1/"
    ));
    assert!(ftd2[i + 2].ends_with("[ERROR] Connect:SSL handshake failed"));
    assert!(lines_of(&t, "FMC").iter().any(|l| {
        l.ends_with(
            "[ERROR] SSL_renegotiate error: 1: error:0A00041B:SSL routines::tlsv1 alert decrypt error",
        )
    }));

    // FAILED_PUSH: ftd2's three files.
    let certs = root.join("fmc/var/tmp/certs");
    let dirs: Vec<_> = std::fs::read_dir(&certs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let list = std::fs::read_to_string(dirs[0].join("FAILED_PUSH")).unwrap();
    let ftd2_uuid = ims(&root, "ftd2", "APPLIANCE_UUID");
    assert_eq!(list.lines().count(), 3);
    assert!(
        list.lines()
            .all(|l| l.starts_with(&format!("{ftd2_uuid} ftd2 127.1.0.2 /"))),
        "{list}"
    );

    // validate fails for ftd2 before the copy and passes after, at the same lab time.
    let before = t
        .lines()
        .find(|l| l.starts_with("ftd2 (") && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        before.contains(
            "device rejected the FMC's certificate: err 7:certificate signature failure at depth 0"
        ),
        "{before}"
    );
    assert!(before.contains("alert 51"), "{before}");
    let copy_at = t.find("Successfully copied certificates to ftd2").unwrap();
    assert!(t.find(before).unwrap() < copy_at);
    assert!(
        t[copy_at..]
            .lines()
            .any(|l| l.starts_with("ftd2 (") && l.contains(": ok, TLSv1.2"))
    );
    assert!(
        t[copy_at..]
            .lines()
            .any(|l| l.starts_with("ftd1 (") && l.contains(": ok, TLSv1.2"))
    );

    // The last status table: both connected.
    let last_table = t.rsplit("$ sfdiag status").next().unwrap();
    for dev in ["ftd1", "ftd2"] {
        let row = last_table.lines().find(|l| l.starts_with(dev)).unwrap();
        assert!(row.split_whitespace().nth(3) == Some("connected"), "{row}");
    }

    // Device files after the copy, checked with openssl against the new CA.
    let fmc_uuid = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
    let own = root.join(format!("ftd2/var/sf/peers/{fmc_uuid}"));
    assert_eq!(
        std::fs::read(own.join("sftunnel-cert.pem")).unwrap(),
        std::fs::read(root.join(format!(
            "fmc/var/sf/peers/{ftd2_uuid}/certs_pushed/sftunnel-cert.pem"
        )))
        .unwrap()
    );
    if have_openssl() {
        // Half a minute into the lab's last hour: after the renewal, before anything ends.
        openssl_verify(
            &root.join("fmc/etc/sf/ca_root/cacert.pem"),
            &own.join("sftunnel-cert.pem"),
            "2029-06-03T14:00:30Z",
        );
        // The old set is kept beside, and it does not verify against the new CA.
        let o = Command::new("openssl")
            .args([
                "verify",
                "-attime",
                "1875189630",
                "-CAfile",
                s(&root.join("fmc/etc/sf/ca_root/cacert.pem")),
                s(&own.join("sftunnel-cert.pem.backup")),
            ])
            .output()
            .unwrap();
        assert!(!o.status.success());
    }

    // The capture named by --pcap is kept and readable by tshark.
    assert!(pcap.is_file());
    if Command::new("tshark").arg("-v").output().is_ok() {
        let o = Command::new("tshark")
            .args([
                "-r",
                s(&pcap),
                "-Y",
                "tls.alert_message.desc == 51",
                "-T",
                "fields",
                "-e",
                "frame.time_epoch",
            ])
            .output()
            .unwrap();
        assert!(o.status.success());
        let times: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        // ftd2's return, and any retry before the copy.
        assert!(
            !times.is_empty(),
            "the decrypt_error alert is in the capture"
        );
        // Stamped with the lab clock (2029-06-03 14:00 UTC = 1875189600), not the machine's.
        let secs: f64 = times[0].parse().unwrap();
        assert!((1_875_189_600.0..1_875_189_660.0).contains(&secs), "{secs}");
    }
}

#[test]
fn lab_lists_its_scenarios_and_refuses_unknown_ones() {
    let o = sfdiag().args(["lab", "--list"]).output().unwrap();
    assert!(o.status.success());
    let t = String::from_utf8_lossy(&o.stdout);
    let names: Vec<&str> = t
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "expiry",
            "ha",
            "ha-secondary",
            "not-pushed",
            "expiring",
            "upgrade-76"
        ]
    );
    let o = sfdiag().args(["lab", "nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown scenario \"nope\""));
}

#[test]
fn upgrade_76_story_refuses_the_old_ca_certificate_on_tls13_and_writes_the_key_log() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("lab76");
    let pcap = d.path().join("u76.pcap");
    let buf = Buf::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = LabOptions {
        root: Some(root.clone()),
        pcap: Some(pcap.clone()),
        ..LabOptions::default()
    };
    let started = Instant::now();
    let report = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(180),
                lab::run(Scenario::Upgrade76, &opts, Out::new(buf.clone())),
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
    let took = started.elapsed();
    let t = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    // Every appliance runs TLS 1.3, as proxy_tls_version says.
    let conf = std::fs::read_to_string(root.join("fmc/etc/sf/sftunnel.conf")).unwrap();
    assert!(conf.contains("proxy_tls_version TLSv1.3;"), "{conf}");
    let fmc = lines_of(&t, "FMC");
    assert!(
        fmc.iter()
            .any(|l| l.contains("(TLSv1.3, TLS_AES_256_GCM_SHA384)")),
        "{t}"
    );
    // The FMC refuses ftd2's certificate of the old CA: OpenSSL's verify block, then 7.6's.
    let i = fmc
        .iter()
        .position(|l| l.ends_with("[ERROR] err 7:certificate signature failure"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        fmc[i - 3].ends_with("[ERROR] -Error with certificate at depth 0"),
        "{t}"
    );
    assert!(
        fmc[i - 1].contains("[ERROR] subject = /generationQualifier=sftunnel_d1e2f3a4-"),
        "{t}"
    );
    // The appliance's failure block (OpenSSL 3's error string, `Accept:`), then 7.6's lines.
    for (k, want) in [
        "SSL_renegotiate error: 1: error:0A000086:SSL routines::certificate verify failed",
        "Accept:SSL handshake failed",
        "SSL Verification status: certificate signature failure",
        "Unable to set Post Handshake Auth SSL context: SSL_verify_client_post_handshake:extension not received",
        "Failed to reload credentials",
        "Failed to add services",
        "Peer 127.1.0.2 needs re-connect",
    ]
    .iter()
    .enumerate()
    {
        assert!(fmc[i + 1 + k].ends_with(want), "{want}: {t}");
    }
    // ftd2 gets OpenSSL's alert for err 7 (decrypt_error) and says its handshake failed.
    let ftd2 = lines_of(&t, "ftd2");
    let j = ftd2
        .iter()
        .position(|l| {
            l.ends_with(
                "[ERROR] SSL_renegotiate error: 1: error:0A00041B:SSL routines::tlsv1 alert decrypt error",
            )
        })
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        ftd2[j + 1].ends_with("[ERROR] Connect:SSL handshake failed"),
        "{t}"
    );
    // The narration says how the appliance differs.
    assert!(
        t.contains("after the handshake (post-handshake authentication)"),
        "{t}"
    );
    let refused = step(&report, "ftd2 refused");
    assert!(connected(refused, "ftd1") && !connected(refused, "ftd2"));
    let end = step(&report, "all connected");
    assert!(connected(end, "ftd1") && connected(end, "ftd2"));

    // The key log beside the capture holds every TLS 1.3 session's secrets, and decrypts the
    // capture: tshark then finds the certificates the story's handshakes carried.
    assert_eq!(report.keylog, d.path().join("u76.keylog"));
    let keys = std::fs::read_to_string(&report.keylog).unwrap();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    ] {
        assert!(keys.lines().any(|l| l.starts_with(label)), "{keys}");
    }
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&report.keylog).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    if Command::new("tshark").arg("-v").output().is_ok() {
        let certs = |keylog: Option<&Path>| {
            let mut cmd = Command::new("tshark");
            cmd.args([
                "-r",
                s(&pcap),
                "-Y",
                "tls.handshake.type == 11",
                "-T",
                "fields",
            ])
            .args(["-e", "frame.number"]);
            if let Some(k) = keylog {
                cmd.args(["-o", &format!("tls.keylog_file:{}", s(k))]);
            }
            let o = cmd.output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).lines().count()
        };
        assert_eq!(certs(None), 0, "TLS 1.3 certificates are encrypted");
        // Five tunnels (two at the start, ftd1 after its push, ftd2 refused, ftd2 after the
        // copy), each with a server and a client Certificate message.
        assert!(
            certs(Some(&report.keylog)) >= 5,
            "tshark decrypted too little"
        );
    }
    // The story itself is quick; what a debug build spends is RSA key generation (eight
    // 2048-bit keys, `pki init` and `pki renew`).
    eprintln!("upgrade-76 ran in {:.1} s", took.as_secs_f64());
    assert!(
        report.elapsed < Duration::from_secs(60),
        "{:?}",
        report.elapsed
    );
}
