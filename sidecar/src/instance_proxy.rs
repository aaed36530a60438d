//! The instance-proxy role: sits in front of one function instance, like
//! Knative's queue-proxy. It enforces `containerConcurrency` with a bounded
//! queue, applies the request deadline, buffers the request body (the function
//! host takes it whole), and reports metrics the autoscaler will read.

use crate::gateway::SCRIPT_NAME_HEADER;
use crate::guard::OnDrop;
use crate::http_util::{Body, error_reply, full};
use crate::metrics::{InstanceMetrics, RequestLabels, encode};
use crate::stats::Stats;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

/// A request with its body read, as the function sees it.
pub struct HandlerRequest {
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub peer: SocketAddr,
    /// The path prefix the gateway stripped (for `SCRIPT_NAME`).
    pub script_name: String,
}

/// What runs the function for one request.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, req: HandlerRequest) -> impl Future<Output = Response<Body>> + Send;
}

#[derive(Debug, Clone)]
pub struct InstanceProxyConfig {
    pub namespace: String,
    pub function: String,
    pub revision: String,
    /// Hard limit of requests in flight (`containerConcurrency`); 0 = unlimited,
    /// in which case `max_parallel` (the host's instance pool) bounds execution.
    pub container_concurrency: u32,
    pub max_parallel: usize,
    /// Request deadline, queueing included.
    pub timeout: Duration,
    /// Largest request body accepted.
    pub max_body: usize,
}

impl InstanceProxyConfig {
    /// Slots for concurrent execution.
    pub fn slots(&self) -> usize {
        match self.container_concurrency {
            0 => self.max_parallel.max(1),
            n => n as usize,
        }
    }
}

pub struct InstanceProxy<H> {
    handler: Arc<H>,
    config: InstanceProxyConfig,
    slots: Arc<Semaphore>,
    /// Requests admitted (queued or running); at most `queue_limit`.
    admitted: AtomicUsize,
    queue_limit: usize,
    metrics: InstanceMetrics,
    registry: Arc<Registry>,
    /// Load reported to the autoscaler (`/stats` on the admin port).
    stats: Stats,
}

impl<H: Handler> InstanceProxy<H> {
    /// With a `containerConcurrency`, the queue holds ten requests per slot, as
    /// Knative's queue-proxy breaker.
    pub fn new(handler: H, config: InstanceProxyConfig, metrics: InstanceMetrics, registry: Arc<Registry>) -> Self {
        let slots = config.slots();
        Self {
            handler: Arc::new(handler),
            slots: Arc::new(Semaphore::new(slots)),
            admitted: AtomicUsize::new(0),
            // Unlimited concurrency queues without bound, as Knative's
            // queue-proxy does without a breaker; the pool still bounds execution.
            queue_limit: if config.container_concurrency == 0 { usize::MAX } else { slots * 11 },
            config,
            metrics,
            registry,
            stats: Stats::new(Instant::now()),
        }
    }

    /// Serves the function's traffic.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let start = Instant::now();
        let trace = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let span = tracing::info_span!("instance", namespace = %self.config.namespace, function = %self.config.function, revision = %self.config.revision, traceparent = %trace);
        let resp = self.admit(req, peer).instrument(span).await;
        let c = &self.config;
        let labels = RequestLabels::new(&c.namespace, &c.function, &c.revision, resp.status().as_u16());
        self.metrics.record(&labels, start.elapsed());
        resp
    }

    async fn admit(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return error_reply(StatusCode::SERVICE_UNAVAILABLE, "instance queue is full");
        }
        self.stats.start(Instant::now());
        let _admitted = OnDrop::new(|| {
            self.stats.finish(Instant::now());
            self.admitted.fetch_sub(1, Ordering::AcqRel);
        });
        let deadline = self.config.timeout;
        match tokio::time::timeout(deadline, self.run(req, peer)).await {
            Ok(r) => r,
            Err(_) => error_reply(
                StatusCode::GATEWAY_TIMEOUT,
                format!("function {} did not answer within {deadline:?}", self.config.function),
            ),
        }
    }

    async fn run(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, self.config.max_body).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {} bytes", self.config.max_body),
                );
            }
        };
        self.metrics.queued.inc();
        let queued = OnDrop::new(|| {
            self.metrics.queued.dec();
        });
        // On a deadline the future is dropped and the slot freed, while the guest
        // is stopped by its own epoch deadline a tick later: the limit may be
        // exceeded by one request for at most that tick.
        let permit = self.slots.acquire().await;
        drop(queued);
        let Ok(_permit) = permit else {
            return error_reply(StatusCode::SERVICE_UNAVAILABLE, "instance is shutting down");
        };
        self.metrics.inflight.inc();
        let _inflight = OnDrop::new(|| {
            self.metrics.inflight.dec();
        });
        let script_name = parts.headers.get(SCRIPT_NAME_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        self.handler.call(HandlerRequest { parts, body, peer, script_name }).await
    }

    /// Waits until no request is admitted, for at most `within`; false if some
    /// still are. Requests that reach the proxy other than through its own port
    /// (a host's shared port) are not seen by that port's drain, so a stop waits
    /// here too.
    pub async fn wait_idle(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while self.admitted.load(Ordering::Acquire) > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The admin port: `/healthz`, `/metrics`, and `/stats` for the autoscaler.
    pub async fn admin(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/healthz" => Response::new(full("ok\n")),
            "/metrics" => Response::new(full(encode(&self.registry))),
            "/stats" => Response::new(full(self.stats.report(Instant::now()).to_json())),
            _ => error_reply(StatusCode::NOT_FOUND, "admin port serves /healthz, /metrics and /stats"),
        }
    }
}
