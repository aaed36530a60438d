//! `weft gateway`: the gateway, activator and autoscaler of a cluster in one
//! process, as `weft up` runs them locally.
//!
//! - Routes come from the Functions' status (watched), into the same route
//!   table as locally.
//! - Ready instances come from the EndpointSlices of each revision's Service:
//!   pod IP:8080 to serve, pod IP:9090 for `/stats`.
//! - The autoscaler scrapes `/stats`, decides with the same code, and scales
//!   each revision's Deployment through `/scale` (`weft-autoscaler-kube`).
//! - A request for a revision at zero is held by the activator, which pokes the
//!   autoscaler at once (no network hop between them, unlike Knative's
//!   activator -> autoscaler websocket). It is forwarded when the revision's
//!   EndpointSlice shows a ready Pod.
//!
//! One replica: the autoscaler decides for every revision, and two deciders
//! would fight over `/scale`.

use crate::up::autoscale::{Autoscale, AutoscalerMetrics, Backend};
use anyhow::{Context as _, Result};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use weft_autoscaler::{Defaults, Replicas, ScaleTarget, Scaler, ScalerError};
use weft_autoscaler_kube::KubeScaler;
use weft_controller_kube::endpoints::{Instances, instances, routed};
use weft_crds::{Function, Revision};
use weft_sidecar::endpoints::{Target, revision_key};
use weft_sidecar::metrics::GatewayMetrics;
use weft_sidecar::{Endpoints, Gateway, GatewayConfig};

#[derive(clap::Args, Clone)]
pub struct GatewayArgs {
    /// Where requests (and `/metrics`, `/healthz`) are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Domain of host routes: <function>.<namespace>.<domain>.
    #[arg(long, default_value = "example.com")]
    pub domain: String,
}

/// The autoscaler's view of the cluster: `/scale` through kube, and the
/// instances the EndpointSlices show.
struct ClusterBackend {
    scaler: Arc<KubeScaler>,
    /// Ready instances of every known revision, by revision key.
    instances: Mutex<HashMap<String, Instances>>,
}

impl Scaler for ClusterBackend {
    fn set_replicas(&self, target: &ScaleTarget, replicas: u32) -> Result<(), ScalerError> {
        self.scaler.set_replicas(target, replicas)
    }

    /// Ready instances as the gateway sees them (the EndpointSlices), which is
    /// what decides whether a request can be forwarded.
    fn replicas(&self, target: &ScaleTarget) -> Result<Replicas, ScalerError> {
        let ready = crate::sync::lock(&self.instances).get(&target.key()).map_or(0, |i| i.admin.len());
        let ready = u32::try_from(ready).unwrap_or(u32::MAX);
        let known = self.scaler.replicas(target).unwrap_or_default();
        Ok(Replicas { desired: known.desired, actual: known.actual.max(ready), ready })
    }
}

impl Backend for ClusterBackend {
    fn admin_addrs(&self, key: &str) -> Vec<SocketAddr> {
        crate::sync::lock(&self.instances).get(key).map(|i| i.admin.clone()).unwrap_or_default()
    }

    fn gateway_report(&self, _key: &str) -> Option<weft_sidecar::stats::Report> {
        None // every cluster instance runs an instance proxy that reports
    }
}

/// The three watched kinds.
struct Stores {
    functions: Store<Function>,
    revisions: Store<Revision>,
    slices: Store<EndpointSlice>,
}

pub async fn run(args: GatewayArgs) -> Result<()> {
    let client = super::client().await?;
    let listeners = weft_sidecar::serve::bind_workers(args.listen, weft_sidecar::serve::default_workers())
        .with_context(|| format!("bind the gateway on {}", args.listen))?;
    let endpoints = Arc::new(Endpoints::new());
    let mut registry = Registry::default();
    let metrics = GatewayMetrics::register(&mut registry);
    let scaler_metrics = AutoscalerMetrics::register(&mut registry);
    let config = GatewayConfig { domain: args.domain.clone() };
    let gateway = Arc::new(Gateway::new(config, endpoints.clone(), metrics, Arc::new(registry)));
    let (scaler, worker) = KubeScaler::new(client.clone());
    tokio::spawn(worker);
    let backend = Arc::new(ClusterBackend { scaler, instances: Mutex::default() });
    let defaults = Defaults::default();
    let (autoscale, pokes) = Autoscale::new(defaults.clone(), backend.clone(), endpoints.clone(), scaler_metrics);
    gateway.set_activation(autoscale.clone());

    let shutdown = CancellationToken::new();
    let (stores, changes) = watch(client);
    let sync = ClusterSync {
        gateway: gateway.clone(),
        autoscale: autoscale.clone(),
        backend,
        endpoints,
        defaults,
        domain: args.domain.clone(),
    };
    let syncer = tokio::spawn(sync.run(stores, changes, shutdown.clone()));
    let scaler_task = tokio::spawn(autoscale.run(pokes, shutdown.clone()));
    let gw = gateway.clone();
    let make_worker = move || {
        let (w, rpc) = (gw.worker(), gw.rpc_worker());
        (move |req, peer| w.clone().handle(req, peer), Some(rpc))
    };
    let serving = tokio::spawn(weft_sidecar::serve::serve_workers(listeners, make_worker, shutdown.clone()));
    tracing::info!(listen = %args.listen, domain = %args.domain, "weft gateway is up");
    crate::signals::wait_for_shutdown().await;
    shutdown.cancel();
    let _ = tokio::join!(syncer, scaler_task, serving);
    Ok(())
}

/// Starts the three watches; the stream yields once per change of any of them.
fn watch(client: Client) -> (Stores, BoxStream<'static, ()>) {
    let all = watcher::Config::default;
    let (functions, f) = super::watched::<Function>(&client, all());
    let (revisions, r) = super::watched::<Revision>(&client, all());
    let managed = all().labels("app.kubernetes.io/managed-by=weft");
    let (slices, s) = super::watched::<EndpointSlice>(&client, managed);
    let changes = futures::stream::select_all([f, r, s]).boxed();
    (Stores { functions, revisions, slices }, changes)
}

/// Applies the watched cluster to the gateway, its endpoints and the autoscaler.
struct ClusterSync {
    gateway: Arc<Gateway>,
    autoscale: Arc<Autoscale>,
    backend: Arc<ClusterBackend>,
    endpoints: Arc<Endpoints>,
    defaults: Defaults,
    domain: String,
}

impl ClusterSync {
    /// Applies the watched state after each change (batched: a burst of
    /// watch events is applied once).
    async fn run(self, stores: Stores, mut changes: BoxStream<'static, ()>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                next = changes.next() => if next.is_none() { return },
            }
            while let Some(Some(())) = changes.next().now_or_never() {}
            self.apply(&stores);
        }
    }

    /// Routes, autoscaled revisions and ready instances from the stores. A
    /// revision's endpoints are replaced only when its ready Pods changed.
    fn apply(&self, stores: &Stores) {
        let functions: Vec<Function> = stores.functions.state().iter().map(|f| (**f).clone()).collect();
        self.gateway.set_routes(crate::up::routes::table(&self.domain, &functions));
        let routed = routed(&functions);
        let slices: Vec<EndpointSlice> = stores.slices.state().iter().map(|s| (**s).clone()).collect();
        let mut ready = instances(&slices);
        let mut now = HashMap::new();
        let mut capacity = HashMap::new();
        for rev in stores.revisions.state() {
            let (Some(ns), name) = (rev.namespace(), rev.name_any()) else { continue };
            let key = revision_key(&ns, &name);
            let id = (ns, name);
            let cc = self.defaults.container_concurrency(rev.spec.container_concurrency);
            let annotations = rev.metadata.annotations.clone().unwrap_or_default();
            let target = ScaleTarget { namespace: id.0.clone(), revision: id.1.clone() };
            if let Err(e) = self.autoscale.upsert(target, &annotations, cc, routed.contains(&id)) {
                tracing::warn!(revision = %key, error = %e, "not autoscaled");
            }
            capacity.insert(key.clone(), cc as usize);
            now.insert(key, ready.remove(&id).unwrap_or_default());
        }
        // Swapped under the lock, compared outside it: the autoscaler takes
        // its own lock, then this one.
        let before = std::mem::replace(&mut *crate::sync::lock(&self.backend.instances), now.clone());
        for (key, found) in &now {
            if before.get(key) != Some(found) {
                let serving: Vec<Target> = found.serving.iter().copied().map(Target::from).collect();
                self.endpoints.set(key, serving, capacity[key]);
            }
        }
        for gone in before.keys().filter(|k| !now.contains_key(*k)) {
            self.autoscale.remove(gone);
            self.endpoints.set(gone, Vec::<Target>::new(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::reflector::store::Writer;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A "Pod" on loopback: answers every request on a connection with `body`.
    async fn pod(body: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn get(gateway: SocketAddr, host: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(gateway).await.unwrap();
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    fn function() -> Function {
        serde_json::from_value(json!({
            "apiVersion": "serving.weft.dev/v1alpha1", "kind": "Function",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"template": {"spec": {"image": "example.com/app"}}},
            "status": {"latestCreatedRevisionName": "hello-00001",
                       "traffic": [{"revisionName": "hello-00001", "percent": 100, "latestRevision": true}]},
        }))
        .unwrap()
    }

    fn revision() -> Revision {
        serde_json::from_value(json!({
            "apiVersion": "serving.weft.dev/v1alpha1", "kind": "Revision",
            "metadata": {"name": "hello-00001", "namespace": "default",
                         "labels": {"serving.weft.dev/function": "hello"}},
            "spec": {"image": "example.com/app", "containerConcurrency": 4},
        }))
        .unwrap()
    }

    fn slice(pod: SocketAddr) -> EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "hello-00001-x1", "namespace": "default",
                         "labels": {"serving.weft.dev/revision": "hello-00001"}},
            "ports": [{"name": "http", "port": pod.port()}, {"name": "admin", "port": 9090}],
            "endpoints": [{"addresses": [pod.ip().to_string()], "conditions": {"ready": true}}],
        }))
        .unwrap()
    }

    /// `weft gateway`'s parts over empty reflector stores and a mock API.
    struct Harness {
        gateway: Arc<Gateway>,
        endpoints: Arc<Endpoints>,
        backend: Arc<ClusterBackend>,
        autoscale: Arc<Autoscale>,
        pokes: tokio::sync::mpsc::UnboundedReceiver<String>,
        sync: ClusterSync,
        stores: Stores,
        functions: Writer<Function>,
        revisions: Writer<Revision>,
        slices: Writer<EndpointSlice>,
    }

    type ApiHandle = tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

    /// The harness, the API server's side of the mock, and the scale worker
    /// (to spawn, when the test wants `/scale` patches sent).
    fn harness() -> (Harness, ApiHandle, impl std::future::Future<Output = ()>) {
        super::super::tls_provider(); // the autoscaler's scraper is a reqwest client
        let (service, api) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let endpoints = Arc::new(Endpoints::new());
        let mut registry = Registry::default();
        let metrics = GatewayMetrics::register(&mut registry);
        let scaler_metrics = AutoscalerMetrics::register(&mut registry);
        let config = GatewayConfig { domain: "example.com".into() };
        let gateway = Arc::new(Gateway::new(config, endpoints.clone(), metrics, Arc::new(registry)));
        let (scaler, worker) = KubeScaler::new(Client::new(service, "default"));
        let backend = Arc::new(ClusterBackend { scaler, instances: Mutex::default() });
        let (autoscale, pokes) =
            Autoscale::new(Defaults::default(), backend.clone(), endpoints.clone(), scaler_metrics);
        let sync = ClusterSync {
            gateway: gateway.clone(),
            autoscale: autoscale.clone(),
            backend: backend.clone(),
            endpoints: endpoints.clone(),
            defaults: Defaults::default(),
            domain: "example.com".into(),
        };
        let (functions, fw) = store::<Function>();
        let (revisions, rw): (Store<Revision>, Writer<Revision>) = store();
        let (slices, sw) = store::<EndpointSlice>();
        let stores = Stores { functions, revisions, slices };
        let h = Harness {
            gateway,
            endpoints,
            backend,
            autoscale,
            pokes,
            sync,
            stores,
            functions: fw,
            revisions: rw,
            slices: sw,
        };
        (h, api, worker)
    }

    #[tokio::test]
    async fn watched_functions_revisions_and_slices_become_routes_instances_and_scale_targets() {
        let (h, _api, _worker) = harness();
        let Harness {
            gateway,
            endpoints,
            backend,
            mut pokes,
            sync,
            stores,
            functions: mut fw,
            revisions: mut rw,
            slices: mut sw,
            ..
        } = h;
        // The autoscaler pokes itself once per revision it starts to know.
        let pod = pod("from the pod").await;
        fw.apply_watcher_event(&watcher::Event::Apply(function()));
        rw.apply_watcher_event(&watcher::Event::Apply(revision()));
        sw.apply_watcher_event(&watcher::Event::Apply(slice(pod)));
        sync.apply(&stores);
        assert_eq!(pokes.try_recv().ok().as_deref(), Some("default/hello-00001"), "autoscaled");

        // A request by host reaches the Pod the EndpointSlice names.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let w = gateway.worker();
        tokio::spawn(weft_sidecar::serve::serve(
            listener,
            move |req, peer| w.clone().handle(req, peer),
            shutdown.clone(),
        ));
        let reply = get(addr, "hello.default.example.com").await;
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("from the pod"), "{reply}");

        // The autoscaler scrapes the Pod's admin port and counts it ready.
        let target = ScaleTarget { namespace: "default".into(), revision: "hello-00001".into() };
        assert_eq!(backend.admin_addrs("default/hello-00001"), [SocketAddr::new(pod.ip(), 9090)]);
        assert_eq!(backend.replicas(&target).unwrap().ready, 1);

        // The Pod stops being ready: no instance, and the revision is at zero.
        let mut unready = slice(pod);
        unready.endpoints[0].conditions.as_mut().unwrap().ready = Some(false);
        sw.apply_watcher_event(&watcher::Event::Apply(unready));
        sync.apply(&stores);
        assert!(endpoints.acquire("default/hello-00001").is_err());
        assert_eq!(backend.replicas(&target).unwrap().ready, 0);
        assert!(pokes.try_recv().is_err(), "a known revision is not added again");

        // The Revision is deleted: it leaves the autoscaler and the endpoints.
        rw.apply_watcher_event(&watcher::Event::Delete(revision()));
        sync.apply(&stores);
        assert!(crate::sync::lock(&backend.instances).is_empty());
        // It was forgotten: coming back, it is autoscaled anew.
        rw.apply_watcher_event(&watcher::Event::Apply(revision()));
        sync.apply(&stores);
        assert_eq!(pokes.try_recv().ok().as_deref(), Some("default/hello-00001"));
        shutdown.cancel();
    }

    /// A mock API server that answers `/scale` patches and status reads of
    /// Deployments, and reports each patch's body.
    fn scale_api(
        mut api: tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>,
    ) -> tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((req, send)) = api.next_request().await {
                let path = req.uri().path().to_string();
                let method = req.method().clone();
                let body = http_body_util::BodyExt::collect(req.into_body()).await.unwrap().to_bytes();
                let reply = if method == http::Method::PATCH {
                    let patch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let n = patch["spec"]["replicas"].clone();
                    let _ = tx.send((path, patch));
                    json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "hello-00001"},
                           "spec": {"replicas": n}, "status": {"replicas": n}})
                } else {
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello-00001"},
                           "spec": {"selector": {}, "template": {}}, "status": {"replicas": 1}})
                };
                let reply = http::Response::new(kube::client::Body::from(serde_json::to_vec(&reply).unwrap()));
                send.send_response(reply);
            }
        });
        rx
    }

    /// Scale from zero in a cluster: a request for a revision with no ready
    /// Pod is held, the autoscaler patches the Deployment's `/scale`, and the
    /// request is answered once the revision's EndpointSlice shows a ready Pod.
    #[tokio::test]
    async fn a_request_at_zero_patches_scale_and_is_released_by_a_ready_endpoint() {
        let (h, api, worker) = harness();
        let mut patches = scale_api(api);
        tokio::spawn(worker);
        let Harness {
            gateway,
            autoscale,
            pokes,
            sync,
            stores,
            functions: mut fw,
            revisions: mut rw,
            slices: mut sw,
            ..
        } = h;
        // Requests held at zero poke the autoscaler, which runs here.
        gateway.set_activation(autoscale.clone());
        let shutdown = CancellationToken::new();
        tokio::spawn(autoscale.run(pokes, shutdown.clone()));
        fw.apply_watcher_event(&watcher::Event::Apply(function()));
        rw.apply_watcher_event(&watcher::Event::Apply(revision()));
        sync.apply(&stores); // no EndpointSlice yet: the revision is at zero

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (w, rpc) = (gateway.worker(), gateway.rpc_worker());
        let serve = weft_sidecar::serve::serve_with(
            listener,
            move |req, peer| w.clone().handle(req, peer),
            Some(rpc),
            shutdown.clone(),
        );
        tokio::spawn(serve);
        let held = tokio::spawn(get(addr, "hello.default.example.com"));

        // The held request makes the autoscaler ask for one Pod.
        let deadline = std::time::Duration::from_secs(10);
        let (path, patch) = loop {
            let (path, patch) = tokio::time::timeout(deadline, patches.recv()).await.unwrap().unwrap();
            if patch["spec"]["replicas"] == 1 {
                break (path, patch);
            }
        };
        assert_eq!(path, "/apis/apps/v1/namespaces/default/deployments/hello-00001/scale");
        assert_eq!(patch, json!({"spec": {"replicas": 1}}));
        assert!(!held.is_finished(), "held until a Pod is ready");

        // kubelet's part: the Pod turns ready in the Service's EndpointSlice.
        let pod = pod("cold started").await;
        sw.apply_watcher_event(&watcher::Event::Apply(slice(pod)));
        sync.apply(&stores);
        let reply = tokio::time::timeout(deadline, held).await.unwrap().unwrap();
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("cold started"), "{reply}");
        shutdown.cancel();
    }
}
