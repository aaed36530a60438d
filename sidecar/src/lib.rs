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
//!
//! The decision code (routing, split) must not depend on sockets or the runtime.

pub mod activator;
pub mod endpoints;
pub mod gateway;
pub mod guard;
pub mod http_util;
pub mod instance_proxy;
pub mod metrics;
pub mod proto;
pub mod routing;
pub mod serve;
pub mod stats;
pub mod trace;

pub use activator::{Activation, Activator};
pub use endpoints::Endpoints;
pub use gateway::{Gateway, GatewayConfig, GatewayWorker};
pub use instance_proxy::{Handler, HandlerRequest, InstanceProxy, InstanceProxyConfig};
pub use routing::{FunctionRoute, Resolved, RouteTable, WeightedSplit};
