//! Multiplexed upstream connections: one connection per instance and protocol
//! per worker carries every caller's requests, each under a fresh request id
//! (callers' ids would collide on a shared connection). Responses are matched
//! back by that id, so answers may come in any order.

use crate::proto::{Codec, DecodeError, Kind};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How long opening an upstream connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames queued for an upstream connection's writer before callers wait.
const QUEUE: usize = 4096;

/// Why a call on an upstream connection failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The connection closed. `sent` says whether the request may have reached
    /// the instance: if not, sending it again elsewhere is always safe.
    #[error("connection to {addr} closed {when}", when = if *.sent { "before the answer" } else { "before sending" })]
    Closed { addr: SocketAddr, sent: bool },
}

impl CallError {
    /// Whether the request certainly did not reach the instance.
    pub fn unsent(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Closed { sent: false, .. })
    }
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<BytesMut>>>;

/// One connection to an instance.
pub struct Upstream {
    addr: SocketAddr,
    codec: Arc<dyn Codec>,
    tx: mpsc::Sender<Bytes>,
    pending: Pending,
    next_id: AtomicU64,
    closed: CancellationToken,
}

impl Upstream {
    async fn connect(addr: SocketAddr, codec: Arc<dyn Codec>) -> Result<Arc<Self>, CallError> {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        let stream = match connect {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(CallError::Connect { addr, source }),
            Err(_) => return Err(CallError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() }),
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(QUEUE);
        let up = Arc::new(Self {
            addr,
            codec,
            tx,
            pending: Pending::default(),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
        });
        tokio::spawn(write_loop(wr, rx, up.closed.clone()));
        tokio::spawn(read_loop(rd, up.clone()));
        Ok(up)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Sends `frame` (one request) under a fresh id; for a two-way request,
    /// waits for the response, which keeps the upstream's id (the caller puts
    /// its own back).
    pub async fn call(&self, mut frame: BytesMut, kind: Kind) -> Result<Option<BytesMut>, CallError> {
        let id = self.next_id();
        self.codec.set_request_id(&mut frame, id);
        if kind == Kind::OneWay {
            return self.send(frame).await.map(|_| None);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        // Forget the id however this call ends (answered, failed, timed out).
        let _forget = crate::guard::OnDrop::new(|| {
            lock(&self.pending).remove(&id);
        });
        self.send(frame).await?;
        rx.await.map(Some).map_err(|_| CallError::Closed { addr: self.addr, sent: true })
    }

    async fn send(&self, frame: BytesMut) -> Result<(), CallError> {
        if self.is_closed() {
            return Err(CallError::Closed { addr: self.addr, sent: false });
        }
        self.tx.send(frame.freeze()).await.map_err(|_| CallError::Closed { addr: self.addr, sent: false })
    }

    fn next_id(&self) -> u64 {
        let max = self.codec.max_request_id();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id > max { id % max + 1 } else { id }
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<BytesMut>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads responses and hands each to its caller; answers the instance's
/// heartbeats. Ends (failing every waiting call) on EOF, error or garbage.
async fn read_loop(mut rd: OwnedReadHalf, up: Arc<Upstream>) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let why = loop {
        match up.codec.decode(&buf) {
            Ok(f) => {
                let raw = buf.split_to(f.len);
                if f.kind == Kind::Response {
                    if let Some(waiter) = lock(&up.pending).remove(&f.request_id) {
                        let _ = waiter.send(raw); // the caller may have given up
                    }
                } else if f.heartbeat {
                    let _ = up.tx.try_send(Bytes::from(up.codec.heartbeat_reply(&f, &raw)));
                }
                continue;
            }
            Err(DecodeError::Incomplete) => {}
            Err(e) => break e.to_string(),
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => break "closed by the instance".to_string(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    tracing::debug!(upstream = %up.addr, protocol = up.codec.name(), reason = %why, "upstream connection ended");
    up.closed.cancel();
    lock(&up.pending).clear(); // wakes every waiting caller with "closed"
}

/// An instance address and a protocol.
type Key = (SocketAddr, &'static str);
/// A connection, or the connect in progress that all first callers wait on.
type Slot = Arc<OnceCell<Arc<Upstream>>>;

/// A worker's upstream connections, by instance address and protocol.
#[derive(Default)]
pub struct Pool {
    conns: Mutex<HashMap<Key, Slot>>,
}

impl Pool {
    /// The open connection to `addr` for `codec`, opening it if needed (also
    /// when the pooled one has closed since). Concurrent first callers share
    /// one connect.
    pub async fn get(&self, addr: SocketAddr, codec: &Arc<dyn Codec>) -> Result<Arc<Upstream>, CallError> {
        let key = (addr, codec.name());
        loop {
            let cell = self.conns.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
            let fresh = !cell.initialized();
            // Boxed: connecting is rare, and its state would otherwise sit in
            // every request's future.
            let got = cell.get_or_try_init(|| Box::pin(Upstream::connect(addr, codec.clone()))).await;
            match got {
                Ok(up) if !up.is_closed() => return Ok(up.clone()),
                Ok(_) => {
                    self.forget(key, &cell);
                    if fresh {
                        return Err(CallError::Closed { addr, sent: false }); // closed at once: give up
                    }
                }
                Err(e) => {
                    self.forget(key, &cell);
                    return Err(e);
                }
            }
        }
    }

    /// Drops `cell` from the pool if it is still the entry for `key`.
    fn forget(&self, key: Key, cell: &Slot) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.get(&key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            conns.remove(&key);
        }
    }
}

/// The writer of an upstream connection; a write error closes it.
async fn write_loop(wr: OwnedWriteHalf, rx: mpsc::Receiver<Bytes>, closed: CancellationToken) {
    tokio::select! {
        r = write_frames(wr, rx) => if let Err(e) = r {
            tracing::debug!(error = %e, "upstream write failed");
        },
        _ = closed.cancelled() => {}
    }
    closed.cancel();
}

/// Writes queued frames, several per write when they pile up.
pub async fn write_frames(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) -> std::io::Result<()> {
    let mut batch = Vec::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        wr.write_all(&batch).await?;
    }
    wr.shutdown().await
}
