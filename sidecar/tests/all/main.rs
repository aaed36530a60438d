//! The sidecar's HTTP roles over real loopback sockets, with a small test handler
//! or a plain hyper upstream standing in for the function.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dns;
mod fast_path;
mod gateway;
mod grpc;
mod instance_proxy;
mod interop;
mod rpc;
mod support;
