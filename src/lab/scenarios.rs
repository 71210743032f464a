//! The stories. Each builds its PKI, plays its steps on a [`World`], and checks that the
//! appliances did what the story says (a device that should fail with err 10 must fail with
//! err 10); anything else stops the run with [`LabError::Unexpected`] naming what happened.

use std::path::Path;
use std::time::Instant;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::out::Out;
use super::world::{self, Dialing, World, lab_time};
use super::{LabError, LabOptions, LabReport, Scenario};
use crate::analysis::{self, Finding, Options};
use crate::pki::conf::TlsVersion;
use crate::pki::expiry::Status;
use crate::pki::{DeviceSpec, InitOptions, Uuid, Validity};
use crate::report::{self, Format};
use crate::tunnel::failure::HandshakeFailure;

const FMC_UUID: &str = "cdb123c8-4347-11ef-aca1-f3aa241412a1";
const FTD_UUIDS: [&str; 3] = [
    "c8d5d5c6-87c9-11ef-a993-b9831565bc4e",
    "d1e2f3a4-87c9-11ef-a993-b9831565bc4e",
    "e4f5a6b7-87c9-11ef-a993-b9831565bc4e",
];
/// The InternalCA every story starts from: made when the FMC was installed, ten years.
const CA_NOT_BEFORE: OffsetDateTime = datetime!(2024-10-05 12:16:56 UTC);
/// Devices registered some months later, so their certificates outlive the CA.
const PEERS_NOT_BEFORE: OffsetDateTime = datetime!(2025-03-01 09:30:00 UTC);

fn uuid(s: &str) -> Uuid {
    s.parse().expect("literal UUID")
}

fn init_options(
    root: &Path,
    devices: usize,
    ha_secondary: Option<&str>,
) -> Result<InitOptions, LabError> {
    Ok(InitOptions {
        root: root.to_path_buf(),
        fmc_uuid: Some(uuid(FMC_UUID)),
        devices: (0..devices)
            .map(|i| DeviceSpec {
                name: format!("ftd{}", i + 1),
                uuid: Some(uuid(FTD_UUIDS[i])),
            })
            .collect(),
        ha_secondary: ha_secondary.map(str::to_string),
        ha_ca_validity: None,
        ha_peer_validity: None,
        ca_validity: Validity::days(CA_NOT_BEFORE, 3650)?,
        peer_validity: Validity::days(PEERS_NOT_BEFORE, 3650)?,
        key_bits: 2048,
        force: false,
        tls_version: Default::default(),
    })
}

fn unexpected(what: String) -> LabError {
    LabError::Unexpected(what)
}

/// Runs `scenario` from start to end, then analyzes the capture.
pub(super) async fn run(
    scenario: Scenario,
    opts: &LabOptions,
    out: Out,
) -> Result<LabReport, LabError> {
    let started = Instant::now();
    let (tmp, root) = match &opts.root {
        Some(r) => (None, r.clone()),
        None => {
            let t = tempfile::Builder::new().prefix("sfdiag-lab-").tempdir()?;
            let r = t.path().join("lab");
            (Some(t), r)
        }
    };
    // The PKI is made first (it creates the root); the capture goes beside it by default,
    // and the key log beside the capture.
    let pcap = opts.pcap.clone().unwrap_or_else(|| root.join("lab.pcap"));
    let keylog = opts
        .keylog
        .clone()
        .unwrap_or_else(|| world::keylog_beside(&pcap));
    if scenario == Scenario::Upgrade76 && opts.tls_version == Some(TlsVersion::Tls12) {
        return Err(unexpected(
            "upgrade-76 is the move to TLS 1.3 (FMC 7.6): --tls-version 1.2 does not apply".into(),
        ));
    }
    out.text(&format!(
        "sfdiag lab {}: {}\nlab root: {}{}\ncapture: {}\nkey log: {}",
        scenario.name(),
        scenario.summary(),
        root.display(),
        if tmp.is_some() {
            " (temporary, removed at the end; --root DIR keeps it)"
        } else {
            ""
        },
        pcap.display(),
        keylog.display()
    ))?;
    let settings = world::Settings {
        tls: opts.tls_version,
        keylog: Some(keylog.clone()),
    };
    let story = async {
        Ok::<_, LabError>(match scenario {
            Scenario::Expiry => expiry(&root, &pcap, out.clone()).await?,
            Scenario::Ha => ha(&root, &pcap, out.clone()).await?,
            Scenario::HaSecondary => ha_secondary(&root, &pcap, out.clone()).await?,
            Scenario::NotPushed => not_pushed(&root, &pcap, out.clone()).await?,
            Scenario::Expiring => expiring(&root, &pcap, out.clone()).await?,
            Scenario::Upgrade76 => upgrade_76(&root, &pcap, out.clone()).await?,
        })
    };
    let world = world::SETTINGS.scope(settings, story).await?;
    let (recorder, steps, failed_push) = world.finish().await?;
    let packets = recorder.packets();
    drop(recorder);
    let analysis_problems = if opts.no_analysis {
        None
    } else {
        Some(analyze(&pcap, &out)?)
    };
    let elapsed = started.elapsed();
    out.text(&format!(
        "\nlab {} done in {:.1} s ({} packets recorded{})",
        scenario.name(),
        elapsed.as_secs_f64(),
        packets,
        if tmp.is_some() && opts.pcap.is_none() {
            "; the temporary root and its capture are removed now"
        } else {
            ""
        }
    ))?;
    Ok(LabReport {
        scenario,
        root,
        root_kept: tmp.is_none(),
        steps,
        failed_push,
        pcap,
        keylog,
        packets,
        analysis_problems,
        elapsed,
    })
}

/// The lab's own capture through the analyzer: the problems it finds and its summary.
fn analyze(pcap: &Path, out: &Out) -> Result<u64, LabError> {
    out.text(&format!(
        "\n=== analysis of the lab's own capture (the FMC's side of every connection)\n$ sfdiag analyze {}   (problems only)",
        pcap.display()
    ))?;
    let mut w = out.line_writer();
    let mut r = report::renderer(Format::Text, &mut w);
    let mut write_err = None;
    let mut sink = |f: Finding| {
        if f.is_problem()
            && write_err.is_none()
            && let Err(e) = r.finding(&f)
        {
            write_err = Some(e);
        }
    };
    let summary = analysis::analyze_path(pcap, &Options::default(), &mut sink)
        .map_err(|e| unexpected(format!("analyzing {}: {e}", pcap.display())))?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    r.file_done(&summary)?;
    r.finish()?;
    Ok(summary.counts.problems)
}

/// The CSV line `pki copy` needs for an appliance of the root.
fn csv_line(w: &World, name: &str) -> Result<String, LabError> {
    let ip = if name == w.root.fmc.name {
        w.root.fmc.ip
    } else {
        w.root
            .peer(name)
            .ok_or_else(|| unexpected(format!("no appliance {name}")))?
            .ip
    };
    Ok(format!("{name},{ip},admin,Lab-Passw0rd"))
}

fn expect_failure(name: &str, f: &HandshakeFailure, code: i32) -> Result<(), LabError> {
    match f {
        HandshakeFailure::Rejected(v) if v.code.code() == code => Ok(()),
        other => Err(unexpected(format!(
            "{name} was expected to fail with err {code}, got: {}",
            other.reason()
        ))),
    }
}

fn expect_pushed(
    run: &crate::tunnel::renewal::RenewRun,
    pushed: &[&str],
    failed: &[&str],
) -> Result<(), LabError> {
    let mut ok: Vec<&str> = Vec::new();
    let mut bad: Vec<&str> = Vec::new();
    for o in &run.delivery.outcomes {
        if o.result.is_ok() {
            ok.push(&o.name);
        } else {
            bad.push(&o.name);
        }
    }
    if ok != pushed || bad != failed {
        return Err(unexpected(format!(
            "renewal pushed to {ok:?} and not to {bad:?}; the story expects {pushed:?} and {failed:?}"
        )));
    }
    Ok(())
}

async fn expiry(root: &Path, pcap: &Path, out: Out) -> Result<World, LabError> {
    let init = init_options(root, 3, None)?;
    let ca_end = init.ca_validity.not_after;
    let start = ca_end - Duration::days(2);
    let mut w = World::new(init, start, out, pcap, 6).await?;

    w.step(
        None,
        "FMC and three FTDs, tunnels up; the InternalCA ends in two days",
    )?;
    w.say(&format!(
        "lab PKI: InternalCA CN={FMC_UUID} (v1) valid {} .. {}; device certificates until {}",
        lab_time(CA_NOT_BEFORE),
        lab_time(ca_end),
        lab_time(PEERS_NOT_BEFORE + Duration::days(3650))
    ))?;
    w.say("ftd1 dials the FMC; ftd2 was registered with DONTRESOLVE, so the FMC dials it; ftd3 dials and listens, and the FMC dials it when it is down")?;
    w.set_dialing("ftd2", Dialing::Fmc);
    w.set_dialing("ftd3", Dialing::Both);
    let ev = w.events();
    for d in ["ftd1", "ftd2", "ftd3"] {
        w.start_device(d)?;
    }
    w.wait_connected(ev, &["ftd1", "ftd2", "ftd3"]).await?;
    w.status()?;
    w.status_brief()?;
    w.title_last("connected");

    let t = ca_end + Duration::days(1);
    w.step(
        Some(t),
        "The InternalCA expires. Nothing happens: established tunnels stay up",
    )?;
    w.wait_heartbeats_after(t).await?;
    w.say("heartbeats still flow on every tunnel: certificates are only checked in a handshake")?;
    w.status()?;
    w.title_last("expired, still up");

    w.step(
        Some(t + Duration::minutes(10)),
        "ftd3 reboots and cannot reconnect",
    )?;
    w.stop_device("ftd3").await?;
    let ev = w.events();
    let dial_ev = w.events();
    w.start_device("ftd3")?;
    let f = w.wait_failed(ev, "ftd3").await?;
    expect_failure("ftd3", &f, 10)?;
    let fmc_f = w.wait_dial_failed(dial_ev, "ftd3").await?;
    expect_failure("the FMC dialing ftd3", &fmc_f, 10)?;
    w.say(&format!(
        "ftd3 rejects the FMC's chain: {}, and the FMC, dialing ftd3, rejects ftd3's: {}; both keep retrying with backoff",
        f.reason(),
        fmc_f.reason()
    ))?;
    w.status()?;
    w.status_brief()?;
    w.title_last("ftd3 down");

    w.step(
        Some(t + Duration::minutes(20)),
        "Renewal on the FMC (generate_certs.pl): push to the tunnels still up",
    )?;
    let ev = w.events();
    let run = w.renew().await?;
    expect_pushed(&run, &["ftd1", "ftd2"], &["ftd3"])?;
    w.wait_connected(ev, &["ftd1", "ftd2"]).await?;
    w.say("ftd1 and ftd2 installed their files and reconnected with the new certificates")?;
    w.status()?;
    w.title_last("renewed");

    w.step(
        Some(t + Duration::minutes(30)),
        "pki copy (copy_sftunnel_certs.py) to the device in FAILED_PUSH",
    )?;
    let lines = vec![csv_line(&w, "fmc")?, csv_line(&w, "ftd3")?];
    let ev = w.events();
    let report = w.copy(&lines)?;
    if report.copied != ["ftd3"] {
        return Err(unexpected(format!("pki copy did {report:?}")));
    }
    w.wait_connected(ev, &["ftd3"]).await?;
    w.status()?;
    w.title_last("all connected");

    w.step(
        None,
        "validate: every device against the FMC at the lab clock",
    )?;
    let verdicts = w.validate().await?;
    if let Some(v) = verdicts.iter().find(|v| !v.ok()) {
        return Err(unexpected(format!("validate failed: {}", v.line())));
    }
    w.say("all three tunnels are up with the renewed InternalCA")?;
    Ok(w)
}

/// The HA secondary's UUID in both HA stories.
const FMC2_UUID: &str = "f1e2d3c4-4347-11ef-aca1-f3aa241412a1";

/// A root with the primary, HA secondary FMC2 and two devices; the secondary's InternalCA
/// and the certificates it signs get their own dates.
fn ha_init(root: &Path, fmc2_ca: Validity, fmc2_peers: Validity) -> Result<InitOptions, LabError> {
    let mut init = init_options(root, 2, Some(&format!("FMC2={FMC2_UUID}")))?;
    init.ha_ca_validity = Some(fmc2_ca);
    init.ha_peer_validity = Some(fmc2_peers);
    Ok(init)
}

/// SHA-256 of a file, short, for the lab's own narration ("untouched").
fn short_sha256(path: &Path) -> Result<String, LabError> {
    let bytes = std::fs::read(path).map_err(|e| crate::pki::PkiError::io("read", path, e))?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    Ok(hex::encode(&d.as_ref()[..8]))
}

/// Every tunnel of an HA root up: each device to both FMCs, FMC2 to the primary.
async fn ha_start(w: &mut World) -> Result<(), LabError> {
    let ev = w.events();
    let ev2 = w.events_of("FMC2")?;
    for d in ["ftd1", "ftd2", "FMC2"] {
        w.start_device(d)?;
    }
    w.wait_connected(ev, &["ftd1", "ftd2", "FMC2"]).await?;
    w.wait_connected_to("FMC2", ev2, &["ftd1", "ftd2"]).await?;
    Ok(())
}

/// Case 1 of the runbook's HA appendix: the primary's InternalCA expires first.
async fn ha(root: &Path, pcap: &Path, out: Out) -> Result<World, LabError> {
    // FMC2 joined in 2026 and made its own InternalCA then: it ends two years after the
    // primary's.
    let fmc2_ca = Validity::days(datetime!(2026-05-12 09:00:00 UTC), 3650)?;
    let init = ha_init(root, fmc2_ca, fmc2_ca)?;
    let ca_end = init.ca_validity.not_after;
    let mut w = World::new(init, ca_end - Duration::days(2), out, pcap, 7).await?;

    w.step(
        None,
        "FMC HA: primary FMC, secondary FMC2 (its own InternalCA), ftd1 and ftd2; every tunnel up",
    )?;
    w.say(&format!(
        "the primary's InternalCA CN={FMC_UUID} ends {}; FMC2's CN={FMC2_UUID} ends {}",
        lab_time(ca_end),
        lab_time(fmc2_ca.not_after)
    ))?;
    w.say(
        "each device holds a set from each FMC (var/sf/peers/<fmc uuid>/); FMC2 holds a device-like set from the primary for the FMC-to-FMC tunnel",
    )?;
    ha_start(&mut w).await?;
    w.status()?;
    w.title_last("connected");
    w.status_of("FMC2")?;
    w.title_last("FMC2 connected");

    let t = ca_end + Duration::days(1);
    w.step(
        Some(t),
        "The primary's InternalCA expires; established tunnels stay up",
    )?;
    w.wait_heartbeats_after(t).await?;
    w.status()?;
    w.title_last("expired, still up");

    w.step(
        Some(t + Duration::minutes(10)),
        "ftd2 reboots and FMC2's sftunnel restarts: neither can reach the primary again",
    )?;
    w.stop_device("ftd2").await?;
    w.stop_device("FMC2").await?;
    let (ev, ev2) = (w.events(), w.events_of("FMC2")?);
    w.start_device("ftd2")?;
    let f = w.wait_failed(ev, "ftd2").await?;
    expect_failure("ftd2", &f, 10)?;
    w.wait_connected_to("FMC2", ev2, &["ftd2"]).await?;
    // Subscribed once ftd2's failure is told, so the FMC's next failure is FMC2's.
    let ev = w.events();
    w.start_device("FMC2")?;
    let f2 = w.wait_failed(ev, "FMC2").await?;
    expect_failure("FMC2", &f2, 10)?;
    w.say(&format!(
        "ftd2 and FMC2 reject the primary's chain: {}; ftd2's tunnel to FMC2 came up (FMC2's InternalCA is valid)",
        f.reason()
    ))?;
    w.status()?;
    w.title_last("ftd2 and FMC2 down");

    w.step(
        None,
        "Manual role switch: FMC2 becomes active and keeps managing the devices",
    )?;
    w.command("(FMC2 web UI) Integration > High Availability > Switch Peer Roles")?;
    w.say(
        "FMC2 is active: every device is managed over its tunnel to FMC2 while the primary is fixed",
    )?;
    w.status_of("FMC2")?;
    w.title_last("FMC2 active");

    w.step(
        Some(t + Duration::minutes(20)),
        "Renewal on the primary: pushed to the devices and the secondary whose tunnels are up",
    )?;
    let fmc2_ca_path = w.root.fmc_files_of(&w.root.fmcs()[1].clone()).ca;
    let fmc2_before = short_sha256(&fmc2_ca_path)?;
    let ev = w.events();
    let run = w.renew().await?;
    expect_pushed(&run, &["ftd1"], &["ftd2", "FMC2"])?;
    w.wait_connected(ev, &["ftd1"]).await?;
    let fmc2_after = short_sha256(&fmc2_ca_path)?;
    if fmc2_before != fmc2_after {
        return Err(unexpected(
            "renewal on the primary changed FMC2's InternalCA".into(),
        ));
    }
    w.say(&format!(
        "FMC2's own InternalCA is untouched (sha256 {fmc2_after}...); FMC2's tunnel to the primary is down, so it is copied by hand"
    ))?;
    w.status()?;
    w.title_last("renewed");

    w.step(
        Some(t + Duration::minutes(30)),
        "pki copy (copy_sftunnel_certs.py) on the primary to ftd2 and to the secondary",
    )?;
    let lines = vec![
        csv_line(&w, "fmc")?,
        csv_line(&w, "ftd2")?,
        csv_line(&w, "FMC2")?,
    ];
    let (ev, ev2) = (w.events(), w.events_of("FMC2")?);
    let report = w.copy(&lines)?;
    if report.copied != ["ftd2", "FMC2"] {
        return Err(unexpected(format!("pki copy did {report:?}")));
    }
    w.wait_connected(ev, &["ftd2", "FMC2"]).await?;
    // ftd2's sftunnel restart also restarted its tunnel to FMC2.
    w.wait_connected_to("FMC2", ev2, &["ftd2"]).await?;
    w.status()?;
    w.title_last("all connected");

    w.step(
        None,
        "Role switch back to the primary; validate every tunnel at the lab clock",
    )?;
    w.command("(FMC web UI) Integration > High Availability > Switch Peer Roles")?;
    let verdicts = w.validate().await?;
    if verdicts.len() != 5 {
        return Err(unexpected(format!(
            "validate judged {} tunnels",
            verdicts.len()
        )));
    }
    if let Some(v) = verdicts.iter().find(|v| !v.ok()) {
        return Err(unexpected(format!("validate failed: {}", v.line())));
    }
    w.status_of("FMC2")?;
    w.title_last("FMC2 all connected");
    w.say("every tunnel is up: the devices to both FMCs on their own InternalCAs, FMC2 to the renewed primary")?;
    Ok(w)
}

/// Case 2 of the runbook's HA appendix: the secondary's InternalCA expires first.
async fn ha_secondary(root: &Path, pcap: &Path, out: Out) -> Result<World, LabError> {
    // The primary was reimaged in 2027 and made a new InternalCA; FMC2 kept its 2024 one.
    let mut init = ha_init(
        root,
        Validity::days(CA_NOT_BEFORE, 3650)?,
        Validity::days(PEERS_NOT_BEFORE, 3650)?,
    )?;
    init.ca_validity = Validity::days(datetime!(2027-02-15 08:00:00 UTC), 3650)?;
    init.peer_validity = init.ca_validity;
    let fmc2_end = init
        .ha_ca_validity
        .map_or(init.ca_validity.not_after, |v| v.not_after);
    let primary_end = init.ca_validity.not_after;
    let mut w = World::new(init, fmc2_end - Duration::days(2), out, pcap, 6).await?;

    w.step(
        None,
        "FMC HA: primary FMC, secondary FMC2, ftd1 and ftd2; every tunnel up",
    )?;
    w.say(&format!(
        "FMC2's InternalCA CN={FMC2_UUID} ends {}; the primary's CN={FMC_UUID} ends {}",
        lab_time(fmc2_end),
        lab_time(primary_end)
    ))?;
    ha_start(&mut w).await?;
    w.status()?;
    w.title_last("connected");
    w.status_of("FMC2")?;
    w.title_last("FMC2 connected");

    let t = fmc2_end + Duration::days(1);
    w.step(
        Some(t),
        "FMC2's InternalCA expires; established tunnels stay up",
    )?;
    w.wait_heartbeats_after(t).await?;
    w.status_of("FMC2")?;
    w.title_last("FMC2 expired, still up");

    w.step(
        Some(t + Duration::minutes(10)),
        "ftd2 reboots: back on the primary, refused by FMC2",
    )?;
    w.stop_device("ftd2").await?;
    let (ev, ev2) = (w.events(), w.events_of("FMC2")?);
    w.start_device("ftd2")?;
    w.wait_connected(ev, &["ftd2"]).await?;
    let f = w.wait_failed_to("FMC2", ev2, "ftd2").await?;
    expect_failure("ftd2", &f, 10)?;
    w.say(&format!(
        "ftd2 rejects FMC2's chain: {}; the primary (active) still manages every device, so no role switch: switching to FMC2 now would lose ftd2",
        f.reason()
    ))?;
    w.status()?;
    w.title_last("primary connected");
    w.status_of("FMC2")?;
    w.title_last("FMC2 ftd2 down");

    w.step(
        Some(t + Duration::minutes(20)),
        "Renewal on the secondary: only the devices need its files",
    )?;
    let primary_ca = w.root.fmc_files().ca;
    let before = short_sha256(&primary_ca)?;
    let ev2 = w.events_of("FMC2")?;
    let run = w.renew_on("FMC2").await?;
    expect_pushed(&run, &["ftd1"], &["ftd2"])?;
    w.wait_connected_to("FMC2", ev2, &["ftd1"]).await?;
    let after = short_sha256(&primary_ca)?;
    if before != after {
        return Err(unexpected(
            "renewal on FMC2 changed the primary's InternalCA".into(),
        ));
    }
    w.say(&format!(
        "the primary's InternalCA is untouched (sha256 {after}...): FMC2's tunnel to the primary rests on it and stays up"
    ))?;
    w.status()?;
    w.title_last("primary after FMC2's renewal");
    w.status_of("FMC2")?;
    w.title_last("FMC2 renewed");

    w.step(
        Some(t + Duration::minutes(30)),
        "pki copy on the secondary to ftd2 (in FMC2's FAILED_PUSH)",
    )?;
    let lines = vec![csv_line(&w, "FMC2")?, csv_line(&w, "ftd2")?];
    let (ev, ev2) = (w.events(), w.events_of("FMC2")?);
    let report = w.copy_on("FMC2", &lines)?;
    if report.copied != ["ftd2"] {
        return Err(unexpected(format!("pki copy did {report:?}")));
    }
    w.wait_connected_to("FMC2", ev2, &["ftd2"]).await?;
    // ftd2's sftunnel restart also restarted its tunnel to the primary.
    w.wait_connected(ev, &["ftd2"]).await?;
    w.status_of("FMC2")?;
    w.title_last("FMC2 all connected");

    w.step(None, "validate every tunnel at the lab clock")?;
    let verdicts = w.validate().await?;
    if verdicts.len() != 5 {
        return Err(unexpected(format!(
            "validate judged {} tunnels",
            verdicts.len()
        )));
    }
    if let Some(v) = verdicts.iter().find(|v| !v.ok()) {
        return Err(unexpected(format!("validate failed: {}", v.line())));
    }
    w.status()?;
    w.title_last("all connected");
    Ok(w)
}

async fn not_pushed(root: &Path, pcap: &Path, out: Out) -> Result<World, LabError> {
    let init = init_options(root, 2, None)?;
    let start = datetime!(2029-06-03 08:00:00 UTC);
    let mut w = World::new(init, start, out, pcap, 6).await?;

    w.step(None, "FMC and two FTDs, tunnels up")?;
    let ev = w.events();
    w.start_device("ftd1")?;
    w.start_device("ftd2")?;
    w.wait_connected(ev, &["ftd1", "ftd2"]).await?;
    w.status()?;
    w.title_last("connected");

    w.step(None, "ftd2 is powered off for maintenance")?;
    w.stop_device("ftd2").await?;
    w.status()?;
    w.title_last("ftd2 off");

    w.step(
        Some(start + Duration::hours(2)),
        "Routine renewal: a new InternalCA (same UUID, new key)",
    )?;
    let ev = w.events();
    let run = w.renew().await?;
    expect_pushed(&run, &["ftd1"], &["ftd2"])?;
    w.wait_connected(ev, &["ftd1"]).await?;
    w.status()?;
    w.title_last("renewed");

    w.step(
        Some(start + Duration::hours(6)),
        "ftd2 comes back with the old files: the new FMC certificate fails its signature check",
    )?;
    let ev = w.events();
    w.start_device("ftd2")?;
    let f = w.wait_failed(ev, "ftd2").await?;
    expect_failure("ftd2", &f, 7)?;
    w.say(&format!(
        "ftd2 still trusts the old InternalCA, which has the same name but another key: {}, alert {}",
        f.reason(),
        f.alert().map_or(0, |a| a.0)
    ))?;
    w.status()?;
    w.title_last("ftd2 fails");
    let verdicts = w.validate().await?;
    if verdicts.iter().all(|v| v.ok()) {
        return Err(unexpected("validate passed with ftd2's old files".into()));
    }

    w.step(None, "pki copy to ftd2")?;
    let lines = vec![csv_line(&w, "ftd2")?];
    let ev = w.events();
    let report = w.copy(&lines)?;
    if report.copied != ["ftd2"] {
        return Err(unexpected(format!("pki copy did {report:?}")));
    }
    w.wait_connected(ev, &["ftd2"]).await?;
    w.status()?;
    w.title_last("all connected");

    w.step(None, "validate passes for every device")?;
    let verdicts = w.validate().await?;
    if let Some(v) = verdicts.iter().find(|v| !v.ok()) {
        return Err(unexpected(format!("validate failed: {}", v.line())));
    }
    Ok(w)
}

async fn expiring(root: &Path, pcap: &Path, out: Out) -> Result<World, LabError> {
    let init = init_options(root, 1, None)?;
    let ca_end = init.ca_validity.not_after;
    let mut w = World::new(init, ca_end - Duration::days(120), out, pcap, 4).await?;

    w.step(
        None,
        "FMC and ftd1, tunnel up; the InternalCA ends in 120 days",
    )?;
    let ev = w.events();
    w.start_device("ftd1")?;
    w.wait_connected(ev, &["ftd1"]).await?;
    let s = w.check()?;
    if s != Status::Ok {
        return Err(unexpected(format!("check said {s} 120 days out")));
    }
    w.status()?;
    w.title_last("120 days");

    w.step(
        Some(ca_end - Duration::days(89)),
        "89 days left: the 90-day health alert",
    )?;
    let s = w.check()?;
    if s != Status::Warning {
        return Err(unexpected(format!("check said {s} 89 days out")));
    }
    w.status()?;
    w.title_last("89 days");

    w.step(Some(ca_end - Duration::days(29)), "29 days left: critical")?;
    let s = w.check()?;
    if s != Status::Critical {
        return Err(unexpected(format!("check said {s} 29 days out")));
    }
    w.status()?;
    w.title_last("29 days");

    w.step(
        None,
        "Renew now, while every tunnel is up: everything is pushed, nothing breaks",
    )?;
    let ev = w.events();
    let run = w.renew().await?;
    expect_pushed(&run, &["ftd1"], &[])?;
    w.wait_connected(ev, &["ftd1"]).await?;
    let s = w.check()?;
    if s != Status::Ok {
        return Err(unexpected(format!("check said {s} after renewal")));
    }
    w.status()?;
    w.title_last("renewed");
    Ok(w)
}

/// The capture so far through the analyzer, every finding (a TLS 1.3 capture without keys has
/// little to show: that is the point of this step).
fn show_capture(w: &World, pcap: &Path, options: &Options) -> Result<Vec<Finding>, LabError> {
    w.recorder.flush()?;
    let mut out = w.out.line_writer();
    let mut r = report::renderer(Format::Text, &mut out);
    let mut write_err = None;
    let mut kept = Vec::new();
    let mut sink = |f: Finding| {
        if write_err.is_none()
            && let Err(e) = r.finding(&f)
        {
            write_err = Some(e);
        }
        if matches!(f, Finding::Certificate(_) | Finding::Chain(_)) {
            kept.push(f);
        }
    };
    let summary = analysis::analyze_path(pcap, options, &mut sink)
        .map_err(|e| unexpected(format!("analyzing {}: {e}", pcap.display())))?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    r.file_done(&summary)?;
    r.finish()?;
    Ok(kept)
}

/// How many lines of each label a key log holds, in first-seen order.
fn keylog_labels(path: &Path) -> Result<Vec<(String, usize)>, LabError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| crate::pki::PkiError::io("read", path, e))?;
    let mut labels: Vec<(String, usize)> = Vec::new();
    for label in text.lines().filter_map(|l| l.split_whitespace().next()) {
        match labels.iter_mut().find(|(l, _)| l == label) {
            Some((_, n)) => *n += 1,
            None => labels.push((label.to_owned(), 1)),
        }
    }
    Ok(labels)
}

/// FMC 7.6: sftunnel on TLS 1.3. A renewal while ftd2 is off; someone copies only the new
/// InternalCA to it, so it trusts the new CA but still presents its certificate of the old
/// one, and the FMC refuses it. Both ends, the capture without and with the key log, then
/// `pki copy`.
async fn upgrade_76(root: &Path, pcap: &Path, out: Out) -> Result<World, LabError> {
    let mut init = init_options(root, 2, None)?;
    init.tls_version = TlsVersion::Tls13;
    let start = datetime!(2030-03-04 08:00:00 UTC);
    let mut w = World::new(init, start, out, pcap, 5).await?;

    w.step(
        None,
        "FMC 7.6 and two FTDs on 7.6: sftunnel on TLS 1.3 (proxy_tls_version TLSv1.3)",
    )?;
    w.say(
        "on 7.6 the FMC asks for the device's certificate after the handshake (post-handshake \
         authentication); rustls has none, so this FMC asks inside the handshake: the same \
         certificate, the same verdict and alert, only sent earlier (see README, TLS 1.3)",
    )?;
    let ev = w.events();
    w.start_device("ftd1")?;
    w.start_device("ftd2")?;
    w.wait_connected(ev, &["ftd1", "ftd2"]).await?;
    w.status()?;
    w.title_last("connected");

    w.step(
        Some(start + Duration::hours(1)),
        "ftd2 is off; the InternalCA is regenerated after the upgrade",
    )?;
    w.stop_device("ftd2").await?;
    let ev = w.events();
    let run = w.renew().await?;
    expect_pushed(&run, &["ftd1"], &["ftd2"])?;
    w.wait_connected(ev, &["ftd1"]).await?;

    w.step(
        Some(start + Duration::hours(3)),
        "Only cacert.pem is copied to ftd2; it boots with its certificate of the old CA",
    )?;
    let fmc_ca = w.root.layout.ca_cert();
    let dev = w
        .root
        .device_files("ftd2")
        .ok_or_else(|| unexpected("no ftd2".into()))?;
    w.command(&format!("cp {} {}", fmc_ca.display(), dev.ca.display()))?;
    let ca_pem =
        std::fs::read(&fmc_ca).map_err(|e| crate::pki::PkiError::io("read", &fmc_ca, e))?;
    crate::pki::fsio::write_atomic(&dev.ca, &ca_pem, crate::pki::fsio::PUBLIC_MODE)?;
    let ev = w.events();
    w.start_device("ftd2")?;
    let f = w.wait_failed(ev, "ftd2").await?;
    let Some(alert) = f
        .alert()
        .filter(|_| matches!(f, HandshakeFailure::AlertReceived { .. }))
    else {
        return Err(unexpected(format!(
            "ftd2 was expected to be refused by the FMC, got: {}",
            f.reason()
        )));
    };
    w.say(&format!(
        "ftd2 accepted the FMC (it trusts the new InternalCA); the FMC refused ftd2's certificate, \
         signed by the old one, and ftd2 got alert {} ({}). The FMC's last four lines are 7.6's",
        alert.0,
        alert.name().unwrap_or("unknown")
    ))?;
    w.status()?;
    w.title_last("ftd2 refused");

    w.step(None, "The capture: TLS 1.3 hides certificates and alerts")?;
    w.command(&format!(
        "sfdiag analyze --ca {} {}",
        fmc_ca.display(),
        pcap.display()
    ))?;
    let ca = crate::cert::read_certs(&fmc_ca)
        .map_err(|e| unexpected(format!("{}: {e}", fmc_ca.display())))?;
    show_capture(
        &w,
        pcap,
        &Options {
            anchors: ca,
            ..Options::default()
        },
    )?;
    w.say(
        "without keys: the handshakes and who closed, no certificate and no alert (all encrypted)",
    )?;
    let labels = keylog_labels(&w.keylog_path)?;
    w.say(&format!(
        "the FMC's key log {} holds {}",
        w.keylog_path.display(),
        labels
            .iter()
            .map(|(l, n)| format!("{n} {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    w.command(&format!(
        "sfdiag analyze --ca {} --keylog {} {}",
        fmc_ca.display(),
        w.keylog_path.display(),
        pcap.display()
    ))?;
    let text = std::fs::read(&w.keylog_path)
        .map_err(|e| crate::pki::PkiError::io("read", &w.keylog_path, e))?;
    let mut keys = crate::tls::KeyLog::new();
    let name = w.keylog_path.display().to_string();
    keys.add(&name, &text);
    let ca = crate::cert::read_certs(&fmc_ca)
        .map_err(|e| unexpected(format!("{}: {e}", fmc_ca.display())))?;
    let seen = show_capture(
        &w,
        pcap,
        &Options {
            anchors: ca,
            keys: Some(std::sync::Arc::new(keys)),
            ..Options::default()
        },
    )?;
    // The story holds only if the key log opened ftd2's Certificate and the judge says what
    // the FMC said of it.
    let judged_like_the_fmc = seen.iter().any(|f| {
        matches!(f, Finding::Chain(c) if c.role == Some(crate::sftunnel::TlsSide::Client)
            && c.verdict.code.code() == 7 && c.verdict.depth == Some(0))
    });
    let decrypted = seen
        .iter()
        .any(|f| matches!(f, Finding::Certificate(c) if c.decrypted));
    if !(judged_like_the_fmc && decrypted) {
        return Err(unexpected(format!(
            "with the key log, analyze did not judge ftd2's decrypted certificate err 7 at \
             depth 0 ({} findings)",
            seen.len()
        )));
    }
    w.say("with the key log: ftd2's certificate decrypted and judged as the FMC judged it (err 7 at depth 0); `tshark -o tls.keylog_file:` shows the same certificates")?;

    w.step(None, "pki copy to ftd2: its new certificate and key")?;
    let lines = vec![csv_line(&w, "ftd2")?];
    let ev = w.events();
    let report = w.copy(&lines)?;
    if report.copied != ["ftd2"] {
        return Err(unexpected(format!("pki copy did {report:?}")));
    }
    w.wait_connected(ev, &["ftd2"]).await?;
    w.status()?;
    w.title_last("all connected");
    Ok(w)
}
