//! weft's data plane. This first slice holds the pieces every protocol shares and
//! the two HTTP roles:
//!
//! - [`routing`]: the route table (host, path and tag routes to a function, and a
//!   weighted pick of a revision). Pure and protocol-neutral, so the RPC codecs
//!   reuse it: they resolve a route by interface name instead of host.
//! - [`endpoints`]: ready instance addresses per revision, and the pick among them.
//! - [`gateway`]: the north-south role (HTTP/1.1 and HTTP/2 via hyper).
//! - [`instance_proxy`]: the role in front of one function instance (concurrency
//!   limit, queue, deadline, metrics), like Knative's queue-proxy.
//! - [`proto`]: the `Protocol` seam (detect, decode a frame header, rewrite the
//!   request id, heartbeat and error replies) and the RPC codecs: Dubbo 2,
//!   Bolt v1/v2 and the `wrpc` example.
//! - [`rpc`]: RPC requests on the gateway's port, routed by interface name
//!   through the same routes, split, endpoints and activator as HTTP.
//! - [`addressing`] and [`dns`]: interface-name addressing — a loopback
//!   address per function and a DNS responder (hickory-server) for its names.
//!
//! The decision code (routing, split) must not depend on sockets or the runtime.

pub mod activator;
pub mod addressing;
pub mod dns;
pub mod endpoints;
pub mod gateway;
pub mod grpc;
pub mod guard;
pub mod http_util;
pub mod instance_proxy;
mod memo;
pub mod metrics;
pub mod proto;
pub mod resilience;
pub mod rewind;
pub mod routing;
pub mod rpc;
pub mod serve;
pub mod stats;
pub mod trace;

pub use activator::{Activation, Activator};
pub use endpoints::Endpoints;
pub use gateway::{Gateway, GatewayConfig, GatewayWorker};
pub use instance_proxy::{Handler, HandlerRequest, InstanceProxy, InstanceProxyConfig};
pub use routing::{FunctionRoute, Resolved, RouteTable, ServiceError, WeightedSplit};
