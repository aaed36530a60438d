//! The `Revision` resource: an immutable snapshot of a Function's template.

use crate::condition::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default request deadline, as Knative's `timeoutSeconds`.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 300;
/// Longest request deadline accepted.
pub const MAX_TIMEOUT_SECONDS: u32 = 3600;
/// Default linear-memory cap of a wasm instance.
pub const DEFAULT_MEMORY: &str = "128Mi";
/// Largest memory cap: all a 32-bit wasm memory can address.
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;

/// The template spec of a Function, and the spec of each Revision made from it.
/// Exactly one of `wasm`, `process` or `image` says what runs.
// kube's printcolumn(...) lists repeat `type_ = ...`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "serving.weft.dev",
    version = "v1alpha1",
    kind = "Revision",
    namespaced,
    status = "RevisionStatus",
    derive = "PartialEq",
    shortname = "rev",
    category = "weft",
    doc = "An immutable snapshot of a Function's template",
    printcolumn(name = "Function", type_ = "string", json_path = ".metadata.labels.serving\\.weft\\.dev/function"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].reason"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.desiredReplicas"),
    printcolumn(name = "Actual", type_ = "integer", json_path = ".status.actualReplicas"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// A WebAssembly module (WASI preview 1, WAGI-style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmSource>,
    /// An ordinary program that serves HTTP on `$PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessSource>,
    /// A container image (cluster mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment given to the function; nothing else from the host is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Hard limit of requests in flight per instance; 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<u32>,
    /// Request deadline in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

impl RevisionSpec {
    /// The deadline in force.
    pub fn timeout_seconds(&self) -> u32 {
        self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)
    }

    /// The memory cap as written, or the default.
    pub fn memory(&self) -> &str {
        self.limits.as_ref().and_then(|l| l.memory.as_deref()).unwrap_or(DEFAULT_MEMORY)
    }
}

/// Where a wasm module comes from. `weft apply` uploads a local `path` and records
/// its `digest`, so a revision pins the exact bytes it was created with (as Knative
/// resolves image tags to digests).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WasmSource {
    /// A local file, relative to the YAML file that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// An HTTP(S) URL (cluster mode: the instance downloads it when it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A key of a ConfigMap in the function's namespace (cluster mode, for
    /// modules under ConfigMap's 1 MiB limit), mounted into the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapKey>,
    /// An OCI reference (`registry/repository:tag` or `…@sha256:…`) of a wasm
    /// artifact, as `weft push` or `wkg`/`oras` write it (cluster mode: the
    /// instance pulls it when it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret in the function's namespace
    /// with credentials for `oci`'s registry (as a Pod's imagePullSecrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<String>,
    /// `sha256:<hex>` of the module bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One key of a ConfigMap holding module bytes (`binaryData`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct ConfigMapKey {
    pub name: String,
    /// Default: `module.wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ConfigMapKey {
    pub const DEFAULT_KEY: &str = "module.wasm";

    /// The key in force.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(Self::DEFAULT_KEY)
    }
}

/// A program run as the function, e.g. an existing service joining the mesh.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSource {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// One environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// Resource limits of one instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct Limits {
    /// Linear-memory cap, as a Kubernetes quantity (`64Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// What the platform reports about a Revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Instances the scaler was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Instances running (ready or starting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<i32>,
    /// Instances that pass their readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
}
