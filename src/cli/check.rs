//! `sfdiag check`: how long each certificate has left, as a monitoring plugin reports it.
//!
//! Flags only: the inputs are read by `inventory::collect`, judged by `inventory::check` at
//! `--at` (default: the clock, read here) and laid out by `report::check`. Exit codes follow
//! the monitoring-plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), usage errors
//! included: a wrong flag is UNKNOWN (3) with an `UNKNOWN:` line on stdout for the monitoring
//! system and the message on stderr, never CRITICAL (see `super::parse` for clap's errors).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use sfdiag::cert;
use sfdiag::inventory::{self, CheckOptions, Unreadable};
use sfdiag::pki::expiry::{Status, Thresholds};
use sfdiag::report::check as layout;

use super::time_arg::parse_time;

/// Flags of `sfdiag check` (CLI.md).
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Judge as if the clock showed TIME (RFC 3339, a plain date, or an offset like +30d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// Also judge each certificate's chain against this CA file at --at, with OpenSSL's
    /// codes (like `openssl verify -CAfile F -attime`); repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// WARNING when a certificate ends within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    pub warn_days: u32,
    /// CRITICAL when a certificate ends within this many days (or has expired, or is not yet
    /// valid).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub critical_days: u32,
    /// Output format: the plugin text, JSON, the 30-day one-liner's messages, or the FMC
    /// health alert's texts.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// PEM/DER/PKCS#12 certificate files, or folders to search (an FMC/FTD root is
    /// recognised and its peers cross-checked).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Oneliner,
    Health,
}

/// A usage error the way a plugin reports it: a status line for the monitoring system on
/// stdout, the message on stderr, exit 3.
pub(crate) fn usage_unknown(message: &str) -> ExitCode {
    let first = message.lines().next().unwrap_or(message);
    println!("UNKNOWN: usage error: {first}");
    eprintln!("sfdiag check: {message}");
    ExitCode::from(Status::Unknown.exit_code())
}

/// Runs `sfdiag check`.
pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Whole seconds: certificates carry no fractions, and reports read better without them.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let at = match &args.at {
        Some(s) => match parse_time(s, now) {
            Ok(t) => t,
            Err(e) => return Ok(usage_unknown(&format!("--at: {e}"))),
        },
        None => now,
    };
    if args.warn_days < args.critical_days {
        return Ok(usage_unknown(&format!(
            "--warn-days {} is less than --critical-days {}: WARNING could never be reported \
             (give --warn-days at least {})",
            args.warn_days, args.critical_days, args.critical_days
        )));
    }
    let thresholds = Thresholds {
        warn_days: args.warn_days,
        critical_days: args.critical_days,
    };
    let mut anchors = Vec::new();
    let mut ca_errors = Vec::new();
    for f in &args.ca {
        match cert::read_certs(f) {
            Ok(c) => anchors.extend(c),
            Err(e) => ca_errors.push(Unreadable {
                file: f.clone(),
                message: format!("--ca {e}"),
            }),
        }
    }
    let mut collection = inventory::collect(&args.paths);
    collection.unreadable.extend(ca_errors);
    // -v: what a folder walk passed over, once each.
    for s in &collection.skipped {
        tracing::info!(file = ?s.file, "skipped: {}", s.reason.as_str());
    }
    let report = inventory::check(
        collection,
        &CheckOptions {
            at,
            thresholds,
            anchors,
        },
    );
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => layout::render_text(&mut out, &report)?,
        Format::Json => layout::render_json(&mut out, &report)?,
        Format::Oneliner => layout::render_oneliner(&mut out, &report)?,
        Format::Health => layout::render_health(&mut out, &report)?,
    }
    out.flush()?;
    Ok(ExitCode::from(report.status.exit_code()))
}
