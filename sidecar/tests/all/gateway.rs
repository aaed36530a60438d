//! The gateway routes by host, path and tag, speaks HTTP/1.1 and HTTP/2, and
//! forwards what the function needs to know.

use crate::support::*;
use http::Response;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use weft_sidecar::endpoints::Target;
use weft_sidecar::http_util::full;
use weft_sidecar::metrics::GatewayMetrics;
use weft_sidecar::{Endpoints, FunctionRoute, Gateway, GatewayConfig, RouteTable, WeightedSplit};

/// An upstream that answers with its name and what it received.
async fn upstream(name: &'static str) -> SocketAddr {
    let (addr, _) = serve(move |req: http::Request<hyper::body::Incoming>, _| async move {
        let h = |k: &str| req.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let text = format!(
            "{name} {} {:?} script={} xff={} tp={} replica={}",
            req.uri(),
            req.version(),
            h("weft-script-name"),
            h("x-forwarded-for"),
            h("traceparent").len(),
            h("weft-replica")
        );
        Response::new(full(text))
    })
    .await;
    addr
}

async fn gateway() -> (SocketAddr, Arc<Endpoints>) {
    let endpoints = Arc::new(Endpoints::new());
    endpoints.set("default/f-00001", vec![upstream("one").await], 0);
    endpoints.set("default/f-00002", vec![upstream("two").await], 0);
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let gw = Arc::new(Gateway::new(
        GatewayConfig { domain: "localhost".into() },
        endpoints.clone(),
        metrics,
        Arc::new(registry),
    ));
    gw.set_routes(RouteTable::new(
        "localhost",
        [FunctionRoute {
            namespace: "default".into(),
            name: "f".into(),
            split: WeightedSplit::new([("f-00001", 100)]),
            tags: vec![("canary".into(), "f-00002".into())],
            interfaces: vec![],
            ..Default::default()
        }],
    ));
    let worker = gw.worker();
    let (addr, _) = serve(move |req, peer| worker.clone().handle(req, peer)).await;
    (addr, endpoints)
}

#[tokio::test]
async fn path_host_and_tag_routes_over_http1_and_http2() {
    let (addr, _) = gateway().await;
    for http2 in [false, true] {
        let c = client(http2);
        let (code, _, body) = get(&c, &format!("http://{addr}/default/f/a?b=1"), None).await;
        assert_eq!(code, 200);
        assert!(body.starts_with("one /a?b=1 HTTP/1.1 script=/default/f xff=127.0.0.1 tp=55"), "{body}");
        let (_, _, body) = get(&c, &format!("http://{addr}/x"), Some("f.default.localhost")).await;
        assert!(body.starts_with("one /x HTTP/1.1 script=-"), "{body}");
        let (_, _, body) = get(&c, &format!("http://{addr}/"), Some("canary-f.default.localhost")).await;
        assert!(body.starts_with("two /"), "{body}");
    }
}

#[tokio::test]
async fn unknown_routes_404_and_missing_endpoints_503() {
    let (addr, endpoints) = gateway().await;
    let c = client(false);
    let (code, headers, body) = get(&c, &format!("http://{addr}/default/g/"), None).await;
    assert_eq!(code, 404);
    assert!(body.contains("<namespace>/<function>") && headers.contains_key("weft-error"), "{body}");
    endpoints.set("default/f-00001", Vec::<std::net::SocketAddr>::new(), 0);
    let (code, _, body) = get(&c, &format!("http://{addr}/default/f/"), None).await;
    assert_eq!(code, 503);
    assert!(body.contains("default/f-00001 has no ready instance"), "{body}");
    // An endpoint that does not answer is a 502 naming the instance.
    endpoints.set("default/f-00001", vec!["127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap()], 0);
    let (code, _, body) = get(&c, &format!("http://{addr}/default/f/"), None).await;
    assert_eq!(code, 502, "{body}");
}

/// GET through the gateway with a `weft-replica` header a client made up.
async fn get_claiming_replica(addr: SocketAddr) -> String {
    let req = http::Request::get(format!("http://{addr}/default/f/"))
        .header("weft-replica", "9")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = client(false).request(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).to_string()
}

#[tokio::test]
async fn a_replica_on_a_host_port_is_named_by_header_and_clients_cannot_pick_one() {
    let (addr, endpoints) = gateway().await;
    let body = get_claiming_replica(addr).await;
    assert!(body.starts_with("one ") && body.ends_with("replica=-"), "a client's header is dropped: {body}");
    let host_port = upstream("host").await;
    endpoints.set("default/f-00001", vec![Target { addr: host_port, replica: Some(42) }], 0);
    let body = get_claiming_replica(addr).await;
    assert!(body.starts_with("host ") && body.ends_with("replica=42"), "the gateway names the replica: {body}");
}

#[tokio::test]
async fn the_route_policy_applies_to_http_too() {
    use crate::support::rpc_gateway_with;
    use weft_sidecar::resilience::{Fault, Policy, RateLimit};
    let limit = RateLimit { per_second: 1, burst: 1 };
    let g = rpc_gateway_with(&[], 0, Policy { rate_limit: Some(limit), ..Policy::default() }).await;
    g.endpoints.set("default/echo-00001", vec![upstream("one").await], 0);
    let c = client(false);
    let url = format!("http://{}/default/echo/", g.addr);
    let mut got = Vec::new();
    for _ in 0..3 {
        let (code, headers, _) = get(&c, &url, None).await;
        got.push((code, headers.contains_key("retry-after")));
    }
    assert_eq!(got, [(200, false), (429, true), (429, true)]);

    let abort = Fault { abort_percent: 100, delay_percent: 0, delay: Duration::ZERO };
    let g = rpc_gateway_with(&[], 0, Policy { fault: Some(abort), ..Policy::default() }).await;
    g.endpoints.set("default/echo-00001", vec![upstream("one").await], 0);
    let (code, _, body) = get(&c, &format!("http://{}/default/echo/", g.addr), None).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("fault injected"), "{body}");

    // A deadline only when the route sets one (else the revision's own applies).
    let (slow, _) = serve(|_, _| async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Response::new(full("late"))
    })
    .await;
    let timeout = Some(Duration::from_millis(100));
    let g = rpc_gateway_with(&[], 0, Policy { timeout, ..Policy::default() }).await;
    g.endpoints.set("default/echo-00001", vec![slow], 0);
    let (code, _, body) = get(&c, &format!("http://{}/default/echo/", g.addr), None).await;
    assert_eq!(code, 504, "{body}");
    let g = rpc_gateway_with(&[], 0, Policy::default()).await;
    g.endpoints.set("default/echo-00001", vec![slow], 0);
    let (code, _, body) = get(&c, &format!("http://{}/default/echo/", g.addr), None).await;
    assert_eq!((code, body.as_str()), (200, "late"), "no gateway deadline by default");
}
