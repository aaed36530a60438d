//! CRD manifests generated from the Rust types (never hand-edited). The `crdgen`
//! binary writes them to `crds/manifests/`; a test fails when they drift.

use crate::eventing::{Broker, PingSource, Trigger};
use crate::{Function, Revision};
use kube::CustomResourceExt;

/// `(file name, YAML)` of every CRD weft defines.
pub fn manifests() -> Result<Vec<(&'static str, String)>, yaml_serde::Error> {
    Ok(vec![
        ("functions.serving.weft.dev.yaml", yaml_serde::to_string(&Function::crd())?),
        ("revisions.serving.weft.dev.yaml", yaml_serde::to_string(&Revision::crd())?),
        ("brokers.eventing.weft.dev.yaml", yaml_serde::to_string(&Broker::crd())?),
        ("triggers.eventing.weft.dev.yaml", yaml_serde::to_string(&Trigger::crd())?),
        ("pingsources.eventing.weft.dev.yaml", yaml_serde::to_string(&PingSource::crd())?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_manifests_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
        for (file, yaml) in manifests().unwrap() {
            let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(on_disk == yaml, "crds/manifests/{file} is out of date: run `cargo run -p weft-crds --bin crdgen`");
        }
    }
}
