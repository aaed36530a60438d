//! `weft controller`: the Function and Revision controllers on Kubernetes,
//! behind a Lease so two replicas are safe, with `/metrics` and `/healthz`.

use anyhow::{Result, bail};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use weft_controller::RouteBase;
use weft_controller::cluster::ClusterSettings;
use weft_controller_kube::leader::{Elector, Held};
use weft_controller_kube::{Context, metrics::Metrics};

/// How long a Lease holder may go without renewing before another takes over.
const LEASE: Duration = Duration::from_secs(15);

#[derive(clap::Args, Clone)]
pub struct ControllerArgs {
    /// The weft image instances run (`weft instance`).
    #[arg(long, env = "WEFT_IMAGE")]
    pub image: String,
    /// Domain of function URLs: <function>.<namespace>.<domain>.
    #[arg(long, default_value = "example.com")]
    pub domain: String,
    /// Port of function URLs (80 leaves it out).
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    /// `WEFT_SIDECAR` of instances: the gateway's Service.
    #[arg(long, default_value = "weft-gateway.weft-system.svc:80")]
    pub sidecar: String,
    /// `WEFT_EVENTS` of instances: the broker ingress, the event bus's Service.
    #[arg(long, default_value = "http://weft-eventbus.weft-system.svc:80")]
    pub events: String,
    /// `/metrics` and `/healthz`.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "weft-system")]
    pub lease_namespace: String,
    /// A registry (host[:port]) of `wasm.oci` modules that instances reach
    /// over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "weft-controller")]
    pub identity: String,
}

pub async fn run(args: ControllerArgs) -> Result<()> {
    let client = super::client().await?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_metrics(args.metrics, Arc::new(registry), shutdown.clone()));

    let elector = Elector::new(client.clone(), &args.lease_namespace, "weft-controller", &args.identity, LEASE);
    wait_for_lease(&elector).await?;
    tracing::info!(identity = %args.identity, "leading; starting the controllers");
    let lost = tokio::spawn(keep_lease(elector, shutdown.clone()));

    let settings = ClusterSettings {
        image: args.image,
        sidecar: args.sidecar,
        events: args.events,
        container_concurrency: 0,
        insecure_registries: args.insecure_registries,
    };
    let base = RouteBase { domain: args.domain, port: args.port };
    let ctx = Arc::new(Context::new(client, settings, base, Default::default(), metrics));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::signals::wait_for_shutdown().await;
        stop.cancel();
    });
    let done = shutdown.clone();
    weft_controller_kube::run(ctx, async move { done.cancelled().await }).await;
    // keep_lease also ends on a plain shutdown; only a lost Lease is an error.
    if lost.is_finished() && lost.await.unwrap_or(false) {
        bail!("lost the leader Lease; exiting so a restart rejoins as a follower");
    }
    Ok(())
}

/// Blocks until this replica holds the Lease.
async fn wait_for_lease(elector: &Elector) -> Result<()> {
    loop {
        match elector.try_acquire().await {
            Ok(Held::ByUs) => return Ok(()),
            Ok(Held::ByOther(holder)) => tracing::info!(%holder, "following"),
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::time::sleep(elector.renew_every()).await;
    }
}

/// Renews the Lease; when it cannot for a whole Lease period (or another
/// replica took it), stops the controllers and returns true.
async fn keep_lease(elector: Elector, shutdown: CancellationToken) -> bool {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(elector.renew_every()) => {}
            _ = shutdown.cancelled() => return false,
        }
        match elector.try_acquire().await {
            Ok(Held::ByUs) => last = tokio::time::Instant::now(),
            Ok(Held::ByOther(holder)) => {
                tracing::error!(%holder, "another replica holds the Lease");
                break;
            }
            Err(e) if last.elapsed() < LEASE => tracing::warn!(error = %e, "renew the Lease; retrying"),
            Err(e) => {
                tracing::error!(error = %e, "could not renew the Lease in time");
                break;
            }
        }
    }
    shutdown.cancel();
    true
}

async fn serve_metrics(addr: SocketAddr, registry: Arc<Registry>, shutdown: CancellationToken) {
    let router = super::ops_routes(registry);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "bind the metrics port");
            shutdown.cancel();
            return;
        }
    };
    let _ = axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
}
