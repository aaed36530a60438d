//! One client connection of an RPC protocol: frames are read as they come
//! (several per read, or one across many) and each request is routed at once
//! on this task. Answers are appended to the connection's [`Sink`] in
//! whatever order they finish — by the upstream reader on the fast path, by a
//! request's own task on the slow one — so a slow service does not hold up
//! the others on a multiplexed connection.

use super::RpcWorker;
use super::metrics::{FrameErrorLabels, ProtocolLabels};
use super::read_ahead::ReadAhead;
use super::sink::{Sink, write_loop};
use crate::guard::OnDrop;
use crate::memo::Last;
use crate::proto::{Codec, DecodeError, DecodeMemo, Frame, Kind};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Requests one connection may have in flight; past it the sidecar stops
/// reading from the connection (TCP back-pressure) instead of queueing.
const MAX_IN_FLIGHT: usize = 10_000;

/// What a connection's requests share: where answers go, and how many are
/// still owed.
#[derive(Default)]
struct Shared {
    sink: Arc<Sink>,
    in_flight: AtomicUsize,
    /// Told when `in_flight` drops below the limit or to zero.
    space: Notify,
}

/// The right (and duty) to answer one request. Dropping it unanswered — a
/// one-way request, or a caller gone — still frees its place.
pub struct Reply {
    conn: Arc<Shared>,
}

impl Reply {
    fn new(conn: &Arc<Shared>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self { conn: conn.clone() }
    }

    /// A reply whose answer goes nowhere (for tests of the request path).
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        Self::new(&Arc::default())
    }

    pub fn send(self, frame: &[u8]) {
        self.conn.sink.push_bytes(frame); // false: the client is gone
    }

    /// Appends the answer written by `write` (which may rewrite it in place).
    pub fn send_with(self, write: impl FnOnce(&mut Vec<u8>)) {
        self.conn.sink.push(write);
    }
}

/// A request the sidecar makes itself (the HTTP bridge): its [`Reply`] puts
/// the answer here instead of on a client connection.
pub(super) struct Local {
    conn: Arc<Shared>,
}

impl Local {
    /// The place the answer lands, and the right to answer.
    pub(super) fn new() -> (Self, Reply) {
        let conn = Arc::new(Shared::default());
        let reply = Reply::new(&conn);
        (Self { conn }, reply)
    }

    /// Waits until the reply was sent (or dropped unanswered: empty).
    pub(super) async fn answer(self) -> Vec<u8> {
        loop {
            let told = self.conn.space.notified();
            if self.conn.in_flight.load(Ordering::Acquire) == 0 {
                break;
            }
            told.await;
        }
        let mut out = Vec::new();
        self.conn.sink.take(&mut out);
        out
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        let before = self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        if before == MAX_IN_FLIGHT || before == 1 {
            self.conn.space.notify_one();
        }
    }
}

/// Serves `stream`, whose first bytes (`head`) picked `codec`, until the
/// client closes it, sends a bad frame, or `shutdown` fires; then waits (up to
/// the drain timeout) for the answers of requests already read.
pub async fn serve(
    worker: Arc<RpcWorker>,
    codec: &'static dyn Codec,
    stream: TcpStream,
    head: BytesMut,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let gauge = worker.metrics().connections.get_or_create(&ProtocolLabels::of(codec)).clone();
    gauge.inc();
    let _open = OnDrop::new(move || {
        gauge.dec();
    });
    let (rd, wr) = stream.into_split();
    let shared = Arc::new(Shared::default());
    let writer = tokio::spawn(write_loop(shared.sink.clone(), wr));
    let conn = Conn { worker, codec, shared };
    if let Err(why) = conn.read_loop(rd, head, &shutdown).await {
        tracing::warn!(protocol = conn.codec.name(), %peer, error = %why, "closing client connection");
    }
    let drained = tokio::time::timeout(crate::serve::DRAIN_TIMEOUT, conn.drained()).await;
    if drained.is_err() {
        tracing::warn!(protocol = conn.codec.name(), %peer, "requests still in flight after the drain timeout");
    }
    conn.shared.sink.close();
    let _ = writer.await;
}

struct Conn {
    worker: Arc<RpcWorker>,
    codec: &'static dyn Codec,
    shared: Arc<Shared>,
}

impl Conn {
    /// Reads and dispatches frames. `Err` is a bad frame (the stream cannot
    /// continue); `Ok` a close by the client or by shutdown.
    async fn read_loop(
        &self,
        mut rd: tokio::net::tcp::OwnedReadHalf,
        mut buf: BytesMut,
        shutdown: &CancellationToken,
    ) -> Result<(), DecodeError> {
        let mut ahead = ReadAhead::default();
        let mut last = Last::default();
        let mut names = DecodeMemo::default();
        // When the bytes arrived: one clock read per read, shared by the
        // frames it brought (a batch of pipelined requests arrives at once).
        let mut arrived = Instant::now();
        loop {
            match self.codec.decode_with(&buf, &mut names) {
                Ok(frame) => {
                    let raw = buf.split_to(frame.len).freeze();
                    if frame.kind != Kind::Response && !frame.heartbeat {
                        self.room().await;
                    }
                    self.dispatch(frame, raw, arrived, &mut last);
                    continue;
                }
                Err(DecodeError::Incomplete) => {}
                Err(e) => {
                    let labels = FrameErrorLabels { protocol: self.codec.name(), reason: e.reason_label() };
                    self.worker.metrics().frame_errors.get_or_create(&labels).inc();
                    return Err(e);
                }
            }
            ahead.prepare(&mut buf);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                read = rd.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(n) => {
                        ahead.read(n);
                        arrived = Instant::now();
                    }
                },
            }
        }
    }

    /// Waits while the connection has its limit of requests in flight.
    /// Apart from `dispatch`, so the frame is not held across an await.
    async fn room(&self) {
        while self.shared.in_flight.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
            self.shared.space.notified().await;
        }
    }

    /// Answers heartbeats here; routes requests.
    fn dispatch(&self, frame: Frame, raw: Bytes, arrived: Instant, last: &mut Last) {
        if frame.kind == Kind::Response {
            return tracing::debug!(protocol = self.codec.name(), "ignoring a response frame from a client");
        }
        if frame.heartbeat {
            self.worker.metrics().heartbeats.get_or_create(&ProtocolLabels::of(self.codec)).inc();
            self.shared.sink.push_bytes(&self.codec.heartbeat_reply(&frame, &raw));
            return;
        }
        self.worker.dispatch(self.codec, frame, raw, Reply::new(&self.shared), arrived, last);
    }

    /// Waits until every request read has been answered (or dropped).
    async fn drained(&self) {
        while self.shared.in_flight.load(Ordering::Acquire) > 0 {
            self.shared.space.notified().await;
        }
    }
}
