//! weft's gateway role, unchanged (thread-per-core workers, as `weft up` runs
//! it), with one static route `default/hello` whose only revision has one
//! endpoint: the address given. Isolates what the gateway costs (routing,
//! weighted pick, header rewrite, pooled forwarding) from the function behind it.
//!
//! Usage: `gateway-to UPSTREAM_ADDR [WORKERS]` prints the gateway's address.

use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use weft_sidecar::metrics::GatewayMetrics;
use weft_sidecar::serve::{bind_workers, default_workers, serve_workers};
use weft_sidecar::{Endpoints, FunctionRoute, Gateway, GatewayConfig, RouteTable, WeightedSplit};

// The same allocator as the weft binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let upstream = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: gateway-to UPSTREAM_ADDR [WORKERS]"))?
        .parse::<std::net::SocketAddr>()?;
    let workers = args.next().map(|w| w.parse()).transpose()?.unwrap_or_else(default_workers);
    let endpoints = Arc::new(Endpoints::new());
    endpoints.set("default/hello-00001", vec![upstream], 0);
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let gateway =
        Arc::new(Gateway::new(GatewayConfig { domain: "localhost".into() }, endpoints, metrics, Arc::new(registry)));
    let route = FunctionRoute {
        namespace: "default".into(),
        name: "hello".into(),
        split: WeightedSplit::new([("hello-00001", 100)]),
        tags: vec![],
        interfaces: vec![],
        ..Default::default()
    };
    gateway.set_routes(RouteTable::new("localhost", [route]));
    let listeners = bind_workers("127.0.0.1:0".parse()?, workers)?;
    println!("{}", listeners[0].local_addr()?);
    let make = move || {
        let w = gateway.worker();
        (move |req, peer| w.clone().handle(req, peer), None)
    };
    serve_workers(listeners, make, CancellationToken::new()).await;
    Ok(())
}
