//! A Revision's Deployment and Service.
//!
//! Every Pod runs `weft instance` (the function host and instance proxy, like
//! Knative's queue-proxy) on [`SERVING_PORT`], with its admin port
//! ([`ADMIN_PORT`]: `/healthz` for the readiness probe, `/metrics` for
//! Prometheus, `/stats` for the autoscaler). For an `image` function the
//! user's container runs next to it on [`USER_PORT`] and the instance proxy
//! forwards to it.

use crate::instance::{InstanceConfig, ModuleSource, OciModule};
use crate::plan::controller_ref;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, KeyToPath, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use thiserror::Error;
use weft_crds::quantity::parse_memory;
use weft_crds::{FUNCTION_LABEL, REVISION_LABEL, Revision};

/// The instance proxy's port in every Pod.
pub const SERVING_PORT: u16 = 8080;
/// The instance's admin port.
pub const ADMIN_PORT: u16 = 9090;
/// `$PORT` of a user container (`image` functions).
pub const USER_PORT: u16 = 8081;
/// The module store inside a Pod (an `emptyDir`).
pub const MODULE_DIR: &str = "/var/lib/weft/modules";
/// Where a ConfigMap holding a module is mounted.
const CONFIG_MAP_DIR: &str = "/var/run/weft/module";
/// Where a `wasm.pullSecret` is mounted.
const PULL_SECRET_DIR: &str = "/var/run/weft/registry";
/// Memory an instance needs besides its guests' linear memory.
const HOST_OVERHEAD: u64 = 64 << 20;
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "weft");

/// Platform settings the objects depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// The weft image (`weft instance` runs from it).
    pub image: String,
    /// `WEFT_SIDECAR` of every instance: the gateway's Service, host:port.
    pub sidecar: String,
    /// `WEFT_EVENTS` of every instance: the broker ingress (event bus Service) URL.
    pub events: String,
    /// `containerConcurrency` of revisions that do not set it (0 = unlimited).
    pub container_concurrency: u32,
    /// Registries of `wasm.oci` modules reached over plain HTTP.
    pub insecure_registries: Vec<String>,
}

/// Why a Revision cannot run in a cluster; shown in its `Ready` condition.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error(
        "spec.wasm.path names a file on the machine that applied the Function; in a cluster set wasm.oci, wasm.url or wasm.configMap as well"
    )]
    LocalModule,
    #[error(
        "spec.process runs a program of the machine running weft up; in a cluster package it as a container image (spec.image)"
    )]
    Process,
    #[error("set exactly one of spec.wasm, spec.process or spec.image")]
    NoSource,
    #[error("{0}")]
    Scaling(String),
    #[error("spec.limits.memory: {0}")]
    Memory(String),
    #[error("the revision has no name")]
    Unnamed,
}

impl WorkloadError {
    /// The condition reason, CamelCase as Kubernetes writes them.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::LocalModule => "ModuleUnavailable",
            Self::Process => "Unsupported",
            Self::NoSource | Self::Memory(_) | Self::Scaling(_) | Self::Unnamed => "InvalidSpec",
        }
    }
}

/// Labels of a revision's Deployment, Pods and Service.
pub fn revision_labels(rev: &Revision) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let name = rev.metadata.name.clone().unwrap_or_default();
    let function = rev.metadata.labels.as_ref().and_then(|l| l.get(FUNCTION_LABEL)).cloned().unwrap_or_default();
    labels.insert(FUNCTION_LABEL.to_string(), function);
    labels.insert(REVISION_LABEL.to_string(), name);
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    labels
}

/// The Deployment running `rev`, with `replicas` instances. Its name is the
/// revision's, as the autoscaler's `/scale` target expects.
pub fn revision_deployment(rev: &Revision, s: &ClusterSettings, replicas: i32) -> Result<Deployment, WorkloadError> {
    let name = rev.metadata.name.clone().ok_or(WorkloadError::Unnamed)?;
    let labels = revision_labels(rev);
    let pod = pod_spec(rev, s)?;
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations: Some(scrape_annotations()),
            ..Default::default()
        }),
        spec: Some(pod),
    };
    let selector = BTreeMap::from([(REVISION_LABEL.to_string(), name.clone())]);
    Ok(Deployment {
        metadata: owned_meta(rev, &name, labels),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(selector), ..Default::default() },
            template,
            ..Default::default()
        }),
        status: None,
    })
}

/// The Service in front of `rev`'s Pods; its EndpointSlices tell the gateway
/// which instances are ready.
pub fn revision_service(rev: &Revision) -> Result<Service, WorkloadError> {
    let name = rev.metadata.name.clone().ok_or(WorkloadError::Unnamed)?;
    let port = |name: &str, port: u16| ServicePort {
        name: Some(name.to_string()),
        port: i32::from(port),
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Ok(Service {
        metadata: owned_meta(rev, &name, revision_labels(rev)),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(REVISION_LABEL.to_string(), name.clone())])),
            ports: Some(vec![port("http", SERVING_PORT), port("admin", ADMIN_PORT)]),
            ..Default::default()
        }),
        status: None,
    })
}

/// Metadata of an object the Revision owns: deleting the Revision deletes it.
fn owned_meta(rev: &Revision, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: rev.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![controller_ref(rev)]),
        ..Default::default()
    }
}

fn scrape_annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), ADMIN_PORT.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ])
}

fn pod_spec(rev: &Revision, s: &ClusterSettings) -> Result<PodSpec, WorkloadError> {
    let spec = &rev.spec;
    let memory = parse_memory(spec.memory()).map_err(|e| WorkloadError::Memory(e.to_string()))?;
    let mut config = instance_config(rev, s, memory);
    let mut volumes =
        vec![Volume { name: "modules".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }];
    let mut mounts = vec![mount("modules", MODULE_DIR)];
    let mut containers = Vec::new();
    match (&spec.wasm, &spec.process, &spec.image) {
        (Some(w), None, None) => {
            config.digest = w.digest.clone().unwrap_or_default();
            config.module_source = Some(if let Some(url) = &w.url {
                ModuleSource::Url(url.clone())
            } else if let Some(cm) = &w.config_map {
                volumes.push(Volume {
                    name: "module".into(),
                    config_map: Some(ConfigMapVolumeSource { name: cm.name.clone(), ..Default::default() }),
                    ..Default::default()
                });
                mounts.push(mount("module", CONFIG_MAP_DIR));
                ModuleSource::File(format!("{CONFIG_MAP_DIR}/{}", cm.key()))
            } else if let Some(reference) = &w.oci {
                let credentials = w.pull_secret.as_ref().map(|secret| {
                    volumes.push(pull_secret_volume(secret));
                    mounts.push(mount("registry", PULL_SECRET_DIR));
                    format!("{PULL_SECRET_DIR}/.dockerconfigjson")
                });
                ModuleSource::Oci(OciModule {
                    reference: reference.clone(),
                    credentials,
                    insecure_registries: s.insecure_registries.clone(),
                })
            } else {
                return Err(WorkloadError::LocalModule);
            });
        }
        (None, Some(_), None) => return Err(WorkloadError::Process),
        (None, None, Some(image)) => {
            config.upstream = Some(SocketAddr::from(([127, 0, 0, 1], USER_PORT)));
            containers.push(user_container(image, rev, s));
        }
        _ => return Err(WorkloadError::NoSource),
    }
    let request = spec.wasm.as_ref().map_or(HOST_OVERHEAD, |_| memory + HOST_OVERHEAD);
    containers.insert(0, instance_container(s, &config, mounts, request));
    Ok(PodSpec {
        containers,
        volumes: Some(volumes),
        // Requests in flight finish before the Pod is killed.
        termination_grace_period_seconds: Some(i64::from(spec.timeout_seconds()) + 5),
        enable_service_links: Some(false),
        ..Default::default()
    })
}

fn instance_config(rev: &Revision, s: &ClusterSettings, memory_bytes: u64) -> InstanceConfig {
    let spec = &rev.spec;
    let labels = rev.metadata.labels.as_ref();
    let env = crate::instance_env(&spec.env, &s.sidecar, &s.events);
    InstanceConfig {
        namespace: rev.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        function: labels.and_then(|l| l.get(FUNCTION_LABEL)).cloned().unwrap_or_default(),
        revision: rev.metadata.name.clone().unwrap_or_default(),
        module_dir: MODULE_DIR.into(),
        digest: String::new(),
        env,
        timeout_ms: u64::from(spec.timeout_seconds()) * 1000,
        memory_bytes,
        container_concurrency: spec.container_concurrency.unwrap_or(s.container_concurrency),
        listen: SocketAddr::from(([0, 0, 0, 0], SERVING_PORT)),
        exit_with_parent: false,
        process: None,
        module_source: None,
        admin_listen: Some(SocketAddr::from(([0, 0, 0, 0], ADMIN_PORT))),
        upstream: None,
    }
}

/// The registry credentials of a `wasm.oci` module: the Secret's
/// `.dockerconfigjson` key, read-only, as kubelet reads imagePullSecrets.
fn pull_secret_volume(secret: &str) -> Volume {
    Volume {
        name: "registry".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            items: Some(vec![KeyToPath {
                key: ".dockerconfigjson".into(),
                path: ".dockerconfigjson".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), ..Default::default() }
}

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: i32::from(port), ..Default::default() }
}

fn instance_container(
    s: &ClusterSettings,
    config: &InstanceConfig,
    mounts: Vec<VolumeMount>,
    memory: u64,
) -> Container {
    // Serializing plain strings, numbers and addresses cannot fail.
    let json = serde_json::to_string(config).unwrap_or_default();
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::String("admin".into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(3),
        ..Default::default()
    };
    Container {
        name: "instance".into(),
        image: Some(s.image.clone()),
        args: Some(vec!["instance".into(), "--config".into(), json]),
        ports: Some(vec![port("http", SERVING_PORT), port("admin", ADMIN_PORT)]),
        readiness_probe: Some(probe),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("100m".into())),
                ("memory".to_string(), Quantity(memory.to_string())),
            ])),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn user_container(image: &str, rev: &Revision, s: &ClusterSettings) -> Container {
    let mut env = crate::instance_env(&rev.spec.env, &s.sidecar, &s.events);
    env.push(("PORT".into(), USER_PORT.to_string()));
    let env = env.into_iter().map(|(name, value)| EnvVar { name, value: Some(value), ..Default::default() }).collect();
    Container {
        name: "user".into(),
        image: Some(image.to_string()),
        env: Some(env),
        ports: Some(vec![port("user", USER_PORT)]),
        ..Default::default()
    }
}
