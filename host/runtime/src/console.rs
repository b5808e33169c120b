//! Bounded capture of a plugin's stdout and stderr.
//!
//! A panic's message is only on stderr, so the tail is kept and becomes part of
//! the task error. Only the last `capacity` bytes are kept: a plugin that
//! floods stderr cannot grow host memory, and its writes never fail.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Clone)]
pub struct ConsoleTail {
    inner: Arc<Mutex<Tail>>,
}

struct Tail {
    bytes: VecDeque<u8>,
    capacity: usize,
    dropped: u64,
}

impl ConsoleTail {
    pub fn new(capacity: usize) -> Self {
        ConsoleTail { inner: Arc::new(Mutex::new(Tail { bytes: VecDeque::new(), capacity, dropped: 0 })) }
    }

    fn push(&self, data: &[u8]) {
        let mut tail = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let cap = tail.capacity;
        let data = if data.len() > cap {
            tail.dropped += (data.len() - cap) as u64;
            &data[data.len() - cap..]
        } else {
            data
        };
        let overflow = (tail.bytes.len() + data.len()).saturating_sub(cap);
        if overflow > 0 {
            tail.bytes.drain(..overflow);
            tail.dropped += overflow as u64;
        }
        tail.bytes.extend(data);
    }

    /// The captured text, lossily decoded and trimmed; `…` marks dropped bytes.
    pub fn text(&self) -> String {
        let tail = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.bytes.as_slices();
        let mut all = Vec::with_capacity(a.len() + b.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        let text = String::from_utf8_lossy(&all).trim().to_string();
        if tail.dropped > 0 { format!("…{text}") } else { text }
    }
}

impl IsTerminal for ConsoleTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ConsoleTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ConsoleTail {
    async fn ready(&mut self) {}
}

impl OutputStream for ConsoleTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for ConsoleTail {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
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
    fn keeps_only_the_tail() {
        let t = ConsoleTail::new(8);
        t.push(b"hello ");
        t.push(b"world!");
        assert_eq!(t.text(), "…o world!");
        let t = ConsoleTail::new(4);
        t.push(b"0123456789");
        assert_eq!(t.text(), "…6789");
    }
}
