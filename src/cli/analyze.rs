//! `sfdiag analyze`: flags -> `analysis::Options`, each capture through the analyzer into the
//! chosen renderer on stdout, and the exit code (grep's convention): 0 nothing wrong, 1 findings
//! (a failed verdict, a fatal alert, a failed handshake), 2 an input could not be read.
//!
//! The report is the analyzer's sink ([`ReportSink`]): it flushes often enough that a reader
//! sees lines as they come, and it ends the run as soon as stdout is closed (`| head`), even
//! while the capture gives it nothing to write; any other write error is reported. How long
//! each capture took is told on stderr at `-v` (the library cannot read the clock).

use std::io::{self, BufWriter, IsTerminal};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{debug, info};

use super::time_arg::parse_time;
use sfdiag::analysis::{self, AnalysisError, Finding, FindingSink, Options, ReadProgress};
use sfdiag::cert;
use sfdiag::report::{self, Format, Renderer};
use sfdiag::tls::KeyLog;

/// Files at least this big get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// The longest a written line waits in the buffer while findings keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

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
    /// NSS key log (SSLKEYLOGFILE format, e.g. `openssl s_client -keylogfile`): TLS 1.3
    /// handshakes and post-handshake messages it has secrets for are decrypted and their
    /// certificates judged; TLS 1.2 encrypted alerts are named. Repeatable.
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
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
    let keys = read_keylogs(&args.keylog)?;
    let opts = Options {
        anchors,
        at,
        ports: args.ports.clone(),
        keys,
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
        let started = Instant::now();
        let mut sink = ReportSink {
            out: &mut *out,
            bar: if quiet { None } else { progress_bar(path) },
            problems: false,
            flushed: None,
        };
        let result = analysis::analyze_path(path, &opts, &mut sink);
        if let Some(b) = sink.bar.take() {
            b.finish_and_clear();
        }
        problems |= sink.problems;
        match result {
            Ok(summary) => {
                info!(
                    file = ?path,
                    frames = summary.net.frames,
                    tcp_connections = summary.net.connections,
                    tls_sessions = summary.counts.sessions,
                    not_tls = summary.counts.not_tls,
                    certificates = summary.counts.certificates,
                    alerts = summary.counts.alerts,
                    problems = summary.counts.problems,
                    tcp_gaps = summary.net.gaps,
                    ms = started.elapsed().as_millis(),
                    "capture analyzed"
                );
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
                write_error = out.file_done(&summary).err();
            }
            Err(AnalysisError::Unreadable { file, source }) => {
                // The report still lists it, so a script reading JSON sees every input.
                let summary = analysis::Summary::unreadable(&file, &source);
                let e = AnalysisError::Unreadable { file, source };
                eprintln!("sfdiag analyze: {e}");
                if let Some(hint) = super::hints::hint(&anyhow::Error::new(e)) {
                    eprintln!("hint: {hint}");
                }
                unreadable = true;
                write_error = out.file_done(&summary).err();
            }
            Err(AnalysisError::Sink { source, .. }) => {
                if source.kind() == io::ErrorKind::BrokenPipe {
                    debug!(file = ?path, "stdout closed by its reader: the analysis ends here");
                }
                write_error = Some(source);
            }
            Err(e) => return Err(e.into()),
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

/// Reads every `--keylog` file into one key log, once. Lines that do not fit are told on
/// stderr (file and line) and skipped; a file that cannot be read is an error.
fn read_keylogs(paths: &[PathBuf]) -> anyhow::Result<Option<Arc<KeyLog>>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut log = KeyLog::new();
    for path in paths {
        let text = std::fs::read(path)
            .with_context(|| format!("--keylog: cannot read {}", path.display()))?;
        let name = path.display().to_string();
        let report = log.add(&name, &text);
        for e in &report.errors {
            eprintln!("sfdiag analyze: --keylog {e}");
        }
        if report.more_errors > 0 {
            eprintln!(
                "sfdiag analyze: --keylog {name}: {} more lines ignored",
                report.more_errors
            );
        }
        if report.secrets == 0 {
            eprintln!("sfdiag analyze: --keylog {name}: no secrets in this file");
        }
        info!(file = %name, secrets = report.secrets, "key log read");
    }
    Ok(Some(Arc::new(log)))
}

/// The report on stdout, as the analyzer's sink.
struct ReportSink<'r> {
    out: &'r mut dyn Renderer,
    bar: Option<ProgressBar>,
    /// A finding that makes the exit code 1 was seen (kept here, so a run cut short by a
    /// closed stdout still knows).
    problems: bool,
    /// When the output was last flushed (`None`: not yet, so the first line goes out at once).
    flushed: Option<Instant>,
}

impl ReportSink<'_> {
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.flushed = Some(Instant::now());
        Ok(())
    }
}

impl FindingSink for ReportSink<'_> {
    fn finding(&mut self, f: Finding) -> io::Result<ControlFlow<()>> {
        self.problems |= f.is_problem();
        self.out.finding(&f)?;
        if self.flushed.is_none_or(|t| t.elapsed() >= FLUSH_EVERY) {
            self.flush()?;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn progress(&mut self, at: ReadProgress) -> io::Result<ControlFlow<()>> {
        if let Some(b) = &self.bar {
            b.set_position(at.bytes_read);
        }
        // A flush that has something to write meets EPIPE itself; when there is nothing (the
        // text report says nothing about a thousand sessions like the last), ask the pipe.
        self.flush()?;
        if stdout_closed() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stdout was closed by its reader",
            ));
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// True when nobody reads stdout any more: a pipe whose reader exited reports POLLERR to
/// its writer (a socket or terminal that hung up, POLLHUP). A file never does.
fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok_and(|n| n > 0)
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
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
