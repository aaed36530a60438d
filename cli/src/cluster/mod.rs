//! The cluster entry points of the one weft binary (`weft controller`, …)
//! and `weft install`.

pub mod controller;
pub mod eventbus;
pub mod gateway;
pub mod install;

/// Installs ring as rustls's crypto provider, once per process: kube's TLS
/// and reqwest's both use rustls, and with no provider chosen rustls refuses
/// to pick one (see TOOLCHAIN.md).
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
