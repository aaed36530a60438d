//! The weft event bus.
//!
//! - [`log`]: the `EventLog` seam — append (durable when it returns), read per
//!   consumer group from its committed position, commit — with the embedded
//!   segment log as the default backend.
//! - [`filter`]: Trigger filters (Knative's dialects and a CESQL subset).
//! - [`delivery`]: what a delivery result means and when to retry.

pub mod cloudevent;
pub mod config;
pub mod delivery;
pub mod dispatch;
pub mod filter;
pub mod ingress;
pub mod log;
pub mod metrics;
pub mod ping;
pub mod sender;
pub mod trace;

pub use log::{Consumer, EventLog, Initial, LogError, Record};
