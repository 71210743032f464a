//! analysis: the one place that joins capture -> net -> tls -> cert -> judge into `Finding`s
//! (certificates with OpenSSL-grade verdicts, alerts, sessions with an outcome and a reason,
//! notes), streamed to a sink as they are found.
//!
//! Sync and silent: it prints nothing (renderers in `report` do), reads no clock (certificates
//! are judged at their packet's time, or at `Options::at`), and keeps memory bounded whatever
//! the capture's length: frames are borrowed one at a time, `net` bounds reassembly, finished
//! handshakes are only skimmed, non-TLS connections are dropped to counters, and findings leave
//! as soon as they exist. TLS is looked for on every TCP connection (any port, after STARTTLS
//! and similar upgrades), unless `Options::ports` restricts it.

mod certs;
mod engine;
mod findings;
mod outcome;

use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

pub use engine::Counts;
pub use findings::{
    AlertFinding, CertificateFinding, ChainFinding, Finding, Identity, NoteFinding, SessionFinding,
    timestamp_rfc3339,
};
pub use outcome::{Close, Outcome};

use crate::capture::{self, CaptureError};
use crate::cert::CertInfo;
use crate::net::{self, Tracker};
use crate::tls;

/// What to judge against and what to look at.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Trust anchors (`--ca`): with them every chain is fully verified; without, only dates.
    pub anchors: Vec<CertInfo>,
    /// Judge as if the clock showed this (`--at`), instead of each packet's own time.
    pub at: Option<OffsetDateTime>,
    /// Only TCP connections with one of these ports (`--port`); empty: all.
    pub ports: Vec<u16>,
    pub limits: tls::Limits,
}

/// What one capture amounted to.
#[derive(Debug, Clone)]
pub struct Summary {
    pub file: Arc<str>,
    pub counts: Counts,
    pub net: net::Stats,
    /// The capture could not be read to its end (truncated, corrupt): what came before was
    /// analyzed.
    pub read_error: Option<String>,
}

impl Summary {
    /// The summary of a capture that could not be read at all (not found, not a capture):
    /// nothing counted, and why, so that every input has a record in the report.
    pub fn unreadable(err: &AnalysisError) -> Summary {
        let AnalysisError::Unreadable { file, source } = err;
        Summary {
            file: file.as_str().into(),
            counts: Counts::default(),
            net: net::Stats::default(),
            read_error: Some(source.to_string()),
        }
    }
}

/// The capture could not be analyzed at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    #[error("{}", unreadable(file, source))]
    Unreadable {
        file: String,
        #[source]
        source: CaptureError,
    },
}

/// "FILE: why", except where the reason names the file already (it could not be opened).
fn unreadable(file: &str, source: &CaptureError) -> String {
    match source {
        CaptureError::Open { .. } => source.to_string(),
        _ => format!("{file}: {source}"),
    }
}

/// Frames between two calls of the progress callback.
const PROGRESS_EVERY: u64 = 1 << 14;

/// Analyzes the capture at `path` (`-` = stdin; gzip detected), sending each finding to `sink`
/// as soon as it is known; `progress(bytes read, total)` is called now and then.
pub fn analyze_path(
    path: &Path,
    opts: &Options,
    sink: &mut dyn FnMut(Finding),
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Summary, AnalysisError> {
    let file = path.display().to_string();
    let mut reader = capture::open(path).map_err(|source| AnalysisError::Unreadable {
        file: file.clone(),
        source,
    })?;
    Ok(analyze_reader(&mut reader, &file, opts, sink, progress))
}

/// [`analyze_path`] on an open reader; `file` names it in findings.
pub fn analyze_reader(
    reader: &mut capture::Reader,
    file: &str,
    opts: &Options,
    sink: &mut dyn FnMut(Finding),
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Summary {
    let file: Arc<str> = file.into();
    let mut tracker = Tracker::new(net::Config {
        ports: opts.ports.clone(),
        ..net::Config::default()
    });
    let judge = certs::CertJudge::new(opts.anchors.clone());
    let mut engine = engine::Engine::new(file.clone(), opts.at, opts.limits, judge, sink);
    let mut read_error = None;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                tracker.push(&frame, &mut |ev| engine.on_net(ev));
                for conn in engine.done_with.drain(..) {
                    tracker.stop_buffering(conn);
                }
                if frame.index % PROGRESS_EVERY == 0 {
                    progress(reader.input_position(), reader.input_len());
                }
            }
            Ok(None) => break,
            Err(e) => {
                let after = e.after_frame();
                tracing::warn!(%file, error = %e, "capture read stopped");
                let frame = (after > 0).then_some(after);
                let covers = if after > 0 {
                    format!("findings cover frames 1-{after}")
                } else {
                    "no frame could be read".to_string()
                };
                engine.note_at(frame, None, format!("{e}; {covers}"));
                read_error = Some(e.to_string());
                break;
            }
        }
    }
    tracker.finish(&mut |ev| engine.on_net(ev));
    engine.finish_all();
    progress(reader.input_position(), reader.input_len());
    Summary {
        file,
        counts: engine.counts,
        net: tracker.stats(),
        read_error,
    }
}
