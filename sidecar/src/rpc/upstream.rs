//! Multiplexed upstream connections: one connection per instance and protocol
//! per worker carries every caller's requests, each under a fresh request id
//! (callers' ids would collide on a shared connection). Responses are matched
//! back by that id, so answers may come in any order.
//!
//! A request waits in one of two ways. On the fast path ([`Upstream::start`])
//! nothing waits: the pending entry holds the whole call, and the reader hands
//! the answer straight to the caller's connection; a sweeper fails entries
//! past their deadline. On the slow path ([`Upstream::call`]) a task awaits
//! the answer on a oneshot channel under its own timeout.

use super::inline::Inline;
use super::read_ahead::ReadAhead;
use super::sink::{Sink, write_loop};
use crate::proto::{Codec, DecodeError, Kind};
use bytes::{Buf, BytesMut};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Notify, OnceCell, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long opening an upstream connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The sweeper looks at least this often while fast-path calls wait, so a
/// deadline shortened by a route update is still kept to within this.
const SWEEP_AT_LEAST: Duration = Duration::from_millis(250);

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

/// Who gets the answer to a request in flight.
enum Waiter {
    /// A task awaiting it (the slow path).
    Task(oneshot::Sender<BytesMut>),
    /// The call itself (the fast path).
    Inline(Box<Inline>),
}

#[derive(Default)]
struct Pending {
    by_id: FxHashMap<u64, Waiter>,
    /// How many of `by_id` are fast-path calls, which the sweeper times out.
    inline: usize,
}

impl Pending {
    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.by_id.remove(&id);
        if matches!(w, Some(Waiter::Inline(_))) {
            self.inline -= 1;
        }
        w
    }

    /// Removes the fast-path calls whose deadline is past, and says when the
    /// next one falls due.
    #[allow(clippy::vec_box)] // boxed in the map already; failing takes the box
    fn expired(&mut self, now: Instant) -> (Vec<Box<Inline>>, Option<Instant>) {
        let due = |w: &Waiter| matches!(w, Waiter::Inline(c) if c.deadline <= now);
        let calls: Vec<Box<Inline>> = self
            .by_id
            .extract_if(|_, w| due(w))
            .filter_map(|(_, w)| match w {
                Waiter::Inline(c) => Some(c),
                Waiter::Task(_) => None,
            })
            .collect();
        self.inline -= calls.len();
        let next = self
            .by_id
            .values()
            .filter_map(|w| match w {
                Waiter::Inline(c) => Some(c.deadline),
                Waiter::Task(_) => None,
            })
            .min();
        (calls, next)
    }
}

/// One connection to an instance.
pub struct Upstream {
    addr: SocketAddr,
    codec: &'static dyn Codec,
    out: Arc<Sink>,
    pending: Mutex<Pending>,
    /// Told when the first fast-path call starts waiting.
    armed: Arc<Notify>,
    next_id: AtomicU64,
    closed: CancellationToken,
    /// `closed`, read per request without the token's lock.
    is_closed: AtomicBool,
}

impl Upstream {
    async fn connect(addr: SocketAddr, codec: &'static dyn Codec) -> Result<Arc<Self>, CallError> {
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        let stream = match connect {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(CallError::Connect { addr, source }),
            Err(_) => return Err(CallError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() }),
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let up = Arc::new(Self {
            addr,
            codec,
            out: Sink::new(),
            pending: Mutex::default(),
            armed: Arc::default(),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            is_closed: AtomicBool::new(false),
        });
        tokio::spawn(write_side(up.out.clone(), wr, up.closed.clone()));
        tokio::spawn(read_loop(rd, up.clone()));
        tokio::spawn(sweep(Arc::downgrade(&up), up.armed.clone(), up.closed.clone()));
        Ok(up)
    }

    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `frame` (one request) under a fresh id; for a two-way request,
    /// waits for the response, which keeps the upstream's id (the caller puts
    /// its own back).
    pub async fn call(&self, frame: &[u8], kind: Kind) -> Result<Option<BytesMut>, CallError> {
        let id = self.next_id();
        if kind == Kind::OneWay {
            return self.send(frame, id).map(|_| None);
        }
        let (tx, rx) = oneshot::channel();
        self.lock().by_id.insert(id, Waiter::Task(tx));
        // Forget the id however this call ends (answered, failed, timed out).
        let _forget = crate::guard::OnDrop::new(|| {
            self.lock().remove(id);
        });
        self.send(frame, id)?;
        rx.await.map(Some).map_err(|_| CallError::Closed { addr: self.addr, sent: true })
    }

    /// Sends a fast-path call's request; its answer (or failure) is handed to
    /// the call by the reader or the sweeper. Gives the call back if the
    /// connection has closed, so it can take the slow path.
    pub(super) fn start(&self, call: Box<Inline>) -> Result<(), Box<Inline>> {
        let id = self.next_id();
        if call.call.frame.kind == Kind::OneWay {
            return match self.send(&call.call.raw, id) {
                Ok(()) => {
                    call.answer(None, Instant::now());
                    Ok(())
                }
                Err(_) => Err(call),
            };
        }
        // Queued and entered under the pending lock, which the reader takes
        // to find a call: it cannot see the answer before the entry. (A close
        // meanwhile fails the entry once the lock is free.)
        let mut pending = self.lock();
        if self.send(&call.call.raw, id).is_err() {
            return Err(call); // closed before sending
        }
        pending.by_id.insert(id, Waiter::Inline(call));
        pending.inline += 1;
        let first = pending.inline == 1;
        drop(pending);
        if first {
            self.armed.notify_one();
        }
        Ok(())
    }

    /// Queues `frame` for the writer with its request id set to `id`.
    fn send(&self, frame: &[u8], id: u64) -> Result<(), CallError> {
        let codec = &self.codec;
        let queued = !self.is_closed()
            && self.out.push(|b| {
                let at = b.len();
                b.extend_from_slice(frame);
                codec.set_request_id(&mut b[at..], id);
            });
        if queued { Ok(()) } else { Err(CallError::Closed { addr: self.addr, sent: false }) }
    }

    fn next_id(&self) -> u64 {
        let max = self.codec.max_request_id();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id > max { id % max + 1 } else { id }
    }

    /// Closes the connection and fails everything waiting on it.
    fn shut(&self) {
        self.is_closed.store(true, Ordering::Release);
        self.closed.cancel();
        self.out.close();
        let pending = std::mem::take(&mut *self.lock());
        for (_, waiter) in pending.by_id {
            // A task waiter wakes with "closed" as its sender drops.
            if let Waiter::Inline(call) = waiter {
                call.fail(CallError::Closed { addr: self.addr, sent: true }.into());
            }
        }
    }
}

/// Reads responses and hands each to its caller; answers the instance's
/// heartbeats. Ends (failing every waiting call) on EOF, error or garbage.
async fn read_loop(mut rd: OwnedReadHalf, up: Arc<Upstream>) {
    let mut buf = BytesMut::new();
    let mut ahead = ReadAhead::default();
    // One clock read per read, shared by the answers it brought.
    let mut arrived = Instant::now();
    let why = loop {
        match up.codec.decode(&buf) {
            Ok(f) => {
                let waiter = (f.kind == Kind::Response).then(|| up.lock().remove(f.request_id)).flatten();
                let split_off = matches!(waiter, Some(Waiter::Task(_)));
                match waiter {
                    Some(Waiter::Inline(call)) => call.answer(Some(&buf[..f.len]), arrived),
                    // The caller may have given up.
                    Some(Waiter::Task(tx)) => drop(tx.send(buf.split_to(f.len))),
                    None if f.heartbeat && f.kind != Kind::Response => {
                        let reply = up.codec.heartbeat_reply(&f, &buf[..f.len]);
                        up.out.push_bytes(&reply);
                    }
                    None => {}
                }
                if !split_off {
                    buf.advance(f.len);
                }
                continue;
            }
            Err(DecodeError::Incomplete) => {}
            Err(e) => break e.to_string(),
        }
        ahead.prepare(&mut buf);
        tokio::select! {
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) => break "closed by the instance".to_string(),
                Ok(n) => {
                    ahead.read(n);
                    arrived = Instant::now();
                }
                Err(e) => break e.to_string(),
            },
            _ = up.closed.cancelled() => break "closed after a failed write".to_string(),
        }
    };
    tracing::debug!(upstream = %up.addr, protocol = up.codec.name(), reason = %why, "upstream connection ended");
    up.shut();
}

/// Fails fast-path calls whose deadline passed. Sleeps while none waits.
async fn sweep(up: Weak<Upstream>, armed: Arc<Notify>, closed: CancellationToken) {
    loop {
        let Some(strong) = up.upgrade() else { return };
        let (expired, next) = strong.lock().expired(Instant::now());
        for call in expired {
            let msg = format!("no answer from {} within {:?}", strong.addr, call.timeout());
            call.fail(super::Failure::MaybeSent(crate::proto::Status::Timeout, msg));
        }
        drop(strong); // the sweeper must not keep the connection alive
        let wake = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.min(Instant::now() + SWEEP_AT_LEAST)).await,
                None => armed.notified().await,
            }
        };
        tokio::select! {
            _ = wake => {}
            _ = closed.cancelled() => return,
        }
    }
}

/// The writer of an upstream connection; a failed write closes the
/// connection (the reader then fails what waits on it).
async fn write_side(out: Arc<Sink>, wr: tokio::net::tcp::OwnedWriteHalf, closed: CancellationToken) {
    if let Err(e) = write_loop(out, wr).await {
        tracing::debug!(error = %e, "upstream write failed");
    }
    closed.cancel();
}

/// An instance address and a protocol.
type Key = (SocketAddr, &'static str);
/// A connection, or the connect in progress that all first callers wait on.
type Slot = Arc<OnceCell<Arc<Upstream>>>;

/// A worker's upstream connections, by instance address and protocol.
#[derive(Default)]
pub struct Pool {
    conns: Mutex<FxHashMap<Key, Slot>>,
}

impl Pool {
    /// Starts a fast-path call on the open connection to `addr` for
    /// `protocol`; gives the call back if there is none now (or it closed).
    pub(super) fn start(&self, addr: SocketAddr, protocol: &'static str, call: Box<Inline>) -> Result<(), Box<Inline>> {
        // Started under the pool's lock rather than on a clone of the
        // connection: two reference-count updates less per request.
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        match conns.get(&(addr, protocol)).and_then(|slot| slot.get()) {
            Some(up) if !up.is_closed() => up.start(call),
            _ => Err(call),
        }
    }

    /// The open connection to `addr` for `codec`, opening it if needed (also
    /// when the pooled one has closed since). Concurrent first callers share
    /// one connect.
    pub async fn get(&self, addr: SocketAddr, codec: &'static dyn Codec) -> Result<Arc<Upstream>, CallError> {
        let key = (addr, codec.name());
        loop {
            let cell = self.conns.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
            let fresh = !cell.initialized();
            // Boxed: connecting is rare, and its state would otherwise sit in
            // every request's future.
            let got = cell.get_or_try_init(|| Box::pin(Upstream::connect(addr, codec))).await;
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
