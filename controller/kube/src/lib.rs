//! weft's controllers on Kubernetes: the same pure reconcile plans as `weft up`
//! (`weft_controller::plan`), driven by `kube::runtime::Controller`.
//!
//! - [`function`]: Function -> Revisions (a new one when the template
//!   changes) and the Function's status (URL, traffic, conditions).
//! - [`revision`]: Revision -> Deployment + Service (`weft_controller::cluster`)
//!   and the Revision's status from the Deployment's.
//!
//! Objects the controllers create carry owner references, so deleting a
//! Function deletes its Revisions and theirs; no finalizer is needed because
//! no state outside the API server is kept. Failures requeue with an
//! exponential backoff per object ([`backoff`]) and are recorded as Events.

pub mod backoff;
pub mod endpoints;
pub mod function;
pub mod leader;
pub mod metrics;
pub mod revision;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use thiserror::Error;
use weft_autoscaler::Defaults;
use weft_controller::RouteBase;
use weft_controller::cluster::ClusterSettings;
use weft_crds::{Condition, ConditionStatus};
use weft_crds::{Function, Revision};

/// Field manager of every write, as `kubectl` shows it.
pub const MANAGER: &str = "weft-controller";

#[derive(Debug, Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} has no namespace")]
    NoNamespace(String),
}

impl Error {
    /// A short label for the `error` metric: the API status reason
    /// (`Conflict`, `Forbidden`, …) or `client` for transport failures.
    pub fn label(&self) -> String {
        match self {
            Self::Kube(kube::Error::Api(s)) if !s.reason.is_empty() => s.reason.clone(),
            Self::Kube(kube::Error::Api(s)) => format!("http_{}", s.code),
            Self::Kube(_) => "client".into(),
            Self::NoNamespace(_) => "no_namespace".into(),
        }
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub settings: ClusterSettings,
    /// Where functions are reachable (the gateway's domain and port).
    pub base: RouteBase,
    /// Platform autoscaling defaults (a Deployment starts at `initial-scale`).
    pub defaults: Defaults,
    pub recorder: Recorder,
    pub metrics: metrics::Metrics,
    pub backoff: backoff::Backoff,
}

impl Context {
    pub fn new(
        client: Client,
        settings: ClusterSettings,
        base: RouteBase,
        defaults: Defaults,
        metrics: metrics::Metrics,
    ) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        let recorder = Recorder::new(client.clone(), reporter);
        Self { client, settings, base, defaults, recorder, metrics, backoff: backoff::Backoff::default() }
    }

    /// Records a Warning Event on `obj` (shown by `kubectl describe`); a failure
    /// to record is logged, never fatal.
    pub async fn warn<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "record event");
        }
    }
}

/// Requeue after a failure, later each time in a row; records the error.
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(&K::kind(&()), &error.label());
    let key = object_key(&*obj);
    let delay = ctx.backoff.failed(&key);
    tracing::warn!(object = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the Function and Revision controllers until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + 'static) {
    use futures::FutureExt;
    // Both controllers stop on the same signal.
    let shutdown = shutdown.boxed().shared();
    let client = ctx.client.clone();
    let functions = Controller::new(Api::<Function>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Revision>::all(client.clone()), watcher::Config::default())
        .graceful_shutdown_on(shutdown.clone())
        .run(function::reconcile, error_policy::<Function>, ctx.clone())
        .for_each(|_| async {});
    let revisions = Controller::new(Api::<Revision>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), watcher::Config::default().labels(MANAGED))
        .owns(Api::<Service>::all(client), watcher::Config::default().labels(MANAGED))
        .graceful_shutdown_on(shutdown)
        .run(revision::reconcile, error_policy::<Revision>, ctx)
        .for_each(|_| async {});
    futures::join!(functions, revisions);
}

/// Runs one reconcile, counting it and resetting the object's backoff on success.
async fn timed<K: Resource<DynamicType = ()>>(
    obj: &K,
    ctx: &Context,
    work: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let start = tokio::time::Instant::now();
    let result = work.await;
    let kind = K::kind(&());
    ctx.metrics.ran(&kind, result.is_ok(), start.elapsed());
    if result.is_ok() {
        ctx.backoff.succeeded(&object_key(obj));
    }
    result
}

/// `Kind/namespace/name`: an object's key in the backoff table and the logs.
fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}/{}/{}", K::kind(&()), obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Replaces `obj`'s status by server-side apply as `manager` (forced: the
/// status is this controller's alone). Fields it no longer sets disappear,
/// which a merge patch would leave behind.
pub async fn apply_status<K>(
    client: &Client,
    obj: &K,
    manager: &str,
    status: &impl Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let body = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status });
    api.patch_status(&obj.name_any(), &PatchParams::apply(manager).force(), &Patch::Apply(&body)).await.map(drop)
}

/// The `Ready` condition already says False for `reason`: its Warning Event
/// was recorded when it turned so, and is not repeated.
fn failed_already(conditions: Option<&[Condition]>, reason: Option<&str>) -> bool {
    conditions
        .and_then(|c| weft_crds::condition::find(c, "Ready"))
        .is_some_and(|c| c.status == ConditionStatus::False && c.reason.as_deref() == reason)
}

/// Only objects weft made are watched (not every Deployment of the cluster).
const MANAGED: &str = "app.kubernetes.io/managed-by=weft";

fn namespace_of<K: Resource>(obj: &K) -> Result<String, Error> {
    obj.meta().namespace.clone().ok_or_else(|| Error::NoNamespace(obj.meta().name.clone().unwrap_or_default()))
}
