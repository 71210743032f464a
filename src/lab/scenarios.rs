//! The stories. Each builds its PKI, plays its steps on a [`World`], and checks that the
//! appliances did what the story says (a device that should fail with err 10 must fail with
//! err 10); anything else stops the run with [`LabError::Unexpected`] naming what happened.

use std::path::Path;
use std::time::Instant;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::out::Out;
use super::world::{Dialing, World, lab_time};
use super::{LabError, LabOptions, LabReport, Scenario};
use crate::analysis::{self, Finding, Options};
use crate::pki::expiry::Status;
use crate::pki::{DeviceSpec, InitOptions, Uuid, Validity};
use crate::report::{self, Format};
use crate::tunnel::HandshakeFailure;

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
        ca_validity: Validity::days(CA_NOT_BEFORE, 3650)?,
        peer_validity: Validity::days(PEERS_NOT_BEFORE, 3650)?,
        key_bits: 2048,
        force: false,
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
    // The PKI is made first (it creates the root); the capture goes beside it by default.
    let pcap = opts.pcap.clone().unwrap_or_else(|| root.join("lab.pcap"));
    out.text(&format!(
        "sfdiag lab {}: {}\nlab root: {}{}\ncapture: {}",
        scenario.name(),
        scenario.summary(),
        root.display(),
        if tmp.is_some() {
            " (temporary, removed at the end; --root DIR keeps it)"
        } else {
            ""
        },
        pcap.display()
    ))?;
    let world = match scenario {
        Scenario::Expiry => expiry(&root, &pcap, out.clone()).await?,
        Scenario::Ha => ha(&root, &pcap, out.clone()).await?,
        Scenario::NotPushed => not_pushed(&root, &pcap, out.clone()).await?,
        Scenario::Expiring => expiring(&root, &pcap, out.clone()).await?,
    };
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

async fn ha(root: &Path, pcap: &Path, out: Out) -> Result<World, LabError> {
    let init = init_options(root, 1, Some("FMC2"))?;
    let ca_end = init.ca_validity.not_after;
    // The secondary kept the InternalCA certificate from the FMC's first install: the same
    // key and name, but five years shorter. The primary's was re-signed in 2024.
    let old_copy = Validity::new(
        datetime!(2019-10-07 08:00:00 UTC),
        datetime!(2029-10-04 08:00:00 UTC),
    )?;
    let start = old_copy.not_after - Duration::days(3);
    let mut w = World::new(init, start, out, pcap, 6).await?;

    w.step(
        None,
        "FMC HA: primary FMC, secondary FMC2 (managed like a device) and ftd1",
    )?;
    let l = w.root.layout.clone();
    let copy_path = w
        .root
        .device_files("FMC2")
        .ok_or_else(|| unexpected("no FMC2".into()))?
        .ca;
    {
        let key = crate::pki::load_key(&l.ca_key())?;
        let older = crate::pki::InternalCa::create(uuid(FMC_UUID), key, &old_copy)?;
        crate::pki::fsio::write_atomic(
            &copy_path,
            older.cert_pem().as_bytes(),
            crate::pki::fsio::PUBLIC_MODE,
        )?;
    }
    w.say(&format!(
        "the primary's InternalCA ends {}; FMC2 holds an older copy (same key and name) that ends {}",
        lab_time(ca_end),
        lab_time(old_copy.not_after)
    ))?;
    let ev = w.events();
    w.start_device("ftd1")?;
    w.start_device("FMC2")?;
    w.wait_connected(ev, &["ftd1", "FMC2"]).await?;
    w.status()?;
    w.title_last("connected");

    let t = old_copy.not_after + Duration::days(1);
    w.step(
        Some(t),
        "FMC2's copy of the InternalCA expires; tunnels stay up",
    )?;
    w.wait_heartbeats_after(t).await?;
    w.status()?;
    w.title_last("copy expired, still up");

    w.step(
        None,
        "FMC2 restarts (HA synchronisation) and cannot reconnect",
    )?;
    w.stop_device("FMC2").await?;
    let ev = w.events();
    w.start_device("FMC2")?;
    let f = w.wait_failed(ev, "FMC2").await?;
    expect_failure("FMC2", &f, 10)?;
    w.say(&format!(
        "FMC2 judges the primary's chain with its own expired copy: {}; ftd1 is unaffected",
        f.reason()
    ))?;
    w.status()?;
    w.title_last("FMC2 down");

    w.step(
        Some(t + Duration::minutes(15)),
        "Renewal on the primary: the HA secondary is reissued too",
    )?;
    let ev = w.events();
    let run = w.renew().await?;
    expect_pushed(&run, &["ftd1"], &["FMC2"])?;
    w.wait_connected(ev, &["ftd1"]).await?;
    w.status()?;
    w.title_last("renewed");

    w.step(
        Some(t + Duration::minutes(25)),
        "pki copy to the secondary; the primary in the list is skipped",
    )?;
    let lines = vec![csv_line(&w, "FMC2")?, csv_line(&w, "fmc")?];
    let ev = w.events();
    let report = w.copy(&lines)?;
    if report.copied != ["FMC2"] || report.skipped.len() != 1 {
        return Err(unexpected(format!("pki copy did {report:?}")));
    }
    w.wait_connected(ev, &["FMC2"]).await?;
    w.status()?;
    w.title_last("all connected");

    w.step(
        None,
        "validate: both peers against the primary at the lab clock",
    )?;
    let verdicts = w.validate().await?;
    if let Some(v) = verdicts.iter().find(|v| !v.ok()) {
        return Err(unexpected(format!("validate failed: {}", v.line())));
    }
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
