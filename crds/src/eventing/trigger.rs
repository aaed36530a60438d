//! The `Trigger`: which of a Broker's events go to which subscriber, how.

use super::broker::DeliverySpec;
use super::destination::Destination;
use super::filter::{FilterSpec, LegacyFilter, filters_schema};
use crate::condition::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "eventing.weft.dev",
    version = "v1alpha1",
    kind = "Trigger",
    namespaced,
    status = "TriggerStatus",
    derive = "PartialEq",
    category = "weft",
    doc = "A weft trigger: delivers a Broker's matching events to a subscriber",
    printcolumn(name = "Broker", type_ = "string", json_path = ".spec.broker"),
    printcolumn(name = "Subscriber", type_ = "string", json_path = ".status.subscriberUri"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSpec {
    /// The Broker (same namespace) whose events this Trigger reads.
    pub broker: String,
    /// All must match. See FilterSpec for the dialects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "filters_schema")]
    pub filters: Vec<FilterSpec>,
    /// Knative's legacy exact-match filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<LegacyFilter>,
    pub subscriber: Destination,
    /// Overrides the Broker's delivery defaults field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
    /// `unordered` (default): events are delivered in parallel. `ordered`: one
    /// event in flight per partition key (the `partitionkey` extension, else the
    /// source), in log order.
    #[serde(default)]
    pub ordering: Ordering,
    /// Most deliveries in flight at once (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_in_flight: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum Ordering {
    #[default]
    Unordered,
    Ordered,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink_uri: Option<String>,
}
