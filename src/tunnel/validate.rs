//! `validate`: prove a set of certificates works before it goes anywhere near an appliance,
//! by running the real FMC server and the real device client against each other on loopback.
//!
//! Owns the orchestration and the verdicts: for each time asked (now, `--at`), one server on
//! 127.0.0.1 port 0 with the FMC's files on a clock showing that time, then for each device one
//! tunnel (`Client::once`: mutual handshake, HELLO, heartbeat). A verdict says which side
//! refused whom and why, in OpenSSL's words, with both sides' log lines.

use std::time::Duration;

use time::OffsetDateTime;

use super::TunnelError;
use super::client::{Backoff, Client, ClientSettings};
use super::clock::Clock;
use super::config::TlsVersion;
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
    /// Why the FMC side failed (it rejected the device, or got an alert), if it did.
    pub fmc: Option<HandshakeFailure>,
    /// Why the device side failed, if it did.
    pub device_side: Option<HandshakeFailure>,
    /// Both sides' log lines for this tunnel, the FMC's first.
    pub lines: Vec<String>,
}

impl Verdict {
    /// The tunnel came up and neither side failed.
    pub fn ok(&self) -> bool {
        self.cipher.is_some() && self.fmc.is_none() && self.device_side.is_none()
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
        let why = match (&self.fmc, &self.device_side) {
            (Some(HandshakeFailure::Rejected(v)), _) => {
                format!("FMC rejected the device's certificate: {}", rejection(v))
            }
            (_, Some(HandshakeFailure::Rejected(v))) => {
                format!("device rejected the FMC's certificate: {}", rejection(v))
            }
            (_, Some(f)) => format!("device: {}", f.reason()),
            (Some(f), None) => format!("FMC: {}", f.reason()),
            (None, None) => "no tunnel".into(),
        };
        format!("{head}: FAILED: {why}")
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
            let client = Client::new(ClientSettings {
                server: server.local_addr().to_string(),
                files: d.files.clone(),
                name: d.name.clone(),
                clock: clock.clone(),
                log: dev_log.clone(),
                keylog: None,
                timeouts,
                backoff: Backoff::default(),
            })?
            .with_tls_version(tls);
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
            out.push(Verdict {
                device: d.name.clone(),
                uuid: id.cert().and_then(|c| c.title).unwrap_or_default(),
                at: clock.now(),
                cipher,
                tls,
                fmc: fmc_side,
                device_side,
                lines,
            });
        }
        server.shutdown().await;
    }
    Ok(out)
}
