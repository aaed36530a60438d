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
use crate::gateway::{Gateway, LeaseError, Refusal};
use crate::proto::{Codec, Frame, Kind, Status};
use crate::resilience::{Policy, RouteState};
use crate::routing::FunctionRoute;
use crate::routing::ServiceError;
use bytes::{Bytes, BytesMut};
use metrics::{RpcLabels, RpcMetrics};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;
use upstream::{CallError, Pool};

/// Header that pins a tagged revision, as the `<tag>-<function>` host does for
/// HTTP: a Bolt header, a Dubbo attachment or gRPC metadata.
pub const TAG_HEADER: &str = "weft-tag";

/// One worker's RPC state: the shared gateway plus its own upstream pool.
pub struct RpcWorker {
    gateway: Arc<Gateway>,
    codecs: Vec<Arc<dyn Codec>>,
    pool: Pool,
    metrics: RpcMetrics,
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

/// Where a routed request goes, under which policy.
struct Route {
    function: Arc<FunctionRoute>,
    revision: String,
    state: Option<Arc<RouteState>>,
}

impl Route {
    fn policy(&self) -> &Policy {
        &self.function.policy
    }
}

impl RpcWorker {
    pub fn new(gateway: Arc<Gateway>, metrics: RpcMetrics) -> Self {
        let codecs = crate::proto::codecs();
        Self { gateway, codecs, pool: Pool::default(), metrics, bound: None }
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

    pub fn metrics(&self) -> &RpcMetrics {
        &self.metrics
    }

    /// Routes and forwards one request; returns the bytes to send back to the
    /// caller, if any (none for a one-way request).
    pub async fn handle(&self, codec: &Arc<dyn Codec>, frame: Frame, raw: Bytes) -> Option<Bytes> {
        let start = Instant::now();
        let (route, outcome) = match self.route(codec, &frame) {
            Ok(route) => {
                let span = tracing::info_span!("rpc", protocol = codec.name(), service = %frame.service, method = %frame.method, namespace = %route.function.namespace, function = %route.function.name, revision = %route.revision);
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
        Ok(Route { revision: revision.to_string(), state: self.gateway.route_state(r), function: r.clone() })
    }

    /// The route's rate limit and faults, then up to `attempts` tries: a try
    /// that never reached an instance is always repeated; one that may have
    /// only for a method the policy says is safe to resend.
    async fn forward(&self, codec: &Arc<dyn Codec>, frame: &Frame, raw: &Bytes, route: &Route) -> Outcome {
        if let Err(refusal) = self.gateway.guard(&route.function, route.state.as_deref()).await {
            return match refusal {
                Refusal::RateLimited(msg) => Outcome::Failed(Status::Overloaded, msg),
                Refusal::Aborted(msg) => Outcome::Failed(Status::Aborted, msg),
            };
        }
        let mut avoid = route.state.as_ref().map(|s| s.ejected(Instant::now())).unwrap_or_default();
        let attempts = route.policy().attempts.max(1);
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(codec, frame, raw, route, &mut avoid).await {
                Ok(answer) => return Outcome::Answer(answer),
                Err(f) => f,
            };
            let (status, msg, again) = match failure {
                Failure::Unsent(e) => (Status::Unavailable, e.to_string(), true),
                Failure::MaybeSent(status, msg) => (status, msg, route.policy().may_resend(&frame.method)),
                Failure::Final(status, msg) => return Outcome::Failed(status, msg),
            };
            if !again || attempt >= attempts {
                let msg = if attempt > 1 { format!("{attempt} tries failed, the last: {msg}") } else { msg };
                return Outcome::Failed(status, msg);
            }
            tracing::debug!(attempt, error = %msg, "trying again on another instance");
            self.metrics.retries.get_or_create(&metrics::ProtocolLabels::of(codec)).inc();
            attempt += 1;
        }
    }

    /// One try: a lease on an instance (not one in `avoid` — ejected, or
    /// failed by an earlier try — if others are ready), its connection, the
    /// call. The outcome counts towards the instance's health.
    async fn attempt(
        &self,
        codec: &Arc<dyn Codec>,
        frame: &Frame,
        raw: &Bytes,
        route: &Route,
        avoid: &mut Vec<Target>,
    ) -> Result<Option<BytesMut>, Failure> {
        let lease =
            self.gateway.lease(&route.function.namespace, &route.revision, avoid).await.map_err(Failure::from)?;
        let target = lease.target();
        if target.replica.is_some() {
            let msg = format!("revision {} serves HTTP only (a wasm function)", route.revision);
            return Err(Failure::Final(Status::BadRequest, msg));
        }
        let result = self.call(codec, frame, raw, target, route.policy().rpc_timeout()).await;
        drop(lease);
        if let Some(s) = &route.state
            && s.record(route.policy(), target, result.is_ok(), Instant::now())
        {
            tracing::warn!(instance = %target.addr, revision = %route.revision, "instance ejected after consecutive failures");
        }
        if result.is_err() {
            avoid.push(target);
        }
        result
    }

    /// Sends the request on the worker's connection to `target` and waits up
    /// to `timeout` for the answer, which gets the caller's request id back.
    async fn call(
        &self,
        codec: &Arc<dyn Codec>,
        frame: &Frame,
        raw: &Bytes,
        target: Target,
        timeout: Duration,
    ) -> Result<Option<BytesMut>, Failure> {
        let up = self.pool.get(target.addr, codec).await.map_err(Failure::from)?;
        let call = up.call(BytesMut::from(&raw[..]), frame.kind);
        let answer = match tokio::time::timeout(timeout, call).await {
            Ok(r) => r.map_err(Failure::from)?,
            Err(_) => {
                let msg = format!("no answer from {} within {timeout:?}", target.addr);
                return Err(Failure::MaybeSent(Status::Timeout, msg));
            }
        };
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

    fn record(
        &self,
        codec: &Arc<dyn Codec>,
        frame: &Frame,
        route: Option<&Route>,
        status: &'static str,
        took: Duration,
    ) {
        let labels = RpcLabels {
            protocol: codec.name(),
            namespace: route.map(|r| r.function.namespace.clone()).unwrap_or_default(),
            function: route.map(|r| r.function.name.clone()).unwrap_or_default(),
            revision: route.map(|r| r.revision.clone()).unwrap_or_default(),
            status,
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

/// How one try failed, which decides whether another may follow.
enum Failure {
    /// The request certainly did not reach the instance: safe to send again.
    Unsent(CallError),
    /// It may have reached it (timed out, or the connection closed after the
    /// write): sent again only if the method is safe to resend.
    MaybeSent(Status, String),
    Final(Status, String),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        if e.unsent() { Self::Unsent(e) } else { Self::MaybeSent(Status::Unavailable, e.to_string()) }
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

#[cfg(test)]
mod size {
    /// Each request's future is moved into its task: keep it small (the cold
    /// paths — activator holds, connects — are boxed).
    #[test]
    fn the_request_future_stays_small() {
        let gw = std::sync::Arc::new(crate::Gateway::new(
            crate::GatewayConfig { domain: "x".into() },
            Default::default(),
            crate::metrics::GatewayMetrics::register(&mut Default::default()),
            Default::default(),
        ));
        let w = gw.rpc_worker();
        let codec = crate::proto::codec("wrpc").unwrap();
        let fut = w.handle(&codec, crate::proto::Frame::default(), bytes::Bytes::new());
        let size = std::mem::size_of_val(&fut);
        println!("handle future: {size} bytes");
        assert!(size < 4096, "{size} bytes");
    }
}
