//! Ready instances per revision, published by the scaler and read on every
//! request, with the requests each has in flight *from this gateway*.
//!
//! A request takes a [`Lease`] on an instance and gives it back when the
//! response headers arrive. With a hard limit (`containerConcurrency`), the
//! lease goes to the first instance below the limit — none free means the
//! request waits in the activator instead of overflowing an instance's queue.
//! Without a limit, the less loaded of two random instances wins ("power of two
//! choices"), which avoids herding onto one instance at no coordination cost.
//!
//! An instance is reached at a [`Target`]: its own port, or the port of the
//! host process it runs in plus its replica id (sent as the [`REPLICA_HEADER`]).
//! The second lets the gateway reuse pooled connections to a host for a replica
//! that just started, so a cold start opens no connection.

use crate::stats::{Report, Stats};
use arc_swap::ArcSwap;
// Fx rather than SipHash: looked up per request with short keys; the tables
// are built from configuration, so keys from the wire cannot flood them.
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Header naming the replica a request is for, on a host's shared port.
pub const REPLICA_HEADER: &str = "weft-replica";

/// Where a replica takes requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: SocketAddr,
    /// Set when `addr` is a host's shared port: the replica to ask for there.
    pub replica: Option<u64>,
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Self { addr, replica: None }
    }
}

/// Key of a revision: `<namespace>/<revision>`.
pub fn revision_key(namespace: &str, revision: &str) -> String {
    // Built per request: without `format!`'s machinery.
    let mut key = String::with_capacity(namespace.len() + 1 + revision.len());
    key.push_str(namespace);
    key.push('/');
    key.push_str(revision);
    key
}

#[derive(Debug)]
struct Instance {
    target: Target,
    in_flight: AtomicUsize,
}

#[derive(Debug)]
struct Revision {
    instances: Vec<Arc<Instance>>,
    /// Requests an instance takes at once; 0 = unlimited.
    capacity: usize,
    /// Whether the activator is in the path (the autoscaler's call, from the
    /// revision's burst capacity): with a limit and every instance full, a
    /// request is then held here; otherwise it goes to the least loaded
    /// instance and waits in that instance's queue.
    activator_in_path: AtomicBool,
    /// This revision's entry of `Endpoints::wakers`, held here so a lease
    /// release wakes the next request without taking that map's lock.
    wake: Arc<Notify>,
    /// Load measured here, for revisions whose instances cannot report their
    /// own (process functions have no instance proxy); see [`Endpoints::meter`].
    meter: Option<Arc<Stats>>,
}

/// Why no lease was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLease {
    /// The revision has no ready instance.
    Empty,
    /// Every instance is at its limit.
    Busy,
}

#[derive(Default)]
pub struct Endpoints {
    by_revision: ArcSwap<HashMap<String, Arc<Revision>>>,
    /// Per revision, what wakes its held requests: one when a full instance
    /// frees a slot (first come, first served: `Notify` wakes in FIFO order),
    /// all when its instances change. Kept for the process's life (a few bytes
    /// per revision), so a waiter never misses a wake-up across a change.
    wakers: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
    /// Revisions metered at the gateway, by key.
    meters: std::sync::Mutex<HashMap<String, Arc<Stats>>>,
}

/// A request's claim on an instance; released on drop.
pub struct Lease {
    instance: Arc<Instance>,
    capacity: usize,
    /// With a limit only: who is woken when this frees a full instance. Not
    /// cloned otherwise, as its count would be one more cache line every
    /// worker writes on every request.
    wake: Option<Arc<Notify>>,
    meter: Option<Arc<Stats>>,
}

impl Lease {
    pub fn addr(&self) -> SocketAddr {
        self.instance.target.addr
    }

    pub fn target(&self) -> Target {
        self.instance.target
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(m) = &self.meter {
            m.finish(Instant::now());
        }
        let before = self.instance.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(wake) = &self.wake
            && before >= self.capacity
        {
            wake.notify_one(); // a full instance has room again: next in line
        }
    }
}

impl Endpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// What wakes the held requests of revision `key` when they may now get a lease.
    pub fn waker(&self, key: &str) -> Arc<Notify> {
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = wakers.get(key) {
            return w.clone(); // the usual case: no key allocated
        }
        wakers.entry(key.to_string()).or_default().clone()
    }

    /// Replaces the ready instances of one revision (empty removes it). Instances
    /// that stay keep their in-flight counts.
    pub fn set<T: Into<Target>>(&self, key: &str, targets: Vec<T>, capacity: usize) {
        let addrs: Vec<Target> = targets.into_iter().map(Into::into).collect();
        let wake = self.waker(key);
        self.by_revision.rcu(|current| {
            let mut map = HashMap::clone(current);
            if addrs.is_empty() {
                map.remove(key);
                return map;
            }
            let old = current.get(key);
            let instances = addrs
                .iter()
                .map(|a| {
                    old.and_then(|r| r.instances.iter().find(|i| i.target == *a).cloned())
                        .unwrap_or_else(|| Arc::new(Instance { target: *a, in_flight: AtomicUsize::new(0) }))
                })
                .collect();
            // A revision new to the endpoints starts with the activator in the path.
            let in_path = old.is_none_or(|r| r.activator_in_path.load(Ordering::Relaxed));
            let activator_in_path = AtomicBool::new(in_path);
            let wake = wake.clone();
            let meter = self.meters.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
            map.insert(key.to_string(), Arc::new(Revision { instances, capacity, activator_in_path, wake, meter }));
            map
        });
        wake.notify_waiters(); // new instances may take several held requests
    }

    /// Puts the activator in or out of a revision's path (see [`Revision`]).
    /// A revision without instances keeps it in the path regardless.
    pub fn set_activator_in_path(&self, key: &str, in_path: bool) {
        if let Some(rev) = self.by_revision.load().get(key) {
            rev.activator_in_path.store(in_path, Ordering::Relaxed);
        }
    }

    /// Claims an instance of the revision for one request.
    pub fn acquire(self: &Arc<Self>, key: &str) -> Result<Lease, NoLease> {
        self.acquire_avoiding(key, &[])
    }

    /// Like [`Self::acquire`], but prefers instances not in `avoid` (those a
    /// retried request already failed on); if all are, any will do.
    pub fn acquire_avoiding(self: &Arc<Self>, key: &str, avoid: &[Target]) -> Result<Lease, NoLease> {
        let map = self.by_revision.load();
        let rev = map.get(key).filter(|r| !r.instances.is_empty()).ok_or(NoLease::Empty)?;
        let others: Vec<Arc<Instance>>;
        let instances = if avoid.is_empty() {
            &rev.instances
        } else {
            others = rev.instances.iter().filter(|i| !avoid.contains(&i.target)).cloned().collect();
            if others.is_empty() { &rev.instances } else { &others }
        };
        let instance = match rev.capacity {
            0 => Some(two_choices(instances)),
            cap => first_free(instances, cap).or_else(|| {
                (!rev.activator_in_path.load(Ordering::Relaxed)).then(|| least_loaded(instances)).flatten()
            }),
        }
        .ok_or(NoLease::Busy)?;
        if let Some(m) = &rev.meter {
            m.start(Instant::now());
        }
        let wake = (rev.capacity > 0).then(|| rev.wake.clone());
        Ok(Lease { instance, capacity: rev.capacity, wake, meter: rev.meter.clone() })
    }

    /// Measures the load of revision `key` here, from the leases taken on its
    /// instances (call before its first [`Self::set`]). For instances that
    /// report no load of their own; every request to them passes a gateway.
    pub fn meter(&self, key: &str) {
        let mut meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        meters.entry(key.to_string()).or_insert_with(|| Arc::new(Stats::new(Instant::now())));
    }

    /// The load of a metered revision since the last report.
    pub fn report(&self, key: &str) -> Option<Report> {
        let meters = self.meters.lock().unwrap_or_else(|e| e.into_inner());
        meters.get(key).map(|m| m.report(Instant::now()))
    }

    /// Stops metering `key` (its revision is gone).
    pub fn unmeter(&self, key: &str) {
        self.meters.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// The first instance below `cap`, claimed atomically.
fn first_free(instances: &[Arc<Instance>], cap: usize) -> Option<Arc<Instance>> {
    instances
        .iter()
        .find(|i| i.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1)).is_ok())
        .cloned()
}

/// The instance with the fewest requests in flight (over its limit: it queues).
fn least_loaded(instances: &[Arc<Instance>]) -> Option<Arc<Instance>> {
    let pick = instances.iter().min_by_key(|i| i.in_flight.load(Ordering::Relaxed))?;
    pick.in_flight.fetch_add(1, Ordering::AcqRel);
    Some(pick.clone())
}

/// The less loaded of two random instances.
fn two_choices(instances: &[Arc<Instance>]) -> Arc<Instance> {
    let n = instances.len();
    let a = &instances[fastrand::usize(..n)];
    let b = &instances[fastrand::usize(..n)];
    let pick = if b.in_flight.load(Ordering::Relaxed) < a.in_flight.load(Ordering::Relaxed) { b } else { a };
    pick.in_flight.fetch_add(1, Ordering::AcqRel);
    pick.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a future is ready at its first poll.
    fn futures_now(f: impl std::future::Future) -> bool {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.as_mut().poll(&mut cx).is_ready()
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn limited_instances_fill_in_order_and_free_on_drop() {
        let e = Arc::new(Endpoints::new());
        e.set("ns/r", vec![addr(1), addr(2)], 1);
        let a = e.acquire("ns/r").unwrap();
        let b = e.acquire("ns/r").unwrap();
        assert_eq!((a.addr(), b.addr()), (addr(1), addr(2)));
        assert_eq!(e.acquire("ns/r").err(), Some(NoLease::Busy));
        let wake = e.waker("ns/r");
        let woken = wake.notified();
        drop(a);
        assert!(futures_now(woken), "a freed slot wakes a held request");
        assert_eq!(e.acquire("ns/r").unwrap().addr(), addr(1));
    }

    #[test]
    fn only_a_lease_under_a_limit_holds_the_revisions_waker() {
        let e = Arc::new(Endpoints::new());
        e.set("ns/free", vec![addr(1)], 0);
        e.set("ns/limited", vec![addr(2)], 1);
        let (free, limited) = (e.waker("ns/free"), e.waker("ns/limited"));
        let before = (Arc::strong_count(&free), Arc::strong_count(&limited));
        let leases = [e.acquire("ns/free").unwrap(), e.acquire("ns/limited").unwrap()];
        assert_eq!(Arc::strong_count(&free), before.0, "no limit: nobody to wake");
        assert_eq!(Arc::strong_count(&limited), before.1 + 1);
        drop(leases);
        assert_eq!(e.acquire("ns/limited").unwrap().addr(), addr(2), "the slot is free again");
    }

    #[test]
    fn in_flight_counts_survive_an_endpoint_update() {
        let e = Arc::new(Endpoints::new());
        e.set("ns/r", vec![addr(1)], 1);
        let held = e.acquire("ns/r").unwrap();
        e.set("ns/r", vec![addr(1), addr(2)], 1);
        assert_eq!(e.acquire("ns/r").unwrap().addr(), addr(2), "addr 1 is still busy");
        drop(held);
        e.set("ns/r", Vec::<Target>::new(), 1);
        assert_eq!(e.acquire("ns/r").err(), Some(NoLease::Empty));
    }

    #[test]
    fn out_of_the_path_a_full_revision_overflows_to_the_least_loaded_instance() {
        let e = Arc::new(Endpoints::new());
        e.set("ns/r", vec![addr(1), addr(2)], 1);
        let _held = [e.acquire("ns/r").unwrap(), e.acquire("ns/r").unwrap()];
        assert_eq!(e.acquire("ns/r").err(), Some(NoLease::Busy), "in the path by default: held");
        e.set_activator_in_path("ns/r", false);
        let over = e.acquire("ns/r").unwrap();
        assert_eq!(over.addr(), addr(1));
        assert_eq!(e.acquire("ns/r").unwrap().addr(), addr(2), "the less loaded one next");
        e.set("ns/r", vec![addr(1), addr(2), addr(3)], 1);
        assert_eq!(e.acquire("ns/r").unwrap().addr(), addr(3), "an update keeps the setting; free slots first");
        drop(over);
        e.set_activator_in_path("ns/r", true);
        let _a = e.acquire("ns/r").unwrap();
        assert_eq!(e.acquire("ns/r").err(), Some(NoLease::Busy));
    }

    #[test]
    fn a_retry_avoids_the_instances_it_failed_on() {
        let e = Arc::new(Endpoints::new());
        e.set("ns/r", vec![addr(1), addr(2)], 0);
        for _ in 0..50 {
            assert_eq!(e.acquire_avoiding("ns/r", &[addr(1).into()]).unwrap().addr(), addr(2));
        }
        let all = [addr(1).into(), addr(2).into()];
        assert!(e.acquire_avoiding("ns/r", &all).is_ok(), "all failed once: any will do");
    }

    #[tokio::test(start_paused = true)]
    async fn a_metered_revision_reports_the_load_of_its_leases() {
        let e = Arc::new(Endpoints::new());
        e.meter("ns/p");
        e.set("ns/p", vec![addr(1)], 0);
        e.set("ns/w", vec![addr(2)], 0);
        let a = e.acquire("ns/p").unwrap();
        let _b = e.acquire("ns/p").unwrap();
        let _w = e.acquire("ns/w").unwrap();
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        drop(a);
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        let r = e.report("ns/p").unwrap();
        assert_eq!(r.requests, 2);
        assert!((r.concurrency - 1.5).abs() < 1e-6, "{r:?}");
        assert!(e.report("ns/w").is_none(), "unmetered revisions report nothing here");
    }

    #[test]
    fn unlimited_instances_share_load_by_two_choices() {
        let e = Arc::new(Endpoints::new());
        e.set("ns/r", (1..=4).map(addr).collect(), 0);
        let leases: Vec<Lease> = (0..400).map(|_| e.acquire("ns/r").unwrap()).collect();
        let per: Vec<usize> = (1..=4).map(|p| leases.iter().filter(|l| l.addr() == addr(p)).count()).collect();
        assert!(per.iter().all(|n| (70..=130).contains(n)), "{per:?}");
    }
}
