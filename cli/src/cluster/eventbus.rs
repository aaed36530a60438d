//! `weft eventbus`: the broker ingress, Trigger dispatchers and PingSources of
//! a cluster. It is the same eventing controller as `weft up`'s
//! (`up::eventing`), reading Brokers, Triggers, PingSources and Functions from
//! the API server, and writing their status there. Brokers with
//! `spec.backend: kafka` use Kafka (`--kafka-bootstrap`). The others use the
//! embedded log on the component's volume (`--data`, a PersistentVolumeClaim
//! in `weft install`'s manifests).

use crate::up::eventing::{Addresses, Eventing, Resources};
use anyhow::{Context as _, Result};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use weft_crds::Function;
use weft_crds::eventing::{Broker, PingSource, Trigger};
use weft_eventbus::EventLog;
use weft_eventbus::ingress::Ingress;
use weft_eventbus::log::embedded::{EmbeddedConfig, EmbeddedLog};
use weft_eventbus::log::kafka::KafkaLog;
use weft_eventbus::metrics::EventbusMetrics;
use weft_eventbus::sender::HttpSender;
use weft_eventbus::trace::Traces;

/// How long `weft events trace`-style records are kept (as locally).
const TRACE_RETENTION: std::time::Duration = std::time::Duration::from_secs(3600);
const MANAGER: &str = "weft-eventbus";
/// Held on every Broker: its log (a Kafka topic, or files on the event bus's
/// volume) is state outside Kubernetes, deleted before the Broker may go.
pub const LOG_FINALIZER: &str = "eventing.weft.dev/event-log";

#[derive(clap::Args, Clone)]
pub struct EventbusArgs {
    /// Broker ingress (POST /<namespace>/<broker>), `/metrics`, `/healthz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Kafka bootstrap servers, for Brokers with `spec.backend: kafka`.
    #[arg(long, env = "WEFT_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,
    /// The embedded log of the other Brokers.
    #[arg(long, default_value = "/var/lib/weft/events")]
    pub data: PathBuf,
    /// The gateway, host:port: events to Functions go through it (so they scale from zero).
    #[arg(long, default_value = "weft-gateway.weft-system.svc:80")]
    pub gateway: String,
    /// Domain of function hosts (as the gateway's).
    #[arg(long, default_value = "example.com")]
    pub domain: String,
    /// This component's own URL, the Brokers' address in their status.
    #[arg(long, default_value = "http://weft-eventbus.weft-system.svc")]
    pub ingress_url: String,
}

/// The eventing resources as reflectors see them; status written through the API.
struct KubeResources {
    client: Client,
    brokers: Store<Broker>,
    triggers: Store<Trigger>,
    pings: Store<PingSource>,
    functions: Store<Function>,
}

fn all<K: Clone + Resource<DynamicType = ()>>(store: &Store<K>) -> Vec<K> {
    store.state().iter().map(|o| (**o).clone()).collect()
}

impl KubeResources {
    /// Applies `status` to the `K` named, unless it already has exactly that
    /// (every resync would write otherwise).
    async fn write<K>(&self, store: &Store<K>, ns: &str, name: &str, status: Value) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
    {
        let Some(obj) = store.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(()); // deleted since the reconcile listed it
        };
        if serde_json::to_value(&*obj).ok().and_then(|v| v.get("status").cloned()).as_ref() == Some(&status) {
            return Ok(());
        }
        weft_controller_kube::apply_status(&self.client, &*obj, MANAGER, &status).await
    }
}

impl KubeResources {
    /// Sets the Broker's finalizers to `want`, conditional on the version read
    /// (a concurrent change makes this a 409, retried on the next pass).
    async fn set_finalizers(&self, b: &Broker, want: Vec<String>) -> Result<(), String> {
        let (ns, name) =
            (b.metadata.namespace.as_deref().unwrap_or("default"), b.metadata.name.as_deref().unwrap_or(""));
        let patch =
            serde_json::json!({"metadata": {"finalizers": want, "resourceVersion": b.metadata.resource_version}});
        let api: kube::Api<Broker> = kube::Api::namespaced(self.client.clone(), ns);
        api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| format!("set the finalizers of Broker {ns}/{name}: {e}"))
    }
}

fn finalizers(b: &Broker) -> Vec<String> {
    b.metadata.finalizers.clone().unwrap_or_default()
}

impl Resources for KubeResources {
    fn hold<'a>(&'a self, b: &'a Broker) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut f = finalizers(b);
            if f.iter().any(|x| x == LOG_FINALIZER) {
                return Ok(());
            }
            f.push(LOG_FINALIZER.to_string());
            self.set_finalizers(b, f).await
        })
    }

    fn release<'a>(&'a self, b: &'a Broker) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let f = finalizers(b);
            if !f.iter().any(|x| x == LOG_FINALIZER) {
                return Ok(());
            }
            self.set_finalizers(b, f.into_iter().filter(|x| x != LOG_FINALIZER).collect()).await
        })
    }

    fn brokers(&self) -> Result<Vec<Broker>, String> {
        Ok(all(&self.brokers))
    }

    fn triggers(&self) -> Result<Vec<Trigger>, String> {
        Ok(all(&self.triggers))
    }

    fn pingsources(&self) -> Result<Vec<PingSource>, String> {
        Ok(all(&self.pings))
    }

    fn exists(&self, kind: &str, ns: &str, name: &str) -> Result<bool, String> {
        match kind {
            "Function" => Ok(self.functions.get(&ObjectRef::new(name).within(ns)).is_some()),
            "Broker" => Ok(self.brokers.get(&ObjectRef::new(name).within(ns)).is_some()),
            other => Err(format!("weft cannot address a {other}")),
        }
    }

    fn write_status<'a>(
        &'a self,
        kind: &'a str,
        ns: &'a str,
        name: &'a str,
        status: Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let r = match kind {
                "Broker" => self.write(&self.brokers, ns, name, status).await,
                "Trigger" => self.write(&self.triggers, ns, name, status).await,
                _ => self.write(&self.pings, ns, name, status).await,
            };
            r.map_err(|e| format!("write {kind} {ns}/{name} status: {e}"))
        })
    }
}

/// Starts the four watches; the stream yields once per change of any of them.
fn watch(client: Client) -> (KubeResources, BoxStream<'static, ()>) {
    let all = watcher::Config::default;
    let (brokers, b) = super::watched::<Broker>(&client, all());
    let (triggers, t) = super::watched::<Trigger>(&client, all());
    let (pings, p) = super::watched::<PingSource>(&client, all());
    let (functions, f) = super::watched::<Function>(&client, all());
    let changes = futures::stream::select_all([b, t, p, f]).boxed();
    (KubeResources { client, brokers, triggers, pings, functions }, changes)
}

pub async fn run(args: EventbusArgs) -> Result<()> {
    let client = super::client().await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind the broker ingress on {}", args.listen))?;
    let mut registry = Registry::default();
    let metrics = EventbusMetrics::register(&mut registry);
    let traces = Arc::new(Traces::new(TRACE_RETENTION, 100_000));
    let ingress = Arc::new(Ingress::new(traces.clone(), metrics.clone()));
    let embedded: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&args.data, EmbeddedConfig::default())?);
    let kafka: Option<Arc<dyn EventLog>> = match &args.kafka_bootstrap {
        Some(bootstrap) => Some(Arc::new(KafkaLog::connect(bootstrap).await?)),
        None => None,
    };
    let (resources, changes) = watch(client);
    let eventing = Arc::new(Eventing {
        store: Arc::new(resources),
        embedded,
        kafka,
        ingress: ingress.clone(),
        sender: Arc::new(HttpSender::new()?),
        traces,
        metrics,
        addresses: Addresses { gateway: args.gateway, domain: args.domain, ingress: args.ingress_url },
        running: Default::default(),
        logs: Default::default(),
    });
    let shutdown = CancellationToken::new();
    let controller = tokio::spawn(eventing.run(changes, shutdown.clone()));
    let registry = Arc::new(registry);
    let router = ingress.router().merge(super::ops_routes(registry));
    tracing::info!(listen = %args.listen, kafka = ?args.kafka_bootstrap, "weft eventbus is up");
    let stop = shutdown.clone();
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await });
    tokio::select! {
        r = serve => r.context("broker ingress")?,
        _ = crate::signals::wait_for_shutdown() => {}
    }
    shutdown.cancel();
    let _ = controller.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::reflector;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower_test::mock::{Handle, pair};

    type ApiServer = Handle<Request<Body>, Response<Body>>;

    fn obj<K: DeserializeOwned>(v: Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    /// A subscriber on loopback: sends the raw text of each request it gets.
    async fn subscriber() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(read_request(&mut s).await);
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                });
            }
        });
        (url, rx)
    }

    /// Head and body of one request (the body by its Content-Length).
    async fn read_request(s: &mut tokio::net::TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    return text;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&data).to_string(),
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Answers one patch (a status, or a Broker's finalizers); returns its path and body.
    async fn patched(api: &mut ApiServer) -> (String, Value) {
        let (req, send) = api.next_request().await.unwrap();
        assert_eq!(req.method(), http::Method::PATCH);
        let path = req.uri().path().to_string();
        let body: Value = serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
        let reply = json!({"apiVersion": "eventing.weft.dev/v1alpha1", "kind": "Broker", "metadata": {"name": "x"}, "spec": {}});
        send.send_response(Response::builder().body(Body::from(serde_json::to_vec(&reply).unwrap())).unwrap());
        (path, body)
    }

    /// The event bus's controller over `resources`, on `log`, its ingress
    /// named `ingress_url` in status; started at once. Cancelling the token
    /// stops it, and the task then ends.
    fn start(
        resources: KubeResources,
        log: EmbeddedLog,
        ingress_url: &str,
    ) -> (Arc<Eventing>, CancellationToken, tokio::task::JoinHandle<()>) {
        let traces = Arc::new(Traces::new(TRACE_RETENTION, 1000));
        let metrics = EventbusMetrics::detached();
        let eventing = Arc::new(Eventing {
            store: Arc::new(resources),
            embedded: Arc::new(log),
            kafka: None,
            ingress: Arc::new(Ingress::new(traces.clone(), metrics.clone())),
            sender: Arc::new(HttpSender::new().unwrap()),
            traces,
            metrics,
            addresses: Addresses {
                gateway: "127.0.0.1:1".into(),
                domain: "example.com".into(),
                ingress: ingress_url.into(),
            },
            running: Default::default(),
            logs: Default::default(),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(eventing.clone().run(futures::stream::pending().boxed(), shutdown.clone()));
        (eventing, shutdown, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn brokers_and_triggers_from_the_api_deliver_events_and_report_status_there() {
        let (service, mut api) = pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (brokers, mut bw) = reflector::store::<Broker>();
        let (triggers, mut tw) = reflector::store::<Trigger>();
        let (pings, _pw) = reflector::store::<PingSource>();
        let (functions, _fw) = reflector::store::<Function>();
        let (url, mut delivered) = subscriber().await;
        bw.apply_watcher_event(&watcher::Event::Apply(obj(json!({
            "apiVersion": "eventing.weft.dev/v1alpha1", "kind": "Broker",
            "metadata": {"name": "default", "namespace": "default", "generation": 1}, "spec": {}}))));
        tw.apply_watcher_event(&watcher::Event::Apply(obj(json!({
            "apiVersion": "eventing.weft.dev/v1alpha1", "kind": "Trigger",
            "metadata": {"name": "orders", "namespace": "default", "uid": "t-uid-123456", "generation": 1},
            "spec": {"broker": "default", "filters": [{"exact": {"type": "order.created"}}],
                     "subscriber": {"uri": url}}}))));
        let resources = KubeResources { client, brokers, triggers, pings, functions };
        assert_eq!(resources.exists("Broker", "default", "default"), Ok(true));
        assert_eq!(resources.exists("Function", "default", "hello"), Ok(false));
        assert!(resources.exists("Service", "default", "x").is_err());

        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        let (eventing, shutdown, task) = start(resources, log, "http://weft-eventbus.weft-system.svc");

        // First the finalizer that keeps the Broker until its log is deleted.
        let (path, body) = patched(&mut api).await;
        assert_eq!(path, "/apis/eventing.weft.dev/v1alpha1/namespaces/default/brokers/default");
        assert_eq!(body["metadata"]["finalizers"], json!([LOG_FINALIZER]));
        let (path, body) = patched(&mut api).await;
        assert_eq!(path, "/apis/eventing.weft.dev/v1alpha1/namespaces/default/brokers/default/status");
        assert_eq!(body["status"]["address"]["url"], "http://weft-eventbus.weft-system.svc/default/default");
        assert_eq!(body["status"]["conditions"][0]["status"], "True");
        let (path, body) = patched(&mut api).await;
        assert_eq!(path, "/apis/eventing.weft.dev/v1alpha1/namespaces/default/triggers/orders/status");
        assert_eq!(body["status"]["subscriberUri"], url);

        // An event into the ingress reaches the subscriber the Trigger names.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ingress = eventing.ingress.clone();
        tokio::spawn(async move { axum::serve(listener, ingress.router()).await });
        crate::cluster::tls_provider();
        let resp = reqwest::Client::new()
            .post(format!("http://{addr}/default/default"))
            .header("ce-specversion", "1.0")
            .header("ce-id", "order-1")
            .header("ce-source", "/shop")
            .header("ce-type", "order.created")
            .header("content-type", "application/json")
            .body(r#"{"total": 12}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), delivered.recv()).await.unwrap().unwrap();
        assert!(got.to_ascii_lowercase().contains("ce-id: order-1") && got.contains("\"total\""), "{got}");
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_broker_loses_its_log_then_its_finalizer() {
        let (service, mut api) = pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (brokers, mut bw) = reflector::store::<Broker>();
        let (triggers, _tw) = reflector::store::<Trigger>();
        let (pings, _pw) = reflector::store::<PingSource>();
        let (functions, _fw) = reflector::store::<Function>();
        bw.apply_watcher_event(&watcher::Event::Apply(obj(json!({
            "apiVersion": "eventing.weft.dev/v1alpha1", "kind": "Broker",
            "metadata": {"name": "old", "namespace": "default", "resourceVersion": "7",
                         "deletionTimestamp": "2026-11-25T00:00:00Z", "finalizers": ["other", LOG_FINALIZER]},
            "spec": {}}))));
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        log.ensure_topic("default.old").await.unwrap();
        log.append("default.old", vec![bytes::Bytes::from_static(b"kept until now")]).await.unwrap();
        let (_, shutdown, task) = start(KubeResources { client, brokers, triggers, pings, functions }, log, "http://x");

        // No status for a Broker being deleted: its log goes, then our finalizer (only ours).
        let (path, body) = patched(&mut api).await;
        assert_eq!(path, "/apis/eventing.weft.dev/v1alpha1/namespaces/default/brokers/old");
        assert_eq!(body["metadata"], json!({"finalizers": ["other"], "resourceVersion": "7"}));
        assert!(!dir.path().join("default.old").exists(), "the log's folder was deleted before the finalizer");
        shutdown.cancel();
        task.await.unwrap();
    }

    /// A kafka Broker on an event bus without Kafka: no log, so no finalizer
    /// while it lives, and when deleted it is let go (not held forever).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_without_a_reachable_log_is_never_held() {
        for (meta, want) in [
            (json!({"name": "k", "namespace": "default", "generation": 1}), "status"),
            (
                json!({"name": "k", "namespace": "default", "resourceVersion": "3",
                    "deletionTimestamp": "2026-11-25T00:00:00Z", "finalizers": [LOG_FINALIZER]}),
                "released",
            ),
        ] {
            let (service, mut api) = pair::<Request<Body>, Response<Body>>();
            let (brokers, mut bw) = reflector::store::<Broker>();
            let (triggers, _tw) = reflector::store::<Trigger>();
            let (pings, _pw) = reflector::store::<PingSource>();
            let (functions, _fw) = reflector::store::<Function>();
            bw.apply_watcher_event(&watcher::Event::Apply(obj(json!({
                "apiVersion": "eventing.weft.dev/v1alpha1", "kind": "Broker", "metadata": meta,
                "spec": {"backend": "kafka"}}))));
            let dir = tempfile::tempdir().unwrap();
            let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
            let resources =
                KubeResources { client: Client::new(service, "default"), brokers, triggers, pings, functions };
            let (_, shutdown, task) = start(resources, log, "http://x");
            let next = tokio::time::timeout(std::time::Duration::from_secs(10), patched(&mut api));
            let (path, body) = next.await.expect("a patch within 10 s");
            match want {
                "status" => {
                    assert!(path.ends_with("/brokers/k/status"), "no finalizer first: {path}");
                    assert_eq!(body["status"]["conditions"][0]["reason"], "KafkaNotConfigured");
                }
                _ => {
                    assert!(path.ends_with("/brokers/k"), "{path}");
                    assert_eq!(body["metadata"]["finalizers"], json!([]));
                }
            }
            shutdown.cancel();
            task.await.unwrap();
        }
    }
}
