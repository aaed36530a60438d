//! Knative's `Destination` duck type: where events go, as an object reference
//! (resolved to its address by weft) or a plain URI.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Exactly one of `ref` and `uri`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// A Function (`serving.weft.dev/v1alpha1`) or a Broker (`eventing.weft.dev/v1alpha1`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    /// An absolute `http://` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// A reference to an object weft knows how to address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct KReference {
    /// `Function` or `Broker`.
    pub kind: String,
    /// Defaults by kind: `serving.weft.dev/v1alpha1` for Function,
    /// `eventing.weft.dev/v1alpha1` for Broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub name: String,
    /// Defaults to the referring object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
