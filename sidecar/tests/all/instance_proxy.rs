//! The instance proxy enforces containerConcurrency with a bounded queue, applies
//! the deadline, and reports metrics.

use crate::support::*;
use http::Response;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weft_sidecar::http_util::{Body, full};
use weft_sidecar::metrics::InstanceMetrics;
use weft_sidecar::{Handler, HandlerRequest, InstanceProxy, InstanceProxyConfig};

/// Sleeps for `?ms=N` and records the highest number of calls running at once.
#[derive(Default)]
struct Slow {
    running: AtomicUsize,
    peak: AtomicUsize,
}

/// The handler given to the proxy; the test keeps the other `Arc` to read counts.
struct SlowHandler(Arc<Slow>);

impl Handler for SlowHandler {
    async fn call(&self, req: HandlerRequest) -> Response<Body> {
        let s = &self.0;
        let now = s.running.fetch_add(1, Ordering::SeqCst) + 1;
        s.peak.fetch_max(now, Ordering::SeqCst);
        let ms = req.parts.uri.query().and_then(|q| q.strip_prefix("ms=")).and_then(|v| v.parse().ok()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        s.running.fetch_sub(1, Ordering::SeqCst);
        Response::new(full(format!("{} {}", req.script_name, req.body.len())))
    }
}

fn config(concurrency: u32, timeout_ms: u64) -> InstanceProxyConfig {
    InstanceProxyConfig {
        namespace: "default".into(),
        function: "f".into(),
        revision: "f-00001".into(),
        container_concurrency: concurrency,
        max_parallel: 8,
        timeout: Duration::from_millis(timeout_ms),
        max_body: 1024,
    }
}

async fn start(concurrency: u32, timeout_ms: u64) -> (Arc<Slow>, std::net::SocketAddr, std::net::SocketAddr) {
    let slow = Arc::new(Slow::default());
    let mut registry = Registry::default();
    let metrics = InstanceMetrics::register(&mut registry);
    let proxy = Arc::new(InstanceProxy::new(
        SlowHandler(slow.clone()),
        config(concurrency, timeout_ms),
        metrics,
        Arc::new(registry),
    ));
    let p = proxy.clone();
    let (addr, _) = serve(move |req, peer| p.clone().handle(req, peer)).await;
    let (admin, _) = serve(move |req, _| proxy.clone().admin(req)).await;
    (slow, addr, admin)
}

#[tokio::test]
async fn container_concurrency_is_a_hard_limit_and_excess_waits() {
    let (slow, addr, _) = start(2, 5_000).await;
    let c = client(false);
    let url = format!("http://{addr}/?ms=100");
    let calls = (0..6).map(|_| get(&c, &url, None));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.0 == 200), "queued requests are served, not refused");
    assert_eq!(slow.peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn full_queue_is_refused_with_503() {
    // One slot: the queue admits 11; the 12th and later are refused at once.
    let (_slow, addr, _) = start(1, 10_000).await;
    let c = client(false);
    let url = format!("http://{addr}/?ms=300");
    let results = futures::future::join_all((0..15).map(|_| get(&c, &url, None))).await;
    let refused = results.iter().filter(|r| r.0 == 503).count();
    assert_eq!(refused, 4, "{:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    assert!(results.iter().filter(|r| r.0 == 503).all(|r| r.1.get("weft-error").is_some()));
}

#[tokio::test]
async fn deadline_gives_504_and_oversized_bodies_413() {
    let (_slow, addr, _) = start(0, 200).await;
    let c = client(false);
    let (code, _, body) = get(&c, &format!("http://{addr}/?ms=2000"), None).await;
    assert_eq!(code, 504, "{body}");
    let big = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, http_body_util::Full<bytes::Bytes>>(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = http::Request::post(format!("http://{addr}/"))
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![0u8; 4096])))
        .unwrap();
    assert_eq!(big.request(req).await.unwrap().status(), 413);
}

#[tokio::test]
async fn script_name_reaches_the_handler_and_metrics_count() {
    let (_slow, addr, admin) = start(0, 1_000).await;
    let c = client(false);
    let req = http::Request::get(format!("http://{addr}/"))
        .header("weft-script-name", "/default/f")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    assert_eq!(&body[..], b"/default/f 0");
    let (_, _, text) = get(&c, &format!("http://{admin}/metrics"), None).await;
    let line =
        text.lines().find(|l| l.starts_with("weft_instance_requests_total{")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("revision=\"f-00001\"") && line.contains("code=\"200\"") && line.ends_with(" 1"), "{line}");
    for name in [
        "weft_instance_inflight_requests",
        "weft_instance_queued_requests",
        "weft_instance_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert_eq!(get(&c, &format!("http://{admin}/healthz"), None).await.0, 200);
}

#[tokio::test]
async fn stats_report_load_since_the_last_read() {
    let (_slow, addr, admin) = start(0, 5_000).await;
    let c = client(false);
    let _ = get(&c, &format!("http://{admin}/stats"), None).await; // reset
    let url = format!("http://{addr}/?ms=300");
    futures::future::join_all((0..4).map(|_| get(&c, &url, None))).await;
    let (_, _, text) = get(&c, &format!("http://{admin}/stats"), None).await;
    let v: Vec<&str> = text.trim_matches(['{', '}']).split(',').collect();
    let field = |name: &str| -> f64 {
        v.iter().find(|f| f.starts_with(&format!("\"{name}\""))).unwrap().split(':').nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(field("requests"), 4.0, "{text}");
    // Four requests of 0.3 s each over the period: about 1.2 request-seconds.
    let area = field("concurrency") * field("seconds");
    assert!((1.1..1.6).contains(&area), "{text}");
}

#[tokio::test]
async fn a_timed_out_request_leaves_no_phantom_load() {
    let (_slow, addr, admin) = start(0, 200).await;
    let c = client(false);
    assert_eq!(get(&c, &format!("http://{addr}/?ms=1500"), None).await.0, 504);
    let (_, _, metrics) = get(&c, &format!("http://{admin}/metrics"), None).await;
    assert!(metrics.lines().any(|l| l == "weft_instance_inflight_requests 0"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "weft_instance_queued_requests 0"), "{metrics}");
    // The autoscaler must not see the abandoned request as load.
    let _ = get(&c, &format!("http://{admin}/stats"), None).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (_, _, stats) = get(&c, &format!("http://{admin}/stats"), None).await;
    assert!(stats.starts_with(r#"{"concurrency":0,"#), "{stats}");
}
