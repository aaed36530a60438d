//! The weft function host: runs WebAssembly functions with wasmtime, one fresh
//! instance per request, under a WAGI-style guest ABI (see `functions/README.md`).
//!
//! - [`engine`]: the wasmtime engine (pooling allocator, epoch interruption).
//! - [`store`]: content-addressed modules and their precompiled (`.cwasm`) forms.
//! - [`host`]: a [`FunctionHost`] per revision, handling one request at a time per call.
//! - [`cgi`]: the request-to-environment mapping and the parser of guest output.
//! - [`outbound`]: HTTP out of a guest, to the sidecar and the broker ingress only.
//!
//! This crate is synchronous and knows nothing of HTTP servers or tokio (a
//! guest's outbound requests use a blocking client):
//! the instance proxy calls [`FunctionHost::handle`] on a blocking thread.

pub mod cgi;
pub mod engine;
pub mod error;
pub mod host;
pub mod outbound;
pub mod store;

pub use cgi::{GuestRequest, GuestResponse};
pub use engine::{EngineOptions, EpochTicker, new_engine};
pub use error::HostError;
pub use host::{FunctionHost, HostLimits, Identity};
pub use outbound::{Outbound, OutboundMetrics};
pub use store::ModuleStore;
