//! The `Broker`: an event log with an ingress address, as Knative's.

use super::destination::Destination;
use crate::condition::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "eventing.weft.dev",
    version = "v1alpha1",
    kind = "Broker",
    namespaced,
    status = "BrokerStatus",
    derive = "PartialEq",
    category = "weft",
    doc = "A weft broker: CloudEvents posted to its address are kept in a durable log and delivered by Triggers",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.address.url"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BrokerSpec {
    /// Delivery defaults for the Broker's Triggers (a Trigger's own fields win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    /// Which event log keeps the events: `embedded` (default) or `kafka`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// Knative's `delivery` spec. Durations are ISO 8601 (`PT0.2S`, `PT1M`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySpec {
    /// Retries after the first attempt (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub retry: Option<i32>,
    /// `exponential` (default) or `linear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<String>,
    /// Base delay of the backoff (default PT0.2S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// Longest wait between two attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
    /// Longest `Retry-After` honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_max: Option<String>,
    /// Per-attempt timeout (default PT30S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Where events go after the last failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where to POST events (Knative's place for the ingress URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct Addressable {
    pub url: String,
}
