//! What a function instance is told when it starts: the contract between the
//! platform (the local supervisor, or a cluster Deployment built by
//! [`crate::cluster`]) and `weft instance --config JSON`.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Everything one instance needs, passed as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceConfig {
    pub namespace: String,
    pub function: String,
    pub revision: String,
    /// The module store (precompiled modules by digest).
    pub module_dir: String,
    /// `sha256:<hex>` of the module; empty when `module_source` is given
    /// without a pinned digest (the downloaded bytes are then trusted).
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
    /// Set for a `process` function: the program to run instead of a module
    /// (then `module_dir` and `digest` are unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<weft_crds::ProcessSource>,
    /// Where to get the module when it is not in `module_dir` yet (a cluster
    /// Pod starts with an empty store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_source: Option<ModuleSource>,
    /// The admin port (`/healthz`, `/metrics`, `/stats`); default: a free port
    /// next to `listen`. A Pod needs a fixed one for its probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// Set for an `image` function: the user's container in the same Pod, which
    /// the instance proxy forwards to instead of running a module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<SocketAddr>,
}

/// An instance's environment: the revision's `env`, then what the platform
/// adds — `WEFT_SIDECAR` (the sidecar, host:port) and `WEFT_EVENTS` (the
/// broker ingress URL), locally and in a cluster alike.
pub fn instance_env(spec_env: &[weft_crds::EnvVar], sidecar: &str, events: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec_env.iter().map(|e| (e.name.clone(), e.value.clone())).collect();
    env.push(("WEFT_SIDECAR".into(), sidecar.to_string()));
    env.push(("WEFT_EVENTS".into(), events.to_string()));
    env
}

/// Where a cluster instance fetches its module from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModuleSource {
    /// Downloaded over HTTP(S) when the instance starts.
    Url(String),
    /// A file in the Pod, e.g. a mounted ConfigMap key.
    File(String),
    /// Pulled from an OCI registry when the instance starts.
    Oci(OciModule),
}

/// A wasm artifact in an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciModule {
    /// `registry/repository:tag` or `…@sha256:…`.
    pub reference: String,
    /// A Docker config file (a mounted `kubernetes.io/dockerconfigjson`
    /// Secret) holding the registry's credentials; none: anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// Registries spoken to over plain HTTP. Loopback registries always are,
    /// as Docker treats them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
}
