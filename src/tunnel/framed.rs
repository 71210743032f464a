//! [`proto`](super::proto) frames over an async byte stream (the TLS session).
//!
//! Owns buffering only: reads are cancel-safe (usable in `select!` beside timers and push
//! requests) because bytes land in the buffer only when a read completes.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::TunnelError;
use super::proto::{self, Message};

/// A stream that speaks frames.
#[derive(Debug)]
pub(crate) struct Framed<S> {
    io: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    pub(crate) fn new(io: S) -> Self {
        Self {
            io,
            buf: Vec::new(),
        }
    }

    /// The next message; `None` when the peer closed the stream cleanly.
    pub(crate) async fn read(&mut self) -> Result<Option<Message>, TunnelError> {
        loop {
            if let Some((m, used)) = proto::decode(&self.buf)? {
                self.buf.drain(..used);
                if self.buf.is_empty() {
                    // Idle tunnels are most tunnels: give their buffer back.
                    self.buf = Vec::new();
                }
                return Ok(Some(m));
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(TunnelError::Io(std::io::ErrorKind::UnexpectedEof.into()))
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes one message and flushes it.
    pub(crate) async fn send(&mut self, m: &Message) -> Result<(), TunnelError> {
        self.io.write_all(&proto::encode(m)).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// [`Self::send`], giving up after `limit`: a peer that takes none of our bytes for that
    /// long (it hangs without reading; its window stays shut) is as gone as a silent one, and
    /// must not hold the task that writes to it.
    pub(crate) async fn send_within(
        &mut self,
        m: &Message,
        limit: Duration,
    ) -> Result<(), TunnelError> {
        match tokio::time::timeout(limit, self.send(m)).await {
            Ok(r) => r,
            Err(_) => Err(TunnelError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("peer took no data for {} seconds", limit.as_secs()),
            ))),
        }
    }

    /// Sends close_notify and closes the stream.
    pub(crate) async fn close(mut self) {
        let _ = self.io.shutdown().await;
    }
}
