//! `sfdiag check`: how long each certificate has left, as a monitoring plugin reports it.
//!
//! Glue and formatting only: files are found by `pki::scan`, decoded by `cert`, named by
//! `pki::roles` and judged by `pki::expiry` at `--at` (default: the clock, read here). Exit
//! codes follow the monitoring-plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN);
//! an unreadable file is UNKNOWN with a message naming it, and the other files are still
//! checked.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::json;
use time::OffsetDateTime;

use sfdiag::cert::{self, CertError, CertInfo};
use sfdiag::pki::expiry::{self, Assessment, Standing, Status, Thresholds};
use sfdiag::pki::roles::{CertRole, RoleNamer};
use sfdiag::pki::scan;
use sfdiag::sftunnel;

use super::time_arg::parse_time;

/// Files bigger than this are not certificate files (a bundle of a thousand certs is ~2 MB).
const MAX_FILE: u64 = 16 << 20;

/// Flags of `sfdiag check` (CLI.md).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Judge as if the clock showed TIME (RFC 3339 or an offset like +30d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// WARNING when a certificate ends within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    pub warn_days: u32,
    /// CRITICAL when a certificate ends within this many days (or has expired, or is not yet
    /// valid).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub critical_days: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// PEM/DER certificate files, or folders to search (an FMC/FTD root is recognised).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// One certificate judged.
struct Checked {
    file: PathBuf,
    /// 1-based position in its file.
    index: usize,
    /// How many certificates the file holds.
    of: usize,
    info: CertInfo,
    role: Option<CertRole>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    verdict: Assessment,
}

/// An input that could not be checked.
struct Problem {
    file: PathBuf,
    message: String,
}

/// Runs `sfdiag check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Whole seconds: certificates carry no fractions, and reports read better without them.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let at = match &args.at {
        Some(s) => parse_time(s, now).map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        None => now,
    };
    if args.warn_days < args.critical_days {
        anyhow::bail!(
            "--warn-days {} is less than --critical-days {}: WARNING could never be reported \
             (give --warn-days at least {})",
            args.warn_days,
            args.critical_days,
            args.critical_days
        );
    }
    let thresholds = Thresholds {
        warn_days: args.warn_days,
        critical_days: args.critical_days,
    };
    let (checked, problems) = check_paths(&args.paths, at, &thresholds);
    let status = expiry::worst(
        checked
            .iter()
            .map(|c| c.verdict.status)
            .chain(problems.iter().map(|_| Status::Unknown))
            .chain((checked.is_empty() && problems.is_empty()).then_some(Status::Unknown)),
    );
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => render_text(&mut out, &checked, &problems, status, at, &thresholds)?,
        Format::Json => render_json(&mut out, &checked, &problems, status, at, &thresholds)?,
    }
    out.flush()?;
    Ok(ExitCode::from(status.exit_code()))
}

fn check_paths(
    paths: &[PathBuf],
    at: OffsetDateTime,
    t: &Thresholds,
) -> (Vec<Checked>, Vec<Problem>) {
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    let mut namer = RoleNamer::new();
    for path in paths {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                problems.push(Problem {
                    file: path.clone(),
                    message: format!("{}: {e}", path.display()),
                });
                continue;
            }
        };
        if meta.is_dir() {
            let found = scan::cert_files(path);
            for (p, e) in found.errors {
                problems.push(Problem {
                    message: format!("{}: {e}", p.display()),
                    file: p,
                });
            }
            let before = checked.len() + problems.len();
            for f in &found.files {
                check_file(f, false, at, t, &mut namer, &mut checked, &mut problems);
            }
            if checked.len() + problems.len() == before {
                problems.push(Problem {
                    file: path.clone(),
                    message: format!("{}: no certificate found under this folder", path.display()),
                });
            }
        } else {
            check_file(path, true, at, t, &mut namer, &mut checked, &mut problems);
        }
    }
    (checked, problems)
}

/// Checks every certificate in one file. Found in a folder (`explicit == false`), a file that
/// holds only a private key is passed over quietly: appliance trees keep keys beside certs.
fn check_file(
    path: &Path,
    explicit: bool,
    at: OffsetDateTime,
    t: &Thresholds,
    namer: &mut RoleNamer,
    checked: &mut Vec<Checked>,
    problems: &mut Vec<Problem>,
) {
    let problem = |message: String| Problem {
        file: path.to_path_buf(),
        message,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE => {
            problems.push(problem(format!(
                "{}: {} bytes is too large for a certificate file",
                path.display(),
                m.len()
            )));
            return;
        }
        _ => {}
    }
    let certs = match cert::read_certs(path) {
        Ok(c) => c,
        Err(CertError::PrivateKey { .. }) if !explicit => {
            tracing::debug!(file = %path.display(), "private key, not a certificate: skipped");
            return;
        }
        Err(e) => {
            problems.push(problem(e.to_string()));
            return;
        }
    };
    let of = certs.len();
    let role = namer.role_of(path);
    for (i, info) in certs.into_iter().enumerate() {
        let index = i + 1;
        let (Some(not_before), Some(not_after)) = (info.not_before, info.not_after) else {
            problems.push(problem(format!(
                "{}: certificate {index}: validity unreadable: {}",
                path.display(),
                info.parse_error.as_deref().unwrap_or("missing")
            )));
            continue;
        };
        let verdict = expiry::assess(not_before, not_after, at, t);
        checked.push(Checked {
            file: path.to_path_buf(),
            index,
            of,
            // A role names the file's first certificate; extra ones in a bundle are named by
            // their subject.
            role: if index == 1 { role.clone() } else { None },
            info,
            not_before,
            not_after,
            verdict,
        });
    }
}

/// `May 29 00:00:00 2024 GMT`, as `openssl x509 -enddate` prints it.
fn openssl_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

fn label(c: &Checked) -> String {
    match &c.role {
        Some(r) => r.to_string(),
        None => match &c.info.subject {
            Some(s) if !s.is_empty() => s.rfc4514(),
            _ => "certificate with an empty subject".to_string(),
        },
    }
}

fn where_(c: &Checked) -> String {
    if c.of > 1 {
        format!("{}#{}", c.file.display(), c.index)
    } else {
        c.file.display().to_string()
    }
}

fn render_text(
    out: &mut impl Write,
    checked: &[Checked],
    problems: &[Problem],
    status: Status,
    at: OffsetDateTime,
    t: &Thresholds,
) -> std::io::Result<()> {
    let count = |s: Status| checked.iter().filter(|c| c.verdict.status == s).count();
    // First line: the plugin status line monitoring systems keep.
    writeln!(
        out,
        "{status}: {} certificate{}: {} critical, {} warning, {} ok, {} unknown \
         (at {}; warning within {} days, critical within {} days)",
        checked.len(),
        if checked.len() == 1 { "" } else { "s" },
        count(Status::Critical),
        count(Status::Warning),
        count(Status::Ok),
        problems.len() + usize::from(checked.is_empty() && problems.is_empty()),
        sftunnel::rfc3339(&at),
        t.warn_days,
        t.critical_days
    )?;
    for c in checked {
        writeln!(
            out,
            "{:<8} {}: notAfter={}, {} ({})",
            c.verdict.status.as_str(),
            label(c),
            openssl_date(c.not_after),
            c.verdict.standing,
            where_(c)
        )?;
    }
    for p in problems {
        writeln!(out, "{:<8} {}", Status::Unknown.as_str(), p.message)?;
    }
    if checked.is_empty() && problems.is_empty() {
        writeln!(out, "{:<8} no certificate given", Status::Unknown.as_str())?;
    }
    Ok(())
}

fn render_json(
    out: &mut impl Write,
    checked: &[Checked],
    problems: &[Problem],
    status: Status,
    at: OffsetDateTime,
    t: &Thresholds,
) -> std::io::Result<()> {
    let certs: Vec<_> = checked
        .iter()
        .map(|c| {
            let (standing, days) = match c.verdict.standing {
                Standing::Valid { days_left } => ("valid", days_left),
                Standing::Expired { days_ago } => ("expired", days_ago),
                Standing::NotYetValid { starts_in_days } => ("not_yet_valid", starts_in_days),
            };
            json!({
                "file": c.file.display().to_string(),
                "index": c.index,
                "name": label(c),
                "role": c.role.as_ref().map(|r| r.kind()),
                "peer": c.role.as_ref().and_then(|r| r.peer.clone()),
                "subject": c.info.subject.as_ref().map(|s| s.rfc4514()),
                "issuer": c.info.issuer.as_ref().map(|s| s.rfc4514()),
                "serial": c.info.serial,
                "sha256": c.info.sha256,
                "not_before": sftunnel::rfc3339(&c.not_before),
                "not_after": sftunnel::rfc3339(&c.not_after),
                "days_left": c.verdict.days_left,
                "standing": standing,
                "standing_days": days,
                "message": c.verdict.standing.to_string(),
                "status": c.verdict.status.as_str(),
            })
        })
        .collect();
    let errors: Vec<_> = problems
        .iter()
        .map(|p| {
            json!({
                "file": p.file.display().to_string(),
                "message": p.message,
                "status": Status::Unknown.as_str(),
            })
        })
        .collect();
    let doc = json!({
        "status": status.as_str(),
        "exit_code": status.exit_code(),
        "at": sftunnel::rfc3339(&at),
        "warn_days": t.warn_days,
        "critical_days": t.critical_days,
        "certificates": certs,
        "errors": errors,
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
