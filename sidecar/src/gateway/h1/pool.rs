//! A worker's idle connections to instances, reused across requests and
//! client connections (the fast path's counterpart of hyper's client pool).

use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// An idle connection older than this is closed instead of reused (an
/// instance may have dropped it; hyper's pool uses the same 90 s).
const IDLE: Duration = Duration::from_secs(90);
/// Idle connections kept per instance.
const PER_INSTANCE: usize = 1024;
/// Every this many returns, connections idle too long are closed everywhere
/// (instances that went away leave theirs behind otherwise).
const SWEEP_EVERY: u32 = 1024;

#[derive(Default)]
pub struct Pool {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    idle: FxHashMap<SocketAddr, Vec<(TcpStream, Instant)>>,
    returns: u32,
}

impl Pool {
    /// The most recently used idle connection to `addr` that is fresh enough.
    pub fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let idle = inner.idle.get_mut(&addr)?;
        let now = Instant::now();
        while let Some((s, since)) = idle.pop() {
            if now.duration_since(since) < IDLE {
                return Some(s);
            }
        }
        None
    }

    /// Keeps `s` for the next request to `addr`.
    pub fn put(&self, addr: SocketAddr, s: TcpStream) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        inner.returns = inner.returns.wrapping_add(1);
        if inner.returns.is_multiple_of(SWEEP_EVERY) {
            for conns in inner.idle.values_mut() {
                conns.retain(|(_, since)| now.duration_since(*since) < IDLE);
            }
            inner.idle.retain(|_, conns| !conns.is_empty());
        }
        let idle = inner.idle.entry(addr).or_default();
        if idle.len() < PER_INSTANCE {
            idle.push((s, now));
        }
    }
}
