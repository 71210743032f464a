//! The stage a scenario plays on: one lab PKI, the FMC's server with its control socket, the
//! devices' clients, the shared lab clock, the capture, and the waits that keep the story in
//! step with what the appliances really did.
//!
//! Every wait is for an event the appliances report (the server's `Connected`/`Failed`, a
//! client's state, a heartbeat stamped after a clock jump), each with a deadline; nothing
//! sleeps for a fixed time to "let things settle".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use super::out::Out;
use super::{LabError, StepReport};
use crate::pki::copy::{self, CopyReport, LocalTransport};
use crate::pki::expiry::{self, Status, Thresholds};
use crate::pki::renew::{self, RenewOptions};
use crate::pki::roles::RoleNamer;
use crate::pki::{InitOptions, PeerFiles, PkiRoot, Validity};
use crate::recorder::Recorder;
use crate::sftunnel::{Channel, rfc3339, whole_seconds};
use crate::tunnel::client::Backoff;
use crate::tunnel::renewal::{self, RenewRun};
use crate::tunnel::status::PeerStatus;
use crate::tunnel::validate::{self, Verdict};
use crate::tunnel::{
    Client, ClientHandle, ClientSettings, ClientState, Clock, DialTarget, HandshakeFailure,
    KnownPeer, Server, ServerEvent, ServerSettings, SfLog, Timeouts, TlsFiles,
};

/// Deadline for any one thing the story waits for.
const WAIT: Duration = Duration::from_secs(20);

/// The lab's tunnel timings: heartbeats every second (a jump of the clock shows in the status
/// table within a second), a device retries 2 s after a failure, then 4 s, 8 s.
fn timeouts() -> Timeouts {
    Timeouts {
        handshake: Duration::from_secs(10),
        hello: Duration::from_secs(10),
        heartbeat: Duration::from_secs(1),
        push: Duration::from_secs(15),
    }
}

fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(8),
    }
}

pub(crate) fn files(p: PeerFiles) -> TlsFiles {
    TlsFiles {
        ca: p.ca,
        cert: p.cert,
        key: p.key,
    }
}

struct Running {
    handle: ClientHandle,
    state: watch::Receiver<ClientState>,
}

/// Who opens a lab device's tunnel. sftunnel's ends dial each other; which one gets through
/// first is a race the lab keeps out of its story by giving each device one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialing {
    /// The device dials the FMC (both channels); the FMC does not dial it.
    Device,
    /// The device was registered with `DONTRESOLVE`: it only listens, the FMC opens both
    /// channels to it.
    Fmc,
    /// Both: the device dials and listens, and the FMC dials it when it is down (from its
    /// first reboot on, so the device's own tunnel comes up first).
    Both,
}

type Clients = Arc<Mutex<BTreeMap<String, Running>>>;

/// See the module doc.
pub(crate) struct World {
    pub root: PkiRoot,
    pub clock: Clock,
    pub out: Out,
    server: Option<Server>,
    addr: SocketAddr,
    socket: PathBuf,
    clients: Clients,
    pub recorder: Recorder,
    pub steps: Vec<StepReport>,
    pub failed_push: Vec<(PathBuf, String)>,
    step_no: usize,
    steps_total: usize,
    pid: u32,
    /// Who dials each device (default [`Dialing::Device`]).
    dialing: BTreeMap<String, Dialing>,
    /// The devices started at least once.
    booted: std::collections::BTreeSet<String>,
}

impl World {
    /// Makes the PKI under `root_dir` (lab clock at `start`), starts the FMC, records into
    /// `pcap`.
    pub async fn new(
        init: InitOptions,
        start: OffsetDateTime,
        out: Out,
        pcap: &Path,
        steps_total: usize,
    ) -> Result<World, LabError> {
        let clock = Clock::lab(start);
        let root = tokio::task::spawn_blocking(move || crate::pki::init(&init))
            .await
            .map_err(|e| LabError::Unexpected(e.to_string()))??;
        let c = clock.clone();
        let recorder = Recorder::create(pcap, move || c.now()).map_err(|e| {
            LabError::Output(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", pcap.display()),
            ))
        })?;
        let pid = std::process::id().clamp(1000, 60000);
        let socket = crate::tunnel::control::socket_path(&root.layout.fmc_dir());
        let mut w = World {
            root,
            clock,
            out,
            server: None,
            addr: "127.0.0.1:0".parse().expect("literal address"),
            socket,
            clients: Arc::default(),
            recorder,
            steps: Vec::new(),
            failed_push: Vec::new(),
            step_no: 0,
            steps_total,
            pid,
            dialing: BTreeMap::new(),
            booted: Default::default(),
        };
        w.start_fmc().await?;
        Ok(w)
    }

    fn log_for(&mut self, hostname: &str) -> SfLog {
        self.pid += 97;
        SfLog::to_writer(
            hostname,
            self.pid,
            self.clock.clone(),
            self.out.line_writer(),
        )
    }

    async fn start_fmc(&mut self) -> Result<(), LabError> {
        let log = self.log_for("FMC");
        let server = Server::start_recording(
            ServerSettings {
                listen: "127.0.0.1:0".into(),
                files: files(self.root.fmc_files()),
                peers: Some(KnownPeer::of_root(&self.root)),
                clock: self.clock.clone(),
                log,
                keylog: None,
                control: Some(self.socket.clone()),
                timeouts: timeouts(),
            },
            Some(self.recorder.clone()),
        )
        .await?;
        self.addr = server.local_addr();
        self.server = Some(server);
        Ok(())
    }

    fn server(&self) -> &Server {
        self.server
            .as_ref()
            .expect("the FMC runs for the whole story")
    }

    /// Server events from now on (subscribe before acting, then wait).
    pub fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.server().handle().subscribe()
    }

    /// Where the root is.
    pub fn root_dir(&self) -> &Path {
        self.root.layout.root()
    }

    // ---- narration ----

    /// A step's header with the lab clock, first moved to `at` when given.
    pub fn step(&mut self, at: Option<OffsetDateTime>, title: &str) -> Result<(), LabError> {
        self.step_no += 1;
        if let Some(t) = at {
            self.clock.set(t);
        }
        let now = self.clock.now();
        self.out.text(&format!(
            "\n=== [{}/{}] {} | {}",
            self.step_no,
            self.steps_total,
            lab_time(now),
            title
        ))?;
        Ok(())
    }

    /// A line of the lab's own narration.
    pub fn say(&self, text: &str) -> Result<(), LabError> {
        Ok(self.out.text(&format!("lab: {text}"))?)
    }

    /// The command a person would type for this step.
    pub fn command(&self, cmd: &str) -> Result<(), LabError> {
        Ok(self.out.text(&format!("$ {cmd}"))?)
    }

    // ---- devices ----

    /// Who dials device `name` from its next start on.
    pub fn set_dialing(&mut self, name: &str, d: Dialing) {
        self.dialing.insert(name.to_string(), d);
    }

    /// Starts (or boots) device `name`'s sftunnel: it connects and keeps retrying, from its own
    /// address in the PKI (on loopback), or listens there for the FMC ([`Dialing`]).
    pub fn start_device(&mut self, name: &str) -> Result<(), LabError> {
        let dev_files = self
            .root
            .device_files(name)
            .ok_or_else(|| LabError::Unexpected(format!("no device {name}")))?;
        let ip = self
            .root
            .peer(name)
            .map(|p| p.ip)
            .ok_or_else(|| LabError::Unexpected(format!("no device {name}")))?;
        let log = self.log_for(name);
        let client = Client::new(ClientSettings {
            server: self.addr.to_string(),
            files: files(dev_files),
            name: name.to_string(),
            clock: self.clock.clone(),
            log,
            keylog: None,
            timeouts: timeouts(),
            backoff: backoff(),
        })?
        .bind_from(ip);
        let dialing = self.dialing.get(name).copied().unwrap_or(Dialing::Device);
        let rebooted = !self.booted.insert(name.to_string());
        let handle = match dialing {
            Dialing::Device => client.spawn(),
            Dialing::Fmc | Dialing::Both => {
                // Where the FMC dials it: its address, the port the FMC listens on (8305 on
                // the appliances).
                let at = SocketAddr::new(ip, self.addr.port());
                let l = std::net::TcpListener::bind(at)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .and_then(tokio::net::TcpListener::from_std)
                    .map_err(|e| LabError::Unexpected(format!("{name}: listen on {at}: {e}")))?;
                let handle = if dialing == Dialing::Fmc {
                    client.spawn_listen_only(l)
                } else {
                    client.spawn_listening(l)
                };
                let uuid = self.uuid(name)?;
                let server = self
                    .server
                    .as_mut()
                    .expect("the FMC runs for the whole story");
                server.dial(
                    vec![DialTarget {
                        name: name.to_string(),
                        uuid: uuid.clone(),
                        addr: at,
                    }],
                    backoff(),
                );
                if dialing == Dialing::Fmc || rebooted {
                    server.handle().redial(&uuid);
                }
                handle
            }
        };
        let state = handle.state();
        crate::sync::lock(&self.clients).insert(name.to_string(), Running { handle, state });
        Ok(())
    }

    /// Stops device `name`'s sftunnel (power off, reboot): its tunnel closes.
    pub async fn stop_device(&mut self, name: &str) -> Result<(), LabError> {
        let running = crate::sync::lock(&self.clients).remove(name);
        if let Some(r) = running {
            let mut ev = self.events();
            let uuid = self.uuid(name)?;
            let was_up = self
                .server()
                .handle()
                .peers()
                .iter()
                .any(|p| p.uuid == uuid);
            r.handle.stop().await;
            if was_up {
                wait(&format!("the FMC to see {name} go"), async {
                    loop {
                        match ev.recv().await {
                            Ok(ServerEvent::Disconnected { uuid: u, .. }) if u == uuid => {
                                return Ok(());
                            }
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(e) => return Err(LabError::Unexpected(e.to_string())),
                        }
                    }
                })
                .await?;
            }
        }
        Ok(())
    }

    fn uuid(&self, name: &str) -> Result<String, LabError> {
        self.root
            .peer(name)
            .map(|p| p.uuid.to_string())
            .ok_or_else(|| LabError::Unexpected(format!("no device {name}")))
    }

    fn state(&self, name: &str) -> Result<watch::Receiver<ClientState>, LabError> {
        crate::sync::lock(&self.clients)
            .get(name)
            .map(|r| r.state.clone())
            .ok_or_else(|| LabError::Unexpected(format!("{name} is not running")))
    }

    /// Waits until the FMC registered a new tunnel from each of `names` (events from `ev`,
    /// subscribed before the action) and each device says it is connected.
    pub async fn wait_connected(
        &self,
        mut ev: broadcast::Receiver<ServerEvent>,
        names: &[&str],
    ) -> Result<(), LabError> {
        let mut want: Vec<String> = names
            .iter()
            .map(|n| self.uuid(n))
            .collect::<Result<_, _>>()?;
        wait(&format!("{} to connect", names.join(", ")), async {
            while !want.is_empty() {
                match ev.recv().await {
                    Ok(ServerEvent::Connected { uuid, .. }) => want.retain(|u| u != &uuid),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => return Err(LabError::Unexpected(e.to_string())),
                }
            }
            Ok(())
        })
        .await?;
        for n in names {
            let mut st = self.state(n)?;
            wait(&format!("{n} to report its tunnel up"), async {
                st.wait_for(|s| matches!(s, ClientState::Connected { .. }))
                    .await
                    .map(|_| ())
                    .map_err(|e| LabError::Unexpected(e.to_string()))
            })
            .await?;
        }
        // Up means both channels, control and events, each its own connection.
        let h = self.server().handle();
        let uuids: Vec<String> = names
            .iter()
            .map(|n| self.uuid(n))
            .collect::<Result<_, _>>()?;
        wait(&format!("{}'s two channels", names.join(", ")), async {
            loop {
                let peers = h.peers();
                let both = uuids.iter().all(|u| {
                    peers
                        .iter()
                        .any(|p| &p.uuid == u && p.channels.len() == Channel::ALL.len())
                });
                if both {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    /// Waits for the FMC's next failed attempt to dial device `name` that got as far as TLS
    /// (from `ev`, subscribed before), and returns its failure.
    pub async fn wait_dial_failed(
        &self,
        mut ev: broadcast::Receiver<ServerEvent>,
        name: &str,
    ) -> Result<HandshakeFailure, LabError> {
        let uuid = self.uuid(name)?;
        wait(
            &format!("the FMC's attempt to dial {name} to fail"),
            async {
                loop {
                    match ev.recv().await {
                        Ok(ServerEvent::DialFailed {
                            uuid: u, failure, ..
                        }) if u == uuid && !matches!(failure, HandshakeFailure::Connect { .. }) => {
                            return Ok(failure);
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(e) => return Err(LabError::Unexpected(e.to_string())),
                    }
                }
            },
        )
        .await
    }

    /// Waits for device `name`'s next failed attempt and for the FMC's account of a failed
    /// connection (from `ev`); returns the device's failure.
    pub async fn wait_failed(
        &self,
        mut ev: broadcast::Receiver<ServerEvent>,
        name: &str,
    ) -> Result<HandshakeFailure, LabError> {
        let mut st = self.state(name)?;
        let f = wait(&format!("{name}'s connection attempt to fail"), async {
            st.wait_for(|s| matches!(s, ClientState::Failed(_)))
                .await
                .map(|s| match &*s {
                    ClientState::Failed(f) => f.clone(),
                    _ => unreachable!("waited for Failed"),
                })
                .map_err(|e| LabError::Unexpected(e.to_string()))
        })
        .await?;
        wait("the FMC to log the failed connection", async {
            loop {
                match ev.recv().await {
                    Ok(ServerEvent::Failed { .. }) => return Ok(()),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => return Err(LabError::Unexpected(e.to_string())),
                }
            }
        })
        .await?;
        Ok(f)
    }

    /// Waits until every connected peer sent a heartbeat stamped at or after `t`.
    pub async fn wait_heartbeats_after(&self, t: OffsetDateTime) -> Result<(), LabError> {
        let h = self.server().handle();
        wait("heartbeats after the clock jump", async {
            loop {
                let peers = h.peers();
                let fresh = peers.iter().all(|p| {
                    p.last_heartbeat
                        .is_some_and(|hb| hb >= t.replace_nanosecond(0).unwrap_or(t))
                });
                if fresh {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    // ---- status ----

    /// The FMC's view of every peer of the PKI, like `sfdiag status --root`.
    pub fn peer_rows(&self) -> Vec<PeerStatus> {
        let seen = self.server().handle().peers_seen();
        let mut rows = crate::tunnel::status::rows_for_root(&seen, &self.root);
        // Lab devices all dial from loopback: show the address each has in the PKI instead.
        for r in &mut rows {
            if let Some(p) = self
                .root
                .peers
                .iter()
                .find(|p| p.uuid.to_string() == r.uuid)
            {
                r.ip = p.ip.to_string();
            }
        }
        rows
    }

    /// Prints the status table and keeps it in the report.
    pub fn status(&mut self) -> Result<(), LabError> {
        let rows = self.peer_rows();
        let info = self.server().handle().info();
        self.command(&format!(
            "sfdiag status --root {}",
            self.root_dir().display()
        ))?;
        self.out
            .block(|w| crate::report::status::text(&mut WriteRef(w), Some(&info), &rows))?;
        self.steps.push(StepReport {
            title: format!("step {}", self.step_no),
            at: rfc3339(&whole_seconds(self.clock.now())),
            peers: rows,
        });
        Ok(())
    }

    /// Prints `status --brief` (the FTD CLI's `sftunnel-status-brief` blocks, from the FMC's
    /// view): each peer's two channels and who dialed them, or when it went down.
    pub fn status_brief(&mut self) -> Result<(), LabError> {
        let rows = self.peer_rows();
        self.command(&format!(
            "sfdiag status --root {} --brief",
            self.root_dir().display()
        ))?;
        self.out
            .block(|w| crate::report::status::brief(&mut WriteRef(w), &rows))?;
        let mut who = Vec::new();
        for r in rows.iter().filter(|r| r.connected) {
            let by: Vec<String> = r
                .channels
                .iter()
                .map(|c| format!("{} dialed by the {}", c.channel.label(), c.dialed_by))
                .collect();
            who.push(format!("{}: {}", r.name, by.join(", ")));
        }
        if !who.is_empty() {
            self.say(&who.join("; "))?;
        }
        Ok(())
    }

    /// Names the last recorded step (called by scenarios after `status`).
    pub fn title_last(&mut self, title: &str) {
        if let Some(s) = self.steps.last_mut() {
            s.title = title.to_string();
        }
    }

    // ---- the runbook's commands ----

    /// `pki renew --root ROOT --yes` at the lab clock, through the running FMC.
    pub async fn renew(&mut self) -> Result<RenewRun, LabError> {
        let now = self.clock.now();
        let at = now.replace_nanosecond(0).unwrap_or(now);
        self.command(&format!(
            "sfdiag pki renew --root {} --yes",
            self.root_dir().display()
        ))?;
        let pre = renew::preflight(self.root_dir(), at)?;
        if let Some(lock) = &pre.lock {
            return Err(crate::pki::PkiError::CriticalOperation {
                path: lock.path.clone(),
                operation: lock.operation.clone(),
            }
            .into());
        }
        // generate_certs.pl's dialogue, answered as `--yes` answers it.
        self.out.block(|w| {
            use crate::report::renew as r;
            r::opening(w, &pre)?;
            r::answered(w, "yes")?;
            r::ca_question(w, &pre)?;
            r::answered(w, "yes")?;
            r::confirmed(w)
        })?;
        let v = Validity::days(at, 3650)?;
        let opts = RenewOptions {
            at,
            ca_validity: v,
            peer_validity: v,
            key_bits: 2048,
            faults: Default::default(),
        };
        let mut w = self.out.line_writer();
        let run = renewal::renew_and_push(pre, opts, &self.socket, &mut w, false).await?;
        if let Some(fp) = &run.record.failed_push {
            let text =
                std::fs::read_to_string(fp).map_err(|e| crate::pki::PkiError::io("read", fp, e))?;
            self.command(&format!("cat {}", fp.display()))?;
            self.out.text(&text)?;
            self.failed_push.push((fp.clone(), text));
        }
        Ok(run)
    }

    /// `pki copy --root ROOT --devices ROOT/devices.csv` with `lines` as the CSV; restarts the
    /// in-process tunnels of the devices it copied to.
    pub fn copy(&mut self, lines: &[String]) -> Result<CopyReport, LabError> {
        let csv = self.root_dir().join("devices.csv");
        let text = format!(
            "# device_name,ipaddr,login,password\n{}\n",
            lines.join("\n")
        );
        // It holds logins and passwords: the owner's only.
        crate::pki::fsio::write_atomic(&csv, text.as_bytes(), crate::pki::fsio::PRIVATE_MODE)?;
        self.command(&format!("cat {}", csv.display()))?;
        self.out.text(&text)?;
        self.command(&format!(
            "sfdiag pki copy --root {} --devices {}",
            self.root_dir().display(),
            csv.display()
        ))?;
        let entries = copy::parse_devices_csv(&text, &csv)?;
        let clients = self.clients.clone();
        let mut t = LocalTransport::open(self.root_dir())?.with_restart(Box::new(move |name| {
            match crate::sync::lock(&clients).get(name) {
                Some(r) => {
                    r.handle.restart();
                    true
                }
                None => false,
            }
        }));
        let clock = self.clock.clone();
        let mut transcript = crate::report::copy::Transcript::new(self.out.line_writer());
        Ok(copy::copy(
            &entries,
            &copy::local_fmc_entry(&self.root),
            &mut t,
            &move || clock.now(),
            &mut |at, e| {
                if let Err(err) = transcript.event(at, e) {
                    tracing::warn!(error = %err, "cannot write the copy's report");
                }
            },
        )?)
    }

    /// `validate --root ROOT` at the lab clock: a fresh FMC and one tunnel per device.
    pub async fn validate(&self) -> Result<Vec<Verdict>, LabError> {
        let now = self.clock.now();
        self.command(&format!(
            "sfdiag validate --root {} --at {}",
            self.root_dir().display(),
            rfc3339(&whole_seconds(now))
        ))?;
        let devices: Vec<validate::Device> = self
            .root
            .peers
            .iter()
            .filter_map(|p| {
                Some(validate::Device {
                    name: p.name.clone(),
                    files: files(self.root.device_files(&p.name)?),
                })
            })
            .collect();
        let verdicts =
            validate::validate(&files(self.root.fmc_files()), &devices, &[Some(now)]).await?;
        let mut text = String::new();
        for v in &verdicts {
            text += &format!("{}\n", v.line());
        }
        self.out.text(&text)?;
        Ok(verdicts)
    }

    /// `check ROOT` at the lab clock (warning within 90 days, critical within 30): the status
    /// line and one line per certificate a tunnel uses.
    pub fn check(&self) -> Result<Status, LabError> {
        let at = self
            .clock
            .now()
            .replace_nanosecond(0)
            .unwrap_or(self.clock.now());
        let t = Thresholds::default();
        self.command(&format!(
            "sfdiag check --at {} {}",
            rfc3339(&whole_seconds(at)),
            self.root_dir().display()
        ))?;
        let mut paths = vec![self.root.layout.ca_cert(), self.root.fmc_files().cert];
        for p in &self.root.peers {
            if let Some(f) = self.root.device_files(&p.name) {
                paths.push(f.cert);
                paths.push(f.ca);
            }
        }
        let mut namer = RoleNamer::new();
        let mut lines = Vec::new();
        let mut statuses = Vec::new();
        for p in &paths {
            let certs = crate::cert::read_certs(p)
                .map_err(|e| LabError::Unexpected(format!("{}: {e}", p.display())))?;
            let Some(c) = certs.first() else { continue };
            let (Some(nb), Some(na)) = (c.not_before, c.not_after) else {
                continue;
            };
            let a = expiry::assess(nb, na, at, &t);
            statuses.push(a.status);
            let role = namer
                .role_of(p)
                .map(|r| r.to_string())
                .unwrap_or_else(|| p.display().to_string());
            lines.push(format!(
                "{:<8} {role}: notAfter={}, {}",
                a.status.as_str(),
                rfc3339(&na),
                a.standing
            ));
        }
        let worst = expiry::worst(statuses.iter().copied());
        let count = |s: Status| statuses.iter().filter(|x| **x == s).count();
        self.out.text(&format!(
            "{worst}: {} certificates: {} critical, {} warning, {} ok (at {}; warning within {} days, critical within {} days)\n{}",
            statuses.len(),
            count(Status::Critical),
            count(Status::Warning),
            count(Status::Ok),
            rfc3339(&whole_seconds(at)),
            t.warn_days,
            t.critical_days,
            lines.join("\n")
        ))?;
        Ok(worst)
    }

    /// Stops every device and the FMC, and flushes the capture.
    pub async fn finish(
        mut self,
    ) -> Result<(Recorder, Vec<StepReport>, Vec<(PathBuf, String)>), LabError> {
        let names: Vec<String> = crate::sync::lock(&self.clients).keys().cloned().collect();
        // One by one, each waited for, so every tunnel's close is in the capture.
        for n in names {
            self.stop_device(&n).await?;
        }
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.recorder.flush()?;
        Ok((self.recorder, self.steps, self.failed_push))
    }
}

/// `2034-10-04 09:00:00 UTC`.
pub(crate) fn lab_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

async fn wait<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, LabError>>,
) -> Result<T, LabError> {
    match tokio::time::timeout(WAIT, f).await {
        Ok(r) => r,
        Err(_) => Err(LabError::Timeout {
            what: what.to_string(),
            secs: WAIT.as_secs(),
        }),
    }
}

/// `&mut dyn Write` as an `impl Write` for renderers that take one by value type.
struct WriteRef<'a>(&'a mut dyn std::io::Write);

impl std::io::Write for WriteRef<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
