//! weft's API types: the `serving.weft.dev/v1alpha1` custom resources (Function,
//! Revision) and the `eventing.weft.dev/v1alpha1` ones (Broker, Trigger,
//! PingSource), their validation, the YAML documents users apply, and the generated
//! CRD manifests.
//!
//! These are *API* types: they describe what users write and what the platform
//! reports. Code that acts on them (controller, sidecar, function host) converts them
//! into its own small internal types. This crate must not depend on any runtime piece
//! (no tokio, wasmtime, sockets or kube client): it is shared by the CLI, the local
//! platform and the cluster controllers.

pub mod condition;
pub mod crdgen;
pub mod document;
pub mod eventing;
pub mod function;
pub mod names;
pub mod quantity;
pub mod revision;
pub mod validate;

pub use condition::{Condition, ConditionStatus};
pub use document::{Document, DocumentError, parse_documents};
pub use function::{
    CircuitBreakerSpec, FaultSpec, Function, FunctionSpec, FunctionStatus, InterfaceSpec, RateLimitSpec,
    ResilienceSpec, RetrySpec, RevisionTemplate, TemplateMetadata, TrafficTarget,
};
pub use revision::{ConfigMapKey, EnvVar, Limits, ProcessSource, Revision, RevisionSpec, RevisionStatus, WasmSource};
pub use validate::{FieldError, ValidationErrors};

/// API group of the serving resources.
pub const SERVING_GROUP: &str = "serving.weft.dev";
/// API version shared by all weft resources for now.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` string of the serving resources.
pub const SERVING_API_VERSION: &str = "serving.weft.dev/v1alpha1";

/// Annotation prefix for scaling knobs, as Knative's `autoscaling.knative.dev/`.
pub const AUTOSCALING_PREFIX: &str = "autoscaling.weft.dev/";
/// Label set on a Revision naming the Function it belongs to.
pub const FUNCTION_LABEL: &str = "serving.weft.dev/function";
/// Label set on a revision's Deployment, Pods and Service naming the Revision.
pub const REVISION_LABEL: &str = "serving.weft.dev/revision";
/// Label set on a Revision with the Function generation it was created from.
pub const GENERATION_LABEL: &str = "serving.weft.dev/configurationGeneration";
