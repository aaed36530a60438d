use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;

use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weft_sidecar::http_util::Body;
use weft_sidecar::metrics::{GatewayMetrics, encode};
use weft_sidecar::resilience::Policy;
use weft_sidecar::{Endpoints, FunctionRoute, Gateway, GatewayConfig, RouteTable, WeightedSplit};

/// Serves `f` on a free loopback port until the token is cancelled.
pub async fn serve<F, Fut>(f: F) -> (SocketAddr, CancellationToken)
where
    F: Fn(http::Request<hyper::body::Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = http::Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    tokio::spawn(weft_sidecar::serve::serve(listener, f, token.clone()));
    (addr, token)
}

pub fn client(http2: bool) -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).http2_only(http2).build(HttpConnector::new())
}

/// GET `url` with an optional Host header; returns status, headers and body.
pub async fn get(
    c: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    host: Option<&str>,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let resp = c.request(req.body(Empty::new()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).to_string())
}

pub struct Setup {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub endpoints: Arc<Endpoints>,
    pub registry: Arc<Registry>,
    _stop: tokio_util::sync::DropGuard,
}

/// A gateway serving HTTP and RPC on one port; function `echo` serves
/// `interfaces` (name, protocol), its revisions `echo-00001` and `echo-00002`
/// split `split`% to the second, with tag `canary` on it.
pub async fn rpc_gateway(interfaces: &[(&str, &str)], split: u32, timeout: Duration) -> Setup {
    rpc_gateway_with(interfaces, split, Policy { timeout: Some(timeout), ..Policy::default() }).await
}

/// [`rpc_gateway`] with a resilience policy on the route.
pub async fn rpc_gateway_with(interfaces: &[(&str, &str)], split: u32, policy: Policy) -> Setup {
    let endpoints = Arc::new(Endpoints::new());
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let config = GatewayConfig { domain: "localhost".into() };
    let gw = Arc::new(Gateway::new(config, endpoints.clone(), metrics, registry.clone()));
    gw.set_routes(echo_routes(interfaces, split, policy));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rpc = gw.rpc_worker();
    let (http, gateway) = (gw.worker(), gw.clone());
    let token = CancellationToken::new();
    let serve =
        weft_sidecar::serve::serve_with(listener, move |r, p| http.clone().handle(r, p), Some(rpc), token.clone());
    tokio::spawn(serve);
    Setup { addr, gateway, endpoints, registry, _stop: token.drop_guard() }
}

/// The routes of [`rpc_gateway_with`]: `split` percent to `echo-00002`.
pub fn echo_routes(interfaces: &[(&str, &str)], split: u32, policy: Policy) -> RouteTable {
    RouteTable::new(
        "localhost",
        [FunctionRoute {
            namespace: "default".into(),
            name: "echo".into(),
            split: WeightedSplit::new([("echo-00001", 100 - split), ("echo-00002", split)]),
            tags: vec![("canary".into(), "echo-00002".into())],
            interfaces: interfaces.iter().map(|(i, p)| (i.to_string(), p.to_string())).collect(),
            policy: Arc::new(policy),
        }],
    )
}

/// The sum of the samples whose line starts with `prefix`.
pub fn metric(reg: &Registry, prefix: &str) -> f64 {
    encode(reg)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
