//! What the gateway learns from the cluster, as pure functions of watched
//! objects: the ready instances of each revision (from the EndpointSlices of
//! its Service, which carry the Service's labels) and which revisions are
//! routed (from the Functions' status).

use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use weft_crds::{Function, REVISION_LABEL};

/// A revision: (namespace, name).
pub type RevisionId = (String, String);

/// Ready instances of one revision: where requests go, and where `/stats` is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instances {
    pub serving: Vec<SocketAddr>,
    pub admin: Vec<SocketAddr>,
}

/// Ready instances per revision, from all slices (a Service may have several).
/// An endpoint whose `ready` condition is unset counts as ready, as the API
/// documents (a terminating endpoint has it false).
pub fn instances(slices: &[EndpointSlice]) -> BTreeMap<RevisionId, Instances> {
    let mut out: BTreeMap<RevisionId, Instances> = BTreeMap::new();
    for slice in slices {
        let labels = slice.metadata.labels.as_ref();
        let (Some(ns), Some(rev)) = (slice.metadata.namespace.clone(), labels.and_then(|l| l.get(REVISION_LABEL)))
        else {
            continue;
        };
        let port = |name: &str| {
            let p = slice.ports.iter().flatten().find(|p| p.name.as_deref() == Some(name))?;
            u16::try_from(p.port?).ok()
        };
        let entry = out.entry((ns, rev.clone())).or_default();
        let (Some(http), Some(admin)) = (port("http"), port("admin")) else { continue };
        for ep in &slice.endpoints {
            if !ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) {
                continue;
            }
            for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                entry.serving.push(SocketAddr::new(ip, http));
                entry.admin.push(SocketAddr::new(ip, admin));
            }
        }
    }
    for i in out.values_mut() {
        i.serving.sort();
        i.serving.dedup();
        i.admin.sort();
        i.admin.dedup();
    }
    out
}

/// Revisions that may keep instances: those in a Function's resolved traffic
/// (with a share or a tag) and each Function's latest created revision, as
/// `plan_function` decides locally. The others scale to zero.
pub fn routed(functions: &[Function]) -> BTreeSet<RevisionId> {
    let mut out = BTreeSet::new();
    for f in functions {
        let (Some(ns), Some(status)) = (f.metadata.namespace.clone(), f.status.as_ref()) else { continue };
        let named = status.traffic.iter().filter(|t| t.percent.unwrap_or(0) > 0 || t.tag.is_some());
        for name in named.filter_map(|t| t.revision_name.clone()).chain(status.latest_created_revision_name.clone()) {
            out.insert((ns.clone(), name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(rev: &str, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": format!("{rev}-abc"), "namespace": "shop",
                         "labels": {"serving.weft.dev/revision": rev, "kubernetes.io/service-name": rev}},
            "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}],
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn only_ready_endpoints_count_and_slices_of_one_revision_merge() {
        let a = slice(
            "order-00001",
            json!([
                {"addresses": ["10.0.0.5"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.6"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.7"]},
            ]),
        );
        let b = slice(
            "order-00001",
            json!([{"addresses": ["10.0.1.9"], "conditions": {"ready": true, "terminating": false}}]),
        );
        let empty = slice("order-00002", json!([]));
        let got = instances(&[a, b, empty]);
        let one = &got[&("shop".to_string(), "order-00001".to_string())];
        let addrs = |v: &[SocketAddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(addrs(&one.serving), ["10.0.0.5:8080", "10.0.0.7:8080", "10.0.1.9:8080"]);
        assert_eq!(addrs(&one.admin), ["10.0.0.5:9090", "10.0.0.7:9090", "10.0.1.9:9090"]);
        assert_eq!(got[&("shop".to_string(), "order-00002".to_string())], Instances::default(), "known, at zero");
    }

    #[test]
    fn slices_of_other_services_are_ignored() {
        let mut s = slice("x", json!([{"addresses": ["10.0.0.1"]}]));
        s.metadata.labels = Some(BTreeMap::from([("app".to_string(), "other".to_string())]));
        assert!(instances(&[s]).is_empty());
    }

    #[test]
    fn routed_revisions_are_those_with_traffic_or_a_tag_and_the_latest() {
        let f: Function = serde_json::from_value(json!({
            "apiVersion": "serving.weft.dev/v1alpha1", "kind": "Function",
            "metadata": {"name": "order", "namespace": "shop"},
            "spec": {"template": {"spec": {"image": "x"}}},
            "status": {"latestCreatedRevisionName": "order-00004", "traffic": [
                {"revisionName": "order-00001", "percent": 90},
                {"revisionName": "order-00002", "percent": 0, "tag": "canary"},
                {"revisionName": "order-00003", "percent": 0},
                {"revisionName": "order-00002", "percent": 10}]},
        }))
        .unwrap();
        let names: Vec<String> = routed(&[f]).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["order-00001", "order-00002", "order-00004"]);
    }
}
