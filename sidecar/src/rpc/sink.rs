//! The write side of a connection: producers append whole frames to one shared
//! buffer and a writer task sends whatever has piled up in one write. This
//! replaces a channel of frames plus a batching copy: each frame is copied once
//! (into the buffer, where its request id is rewritten in place), there is no
//! allocation per frame, and the writer wakes once per batch, not per frame.

use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// A buffer larger than this is given back after it is written, so one burst
/// does not pin its memory for the connection's life.
const KEEP: usize = 256 * 1024;

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// No more frames are taken (the connection failed or is shutting down).
    closed: bool,
}

/// Frames waiting to be written to one connection.
#[derive(Default)]
pub struct Sink {
    state: Mutex<State>,
    wake: Notify,
}

impl Sink {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a frame written by `write` (which may rewrite it in place).
    /// `false` if the connection no longer takes frames.
    pub fn push(&self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        let was_empty = s.buf.is_empty();
        write(&mut s.buf);
        drop(s);
        if was_empty {
            self.wake.notify_one(); // stores a permit if the writer is busy
        }
        true
    }

    /// Appends `frame` as is.
    pub fn push_bytes(&self, frame: &[u8]) -> bool {
        self.push(|b| b.extend_from_slice(frame))
    }

    /// Takes no more frames; the writer sends what is queued, then shuts the
    /// connection's write side.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Swaps the queued bytes into `out` (empty) ; `false` once closed and drained.
    pub(super) fn take(&self, out: &mut Vec<u8>) -> Option<bool> {
        let mut s = self.lock();
        if s.buf.is_empty() {
            return (!s.closed).then_some(false);
        }
        std::mem::swap(&mut s.buf, out);
        Some(true)
    }
}

/// Writes what `sink` queues until it is closed and drained (then shuts the
/// write side) or a write fails (then closes the sink).
pub async fn write_loop(sink: Arc<Sink>, mut wr: OwnedWriteHalf) -> std::io::Result<()> {
    let mut out = Vec::new();
    let result = loop {
        match sink.take(&mut out) {
            None => break wr.shutdown().await,
            Some(false) => sink.wake.notified().await,
            Some(true) => {
                if let Err(e) = wr.write_all(&out).await {
                    break Err(e);
                }
                out.clear();
                if out.capacity() > KEEP {
                    out = Vec::new();
                }
            }
        }
    };
    sink.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn frames_pushed_in_a_burst_arrive_in_order_and_close_ends_the_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let sink = Sink::new();
        let writer = tokio::spawn(write_loop(sink.clone(), client.into_split().1));
        for i in 0..1000u32 {
            assert!(sink.push(|b| b.extend_from_slice(&i.to_be_bytes())));
        }
        sink.close();
        assert!(!sink.push_bytes(b"late"), "a closed sink takes nothing");
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        let want: Vec<u8> = (0..1000u32).flat_map(u32::to_be_bytes).collect();
        assert_eq!(got, want);
        writer.await.unwrap().unwrap();
    }
}
