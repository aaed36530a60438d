//! Prometheus metrics of the HTTP roles, registered into a registry the caller
//! owns (one per process, a prefix per component). Label values are bounded:
//! namespaces, functions and revisions that exist, and status codes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod sharded;
pub(crate) use sharded::{Shard, ShardedCounter, ShardedHistogram};

/// 0.5 ms to ~16 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 16)
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

fn latency_shards() -> ShardedHistogram {
    ShardedHistogram::new(latency_buckets())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub namespace: String,
    pub function: String,
    pub revision: String,
    pub code: u16,
}

impl RequestLabels {
    pub fn new(namespace: &str, function: &str, revision: &str, code: u16) -> Self {
        let (namespace, function, revision) = (namespace.to_string(), function.to_string(), revision.to_string());
        Self { namespace, function, revision, code }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabels {
    pub namespace: String,
    pub revision: String,
}

/// A request count and latency histogram by labels `L`: what every role
/// (the HTTP ones by [`RequestLabels`], RPC by its own) records per request.
/// Sharded per thread (see [`sharded`]): the workers record the same series.
#[derive(Clone)]
pub(crate) struct RequestMetrics<L> {
    requests: Family<L, ShardedCounter>,
    duration: Family<L, ShardedHistogram, fn() -> ShardedHistogram>,
}

impl<L> RequestMetrics<L>
where
    L: prometheus_client::encoding::EncodeLabelSet
        + Clone
        + std::hash::Hash
        + Eq
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Registers `requests` and `request_duration_seconds` (buckets from
    /// `histogram`) in `reg`.
    pub(crate) fn register(
        reg: &mut Registry,
        requests_help: &str,
        duration_help: &str,
        histogram: fn() -> ShardedHistogram,
    ) -> Self {
        let requests = Family::default();
        let duration = Family::new_with_constructor(histogram);
        reg.register("requests", requests_help, requests.clone());
        reg.register("request_duration_seconds", duration_help, duration.clone());
        Self { requests, duration }
    }

    pub(crate) fn record(&self, labels: &L, took: Duration) {
        self.requests.get_or_create(labels).inc();
        self.duration.get_or_create(labels).observe(took.as_secs_f64());
    }

    /// The calling thread's shards of the series of `labels`, to record
    /// into without looking them up again.
    pub(crate) fn series(&self, labels: &L) -> Series {
        Series {
            requests: self.requests.get_or_create(labels).shard(),
            duration: self.duration.get_or_create(labels).shard(),
        }
    }
}

/// Series of one role by `(namespace, revision, outcome)` — the revision names
/// the function — found without building a label set. A worker keeps one, so
/// per request metrics cost a few short-string hashes on an uncontended lock
/// instead of three label allocations and two family lookups.
pub(crate) struct SeriesCache<K> {
    by: Mutex<ByNamespace<K>>,
}

type ByNamespace<K> = FxHashMap<String, FxHashMap<String, FxHashMap<K, Series>>>;

impl<K> Default for SeriesCache<K> {
    fn default() -> Self {
        Self { by: Mutex::default() }
    }
}

impl<K: std::hash::Hash + Eq + Copy> SeriesCache<K> {
    /// Records one request; `series` finds the series the first time.
    pub(crate) fn record(&self, ns: &str, revision: &str, outcome: K, took: Duration, series: impl FnOnce() -> Series) {
        let mut by = self.by.lock().unwrap_or_else(|e| e.into_inner());
        if !by.contains_key(ns) {
            by.insert(ns.to_string(), FxHashMap::default());
        }
        let Some(by_revision) = by.get_mut(ns) else { return };
        if !by_revision.contains_key(revision) {
            by_revision.insert(revision.to_string(), FxHashMap::default());
        }
        let Some(by_outcome) = by_revision.get_mut(revision) else { return };
        by_outcome.entry(outcome).or_insert_with(series).record(took);
    }
}

/// One label set's request count and latency histogram: one thread's
/// shards of them (so that thread should be the one recording).
#[derive(Clone)]
pub(crate) struct Series {
    requests: Arc<Shard>,
    duration: Arc<Shard>,
}

impl Series {
    /// A series in no registry (for tests).
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        Self { requests: ShardedCounter::default().shard(), duration: ShardedHistogram::new([1.0]).shard() }
    }

    pub(crate) fn record(&self, took: Duration) {
        self.requests.inc();
        self.duration.observe(took.as_secs_f64());
    }
}

/// `weft_gateway_*` and the activator's `weft_activator_*`.
#[derive(Clone)]
pub struct GatewayMetrics {
    requests: RequestMetrics<RequestLabels>,
    /// Requests held now, by revision.
    pub held: Family<RevisionLabels, Gauge>,
    /// Time requests were held until an instance could take them (at zero or
    /// with every instance full), by revision.
    pub held_wait: Family<RevisionLabels, Histogram>,
    /// Of those, the requests that arrived while the revision had no ready
    /// instance: the cold start as a caller sees it.
    pub cold_start: Family<RevisionLabels, Histogram>,
    /// `weft_rpc_*`: the RPC protocols served on the gateway's port.
    pub rpc: crate::rpc::metrics::RpcMetrics,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = RequestMetrics::register(
            registry.sub_registry_with_prefix("weft_gateway"),
            "Requests routed, by function, revision and status code",
            "Time to the response headers, by function, revision and status code",
            latency_shards,
        );
        let act = registry.sub_registry_with_prefix("weft_activator");
        let held = Family::default();
        let held_wait = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        act.register("held_requests", "Requests held for a revision with no ready instance", held.clone());
        act.register("wait_seconds", "Time held until an instance could take the request", held_wait.clone());
        let cold_start = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        act.register(
            "cold_start_seconds",
            "Time held by requests that arrived with no ready instance (cold start seen by the caller)",
            cold_start.clone(),
        );
        let rpc = crate::rpc::metrics::RpcMetrics::register(registry);
        Self { requests, held, held_wait, cold_start, rpc }
    }

    pub(crate) fn series(&self, labels: &RequestLabels) -> Series {
        self.requests.series(labels)
    }
}

/// `weft_instance_*`.
#[derive(Clone)]
pub struct InstanceMetrics {
    requests: RequestMetrics<RequestLabels>,
    pub inflight: Gauge,
    pub queued: Gauge,
}

impl InstanceMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let reg = registry.sub_registry_with_prefix("weft_instance");
        let requests = RequestMetrics::register(
            reg,
            "Requests handled, by status code",
            "Request latency including queueing",
            latency_shards,
        );
        let (inflight, queued) = (Gauge::default(), Gauge::default());
        reg.register("inflight_requests", "Requests being handled now", inflight.clone());
        reg.register("queued_requests", "Requests waiting for a concurrency slot", queued.clone());
        Self { requests, inflight, queued }
    }

    pub fn record(&self, labels: &RequestLabels, took: Duration) {
        self.requests.record(labels, took);
    }
}

/// The registry in Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}
