//! `weft instance`: the function host and the instance proxy on loopback ports.
//!
//! Two forms:
//! - `--config JSON`: one replica of one revision in its own process — what a
//!   cluster Pod runs. When both ports are open and the module is loaded, it
//!   prints one JSON [`ReadyLine`] on stdout; SIGTERM drains, then exits.
//! - `--host`: a host process of `weft up` that serves any number of replicas of
//!   any revisions, started and stopped by JSON lines on stdin (see [`host`]). A
//!   cold start then costs loading a precompiled module into a warm process
//!   (~0.2 ms), not starting a process (~6 ms).
//!
//! Logs go to stderr, tagged with namespace, function and revision.

mod fetch;
mod forward;
mod handler;
pub mod host;
mod host_port;
mod spare_ports;

use anyhow::{Context, Result};
use handler::WasmHandler;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wasmtime::{Engine, Module};
use weft_functions::{
    EngineOptions, EpochTicker, FunctionHost, HostLimits, Identity, ModuleStore, Outbound, OutboundMetrics, new_engine,
};
use weft_sidecar::endpoints::Target;
use weft_sidecar::metrics::InstanceMetrics;
use weft_sidecar::{Handler, InstanceProxy, InstanceProxyConfig};

/// Guest instances at once per replica when `containerConcurrency` is unlimited.
const DEFAULT_PARALLEL: u32 = 64;
/// Pool slots are sized for the largest memory a revision may ask for.
const MAX_MEMORY_BYTES: u64 = weft_crds::revision::MAX_MEMORY_BYTES;
/// Largest request body an instance accepts.
const MAX_BODY: usize = 32 << 20;

pub use weft_controller::{InstanceConfig, ModuleSource};

/// What an instance announces when it is ready.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ReadyLine {
    pub serving: SocketAddr,
    pub admin: SocketAddr,
    /// On a host: the host's shared serving port, which also reaches this
    /// replica when a request names it in `weft-replica` (see [`host`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedPort>,
}

/// A replica's place on its host's shared port.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SharedPort {
    pub addr: SocketAddr,
    pub replica: u64,
}

impl ReadyLine {
    /// Where the gateway sends this replica's requests: the host's shared port
    /// when there is one (its connections are pooled already), else its own.
    pub fn target(&self) -> Target {
        match self.shared {
            Some(s) => Target { addr: s.addr, replica: Some(s.replica) },
            None => Target::from(self.serving),
        }
    }
}

/// The instance proxy of a replica running a wasm module.
pub type Proxy = InstanceProxy<WasmHandler>;

/// What the guest runs on: an engine, its epoch ticker, and the bound on guest
/// executions at once (the engine's pool size).
#[derive(Clone)]
pub struct Runtime {
    pub engine: Engine,
    pub ticker: Arc<EpochTicker>,
    pub executions: Arc<Semaphore>,
}

impl Runtime {
    /// A pooling allocator of `slots` instances, each sized for the largest
    /// memory (every store's limiter enforces the revision's own cap).
    pub fn new(slots: u32) -> Result<Self> {
        let engine = new_engine(EngineOptions { pool_instances: Some(slots), max_memory_bytes: MAX_MEMORY_BYTES })?;
        let ticker = Arc::new(EpochTicker::start(&engine));
        Ok(Self { engine, ticker, executions: Arc::new(Semaphore::new(slots as usize)) })
    }
}

/// One replica serving a revision on its two ports, until drained.
pub struct Running<H = WasmHandler> {
    pub ready: ReadyLine,
    pub proxy: Arc<InstanceProxy<H>>,
    shutdown: CancellationToken,
    tasks: [JoinHandle<()>; 2],
}

impl<H: Handler> Running<H> {
    /// Stops taking requests, lets those in flight finish, then returns.
    pub async fn drain(self) {
        self.shutdown.cancel();
        let [a, b] = self.tasks;
        let _ = tokio::join!(a, b);
        if !self.proxy.wait_idle(weft_sidecar::serve::DRAIN_TIMEOUT).await {
            tracing::warn!("requests still in flight after the drain timeout; stopping anyway");
        }
    }
}

/// Loads a revision's module from the platform's module store.
pub fn load_module(cfg: &InstanceConfig, engine: &Engine) -> Result<Module> {
    let store = ModuleStore::open(&cfg.module_dir)?;
    store.load(engine, &cfg.digest).context("load module")
}

/// The serving and admin ports of a replica.
pub struct Ports {
    pub serving: TcpListener,
    pub admin: TcpListener,
}

impl Ports {
    /// Opens both ports: serving on `listen`, admin on `admin` or else on a
    /// free port of the same address.
    pub async fn bind(listen: SocketAddr, admin: Option<SocketAddr>) -> Result<Self> {
        let serving = TcpListener::bind(listen).await.context("bind serving port")?;
        let admin = TcpListener::bind(admin.unwrap_or((listen.ip(), 0).into())).await.context("bind admin port")?;
        Ok(Self { serving, admin })
    }
}

/// Links the module and starts serving on `ports`; the replica is ready when
/// this returns (both accept loops run, so the first request is taken at once).
pub async fn start(cfg: &InstanceConfig, module: &Module, rt: &Runtime, ports: Ports) -> Result<Running> {
    let limits = HostLimits { timeout: Duration::from_millis(cfg.timeout_ms), memory_bytes: cfg.memory_bytes };
    let id =
        Identity { namespace: cfg.namespace.clone(), function: cfg.function.clone(), revision: cfg.revision.clone() };
    // Outbound HTTP may reach the sidecar and the broker ingress the platform named.
    let outbound = Outbound::from_env(&cfg.env);
    let outbound_metrics = outbound.metrics.clone();
    let host = FunctionHost::new(&rt.engine, module, limits, id, cfg.env.clone())?.with_outbound(outbound);
    let handler = WasmHandler { host: Arc::new(host), ticker: rt.ticker.clone(), executions: rt.executions.clone() };
    serve(cfg, handler, ports, Some(&outbound_metrics))
}

/// Serves `handler` behind the instance proxy on `ports`; a wasm guest's
/// outbound metrics join the instance's.
fn serve<H: Handler>(
    cfg: &InstanceConfig,
    handler: H,
    ports: Ports,
    outbound: Option<&OutboundMetrics>,
) -> Result<Running<H>> {
    let mut registry = Registry::default();
    let metrics = InstanceMetrics::register(&mut registry);
    if let Some(o) = outbound {
        o.register(registry.sub_registry_with_prefix("weft_instance"));
    }
    fetch::register(registry.sub_registry_with_prefix("weft_instance"));
    let proxy_cfg = InstanceProxyConfig {
        namespace: cfg.namespace.clone(),
        function: cfg.function.clone(),
        revision: cfg.revision.clone(),
        container_concurrency: cfg.container_concurrency,
        max_parallel: DEFAULT_PARALLEL as usize,
        timeout: Duration::from_millis(cfg.timeout_ms),
        max_body: MAX_BODY,
    };
    let proxy = Arc::new(InstanceProxy::new(handler, proxy_cfg, metrics, Arc::new(registry)));
    let Ports { serving, admin } = ports;
    let ready = ReadyLine { serving: serving.local_addr()?, admin: admin.local_addr()?, shared: None };
    let shutdown = CancellationToken::new();
    let p = proxy.clone();
    let main = tokio::spawn(weft_sidecar::serve::serve(
        serving,
        move |req, peer| p.clone().handle(req, peer),
        shutdown.clone(),
    ));
    let p = proxy.clone();
    let adm = tokio::spawn(weft_sidecar::serve::serve(admin, move |req, _| p.clone().admin(req), shutdown.clone()));
    tracing::info!(pid = std::process::id(), namespace = %cfg.namespace, function = %cfg.function, revision = %cfg.revision, serving = %ready.serving, admin = %ready.admin, "instance ready");
    Ok(Running { ready, proxy, shutdown, tasks: [main, adm] })
}

/// `weft instance --config JSON`: one replica in its own process.
pub async fn run(config_json: &str) -> Result<()> {
    let cfg: InstanceConfig = serde_json::from_str(config_json).context("parse --config")?;
    if let Some(upstream) = cfg.upstream {
        // An `image` function: the user's container is the function.
        forward::wait_ready(upstream).await?;
        let ports = Ports::bind(cfg.listen, cfg.admin_listen).await?;
        let running = serve(&cfg, forward::ForwardHandler::new(upstream), ports, None)?;
        return serve_until_stopped(&cfg, running).await;
    }
    // The pool holds every request the limit lets in at once.
    let rt = Runtime::new(cfg.container_concurrency.max(DEFAULT_PARALLEL))?;
    let cfg = fetch::module(cfg, &rt.engine).await?;
    let module = load_module(&cfg, &rt.engine)?;
    let running = start(&cfg, &module, &rt, Ports::bind(cfg.listen, cfg.admin_listen).await?).await?;
    serve_until_stopped(&cfg, running).await
}

/// Announces the replica, then drains it on SIGTERM (or when the parent exits).
async fn serve_until_stopped<H: Handler>(cfg: &InstanceConfig, running: Running<H>) -> Result<()> {
    // Listening before the ready line: a SIGTERM right after it must drain, not kill.
    let shutdown = crate::signals::listen();
    println!("{}", serde_json::to_string(&running.ready)?);
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = parent_gone(), if cfg.exit_with_parent => tracing::warn!("parent exited"),
    }
    tracing::info!(namespace = %cfg.namespace, function = %cfg.function, revision = %cfg.revision, "draining");
    running.drain().await;
    Ok(())
}

/// Returns when the parent process is gone (this process was re-parented).
async fn parent_gone() {
    let parent = nix::unistd::getppid();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while nix::unistd::getppid() == parent {
        tick.tick().await;
    }
}
