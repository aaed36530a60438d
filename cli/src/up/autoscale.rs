//! The local autoscaler loop: collects load from every ready instance's `/stats`
//! once a second (scrape, as Knative's collector does), records requests held by
//! the activator, decides each revision's instance count with
//! `weft_autoscaler::RevisionAutoscaler` every tick (2 s) — or at once when the
//! activator holds a request for a revision at zero — and applies it through the
//! `Scaler` seam.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_autoscaler::{Decision, Defaults, RevisionAutoscaler, ScaleTarget, Scaler, ScalingSpec, SpecError};
use weft_sidecar::endpoints::revision_key;
use weft_sidecar::metrics::RevisionLabels;
use weft_sidecar::{Activation, Endpoints};

const SCRAPE_EVERY: Duration = Duration::from_secs(1);
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

struct Entry {
    target: ScaleTarget,
    auto: RevisionAutoscaler,
    reachable: bool,
    /// Most requests the activator held at once since the last scrape: load the
    /// instances cannot report because it has not reached them yet.
    held_peak: usize,
}

/// `weft_autoscaler_*`, by namespace and revision.
#[derive(Clone)]
pub struct AutoscalerMetrics {
    stable: Family<RevisionLabels, Gauge<f64, AtomicU64>>,
    panic: Family<RevisionLabels, Gauge<f64, AtomicU64>>,
    desired: Family<RevisionLabels, Gauge>,
    panicking: Family<RevisionLabels, Gauge>,
    in_path: Family<RevisionLabels, Gauge>,
    concurrency: Family<RevisionLabels, Gauge<f64, AtomicU64>>,
    rps: Family<RevisionLabels, Gauge<f64, AtomicU64>>,
}

impl AutoscalerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let reg = registry.sub_registry_with_prefix("weft_autoscaler");
        let m = Self {
            stable: Family::default(),
            panic: Family::default(),
            desired: Family::default(),
            panicking: Family::default(),
            in_path: Family::default(),
            concurrency: Family::default(),
            rps: Family::default(),
        };
        reg.register(
            "stable_value",
            "Scaling metric (concurrency or RPS) averaged over the stable window",
            m.stable.clone(),
        );
        reg.register("panic_value", "Scaling metric averaged over the panic window", m.panic.clone());
        reg.register("desired_instances", "Instances the autoscaler asked for", m.desired.clone());
        reg.register("panic_mode", "1 while the revision is in panic mode", m.panicking.clone());
        reg.register(
            "activator_in_path",
            "1 while the activator holds requests that find every instance full (targetBurstCapacity)",
            m.in_path.clone(),
        );
        reg.register(
            "observed_concurrency",
            "Average requests in flight over the stable window, all instances",
            m.concurrency.clone(),
        );
        reg.register("observed_rps", "Requests per second over the stable window, all instances", m.rps.clone());
        m
    }

    fn record(&self, target: &ScaleTarget, d: &Decision) {
        let l = RevisionLabels { namespace: target.namespace.clone(), revision: target.revision.clone() };
        self.stable.get_or_create(&l).set(d.stable);
        self.panic.get_or_create(&l).set(d.panic);
        self.desired.get_or_create(&l).set(i64::from(d.desired));
        self.panicking.get_or_create(&l).set(i64::from(d.panicking));
        self.in_path.get_or_create(&l).set(i64::from(d.activator_in_path));
        self.concurrency.get_or_create(&l).set(d.concurrency);
        self.rps.get_or_create(&l).set(d.rps);
    }
}

/// Where the loop gets instances and load: the local supervisor, or in a
/// cluster the Deployments' `/scale` and the revisions' EndpointSlices.
pub trait Backend: Scaler {
    /// Admin addresses (`/stats`) of a revision's ready instances.
    fn admin_addrs(&self, key: &str) -> Vec<SocketAddr>;
    /// Load measured at the gateway for instances that report none.
    fn gateway_report(&self, key: &str) -> Option<weft_sidecar::stats::Report>;
}

pub struct Autoscale {
    metrics: AutoscalerMetrics,
    defaults: Defaults,
    supervisor: Arc<dyn Backend>,
    endpoints: Arc<Endpoints>,
    entries: Mutex<HashMap<String, Entry>>,
    pokes: mpsc::UnboundedSender<String>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Stats {
    concurrency: f64,
    requests: f64,
}

impl Autoscale {
    pub fn new(
        defaults: Defaults,
        supervisor: Arc<dyn Backend>,
        endpoints: Arc<Endpoints>,
        metrics: AutoscalerMetrics,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (pokes, rx) = mpsc::unbounded_channel();
        let http = reqwest::Client::builder().timeout(SCRAPE_TIMEOUT).build().unwrap_or_default();
        (
            Arc::new(Self {
                metrics,
                defaults,
                supervisor,
                endpoints,
                entries: Mutex::new(HashMap::new()),
                pokes,
                http,
            }),
            rx,
        )
    }

    /// The platform's scaling defaults.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        crate::sync::lock(&self.entries)
    }

    /// Starts autoscaling a revision (or updates whether it is routed).
    pub fn upsert(
        &self,
        target: ScaleTarget,
        annotations: &BTreeMap<String, String>,
        container_concurrency: u32,
        reachable: bool,
    ) -> Result<(), SpecError> {
        let key = target.key();
        let mut entries = self.lock();
        if let Some(e) = entries.get_mut(&key) {
            e.reachable = reachable;
            return Ok(());
        }
        let spec = ScalingSpec::from_annotations(annotations, &self.defaults, container_concurrency)?;
        entries.insert(
            key.clone(),
            Entry { target, auto: RevisionAutoscaler::new(spec, Instant::now()), reachable, held_peak: 0 },
        );
        drop(entries);
        let _ = self.pokes.send(key);
        Ok(())
    }

    /// Whether the revision reached its initial scale (see `ReplicaState`).
    pub fn initialized(&self, key: &str) -> bool {
        self.lock().get(key).is_some_and(|e| e.auto.initialized())
    }

    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    pub async fn run(self: Arc<Self>, mut pokes: mpsc::UnboundedReceiver<String>, shutdown: CancellationToken) {
        // Scraping waits on the network; it runs on its own so that a poke from
        // the activator (a request held at zero) is decided at once.
        let scraper = tokio::spawn(self.clone().scrape_loop(shutdown.clone()));
        let mut tick = tokio::time::interval(self.defaults.tick);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => self.decide_all(),
                Some(key) = pokes.recv() => self.decide(&key, Instant::now()),
            }
        }
        let _ = scraper.await;
    }

    async fn scrape_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut scrape = tokio::time::interval(SCRAPE_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = scrape.tick() => self.scrape_all().await,
            }
        }
    }

    async fn scrape_all(&self) {
        let keys: Vec<String> = self.lock().keys().cloned().collect();
        let scrapes = keys
            .into_iter()
            .flat_map(|key| self.supervisor.admin_addrs(&key).into_iter().map(move |addr| (key.clone(), addr)));
        let results =
            futures::future::join_all(scrapes.map(|(key, addr)| async move { (key, self.stats(addr).await) })).await;
        let now = Instant::now();
        let mut entries = self.lock();
        for (key, stats) in results {
            if let (Some(e), Some(s)) = (entries.get_mut(&key), stats) {
                e.auto.record(now, s.concurrency, s.requests);
            }
        }
        // Process functions report no load; the gateway metered their leases.
        for (key, e) in entries.iter_mut() {
            if let Some(r) = self.supervisor.gateway_report(key) {
                e.auto.record(now, r.concurrency, r.requests as f64);
            }
        }
        for e in entries.values_mut().filter(|e| e.held_peak > 0) {
            e.auto.record(now, e.held_peak as f64, 0.0);
            e.held_peak = 0;
        }
    }

    async fn stats(&self, admin: SocketAddr) -> Option<Stats> {
        let resp = self.http.get(format!("http://{admin}/stats")).send().await.ok()?;
        resp.json().await.ok()
    }

    fn decide_all(&self) {
        let now = Instant::now();
        let keys: Vec<String> = self.lock().keys().cloned().collect();
        for key in keys {
            self.decide(&key, now);
        }
    }

    fn decide(&self, key: &str, now: Instant) {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(key) else {
            return;
        };
        let ready = self.supervisor.replicas(&e.target).map(|r| r.ready).unwrap_or(0);
        let d = e.auto.tick(now, ready, e.reachable);
        self.metrics.record(&e.target, &d);
        let span = tracing::debug_span!("autoscale", revision = %key);
        let _g = span.enter();
        tracing::debug!(
            desired = d.desired,
            ready,
            stable = d.stable,
            panic = d.panic,
            panicking = d.panicking,
            "decision"
        );
        self.endpoints.set_activator_in_path(key, d.activator_in_path);
        if let Err(err) = self.supervisor.set_replicas(&e.target, d.desired) {
            tracing::warn!(%err, "scale");
        }
    }
}

// === impl Activation ===

impl Activation for Autoscale {
    /// Held requests are load the instances cannot report yet: record them and
    /// decide now rather than at the next tick.
    fn activate(&self, namespace: &str, revision: &str, held: usize) {
        let key = revision_key(namespace, revision);
        let first = held == 1;
        if let Some(e) = self.lock().get_mut(&key) {
            e.held_peak = e.held_peak.max(held);
            if first {
                e.auto.record(Instant::now(), 1.0, 1.0);
            }
        }
        if first {
            let _ = self.pokes.send(key);
        }
    }
}
