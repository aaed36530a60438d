//! weft's gateway role, unchanged, with one static route `default/hello` whose
//! only revision has one endpoint: the address given. Isolates what the gateway
//! costs (routing, weighted pick, header rewrite, pooled forwarding) from what
//! the function behind it costs.
//!
//! Usage: `gateway-to UPSTREAM_ADDR` prints the gateway's address on stdout.

use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weft_sidecar::metrics::GatewayMetrics;
use weft_sidecar::{Endpoints, FunctionRoute, Gateway, GatewayConfig, RouteTable, WeightedSplit};

// The same allocator as the weft binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let upstream = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: gateway-to UPSTREAM_ADDR"))?
        .parse()?;
    let endpoints = Arc::new(Endpoints::new());
    endpoints.set("default/hello-00001", vec![upstream]);
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let gateway = Arc::new(Gateway::new(
        GatewayConfig {
            domain: "localhost".into(),
        },
        endpoints,
        metrics,
        Arc::new(registry),
    ));
    gateway.set_routes(RouteTable::new(
        "localhost",
        [FunctionRoute {
            namespace: "default".into(),
            name: "hello".into(),
            split: WeightedSplit::new([("hello-00001", 100)]),
            tags: vec![],
        }],
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let gw = gateway.clone();
    weft_sidecar::serve::serve(
        listener,
        move |req, peer| gw.clone().handle(req, peer),
        CancellationToken::new(),
    )
    .await;
    Ok(())
}
