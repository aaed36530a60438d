//! Destinations (a Trigger's subscriber, a dead-letter sink, a PingSource's
//! sink) resolved to where weft sends: a Function through the gateway by host
//! (so it scales from zero), a Broker at its ingress, or a URI as given.

use super::resources::Resources;
use weft_crds::eventing::{Destination, KReference};
use weft_eventbus::sender::Target;

/// Addresses a resolution needs.
pub struct Addresses {
    /// The gateway, `host:port` (a loopback address locally, the gateway's
    /// Service in a cluster).
    pub gateway: String,
    pub domain: String,
    /// `http://host:port` of the broker ingress.
    pub ingress: String,
}

/// A destination that is a Broker, by `namespace/name`.
pub fn broker_ref(d: &Destination, ns: &str) -> Option<String> {
    let r = d.reference.as_ref().filter(|r| r.kind == "Broker")?;
    Some(format!("{}/{}", r.namespace.as_deref().unwrap_or(ns), r.name))
}

/// Resolves `d` for an object in namespace `ns`; the error says what is missing.
pub fn resolve(store: &dyn Resources, a: &Addresses, d: &Destination, ns: &str) -> Result<Target, String> {
    if let Some(uri) = &d.uri {
        return Ok(Target::uri(uri.clone()));
    }
    let Some(r) = &d.reference else {
        return Err("no ref or uri".into());
    };
    let ref_ns = r.namespace.as_deref().unwrap_or(ns);
    match r.kind.as_str() {
        "Function" => {
            exists(store, r, ref_ns)?;
            Ok(Target {
                url: format!("http://{}/", a.gateway),
                host: Some(weft_crds::names::function_host(&r.name, ref_ns, &a.domain)),
            })
        }
        "Broker" => {
            exists(store, r, ref_ns)?;
            Ok(Target::uri(format!("{}/{ref_ns}/{}", a.ingress, r.name)))
        }
        other => Err(format!("weft cannot address a {other}")),
    }
}

fn exists(store: &dyn Resources, r: &KReference, ns: &str) -> Result<(), String> {
    match store.exists(&r.kind, ns, &r.name)? {
        true => Ok(()),
        false => Err(format!("{} {ns}/{} does not exist", r.kind, r.name)),
    }
}
