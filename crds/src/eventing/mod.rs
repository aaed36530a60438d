//! The `eventing.weft.dev/v1alpha1` resources: Broker, Trigger and PingSource,
//! shaped like Knative Eventing's so a Knative user's YAML needs only the group
//! changed.

pub mod broker;
pub mod destination;
pub mod filter;
pub mod ping;
pub mod trigger;
pub mod validate;

pub use broker::{Addressable, Broker, BrokerSpec, BrokerStatus, DeliverySpec};
pub use destination::{Destination, KReference};
pub use filter::{FilterSpec, LegacyFilter};
pub use ping::{PingSource, PingSourceSpec, PingSourceStatus};
pub use trigger::{Ordering, Trigger, TriggerSpec, TriggerStatus};

/// `apiVersion` of the eventing resources.
pub const EVENTING_API_VERSION: &str = "eventing.weft.dev/v1alpha1";
