//! The generated CRD schemas, as the API server would apply them: every
//! example YAML file in `examples/` is accepted, and bad resources are
//! rejected with the field named (as `kubectl apply` would report it).

#![allow(clippy::unwrap_used)]

use kube::CustomResourceExt;
use serde_json::Value;
use std::path::Path;
use weft_crds::eventing::{Broker, PingSource, Trigger};
use weft_crds::{Function, Revision};

/// The `openAPIV3Schema` of the CRD of `kind`.
fn schema(kind: &str) -> Value {
    let crd = match kind {
        "Function" => Function::crd(),
        "Revision" => Revision::crd(),
        "Broker" => Broker::crd(),
        "Trigger" => Trigger::crd(),
        "PingSource" => PingSource::crd(),
        other => panic!("no CRD for {other}"),
    };
    let v = serde_json::to_value(crd).unwrap();
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The paths of the fields the schema rejects in `obj` (empty when valid).
fn rejected(obj: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema(obj["kind"].as_str().unwrap())).unwrap();
    validator.iter_errors(obj).map(|e| e.instance_path().to_string()).collect()
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')))
        .map(|d| yaml_serde::from_str(d).unwrap())
        .collect()
}

#[test]
fn every_example_file_is_accepted() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for dir in std::fs::read_dir(&examples).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                for doc in documents(&path) {
                    assert_eq!(rejected(&doc), Vec::<String>::new(), "{} {}", path.display(), doc["metadata"]["name"]);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 5, "only {checked} example resources found");
}

fn hello() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/function.yaml");
    documents(&path).remove(0)
}

#[test]
fn bad_resources_are_rejected_with_the_field_named() {
    let mut f = hello();
    f["spec"]["template"]["spec"]["timeoutSeconds"] = "thirty".into();
    assert_eq!(rejected(&f), ["/spec/template/spec/timeoutSeconds"]);

    let mut f = hello();
    f["spec"]["template"]["spec"]["timeoutSeconds"] = 7200.into();
    assert_eq!(rejected(&f), ["/spec/template/spec/timeoutSeconds"], "above the 3600 s maximum");

    let mut f = hello();
    f["spec"]["traffic"] = serde_json::json!([{"percent": "all"}]);
    assert_eq!(rejected(&f), ["/spec/traffic/0/percent"]);

    let mut f = hello();
    f["spec"]["template"]["spec"]["env"] = serde_json::json!([{"value": "no name"}]);
    assert_eq!(rejected(&f), ["/spec/template/spec/env/0"], "env entries need a name");

    let mut f = hello();
    f["spec"]["template"]["spec"]["wasm"]["configMap"] = serde_json::json!({"key": "m.wasm"});
    assert_eq!(rejected(&f), ["/spec/template/spec/wasm/configMap"], "a ConfigMap source needs its name");
}
