//! JSON renderers: one object per line (`jsonl`), or one array of them (`json`).
//!
//! Each finding is its serde form (CLI.md's fields). After each file comes one extra record,
//! `{"type":"capture", ...}`, with its counts and whether it was read to the end.

use std::io::{self, Write};

use serde::Serialize;

use super::Renderer;
use crate::analysis::{Finding, Summary};

/// The per-file record closing each capture's findings.
#[derive(Serialize)]
#[serde(tag = "type", rename = "capture")]
struct CaptureRecord<'a> {
    file: &'a str,
    frames: u64,
    tcp_connections: u64,
    tls_sessions: u64,
    not_tls_connections: u64,
    certificates: u64,
    alerts: u64,
    problems: u64,
    tcp_gaps: u64,
    /// `--port` as given (empty: every port).
    ports: &'a [u16],
    /// TCP segments on other ports, left out by `--port`.
    filtered_segments: u64,
    read_error: Option<&'a str>,
}

impl<'a> CaptureRecord<'a> {
    fn of(s: &'a Summary) -> Self {
        CaptureRecord {
            file: &s.file,
            frames: s.net.frames,
            tcp_connections: s.net.connections,
            tls_sessions: s.counts.sessions,
            not_tls_connections: s.counts.not_tls,
            certificates: s.counts.certificates,
            alerts: s.counts.alerts,
            problems: s.counts.problems,
            tcp_gaps: s.net.gaps,
            ports: &s.ports,
            filtered_segments: s.net.filtered,
            read_error: s.read_error.as_deref(),
        }
    }
}

/// `--format jsonl`.
pub struct JsonLines<W: Write> {
    w: W,
}

impl<W: Write> JsonLines<W> {
    /// Lines written to `w` as they come.
    pub fn new(w: W) -> Self {
        Self { w }
    }

    fn line(&mut self, v: &impl Serialize) -> io::Result<()> {
        super::safejson::to_writer(&mut self.w, v)?;
        self.w.write_all(b"\n")
    }
}

impl<W: Write> Renderer for JsonLines<W> {
    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        self.line(f)
    }
    fn file_done(&mut self, s: &Summary) -> io::Result<()> {
        self.line(&CaptureRecord::of(s))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// `--format json`: one array, written as it goes (nothing is held back).
pub struct JsonArray<W: Write> {
    w: W,
    first: bool,
    /// Writes the array's end at `finish` (a part does not: see [`JsonArray::part`]).
    closes: bool,
}

impl<W: Write> JsonArray<W> {
    /// A whole array written to `w`: opened by the first item, closed at `finish` (`[]` if none).
    pub fn new(w: W) -> Self {
        Self {
            w,
            first: true,
            closes: true,
        }
    }

    /// The items of one file of a run whose files are rendered apart and written one after
    /// the other: the first file's part opens the array, the others continue it, none closes
    /// it (the writer of the whole run ends it with [`super::closing`]).
    pub fn part(w: W, first_file: bool) -> Self {
        Self {
            w,
            first: first_file,
            closes: false,
        }
    }

    fn item(&mut self, v: &impl Serialize) -> io::Result<()> {
        self.w.write_all(if self.first { b"[\n" } else { b",\n" })?;
        self.first = false;
        super::safejson::to_writer(&mut self.w, v)?;
        Ok(())
    }
}

impl<W: Write> Renderer for JsonArray<W> {
    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        self.item(f)
    }
    fn file_done(&mut self, s: &Summary) -> io::Result<()> {
        self.item(&CaptureRecord::of(s))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        if self.closes {
            self.w
                .write_all(if self.first { b"[]\n" } else { b"\n]\n" })?;
        }
        self.w.flush()
    }
}
