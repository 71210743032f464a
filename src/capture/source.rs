//! The byte source under a capture reader: a file, stdin or anything `Read`, gunzipped when it
//! starts with the gzip magic, wrapped so that pcap-parser's readers can use it safely.
//!
//! pcap-parser's streaming readers do a single `read()` per refill and turn any I/O error into
//! an opaque `ReadError`. This wrapper therefore (1) loops until the caller's buffer is full or
//! the input ends, so a pipe or a gzip stream that hands out a few bytes at a time still gives
//! the parser a whole file header on its first read; (2) keeps the real `io::Error` aside and
//! reports end-of-input instead, so the reader can name it with the frame it stopped after; and
//! (3) counts the bytes taken from the underlying input (before decompression) for progress.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// State shared between the [`Source`] (owned by pcap-parser's reader) and our `Reader`.
#[derive(Debug, Default)]
pub(crate) struct SourceState {
    /// Bytes read from the underlying input, before decompression.
    raw_bytes: AtomicU64,
    /// The first I/O error met; reading stops there.
    error: Mutex<Option<io::Error>>,
}

impl SourceState {
    pub(crate) fn raw_bytes(&self) -> u64 {
        self.raw_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn take_error(&self) -> Option<io::Error> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    pub(crate) fn has_error(&self) -> bool {
        self.error.lock().map(|e| e.is_some()).unwrap_or(false)
    }

    fn set_error(&self, err: io::Error) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(err);
        }
    }
}

/// Counts what the underlying input hands out (the figure a progress bar compares to the file
/// size, also for compressed files).
struct Counting<R> {
    inner: R,
    state: Arc<SourceState>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.state.raw_bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the parser reads from: fills whole buffers, never returns an error.
pub(crate) struct Source {
    inner: Box<dyn Read + Send>,
    state: Arc<SourceState>,
    failed: bool,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() && !self.failed {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.failed = true;
                    self.state.set_error(e);
                }
            }
        }
        Ok(filled)
    }
}

/// How the input was wrapped, for the reader's `compressed()` and for messages.
pub(crate) struct Opened {
    pub(crate) source: Source,
    pub(crate) state: Arc<SourceState>,
    pub(crate) gzip: bool,
    /// The first bytes of the (decompressed) capture, at most 16, for "not a capture" messages.
    pub(crate) head: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads up to `n` bytes (fewer only at end of input) without losing them: they are put back in
/// front of the stream.
fn peek(mut input: Box<dyn Read + Send>, n: usize) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match input.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    let rest: Box<dyn Read + Send> = Box::new(io::Cursor::new(head.clone()).chain(input));
    Ok((head, rest))
}

/// Wraps `input`: counts it, gunzips it when it starts with the gzip magic, and peeks at the
/// first bytes of what the parser will see.
pub(crate) fn wrap(input: Box<dyn Read + Send>) -> io::Result<Opened> {
    let state = Arc::new(SourceState::default());
    let counted: Box<dyn Read + Send> = Box::new(Counting {
        inner: input,
        state: Arc::clone(&state),
    });
    let (magic, stream) = peek(counted, 2)?;
    let gzip = magic == GZIP_MAGIC;
    let stream: Box<dyn Read + Send> = if gzip {
        // Multi-member: `gzip -c a b > c` and some rotating tools concatenate members.
        Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::with_capacity(256 * 1024, stream),
        ))
    } else {
        stream
    };
    let (head, stream) = peek(stream, 16)?;
    Ok(Opened {
        source: Source {
            inner: stream,
            state: Arc::clone(&state),
            failed: false,
        },
        state,
        gzip,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per read, like a slow pipe.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    #[test]
    fn source_fills_whole_buffers_from_a_trickling_input() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut opened = wrap(Box::new(Trickle(data.clone(), 0))).unwrap();
        assert_eq!(opened.head, data[..16]);
        let mut buf = [0u8; 64];
        assert_eq!(opened.source.read(&mut buf).unwrap(), 64);
        assert_eq!(buf[..], data[..64]);
        assert_eq!(opened.source.read(&mut buf).unwrap(), 36);
        assert_eq!(opened.source.read(&mut buf).unwrap(), 0);
        assert_eq!(opened.state.raw_bytes(), 100);
        assert!(!opened.gzip);
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }

    #[test]
    fn source_keeps_the_io_error_aside_and_reports_end_of_input() {
        let mut opened = wrap(Box::new(io::Cursor::new(vec![0xd4, 0xc3]).chain(Failing)))
            .err()
            .map(|e| e.to_string());
        // The peek itself meets the error: it is returned as is.
        assert_eq!(opened.take().as_deref(), Some("disk on fire"));

        let mut src = Source {
            inner: Box::new(io::Cursor::new(vec![1, 2, 3]).chain(Failing)),
            state: Arc::new(SourceState::default()),
            failed: false,
        };
        let mut buf = [0u8; 8];
        assert_eq!(src.read(&mut buf).unwrap(), 3);
        assert_eq!(src.read(&mut buf).unwrap(), 0);
        assert_eq!(src.state.take_error().unwrap().to_string(), "disk on fire");
    }

    #[test]
    fn gzip_input_is_decompressed_transparently() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write;
        let plain: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&plain).unwrap();
        let gz = enc.finish().unwrap();
        let mut opened = wrap(Box::new(io::Cursor::new(gz.clone()))).unwrap();
        assert!(opened.gzip);
        assert_eq!(opened.head, plain[..16]);
        let mut out = Vec::new();
        opened.source.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
        assert_eq!(opened.state.raw_bytes(), gz.len() as u64);
    }
}
