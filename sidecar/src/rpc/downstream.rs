//! One client connection of an RPC protocol: frames are read as they come
//! (several per read, or one across many), each request is handled on its own
//! task so a slow service does not hold up the others on a multiplexed
//! connection, and answers are written back in whatever order they finish.

use super::RpcWorker;
use super::metrics::{FrameErrorLabels, ProtocolLabels};
use super::upstream::write_frames;
use crate::guard::OnDrop;
use crate::proto::{Codec, DecodeError, Frame, Kind};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Requests one connection may have in flight; past it the sidecar stops
/// reading from the connection (TCP back-pressure) instead of queueing.
const MAX_IN_FLIGHT: u32 = 10_000;
/// Answers queued for the connection's writer.
const QUEUE: usize = 4096;

/// Serves `stream`, whose first bytes (`head`) picked `codec`, until the
/// client closes it, sends a bad frame, or `shutdown` fires; then waits (up to
/// the drain timeout) for the answers of requests already read.
pub async fn serve(
    worker: Arc<RpcWorker>,
    codec: Arc<dyn Codec>,
    stream: TcpStream,
    head: BytesMut,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let gauge = worker.metrics().connections.get_or_create(&ProtocolLabels::of(&codec)).clone();
    gauge.inc();
    let _open = OnDrop::new(move || {
        gauge.dec();
    });
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::spawn(write_frames(wr, rx));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize));
    let conn = Conn { worker, codec, tx, in_flight: in_flight.clone() };
    if let Err(why) = conn.read_loop(rd, head, &shutdown).await {
        tracing::warn!(protocol = conn.codec.name(), %peer, error = %why, "closing client connection");
    }
    let drained = tokio::time::timeout(crate::serve::DRAIN_TIMEOUT, in_flight.acquire_many(MAX_IN_FLIGHT)).await;
    if drained.is_err() {
        tracing::warn!(protocol = conn.codec.name(), %peer, "requests still in flight after the drain timeout");
    }
    drop(conn);
    let _ = writer.await;
}

struct Conn {
    worker: Arc<RpcWorker>,
    codec: Arc<dyn Codec>,
    tx: mpsc::Sender<Bytes>,
    in_flight: Arc<Semaphore>,
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
        loop {
            match self.codec.decode(&buf) {
                Ok(frame) => {
                    let raw = buf.split_to(frame.len).freeze();
                    self.dispatch(frame, raw).await;
                    continue;
                }
                Err(DecodeError::Incomplete) => {}
                Err(e) => {
                    let labels = FrameErrorLabels { protocol: self.codec.name(), reason: e.reason_label() };
                    self.worker.metrics().frame_errors.get_or_create(&labels).inc();
                    return Err(e);
                }
            }
            buf.reserve(8 * 1024);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                read = rd.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                },
            }
        }
    }

    /// Answers heartbeats here; hands requests to their own task.
    async fn dispatch(&self, frame: Frame, raw: Bytes) {
        if frame.kind == Kind::Response {
            return tracing::debug!(protocol = self.codec.name(), "ignoring a response frame from a client");
        }
        if frame.heartbeat {
            self.worker.metrics().heartbeats.get_or_create(&ProtocolLabels::of(&self.codec)).inc();
            let _ = self.tx.send(Bytes::from(self.codec.heartbeat_reply(&frame, &raw))).await;
            return;
        }
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else { return };
        let (worker, codec, tx) = (self.worker.clone(), self.codec.clone(), self.tx.clone());
        tokio::spawn(async move {
            if let Some(answer) = worker.handle(&codec, frame, raw).await {
                let _ = tx.send(answer).await; // the client may be gone
            }
            drop(permit);
        });
    }
}
