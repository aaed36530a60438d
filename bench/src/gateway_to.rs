//! weft's gateway role, unchanged (thread-per-core workers, as `weft up` runs
//! it, HTTP and RPC on one port), with static routes: `default/hello` to the
//! HTTP upstream(s) — with two, a 90/10 split between two revisions, as the
//! proxies it is compared with are set up — and, given an RPC upstream, the
//! Dubbo and Bolt interfaces of the captured frames to it. Isolates what the
//! gateway costs (routing, weighted pick, header rewrite or id rewrite, pooled
//! forwarding) from the function behind it.
//!
//! Usage: `gateway-to HTTP_UP[,HTTP_UP2] [WORKERS] [RPC_UP]` prints its address.

use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use weft_sidecar::metrics::GatewayMetrics;
use weft_sidecar::serve::{bind_workers, default_workers, serve_workers};
use weft_sidecar::{Endpoints, FunctionRoute, Gateway, GatewayConfig, RouteTable, WeightedSplit};

// The same allocator as the weft binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The services the captured Dubbo and Bolt requests call.
const INTERFACES: [(&str, &str); 2] =
    [("com.alibaba.dubbo.demo.DemoService", "dubbo"), ("com.nodejs.test.TestService", "bolt")];

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gateway-to HTTP_UP[,HTTP_UP2] [WORKERS] [RPC_UP]";
    let http: Vec<SocketAddr> =
        args.next().ok_or_else(|| anyhow::anyhow!(usage))?.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let workers = args.next().map(|w| w.parse()).transpose()?.unwrap_or_else(default_workers);
    let rpc: Option<SocketAddr> = args.next().map(|a| a.parse()).transpose()?;
    let endpoints = Arc::new(Endpoints::new());
    let mut routes = vec![hello(&endpoints, &http)];
    if let Some(up) = rpc {
        endpoints.set("default/rpc-00001", vec![up], 0);
        routes.push(FunctionRoute {
            namespace: "default".into(),
            name: "rpc".into(),
            split: WeightedSplit::new([("rpc-00001", 100)]),
            interfaces: INTERFACES.iter().map(|(i, p)| (i.to_string(), p.to_string())).collect(),
            ..Default::default()
        });
    }
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let gateway =
        Arc::new(Gateway::new(GatewayConfig { domain: "localhost".into() }, endpoints, metrics, Arc::new(registry)));
    gateway.set_routes(RouteTable::new("localhost", routes));
    let listeners = bind_workers("127.0.0.1:0".parse()?, workers)?;
    println!("{}", listeners[0].local_addr()?);
    let make = move || {
        let (w, rpc) = (gateway.worker(), gateway.rpc_worker());
        (move |req, peer| w.clone().handle(req, peer), Some(rpc))
    };
    serve_workers(listeners, make, CancellationToken::new()).await;
    Ok(())
}

/// `default/hello`: one revision, or 90/10 between two.
fn hello(endpoints: &Endpoints, http: &[SocketAddr]) -> FunctionRoute {
    let split = match http {
        [one] => {
            endpoints.set("default/hello-00001", vec![*one], 0);
            WeightedSplit::new([("hello-00001", 100)])
        }
        [a, b, ..] => {
            endpoints.set("default/hello-00001", vec![*a], 0);
            endpoints.set("default/hello-00002", vec![*b], 0);
            WeightedSplit::new([("hello-00001", 90), ("hello-00002", 10)])
        }
        [] => WeightedSplit::default(),
    };
    // gRPC calls of the benchmark (`/weft.bench.Hello/Say`) route by service.
    let interfaces = vec![("weft.bench.Hello".to_string(), "grpc".to_string())];
    FunctionRoute { namespace: "default".into(), name: "hello".into(), split, interfaces, ..Default::default() }
}
