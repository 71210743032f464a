//! `validate`: prove a set of certificates works before it goes anywhere near an appliance,
//! by running the real FMC server and the real device client against each other on loopback.
//!
//! Owns the orchestration and the verdicts: for each time asked (now, `--at`), one server on
//! 127.0.0.1 port 0 with the FMC's files on a clock showing that time, then for each device one
//! tunnel each way, as sftunnel's two ends dial each other: the device dialing the FMC
//! (`Client::once`: mutual handshake, HELLO, heartbeat), then the FMC dialing the device (the
//! device's listener of `connect --listen` on 127.0.0.1 port 0, dialed as `serve` dials it),
//! where the device's certificate serves as a TLS server's (its purpose must allow
//! `sslserver`). An HA secondary is not dialed by its primary, so its tunnel is tried one way.
//! A verdict says which side refused whom, which way, and why, in OpenSSL's words, with both
//! sides' log lines.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::TunnelError;
use super::client::{Backoff, Client, ClientSettings};
use super::clock::Clock;
use super::config::TlsVersion;
use super::dial::DialTarget;
use super::failure::HandshakeFailure;
use super::log::SfLog;
use super::material::{Identity, TlsFiles};
use super::server::{Server, ServerEvent, ServerSettings, Timeouts};
use crate::judge;
use crate::pki::layout::{PeerFiles, PkiRoot};
use crate::sftunnel::{rfc3339, whole_seconds};

/// One device to try.
#[derive(Clone, Debug)]
pub struct Device {
    /// The name its HELLO sends and its verdict carries.
    pub name: String,
    /// Its three files.
    pub files: TlsFiles,
    /// The FMC dials it too (a managed device); `false` for an HA secondary, which its
    /// primary does not dial.
    pub dialed: bool,
}

/// How the tunnel went when the FMC dialed the device.
#[derive(Clone, Debug)]
pub struct Dialed {
    /// The negotiated suite when the tunnel came up.
    pub cipher: Option<String>,
    /// Why the FMC (the TLS client here) failed, if it did.
    pub fmc: Option<HandshakeFailure>,
    /// Why the device (the TLS server here) failed, if it did.
    pub device_side: Option<HandshakeFailure>,
}

impl Dialed {
    fn ok(&self) -> bool {
        self.cipher.is_some() && self.fmc.is_none() && self.device_side.is_none()
    }
}

/// The result of one device's tunnel at one time.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The device's name (`NAME -> FMC` for a tunnel to an HA secondary).
    pub device: String,
    /// The `title` of the device's certificate (empty when it has none).
    pub uuid: String,
    /// The time the tunnel was tried at, on the run's clock (a given time, or the real now).
    pub at: OffsetDateTime,
    /// The negotiated suite when the tunnel came up.
    pub cipher: Option<String>,
    /// The TLS version tried.
    pub tls: TlsVersion,
    /// Why the FMC side failed (it rejected the device, or got an alert), if it did, on the
    /// tunnel the device dialed.
    pub fmc: Option<HandshakeFailure>,
    /// Why the device side failed, if it did, on the tunnel the device dialed.
    pub device_side: Option<HandshakeFailure>,
    /// The tunnel the FMC dialed; `None` when the FMC does not dial this peer.
    pub fmc_dialing: Option<Dialed>,
    /// Both sides' log lines for this tunnel, the FMC's first.
    pub lines: Vec<String>,
}

impl Verdict {
    /// The tunnel came up each way tried and neither side failed.
    pub fn ok(&self) -> bool {
        self.cipher.is_some()
            && self.fmc.is_none()
            && self.device_side.is_none()
            && self.fmc_dialing.as_ref().is_none_or(Dialed::ok)
    }

    /// The one line `validate` prints.
    pub fn line(&self) -> String {
        let head = format!(
            "{} ({}) at {}",
            self.device,
            self.uuid,
            rfc3339(&whole_seconds(self.at))
        );
        if self.ok() {
            return format!(
                "{head}: ok, {} {}",
                self.tls,
                self.cipher.as_deref().unwrap_or("?")
            );
        }
        // Each way that failed, named.
        let mut why = Vec::new();
        if self.cipher.is_none() || self.fmc.is_some() || self.device_side.is_some() {
            why.push(format!(
                "{} (the device dialing the FMC)",
                failure(&self.fmc, &self.device_side)
            ));
        }
        if let Some(d) = self.fmc_dialing.as_ref().filter(|d| !d.ok()) {
            why.push(format!(
                "{} (the FMC dialing the device)",
                failure(&d.fmc, &d.device_side)
            ));
        }
        format!("{head}: FAILED: {}", why.join("; "))
    }
}

/// Why one tunnel failed, from either side's failure (a certificate verdict first).
fn failure(fmc: &Option<HandshakeFailure>, device: &Option<HandshakeFailure>) -> String {
    match (fmc, device) {
        (Some(HandshakeFailure::Rejected(v)), _) => {
            format!("FMC rejected the device's certificate: {}", rejection(v))
        }
        (_, Some(HandshakeFailure::Rejected(v))) => {
            format!("device rejected the FMC's certificate: {}", rejection(v))
        }
        (_, Some(f)) => format!("device: {}", f.reason()),
        (Some(f), None) => format!("FMC: {}", f.reason()),
        (None, None) => "no tunnel".into(),
    }
}

/// `err 10:certificate has expired at depth 1 (/title=InternalCA/...), alert 45`.
fn rejection(v: &judge::Verdict) -> String {
    format!(
        "err {} at depth {} ({}), alert {}",
        v.code,
        v.depth.unwrap_or(0),
        v.subject_oneline.as_deref().unwrap_or(""),
        v.alert().0
    )
}

/// `validate --root`: every tunnel of a lab root at each time, FMC by FMC (the primary
/// first): each device against each FMC that manages it, and the HA secondary against the
/// primary (the FMC-to-FMC tunnel rests on the primary's InternalCA). A verdict on a tunnel
/// to the HA secondary names its device `NAME -> FMC`; the rest are named as the root names
/// them. An FMC without peers is passed over. Every tunnel speaks `tls`.
pub async fn validate_root(
    root: &PkiRoot,
    times: &[Option<OffsetDateTime>],
    tls: TlsVersion,
) -> Result<Vec<Verdict>, TunnelError> {
    let primary = root.primary().uuid;
    let mut out = Vec::new();
    for fmc in root.fmcs() {
        let devices: Vec<Device> = root
            .links()
            .into_iter()
            .filter(|l| l.fmc.uuid == fmc.uuid)
            .map(|l| Device {
                name: l.peer.name.clone(),
                files: files(l.peer_files),
                dialed: l.peer.role == crate::sftunnel::Role::Device,
            })
            .collect();
        if devices.is_empty() {
            continue;
        }
        let mut verdicts =
            validate_with(&files(root.fmc_files_of(fmc)), &devices, times, tls).await?;
        if fmc.uuid != primary {
            for v in &mut verdicts {
                v.device = format!("{} -> {}", v.device, fmc.name);
            }
        }
        out.extend(verdicts);
    }
    Ok(out)
}

fn files(p: PeerFiles) -> TlsFiles {
    TlsFiles {
        ca: p.ca,
        cert: p.cert,
        key: p.key,
    }
}

/// Runs every device against the FMC at each time (`None` = the real now), over TLS 1.2.
pub async fn validate(
    fmc: &TlsFiles,
    devices: &[Device],
    times: &[Option<OffsetDateTime>],
) -> Result<Vec<Verdict>, TunnelError> {
    validate_with(fmc, devices, times, TlsVersion::default()).await
}

/// [`validate`] over TLS version `tls` (both ends speak it, as after `pki init --tls-version`).
pub async fn validate_with(
    fmc: &TlsFiles,
    devices: &[Device],
    times: &[Option<OffsetDateTime>],
    tls: TlsVersion,
) -> Result<Vec<Verdict>, TunnelError> {
    // Every file read once up front, so a bad one is a setup error before any tunnel.
    Identity::load(fmc)?;
    let mut ids = Vec::new();
    for d in devices {
        ids.push(Identity::load(&d.files)?);
    }
    let timeouts = Timeouts {
        handshake: Duration::from_secs(10),
        hello: Duration::from_secs(5),
        heartbeat: Duration::from_secs(5),
        push: Duration::from_secs(5),
    };
    let mut out = Vec::new();
    for at in times {
        let clock = Clock::at(*at);
        let fmc_log = SfLog::memory("fmc", std::process::id(), clock.clone());
        let server = Server::start_with(
            ServerSettings {
                listen: "127.0.0.1:0".into(),
                files: fmc.clone(),
                peers: None,
                clock: clock.clone(),
                log: fmc_log.clone(),
                keylog: None,
                control: None,
                timeouts,
            },
            None,
            tls,
        )
        .await?;
        for (d, id) in devices.iter().zip(&ids) {
            let mut events = server.handle().subscribe();
            let seen = fmc_log.lines().len();
            let dev_log = SfLog::memory(&d.name, std::process::id() + 1, clock.clone());
            let client = device_client(&server, d, &clock, &dev_log, timeouts, tls)?;
            let (cipher, device_side) = match client.once().await {
                Ok(r) => (Some(r.established.cipher), None),
                Err(TunnelError::Handshake(f)) => (None, Some(f)),
                Err(e) => return Err(e),
            };
            // The FMC's own account of this connection.
            let fmc_side = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match events.recv().await {
                        Ok(ServerEvent::Failed { failure, .. }) => break Some(failure),
                        Ok(ServerEvent::Connected { .. }) => break None,
                        Ok(_) => {}
                        Err(_) => break None,
                    }
                }
            })
            .await
            .unwrap_or(Some(HandshakeFailure::Timeout {
                phase: "server verdict",
                secs: 5,
            }));
            let mut lines: Vec<String> = fmc_log.lines().split_off(seen);
            lines.extend(dev_log.lines());
            let uuid = id.cert().and_then(|c| c.title).unwrap_or_default();
            let fmc_dialing = if d.dialed {
                let seen = fmc_log.lines().len();
                let dev_log = SfLog::memory(&d.name, std::process::id() + 2, clock.clone());
                let dialed = fmc_dials(&server, d, &uuid, &clock, &dev_log, timeouts, tls).await?;
                lines.extend(fmc_log.lines().split_off(seen));
                lines.extend(dev_log.lines());
                Some(dialed)
            } else {
                None
            };
            out.push(Verdict {
                device: d.name.clone(),
                uuid,
                at: clock.now(),
                cipher,
                tls,
                fmc: fmc_side,
                device_side,
                fmc_dialing,
                lines,
            });
        }
        server.shutdown().await;
    }
    Ok(out)
}

/// Device `d` as `connect` runs it, toward `server`, logging to `dev_log`: the one setup both
/// directions of a validation use.
fn device_client(
    server: &Server,
    d: &Device,
    clock: &Clock,
    dev_log: &SfLog,
    timeouts: Timeouts,
    tls: TlsVersion,
) -> Result<Client, TunnelError> {
    Ok(Client::new(ClientSettings {
        server: server.local_addr().to_string(),
        files: d.files.clone(),
        name: d.name.clone(),
        clock: clock.clone(),
        log: dev_log.clone(),
        keylog: None,
        timeouts,
        backoff: Backoff::default(),
    })?
    .with_tls_version(tls))
}

/// The FMC dialing device `d`: the device's listener on 127.0.0.1 port 0 (as `connect
/// --listen` runs it, its log `dev_log`), one dial from `server` with the FMC's files, and
/// the device's account once its session answered a heartbeat or failed.
async fn fmc_dials(
    server: &Server,
    d: &Device,
    uuid: &str,
    clock: &Clock,
    dev_log: &SfLog,
    timeouts: Timeouts,
    tls: TlsVersion,
) -> Result<Dialed, TunnelError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Its server address is never dialed: this device only accepts.
    let client = device_client(server, d, clock, dev_log, timeouts, tls)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let device = tokio::spawn(super::listen::accept_one(
        Arc::new(client),
        listener,
        stopped,
    ));
    let target = DialTarget {
        name: d.name.clone(),
        uuid: uuid.to_owned(),
        addr,
    };
    let h = server.handle();
    let fmc = super::dial::dial_once(&h, &target).await;
    // The device's side ends with its heartbeat answered, or with the FMC's refusal.
    let mut device = device;
    let device_side = match tokio::time::timeout(Duration::from_secs(10), &mut device).await {
        Ok(Ok(r)) => r.err(),
        Ok(Err(_)) => Some(HandshakeFailure::Closed),
        Err(_) => {
            let _ = stop.send(true);
            let _ = device.await;
            Some(HandshakeFailure::Timeout {
                phase: "device verdict",
                secs: 10,
            })
        }
    };
    let (cipher, fmc) = match fmc {
        Ok(c) => (Some(c), None),
        Err(f) => (None, Some(f)),
    };
    Ok(Dialed {
        cipher,
        fmc,
        device_side,
    })
}
