//! `sfdiag serve | connect | validate | status`: flags -> `sfdiag::tunnel` settings, a tokio
//! runtime, signals, and exit codes (CLI.md: connect/validate 0 ok, 1 a handshake failed,
//! 2 usage or setup error).
//!
//! Files come from a lab PKI root (`--root`, read with `pki::layout::PkiRoot`) or explicit
//! `--ca/--cert/--key`; `--at` puts the side on a lab clock.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use time::OffsetDateTime;

use sfdiag::pki::conf::TlsVersion;
use sfdiag::pki::layout::{FMC_DIR, PkiRoot};
use sfdiag::tunnel::client::{Backoff, Client, ClientSettings};
use sfdiag::tunnel::config::KeyLogFile;
use sfdiag::tunnel::control::ControlClient;
use sfdiag::tunnel::fleet::FleetSettings;
use sfdiag::tunnel::server::{Server, ServerSettings, Timeouts};
use sfdiag::tunnel::validate::{self, Device};
use sfdiag::tunnel::{self, Clock, SfLog, TlsFiles, TunnelError};

use super::time_arg::parse_time;

/// Mode of a messages log sfdiag creates (`--log FILE`), whatever the umask.
const LOG_MODE: u32 = 0o644;

/// The live tunnel's subcommands (flattened into the top level).
#[derive(Debug, Subcommand)]
pub(crate) enum TunnelCommand {
    /// The FMC side of sftunnel: accept device tunnels (mutual TLS 1.2, or 1.3 as on 7.6+), log like the appliance.
    Serve(Box<ServeArgs>),
    /// The FTD side: dial the FMC and keep the tunnel up (or --once, or a --count fleet).
    Connect(Box<ConnectArgs>),
    /// Run both ends on loopback with the given files, one tunnel per device, and judge them.
    Validate(Box<ValidateArgs>),
    /// Peers of a running `serve`, like sftunnel_status.pl.
    Status(Box<StatusArgs>),
}

/// Runs one of the tunnel subcommands.
pub(crate) fn run(cmd: TunnelCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cmd {
        TunnelCommand::Serve(a) => rt.block_on(serve(*a)),
        TunnelCommand::Connect(a) => rt.block_on(connect(*a)),
        TunnelCommand::Validate(a) => rt.block_on(validate_cmd(*a)),
        TunnelCommand::Status(a) => rt.block_on(status(*a)),
    }
}

/// `--ca/--cert/--key`.
#[derive(Debug, Args)]
pub(crate) struct FileArgs {
    /// The InternalCA to trust (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cert", "key"], conflicts_with = "root")]
    pub ca: Option<PathBuf>,
    /// This side's sftunnel certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["ca", "key"])]
    pub cert: Option<PathBuf>,
    /// This side's private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["ca", "cert"])]
    pub key: Option<PathBuf>,
}

impl FileArgs {
    fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            ca: self.ca.clone()?,
            cert: self.cert.clone()?,
            key: self.key.clone()?,
        })
    }
}

/// Flags both long-running sides share.
#[derive(Debug, Args)]
pub(crate) struct SideArgs {
    /// TLS version to speak: 1.2 (before 7.6) or 1.3 (FMC/FTD 7.6+). Default: with --root,
    /// sftunnel.conf's proxy_tls_version (`pki init --tls-version`); else 1.2.
    #[arg(long, value_name = "1.2|1.3")]
    pub tls_version: Option<TlsVersion>,
    /// Judge certificates and stamp logs as if the clock showed TIME (RFC 3339 or +90d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// Append log lines to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Append NSS key log lines (for Wireshark) to FILE.
    #[arg(long, value_name = "FILE")]
    pub keylog: Option<PathBuf>,
    /// Write a pcap of this side's own TLS traffic to FILE (real TLS bytes, synthesized
    /// Ethernet/IP/TCP framing, stamped with this side's clock).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Host name in log lines (default: the appliance's name).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Seconds between heartbeats (a peer silent for three is dropped).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub heartbeat: u64,
    /// Seconds allowed for TCP connect and for HELLO, and the longest a peer may stay silent
    /// in the TLS handshake (which gets six times that in all, from accept on the server).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// The OpenSSL the emulated appliance links: its log lines use that release's error
    /// strings and codes (3, 1.1.1 or 1.0.2, also as `openssl version` prints them).
    #[arg(long, value_name = "VERSION", default_value = "3",
          value_parser = |s: &str| s.parse::<sfdiag::judge::OpenSsl>().map_err(|e| e.to_string()))]
    pub openssl: sfdiag::judge::OpenSsl,
}

impl SideArgs {
    fn clock(&self) -> anyhow::Result<Clock> {
        Ok(Clock::at(parse_at(self.at.as_deref())?))
    }

    fn sflog(&self, hostname: &str, clock: &Clock, quiet: bool) -> anyhow::Result<SfLog> {
        let pid = std::process::id();
        let log = match &self.log {
            Some(p) => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(LOG_MODE)
                    .open(p)
                    .with_context(|| format!("cannot open log {}", super::shown(p)))?;
                SfLog::to_writer(hostname, pid, clock.clone(), f)
            }
            None if quiet => SfLog::discard(hostname, clock.clone()),
            None => SfLog::to_writer(hostname, pid, clock.clone(), std::io::stdout()),
        };
        log.set_openssl(self.openssl);
        Ok(log)
    }

    fn keylog(&self) -> anyhow::Result<Option<Arc<dyn rustls::KeyLog>>> {
        Ok(match &self.keylog {
            Some(p) => Some(KeyLogFile::open(p)?),
            None => None,
        })
    }

    fn recorder(&self, clock: &Clock) -> anyhow::Result<Option<sfdiag::recorder::Recorder>> {
        let Some(p) = &self.pcap else { return Ok(None) };
        let clock = clock.clone();
        let r = sfdiag::recorder::Recorder::create(p, move || clock.now())
            .with_context(|| format!("--pcap {}", super::shown(p)))?;
        Ok(Some(r))
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            handshake: Duration::from_secs(self.timeout),
            hello: Duration::from_secs(self.timeout),
            heartbeat: Duration::from_secs(self.heartbeat.max(1)),
            push: Duration::from_secs(30),
        }
    }
}

fn parse_at(at: Option<&str>) -> anyhow::Result<Option<OffsetDateTime>> {
    at.map(|s| parse_time(s, OffsetDateTime::now_utc()))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--at: {e}"))
}

fn load_root(root: &Path) -> anyhow::Result<PkiRoot> {
    PkiRoot::load(root).with_context(|| format!("--root {}", super::shown(root)))
}

/// `--tls-version`, else what `appliance`'s sftunnel.conf under the root says, else 1.2.
fn tls_version(
    flag: Option<TlsVersion>,
    root: Option<(&PkiRoot, &str)>,
) -> anyhow::Result<TlsVersion> {
    match (flag, root) {
        (Some(v), _) => Ok(v),
        (None, Some((r, appliance))) => Ok(r.tls_version(appliance)?),
        (None, None) => Ok(TlsVersion::default()),
    }
}

/// The root seen from the FMC `--fmc` names (default: the primary).
fn load_root_as(root: &Path, fmc: Option<&str>) -> anyhow::Result<PkiRoot> {
    let r = load_root(root)?;
    Ok(match fmc {
        Some(name) => r
            .as_fmc(name)
            .with_context(|| format!("--root {}", super::shown(root)))?,
        None => r,
    })
}

fn to_files(p: sfdiag::pki::layout::PeerFiles) -> TlsFiles {
    TlsFiles {
        ca: p.ca,
        cert: p.cert,
        key: p.key,
    }
}

/// Where `serve --root DIR [--fmc NAME]` puts its control socket: in that FMC's folder.
pub(crate) fn control_socket(root: &PkiRoot) -> PathBuf {
    tunnel::control::socket_path(&root.layout.fmc_dir())
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A lab PKI root: serve as its FMC (files, host name, control socket); only its peers
    /// are admitted, named as it names them.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Which FMC of the root serves (its folder name; default: the primary): an HA
    /// secondary serves with its own InternalCA to the devices it manages.
    #[arg(long, value_name = "NAME", requires = "root")]
    pub fmc: Option<String>,
    #[command(flatten)]
    pub files: FileArgs,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8305")]
    pub listen: String,
    /// With --root: do not dial the root's devices. By default the FMC also opens the tunnel
    /// to each device at its address on the port it listens on (8305), as the appliance does;
    /// a device accepts with `connect --listen`.
    #[arg(long, requires = "root")]
    pub no_dial: bool,
    /// Control socket for `status` and `pki renew` (default with --root: ROOT/<FMC>/var/run/sftunnel.sock);
    /// owner-only, and only a stale socket at PATH is ever replaced.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    #[command(flatten)]
    pub side: SideArgs,
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    // With a root, only its peers are admitted (CLI.md), named as it names them.
    let (files, host, control, peers, tls, devices) = match (&a.root, a.files.files()) {
        (Some(root), _) => {
            let r = load_root_as(root, a.fmc.as_deref())?;
            // The FMC dials its managed devices (not an HA peer: FMCs sync otherwise).
            let devices: Vec<(String, String, std::net::IpAddr)> = r
                .peers
                .iter()
                .filter(|p| p.role == sfdiag::sftunnel::Role::Device)
                .map(|p| (p.name.clone(), p.uuid.to_string(), p.ip))
                .collect();
            (
                to_files(r.fmc_files()),
                r.fmc.name.clone(),
                Some(a.control.clone().unwrap_or_else(|| control_socket(&r))),
                Some(tunnel::server::KnownPeer::of_root(&r)),
                // The acting FMC's own sftunnel.conf (an HA secondary's with --fmc).
                tls_version(a.side.tls_version, Some((&r, r.layout.fmc_name())))?,
                devices,
            )
        }
        (None, Some(f)) => (
            f,
            "fmc".to_owned(),
            a.control.clone(),
            None,
            tls_version(a.side.tls_version, None)?,
            Vec::new(),
        ),
        (None, None) => bail!("serve needs --root DIR or --ca, --cert and --key"),
    };
    let clock = a.side.clock()?;
    let log = a
        .side
        .sflog(a.side.hostname.as_deref().unwrap_or(&host), &clock, false)?;
    let recorder = a.side.recorder(&clock)?;
    let hup_log = log.clone();
    let mut server = Server::start_with(
        ServerSettings {
            listen: a.listen.clone(),
            files,
            peers,
            clock,
            log,
            keylog: a.side.keylog()?,
            control,
            timeouts: a.side.timeouts(),
        },
        recorder,
        tls,
    )
    .await?;
    if !a.no_dial {
        let port = server.local_addr().port();
        let targets = devices
            .into_iter()
            .map(|(name, uuid, ip)| tunnel::DialTarget {
                name,
                uuid,
                addr: std::net::SocketAddr::new(ip, port),
            })
            .collect();
        server.dial(
            targets,
            Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        );
    }
    // SIGHUP restarts the tunnel service with the files read again, like restarting sftunnel.
    let handle = server.handle();
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if let Err(e) = handle.restart_files() {
                    // The operator reads `--log`, not stderr: the refusal goes there too.
                    hup_log.thread(hup_log.main_tid()).error(&format!(
                        "Cannot restart the tunnel service with new certificates: {}; \
                         keeping the loaded ones",
                        sfdiag::sftunnel::escape(&e.to_string())
                    ));
                    tracing::error!("restart: {e}");
                }
            }
        });
    }
    shutdown_signal().await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The FMC to dial: an address or host name, with :PORT unless it is 8305 (`[::1]:8305`
    /// for IPv6).
    #[arg(value_name = "ADDR[:PORT]")]
    pub server: String,
    /// A lab PKI root; use --device NAME's files.
    #[arg(long, value_name = "DIR", requires = "device")]
    pub root: Option<PathBuf>,
    /// The device (folder name under --root).
    #[arg(long, value_name = "NAME", requires = "root")]
    pub device: Option<String>,
    /// Which FMC of the root the device dials, i.e. which `var/sf/peers/<fmc uuid>/` set it
    /// uses (the FMC's folder name; default: the primary).
    #[arg(long, value_name = "NAME", requires = "root")]
    pub fmc: Option<String>,
    #[command(flatten)]
    pub files: FileArgs,
    /// Device name sent to the FMC (default: --device, else "ftd").
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// One handshake (and one heartbeat when the peer is an sfdiag FMC), then exit 0 when the
    /// TLS handshake succeeded, whatever the peer does after it, or 1 when it failed.
    #[arg(long, conflicts_with = "count")]
    pub once: bool,
    /// Open N tunnels (fleet / load mode) and print handshakes/s and failures by reason.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// With --count: handshakes in flight at once.
    #[arg(long, value_name = "C", default_value_t = 1, requires = "count")]
    pub concurrency: usize,
    /// With --count: keep each tunnel up SECONDS (HELLO + heartbeats) instead of closing it;
    /// a tunnel the FMC drops meanwhile reconnects, as a device would.
    #[arg(long, value_name = "SECONDS", requires = "count")]
    pub hold: Option<f64>,
    /// Longest wait between reconnect attempts, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub retry_max: u64,
    /// Also accept the FMC's own connections on ADDR:PORT (the FMC dials its devices on
    /// 8305 too); a channel it opens is not dialed again while it is up. A specific address
    /// is also where this device's own connections leave from.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with_all = ["once", "count"])]
    pub listen: Option<String>,
    /// With --listen: never dial, only accept (a device registered with DONTRESOLVE as the
    /// manager's address: the FMC opens both channels).
    #[arg(long, requires = "listen")]
    pub listen_only: bool,
    #[command(flatten)]
    pub side: SideArgs,
}

async fn connect(a: ConnectArgs) -> anyhow::Result<ExitCode> {
    let (files, name, tls) = match (&a.root, &a.device, a.files.files()) {
        (Some(root), Some(dev), _) => {
            let r = load_root_as(root, a.fmc.as_deref())?;
            let Some(f) = r.device_files(dev) else {
                let known: Vec<&str> = r.peers.iter().map(|p| p.name.as_str()).collect();
                bail!(
                    "--device {dev}: not a device of {} {} (its devices: {})",
                    r.fmc.name,
                    super::shown(root),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            };
            let tls = tls_version(a.side.tls_version, Some((&r, dev)))?;
            (to_files(f), dev.clone(), tls)
        }
        (None, None, Some(f)) => (f, "ftd".to_owned(), tls_version(a.side.tls_version, None)?),
        _ => bail!("connect needs --root DIR --device NAME, or --ca, --cert and --key"),
    };
    let name = a.name.clone().unwrap_or(name);
    let clock = a.side.clock()?;
    let host = a.side.hostname.clone().unwrap_or_else(|| name.clone());
    // A load run logs only to --log: thousands of attempt lines on stdout would measure the
    // terminal, not the tunnel.
    let log = a.side.sflog(&host, &clock, a.count.is_some())?;
    let recorder = a.side.recorder(&clock)?;
    let mut client = Client::new(ClientSettings {
        server: a.server.clone(),
        files,
        name,
        clock,
        log,
        keylog: a.side.keylog()?,
        timeouts: a.side.timeouts(),
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(a.retry_max.max(1)),
        },
    })?
    .with_tls_version(tls);
    if let Some(r) = recorder {
        client = client.with_recorder(r);
    }
    if a.once {
        return Ok(match client.once().await {
            Ok(_) => ExitCode::SUCCESS,
            Err(TunnelError::Handshake(_)) => ExitCode::from(1),
            Err(e) => return Err(e.into()),
        });
    }
    if let Some(count) = a.count {
        let report = tunnel::fleet::fleet(
            Arc::new(client),
            FleetSettings {
                count,
                concurrency: a.concurrency,
                hold: a.hold.map(Duration::from_secs_f64),
            },
        )
        .await?;
        sfdiag::report::fleet::render(&mut std::io::stdout().lock(), &report)?;
        return Ok(if report.all_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let handle = match &a.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--listen {addr}"))?;
            let ip = listener.local_addr()?.ip();
            if !ip.is_unspecified() {
                client = client.with_source(ip);
            }
            if a.listen_only {
                client.spawn_listen_only(listener)
            } else {
                client.spawn_listening(listener)
            }
        }
        None => client.spawn(),
    };
    shutdown_signal().await;
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// A lab PKI root: the FMC against every device.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub files: FileArgs,
    /// The device's certificate (with --ca/--cert/--key as the FMC's files).
    #[arg(long, value_name = "FILE", requires_all = ["peer_key", "ca"])]
    pub peer_cert: Option<PathBuf>,
    /// The device's key.
    #[arg(long, value_name = "FILE", requires_all = ["peer_cert", "ca"])]
    pub peer_key: Option<PathBuf>,
    /// The CA the device trusts (default: --ca).
    #[arg(long, value_name = "FILE", requires = "peer_cert")]
    pub peer_ca: Option<PathBuf>,
    /// Also validate as if the clock showed TIME (RFC 3339 or +90d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// Append both sides' log lines to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// TLS version both ends speak: 1.2 or 1.3 (7.6+). Default: with --root, the FMC's
    /// sftunnel.conf proxy_tls_version; else 1.2.
    #[arg(long, value_name = "1.2|1.3")]
    pub tls_version: Option<TlsVersion>,
}

async fn validate_cmd(a: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut times = vec![None];
    if let Some(at) = parse_at(a.at.as_deref())? {
        times.push(Some(at));
    }
    let (fmc, devices, tls) = match (&a.root, a.files.files()) {
        // Every tunnel of the root: each device to each FMC, the HA secondary to the primary.
        (Some(root), _) => {
            let r = load_root(root)?;
            let tls = tls_version(a.tls_version, Some((&r, FMC_DIR)))?;
            let verdicts = validate::validate_root(&r, &times, tls).await?;
            if verdicts.is_empty() {
                bail!("no devices to validate");
            }
            return print_verdicts(&verdicts, a.log.as_deref());
        }
        (None, Some(f)) => {
            let (Some(cert), Some(key)) = (a.peer_cert.clone(), a.peer_key.clone()) else {
                bail!("validate with --ca/--cert/--key also needs --peer-cert and --peer-key");
            };
            let dev = TlsFiles {
                ca: a.peer_ca.clone().unwrap_or_else(|| f.ca.clone()),
                cert,
                key,
            };
            (
                f,
                vec![Device {
                    name: "device".into(),
                    files: dev,
                    dialed: true,
                }],
                tls_version(a.tls_version, None)?,
            )
        }
        (None, None) => {
            bail!("validate needs --root DIR or --ca, --cert, --key, --peer-cert and --peer-key")
        }
    };
    if devices.is_empty() {
        bail!("no devices to validate");
    }
    let verdicts = validate::validate_with(&fmc, &devices, &times, tls).await?;
    print_verdicts(&verdicts, a.log.as_deref())
}

/// One line per verdict (with both sides' log lines when it failed), also to `--log`.
fn print_verdicts(verdicts: &[validate::Verdict], log: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut log = match log {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(LOG_MODE)
                .open(p)
                .with_context(|| format!("cannot open log {}", super::shown(p)))?,
        ),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for v in verdicts {
        writeln!(out, "{}", v.line())?;
        if !v.ok() {
            failed = true;
            for l in &v.lines {
                writeln!(out, "    {l}")?;
            }
        }
        if let Some(f) = log.as_mut() {
            for l in &v.lines {
                writeln!(f, "{l}")?;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("server").required(true).multiple(true).args(["root", "socket"])))]
pub(crate) struct StatusArgs {
    /// A lab PKI root: its FMC's control socket, and every device it knows listed.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// A control socket (for `serve --control PATH`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Which FMC of the root to ask (its folder name; default: the primary): its control
    /// socket, and the peers it manages listed.
    #[arg(long, value_name = "NAME", requires = "root")]
    pub fmc: Option<String>,
    /// Output: a table with one row per peer like sftunnel_status.pl, or one JSON object
    /// (`server`, `peers`).
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    /// The FTD CLI's `sftunnel-status-brief` blocks instead: each peer's channels, registration,
    /// start and heartbeat times, or when it went down and was last tried.
    #[arg(long, conflicts_with = "format")]
    pub brief: bool,
}

async fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let root = a
        .root
        .as_deref()
        .map(|r| load_root_as(r, a.fmc.as_deref()))
        .transpose()?;
    let socket = match (&a.socket, &root) {
        (Some(s), _) => s.clone(),
        (None, Some(r)) => control_socket(r),
        (None, None) => bail!("status needs --root DIR or --socket PATH"),
    };
    // No server there is a table saying so; one we may not ask is an error.
    let live = match ControlClient::connect(&socket).await {
        Ok(mut c) => Some(c.status().await?),
        Err(e @ TunnelError::Refused { .. }) => return Err(e.into()),
        Err(_) => None,
    };
    let (info, mut peers) = match live {
        Some((i, p)) => (Some(i), p),
        None => (None, Vec::new()),
    };
    if let Some(r) = &root {
        peers = tunnel::status::rows_for_root(&peers, r);
    }
    let mut out = std::io::stdout().lock();
    match a.format {
        _ if a.brief => sfdiag::report::status::brief_for(&mut out, info.as_ref(), &peers)?,
        StatusFormat::Text => sfdiag::report::status::text(&mut out, info.as_ref(), &peers)?,
        StatusFormat::Json => sfdiag::report::status::json(&mut out, info.as_ref(), &peers)?,
    }
    Ok(if info.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
