//! `sfdiag pki ...`: flags -> `sfdiag::pki` calls, and the human-readable output.
//!
//! `init` resolves times against the clock (the only place that reads it for this command)
//! and hands the library a complete `InitOptions`; `show` decodes certificate and key files
//! for reading.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use sfdiag::pki::{self, DeviceSpec, InitOptions, Uuid, Validity};

use super::time_arg::parse_time;

/// `sfdiag pki`.
#[derive(Debug, Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    pub command: PkiCommand,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Write a lab PKI in the FMC/FTD file layout: a v1 InternalCA, the FMC's and each
    /// device's sftunnel certificate and key, sftunnel.conf and each appliance's identity.
    Init(Box<InitArgs>),
}

/// Flags of `pki init` (CLI.md).
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The lab root: DIR/fmc/... for the FMC, DIR/NAME/... for each device.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// The FMC's UUID (random when absent).
    #[arg(long, value_name = "UUID", value_parser = parse_uuid)]
    pub fmc_uuid: Option<Uuid>,
    /// Make N devices named ftd1..ftdN (default: 1).
    #[arg(long, value_name = "N", conflicts_with = "device")]
    pub devices: Option<u32>,
    /// A device by name, optionally with its UUID; repeat for several.
    #[arg(long = "device", value_name = "NAME[=UUID]", value_parser = parse_device)]
    pub device: Vec<DeviceSpec>,
    /// Also make a secondary FMC (HA) that the primary manages like a device.
    #[arg(long, value_name = "NAME")]
    pub ha_secondary: Option<String>,
    /// InternalCA notBefore: RFC 3339 or an offset like -3650d (default: now).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub not_before: Option<String>,
    /// InternalCA notAfter: RFC 3339 or an offset from now like +10d.
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "days",
        allow_hyphen_values = true
    )]
    pub not_after: Option<String>,
    /// InternalCA lifetime in days from notBefore (default 3650, as on the appliance).
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// Peer certificates' notBefore (default: the InternalCA's).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub peer_not_before: Option<String>,
    /// Peer certificates' notAfter (default: the InternalCA's, or --peer-not-before + 3650 days).
    #[arg(
        long,
        value_name = "TIME",
        conflicts_with = "peer_days",
        allow_hyphen_values = true
    )]
    pub peer_not_after: Option<String>,
    /// Peer certificates' lifetime in days from their notBefore.
    #[arg(long, value_name = "N")]
    pub peer_days: Option<u32>,
    /// RSA key size for every key.
    #[arg(long, value_name = "BITS", default_value_t = 2048,
          value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"])
              .map(|s| s.parse::<u32>().expect("listed values are numbers")))]
    pub key_bits: u32,
    /// Replace an existing PKI; its files are kept as *.backup.
    #[arg(long)]
    pub force: bool,
}

fn parse_uuid(s: &str) -> Result<Uuid, String> {
    s.parse().map_err(|e: pki::PkiError| e.to_string())
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    match s.split_once('=') {
        Some((name, uuid)) => Ok(DeviceSpec {
            name: name.to_string(),
            uuid: Some(parse_uuid(uuid)?),
        }),
        None => Ok(DeviceSpec {
            name: s.to_string(),
            uuid: None,
        }),
    }
}

/// Runs `sfdiag pki ...`.
pub fn run(args: PkiArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PkiCommand::Init(a) => init(*a, OffsetDateTime::now_utc()),
    }
}

fn time_flag(
    flag: &str,
    v: &Option<String>,
    now: OffsetDateTime,
) -> anyhow::Result<Option<OffsetDateTime>> {
    v.as_deref()
        .map(|s| parse_time(s, now).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
        .transpose()
}

/// The InternalCA's and the peers' validity windows from the flags.
fn windows(a: &InitArgs, now: OffsetDateTime) -> anyhow::Result<(Validity, Validity)> {
    const DEFAULT_DAYS: u32 = 3650;
    let ca_nb = time_flag("--not-before", &a.not_before, now)?.unwrap_or(now);
    let ca = match time_flag("--not-after", &a.not_after, now)? {
        Some(na) => Validity::new(ca_nb, na),
        None => Validity::days(ca_nb, a.days.unwrap_or(DEFAULT_DAYS)),
    }
    .context("InternalCA validity (--not-before/--not-after/--days)")?;
    let peer_nb = time_flag("--peer-not-before", &a.peer_not_before, now)?;
    let peer_na = time_flag("--peer-not-after", &a.peer_not_after, now)?;
    let peer = match (peer_nb, peer_na, a.peer_days) {
        (None, None, None) => Ok(ca),
        (nb, Some(na), _) => Validity::new(nb.unwrap_or(ca.not_before), na),
        (nb, None, days) => {
            Validity::days(nb.unwrap_or(ca.not_before), days.unwrap_or(DEFAULT_DAYS))
        }
    }
    .context("peer certificate validity (--peer-not-before/--peer-not-after/--peer-days)")?;
    Ok((ca, peer))
}

fn init(a: InitArgs, now: OffsetDateTime) -> anyhow::Result<ExitCode> {
    let (ca_validity, peer_validity) = windows(&a, now)?;
    let devices = if a.device.is_empty() {
        (1..=a.devices.unwrap_or(1))
            .map(|i| DeviceSpec {
                name: format!("ftd{i}"),
                uuid: None,
            })
            .collect()
    } else {
        a.device.clone()
    };
    let opts = InitOptions {
        root: a.root.clone(),
        fmc_uuid: a.fmc_uuid,
        devices,
        ha_secondary: a.ha_secondary.clone(),
        ca_validity,
        peer_validity,
        key_bits: a.key_bits,
        force: a.force,
    };
    let root = pki::init(&opts)?;
    let mut out = std::io::stdout().lock();
    print_summary(&mut out, &root, &opts)?;
    Ok(ExitCode::SUCCESS)
}

fn rel<'a>(root: &Path, p: &'a Path) -> std::borrow::Cow<'a, str> {
    match p.strip_prefix(root) {
        Ok(r) => r.to_string_lossy(),
        Err(_) => p.to_string_lossy(),
    }
}

fn print_summary(
    out: &mut impl std::io::Write,
    root: &pki::PkiRoot,
    opts: &InitOptions,
) -> anyhow::Result<()> {
    let r = root.layout.root();
    let fmt = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    writeln!(out, "lab PKI written under {}", r.display())?;
    writeln!(
        out,
        "InternalCA  {}  FMC {}  {} .. {}",
        rel(r, &root.layout.ca_cert()),
        root.fmc.uuid,
        fmt(opts.ca_validity.not_before),
        fmt(opts.ca_validity.not_after)
    )?;
    writeln!(
        out,
        "peer certs  {} .. {}",
        fmt(opts.peer_validity.not_before),
        fmt(opts.peer_validity.not_after)
    )?;
    writeln!(
        out,
        "{:<12} {:<13} {:<36}  {:<15}  cert",
        "name", "role", "uuid", "ip"
    )?;
    writeln!(
        out,
        "{:<12} {:<13} {:<36}  {:<15}  {}",
        root.fmc.name,
        root.fmc.role.to_string(),
        root.fmc.uuid.to_string(),
        root.fmc.ip.to_string(),
        rel(r, &root.fmc_files().cert)
    )?;
    for p in &root.peers {
        let files = root
            .device_files(&p.name)
            .map(|f| rel(r, &f.cert).into_owned())
            .unwrap_or_default();
        writeln!(
            out,
            "{:<12} {:<13} {:<36}  {:<15}  {}",
            p.name,
            p.role.to_string(),
            p.uuid.to_string(),
            p.ip.to_string(),
            files
        )?;
    }
    Ok(())
}
