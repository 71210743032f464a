//! `sfdiag inventory`: the renewal plan, one entry per FMC, device and HA secondary.
//!
//! Flags only: PATHs that are captures (by their first bytes: pcap, pcapng, gzip) go through
//! `inventory::capture` (the analyzer, one pass each), the others through `inventory::collect`;
//! `inventory::plan` joins them at `--at` (default: the clock, read here) and `report::inventory`
//! lays the plan out. Exit 0 when every appliance is fine, 1 when some needs an action, 2 when
//! an input could not be read (CLI.md).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use sfdiag::cert;
use sfdiag::inventory::capture::{Fold, looks_like_capture, read_capture};
use sfdiag::inventory::{self, Unreadable};
use sfdiag::pki::expiry::Thresholds;
use sfdiag::report::inventory as layout;

use super::time_arg::parse_time;

/// Flags of `sfdiag inventory` (CLI.md).
#[derive(Debug, Args)]
pub(crate) struct InventoryArgs {
    /// Plan as if the clock showed TIME (RFC 3339, a plain date, or an offset like +30d);
    /// captures are then judged at TIME too (else at each packet's time).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// Trust anchors for the chains in captures (like `analyze --ca`); repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// The health-alert window: an InternalCA or certificate ending within it is renewed.
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    pub warn_days: u32,
    /// CRITICAL within this many days (the 30-day one-liner's window).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub critical_days: u32,
    /// Output format: a table and the plan, JSON, or the devices.csv skeleton for
    /// `pki copy` / copy_sftunnel_certs.py.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A lab root or appliance tree, a folder of certificate files, or captures
    /// (pcap/pcapng, optionally gzip-compressed).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Csv,
}

/// True when the file at `path` starts like a capture.
fn is_capture(path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| looks_like_capture(&head))
}

/// Runs `sfdiag inventory`.
pub(crate) fn run(args: InventoryArgs) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let at_flag = match &args.at {
        Some(s) => Some(parse_time(s, now).map_err(|e| anyhow::anyhow!("--at: {e}"))?),
        None => None,
    };
    let at = at_flag.unwrap_or(now);
    if args.warn_days < args.critical_days {
        anyhow::bail!(
            "--warn-days {} is less than --critical-days {}",
            args.warn_days,
            args.critical_days
        );
    }
    let thresholds = Thresholds {
        warn_days: args.warn_days,
        critical_days: args.critical_days,
    };
    let mut anchors = Vec::new();
    for f in &args.ca {
        anchors.extend(cert::read_certs(f).map_err(|e| anyhow::anyhow!("--ca {e}"))?);
    }
    let (captures, files): (Vec<PathBuf>, Vec<PathBuf>) = args
        .paths
        .iter()
        .cloned()
        .partition(|p| p.is_file() && is_capture(p));
    let mut collection = if files.is_empty() {
        inventory::Collection::default()
    } else {
        inventory::collect(&files)
    };
    for s in &collection.skipped {
        tracing::info!(file = ?s.file, "skipped: {}", s.reason.as_str());
    }
    let problems = inventory::cross_check(&collection.certs, at);
    let seen = if captures.is_empty() {
        None
    } else {
        let mut fold = Fold::new();
        for c in &captures {
            match read_capture(c, at_flag, &anchors, &mut fold) {
                Ok(summary) => {
                    if let Some(e) = summary.read_error {
                        tracing::warn!(file = ?c, "capture read up to an error: {e}");
                    }
                }
                Err(e) => collection.unreadable.push(Unreadable {
                    file: c.clone(),
                    message: e.to_string(),
                }),
            }
        }
        Some(fold.finish())
    };
    let inv = inventory::plan(&collection, &problems, seen.as_ref(), at, thresholds);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => layout::render_text(&mut out, &inv)?,
        Format::Json => layout::render_json(&mut out, &inv)?,
        Format::Csv => layout::render_csv(&mut out, &inv)?,
    }
    out.flush()?;
    Ok(ExitCode::from(inv.exit_code()))
}
