//! Where findings go: the consumer's half of the analyzer, shaped after ripgrep's `Sink`.
//!
//! The analyzer produces; a [`FindingSink`] takes each finding as soon as it exists and
//! answers whether the run goes on. `ControlFlow::Break` ends it cleanly (the sink has what
//! it wanted: a first problem, a count); an error ends it too and comes back out of
//! `analyze_reader` as [`super::AnalysisError::Sink`] (a report that can no longer be
//! written: a full disk, or a reader that left, as `| head` does). Either way the rest of
//! the input is not read: a sink that stops is never fed again.
//!
//! Between findings the analyzer calls [`FindingSink::progress`] every few frames, so a sink
//! can flush what it wrote and notice that its reader is gone even while the capture gives it
//! nothing to say. Any `FnMut(Finding)` is a sink that never stops.

use std::io;
use std::ops::ControlFlow;

use super::Finding;

/// How far the read of one capture has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadProgress {
    /// Frames read so far.
    pub frames: u64,
    /// Bytes taken from the input so far (compressed bytes for a `.gz`).
    pub bytes_read: u64,
    /// The input's size, when known (a regular file).
    pub input_len: Option<u64>,
}

/// The consumer of findings. See the module doc.
pub trait FindingSink {
    /// One finding, as soon as it is known. `Ok(ControlFlow::Break(()))` ends the run.
    fn finding(&mut self, finding: Finding) -> io::Result<ControlFlow<()>>;

    /// Called every few frames and once at the end of a capture read to its end.
    /// `Ok(ControlFlow::Break(()))` ends the run.
    fn progress(&mut self, _at: ReadProgress) -> io::Result<ControlFlow<()>> {
        Ok(ControlFlow::Continue(()))
    }
}

/// A closure that takes every finding and never stops the run.
impl<F: FnMut(Finding)> FindingSink for F {
    fn finding(&mut self, finding: Finding) -> io::Result<ControlFlow<()>> {
        self(finding);
        Ok(ControlFlow::Continue(()))
    }
}
