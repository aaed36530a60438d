//! A counter and a histogram kept in one shard per recording thread and
//! summed when scraped: the per-request series of the gateway and the RPC
//! path. prometheus-client's own histogram is one mutex and its counter one
//! atomic, so every worker that recorded a request to the same revision took
//! the same lock and moved the same cache lines between cores — each request
//! paid for the others'. Here a worker writes only its own shard, as Envoy's
//! workers keep thread-local stats; a scrape reads every shard. The text is
//! the same as prometheus-client's types give for the same observations.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

/// Threads with a shard of their own per metric; more (a blocking pool's
/// threads that come and go) record into the common shard, so a metric's
/// shards stay bounded.
const MAX_SHARDS: usize = 64;

/// One thread's counts: a request count, and for a histogram the sum of the
/// observations and a count per bucket (not cumulative).
#[repr(align(128))] // its own cache lines (two on CPUs that fetch line pairs)
#[derive(Debug)]
pub(crate) struct Shard {
    count: AtomicU64,
    /// The sum's `f64` bits.
    sum: AtomicU64,
    /// Upper bounds, ascending, the last +∞; shared by the metric's shards.
    bounds: Arc<[f64]>,
    buckets: Box<[AtomicU64]>,
}

impl Shard {
    fn new(bounds: &Arc<[f64]>) -> Self {
        let buckets = bounds.iter().map(|_| AtomicU64::new(0)).collect();
        Self { count: AtomicU64::new(0), sum: AtomicU64::new(0), bounds: bounds.clone(), buckets }
    }

    /// Counts one event (a counter's shard).
    pub(crate) fn inc(&self) {
        self.count.fetch_add(1, Relaxed);
    }

    /// Counts one observation `v` (a histogram's shard). NaN goes to +∞, as
    /// prometheus-client counts it.
    pub(crate) fn observe(&self, v: f64) {
        let last = self.buckets.len().saturating_sub(1);
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(last);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        // Uncontended (one writer, usually): the first exchange succeeds.
        let _ = self.sum.fetch_update(Relaxed, Relaxed, |bits| Some((f64::from_bits(bits) + v).to_bits()));
        self.count.fetch_add(1, Relaxed);
    }
}

/// The shards of one metric (one label set).
#[derive(Debug)]
struct Shards {
    bounds: Arc<[f64]>,
    /// For callers with no shard of their own at hand; also the overflow.
    common: Arc<Shard>,
    by_thread: Mutex<Vec<(ThreadId, Arc<Shard>)>>,
}

impl Shards {
    fn new(bounds: Arc<[f64]>) -> Arc<Self> {
        let common = Arc::new(Shard::new(&bounds));
        Arc::new(Self { bounds, common, by_thread: Mutex::default() })
    }

    /// The calling thread's shard, made on its first call.
    fn mine(&self) -> Arc<Shard> {
        let me = std::thread::current().id();
        let mut by_thread = self.by_thread.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = by_thread.iter().find(|(t, _)| *t == me) {
            return s.clone();
        }
        if by_thread.len() >= MAX_SHARDS {
            return self.common.clone();
        }
        let shard = Arc::new(Shard::new(&self.bounds));
        by_thread.push((me, shard.clone()));
        shard
    }

    /// The counts of every shard added up: (count, sum, per-bucket counts).
    fn total(&self) -> (u64, f64, Vec<u64>) {
        let mut buckets = vec![0; self.bounds.len()];
        let (mut count, mut sum) = (0, 0.0);
        let by_thread = self.by_thread.lock().unwrap_or_else(|e| e.into_inner());
        for s in std::iter::once(&self.common).chain(by_thread.iter().map(|(_, s)| s)) {
            count += s.count.load(Relaxed);
            sum += f64::from_bits(s.sum.load(Relaxed));
            for (t, b) in buckets.iter_mut().zip(s.buckets.iter()) {
                *t += b.load(Relaxed);
            }
        }
        (count, sum, buckets)
    }
}

/// A counter in shards (`<name>_total`, as prometheus-client's `Counter`).
#[derive(Clone, Debug)]
pub(crate) struct ShardedCounter(Arc<Shards>);

impl Default for ShardedCounter {
    fn default() -> Self {
        Self(Shards::new(Arc::new([])))
    }
}

impl ShardedCounter {
    /// The calling thread's shard, to count into without any lookup.
    pub(crate) fn shard(&self) -> Arc<Shard> {
        self.0.mine()
    }

    /// Counts one event in the common shard.
    pub(crate) fn inc(&self) {
        self.0.common.inc();
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0.total().0, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A histogram in shards, with prometheus-client's buckets: the finite
/// bounds given, then +∞.
#[derive(Clone, Debug)]
pub(crate) struct ShardedHistogram(Arc<Shards>);

impl ShardedHistogram {
    pub(crate) fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds = bounds.into_iter().filter(|b| b.is_finite()).chain(std::iter::once(f64::INFINITY));
        Self(Shards::new(bounds.collect()))
    }

    /// The calling thread's shard, to observe into without any lookup.
    pub(crate) fn shard(&self) -> Arc<Shard> {
        self.0.mine()
    }

    /// Observes `v` in the common shard.
    pub(crate) fn observe(&self, v: f64) {
        self.0.common.observe(v);
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (count, sum, counts) = self.0.total();
        let buckets: Vec<(f64, u64)> = self.0.bounds.iter().copied().zip(counts).collect();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    const BOUNDS: [f64; 4] = [0.001, 0.01, 0.1, 1.0];
    // Exact in binary, so the sum does not depend on the order of addition.
    const VALUES: [f64; 6] = [0.0005, 0.001, 0.0625, 0.5, 1.0, 4.0];

    type Labels = Vec<(String, String)>;

    fn labels(v: &str) -> Labels {
        vec![("revision".into(), v.into())]
    }

    fn text(r: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, r).unwrap();
        out
    }

    #[test]
    fn shards_of_many_threads_read_as_prometheus_clients_own_types() {
        let (mut ours, mut theirs) = (Registry::default(), Registry::default());
        let sc: Family<Labels, ShardedCounter> = Family::default();
        let sh: Family<Labels, ShardedHistogram, _> = Family::new_with_constructor(|| ShardedHistogram::new(BOUNDS));
        let pc: Family<Labels, Counter> = Family::default();
        let ph: Family<Labels, Histogram, _> = Family::new_with_constructor(|| Histogram::new(BOUNDS));
        ours.register("requests", "r", sc.clone());
        ours.register("duration_seconds", "d", sh.clone());
        theirs.register("requests", "r", pc.clone());
        theirs.register("duration_seconds", "d", ph.clone());
        std::thread::scope(|s| {
            for t in 0..4 {
                let (sc, sh) = (&sc, &sh);
                s.spawn(move || {
                    let (c, h) = (sc.get_or_create(&labels("a")).shard(), sh.get_or_create(&labels("a")).shard());
                    for v in VALUES {
                        c.inc();
                        h.observe(v);
                    }
                    if t == 0 {
                        sc.get_or_create(&labels("b")).inc(); // the common shard
                        sh.get_or_create(&labels("b")).observe(0.05);
                    }
                });
            }
        });
        for _ in 0..4 {
            for v in VALUES {
                pc.get_or_create(&labels("a")).inc();
                ph.get_or_create(&labels("a")).observe(v);
            }
        }
        pc.get_or_create(&labels("b")).inc();
        ph.get_or_create(&labels("b")).observe(0.05);
        // Family iteration order is a hash map's: compare line sets.
        let sorted = |t: String| {
            let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        let ours = sorted(text(&ours));
        assert!(ours.contains(&r#"duration_seconds_bucket{le="0.001",revision="a"} 8"#.to_string()), "{ours:?}");
        assert!(ours.contains(&r#"requests_total{revision="a"} 24"#.to_string()), "{ours:?}");
        assert_eq!(ours, sorted(text(&theirs)));
    }

    #[test]
    fn a_thread_keeps_one_shard_and_the_shards_stay_bounded() {
        let h = ShardedHistogram::new(BOUNDS);
        assert!(Arc::ptr_eq(&h.shard(), &h.shard()), "the same thread, the same shard");
        std::thread::scope(|s| {
            for _ in 0..MAX_SHARDS + 10 {
                s.spawn(|| h.shard().observe(0.5));
            }
        });
        // This thread's shard, and MAX_SHARDS - 1 more; the other 11 threads shared the common one.
        assert_eq!(h.0.by_thread.lock().unwrap().len(), MAX_SHARDS);
        assert_eq!(h.0.common.count.load(Relaxed), 11);
        assert_eq!(h.0.total().0, (MAX_SHARDS + 10) as u64);
    }

    #[test]
    fn nan_is_counted_in_the_infinite_bucket() {
        let h = ShardedHistogram::new(BOUNDS);
        h.observe(f64::NAN);
        h.observe(2.0);
        let (count, _, buckets) = h.0.total();
        assert_eq!((count, buckets), (2, vec![0, 0, 0, 0, 2]));
    }
}
