//! Cluster mode, pure part: the Kubernetes objects that run a Revision (a
//! Deployment and a Service). No client here; `weft-controller-kube` applies
//! them, and their shape is tested without an API server. [`install`] makes
//! the platform's own objects (`weft install`).

pub mod install;
mod workload;

pub use workload::{
    ADMIN_PORT, ClusterSettings, MODULE_DIR, SERVING_PORT, USER_PORT, WorkloadError, revision_deployment,
    revision_labels, revision_service,
};

#[cfg(test)]
mod tests;
