//! A plugin's stderr, kept in memory and bounded: the last few KiB, so that a panic message
//! (written last) can be shown in the error however much the plugin wrote before it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much of the end of stderr is kept.
pub(crate) const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// The most a single write may carry; a guest asks before writing and is told this.
const WRITE_PERMIT_BYTES: usize = 64 * 1024;

/// An output stream that never fails and keeps only the last [`STDERR_TAIL_BYTES`] written.
#[derive(Clone, Default)]
pub(crate) struct StderrTail {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl StderrTail {
    /// The last [`STDERR_TAIL_BYTES`] written, decoded lossily.
    pub(crate) fn contents(&self) -> String {
        let buffer = self.lock();
        let start = buffer.len().saturating_sub(STDERR_TAIL_BYTES);
        String::from_utf8_lossy(&buffer[start..]).into_owned()
    }

    fn push(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        buffer.extend_from_slice(bytes);
        // Trim only once the buffer is twice the tail, so trimming stays amortised.
        if buffer.len() > 2 * STDERR_TAIL_BYTES {
            let excess = buffer.len() - STDERR_TAIL_BYTES;
            buffer.drain(..excess);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A poisoned lock only means a panic elsewhere mid-append; the bytes are still usable.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for StderrTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_end_of_a_long_stream() {
        let tail = StderrTail::default();
        for _ in 0..10_000 {
            tail.push(b"noise ");
        }
        tail.push(b"panicked at the end");

        let contents = tail.contents();
        assert!(contents.ends_with("panicked at the end"), "{contents:?}");
        assert_eq!(contents.len(), STDERR_TAIL_BYTES);
    }
}
