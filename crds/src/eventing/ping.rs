//! The `PingSource`: a cron schedule that sends a fixed event to a sink.

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
    kind = "PingSource",
    namespaced,
    status = "PingSourceStatus",
    derive = "PartialEq",
    category = "weft",
    doc = "Sends an event with fixed data to a sink on a cron schedule",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Sink", type_ = "string", json_path = ".status.sinkUri"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type=='Ready')].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct PingSourceSpec {
    /// Cron schedule, five fields (`*/1 * * * *`), or six with seconds first.
    pub schedule: String,
    /// IANA time zone of the schedule (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Media type of `data` (default `application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The event's data, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    pub sink: Destination,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PingSourceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    /// When the last event was sent (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent_time: Option<String>,
}
