#![allow(clippy::unwrap_used)]

use super::*;
use crate::instance::{InstanceConfig, ModuleSource, OciModule};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use weft_crds::{Document, Revision, parse_documents};

fn settings() -> ClusterSettings {
    ClusterSettings {
        image: "weft:test".into(),
        sidecar: "weft-gateway.weft-system:80".into(),
        events: "http://weft-eventbus.weft-system:80".into(),
        container_concurrency: 0,
        insecure_registries: Vec::new(),
    }
}

/// A revision of `hello` with the given template spec (YAML, indented 4).
fn revision(spec: &str) -> Revision {
    let yaml = format!(
        "apiVersion: serving.weft.dev/v1alpha1\nkind: Function\nmetadata: {{name: hello, namespace: shop}}\nspec:\n  template:\n    spec:\n{spec}"
    );
    let Document::Function(f) = parse_documents(&yaml).unwrap().remove(0) else { panic!("not a function") };
    let plan = crate::plan_function(&f, &[], &crate::RouteBase { domain: "example.com".into(), port: 80 }, "now");
    let mut rev = plan.new_revision.unwrap();
    rev.metadata.uid = Some("rev-uid".into());
    rev
}

fn containers(d: &Deployment) -> Vec<Container> {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers.clone()
}

fn config(c: &Container) -> InstanceConfig {
    let args = c.args.as_ref().unwrap();
    assert_eq!(args[..2], ["instance", "--config"]);
    serde_json::from_str(&args[2]).unwrap()
}

#[test]
fn a_wasm_revision_downloads_its_module_and_pins_its_digest() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let rev = revision(&format!(
        "      wasm: {{url: https://modules.example.com/hello.wasm, digest: \"{digest}\"}}\n      timeoutSeconds: 30\n      limits: {{memory: 64Mi}}\n"
    ));
    let d = revision_deployment(&rev, &settings(), 1).unwrap();
    assert_eq!(d.metadata.name.as_deref(), Some("hello-00001"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("shop"));
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Revision", "rev-uid", Some(true)));
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.selector.match_labels.as_ref().unwrap()["serving.weft.dev/revision"], "hello-00001");
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(35));
    let [instance] = &containers(&d)[..] else { panic!("one container") };
    let cfg = config(instance);
    assert_eq!(cfg.module_source, Some(ModuleSource::Url("https://modules.example.com/hello.wasm".into())));
    assert_eq!(cfg.digest, digest);
    assert_eq!((cfg.namespace.as_str(), cfg.function.as_str()), ("shop", "hello"));
    assert_eq!(cfg.listen.port(), SERVING_PORT);
    assert_eq!(cfg.admin_listen.unwrap().port(), ADMIN_PORT);
    assert_eq!(cfg.timeout_ms, 30_000);
    assert_eq!(cfg.memory_bytes, 64 << 20);
    assert!(cfg.env.contains(&("WEFT_SIDECAR".into(), "weft-gateway.weft-system:80".into())));
    let requests = instance.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["memory"].0, ((64u64 << 20) + (64 << 20)).to_string());
    let probe = instance.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(probe.path.as_deref(), Some("/healthz"));
    let annotations = spec.template.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
    assert_eq!(annotations["prometheus.io/port"], "9090");
}

#[test]
fn a_config_map_module_is_mounted_and_read_from_the_file() {
    let rev = revision("      wasm: {configMap: {name: hello-module}}\n");
    let d = revision_deployment(&rev, &settings(), 0).unwrap();
    let pod = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == "module").unwrap();
    assert_eq!(volume.config_map.unwrap().name, "hello-module");
    let cfg = config(&containers(&d)[0]);
    assert_eq!(cfg.module_source, Some(ModuleSource::File("/var/run/weft/module/module.wasm".into())));
    assert_eq!(cfg.digest, "", "no digest pinned: the mounted bytes are used as they are");
    assert_eq!(d.spec.unwrap().replicas, Some(0));
}

#[test]
fn an_oci_module_is_pulled_with_the_mounted_pull_secret() {
    let rev = revision("      wasm: {oci: \"registry.local:5000/acme/hello:v1\", pullSecret: regcred}\n");
    let mut s = settings();
    s.insecure_registries = vec!["registry.local:5000".into()];
    let d = revision_deployment(&rev, &s, 1).unwrap();
    let cfg = config(&containers(&d)[0]);
    let source = ModuleSource::Oci(OciModule {
        reference: "registry.local:5000/acme/hello:v1".into(),
        credentials: Some("/var/run/weft/registry/.dockerconfigjson".into()),
        insecure_registries: vec!["registry.local:5000".into()],
    });
    assert_eq!(cfg.module_source, Some(source));
    let mounts = containers(&d)[0].volume_mounts.clone().unwrap();
    assert!(mounts.iter().any(|m| m.name == "registry" && m.mount_path == "/var/run/weft/registry"));
    let pod = d.spec.unwrap().template.spec.unwrap();
    let secret = pod.volumes.unwrap().into_iter().find(|v| v.name == "registry").unwrap().secret.unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("regcred"));
    assert_eq!(secret.items.unwrap()[0].key, ".dockerconfigjson");

    let anonymous = revision("      wasm: {oci: ghcr.io/acme/hello:v1}\n");
    let d = revision_deployment(&anonymous, &settings(), 1).unwrap();
    let Some(ModuleSource::Oci(m)) = config(&containers(&d)[0]).module_source else { panic!("an OCI source") };
    assert_eq!((m.credentials, m.insecure_registries.len()), (None, 0));
    assert!(d.spec.unwrap().template.spec.unwrap().volumes.unwrap().iter().all(|v| v.name != "registry"));
}

#[test]
fn a_local_module_path_cannot_run_in_a_cluster() {
    let rev = revision(&format!("      wasm: {{path: hello.wasm, digest: \"sha256:{}\"}}\n", "cd".repeat(32)));
    let err = revision_deployment(&rev, &settings(), 1).unwrap_err();
    assert_eq!(err, WorkloadError::LocalModule);
    assert_eq!(err.reason(), "ModuleUnavailable");
    assert!(err.to_string().contains("wasm.url or wasm.configMap"), "{err}");
}

#[test]
fn a_process_function_needs_an_image_in_a_cluster() {
    let rev = revision("      process: {command: [node, server.js]}\n");
    let err = revision_deployment(&rev, &settings(), 1).unwrap_err();
    assert_eq!((err.clone(), err.reason()), (WorkloadError::Process, "Unsupported"));
}

#[test]
fn an_image_runs_next_to_the_instance_proxy_which_forwards_to_it() {
    let rev = revision(
        "      image: example.com/shop/api:1.2\n      containerConcurrency: 10\n      env: [{name: MODE, value: fast}]\n",
    );
    let d = revision_deployment(&rev, &settings(), 1).unwrap();
    let [instance, user] = &containers(&d)[..] else { panic!("two containers") };
    let cfg = config(instance);
    assert_eq!(cfg.upstream.unwrap().port(), USER_PORT);
    assert_eq!(cfg.container_concurrency, 10);
    assert_eq!(cfg.module_source, None);
    assert_eq!(user.image.as_deref(), Some("example.com/shop/api:1.2"));
    let env: Vec<(String, String)> =
        user.env.clone().unwrap().into_iter().map(|e| (e.name, e.value.unwrap_or_default())).collect();
    assert!(env.contains(&("PORT".into(), "8081".into())) && env.contains(&("MODE".into(), "fast".into())));
}

#[test]
fn the_service_selects_the_revisions_pods_by_named_ports() {
    let rev = revision("      image: example.com/app\n");
    let svc = revision_service(&rev).unwrap();
    assert_eq!(svc.metadata.name.as_deref(), Some("hello-00001"));
    let spec = svc.spec.unwrap();
    assert_eq!(spec.selector.unwrap()["serving.weft.dev/revision"], "hello-00001");
    let ports: Vec<(String, i32)> = spec.ports.unwrap().into_iter().map(|p| (p.name.unwrap(), p.port)).collect();
    assert_eq!(ports, [("http".to_string(), 8080), ("admin".to_string(), 9090)]);
    assert_eq!(revision_labels(&rev)["serving.weft.dev/function"], "hello");
}

mod install {
    use crate::cluster::install::{InstallOptions, objects, yaml};
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    fn snapshot_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/install.yaml")
    }

    #[test]
    fn the_checked_in_install_yaml_is_what_weft_install_prints() {
        let generated = yaml(&InstallOptions::default()).unwrap();
        if std::env::var_os("WEFT_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(snapshot_path(), &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(snapshot_path()).unwrap_or_default();
        assert!(
            on_disk == generated,
            "deploy/install.yaml is out of date: run `WEFT_UPDATE_SNAPSHOTS=1 cargo test -p weft-controller install`"
        );
    }

    /// Parses `v` as `T` and back: a field the type does not know (a typo, a
    /// wrong nesting) would be dropped, and the round trip would differ.
    fn round_trips<T: DeserializeOwned + serde::Serialize>(v: &Value) {
        let typed: T = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(&serde_json::to_value(typed).unwrap(), v, "{} does not round-trip", v["kind"]);
    }

    #[test]
    fn every_object_is_a_valid_kubernetes_object_of_its_kind() {
        let objs = objects(&InstallOptions::default()).unwrap();
        let mut kinds = Vec::new();
        for v in &objs {
            match v["kind"].as_str().unwrap() {
                "Namespace" => round_trips::<Namespace>(v),
                "CustomResourceDefinition" => round_trips::<CustomResourceDefinition>(v),
                "ServiceAccount" => round_trips::<ServiceAccount>(v),
                "ClusterRole" => round_trips::<ClusterRole>(v),
                "ClusterRoleBinding" => round_trips::<ClusterRoleBinding>(v),
                "Deployment" => round_trips::<Deployment>(v),
                "Service" => round_trips::<k8s_openapi::api::core::v1::Service>(v),
                "PersistentVolumeClaim" => round_trips::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(v),
                other => panic!("unexpected kind {other}"),
            }
            kinds.push(v["kind"].as_str().unwrap().to_string());
        }
        assert_eq!(kinds.iter().filter(|k| *k == "CustomResourceDefinition").count(), 5);
        // The snapshot on disk parses too (it is what users apply).
        let text = std::fs::read_to_string(snapshot_path()).unwrap();
        let docs: Vec<Value> = text.split("\n---\n").skip(1).map(|d| yaml_serde::from_str(d).unwrap()).collect();
        assert_eq!(docs, objs);
    }

    #[test]
    fn the_controller_may_do_what_it_does_and_runs_in_the_chosen_namespace() {
        let o = InstallOptions {
            namespace: "serverless".into(),
            image: "registry.example.com/weft:1".into(),
            kafka_bootstrap: Some("kafka.data.svc:9092".into()),
            insecure_registries: vec!["registry.kube-system.svc:5000".into()],
            ..Default::default()
        };
        let objs = objects(&o).unwrap();
        let find = |kind: &str| objs.iter().find(|v| v["kind"] == kind).unwrap().clone();
        let role: ClusterRole = serde_json::from_value(find("ClusterRole")).unwrap();
        assert_eq!(role.metadata.name.as_deref(), Some("weft-controller"));
        let allows = |group: &str, resource: &str, verb: &str| {
            role.rules.as_ref().unwrap().iter().any(|r| {
                r.api_groups.as_ref().unwrap().iter().any(|g| g == group)
                    && r.resources.as_ref().unwrap().iter().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb)
            })
        };
        for (group, resource, verb) in [
            ("serving.weft.dev", "revisions", "create"),
            ("serving.weft.dev", "functions", "watch"),
            ("serving.weft.dev", "functions/status", "patch"),
            ("apps", "deployments", "create"),
            ("apps", "deployments", "patch"),
            ("", "services", "patch"),
            ("events.k8s.io", "events", "create"),
            ("coordination.k8s.io", "leases", "update"),
        ] {
            assert!(allows(group, resource, verb), "{verb} {group}/{resource}");
        }
        assert!(!allows("", "secrets", "get"), "no more than it needs");
        let d: Deployment = serde_json::from_value(find("Deployment")).unwrap();
        assert_eq!(d.metadata.namespace.as_deref(), Some("serverless"));
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("registry.example.com/weft:1"));
        let binding: ClusterRoleBinding = serde_json::from_value(find("ClusterRoleBinding")).unwrap();
        assert_eq!(binding.subjects.unwrap()[0].namespace.as_deref(), Some("serverless"));
        let args = pod.containers[0].args.clone().unwrap();
        assert!(args.contains(&"weft-gateway.serverless.svc:80".to_string()), "instances call the gateway: {args:?}");
        let at = args.iter().position(|a| a == "--insecure-registry").unwrap();
        assert_eq!(args[at + 1], "registry.kube-system.svc:5000");
        let eventbus =
            objs.iter().find(|v| v["kind"] == "Deployment" && v["metadata"]["name"] == "weft-eventbus").unwrap();
        let args = eventbus["spec"]["template"]["spec"]["containers"][0]["args"].clone();
        let args: Vec<String> = serde_json::from_value(args).unwrap();
        let at = args.iter().position(|a| a == "--kafka-bootstrap").unwrap();
        assert_eq!(args[at + 1], "kafka.data.svc:9092");
        assert_eq!(eventbus["spec"]["strategy"]["type"], "Recreate", "one writer of the embedded log's volume");
        assert!(
            objs.iter().any(|v| v["kind"] == "PersistentVolumeClaim" && v["metadata"]["name"] == "weft-eventbus-data")
        );
    }

    #[test]
    fn the_gateway_may_watch_routes_and_endpoints_and_scale_but_not_write_resources() {
        let objs = objects(&InstallOptions::default()).unwrap();
        let named = |kind: &str, name: &str| {
            objs.iter().find(|v| v["kind"] == kind && v["metadata"]["name"] == name).unwrap().clone()
        };
        let role: ClusterRole = serde_json::from_value(named("ClusterRole", "weft-gateway")).unwrap();
        let verbs = |group: &str, resource: &str| -> Vec<String> {
            role.rules
                .as_ref()
                .unwrap()
                .iter()
                .filter(|r| {
                    r.api_groups.as_ref().unwrap().iter().any(|g| g == group)
                        && r.resources.as_ref().unwrap().iter().any(|x| x == resource)
                })
                .flat_map(|r| r.verbs.clone())
                .collect()
        };
        assert_eq!(verbs("discovery.k8s.io", "endpointslices"), ["get", "list", "watch"]);
        assert_eq!(verbs("serving.weft.dev", "functions"), ["get", "list", "watch"]);
        assert!(verbs("apps", "deployments/scale").contains(&"patch".to_string()));
        assert!(verbs("apps", "deployments").is_empty(), "it scales, it does not edit Deployments");
        let svc: k8s_openapi::api::core::v1::Service =
            serde_json::from_value(named("Service", "weft-gateway")).unwrap();
        let port = &svc.spec.unwrap().ports.unwrap()[0];
        assert_eq!((port.port, port.name.as_deref()), (80, Some("http")));
        let d: Deployment = serde_json::from_value(named("Deployment", "weft-gateway")).unwrap();
        assert_eq!(d.spec.as_ref().unwrap().replicas, Some(1), "one autoscaler decides per revision");
        assert_eq!(d.spec.unwrap().template.spec.unwrap().containers[0].args.as_ref().unwrap()[0], "gateway");
    }
}
