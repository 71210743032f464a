//! `sfdiag pki renew` and `sfdiag pki copy`: the renewal runbook's two scripts on a lab root.
//!
//! Glue only: `renew` reads the clock (or `--at`), asks for confirmation, calls
//! `pki::renew::renew`, hands the new files to a running `serve` through
//! `tunnel::renewal::deliver` and records what could not be pushed with
//! `pki::renew::record_push`; `copy` parses `devices.csv` and runs `pki::copy::copy` over the
//! local transport. Exit codes: 0 done for every device, 1 some device was not done (listed in
//! FAILED_PUSH / reported by copy) or the user declined, 2 refusal or setup error.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use clap::builder::TypedValueParser;
use time::OffsetDateTime;

use sfdiag::pki::copy::{self, LocalTransport};
use sfdiag::pki::renew::{self, RenewOptions};
use sfdiag::pki::{PkiRoot, Validity};
use sfdiag::tunnel::renewal;

use super::time_arg::parse_time;

/// Flags of `pki renew`.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The lab root made by `pki init`.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Do not ask for confirmation (scripts). Without it, stdin must be a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Act as if the clock showed TIME (RFC 3339 or +90d): days left, notBefore, log stamps
    /// and the var/tmp/certs/<unix time> folder.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// notBefore of the new InternalCA and certificates (default: now / --at).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub not_before: Option<String>,
    /// Lifetime in days of the new InternalCA and certificates.
    #[arg(long, value_name = "N", default_value_t = 3650)]
    pub days: u32,
    /// RSA key size for every new key.
    #[arg(long, value_name = "BITS", default_value_t = 2048,
          value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"])
              .map(|s| s.parse::<u32>().expect("listed values are numbers")))]
    pub key_bits: u32,
    /// The running serve's control socket (default: ROOT/fmc/var/run/sftunnel.sock).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
}

/// Flags of `pki copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The lab root: each appliance is a folder (ROOT/fmc, ROOT/NAME).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// `device_name,ipaddr,login,password` lines (`#` comments); the first may be the FMC.
    #[arg(long, value_name = "FILE")]
    pub devices: PathBuf,
}

/// Runs `pki renew`.
pub fn run_renew(a: RenewArgs) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let at = match &a.at {
        Some(s) => parse_time(s, now).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        None => now,
    };
    let nb = match &a.not_before {
        Some(s) => parse_time(s, at).map_err(|e| anyhow::anyhow!("--not-before: {e}"))?,
        None => at,
    };
    let validity = Validity::days(nb, a.days).context("--not-before/--days")?;
    let pre =
        renew::preflight(&a.root, at).with_context(|| format!("--root {}", a.root.display()))?;
    let mut out = std::io::stdout().lock();
    renew::render_preflight(&mut out, &pre)?;
    if let Some(lock) = &pre.lock {
        writeln!(
            out,
            "A critical operation is in progress: {} ({})",
            lock.operation,
            lock.path.display()
        )?;
        bail!(
            "refusing to renew certificates while a critical operation runs ({}); wait for it to finish",
            lock.operation
        );
    }
    writeln!(
        out,
        "No critical operation (deployment, backup, upgrade) is in progress."
    )?;
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to renew without confirmation: stdin is not a terminal (use --yes)");
        }
        write!(out, "Do you want to continue [yes/no]: ")?;
        out.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            writeln!(out, "Not renewed: nothing was changed.")?;
            return Ok(ExitCode::from(1));
        }
    }
    let socket = a
        .control
        .clone()
        .unwrap_or_else(|| sfdiag::tunnel::control::socket_path(&pre.root.layout.fmc_dir()));
    let opts = RenewOptions {
        root: a.root.clone(),
        at,
        ca_validity: validity,
        peer_validity: validity,
        key_bits: a.key_bits,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    drop(out);
    let mut out = std::io::stdout();
    let run = rt.block_on(renewal::renew_and_push(opts, &socket, &mut out))?;
    let rec = run.record;
    Ok(if rec.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs `pki copy`.
pub fn run_copy(a: CopyArgs) -> anyhow::Result<ExitCode> {
    let root = PkiRoot::load(&a.root).with_context(|| format!("--root {}", a.root.display()))?;
    let text = std::fs::read_to_string(&a.devices)
        .with_context(|| format!("--devices {}", a.devices.display()))?;
    let entries = copy::parse_devices_csv(&text, &a.devices)?;
    if entries.is_empty() {
        bail!("--devices {}: no device lines", a.devices.display());
    }
    let mut transport = LocalTransport::new(&a.root);
    let mut out = std::io::stdout().lock();
    let report = copy::copy(
        &entries,
        &copy::local_fmc_entry(&root),
        &mut transport,
        &mut out,
    )?;
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
