//! The stage a scenario plays on: one lab PKI, each FMC's server with its control socket (the
//! primary's, and an HA secondary's with its own InternalCA), the devices' clients (one per
//! FMC a device talks to, and the secondary's own tunnel to the primary), the shared lab
//! clock, the capture, and the waits that keep the story in step with what the appliances
//! really did.
//!
//! Every wait is for an event the appliances report (the server's `Connected`/`Failed`, a
//! client's state, a heartbeat stamped after a clock jump), each with a deadline; nothing
//! sleeps for a fixed time to "let things settle".
//!
//! The run's own settings (`lab --tls-version`, `--keylog`) reach every story's stage through
//! [`SETTINGS`], which `scenarios::run` sets around the story: the TLS version goes into the
//! PKI's `sftunnel.conf` and every appliance speaks it; the FMC writes the NSS key log of
//! every tunnel beside the capture (or where `--keylog` says).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use super::out::Out;
use super::{LabError, StepReport};
use crate::pki::conf::TlsVersion;
use crate::pki::copy::{self, CopyReport, LocalTransport};
use crate::pki::expiry::{self, Status, Thresholds};
use crate::pki::layout::{PeerFiles, PkiRoot};
use crate::pki::renew::{self, RenewOptions};
use crate::pki::roles::RoleNamer;
use crate::pki::{InitOptions, Validity};
use crate::recorder::Recorder;
use crate::sftunnel::{Channel, rfc3339, whole_seconds};
use crate::tunnel::client::Backoff;
use crate::tunnel::client::{Client, ClientHandle, ClientSettings, ClientState};
use crate::tunnel::config::KeyLogFile;
use crate::tunnel::failure::HandshakeFailure;
use crate::tunnel::renewal::{self, RenewRun};
use crate::tunnel::server::{KnownPeer, Server, ServerEvent, ServerSettings, Timeouts};
use crate::tunnel::status::PeerStatus;
use crate::tunnel::validate::{self, Verdict};
use crate::tunnel::{Clock, DialTarget, SfLog, TlsFiles};

/// What a run sets for whatever story it plays (see the module doc).
#[derive(Clone, Debug, Default)]
pub(crate) struct Settings {
    /// Overrides the story's `proxy_tls_version`.
    pub tls: Option<TlsVersion>,
    /// Where the key log goes (default: beside the capture).
    pub keylog: Option<PathBuf>,
}

tokio::task_local! {
    /// The run's [`Settings`], read by [`World::new`].
    pub(crate) static SETTINGS: Settings;
}

/// The key log beside a capture: `lab.keylog` for `lab.pcap`.
pub(crate) fn keylog_beside(pcap: &Path) -> PathBuf {
    pcap.with_extension("keylog")
}

/// Deadline for any one thing the story waits for.
const WAIT: Duration = Duration::from_secs(20);

/// The lab's tunnel timings: heartbeats every half second (a jump of the clock shows in the
/// status table within half a second, which keeps the story short), a device retries 2 s
/// after a failure, then 4 s, 8 s.
fn timeouts() -> Timeouts {
    Timeouts {
        handshake: Duration::from_secs(10),
        hello: Duration::from_secs(10),
        heartbeat: Duration::from_millis(500),
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

/// One tunnel client: (the appliance that dials, the FMC it dials), by folder names.
type LinkKey = (String, String);

type Clients = Arc<Mutex<BTreeMap<LinkKey, Running>>>;

/// One FMC of the root, serving.
struct FmcRunning {
    /// The root as this FMC sees it (its files, peers, control socket).
    view: PkiRoot,
    /// The host name in its log lines.
    host: String,
    server: Option<Server>,
    addr: SocketAddr,
    socket: PathBuf,
}

/// See the module doc.
pub(crate) struct World {
    /// The root as the primary sees it.
    pub root: PkiRoot,
    pub clock: Clock,
    pub out: Out,
    /// Every FMC of the root, the primary first.
    fmcs: Vec<FmcRunning>,
    clients: Clients,
    pub recorder: Recorder,
    /// The TLS version every appliance of this stage speaks.
    pub tls: TlsVersion,
    /// The FMC's NSS key log (every tunnel's secrets) and where it is.
    keylog: Arc<dyn rustls::KeyLog>,
    pub keylog_path: PathBuf,
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
    pub(crate) async fn new(
        init: InitOptions,
        start: OffsetDateTime,
        out: Out,
        pcap: &Path,
        steps_total: usize,
    ) -> Result<World, LabError> {
        let clock = Clock::lab(start);
        let settings = SETTINGS.try_with(Clone::clone).unwrap_or_default();
        let mut init = init;
        if let Some(v) = settings.tls {
            init.tls_version = v;
        }
        let tls = init.tls_version;
        let keylog_path = settings.keylog.unwrap_or_else(|| keylog_beside(pcap));
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
        // A fresh key log, as the capture is a fresh file (appending would mix runs).
        if keylog_path.is_file() {
            std::fs::remove_file(&keylog_path)
                .map_err(|e| crate::pki::PkiError::io("replace", &keylog_path, e))?;
        }
        let keylog = KeyLogFile::open(&keylog_path)?;
        let pid = std::process::id().clamp(1000, 60000);
        let mut fmcs = Vec::new();
        for f in root.fmcs() {
            let view = root.as_fmc(&f.name)?;
            fmcs.push(FmcRunning {
                socket: crate::tunnel::control::socket_path(&view.layout.fmc_dir()),
                // The primary is "FMC" in the lab's lines, as in the runbook's transcripts.
                host: if view.primary_acts() {
                    "FMC".to_string()
                } else {
                    f.name.clone()
                },
                view,
                server: None,
                addr: "127.0.0.1:0".parse().expect("literal address"),
            });
        }
        let mut w = World {
            root,
            clock,
            out,
            fmcs,
            clients: Arc::default(),
            recorder,
            tls,
            keylog,
            keylog_path,
            steps: Vec::new(),
            failed_push: Vec::new(),
            step_no: 0,
            steps_total,
            pid,
            dialing: BTreeMap::new(),
            booted: Default::default(),
        };
        for i in 0..w.fmcs.len() {
            w.start_fmc(i).await?;
        }
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

    async fn start_fmc(&mut self, i: usize) -> Result<(), LabError> {
        let log = self.log_for(&self.fmcs[i].host.clone());
        let f = &self.fmcs[i];
        let server = Server::start_with(
            ServerSettings {
                listen: "127.0.0.1:0".into(),
                files: files(f.view.fmc_files()),
                peers: Some(KnownPeer::of_root(&f.view)),
                clock: self.clock.clone(),
                log,
                keylog: Some(self.keylog.clone()),
                control: Some(f.socket.clone()),
                timeouts: timeouts(),
            },
            Some(self.recorder.clone()),
            self.tls,
        )
        .await?;
        let f = &mut self.fmcs[i];
        f.addr = server.local_addr();
        f.server = Some(server);
        Ok(())
    }

    fn fmc(&self, name: &str) -> Result<&FmcRunning, LabError> {
        self.fmcs
            .iter()
            .find(|f| f.view.fmc.name == name)
            .ok_or_else(|| LabError::Unexpected(format!("no FMC {name}")))
    }

    fn primary_name(&self) -> String {
        self.root.fmc.name.clone()
    }

    fn server_of(&self, fmc: &str) -> Result<&Server, LabError> {
        self.fmc(fmc)?
            .server
            .as_ref()
            .ok_or_else(|| LabError::Unexpected(format!("FMC {fmc} is not serving")))
    }

    fn server(&self) -> &Server {
        self.fmcs[0]
            .server
            .as_ref()
            .expect("the FMC runs for the whole story")
    }

    /// Server events from now on (subscribe before acting, then wait).
    pub(crate) fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.server().handle().subscribe()
    }

    /// FMC `fmc`'s server events from now on.
    pub(crate) fn events_of(
        &self,
        fmc: &str,
    ) -> Result<broadcast::Receiver<ServerEvent>, LabError> {
        Ok(self.server_of(fmc)?.handle().subscribe())
    }

    /// Where the root is.
    pub(crate) fn root_dir(&self) -> &Path {
        self.root.layout.root()
    }

    // ---- narration ----

    /// A step's header with the lab clock, first moved to `at` when given.
    pub(crate) fn step(&mut self, at: Option<OffsetDateTime>, title: &str) -> Result<(), LabError> {
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
    pub(crate) fn say(&self, text: &str) -> Result<(), LabError> {
        Ok(self.out.text(&format!("lab: {text}"))?)
    }

    /// The command a person would type for this step.
    pub(crate) fn command(&self, cmd: &str) -> Result<(), LabError> {
        Ok(self.out.text(&format!("$ {cmd}"))?)
    }

    // ---- devices ----

    /// Who dials device `name` from its next start on.
    pub(crate) fn set_dialing(&mut self, name: &str, d: Dialing) {
        self.dialing.insert(name.to_string(), d);
    }

    /// Starts (or boots) appliance `name`'s sftunnel: one tunnel to each FMC that manages it
    /// (a device: the primary and the HA secondary; the secondary: the primary), each
    /// connecting and retrying on its own, from its own address in the PKI (on loopback), or
    /// listening there for that FMC ([`Dialing`]).
    pub(crate) fn start_device(&mut self, name: &str) -> Result<(), LabError> {
        let fmcs: Vec<String> = self
            .root
            .fmcs()
            .into_iter()
            .filter(|f| self.root.peers_of(f).iter().any(|p| p.name == name))
            .map(|f| f.name.clone())
            .collect();
        if fmcs.is_empty() {
            return Err(LabError::Unexpected(format!("no device {name}")));
        }
        for fmc in fmcs {
            self.start_link(name, &fmc)?;
        }
        Ok(())
    }

    /// Starts appliance `name`'s tunnel to FMC `fmc` alone, with the files that FMC gave it.
    pub(crate) fn start_link(&mut self, name: &str, fmc: &str) -> Result<(), LabError> {
        let f = self.fmc(fmc)?;
        let dev_files = f
            .view
            .device_files(name)
            .ok_or_else(|| LabError::Unexpected(format!("{name} is not a peer of {fmc}")))?;
        let addr = f.addr;
        let log = self.log_for(name);
        let mut client = Client::new(ClientSettings {
            server: addr.to_string(),
            files: files(dev_files),
            name: name.to_string(),
            clock: self.clock.clone(),
            log,
            keylog: None,
            timeouts: timeouts(),
            backoff: backoff(),
        })?
        .with_tls_version(self.tls);
        // Each device dials from its own loopback address (127.1.0.N in the lab's ims.conf),
        // so the capture tells them apart by address, as a customer's capture does.
        let ip = self
            .root
            .peer(name)
            .map(|p| p.ip)
            .filter(|ip| ip.is_loopback());
        if let Some(ip) = ip {
            client = client.with_source(ip);
        }
        let dialing = self.dialing.get(name).copied().unwrap_or(Dialing::Device);
        let rebooted = !self.booted.insert(format!("{name}\n{fmc}"));
        let handle = match (dialing, ip) {
            (Dialing::Device, _) | (_, None) => client.spawn(),
            (Dialing::Fmc | Dialing::Both, Some(ip)) => {
                // Where this FMC dials it: its address, the port the FMC listens on (8305 on
                // the appliances).
                let at = SocketAddr::new(ip, addr.port());
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
                    .fmcs
                    .iter_mut()
                    .find(|f| f.view.fmc.name == fmc)
                    .and_then(|f| f.server.as_mut())
                    .ok_or_else(|| LabError::Unexpected(format!("FMC {fmc} is not serving")))?;
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
        crate::sync::lock(&self.clients).insert(
            (name.to_string(), fmc.to_string()),
            Running { handle, state },
        );
        Ok(())
    }

    /// Stops appliance `name`'s sftunnel (power off, reboot): every tunnel it holds closes.
    pub(crate) async fn stop_device(&mut self, name: &str) -> Result<(), LabError> {
        let fmcs: Vec<String> = crate::sync::lock(&self.clients)
            .keys()
            .filter(|(a, _)| a == name)
            .map(|(_, f)| f.clone())
            .collect();
        for fmc in fmcs {
            self.stop_link(name, &fmc).await?;
        }
        Ok(())
    }

    /// Stops appliance `name`'s tunnel to FMC `fmc` and waits for that FMC to see it go.
    pub(crate) async fn stop_link(&mut self, name: &str, fmc: &str) -> Result<(), LabError> {
        let running = crate::sync::lock(&self.clients).remove(&(name.to_string(), fmc.to_string()));
        if let Some(r) = running {
            let server = self.server_of(fmc)?.handle();
            let mut ev = server.subscribe();
            let uuid = self.uuid(name)?;
            let was_up = server.peers().iter().any(|p| p.uuid == uuid);
            r.handle.stop().await;
            if was_up {
                wait(&format!("{fmc} to see {name} go"), async {
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

    fn state(&self, name: &str, fmc: &str) -> Result<watch::Receiver<ClientState>, LabError> {
        crate::sync::lock(&self.clients)
            .get(&(name.to_string(), fmc.to_string()))
            .map(|r| r.state.clone())
            .ok_or_else(|| LabError::Unexpected(format!("{name}'s tunnel to {fmc} is not running")))
    }

    /// Waits until the primary registered a new tunnel from each of `names` (events from
    /// `ev`, subscribed before the action) and each device says it is connected.
    pub(crate) async fn wait_connected(
        &self,
        ev: broadcast::Receiver<ServerEvent>,
        names: &[&str],
    ) -> Result<(), LabError> {
        self.wait_connected_to(&self.primary_name(), ev, names)
            .await
    }

    /// [`World::wait_connected`] on FMC `fmc` (events from `ev`, its server's).
    pub(crate) async fn wait_connected_to(
        &self,
        fmc: &str,
        mut ev: broadcast::Receiver<ServerEvent>,
        names: &[&str],
    ) -> Result<(), LabError> {
        let mut want: Vec<String> = names
            .iter()
            .map(|n| self.uuid(n))
            .collect::<Result<_, _>>()?;
        wait(
            &format!("{} to connect to {fmc}", names.join(", ")),
            async {
                while !want.is_empty() {
                    match ev.recv().await {
                        Ok(ServerEvent::Connected { uuid, .. }) => want.retain(|u| u != &uuid),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(e) => return Err(LabError::Unexpected(e.to_string())),
                    }
                }
                Ok(())
            },
        )
        .await?;
        for n in names {
            let mut st = self.state(n, fmc)?;
            wait(&format!("{n} to report its tunnel to {fmc} up"), async {
                st.wait_for(|s| matches!(s, ClientState::Connected { .. }))
                    .await
                    .map(|_| ())
                    .map_err(|e| LabError::Unexpected(e.to_string()))
            })
            .await?;
        }
        // Up means both channels, control and events, each its own connection.
        let h = self.server_of(fmc)?.handle();
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
    pub(crate) async fn wait_dial_failed(
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

    /// Waits for device `name`'s next failed attempt to reach the primary and for the
    /// primary's account of a failed connection (from `ev`); returns the device's failure.
    pub(crate) async fn wait_failed(
        &self,
        ev: broadcast::Receiver<ServerEvent>,
        name: &str,
    ) -> Result<HandshakeFailure, LabError> {
        self.wait_failed_to(&self.primary_name(), ev, name).await
    }

    /// [`World::wait_failed`] on FMC `fmc` (events from `ev`, its server's).
    pub(crate) async fn wait_failed_to(
        &self,
        fmc: &str,
        mut ev: broadcast::Receiver<ServerEvent>,
        name: &str,
    ) -> Result<HandshakeFailure, LabError> {
        let mut st = self.state(name, fmc)?;
        let f = wait(
            &format!("{name}'s connection attempt to {fmc} to fail"),
            async {
                st.wait_for(|s| matches!(s, ClientState::Failed(_)))
                    .await
                    .map(|s| match &*s {
                        ClientState::Failed(f) => f.clone(),
                        _ => unreachable!("waited for Failed"),
                    })
                    .map_err(|e| LabError::Unexpected(e.to_string()))
            },
        )
        .await?;
        wait(&format!("{fmc} to log the failed connection"), async {
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

    /// Waits until every peer connected to any FMC sent a heartbeat stamped at or after `t`.
    pub(crate) async fn wait_heartbeats_after(&self, t: OffsetDateTime) -> Result<(), LabError> {
        let hs: Vec<_> = self
            .fmcs
            .iter()
            .filter_map(|f| f.server.as_ref().map(Server::handle))
            .collect();
        wait("heartbeats after the clock jump", async {
            loop {
                let fresh = hs.iter().flat_map(|h| h.peers()).all(|p| {
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

    /// FMC `fmc`'s view of every peer it manages, like `sfdiag status --root [--fmc]`.
    fn peer_rows(&self, fmc: &FmcRunning) -> Vec<PeerStatus> {
        let seen = fmc
            .server
            .as_ref()
            .map(|s| s.handle().peers_seen())
            .unwrap_or_default();
        let mut rows = crate::tunnel::status::rows_for_root(&seen, &fmc.view);
        // Lab devices all dial from loopback: show the address each has in the PKI instead.
        for r in &mut rows {
            if let Some(p) = fmc.view.peers.iter().find(|p| p.uuid.to_string() == r.uuid) {
                r.ip = p.ip.to_string();
            }
        }
        rows
    }

    /// Prints the primary's status table and keeps it in the report.
    pub(crate) fn status(&mut self) -> Result<(), LabError> {
        self.status_of(&self.primary_name())
    }

    /// Prints FMC `fmc`'s status table (`sfdiag status --root ROOT --fmc NAME`) and keeps it
    /// in the report.
    pub(crate) fn status_of(&mut self, fmc: &str) -> Result<(), LabError> {
        let f = self.fmc(fmc)?;
        let rows = self.peer_rows(f);
        let info = f.server.as_ref().map(|s| s.handle().info());
        let flag = if f.view.primary_acts() {
            String::new()
        } else {
            format!(" --fmc {fmc}")
        };
        self.command(&format!(
            "sfdiag status --root {}{flag}",
            self.root_dir().display()
        ))?;
        self.out
            .block(|w| crate::report::status::text(&mut WriteRef(w), info.as_ref(), &rows))?;
        self.steps.push(StepReport {
            title: format!("step {}", self.step_no),
            at: rfc3339(&whole_seconds(self.clock.now())),
            peers: rows,
        });
        Ok(())
    }

    /// Prints `status --brief` (the FTD CLI's `sftunnel-status-brief` blocks, from the FMC's
    /// view): each peer's two channels and who dialed them, or when it went down.
    pub(crate) fn status_brief(&mut self) -> Result<(), LabError> {
        let rows = self.peer_rows(&self.fmcs[0]);
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
    pub(crate) fn title_last(&mut self, title: &str) {
        if let Some(s) = self.steps.last_mut() {
            s.title = title.to_string();
        }
    }

    // ---- the runbook's commands ----

    /// `pki renew --root ROOT --yes` at the lab clock, through the running primary.
    pub(crate) async fn renew(&mut self) -> Result<RenewRun, LabError> {
        self.renew_on(&self.primary_name()).await
    }

    /// `pki renew --root ROOT [--fmc NAME] --yes` at the lab clock, through FMC `fmc`'s
    /// running server: that FMC's InternalCA, for its own peers.
    pub(crate) async fn renew_on(&mut self, fmc: &str) -> Result<RenewRun, LabError> {
        let now = self.clock.now();
        let at = now.replace_nanosecond(0).unwrap_or(now);
        let f = self.fmc(fmc)?;
        let socket = f.socket.clone();
        let primary = f.view.primary_acts();
        self.command(&format!(
            "sfdiag pki renew --root {}{} --yes",
            self.root_dir().display(),
            if primary {
                String::new()
            } else {
                format!(" --fmc {fmc}")
            }
        ))?;
        let pre = renew::preflight_for(self.root_dir(), (!primary).then_some(fmc), at)?;
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
        let run = renewal::renew_and_push(pre, opts, &socket).await?;
        crate::report::renew::run(&mut w, &run, false)?;
        if let Some(fp) = &run.record.failed_push {
            let text =
                std::fs::read_to_string(fp).map_err(|e| crate::pki::PkiError::io("read", fp, e))?;
            self.command(&format!("cat {}", fp.display()))?;
            self.out.text(&text)?;
            self.failed_push.push((fp.clone(), text));
        }
        Ok(run)
    }

    /// `pki copy --root ROOT --devices ROOT/devices.csv` on the primary, with `lines` as the
    /// CSV; restarts the in-process tunnels of the devices it copied to.
    pub(crate) fn copy(&mut self, lines: &[String]) -> Result<CopyReport, LabError> {
        self.copy_on(&self.primary_name(), lines)
    }

    /// [`World::copy`] run on FMC `fmc` (`pki copy --fmc NAME`): the files its InternalCA
    /// signed. A device's sftunnel restart restarts every tunnel it holds.
    pub(crate) fn copy_on(&mut self, fmc: &str, lines: &[String]) -> Result<CopyReport, LabError> {
        let source = self.fmc(fmc)?.view.clone();
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
            "sfdiag pki copy --root {}{} --devices {}",
            self.root_dir().display(),
            if source.primary_acts() {
                String::new()
            } else {
                format!(" --fmc {fmc}")
            },
            csv.display()
        ))?;
        let entries = copy::parse_devices_csv(&text, &csv)?;
        let clients = self.clients.clone();
        let mut t = LocalTransport::open(self.root_dir())?.with_restart(Box::new(move |name| {
            let mut restarted = false;
            for ((appliance, _), r) in crate::sync::lock(&clients).iter() {
                if appliance == name {
                    r.handle.restart();
                    restarted = true;
                }
            }
            restarted
        }));
        let clock = self.clock.clone();
        let mut transcript = crate::report::copy::Transcript::new(self.out.line_writer());
        Ok(copy::copy(
            &entries,
            &copy::local_fmc_entry(&source),
            &mut t,
            &move || clock.now(),
            &mut |at, e| {
                if let Err(err) = transcript.event(at, e) {
                    tracing::warn!(error = %err, "cannot write the copy's report");
                }
            },
        )?)
    }

    /// `validate --root ROOT` at the lab clock: a fresh FMC per FMC of the root and one
    /// tunnel per device it manages (the HA secondary's to the primary included).
    pub(crate) async fn validate(&self) -> Result<Vec<Verdict>, LabError> {
        let now = self.clock.now();
        self.command(&format!(
            "sfdiag validate --root {} --at {}",
            self.root_dir().display(),
            rfc3339(&whole_seconds(now))
        ))?;
        let verdicts = validate::validate_root(&self.root, &[Some(now)], self.tls).await?;
        let mut text = String::new();
        for v in &verdicts {
            text += &format!("{}\n", v.line());
        }
        self.out.text(&text)?;
        Ok(verdicts)
    }

    /// `check ROOT` at the lab clock (warning within 90 days, critical within 30): the status
    /// line and one line per certificate a tunnel uses.
    pub(crate) fn check(&self) -> Result<Status, LabError> {
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
    pub(crate) async fn finish(
        mut self,
    ) -> Result<(Recorder, Vec<StepReport>, Vec<(PathBuf, String)>), LabError> {
        let links: Vec<LinkKey> = crate::sync::lock(&self.clients).keys().cloned().collect();
        // One by one, each waited for, so every tunnel's close is in the capture.
        for (name, fmc) in links {
            self.stop_link(&name, &fmc).await?;
        }
        for f in &mut self.fmcs {
            if let Some(s) = f.server.take() {
                s.shutdown().await;
            }
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
