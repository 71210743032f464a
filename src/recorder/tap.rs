//! [`Tapped`]: a byte stream that tells a [`Flow`] what went through it.
//!
//! It sits under tokio-rustls, so what it sees are the TLS records exactly as they cross the
//! socket. Without a flow it is a plain pass-through, so the tunnel uses one stream type
//! whether or not `--pcap` was given.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Flow;

/// A stream whose traffic may be recorded.
#[derive(Debug)]
pub struct Tapped<S> {
    inner: S,
    flow: Option<Flow>,
}

impl<S> Tapped<S> {
    /// No recording.
    pub fn plain(inner: S) -> Self {
        Tapped { inner, flow: None }
    }

    /// Recorded into `flow`.
    pub fn recorded(inner: S, flow: Flow) -> Self {
        Tapped {
            inner,
            flow: Some(flow),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tapped<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(flow) = &mut this.flow {
            let got = &buf.filled()[before..];
            if !got.is_empty() {
                flow.received(got);
            } else if wanted {
                flow.peer_closed();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tapped<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if let Some(flow) = &mut this.flow {
            flow.sent(&buf[..n]);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
        if let Some(flow) = &mut this.flow {
            flow.local_closed();
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use crate::recorder::Recorder;
    use crate::sftunnel::TlsSide;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn records_what_crosses_the_stream_and_the_eof() {
        let buf = Buf::default();
        let rec = Recorder::to_writer(buf.clone(), time::OffsetDateTime::now_utc).unwrap();
        let (a, mut b) = tokio::io::duplex(64);
        let mut t = rec.tap(
            a,
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            TlsSide::Client,
        );
        t.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        b.write_all(b"world!").await.unwrap();
        drop(b);
        let mut back = Vec::new();
        t.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"world!");
        t.shutdown().await.unwrap();
        // SYN, SYN-ACK, ACK, "hello", "world!", peer FIN, our FIN, last ACK.
        assert_eq!(rec.packets(), 8);
        let bytes = buf.0.lock().unwrap().clone();
        assert!(bytes.windows(5).any(|w| w == b"hello"));
        assert!(bytes.windows(6).any(|w| w == b"world!"));
    }
}
