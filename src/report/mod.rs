//! report: `analysis` findings -> text in the appliance's messages-log shape, JSON lines, or
//! one JSON array, written to any `io::Write` as the findings arrive; the live tunnel's tables
//! ([`status`]: `sfdiag status`, [`fleet`]: `connect --count`); and the layouts of `check`
//! ([`check`]: plugin status line, perfdata, the appliance's own messages) and `inventory`
//! ([`inventory`]: table, JSON, `devices.csv`), from `inventory`'s types.
//!
//! Owns layout only: what a finding means (verdicts, outcomes, reasons) is decided upstream,
//! and field names/format for JSON are the findings' own serde shape (CLI.md's contract). The
//! text renderer keeps a bounded summary (sessions grouped by what they have in common) for the
//! end of each file; the JSON renderers keep nothing. `renew` and `copy` lay out what
//! `pki renew` and `pki copy` did.

#![warn(missing_docs)] // every pub item of report says what it lays out (issue 10)

pub mod check;
pub mod copy;
pub mod fleet;
pub mod inventory;
mod json;
pub mod renew;
mod safejson;
pub mod status;
mod syslog;
mod text;

use std::io;

pub use json::{JsonArray, JsonLines};
pub use text::Text;

use crate::analysis::{Finding, Summary};

/// Output formats of `sfdiag analyze --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// [`Text`]: the appliance's messages-log lines, then a summary per file (the default).
    #[default]
    Text,
    /// [`JsonArray`]: one array of every finding and capture record.
    Json,
    /// [`JsonLines`]: one JSON object a line, as each finding arrives.
    Jsonl,
}

/// Something that lays findings out.
pub trait Renderer {
    /// One finding, as soon as it is known.
    fn finding(&mut self, f: &Finding) -> io::Result<()>;
    /// A capture is done (several files may follow).
    fn file_done(&mut self, s: &Summary) -> io::Result<()>;
    /// Pushes what is buffered to the writer, so a reader sees it before the end (a stream
    /// analyzed live, `| head`); the output stays valid for more findings.
    fn flush(&mut self) -> io::Result<()>;
    /// All input is done.
    fn finish(&mut self) -> io::Result<()>;
}

/// The renderer for `format`, writing to `w`.
pub fn renderer<'w, W: io::Write + 'w>(format: Format, w: W) -> Box<dyn Renderer + 'w> {
    match format {
        Format::Text => Box::new(Text::new(w)),
        Format::Json => Box::new(JsonArray::new(w)),
        Format::Jsonl => Box::new(JsonLines::new(w)),
    }
}

/// The renderer of one file of a run whose files are rendered apart (on several threads) and
/// written in order: the parts of files 0, 1, ... written one after the other, then
/// [`closing`], are byte for byte what one [`renderer`] writes for all of them. A renderer
/// keeps no state from one file to the next but the JSON array's comma, which `first_file`
/// decides (every file renders at least its `capture` record).
pub fn file_renderer<'w, W: io::Write + 'w>(
    format: Format,
    w: W,
    first_file: bool,
) -> Box<dyn Renderer + 'w> {
    match format {
        Format::Text => Box::new(Text::new(w)),
        Format::Json => Box::new(JsonArray::part(w, first_file)),
        Format::Jsonl => Box::new(JsonLines::new(w)),
    }
}

/// What ends a run rendered by [`file_renderer`]s, after the last file's part (`any`: some
/// part was written).
pub fn closing(format: Format, any: bool) -> &'static [u8] {
    match (format, any) {
        (Format::Json, true) => b"\n]\n",
        (Format::Json, false) => b"[]\n",
        (Format::Text | Format::Jsonl, _) => b"",
    }
}
