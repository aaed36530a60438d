//! The `Function` resource: a template for revisions, a traffic split, and the RPC
//! interfaces it serves. Shaped like a Knative Service.

use crate::condition::Condition;
use crate::revision::RevisionSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a user deploys. Each change of `spec.template` creates a new immutable
/// Revision; `spec.traffic` splits requests between revisions.
// kube's printcolumn(...) lists repeat `type_ = ...`, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "serving.weft.dev",
    version = "v1alpha1",
    kind = "Function",
    namespaced,
    status = "FunctionStatus",
    derive = "PartialEq",
    shortname = "fn",
    category = "weft",
    doc = "A weft function: a template for immutable revisions and a traffic split between them",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "LatestCreated", type_ = "string", json_path = ".status.latestCreatedRevisionName"),
    printcolumn(name = "LatestReady", type_ = "string", json_path = ".status.latestReadyRevisionName"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    /// The revision template; changing it creates a new revision.
    pub template: RevisionTemplate,
    /// How requests are split between revisions. Empty means 100 % to the latest
    /// ready revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    /// RPC interfaces (e.g. `com.example.UserService`) this function serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceSpec>,
    /// How the sidecar protects callers and the function: timeouts, retries,
    /// circuit breaking, rate limits, fault injection. For every protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resilience: Option<ResilienceSpec>,
}

/// Per-route resilience, applied by the sidecar to every protocol.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResilienceSpec {
    /// Longest wait for an answer, per try, in milliseconds. Default: 30 000
    /// for RPC; none at the gateway for HTTP (the revision's `timeoutSeconds`
    /// still applies at the instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3_600_000))]
    pub timeout_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultSpec>,
}

/// Retries. A request that never reached an instance is always tried again
/// (up to `attempts`); one that may have is only for the `methods` listed
/// (idempotent ones) or with `allMethods: true`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetrySpec {
    /// Tries in all, 1–10 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub attempts: Option<u32>,
    /// RPC methods (or HTTP methods) safe to send again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Every method is safe to send again (explicit opt-in).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_methods: bool,
}

/// Outlier ejection: an instance failing `consecutiveFailures` times in a row
/// gets no requests for `ejectSeconds` (unless every instance is ejected).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerSpec {
    #[schemars(range(min = 1))]
    pub consecutive_failures: u32,
    /// Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub eject_seconds: Option<u32>,
}

/// A local token bucket per sidecar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    #[schemars(range(min = 1))]
    pub requests_per_second: u32,
    /// Requests allowed at once above the rate (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Fault injection, for testing callers: delay or fail a share of requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// Percent of requests answered with an error by the sidecar.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub abort_percent: u32,
    /// Percent of requests held for `delayMs` first.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub delay_percent: u32,
    #[serde(default)]
    pub delay_ms: u32,
}

/// Template metadata (scaling annotations live here, as in Knative) and spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevisionTemplate {
    #[serde(default, skip_serializing_if = "TemplateMetadata::is_empty")]
    pub metadata: TemplateMetadata,
    pub spec: RevisionSpec,
}

/// The part of object metadata a template may set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl TemplateMetadata {
    pub fn is_empty(&self) -> bool {
        self.annotations.is_empty() && self.labels.is_empty()
    }
}

/// One entry of the traffic split, as Knative's `TrafficTarget`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// A fixed revision; exclusive with `latestRevision: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// Follow the latest ready revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// Share of requests, 0–100; all entries add up to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<u32>,
    /// Gives the target its own host `<tag>-<function>.<namespace>.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Set in status: the URL of a tagged target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An RPC interface a function serves, for interface-name addressing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceSpec {
    /// Interface name, e.g. `com.example.UserService`.
    pub name: String,
    /// `dubbo`, `bolt`, `wrpc` (the example private protocol), `grpc` or `http`.
    pub protocol: String,
}

/// What the platform reports about a Function.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
    /// The split in force, with `latestRevision` resolved to a revision name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}
