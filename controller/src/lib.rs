//! weft's control plane logic: reconcile plans (pure functions of resource state
//! and an explicit `now`) and the embedded resource store used by `weft up`.
//!
//! The plans must not depend on processes, sockets, wasmtime or kube clients, so
//! the same code drives the local platform and the kube-rs controllers
//! (`weft-controller-kube`); they are tested without any I/O. The store is the local backend of the
//! resource-store seam (the Kubernetes API is the other).

pub mod cluster;
pub mod instance;
pub mod plan;
pub mod store;

pub use instance::{InstanceConfig, ModuleSource, instance_env};
pub use plan::{FunctionPlan, ReplicaState, RouteBase, plan_function, plan_revision_status};
pub use store::{ApplyOutcome, EmbeddedStore, StoreError, WatchEvent};

/// Current time as Kubernetes writes it (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
