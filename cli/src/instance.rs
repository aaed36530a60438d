//! `weft instance`: one replica of a revision — the function host and the
//! instance proxy in one process, on loopback ports. `weft up` starts these; in a
//! cluster the same command runs in each Pod.
//!
//! Protocol with the supervisor: when both ports are open and the module is
//! loaded, the process prints one JSON line `{"serving": ..., "admin": ...}` on
//! stdout. Logs go to stderr. SIGTERM drains requests in flight, then exits.

use anyhow::{Context, Result};
use http::{HeaderValue, Response, StatusCode};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmtime::Engine;
use weft_functions::{
    EngineOptions, EpochTicker, FunctionHost, GuestRequest, HostLimits, Identity, ModuleStore, new_engine,
};
use weft_sidecar::http_util::{Body, error_reply, full};
use weft_sidecar::metrics::InstanceMetrics;
use weft_sidecar::{Handler, HandlerRequest, InstanceProxy, InstanceProxyConfig};

/// Instances of the pool when `containerConcurrency` is unlimited.
const DEFAULT_POOL: u32 = 64;
/// Pool slots are sized for the largest memory a revision may ask for.
const MAX_MEMORY_BYTES: u64 = weft_crds::revision::MAX_MEMORY_BYTES;
/// Largest request body an instance accepts.
const MAX_BODY: usize = 32 << 20;

/// Everything one instance needs, passed by the supervisor as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceConfig {
    pub namespace: String,
    pub function: String,
    pub revision: String,
    pub module_dir: String,
    pub digest: String,
    pub env: Vec<(String, String)>,
    pub timeout_ms: u64,
    pub memory_bytes: u64,
    pub container_concurrency: u32,
    pub listen: SocketAddr,
    /// Exit when the parent process dies: set by the local supervisor, so no
    /// instance outlives `weft up` even if it is killed with SIGKILL.
    #[serde(default)]
    pub exit_with_parent: bool,
    /// Log file to append to (a standby instance learns it only when assigned;
    /// until then it logs where it was started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
}

/// What the instance prints when it is ready.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadyLine {
    pub serving: SocketAddr,
    pub admin: SocketAddr,
}

struct WasmHandler {
    host: Arc<FunctionHost>,
    /// Each guest call holds the ticker, so a guest still running while the
    /// process drains keeps its deadline (dropping the ticker would let it spin).
    ticker: Arc<EpochTicker>,
}

impl Handler for WasmHandler {
    async fn call(&self, req: HandlerRequest) -> Response<Body> {
        let guest = to_guest_request(req);
        let (host, ticker) = (self.host.clone(), self.ticker.clone());
        let call = move || {
            let r = host.handle(&guest);
            drop(ticker);
            r
        };
        match tokio::task::spawn_blocking(call).await {
            Ok(Ok(r)) => guest_response(r),
            Ok(Err(e)) => {
                let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let id = self.host.identity();
                error_reply(status, format!("function {} ({}): {e}", id.function, id.revision))
            }
            Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, format!("function host task failed: {e}")),
        }
    }
}

fn to_guest_request(req: HandlerRequest) -> GuestRequest {
    let p = &req.parts;
    let headers =
        p.headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    let host = p.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((h, port)) => (h.to_string(), port.parse().unwrap_or(80)),
        None => (host.to_string(), 80),
    };
    GuestRequest {
        method: p.method.to_string(),
        path: p.uri.path().to_string(),
        query: p.uri.query().unwrap_or("").to_string(),
        script_name: req.script_name.clone(),
        headers,
        body: req.body,
        remote_addr: req.peer.ip().to_string(),
        server_name,
        server_port,
    }
}

fn guest_response(r: weft_functions::GuestResponse) -> Response<Body> {
    let mut resp = Response::new(full(r.body));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) = (http::HeaderName::try_from(name), HeaderValue::try_from(value)) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

/// The engine every instance uses unless its `containerConcurrency` needs a
/// bigger pool: slots sized for the largest memory (each store's limiter
/// enforces the revision's own cap), so a standby can build it in advance.
fn standard_engine() -> Result<Engine> {
    Ok(new_engine(EngineOptions { pool_instances: Some(DEFAULT_POOL), max_memory_bytes: MAX_MEMORY_BYTES })?)
}

fn build_host(cfg: &InstanceConfig, prebuilt: Option<Engine>) -> Result<(FunctionHost, EpochTicker, u32)> {
    let pool = cfg.container_concurrency.max(DEFAULT_POOL);
    let engine = match prebuilt {
        Some(e) if pool == DEFAULT_POOL => e,
        _ if pool == DEFAULT_POOL => standard_engine()?,
        _ => new_engine(EngineOptions { pool_instances: Some(pool), max_memory_bytes: MAX_MEMORY_BYTES })?,
    };
    let store = ModuleStore::open(&cfg.module_dir)?;
    let module = store.load(&engine, &cfg.digest).context("load module")?;
    let limits = HostLimits { timeout: Duration::from_millis(cfg.timeout_ms), memory_bytes: cfg.memory_bytes };
    let id =
        Identity { namespace: cfg.namespace.clone(), function: cfg.function.clone(), revision: cfg.revision.clone() };
    let host = FunctionHost::new(&engine, &module, limits, id, cfg.env.clone())?;
    let slots = match cfg.container_concurrency {
        0 => DEFAULT_POOL,
        n => n,
    };
    Ok((host, EpochTicker::start(&engine), slots))
}

pub async fn run(config_json: &str) -> Result<()> {
    let cfg: InstanceConfig = serde_json::from_str(config_json).context("parse --config")?;
    run_config(cfg, None).await
}

/// `weft instance --standby`: started ahead of demand, with the runtime up, and
/// waiting for one JSON line on stdin saying which revision to serve. Cuts the
/// process start (~3–8 ms) out of a cold start.
pub async fn run_standby() -> Result<()> {
    use tokio::io::AsyncBufReadExt;
    // Building the engine and its pool is ~2 ms of a cold start: do it now.
    let engine = standard_engine()?;
    let mut line = String::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    tokio::select! {
        read = stdin.read_line(&mut line) => { read.context("read the instance config from stdin")?; }
        _ = parent_gone() => return Ok(()),
        _ = crate::signals::wait_for_shutdown() => return Ok(()),
    }
    if line.trim().is_empty() {
        return Ok(()); // stdin closed: the pool let this standby go
    }
    let cfg: InstanceConfig = serde_json::from_str(&line).context("parse the instance config")?;
    if let Some(path) = &cfg.log_file {
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("open {path}"))?;
        nix::unistd::dup2_stderr(&file).context("log to the revision's file")?;
    }
    run_config(cfg, Some(engine)).await
}

async fn run_config(cfg: InstanceConfig, prebuilt: Option<Engine>) -> Result<()> {
    let (host, ticker, pool) = build_host(&cfg, prebuilt)?;
    let mut registry = Registry::default();
    let metrics = InstanceMetrics::register(&mut registry);
    let proxy_cfg = InstanceProxyConfig {
        namespace: cfg.namespace.clone(),
        function: cfg.function.clone(),
        revision: cfg.revision.clone(),
        container_concurrency: cfg.container_concurrency,
        max_parallel: pool as usize,
        timeout: Duration::from_millis(cfg.timeout_ms),
        max_body: MAX_BODY,
    };
    let proxy = Arc::new(InstanceProxy::new(
        WasmHandler { host: Arc::new(host), ticker: Arc::new(ticker) },
        proxy_cfg,
        metrics,
        Arc::new(registry),
    ));
    let serving = TcpListener::bind(cfg.listen).await.context("bind serving port")?;
    let admin = TcpListener::bind((cfg.listen.ip(), 0)).await.context("bind admin port")?;
    let ready = ReadyLine { serving: serving.local_addr()?, admin: admin.local_addr()? };
    let line = serde_json::to_string(&ready)?;
    let announce = move || {
        println!("{line}");
        tracing::info!(pid = std::process::id(), function = %cfg.function, revision = %cfg.revision, serving = %ready.serving, admin = %ready.admin, "instance ready");
    };
    serve_until_signal(proxy, serving, admin, cfg.exit_with_parent, announce).await
}

async fn serve_until_signal(
    proxy: Arc<InstanceProxy<WasmHandler>>,
    serving: TcpListener,
    admin: TcpListener,
    exit_with_parent: bool,
    announce: impl FnOnce(),
) -> Result<()> {
    let shutdown = CancellationToken::new();
    let p = proxy.clone();
    let main = tokio::spawn(weft_sidecar::serve::serve(
        serving,
        move |req, peer| p.clone().handle(req, peer),
        shutdown.clone(),
    ));
    let adm = tokio::spawn(weft_sidecar::serve::serve(admin, move |req, _| proxy.clone().admin(req), shutdown.clone()));
    // Ready only once both accept loops run, so the first request is taken at once.
    announce();
    tokio::select! {
        _ = crate::signals::wait_for_shutdown() => {}
        _ = parent_gone(), if exit_with_parent => tracing::warn!("parent exited"),
    }
    tracing::info!("draining");
    shutdown.cancel();
    let _ = tokio::join!(main, adm);
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
