//! `sfdiag analyze`: flags -> `analysis::Options`, each capture through the analyzer into the
//! chosen renderer on stdout, and the exit code (grep's convention): 0 nothing wrong, 1 findings
//! (a failed verdict, a fatal alert, a failed handshake), 2 an input could not be read.

use std::io::{self, BufWriter, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::time_arg::parse_time;
use sfdiag::analysis::{self, Options};
use sfdiag::cert;
use sfdiag::report::{self, Format};

/// Files at least this big get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
    Jsonl,
}

/// Offline analysis of captures: which certificates crossed the wire, OpenSSL verdicts at the
/// packet's time, alerts, and each TLS session's outcome.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Trust anchor(s) (PEM/DER), e.g. the InternalCA: full chain verification. Without, only
    /// dates are judged. Repeatable.
    #[arg(long = "ca", value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Judge as if the clock showed TIME (RFC 3339 or +90d/-3h from now) instead of each
    /// packet's own time.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
    /// Only TCP connections on this port (repeatable; default: TLS is looked for on every port).
    #[arg(long = "port", value_name = "P")]
    pub ports: Vec<u16>,
    /// Output: messages-log lines + session summary, one JSON array, or JSON lines.
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// pcap or pcapng files, optionally gzip-compressed; `-` for stdin.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// `quiet` (`-q`): no progress bar either.
pub fn run(args: AnalyzeArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut anchors = Vec::new();
    for path in &args.ca {
        // The error names the file already.
        let certs = cert::read_certs(path).context("--ca")?;
        anchors.extend(certs);
    }
    let at = match &args.at {
        Some(s) => Some(
            parse_time(s, time::OffsetDateTime::now_utc())
                .map_err(|e| anyhow::anyhow!("--at: {e}"))?,
        ),
        None => None,
    };
    let opts = Options {
        anchors,
        at,
        ports: args.ports.clone(),
        ..Options::default()
    };
    let format = match args.format {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
        FormatArg::Jsonl => Format::Jsonl,
    };
    let stdout = io::stdout();
    let mut out = report::renderer(format, BufWriter::new(stdout.lock()));
    let mut problems = false;
    let mut unreadable = false;
    let mut write_error: Option<io::Error> = None;
    for path in &args.files {
        let bar = if quiet { None } else { progress_bar(path) };
        let mut sink = |f: analysis::Finding| {
            if write_error.is_none()
                && let Err(e) = out.finding(&f)
            {
                write_error = Some(e);
            }
        };
        let mut progress = |pos: u64, _len: Option<u64>| {
            if let Some(b) = &bar {
                b.set_position(pos);
            }
        };
        let result = analysis::analyze_path(path, &opts, &mut sink, &mut progress);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        match result {
            Ok(summary) => {
                // CLI.md: 2 is "input unreadable (nothing analyzed)", which a file whose
                // header reads but whose first record does not is, too.
                if let Some(e) = summary
                    .read_error
                    .as_deref()
                    .filter(|_| summary.net.frames == 0)
                {
                    eprintln!("sfdiag analyze: {}: {e}", path.display());
                    unreadable = true;
                }
                problems |= summary.counts.problems > 0;
                if write_error.is_none() {
                    write_error = out.file_done(&summary).err();
                }
            }
            Err(e) => {
                eprintln!("sfdiag analyze: {e}");
                // The report still lists it, so a script reading JSON sees every input.
                if write_error.is_none() {
                    write_error = out.file_done(&analysis::Summary::unreadable(&e)).err();
                }
                if let Some(hint) = super::hints::hint(&anyhow::Error::new(e)) {
                    eprintln!("hint: {hint}");
                }
                unreadable = true;
            }
        }
        if write_error.is_some() {
            break;
        }
    }
    if write_error.is_none() {
        write_error = out.finish().err();
    }
    if let Some(e) = write_error
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing the report");
    }
    Ok(ExitCode::from(if unreadable {
        2
    } else if problems {
        1
    } else {
        0
    }))
}

/// A progress bar on stderr for a big regular file, when someone is watching.
fn progress_bar(path: &std::path::Path) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let len = std::fs::metadata(path).ok()?.len();
    if len < PROGRESS_MIN_BYTES {
        return None;
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .ok()?
            .progress_chars("=> "),
    );
    bar.set_message(path.display().to_string());
    Some(bar)
}
