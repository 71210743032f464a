//! `sfdiag analyze`: flags -> `analysis::Options`, each capture through the analyzer into the
//! chosen renderer on stdout, and the exit code (grep's convention): 0 nothing wrong, 1 findings
//! (a failed verdict, a fatal alert, a failed handshake), 2 an input could not be read.
//!
//! Several files are analyzed on every core (`--jobs`, default one per core; a small pool of
//! scoped threads, no dependency) and reported in the order given, byte for byte what one by
//! one gives: each file is rendered apart ([`report::file_renderer`]) into its own [`Slot`],
//! and the main thread writes the slots to stdout in order. The file being written streams:
//! its worker hands over what it rendered every [`FLUSH_EVERY`] and at each progress call, so
//! a reader sees lines as they come. The files after it are rendered ahead into a spool of
//! at most their share of [`SPOOL_BUDGET`] in memory, the rest in an unnamed temporary file
//! (mode 0600, gone when closed): memory stays bounded however long the outputs, and at most
//! [`AHEAD_PER_JOB`] files per job are started ahead of the one being written.
//!
//! The report is the analyzer's sink ([`ReportSink`]): it ends the run as soon as stdout is
//! closed (`| head`), even while the capture gives it nothing to write, and every worker stops
//! with it; any other write error is reported. How long each capture took is told on stderr
//! at `-v` (the library cannot read the clock).

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Seek, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tempfile::SpooledTempFile;
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

/// Rendered bytes a worker collects before handing them over.
const CHUNK: usize = 64 << 10;

/// Memory for the outputs of files rendered ahead of the one being written, shared by all of
/// them; beyond its share a file's output goes to a temporary file.
const SPOOL_BUDGET: usize = 16 << 20;

/// The least memory share of one file's spool.
const SPOOL_MIN: usize = 256 << 10;

/// Rendered bytes of the file being written that may wait for stdout before its worker waits.
const QUEUE_MAX: usize = 1 << 20;

/// Files started ahead of the one being written, per job.
const AHEAD_PER_JOB: usize = 2;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Text,
    Json,
    Jsonl,
}

/// Offline analysis of captures: which certificates crossed the wire, OpenSSL verdicts at the
/// packet's time, alerts, and each TLS session's outcome.
#[derive(Debug, Args)]
pub(crate) struct AnalyzeArgs {
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
    /// Files analyzed at once (default: one per core); the report keeps the order given.
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// pcap or pcapng files, optionally gzip-compressed; `-` for stdin.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// `quiet` (`-q`): no progress bar either.
pub(crate) fn run(args: AnalyzeArgs, quiet: bool) -> anyhow::Result<ExitCode> {
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args
        .jobs
        .map_or(cores, usize::from)
        .clamp(1, args.files.len().max(1));
    let ahead = AHEAD_PER_JOB * jobs;
    let run = Run {
        files: &args.files,
        opts: &opts,
        format,
        ahead,
        spool_mem: (SPOOL_BUDGET / ahead).max(SPOOL_MIN),
        bars: (!quiet && io::stderr().is_terminal()).then(MultiProgress::new),
        slots: args.files.iter().map(|_| Slot::default()).collect(),
        sched: Mutex::new(Sched::default()),
        sched_changed: Condvar::new(),
        stop: AtomicBool::new(false),
    };
    debug!(files = args.files.len(), jobs, "analyzing");
    let written = std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| run.work());
        }
        let written = run.write_in_order(&mut io::stdout().lock());
        // Whatever ended the writing, no worker waits for it any more.
        run.stop_all();
        written
    });
    let mut problems = false;
    let mut unreadable = false;
    let mut spool_error = None;
    for (slot, path) in run.slots.iter().zip(&args.files) {
        let mut st = lock(&slot.state);
        if let Some(done) = &st.done {
            problems |= done.problems;
            unreadable |= done.unreadable;
        }
        if let Some(e) = st.spool_error.take() {
            spool_error.get_or_insert((e, path.clone()));
        }
    }
    if let Err(e) = written
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e).context("writing the report");
    }
    if let Some((e, path)) = spool_error {
        // A file rendered ahead could not be kept until its turn (a full temporary disk).
        return Err(e).with_context(|| {
            format!(
                "keeping the report of {} until its turn (temporary file)",
                super::shown(&path)
            )
        });
    }
    Ok(ExitCode::from(if unreadable {
        2
    } else if problems {
        1
    } else {
        0
    }))
}

/// What one run shares between its workers and the thread that writes stdout.
struct Run<'a> {
    files: &'a [PathBuf],
    opts: &'a Options,
    format: Format,
    /// Files that may be started ahead of the one being written.
    ahead: usize,
    /// Memory share of one file's spool.
    spool_mem: usize,
    bars: Option<MultiProgress>,
    slots: Vec<Slot>,
    sched: Mutex<Sched>,
    sched_changed: Condvar,
    /// Set when stdout is gone or failed: every worker stops at its next finding or progress.
    stop: AtomicBool,
}

/// Which file is next to start and which is being written.
#[derive(Default)]
struct Sched {
    next: usize,
    writing: usize,
}

/// One file's way from its worker to stdout.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    changed: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// Taken by the writer: from then on output goes to `queue`, not to `spool`.
    claimed: bool,
    /// Output rendered before the writer came to this file.
    spool: Option<SpooledTempFile>,
    /// Output waiting for stdout, once claimed.
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    /// The worker is done with this file.
    done: Option<FileDone>,
    /// The spool could not be written (a full disk): what came before it was kept.
    spool_error: Option<io::Error>,
}

/// What the writer needs to know of a finished file.
#[derive(Debug, Default)]
struct FileDone {
    problems: bool,
    unreadable: bool,
    /// Lines for stderr, printed when the file's output is written (so they keep its order).
    messages: Vec<String>,
}

/// A poisoned lock still holds consistent bytes (every update is one push or one flag).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Run<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn stop_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _sched = lock(&self.sched);
        self.sched_changed.notify_all();
        drop(_sched);
        for slot in &self.slots {
            let _state = lock(&slot.state);
            slot.changed.notify_all();
        }
    }

    /// A worker: takes the next file (waiting while too many are ahead of the one being
    /// written) until none is left or the run stops.
    fn work(&self) {
        loop {
            let index = {
                let mut s = lock(&self.sched);
                while s.next < self.files.len()
                    && s.next >= s.writing + self.ahead
                    && !self.stopped()
                {
                    s = self
                        .sched_changed
                        .wait(s)
                        .unwrap_or_else(|e| e.into_inner());
                }
                if s.next >= self.files.len() || self.stopped() {
                    return;
                }
                s.next += 1;
                s.next - 1
            };
            let done = self.analyze(index);
            let slot = &self.slots[index];
            lock(&slot.state).done = Some(done);
            slot.changed.notify_all();
        }
    }

    /// Analyzes file `index` into its slot.
    fn analyze(&self, index: usize) -> FileDone {
        let path = &self.files[index];
        let started = Instant::now();
        let slot = &self.slots[index];
        let mut out = report::file_renderer(
            self.format,
            SlotWriter {
                run: self,
                slot,
                buf: Vec::with_capacity(CHUNK),
            },
            index == 0,
        );
        let mut sink = ReportSink {
            out: &mut *out,
            run: self,
            bar: self.bars.as_ref().and_then(|m| progress_bar(m, path)),
            problems: false,
            flushed: None,
        };
        let result = analysis::analyze_path(path, self.opts, &mut sink);
        if let Some(b) = sink.bar.take() {
            b.finish_and_clear();
        }
        let mut done = FileDone {
            problems: sink.problems,
            ..FileDone::default()
        };
        let summary = match result {
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
                    done.messages
                        .push(format!("sfdiag analyze: {}: {e}", super::shown(path)));
                    done.unreadable = true;
                }
                summary
            }
            Err(AnalysisError::Unreadable { file, source }) => {
                // The report still lists it, so a script reading JSON sees every input.
                let summary = analysis::Summary::unreadable(&file, &source);
                let e = AnalysisError::Unreadable { file, source };
                done.messages.push(format!("sfdiag analyze: {e}"));
                if let Some(hint) = super::hints::hint(&anyhow::Error::new(e)) {
                    done.messages.push(format!("hint: {hint}"));
                }
                done.unreadable = true;
                summary
            }
            Err(AnalysisError::Sink { source, .. }) => {
                if source.kind() == io::ErrorKind::BrokenPipe {
                    debug!(file = ?path, "stdout closed by its reader: the analysis ends here");
                }
                self.stop_all();
                return done;
            }
            Err(e) => {
                done.messages.push(format!("sfdiag analyze: {e}"));
                done.unreadable = true;
                return done;
            }
        };
        if out.file_done(&summary).and_then(|()| out.finish()).is_err() {
            self.stop_all();
        }
        done
    }

    /// The writer: each file's output in the order given, as it comes; then the closing.
    fn write_in_order(&self, w: &mut impl Write) -> io::Result<()> {
        let mut any = false;
        for (index, slot) in self.slots.iter().enumerate() {
            let spool = {
                let mut st = lock(&slot.state);
                st.claimed = true;
                st.spool.take()
            };
            slot.changed.notify_all();
            if let Some(mut spool) = spool {
                spool.rewind()?;
                any |= io::copy(&mut spool, w)? > 0;
                w.flush()?;
            }
            loop {
                let (chunks, done) = {
                    let mut st = lock(&slot.state);
                    while st.queue.is_empty() && st.done.is_none() && !self.stopped() {
                        st = slot.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.queued = 0;
                    let chunks: Vec<Vec<u8>> = st.queue.drain(..).collect();
                    (chunks, st.done.is_some() || self.stopped())
                };
                slot.changed.notify_all();
                for c in &chunks {
                    any |= !c.is_empty();
                    w.write_all(c)?;
                }
                w.flush()?;
                if done {
                    break;
                }
            }
            let st = lock(&slot.state);
            if let Some(done) = &st.done {
                for m in &done.messages {
                    eprintln!("{m}");
                }
            }
            if self.stopped() {
                return Ok(());
            }
            drop(st);
            lock(&self.sched).writing = index + 1;
            self.sched_changed.notify_all();
        }
        w.write_all(report::closing(self.format, any))?;
        w.flush()
    }
}

/// A worker's end of its file's slot: collects rendered bytes and hands them over.
struct SlotWriter<'r, 'a> {
    run: &'r Run<'a>,
    slot: &'r Slot,
    buf: Vec<u8>,
}

impl SlotWriter<'_, '_> {
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let mut st = lock(&self.slot.state);
        if !st.claimed {
            if st.spool_error.is_some() {
                return Err(io::Error::other("the report spool failed"));
            }
            let spool = st
                .spool
                .get_or_insert_with(|| SpooledTempFile::new(self.run.spool_mem));
            if let Err(e) = spool.write_all(&chunk) {
                let kind = e.kind();
                st.spool_error = Some(e);
                return Err(io::Error::new(kind, "the report spool failed"));
            }
            return Ok(());
        }
        // Claimed: stdout is the limit; wait while too much is queued for it.
        while st.queued > QUEUE_MAX && !self.run.stopped() {
            st = self
                .slot
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
        if self.run.stopped() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the report's output was closed",
            ));
        }
        st.queued += chunk.len();
        st.queue.push_back(chunk);
        drop(st);
        self.slot.changed.notify_all();
        Ok(())
    }
}

impl Write for SlotWriter<'_, '_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.hand_over()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
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
            .with_context(|| format!("--keylog: cannot read {}", super::shown(path)))?;
        let name = super::shown(path);
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

/// The report of one file, as the analyzer's sink.
struct ReportSink<'r, 'a> {
    out: &'r mut dyn Renderer,
    run: &'r Run<'a>,
    bar: Option<ProgressBar>,
    /// A finding that makes the exit code 1 was seen (kept here, so a run cut short by a
    /// closed stdout still knows).
    problems: bool,
    /// When the output was last flushed (`None`: not yet, so the first line goes out at once).
    flushed: Option<Instant>,
}

impl ReportSink<'_, '_> {
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.flushed = Some(Instant::now());
        Ok(())
    }

    fn closed() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "stdout was closed by its reader")
    }
}

impl FindingSink for ReportSink<'_, '_> {
    fn finding(&mut self, f: Finding) -> io::Result<ControlFlow<()>> {
        if self.run.stopped() {
            return Err(Self::closed());
        }
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
        self.flush()?;
        // A write that has something to say meets EPIPE itself; when there is nothing (the
        // text report says nothing about a thousand sessions like the last), ask the pipe.
        if self.run.stopped() || stdout_closed() {
            self.run.stop_all();
            return Err(Self::closed());
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
fn progress_bar(multi: &MultiProgress, path: &Path) -> Option<ProgressBar> {
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
    bar.set_message(super::shown(path));
    Some(multi.add(bar))
}
