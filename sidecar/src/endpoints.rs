//! Ready instance addresses per revision, published by the scaler and read on
//! every request. Swapped whole like the route table.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Key of a revision: `<namespace>/<revision>`.
pub fn revision_key(namespace: &str, revision: &str) -> String {
    format!("{namespace}/{revision}")
}

pub struct Endpoints {
    by_revision: ArcSwap<HashMap<String, Arc<[SocketAddr]>>>,
    next: AtomicUsize,
    /// Bumped on every change, so the activator can wait for an instance.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self { by_revision: ArcSwap::default(), next: AtomicUsize::new(0), changes: tokio::sync::watch::Sender::new(0) }
    }
}

impl Endpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver that wakes on every change of any revision's endpoints.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Replaces the ready addresses of one revision (empty removes it).
    pub fn set(&self, key: &str, addrs: Vec<SocketAddr>) {
        self.by_revision.rcu(|current| {
            let mut map = HashMap::clone(current);
            if addrs.is_empty() {
                map.remove(key);
            } else {
                map.insert(key.to_string(), addrs.clone().into());
            }
            map
        });
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn get(&self, key: &str) -> Option<Arc<[SocketAddr]>> {
        self.by_revision.load().get(key).cloned()
    }

    /// Round-robin pick among a revision's ready instances.
    pub fn pick(&self, key: &str) -> Option<SocketAddr> {
        let map = self.by_revision.load();
        let addrs = map.get(key)?;
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        addrs.get(i % addrs.len()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_and_removal() {
        let e = Endpoints::new();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        e.set("default/hello-00001", vec![a, b]);
        let picks: Vec<_> = (0..4).map(|_| e.pick("default/hello-00001").unwrap()).collect();
        assert_eq!(picks.iter().filter(|p| **p == a).count(), 2);
        e.set("default/hello-00001", vec![]);
        assert!(e.pick("default/hello-00001").is_none());
    }
}
