//! End-to-end tests of the local platform: a real `weft up` on free loopback
//! ports in a temporary state directory, real `weft instance` processes, the
//! sample guests built from source, driven through the `weft` CLI and HTTP.
//! One test binary (link time), one module per area.

// Helpers fail the test by panicking, and they time real processes, whose clock
// is the wall clock, not tokio's.
#![allow(clippy::unwrap_used, clippy::disallowed_types)]

mod crash;
mod errors;
mod eventing;
mod host;
mod lifecycle;
mod limits;
mod mesh;
mod oci;
mod platform;
mod pod;
mod routing;
mod scaling;
