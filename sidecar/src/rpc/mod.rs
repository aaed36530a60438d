//! The RPC side of the gateway: requests of any [`Codec`] are routed by their
//! service (interface) name through the same route table, weighted split,
//! endpoints and activator as HTTP, and forwarded as bytes over multiplexed
//! upstream connections. What a codec does not need to know — routing,
//! splitting, retrying unsent requests, timeouts, metrics, access logs — lives
//! here once for every protocol.

pub mod bridge;
pub mod downstream;
mod inline;
pub mod metrics;
mod read_ahead;
mod sink;
pub mod upstream;

use crate::endpoints::Target;
use crate::gateway::{Gateway, LeaseError, Refusal};
use crate::memo::{self, Last, Route, Split};
use crate::proto::{Codec, Frame, Kind, Status};
use crate::resilience::RouteState;
use crate::routing::FunctionRoute;
use crate::routing::ServiceError;
use bytes::{Bytes, BytesMut};
use downstream::Reply;
use inline::Inline;
use metrics::{RpcLabels, RpcMetrics};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;
use upstream::{CallError, Pool};

pub use crate::proto::TAG_HEADER;

/// One worker's RPC state: the shared gateway plus its own upstream pool.
pub struct RpcWorker {
    gateway: Arc<Gateway>,
    codecs: &'static [&'static dyn Codec],
    pool: Pool,
    metrics: RpcMetrics,
    /// Request series by (protocol, outcome).
    series: crate::metrics::SeriesCache<(&'static str, &'static str)>,
    /// On a function's own address (interface-name addressing): the
    /// `(namespace, function)` that gets frames naming no declared interface.
    bound: Option<(String, String)>,
    /// The HTTP/1.1 fast path of connections detected as HTTP on this worker.
    h1: crate::gateway::H1,
    memo: memo::Memo,
}

/// How a request ended, for the caller and the metrics.
enum Outcome {
    /// The instance's answer (`None` for a one-way request).
    Answer(Option<BytesMut>),
    Failed(Status, String),
}

/// One routed request from a caller, and the right to answer it.
struct Call {
    codec: &'static dyn Codec,
    frame: Frame,
    raw: Bytes,
    route: Arc<Route>,
    start: Instant,
    reply: Reply,
}

/// What follows a failed try.
enum Step {
    /// Another try, on another instance; the string says why.
    Again(String),
    Done(Outcome),
}

impl RpcWorker {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        let (codecs, metrics) = (crate::proto::codecs(), gateway.rpc_metrics().clone());
        let h1 = crate::gateway::H1::new(gateway.clone());
        Self {
            gateway,
            codecs,
            pool: Pool::default(),
            metrics,
            series: Default::default(),
            bound: None,
            h1,
            memo: Default::default(),
        }
    }

    /// A worker for function `name`'s own address: frames naming an interface
    /// nobody declared go to that function (a legacy service need not declare
    /// every interface it exports).
    pub fn new_bound(gateway: Arc<Gateway>, namespace: &str, name: &str) -> Self {
        Self { bound: Some((namespace.to_string(), name.to_string())), ..Self::new(gateway) }
    }

    /// The protocols this worker detects and serves.
    pub fn codecs(&self) -> &[&'static dyn Codec] {
        self.codecs
    }

    pub fn metrics(&self) -> &RpcMetrics {
        &self.metrics
    }

    pub(crate) fn h1(&self) -> &crate::gateway::H1 {
        &self.h1
    }

    /// Routes one request and sees it answered through `reply`: at once when
    /// the sidecar answers it itself; on the fast path (no task of its own)
    /// when an instance has room and a connection is open; else on a task
    /// that may wait — for a cold start, a connect, a fault's delay.
    fn dispatch(
        self: &Arc<Self>,
        codec: &'static dyn Codec,
        frame: Frame,
        raw: Bytes,
        reply: Reply,
        start: Instant,
        last: &mut Last,
    ) {
        let route = match self.route(codec, &frame, last) {
            Ok(route) => route,
            Err((status, msg)) => {
                self.record(codec, &frame, None, status.as_str(), start.elapsed());
                if let Some(bytes) = self.reply(codec, &frame, &raw, Outcome::Failed(status, msg)) {
                    reply.send(&bytes);
                }
                return;
            }
        };
        let call = Call { codec, frame, raw, route, start, reply };
        if let Some(call) = self.try_fast(call) {
            let worker = self.clone();
            tokio::spawn(async move { worker.run(call).await });
        }
    }

    /// The fast path, if the call can take it; else the call back (for the
    /// slow path). The rate limit is applied here, once, for both paths.
    fn try_fast(self: &Arc<Self>, call: Call) -> Option<Call> {
        let now = call.start; // a clock read less per request
        if let Err(refusal) = self.gateway.admit(&call.route.function, call.route.state.as_deref(), now) {
            self.finish(call, refused(refusal));
            return None;
        }
        let policy = call.route.policy();
        if policy.fault.is_some() {
            return Some(call); // a delay waits: the slow path
        }
        let avoid = Gateway::ejected(call.route.state.as_deref(), now);
        let Ok(lease) = self.gateway.endpoints().acquire_avoiding(&call.route.key, &avoid) else {
            return Some(call); // held in the activator: the slow path
        };
        let target = lease.target();
        if target.replica.is_some() {
            return Some(call); // refused on the slow path
        }
        let deadline = call.start + policy.rpc_timeout();
        let span = self.span(&call);
        let protocol = call.codec.name();
        let fast = Box::new(Inline { worker: self.clone(), call, lease, target, deadline, span });
        self.pool.start(target.addr, protocol, fast).err().map(|fast| fast.call)
    }

    /// The slow path, on a task of its own (the rate limit was applied).
    async fn run(self: Arc<Self>, call: Call) {
        let span = self.span(&call);
        let outcome = async {
            match self.gateway.fault(&call.route.function).await {
                Err(refusal) => refused(refusal),
                Ok(()) => self.forward(&call, 1, Vec::new()).await,
            }
        }
        .instrument(span)
        .await;
        self.finish(call, outcome);
    }

    fn span(&self, call: &Call) -> tracing::Span {
        let (frame, r) = (&call.frame, &call.route);
        tracing::info_span!("rpc", protocol = call.codec.name(), service = %frame.service(), method = %frame.method(), namespace = %r.function.namespace, function = %r.function.name, revision = %r.revision)
    }

    /// Resolves the service and picks a revision (by tag header or weight).
    /// A request with no tag to the service `last` remembers skips the
    /// lookups; otherwise what it resolves to is remembered there.
    fn route(&self, codec: &'static dyn Codec, frame: &Frame, last: &mut Last) -> Result<Arc<Route>, (Status, String)> {
        let tag = frame.header(TAG_HEADER);
        let generation = self.gateway.routes_generation();
        if tag.is_none()
            && let Some(picked) = last.split(generation, frame.service()).and_then(Split::pick)
        {
            return Ok(picked.clone());
        }
        let routes = self.gateway.routes();
        let resolved = match routes.resolve_service(frame.service(), codec.name(), tag) {
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
        let key = memo::Key { table: &routes, route: r, protocol: codec.name() };
        if let Some(revision) = &resolved.tag_revision {
            return Ok(self.memo.route(key, revision, self));
        }
        let split = self.memo.split(key, self);
        let Some(picked) = split.pick().cloned() else {
            return Err((Status::Unavailable, format!("function {}/{} has no routable revision", r.namespace, r.name)));
        };
        if tag.is_none() {
            last.remember(generation, frame.service(), split);
        }
        Ok(picked)
    }

    /// Tries from try number `attempt` on, up to the policy's `attempts`: a
    /// try that never reached an instance is always repeated; one that may
    /// have only for a method the policy says is safe to resend. Instances in
    /// `failed` and those ejected now are avoided.
    async fn forward(&self, call: &Call, mut attempt: u32, failed: Vec<Target>) -> Outcome {
        let mut avoid = Gateway::ejected(call.route.state.as_deref(), Instant::now());
        avoid.extend(failed);
        loop {
            let failure = match self.attempt(call, &mut avoid).await {
                Ok(answer) => return Outcome::Answer(answer),
                Err(f) => f,
            };
            match self.after_failure(call, failure, attempt) {
                Step::Done(outcome) => return outcome,
                Step::Again(msg) => tracing::debug!(attempt, error = %msg, "trying again on another instance"),
            }
            attempt += 1;
        }
    }

    /// Whether try number `attempt`, which failed, is followed by another.
    fn after_failure(&self, call: &Call, failure: Failure, attempt: u32) -> Step {
        let policy = call.route.policy();
        let (status, msg, again) = match failure {
            Failure::Unsent(e) => (Status::Unavailable, e.to_string(), true),
            Failure::MaybeSent(status, msg) => (status, msg, policy.may_resend(call.frame.method())),
            Failure::Final(status, msg) => return Step::Done(Outcome::Failed(status, msg)),
        };
        if !again || attempt >= policy.attempts.max(1) {
            let msg = if attempt > 1 { format!("{attempt} tries failed, the last: {msg}") } else { msg };
            return Step::Done(Outcome::Failed(status, msg));
        }
        self.metrics.retries.get_or_create(&metrics::ProtocolLabels::of(call.codec)).inc();
        Step::Again(msg)
    }

    /// A fast-path call's one try failed: it ends, or goes on from its second
    /// try on the slow path (avoiding the instance that failed it).
    fn after_first_try(self: &Arc<Self>, call: Call, failure: Failure, failed: Target) {
        match self.after_failure(&call, failure, 1) {
            Step::Done(outcome) => self.finish(call, outcome),
            Step::Again(msg) => {
                tracing::debug!(attempt = 1, error = %msg, "trying again on another instance");
                let worker = self.clone();
                tokio::spawn(async move {
                    let span = worker.span(&call);
                    let outcome = worker.forward(&call, 2, vec![failed]).instrument(span).await;
                    worker.finish(call, outcome);
                });
            }
        }
    }

    /// One try: a lease on an instance (not one in `avoid` — ejected, or
    /// failed by an earlier try — if others are ready), its connection, the
    /// call. The outcome counts towards the instance's health.
    async fn attempt(&self, call: &Call, avoid: &mut Vec<Target>) -> Result<Option<BytesMut>, Failure> {
        let route = &call.route;
        let (ns, revision) = (&route.function.namespace, &route.revision);
        let lease = self.gateway.lease(ns, revision, &route.key, avoid).await.map_err(Failure::from)?;
        let target = lease.target();
        if target.replica.is_some() {
            let msg = format!("revision {} serves HTTP only (a wasm function)", route.revision);
            return Err(Failure::Final(Status::BadRequest, msg));
        }
        let result = self.call(call, target, route.policy().rpc_timeout()).await;
        drop(lease);
        Gateway::record_health(&route.function, route.state.as_deref(), &route.revision, target, result.is_ok());
        if result.is_err() {
            avoid.push(target);
        }
        result
    }

    /// Sends the request on the worker's connection to `target` and waits up
    /// to `timeout` for the answer, which gets the caller's request id back.
    async fn call(&self, call: &Call, target: Target, timeout: Duration) -> Result<Option<BytesMut>, Failure> {
        let up = self.pool.get(target.addr, call.codec).await.map_err(Failure::from)?;
        let answer = match tokio::time::timeout(timeout, up.call(&call.raw, call.frame.kind)).await {
            Ok(r) => r.map_err(Failure::from)?,
            Err(_) => {
                let msg = format!("no answer from {} within {timeout:?}", target.addr);
                return Err(Failure::MaybeSent(Status::Timeout, msg));
            }
        };
        Ok(answer.map(|mut resp| {
            call.codec.set_request_id(&mut resp, call.frame.request_id);
            resp
        }))
    }

    /// Records the call's outcome and answers the caller.
    fn finish(&self, call: Call, outcome: Outcome) {
        let status = match &outcome {
            Outcome::Answer(_) => "ok",
            Outcome::Failed(s, _) => s.as_str(),
        };
        self.record(call.codec, &call.frame, Some(&call.route), status, call.start.elapsed());
        if let Some(bytes) = self.reply(call.codec, &call.frame, &call.raw, outcome) {
            call.reply.send(&bytes);
        }
    }

    /// Records a fast-path answer and copies it to the caller under the
    /// caller's request id (`None`: a one-way request was sent).
    /// `now`: when the answer was read (shared by the answers of one read).
    fn finish_answered(&self, call: Call, resp: Option<&[u8]>, now: Instant) {
        let Call { codec, frame, route, start, reply, .. } = call;
        self.record(codec, &frame, Some(&route), "ok", now.saturating_duration_since(start));
        if let Some(resp) = resp {
            reply.send_with(|b| {
                let at = b.len();
                b.extend_from_slice(resp);
                codec.set_request_id(&mut b[at..], frame.request_id);
            });
        }
    }

    fn reply(&self, codec: &'static dyn Codec, frame: &Frame, raw: &[u8], outcome: Outcome) -> Option<Bytes> {
        match outcome {
            Outcome::Answer(a) => a.map(BytesMut::freeze),
            Outcome::Failed(status, msg) => {
                tracing::debug!(protocol = codec.name(), service = %frame.service(), status = status.as_str(), error = %msg, "request failed");
                (frame.kind == Kind::Request).then(|| Bytes::from(codec.error_reply(frame, raw, status, &msg)))
            }
        }
    }

    fn record(
        &self,
        codec: &'static dyn Codec,
        frame: &Frame,
        route: Option<&Route>,
        status: &'static str,
        took: Duration,
    ) {
        let (ns, function, revision) =
            route.map_or(("", "", ""), |r| (&*r.function.namespace, &*r.function.name, &*r.revision));
        match route {
            // The common case: the revision's series is at hand.
            Some(r) if status == "ok" => r.ok.record(took),
            _ => self.series.record(ns, revision, (codec.name(), status), took, || {
                self.metrics.series(&labels(codec.name(), ns, function, revision, status))
            }),
        }
        tracing::info!(target: "weft::access", protocol = codec.name(), service = %frame.service(), method = %frame.method(), revision, status, latency_ms = took.as_secs_f64() * 1e3);
    }
}

impl memo::Fill for RpcWorker {
    fn state(&self, route: &FunctionRoute) -> Option<Arc<RouteState>> {
        self.gateway.route_state(route)
    }

    fn ok_series(&self, protocol: &'static str, route: &FunctionRoute, revision: &str) -> crate::metrics::Series {
        self.metrics.series(&labels(protocol, &route.namespace, &route.name, revision, "ok"))
    }
}

fn labels(protocol: &'static str, ns: &str, function: &str, revision: &str, status: &'static str) -> RpcLabels {
    let (namespace, function, revision) = (ns.to_string(), function.to_string(), revision.to_string());
    RpcLabels { protocol, namespace, function, revision, status }
}

/// A refusal by the route's rate limit or fault injection, as an outcome.
fn refused(refusal: Refusal) -> Outcome {
    match refusal {
        Refusal::RateLimited(msg) => Outcome::Failed(Status::Overloaded, msg),
        Refusal::Aborted(msg) => Outcome::Failed(Status::Aborted, msg),
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
    /// A slow-path request's future is moved into its task: keep it small (the
    /// cold paths — activator holds, connects — are boxed).
    #[test]
    fn the_slow_path_future_stays_small() {
        let gw = std::sync::Arc::new(crate::Gateway::new(
            crate::GatewayConfig { domain: "x".into() },
            Default::default(),
            crate::metrics::GatewayMetrics::register(&mut Default::default()),
            Default::default(),
        ));
        let w = gw.rpc_worker();
        let call = super::Call {
            codec: crate::proto::codec("wrpc").unwrap(),
            frame: crate::proto::Frame::default(),
            raw: bytes::Bytes::new(),
            route: super::Route::detached(),
            start: tokio::time::Instant::now(),
            reply: super::downstream::Reply::detached(),
        };
        let fut = w.run(call);
        let size = std::mem::size_of_val(&fut);
        println!("slow path future: {size} bytes");
        assert!(size < 4096, "{size} bytes");
    }
}
