//! weft's Kubernetes backend of the autoscaler's `Scaler` seam: each revision
//! runs as a Deployment named after it, and its instance count is its `/scale`
//! subresource.
//!
//! `set_replicas` records the wanted count and returns (the seam's guarantee); a
//! worker patches `/scale` with the latest count per revision, retries after an
//! error, and reads the Deployment's status back for `replicas`. Decisions never
//! wait on the API server, and a burst of decisions for one revision becomes one
//! patch.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use weft_autoscaler::{Replicas, ScaleTarget, Scaler, ScalerError};

/// Field manager named in patches, as `kubectl` shows it.
pub const FIELD_MANAGER: &str = "weft-autoscaler";
/// Wait before retrying a failed patch.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone)]
struct Known {
    replicas: Replicas,
    /// The last failure talking to the API server, until a call succeeds.
    error: Option<String>,
}

pub struct KubeScaler {
    known: Mutex<HashMap<ScaleTarget, Known>>,
    wanted: mpsc::UnboundedSender<ScaleTarget>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KubeScaler {
    /// The scaler, and the worker future to run (e.g. with `tokio::spawn`).
    pub fn new(client: Client) -> (Arc<Self>, impl std::future::Future<Output = ()> + Send) {
        let (wanted, rx) = mpsc::unbounded_channel();
        let scaler = Arc::new(Self { known: Mutex::new(HashMap::new()), wanted });
        let worker = scaler.clone().work(client, rx);
        (scaler, worker)
    }

    async fn work(self: Arc<Self>, client: Client, mut rx: mpsc::UnboundedReceiver<ScaleTarget>) {
        while let Some(first) = rx.recv().await {
            // Coalesce: each target is patched once with its latest count.
            let mut due = vec![first];
            while let Ok(t) = rx.try_recv() {
                if !due.contains(&t) {
                    due.push(t);
                }
            }
            for target in due {
                if let Err(e) = self.apply(&client, &target).await {
                    tracing::warn!(revision = %target.key(), error = %e, "scale; retrying");
                    lock(&self.known).entry(target.clone()).or_default().error = Some(e.to_string());
                    let retry = self.wanted.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETRY_AFTER).await;
                        let _ = retry.send(target);
                    });
                }
            }
        }
    }

    /// Patches `/scale` to the wanted count and reads the Deployment's status.
    async fn apply(&self, client: &Client, target: &ScaleTarget) -> Result<(), kube::Error> {
        let desired = lock(&self.known).get(target).map_or(0, |k| k.replicas.desired);
        let api: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
        let patch = serde_json::json!({ "spec": { "replicas": desired } });
        api.patch_scale(&target.revision, &PatchParams::apply(FIELD_MANAGER), &Patch::Merge(&patch)).await?;
        let status = api.get_status(&target.revision).await?.status.unwrap_or_default();
        let count = |v: Option<i32>| u32::try_from(v.unwrap_or(0)).unwrap_or(0);
        let mut known = lock(&self.known);
        let k = known.entry(target.clone()).or_default();
        k.replicas.actual = count(status.replicas);
        k.replicas.ready = count(status.ready_replicas);
        k.error = None;
        Ok(())
    }
}

impl Scaler for KubeScaler {
    fn set_replicas(&self, target: &ScaleTarget, replicas: u32) -> Result<(), ScalerError> {
        let mut known = lock(&self.known);
        let k = known.entry(target.clone()).or_default();
        if k.replicas.desired == replicas && k.error.is_none() && k.replicas.actual == replicas {
            return Ok(()); // already there: no call to the API server
        }
        k.replicas.desired = replicas;
        drop(known);
        self.wanted
            .send(target.clone())
            .map_err(|_| ScalerError::Backend { target: target.key(), message: "the scale worker stopped".into() })
    }

    fn replicas(&self, target: &ScaleTarget) -> Result<Replicas, ScalerError> {
        let known = lock(&self.known);
        let k = known.get(target).ok_or_else(|| ScalerError::UnknownTarget(target.key()))?;
        match &k.error {
            Some(message) => Err(ScalerError::Backend { target: target.key(), message: message.clone() }),
            None => Ok(k.replicas),
        }
    }
}
