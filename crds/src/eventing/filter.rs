//! The Trigger filter dialects, as Knative's `spec.filters` (recursive) and the
//! legacy `spec.filter.attributes` map. Compiled and matched by weft-eventbus.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One entry of a Trigger's `spec.filters` (exactly one dialect set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<FilterSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<FilterSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<FilterSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cesql: Option<String>,
}

/// Knative's legacy filter: each listed attribute must equal its value (an
/// empty value matches any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LegacyFilter {
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The schema of `spec.filters`. A structural CRD schema cannot be recursive,
/// so (as Knative does) the entries are free-form objects in the API server and
/// checked by weft when the Trigger is applied.
pub fn filters_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "description": "Filters (all must match); each has exactly one of exact, prefix, suffix, all, any, not, cesql",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}
