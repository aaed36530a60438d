//! The RPC side of the gateway: requests of any [`Codec`] are routed by their
//! service (interface) name through the same route table, weighted split,
//! endpoints and activator as HTTP, and forwarded as bytes over multiplexed
//! upstream connections. What a codec does not need to know — routing,
//! splitting, retrying unsent requests, timeouts, metrics, access logs — lives
//! here once for every protocol.

pub mod downstream;
pub mod metrics;
pub mod upstream;

use crate::endpoints::Target;
use crate::gateway::{Gateway, LeaseError};
use crate::proto::{Codec, Frame, Kind, Status};
use crate::routing::ServiceError;
use bytes::{Bytes, BytesMut};
use metrics::{RpcLabels, RpcMetrics};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;
use upstream::{CallError, Pool};

/// Header (Bolt header map, wrpc has none yet) that pins a tagged revision,
/// as the `<tag>-<function>` host does for HTTP.
pub const TAG_HEADER: &str = "weft-tag";
/// How long a request may wait for its answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of a request that certainly did not reach an instance (a refused
/// connect, a connection closed before the write): safe for any method.
const ATTEMPTS: usize = 3;

/// One worker's RPC state: the shared gateway plus its own upstream pool.
pub struct RpcWorker {
    gateway: Arc<Gateway>,
    codecs: Vec<Arc<dyn Codec>>,
    pool: Pool,
    metrics: RpcMetrics,
    timeout: Duration,
    /// On a function's own address (interface-name addressing): the
    /// `(namespace, function)` that gets frames naming no declared interface.
    bound: Option<(String, String)>,
}

/// How a request ended, for the caller and the metrics.
enum Outcome {
    /// The instance's answer (`None` for a one-way request).
    Answer(Option<BytesMut>),
    Failed(Status, String),
}

/// Where a routed request goes.
struct Route {
    namespace: String,
    function: String,
    revision: String,
}

impl RpcWorker {
    pub fn new(gateway: Arc<Gateway>, metrics: RpcMetrics) -> Self {
        let codecs = crate::proto::codecs();
        Self { gateway, codecs, pool: Pool::default(), metrics, timeout: DEFAULT_TIMEOUT, bound: None }
    }

    /// A worker for function `name`'s own address: frames naming an interface
    /// nobody declared go to that function (a legacy service need not declare
    /// every interface it exports).
    pub fn new_bound(gateway: Arc<Gateway>, namespace: &str, name: &str) -> Self {
        let metrics = gateway.rpc_metrics().clone();
        Self { bound: Some((namespace.to_string(), name.to_string())), ..Self::new(gateway, metrics) }
    }

    /// The protocols this worker detects and serves.
    pub fn codecs(&self) -> &[Arc<dyn Codec>] {
        &self.codecs
    }

    /// How long a request may wait for its answer (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn metrics(&self) -> &RpcMetrics {
        &self.metrics
    }

    /// Routes and forwards one request; returns the bytes to send back to the
    /// caller, if any (none for a one-way request).
    pub async fn handle(&self, codec: &Arc<dyn Codec>, frame: Frame, raw: Bytes) -> Option<Bytes> {
        let start = Instant::now();
        let (route, outcome) = match self.route(codec, &frame) {
            Ok(route) => {
                let span = tracing::info_span!("rpc", protocol = codec.name(), service = %frame.service, method = %frame.method, namespace = %route.namespace, function = %route.function, revision = %route.revision);
                let outcome = self.forward(codec, &frame, &raw, &route).instrument(span).await;
                (Some(route), outcome)
            }
            Err((status, msg)) => (None, Outcome::Failed(status, msg)),
        };
        let status = match &outcome {
            Outcome::Answer(_) => "ok",
            Outcome::Failed(s, _) => s.as_str(),
        };
        self.record(codec, &frame, route.as_ref(), status, start.elapsed());
        self.reply(codec, &frame, &raw, outcome)
    }

    /// Resolves the service and picks a revision (by tag header or weight).
    fn route(&self, codec: &Arc<dyn Codec>, frame: &Frame) -> Result<Route, (Status, String)> {
        let routes = self.gateway.routes();
        let resolved = match routes.resolve_service(&frame.service, codec.name(), frame.header(TAG_HEADER)) {
            Ok(r) => r,
            Err(e) => {
                let fallback = self.bound.as_ref().filter(|_| matches!(e, ServiceError::Unknown(_)));
                match fallback.and_then(|(ns, name)| routes.function(ns, name)) {
                    Some(r) => r,
                    None => return Err((status_of(&e), e.to_string())),
                }
            }
        };
        let r = &resolved.route;
        let revision = resolved.pick_revision().ok_or_else(|| {
            (Status::Unavailable, format!("function {}/{} has no routable revision", r.namespace, r.name))
        })?;
        Ok(Route { namespace: r.namespace.clone(), function: r.name.clone(), revision: revision.to_string() })
    }

    async fn forward(&self, codec: &Arc<dyn Codec>, frame: &Frame, raw: &Bytes, route: &Route) -> Outcome {
        let mut last = String::new();
        let mut failed = Vec::new();
        for attempt in 1..=ATTEMPTS {
            match self.attempt(codec, frame, raw, route, &mut failed).await {
                Ok(answer) => return Outcome::Answer(answer),
                Err(Failure::Retry(e)) => {
                    tracing::debug!(attempt, error = %e, "request not sent; trying again");
                    self.metrics.retries.get_or_create(&metrics::ProtocolLabels::of(codec)).inc();
                    last = e.to_string();
                }
                Err(Failure::Final(status, msg)) => return Outcome::Failed(status, msg),
            }
        }
        Outcome::Failed(Status::Unavailable, format!("{} attempts failed, the last: {last}", ATTEMPTS))
    }

    /// One try: a lease on an instance (not one in `failed`, if others are
    /// ready), its connection, the call. Adds the instance to `failed` if the
    /// call did not reach it.
    async fn attempt(
        &self,
        codec: &Arc<dyn Codec>,
        frame: &Frame,
        raw: &Bytes,
        route: &Route,
        failed: &mut Vec<Target>,
    ) -> Result<Option<BytesMut>, Failure> {
        let lease = self.gateway.lease(&route.namespace, &route.revision, failed).await.map_err(Failure::from)?;
        let target = lease.target();
        failed.push(target); // popped again unless the try fails unsent
        if target.replica.is_some() {
            let msg = format!("revision {} serves HTTP only (a wasm function)", route.revision);
            return Err(Failure::Final(Status::BadRequest, msg));
        }
        let up = self.pool.get(target.addr, codec).await.map_err(Failure::from)?;
        let call = up.call(BytesMut::from(&raw[..]), frame.kind);
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(Failure::from)?,
            Err(_) => {
                let msg = format!("no answer from {} within {:?}", target.addr, self.timeout);
                return Err(Failure::Final(Status::Timeout, msg));
            }
        };
        drop(lease);
        failed.pop();
        Ok(answer.map(|mut resp| {
            codec.set_request_id(&mut resp, frame.request_id);
            resp
        }))
    }

    fn reply(&self, codec: &Arc<dyn Codec>, frame: &Frame, raw: &[u8], outcome: Outcome) -> Option<Bytes> {
        match outcome {
            Outcome::Answer(a) => a.map(BytesMut::freeze),
            Outcome::Failed(status, msg) => {
                tracing::debug!(protocol = codec.name(), service = %frame.service, status = status.as_str(), error = %msg, "request failed");
                (frame.kind == Kind::Request).then(|| Bytes::from(codec.error_reply(frame, raw, status, &msg)))
            }
        }
    }

    fn record(&self, codec: &Arc<dyn Codec>, frame: &Frame, route: Option<&Route>, status: &str, took: Duration) {
        let labels = RpcLabels {
            protocol: codec.name(),
            namespace: route.map(|r| r.namespace.clone()).unwrap_or_default(),
            function: route.map(|r| r.function.clone()).unwrap_or_default(),
            revision: route.map(|r| r.revision.clone()).unwrap_or_default(),
            status: status.to_string(),
        };
        self.metrics.record(&labels, took);
        tracing::info!(target: "weft::access", protocol = codec.name(), service = %frame.service, method = %frame.method, revision = %labels.revision, status, latency_ms = took.as_secs_f64() * 1e3);
    }
}

fn status_of(e: &ServiceError) -> Status {
    match e {
        ServiceError::Unknown(_) => Status::NoRoute,
        ServiceError::WrongProtocol { .. } => Status::BadRequest,
    }
}

/// How one attempt failed: worth another try, or not.
enum Failure {
    Retry(CallError),
    Final(Status, String),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        if e.unsent() { Self::Retry(e) } else { Self::Final(Status::Unavailable, e.to_string()) }
    }
}

impl From<LeaseError> for Failure {
    fn from(e: LeaseError) -> Self {
        let status = match e {
            LeaseError::NoInstance(_) => Status::Unavailable,
            LeaseError::TooManyWaiting(_) => Status::Overloaded,
            LeaseError::Timeout(_) => Status::Timeout,
        };
        Self::Final(status, e.to_string())
    }
}
