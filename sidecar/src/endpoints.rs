//! Ready instances per revision, published by the scaler and read on every
//! request, with the requests each has in flight *from this gateway*.
//!
//! A request takes a [`Lease`] on an instance and gives it back when the
//! response headers arrive. With a hard limit (`containerConcurrency`), the
//! lease goes to the first instance below the limit — none free means the
//! request waits in the activator instead of overflowing an instance's queue.
//! Without a limit, the less loaded of two random instances wins ("power of two
//! choices"), which avoids herding onto one instance at no coordination cost.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Key of a revision: `<namespace>/<revision>`.
pub fn revision_key(namespace: &str, revision: &str) -> String {
    format!("{namespace}/{revision}")
}

#[derive(Debug)]
struct Instance {
    addr: SocketAddr,
    in_flight: AtomicUsize,
}

#[derive(Debug)]
struct Revision {
    instances: Vec<Arc<Instance>>,
    /// Requests an instance takes at once; 0 = unlimited.
    capacity: usize,
}

/// Why no lease was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLease {
    /// The revision has no ready instance.
    Empty,
    /// Every instance is at its limit.
    Busy,
}

pub struct Endpoints {
    by_revision: ArcSwap<HashMap<String, Arc<Revision>>>,
    /// Bumped when endpoints change or a full instance frees a slot, so held
    /// requests can try again.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self { by_revision: ArcSwap::default(), changes: tokio::sync::watch::Sender::new(0) }
    }
}

/// A request's claim on an instance; released on drop.
pub struct Lease {
    instance: Arc<Instance>,
    capacity: usize,
    endpoints: Arc<Endpoints>,
}

impl Lease {
    pub fn addr(&self) -> SocketAddr {
        self.instance.addr
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let before = self.instance.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.capacity > 0 && before >= self.capacity {
            self.endpoints.bump(); // a full instance has room again
        }
    }
}

impl Endpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver that wakes when a held request may now get a lease.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Replaces the ready instances of one revision (empty removes it). Instances
    /// that stay keep their in-flight counts.
    pub fn set(&self, key: &str, addrs: Vec<SocketAddr>, capacity: usize) {
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
                    old.and_then(|r| r.instances.iter().find(|i| i.addr == *a).cloned())
                        .unwrap_or_else(|| Arc::new(Instance { addr: *a, in_flight: AtomicUsize::new(0) }))
                })
                .collect();
            map.insert(key.to_string(), Arc::new(Revision { instances, capacity }));
            map
        });
        self.bump();
    }

    /// Claims an instance of the revision for one request.
    pub fn acquire(self: &Arc<Self>, key: &str) -> Result<Lease, NoLease> {
        let map = self.by_revision.load();
        let rev = map.get(key).filter(|r| !r.instances.is_empty()).ok_or(NoLease::Empty)?;
        let instance = match rev.capacity {
            0 => Some(two_choices(&rev.instances)),
            cap => first_free(&rev.instances, cap),
        }
        .ok_or(NoLease::Busy)?;
        Ok(Lease { instance, capacity: rev.capacity, endpoints: self.clone() })
    }
}

/// The first instance below `cap`, claimed atomically.
fn first_free(instances: &[Arc<Instance>], cap: usize) -> Option<Arc<Instance>> {
    instances
        .iter()
        .find(|i| i.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1)).is_ok())
        .cloned()
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
        let mut rx = e.subscribe();
        rx.borrow_and_update();
        drop(a);
        assert!(rx.has_changed().unwrap(), "a freed slot wakes held requests");
        assert_eq!(e.acquire("ns/r").unwrap().addr(), addr(1));
    }

    #[test]
    fn in_flight_counts_survive_an_endpoint_update() {
        let e = Arc::new(Endpoints::new());
        e.set("ns/r", vec![addr(1)], 1);
        let held = e.acquire("ns/r").unwrap();
        e.set("ns/r", vec![addr(1), addr(2)], 1);
        assert_eq!(e.acquire("ns/r").unwrap().addr(), addr(2), "addr 1 is still busy");
        drop(held);
        e.set("ns/r", vec![], 1);
        assert_eq!(e.acquire("ns/r").err(), Some(NoLease::Empty));
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
