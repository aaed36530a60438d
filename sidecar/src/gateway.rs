//! The gateway role: routes each request by host or path to a function, picks a
//! revision by weight (or by tag), then an instance, and forwards the request.
//! Bodies stream through in both directions; nothing is buffered.

use crate::activator::{Activation, Activator};
use crate::endpoints::{Endpoints, REPLICA_HEADER, Target, revision_key};
use crate::grpc;
use crate::http_util::{Body, error_reply, full, request_host};
use crate::metrics::{GatewayMetrics, RequestLabels, encode};
use crate::resilience::RouteState;
use crate::routing::{Resolved, RouteTable};
use crate::trace::{ensure_traceparent, trace_id};
use arc_swap::ArcSwap;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Header telling the instance which path prefix the gateway stripped
/// (it becomes the guest's `SCRIPT_NAME`).
pub const SCRIPT_NAME_HEADER: &str = "weft-script-name";

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward. As
/// `HeaderName`s, not strings: a string is parsed again on every removal.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const SCRIPT_NAME: HeaderName = HeaderName::from_static(SCRIPT_NAME_HEADER);
const REPLICA: HeaderName = HeaderName::from_static(REPLICA_HEADER);

mod admission;
pub mod h1;
pub use admission::{LeaseError, Refusal};
pub(crate) use h1::H1;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Domain of host routes, `localhost` locally.
    pub domain: String,
}

/// State shared by all gateway workers: routes, endpoints and metrics.
pub struct Gateway {
    routes: ArcSwap<RouteTable>,
    /// Counts route-table updates: a connection that remembers where its
    /// last request went checks this one number to know it still holds.
    generation: std::sync::atomic::AtomicU64,
    endpoints: Arc<Endpoints>,
    metrics: GatewayMetrics,
    registry: Arc<Registry>,
    activator: Activator,
    /// Set once by the platform; without it a revision with no instance is a 503.
    activation: OnceLock<Arc<dyn Activation>>,
    /// Rate-limit buckets and instance health of routes whose policy keeps
    /// state, by `(namespace, function)`; they outlive route-table updates.
    states: std::sync::Mutex<HashMap<(String, String), Arc<RouteState>>>,
}

/// One worker's view of the gateway: the shared state plus a connection pool of
/// its own, so upstream connections live on the worker's thread.
pub struct GatewayWorker {
    gateway: Arc<Gateway>,
    client: Client<HttpConnector, Incoming>,
    /// HTTP/2 (prior knowledge) to instances, for gRPC.
    h2: Client<HttpConnector, Incoming>,
    /// Request series by status code.
    series: crate::metrics::SeriesCache<u16>,
    /// The RPC side the HTTP-to-Dubbo bridge calls through, made on first use.
    rpc: OnceLock<Arc<crate::rpc::RpcWorker>>,
}

impl Gateway {
    /// `metrics` must be registered in `registry`, which `/metrics` serves.
    pub fn new(
        config: GatewayConfig,
        endpoints: Arc<Endpoints>,
        metrics: GatewayMetrics,
        registry: Arc<Registry>,
    ) -> Self {
        let routes = ArcSwap::from_pointee(RouteTable::new(&config.domain, []));
        let (activator, activation, states) = (Activator::default(), OnceLock::new(), Default::default());
        let generation = Default::default();
        Self { routes, generation, endpoints, metrics, registry, activator, activation, states }
    }

    /// Holds requests for revisions without a ready instance and tells `hook`.
    pub fn set_activation(&self, hook: Arc<dyn Activation>) {
        let _ = self.activation.set(hook);
    }

    /// Replaces the route table (all at once: no request sees half an update).
    /// Route state (rate-limit buckets, instance health) of functions no
    /// longer in the table goes with them.
    pub fn set_routes(&self, table: RouteTable) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.retain(|(ns, name), _| table.function(ns, name).is_some());
        drop(states);
        self.routes.store(Arc::new(table));
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Changes whenever the route table does (after the new one is in).
    pub(crate) fn routes_generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    pub(crate) fn endpoints(&self) -> &Arc<Endpoints> {
        &self.endpoints
    }

    pub(crate) fn rpc_metrics(&self) -> &crate::rpc::metrics::RpcMetrics {
        &self.metrics.rpc
    }

    /// A worker's RPC side, with its own upstream connections.
    pub fn rpc_worker(self: &Arc<Self>) -> Arc<crate::rpc::RpcWorker> {
        Arc::new(crate::rpc::RpcWorker::new(self.clone()))
    }

    /// A worker with its own upstream connection pool.
    pub fn worker(self: &Arc<Self>) -> Arc<GatewayWorker> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector.clone());
        let h2 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(true)
            .build(connector);
        Arc::new(GatewayWorker { gateway: self.clone(), client, h2, series: Default::default(), rpc: OnceLock::new() })
    }
}

impl GatewayWorker {
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if req.uri().path().starts_with(crate::rpc::bridge::PREFIX) {
            let rpc = self.rpc.get_or_init(|| self.gateway.rpc_worker());
            return crate::rpc::bridge::handle(rpc, req).await;
        }
        if grpc::is_grpc(&req) {
            // The same path, with failures as gRPC statuses.
            return grpc::translate_error(self.route_and_forward(req, peer, true).await).await;
        }
        self.route_and_forward(req, peer, false).await
    }

    /// Resolves a gRPC call by its service name (a declared interface), else
    /// anything by host, then path.
    fn resolve(routes: &RouteTable, req: &Request<Incoming>, grpc: bool) -> Option<Resolved> {
        let by_service = grpc.then(|| grpc::service(req.uri().path())).flatten().and_then(|svc| {
            let tag = req.headers().get(crate::rpc::TAG_HEADER).and_then(|v| v.to_str().ok());
            routes.resolve_service(svc, "grpc", tag).ok()
        });
        by_service.or_else(|| routes.resolve(request_host(req), req.uri().path()))
    }

    async fn route_and_forward(&self, req: Request<Incoming>, peer: SocketAddr, grpc: bool) -> Response<Body> {
        let start = Instant::now();
        let routes = self.gateway.routes.load();
        let Some(resolved) = Self::resolve(&routes, &req, grpc) else {
            return self.unrouted(&req, routes.domain());
        };
        let (ns, name) = (resolved.route.namespace.as_str(), resolved.route.name.as_str());
        let Some(revision) = resolved.pick_revision() else {
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("function {ns}/{name} has no routable revision"),
            );
        };
        let traceparent = ensure_traceparent(req.headers().get("traceparent").and_then(|v| v.to_str().ok()));
        let span = tracing::info_span!("gateway", namespace = %ns, function = %name, revision = %revision, trace_id = %trace_id(&traceparent));
        let resp = self.forward(req, peer, &resolved, revision, &traceparent, grpc).instrument(span).await;
        let code = resp.status().as_u16();
        self.series.record(ns, revision, code, start.elapsed(), || {
            self.gateway.metrics.series(&RequestLabels::new(ns, name, revision, code))
        });
        resp
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        resolved: &Resolved,
        revision: &str,
        traceparent: &str,
        grpc: bool,
    ) -> Response<Body> {
        let route = &resolved.route;
        let state = self.gateway.route_state(route);
        if let Err(refusal) = self.gateway.guard(route, state.as_deref()).await {
            return refusal.reply();
        }
        let ejected = Gateway::ejected(state.as_deref(), Instant::now());
        // Held until the response headers arrive: the instance's slot is taken
        // for as long as it works on this request.
        let key = revision_key(&route.namespace, revision);
        let lease = match self.gateway.lease(&route.namespace, revision, &key, &ejected).await {
            Ok(l) => l,
            Err(e) => return e.reply(),
        };
        let target = lease.target();
        let addr = target.addr;
        let req = match rewrite(req, target, peer, resolved, traceparent, grpc) {
            Ok(r) => r,
            Err(msg) => return error_reply(StatusCode::BAD_REQUEST, msg),
        };
        // gRPC needs HTTP/2 to the instance: its status travels in trailers.
        let client = if grpc { &self.h2 } else { &self.client };
        // Only a route's explicit timeout puts a deadline (and a timer) here.
        let request = client.request(req);
        let result = match route.policy.timeout {
            Some(t) => tokio::time::timeout(t, request).await.map_err(|_| t),
            None => Ok(request.await),
        };
        drop(lease);
        let ok = matches!(&result, Ok(Ok(r)) if !r.status().is_server_error());
        Gateway::record_health(route, state.as_deref(), revision, target, ok);
        match result {
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, instance = %addr, "forward to instance failed");
                error_reply(StatusCode::BAD_GATEWAY, format!("instance {addr} of {key} did not answer: {e}"))
            }
            Err(t) => error_reply(
                StatusCode::GATEWAY_TIMEOUT,
                format!("instance {addr} of {key} sent no response headers within {t:?}"),
            ),
        }
    }

    fn unrouted(&self, req: &Request<Incoming>, domain: &str) -> Response<Body> {
        match req.uri().path() {
            "/metrics" => Response::new(full(encode(&self.gateway.registry))),
            "/healthz" => Response::new(full("ok\n")),
            path if grpc::is_grpc(req) => error_reply(
                StatusCode::NOT_FOUND,
                format!(
                    "no function serves gRPC service {:?}: declare it in a Function's spec.interfaces with protocol: grpc",
                    grpc::service(path).unwrap_or(path)
                ),
            ),
            path => {
                let host = request_host(req).unwrap_or("");
                error_reply(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no function serves host {host:?} path {path:?}: use http://<function>.<namespace>.{domain}:<port>/ or http://<gateway>/<namespace>/<function>/"
                    ),
                )
            }
        }
    }
}

/// Points the request at the instance: strips the route prefix, sets forwarding
/// and trace headers, and speaks HTTP/1.1 to the instance whatever came in —
/// except gRPC, which goes as HTTP/2 with its `te: trailers`.
fn rewrite(
    mut req: Request<Incoming>,
    target: Target,
    peer: SocketAddr,
    resolved: &Resolved,
    traceparent: &str,
    grpc: bool,
) -> Result<Request<Incoming>, String> {
    let pq = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
    let (rest, script_name) = split_target(pq, resolved.prefix_len);
    let script_name = script_name.to_string();
    let host = request_host(&req).map(str::to_string);
    *req.uri_mut() =
        Uri::try_from(format!("http://{}{rest}", target.addr)).map_err(|e| format!("bad request path: {e}"))?;
    *req.version_mut() = if grpc { Version::HTTP_2 } else { Version::HTTP_11 };
    let h = req.headers_mut();
    strip_hop_by_hop(h);
    if grpc {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    h.remove(SCRIPT_NAME);
    h.remove(REPLICA); // only the gateway picks a replica on a host
    if let Some(id) = target.replica {
        h.insert(REPLICA, HeaderValue::from(id));
    }
    if let Some(host) = host.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(X_FORWARDED_HOST, host.clone());
        h.insert(header::HOST, host);
    }
    h.append(X_FORWARDED_FOR, HeaderValue::from_str(&peer.ip().to_string()).map_err(|e| e.to_string())?);
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if !script_name.is_empty() {
        h.insert(SCRIPT_NAME, HeaderValue::from_str(&script_name).map_err(|e| e.to_string())?);
    }
    h.insert(TRACEPARENT, HeaderValue::from_str(traceparent).map_err(|e| e.to_string())?);
    Ok(req)
}

/// Splits a request target at a path route's prefix: the path the function
/// sees (always starting with `/`; borrowed unless the `/` must be added)
/// and the prefix stripped (its SCRIPT_NAME).
fn split_target(target: &str, prefix_len: usize) -> (std::borrow::Cow<'_, str>, &str) {
    let (prefix, rest) = target.split_at(prefix_len.min(target.len()));
    let rest = if rest.starts_with('/') { rest.into() } else { format!("/{rest}").into() };
    (rest, prefix)
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in named {
        h.remove(name);
    }
    for name in &HOP_BY_HOP {
        h.remove(name);
    }
}
