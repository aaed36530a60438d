//! `weft install`: every object a cluster needs, generated from code (the CRDs
//! from the Rust types, RBAC, and the component Deployments), so the manifests
//! cannot drift from the binary. Components: `weft controller`, `weft
//! gateway` (gateway, activator and autoscaler) and `weft eventbus`. `deploy/install.yaml` is a snapshot of the
//! default output; a test fails when it is out of date.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResourceExt;
use serde_json::Value;
use std::collections::BTreeMap;
use weft_crds::eventing::{Broker, PingSource, Trigger};
use weft_crds::{Function, Revision};

/// What the user chose.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallOptions {
    pub namespace: String,
    /// The weft image every component and instance runs.
    pub image: String,
    /// Domain of function URLs.
    pub domain: String,
    /// Kafka bootstrap servers for Brokers with `spec.backend: kafka`.
    pub kafka_bootstrap: Option<String>,
    /// Registries of `wasm.oci` modules reached over plain HTTP.
    pub insecure_registries: Vec<String>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        Self {
            namespace: "weft-system".into(),
            image: format!("weft:{}", env!("CARGO_PKG_VERSION")),
            domain: "example.com".into(),
            kafka_bootstrap: None,
            insecure_registries: Vec::new(),
        }
    }
}

/// One weft component: a Deployment running `weft <command>`, its own
/// ServiceAccount and ClusterRole, and a Service when others call it.
struct Component {
    name: &'static str,
    args: Vec<String>,
    replicas: i32,
    /// The named port `/metrics` and `/healthz` are served on.
    port: (&'static str, u16),
    /// Port of its Service (none: nobody calls it).
    service_port: Option<u16>,
    rules: Vec<PolicyRule>,
    requests: (&'static str, &'static str),
    memory_limit: &'static str,
    /// A PersistentVolumeClaim and where it is mounted.
    data: Option<(&'static str, &'static str)>,
}

fn components(o: &InstallOptions) -> Vec<Component> {
    let rw = ["get", "list", "watch", "create", "update", "patch"];
    let watch = ["get", "list", "watch"];
    let sidecar = format!("weft-gateway.{}.svc:80", o.namespace);
    let events = format!("http://weft-eventbus.{}.svc:80", o.namespace);
    vec![
        // Two replicas; one leads (a Lease), the other waits to take over.
        Component {
            name: "weft-controller",
            args: controller_args(o, &sidecar, &events),
            replicas: 2,
            port: ("metrics", 9090),
            service_port: None,
            rules: vec![
                rule("serving.weft.dev", &["functions", "revisions"], &rw),
                rule("serving.weft.dev", &["functions/status", "revisions/status"], &["get", "update", "patch"]),
                rule("apps", &["deployments"], &rw),
                rule("", &["services"], &rw),
                rule("events.k8s.io", &["events"], &["create", "patch"]),
                rule("coordination.k8s.io", &["leases"], &["get", "create", "update"]),
            ],
            requests: ("100m", "64Mi"),
            memory_limit: "256Mi",
            data: None,
        },
        // Gateway, activator and autoscaler in one process (see
        // cli/src/cluster/gateway.rs); one replica, one decider per revision.
        Component {
            name: "weft-gateway",
            args: vec!["gateway".into(), "--domain".into(), o.domain.clone()],
            replicas: 1,
            port: ("http", 8080),
            service_port: Some(80),
            rules: vec![
                rule("serving.weft.dev", &["functions", "revisions"], &watch),
                rule("discovery.k8s.io", &["endpointslices"], &watch),
                rule("apps", &["deployments/scale"], &["get", "update", "patch"]),
                rule("apps", &["deployments/status"], &["get"]),
            ],
            requests: ("500m", "128Mi"),
            memory_limit: "1Gi",
            data: None,
        },
        // Broker ingress, Trigger dispatchers, PingSources. One replica: a
        // Trigger has one dispatcher, and the embedded log one writer.
        Component {
            name: "weft-eventbus",
            args: eventbus_args(o),
            replicas: 1,
            port: ("http", 8080),
            service_port: Some(80),
            rules: vec![
                rule("eventing.weft.dev", &["triggers", "pingsources"], &watch),
                // `patch`: the finalizer that keeps a Broker until its log is deleted.
                rule("eventing.weft.dev", &["brokers"], &["get", "list", "watch", "patch"]),
                rule(
                    "eventing.weft.dev",
                    &["brokers/status", "triggers/status", "pingsources/status"],
                    &["get", "update", "patch"],
                ),
                rule("serving.weft.dev", &["functions"], &watch),
            ],
            requests: ("200m", "128Mi"),
            memory_limit: "1Gi",
            data: Some(("weft-eventbus-data", "/var/lib/weft/events")),
        },
    ]
}

fn controller_args(o: &InstallOptions, sidecar: &str, events: &str) -> Vec<String> {
    let mut args: Vec<String> =
        ["controller", "--domain", &o.domain, "--sidecar", sidecar, "--events", events].map(String::from).to_vec();
    for r in &o.insecure_registries {
        args.extend(["--insecure-registry".to_string(), r.clone()]);
    }
    args
}

fn eventbus_args(o: &InstallOptions) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "eventbus".into(),
        "--domain".into(),
        o.domain.clone(),
        "--gateway".into(),
        format!("weft-gateway.{}.svc:80", o.namespace),
        "--ingress-url".into(),
        format!("http://weft-eventbus.{}.svc", o.namespace),
    ];
    if let Some(k) = &o.kafka_bootstrap {
        args.extend(["--kafka-bootstrap".to_string(), k.clone()]);
    }
    args
}

/// The embedded log's volume: events survive a restart of the Pod.
fn claim_of(o: &InstallOptions, name: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(name, Some(&o.namespace)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity("1Gi".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Every object, in the order `kubectl apply` should create them.
pub fn objects(o: &InstallOptions) -> Result<Vec<Value>, serde_json::Error> {
    let mut out = vec![serde_json::to_value(namespace(o))?];
    for crd in [Function::crd(), Revision::crd(), Broker::crd(), Trigger::crd(), PingSource::crd()] {
        out.push(serde_json::to_value(crd)?);
    }
    for c in components(o) {
        out.push(serde_json::to_value(service_account(o, c.name))?);
        out.push(serde_json::to_value(role(c.name, c.rules.clone()))?);
        out.push(serde_json::to_value(binding(o, c.name))?);
        if let Some((claim, _)) = c.data {
            out.push(serde_json::to_value(claim_of(o, claim))?);
        }
        out.push(serde_json::to_value(deployment(o, &c))?);
        if let Some(svc) = service(o, &c) {
            out.push(serde_json::to_value(svc)?);
        }
    }
    Ok(out)
}

/// The objects as one multi-document YAML stream.
pub fn yaml(o: &InstallOptions) -> Result<String, InstallError> {
    let mut text = String::from("# Generated by `weft install`; do not edit.\n");
    for obj in objects(o)? {
        text.push_str("---\n");
        text.push_str(&yaml_serde::to_string(&obj)?);
    }
    Ok(text)
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("serialize: {0}")]
    Json(#[from] serde_json::Error),
    #[error("serialize: {0}")]
    Yaml(#[from] yaml_serde::Error),
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), name.to_string()),
            ("app.kubernetes.io/part-of".to_string(), "weft".to_string()),
        ])),
        ..Default::default()
    }
}

fn namespace(o: &InstallOptions) -> Namespace {
    Namespace { metadata: meta(&o.namespace, None), ..Default::default() }
}

fn service_account(o: &InstallOptions, name: &str) -> ServiceAccount {
    ServiceAccount { metadata: meta(name, Some(&o.namespace)), ..Default::default() }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

/// Exactly what the component calls, nothing more.
fn role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole { metadata: meta(name, None), rules: Some(rules), ..Default::default() }
}

fn binding(o: &InstallOptions, name: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(o.namespace.clone()),
            ..Default::default()
        }]),
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn healthz(port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([("cpu".to_string(), Quantity(cpu.into())), ("memory".to_string(), Quantity(memory.into()))])
}

fn deployment(o: &InstallOptions, c: &Component) -> Deployment {
    let m = meta(c.name, Some(&o.namespace));
    let labels = m.labels.clone();
    let (port_name, port) = c.port;
    let container = Container {
        name: c.args[0].clone(),
        image: Some(o.image.clone()),
        args: Some(c.args.clone()),
        env: Some(vec![
            EnvVar { name: "WEFT_IMAGE".into(), value: Some(o.image.clone()), ..Default::default() },
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(port_name.into()),
            container_port: i32::from(port),
            ..Default::default()
        }]),
        readiness_probe: Some(healthz(port_name)),
        liveness_probe: Some(healthz(port_name)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(c.requests.0, c.requests.1)),
            limits: Some(BTreeMap::from([("memory".to_string(), Quantity(c.memory_limit.into()))])),
            ..Default::default()
        }),
        volume_mounts: c.data.map(|(claim, path)| {
            vec![VolumeMount { name: claim.into(), mount_path: path.into(), ..Default::default() }]
        }),
        ..Default::default()
    };
    let volumes = c.data.map(|(claim, _)| {
        vec![Volume {
            name: claim.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.into(),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let annotations = BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), port.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ]);
    Deployment {
        metadata: m,
        spec: Some(DeploymentSpec {
            replicas: Some(c.replicas),
            // A volume of one writer: the old Pod stops before the new starts.
            strategy: c.data.map(|_| DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            selector: LabelSelector { match_labels: labels.clone(), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels, annotations: Some(annotations), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(c.name.into()),
                    containers: vec![container],
                    volumes,
                    // The image runs as 65532 (deploy/Dockerfile): the volume
                    // must be writable by that group.
                    security_context: c
                        .data
                        .map(|_| PodSecurityContext { fs_group: Some(65532), ..Default::default() }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn service(o: &InstallOptions, c: &Component) -> Option<Service> {
    let port = c.service_port?;
    let m = meta(c.name, Some(&o.namespace));
    Some(Service {
        spec: Some(ServiceSpec {
            selector: m.labels.clone(),
            ports: Some(vec![ServicePort {
                name: Some(c.port.0.into()),
                port: i32::from(port),
                target_port: Some(IntOrString::String(c.port.0.into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        metadata: m,
        status: None,
    })
}
