//! `weft up`: the whole local platform in one foreground process — control API,
//! controller, process supervisor and gateway — on embedded defaults.

pub mod api;
pub mod autoscale;
pub mod controller;
pub mod eventing;
pub mod hosts;
pub mod process;
pub mod routes;
pub mod services;
pub mod supervisor;

use crate::state::{RuntimeInfo, StateDir};
use anyhow::{Context, Result};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weft_controller::{EmbeddedStore, RouteBase};
use weft_eventbus::ingress::Ingress;
use weft_eventbus::log::embedded::{EmbeddedConfig, EmbeddedLog};
use weft_eventbus::log::kafka::KafkaLog;
use weft_eventbus::metrics::EventbusMetrics;
use weft_eventbus::sender::HttpSender;
use weft_eventbus::trace::Traces;
use weft_functions::{EngineOptions, ModuleStore, new_engine};
use weft_sidecar::metrics::GatewayMetrics;
use weft_sidecar::{Endpoints, Gateway, GatewayConfig};

/// How long per-event delivery records (`weft events trace`) are kept.
const TRACE_RETENTION: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct UpArgs {
    pub state: StateDir,
    pub gateway: SocketAddr,
    pub api: SocketAddr,
    pub domain: String,
    /// Platform-wide scaling defaults (Knative's unless overridden by flags).
    pub scaling: weft_autoscaler::Defaults,
    /// Function host processes (each serves replicas of any revision).
    pub hosts: usize,
    /// Broker ingress address.
    pub events: SocketAddr,
    /// Kafka bootstrap servers for brokers with `spec.backend: kafka`.
    pub kafka: Option<String>,
    /// Most events `weft events trace` keeps records of (about 1.5 KB each).
    pub trace_events: usize,
    /// The DNS responder of interface-name addressing.
    pub dns: SocketAddr,
}

pub async fn run(args: UpArgs) -> Result<()> {
    // Listening from the start: runtime.json says "up", and a stop sent right
    // after must shut down cleanly.
    let stop_signal = crate::signals::listen();
    let token = args.state.init()?;
    let _lock = args.state.lock()?;
    let store = Arc::new(EmbeddedStore::open(&args.state.store())?);
    // Compiles modules ahead of instances; instances load the cached code.
    let engine = new_engine(EngineOptions::default())?;
    let modules = ModuleStore::open(args.state.modules())?;

    let gw_listeners = weft_sidecar::serve::bind_workers(args.gateway, weft_sidecar::serve::default_workers())
        .with_context(|| format!("bind gateway on {}", args.gateway))?;
    let api_listener =
        TcpListener::bind(args.api).await.with_context(|| format!("bind control API on {}", args.api))?;
    let events_listener =
        TcpListener::bind(args.events).await.with_context(|| format!("bind broker ingress on {}", args.events))?;
    let gateway_addr = gw_listeners[0].local_addr()?;
    let api_addr = api_listener.local_addr()?;
    let events_addr = events_listener.local_addr()?;

    let endpoints = Arc::new(Endpoints::new());
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let scaler_metrics = autoscale::AutoscalerMetrics::register(&mut registry);
    let eventbus_metrics = EventbusMetrics::register(&mut registry);
    let dns_metrics = weft_sidecar::dns::DnsMetrics::register(&mut registry);
    let gateway = Arc::new(Gateway::new(
        GatewayConfig { domain: args.domain.clone() },
        endpoints.clone(),
        metrics,
        Arc::new(registry),
    ));

    let shutdown = CancellationToken::new();
    // Interface-name addressing: a DNS responder and a listener per function address.
    let dns_table: weft_sidecar::dns::Table = Arc::default();
    let dns = weft_sidecar::dns::DnsServer::bind(args.dns, dns_table.clone(), dns_metrics)
        .await
        .with_context(|| format!("bind the DNS responder on {} (use --dns to move it)", args.dns))?;
    let dns_addr = dns.local_addr();
    let dns_task = tokio::spawn(dns.run(shutdown.clone()));
    let services = Arc::new(services::Services::new(gateway.clone(), gateway_addr.port(), dns_table, shutdown.clone()));

    let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel();
    let exe = std::env::current_exe().context("find the weft executable")?;
    let hosts = hosts::HostPool::start(exe, args.state.root.clone(), args.state.logs().join("hosts"), args.hosts);
    let process_logs = args.state.logs().join("processes");
    let supervisor = Arc::new(supervisor::Supervisor::new(hosts.clone(), process_logs, endpoints.clone(), changes_tx));
    let (autoscale, pokes) =
        autoscale::Autoscale::new(args.scaling.clone(), supervisor.clone(), endpoints, scaler_metrics);
    gateway.set_activation(autoscale.clone());
    // The broker ingress, as instances reach it (`$WEFT_EVENTS`) and as Broker status names it.
    let events_url = format!("http://{}", loopback_if_unspecified(events_addr));
    let controller = Arc::new(controller::Controller {
        autoscale: autoscale.clone(),
        store: store.clone(),
        supervisor: supervisor.clone(),
        gateway: gateway.clone(),
        modules: modules.clone(),
        engine: engine.clone(),
        base: RouteBase { domain: args.domain.clone(), port: gateway_addr.port() },
        sidecar: loopback_if_unspecified(gateway_addr),
        events: events_url.clone(),
        services,
        broken: Default::default(),
    });
    let traces = Arc::new(Traces::new(TRACE_RETENTION, args.trace_events));
    let ingress = Arc::new(Ingress::new(traces.clone(), eventbus_metrics.clone()));
    let embedded = EmbeddedLog::open(args.state.events(), EmbeddedConfig::default())?;
    eventing::prune_orphaned_logs(&embedded, &*store).await.map_err(anyhow::Error::msg)?;
    let eventing = Arc::new(eventing::Eventing {
        store: store.clone() as Arc<dyn eventing::Resources>,
        embedded: Arc::new(embedded),
        kafka: match &args.kafka {
            Some(bootstrap) => Some(Arc::new(KafkaLog::connect(bootstrap).await?)),
            None => None,
        },
        ingress: ingress.clone(),
        sender: Arc::new(HttpSender::new()?),
        traces: traces.clone(),
        metrics: eventbus_metrics,
        addresses: eventing::Addresses {
            gateway: loopback_if_unspecified(gateway_addr).to_string(),
            domain: args.domain.clone(),
            ingress: events_url,
        },
        running: Default::default(),
        logs: Default::default(),
    });
    let api_state = Arc::new(api::ApiState {
        store: store.clone(),
        modules,
        engine,
        token,
        logs: args.state.logs(),
        scaling: args.scaling.clone(),
        traces,
    });

    let watch = store.watch();
    let ctl = tokio::spawn(controller.run(watch, changes_rx, shutdown.clone()));
    let scaler = tokio::spawn(autoscale.run(pokes, shutdown.clone()));
    let changes = eventing::Eventing::local_changes(store.watch());
    let events_ctl = tokio::spawn(eventing.run(changes, shutdown.clone()));
    let events_task = tokio::spawn(serve_api(events_listener, ingress.router(), shutdown.clone()));
    let gw = gateway.clone();
    // The gateway runs thread-per-core, each worker with its own connection pool.
    let make_worker = move || {
        let (w, rpc) = (gw.worker(), gw.rpc_worker());
        (move |req, peer| w.clone().handle(req, peer), Some(rpc))
    };
    let gw_task = tokio::spawn(weft_sidecar::serve::serve_workers(gw_listeners, make_worker, shutdown.clone()));
    let api_task = tokio::spawn(serve_api(api_listener, api::router(api_state), shutdown.clone()));

    args.state.write_runtime(&RuntimeInfo {
        api: api_addr,
        gateway: gateway_addr,
        events: Some(events_addr),
        dns: Some(dns_addr),
        domain: args.domain.clone(),
        pid: std::process::id(),
    })?;
    tracing::info!(gateway = %gateway_addr, api = %api_addr, events = %events_addr, dns = %dns_addr, state = %args.state.root.display(), "weft is up");
    eprintln!(
        "weft is up: gateway http://{gateway_addr}  control API http://{api_addr}  broker ingress http://{events_addr}  DNS {dns_addr}  state {}",
        args.state.root.display()
    );
    eprintln!("deploy with: weft apply -f examples/hello/function.yaml   (Ctrl-C stops)");

    stop_signal.wait().await;
    eprintln!("shutting down: stopping instances");
    // Order matters: the controller must be stopped before the supervisor, or a
    // reconcile in progress could start an instance after the drain.
    shutdown.cancel();
    let _ = tokio::join!(ctl, scaler, events_ctl);
    supervisor.shutdown().await;
    hosts.shutdown().await;
    let _ = tokio::join!(gw_task, api_task, events_task, dns_task);
    let _ = std::fs::remove_file(args.state.runtime());
    eprintln!("weft stopped");
    Ok(())
}

async fn serve_api(listener: TcpListener, router: axum::Router, shutdown: CancellationToken) {
    let result = axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
    if let Err(e) = result {
        tracing::error!(error = %e, "control API stopped");
    }
}

/// The address local processes use to reach a listener bound to `addr`
/// (`0.0.0.0` is not an address to connect to).
fn loopback_if_unspecified(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}
