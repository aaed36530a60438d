//! The cluster entry points of the one weft binary (`weft controller`,
//! `weft gateway`, `weft eventbus`) and `weft install`, with what they share:
//! the API client, watches, and the `/metrics` + `/healthz` routes.

pub mod controller;
pub mod eventbus;
pub mod gateway;
pub mod install;

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// Installs ring as rustls's process-wide crypto provider, once, in `main`:
/// kube's client builds its TLS config with the process default, and rustls
/// refuses to guess when none is installed (see TOOLCHAIN.md). Every reqwest
/// client needs it too (oci-client turns on reqwest's rustls), so tests that
/// build one without `main` call this first.
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The Kubernetes API client: the Pod's service account in a cluster, else
/// the current kubeconfig.
pub async fn client() -> Result<Client> {
    Client::try_default()
        .await
        .context("connect to the Kubernetes API (in a Pod via its service account, else ~/.kube/config)")
}

/// A reflector of every `K` matching `config`: the store, and a stream that
/// yields once per change (watch errors are logged and retried with backoff).
pub fn watched<K>(client: &Client, config: watcher::Config) -> (Store<K>, BoxStream<'static, ()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let changes = reflector(writer, watcher(Api::<K>::all(client.clone()), config))
        .default_backoff()
        .map(|r| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "watch; retrying");
            }
        })
        .boxed();
    (store, changes)
}

/// `/healthz`, and `/metrics` from `registry`.
pub fn ops_routes(registry: Arc<Registry>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move { weft_sidecar::metrics::encode(&registry) }
        }),
    )
}
