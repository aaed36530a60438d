//! The accept loop shared by the roles: HTTP/1.1 and HTTP/2 (prior knowledge or
//! h2c) on one port, with graceful shutdown that lets requests in flight finish.

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http_util::Body;

/// How long shutdown waits for requests in flight before closing connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `handle` on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve<F, Fut>(listener: TcpListener, handle: F, shutdown: CancellationToken)
where
    F: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let h = handle.clone();
        let svc = service_fn(move |req| {
            let h = h.clone();
            async move { Ok::<_, Infallible>(h(req, peer).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

/// One listening socket on `addr` (bound exclusively: a second platform on the
/// same port fails instead of silently sharing it) and `n - 1` duplicates of it,
/// one per worker. Every worker accepts from the same socket; with one thread per
/// core the wake-up of an idle worker that finds nothing is cheap.
pub fn bind_workers(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = std::net::TcpListener::bind(addr)?;
    first.set_nonblocking(true)?;
    let mut all = Vec::with_capacity(n.max(1));
    for _ in 1..n.max(1) {
        all.push(first.try_clone()?);
    }
    all.push(first);
    Ok(all)
}

/// Thread-per-core serving: one thread per listener, each with a single-threaded
/// runtime and its own handler from `make` (so per-worker state such as a client
/// connection pool never crosses threads). Measured on the gateway: +16 % req/s
/// over one work-stealing runtime, whose cross-thread wake-ups dominated the
/// profile. Returns when every worker has drained after `shutdown`.
pub async fn serve_workers<M, F, Fut>(listeners: Vec<std::net::TcpListener>, make: M, shutdown: CancellationToken)
where
    M: Fn() -> F,
    F: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    let mut threads = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let (handle, token) = (make(), shutdown.clone());
        let spawned = std::thread::Builder::new().name(format!("weft-worker-{i}")).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return tracing::error!(error = %e, "worker runtime"),
            };
            rt.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(l) => serve(l, handle, token).await,
                    Err(e) => tracing::error!(error = %e, "worker listener"),
                }
            });
        });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "spawn worker thread"),
        }
    }
    let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
}

/// Worker threads to use: one per available core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
