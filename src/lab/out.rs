//! Where a lab run's lines go: one writer shared by every emulated appliance's log and the
//! lab's own narration, so lines come out in the order they happen.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// A shared, line-oriented output. Clones write to the same place.
#[derive(Clone)]
pub struct Out {
    w: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Out")
    }
}

impl Out {
    /// Lines go to `w` (stdout for the command, a buffer for tests).
    pub fn new(w: impl Write + Send + 'static) -> Self {
        Out {
            w: Arc::new(Mutex::new(Box::new(w))),
        }
    }

    /// Writes `text` (one or more whole lines) at once.
    pub fn text(&self, text: &str) -> io::Result<()> {
        let mut w = crate::sync::lock(&self.w);
        w.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// Runs `f` on a buffer and writes what it wrote as one block.
    pub fn block(&self, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let mut buf = Vec::new();
        f(&mut buf)?;
        if buf.is_empty() {
            return Ok(());
        }
        self.text(&String::from_utf8_lossy(&buf))
    }
}

impl Out {
    /// A writer for one appliance's log: bytes are held until a whole line is there, so lines
    /// from different appliances never interleave mid-line.
    pub fn line_writer(&self) -> LineWriter {
        LineWriter {
            out: self.clone(),
            buf: Vec::new(),
        }
    }
}

/// See [`Out::line_writer`].
pub struct LineWriter {
    out: Out,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if let Some(end) = self.buf.iter().rposition(|&c| c == b'\n') {
            let lines: Vec<u8> = self.buf.drain(..=end).collect();
            self.out.text(&String::from_utf8_lossy(&lines))?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::sync::lock(&self.w).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        crate::sync::lock(&self.w).flush()
    }
}
