//! analysis: the one place that joins capture -> net -> tls -> cert -> judge into `Finding`s
//! (certificates with OpenSSL-grade verdicts, alerts, sessions with an outcome and a reason,
//! notes), streamed to a [`FindingSink`] as they are found. The sink can say stop (or fail, a
//! report that can no longer be written): the run then ends at once, the rest of the input
//! unread.
//!
//! Sync and silent: it prints nothing (renderers in `report` do), reads no clock (certificates
//! are judged at their packet's time, or at `Options::at`), and keeps memory bounded whatever
//! the capture's length: frames are borrowed one at a time, `net` bounds reassembly, finished
//! handshakes are only skimmed, non-TLS connections are dropped to counters, and findings leave
//! as soon as they exist. TLS is looked for on every TCP connection (any port, after STARTTLS
//! and similar upgrades), unless `Options::ports` restricts it.
//!
//! Findings say only what the bytes show: per side whether certificates were sent, empty,
//! encrypted (TLS 1.3), not in the capture or lost from it (`CertsSeen`); whether a verdict
//! covers the chain or only dates (`Checked`, no `--ca`); when a `--ca` anchor is not the CA the peer
//! sent (`AnchorMismatch`). A session that is a problem carries a `Remedy` (see `remedy` for
//! the table from verify codes, alerts and sftunnel roles to what a TAC engineer does).
//! With a key log (`Options::keys`, `--keylog`) the TLS layer opens what the log has secrets
//! for: TLS 1.3 certificates are judged like plaintext ones and marked `decrypted` (and
//! `post_handshake` when they came after the handshake), TLS 1.2 encrypted alerts get their
//! names, and outcomes follow what was decrypted. What stayed encrypted is described from its
//! records, with the key-log lines that would open it (`unlock`).

#![warn(missing_docs)] // every pub item of analysis says what it found (issue 10)

mod certs;
mod engine;
mod findings;
mod outcome;
mod remedy;
mod sink;
mod unlock;

use std::io;
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;

pub use engine::Counts;
pub use findings::{
    Action, AlertFinding, AnchorMismatch, CertRef, CertificateFinding, CertsSeen, ChainFinding,
    Checked, Finding, Identity, NoteFinding, NoteKind, Remedy, SessionFinding, timestamp_rfc3339,
};
pub use outcome::{Close, Outcome};
pub use sink::{FindingSink, ReadProgress};

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
    /// What one direction of a connection may buffer (the defaults fit real chains).
    pub limits: tls::Limits,
    /// Secrets from NSS key logs (`--keylog`): TLS 1.3 handshakes and post-handshake messages
    /// they hold secrets for are decrypted, TLS 1.2 encrypted alerts named. Connections it
    /// has nothing for cost what they cost without it.
    pub keys: Option<Arc<tls::KeyLog>>,
}

/// What one capture amounted to.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The capture, as named on the command line (`-` for stdin).
    pub file: Arc<str>,
    /// Findings by kind.
    pub counts: Counts,
    /// Frames, connections and reassembly totals.
    pub net: net::Stats,
    /// The capture could not be read to its end (truncated, corrupt): what came before was
    /// analyzed.
    pub read_error: Option<String>,
    /// The sink said stop before the end of the input: counts cover what was read until then.
    pub stopped: bool,
    /// `Options::ports` (`--port`): TCP segments on other ports were left out
    /// (`net.filtered` counts them).
    pub ports: Vec<u16>,
}

impl Summary {
    /// The summary of a capture that could not be read at all (not found, not a capture):
    /// nothing counted, and why, so that every input has a record in the report.
    pub fn unreadable(file: &str, source: &CaptureError) -> Summary {
        Summary {
            file: file.into(),
            counts: Counts::default(),
            net: net::Stats::default(),
            read_error: Some(source.to_string()),
            stopped: false,
            ports: Vec::new(),
        }
    }
}

/// Why a capture's analysis ended without a summary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// The capture could not be analyzed at all.
    #[error("{}", unreadable(file, source))]
    Unreadable {
        /// The capture, as named on the command line.
        file: String,
        /// Why (not found, not a capture, ...).
        #[source]
        source: CaptureError,
    },
    /// The sink failed (a report that could not be written); the run stopped there.
    #[error("{file}: findings could not be delivered: {source}")]
    Sink {
        /// The capture being analyzed.
        file: String,
        /// The sink's error.
        #[source]
        source: io::Error,
    },
}

/// "FILE: why", except where the reason names the file already (it could not be opened).
fn unreadable(file: &str, source: &CaptureError) -> String {
    match source {
        CaptureError::Open { .. } => source.to_string(),
        _ => format!("{file}: {source}"),
    }
}

/// Frames between two calls of [`FindingSink::progress`]: often enough that a sink notices
/// a closed output within a fraction of a second of reading, rarely enough to cost nothing.
const PROGRESS_EVERY: u64 = 1 << 10;

/// Analyzes the capture at `path` (`-` = stdin; gzip detected), sending each finding to `sink`
/// as soon as it is known. Ends early, with the rest unread, when the sink says stop (then
/// `Summary::stopped`) or fails (then [`AnalysisError::Sink`]).
pub fn analyze_path<S: FindingSink + ?Sized>(
    path: &Path,
    opts: &Options,
    sink: &mut S,
) -> Result<Summary, AnalysisError> {
    let file = path.display().to_string();
    let mut reader = capture::open(path).map_err(|source| AnalysisError::Unreadable {
        file: file.clone(),
        source,
    })?;
    analyze_reader(&mut reader, &file, opts, sink)
}

/// [`analyze_path`] on an open reader; `file` names it in findings. A capture that breaks
/// off (truncated, corrupt) is not an error: its findings cover the frames before the break,
/// a note says where, and `Summary::read_error` says why.
pub fn analyze_reader<S: FindingSink + ?Sized>(
    reader: &mut capture::Reader,
    file: &str,
    opts: &Options,
    sink: &mut S,
) -> Result<Summary, AnalysisError> {
    let file: Arc<str> = file.into();
    tracing::debug!(%file, format = ?reader.format(), gzip = reader.compressed(), "reading");
    let mut tracker = Tracker::new(net::Config {
        ports: opts.ports.clone(),
        ..net::Config::default()
    });
    let judge = certs::CertJudge::new(opts.anchors.clone());
    let mut engine = engine::Engine::new(
        file.clone(),
        opts.at,
        opts.limits,
        opts.keys.clone(),
        judge,
        sink,
    );
    let mut read_error = None;
    let progress = |reader: &capture::Reader| ReadProgress {
        frames: reader.frames_read(),
        bytes_read: reader.input_position(),
        input_len: reader.input_len(),
    };
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                // A frame shorter than it was on the wire was cut by the snap length, which
                // is then its captured length.
                if u64::from(frame.orig_len) > frame.data.len() as u64 {
                    let caplen = u32::try_from(frame.data.len()).unwrap_or(u32::MAX);
                    engine.snaplen = engine.snaplen.max(Some(caplen));
                }
                tracker.push(&frame, &mut |ev| engine.on_net(ev));
                for conn in engine.done_with.drain(..) {
                    tracker.stop_buffering(conn);
                }
                if frame.index % PROGRESS_EVERY == 0 {
                    engine.progress(progress(reader));
                }
                if engine.halt.is_some() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let after = e.after_frame();
                tracing::warn!(%file, error = %e, "capture read stopped");
                read_error = Some(e.to_string());
                engine.note_at(
                    (after > 0).then_some(after),
                    None,
                    NoteKind::ReadError(e.into()),
                );
                break;
            }
        }
    }
    if engine.halt.is_none() {
        tracker.finish(&mut |ev| engine.on_net(ev));
        engine.finish_all();
        let segments = tracker.stats().cut_segments;
        if let Some(snaplen) = engine.snaplen.filter(|_| segments > 0) {
            engine.note_at(None, None, NoteKind::SnapLength { segments, snaplen });
        }
        engine.progress(progress(reader));
    }
    let halt = engine.halt.take();
    let counts = engine.counts;
    match halt {
        Some(engine::Halt::Failed(source)) => Err(AnalysisError::Sink {
            file: file.to_string(),
            source,
        }),
        stopped => Ok(Summary {
            file,
            counts,
            net: tracker.stats(),
            read_error,
            stopped: stopped.is_some(),
            ports: opts.ports.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::ops::ControlFlow;

    use super::*;

    /// A recorded sftunnel handshake (captures/README.md: stock openssl peers) repeated `n`
    /// times after its file header: one device reconnecting over and over. Also the file's
    /// length.
    fn reconnecting(n: usize) -> (capture::Reader, u64) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/sftunnel-valid.pcap");
        let bytes = std::fs::read(path).expect("the project's own capture");
        let (header, records) = bytes.split_at(24);
        let mut file = header.to_vec();
        for _ in 0..n {
            file.extend_from_slice(records);
        }
        let len = file.len() as u64;
        (
            capture::Reader::new(Cursor::new(file)).expect("a pcap"),
            len,
        )
    }

    /// Frames in one copy of the handshake.
    fn frames_per_copy() -> u64 {
        let (mut one, _) = reconnecting(1);
        let s = analyze_reader(&mut one, "x", &Options::default(), &mut |_| {}).unwrap();
        s.net.frames
    }

    /// Keeps findings; says stop after `stop_after` of them, or at the first progress call.
    #[derive(Default)]
    struct Sink {
        got: Vec<Finding>,
        stop_after: Option<usize>,
        stop_on_progress: bool,
        fail: bool,
        progress: Vec<ReadProgress>,
    }

    impl FindingSink for Sink {
        fn finding(&mut self, f: Finding) -> io::Result<ControlFlow<()>> {
            self.got.push(f);
            if self.fail {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            Ok(match self.stop_after {
                Some(n) if self.got.len() >= n => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
        }

        fn progress(&mut self, at: ReadProgress) -> io::Result<ControlFlow<()>> {
            self.progress.push(at);
            Ok(if self.stop_on_progress {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        }
    }

    #[test]
    fn a_sink_that_says_stop_ends_the_read_at_that_frame() {
        let mut whole = Sink::default();
        let all = analyze_reader(
            &mut reconnecting(100).0,
            "x",
            &Options::default(),
            &mut whole,
        )
        .unwrap();
        assert!(!all.stopped);
        assert_eq!(all.net.frames, 100 * frames_per_copy());
        assert_eq!(all.counts.sessions, 100);

        let (mut reader, _) = reconnecting(100);
        let mut sink = Sink {
            stop_after: Some(1),
            ..Sink::default()
        };
        let s = analyze_reader(&mut reader, "x", &Options::default(), &mut sink).unwrap();
        assert!(s.stopped);
        assert_eq!(sink.got.len(), 1, "a sink that said stop is not fed again");
        let Finding::Certificate(first) = &sink.got[0] else {
            panic!(
                "the first finding is the server's certificate: {:?}",
                sink.got[0]
            );
        };
        assert_eq!(
            reader.frames_read(),
            first.frame,
            "nothing is read after the frame that made the finding"
        );
        assert_eq!(s.net.frames, first.frame);
        assert_eq!(s.counts.certificates, 1);
        assert_eq!(
            s.counts.sessions, 0,
            "no session is reported after the stop"
        );
        assert!(sink.progress.is_empty(), "{:?}", sink.progress);
    }

    #[test]
    fn progress_comes_every_1024_frames_and_can_stop_a_run_with_nothing_to_say() {
        let (mut reader, len) = reconnecting(100);
        let mut sink = Sink {
            stop_on_progress: true,
            ..Sink::default()
        };
        let s = analyze_reader(&mut reader, "x", &Options::default(), &mut sink).unwrap();
        assert!(s.stopped);
        assert_eq!(reader.frames_read(), PROGRESS_EVERY);
        assert_eq!(sink.progress.len(), 1);
        assert_eq!(sink.progress[0].frames, PROGRESS_EVERY);
        assert!(sink.progress[0].bytes_read <= len);

        let mut all = Sink::default();
        analyze_reader(&mut reconnecting(100).0, "x", &Options::default(), &mut all).unwrap();
        let total = 100 * frames_per_copy();
        let mut want: Vec<u64> = (1..=total / PROGRESS_EVERY)
            .map(|i| i * PROGRESS_EVERY)
            .collect();
        want.push(total);
        let frames: Vec<u64> = all.progress.iter().map(|p| p.frames).collect();
        assert_eq!(
            frames, want,
            "every {PROGRESS_EVERY} frames, and once at the end"
        );
        assert_eq!(all.progress.last().unwrap().bytes_read, len);
    }

    #[test]
    fn a_failing_sink_ends_the_run_with_its_error() {
        let (mut reader, _) = reconnecting(100);
        let mut sink = Sink {
            fail: true,
            ..Sink::default()
        };
        let e = analyze_reader(&mut reader, "x.pcap", &Options::default(), &mut sink).unwrap_err();
        let AnalysisError::Sink { file, source } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(file, "x.pcap");
        assert_eq!(source.kind(), io::ErrorKind::StorageFull);
        assert_eq!(sink.got.len(), 1);
        let Finding::Certificate(first) = &sink.got[0] else {
            panic!("{:?}", sink.got[0]);
        };
        assert_eq!(reader.frames_read(), first.frame);
        assert_eq!(
            e.to_string(),
            "x.pcap: findings could not be delivered: disk full"
        );
    }
}
