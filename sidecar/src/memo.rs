//! Where a request goes, as far as it is the same for every request to one
//! revision over one protocol — the function, its route state, the
//! revision's endpoints key, the request series of its usual outcome (`ok`
//! for RPC, 200 for HTTP) — worked out once per route table on each worker
//! and shared by those requests: the RPC workers' and the HTTP/1.1 fast
//! path's. Per request that saves two string allocations (the revision's
//! name and key), three hashed string lookups for the series and, for a
//! stateful policy, the state map's lookup under the gateway's lock; one
//! reference count covers it all, and it is the worker's own — the shared
//! route's count, written by every worker, is not touched.

use crate::metrics::Series;
use crate::resilience::{Policy, RouteState};
use crate::routing::{FunctionRoute, RouteTable};
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// One revision of a function, as requests over one protocol see it.
pub(crate) struct Route {
    pub function: Arc<FunctionRoute>,
    pub state: Option<Arc<RouteState>>,
    pub revision: String,
    /// The revision's key in the endpoints (`namespace/revision`).
    pub key: String,
    /// Requests the instance answered.
    pub ok: Series,
}

impl Route {
    pub fn policy(&self) -> &Policy {
        &self.function.policy
    }

    /// A route in no memo (for tests).
    #[cfg(test)]
    pub(crate) fn detached() -> Arc<Self> {
        let (function, state) = (Arc::default(), None);
        Arc::new(Self { function, state, revision: String::new(), key: String::new(), ok: Series::detached() })
    }
}

/// A function's revisions by weight, for one protocol: what a request with
/// no tag picks from.
pub(crate) struct Split {
    /// `(route, cumulative weight)`, ascending; no zero weights.
    routes: Vec<(Arc<Route>, u32)>,
}

impl Split {
    /// A revision with probability proportional to its weight.
    pub(crate) fn pick(&self) -> Option<&Arc<Route>> {
        let total = self.routes.last()?.1;
        let roll = fastrand::u32(0..total);
        let i = self.routes.partition_point(|(_, cum)| *cum <= roll);
        self.routes.get(i).map(|(r, _)| r)
    }
}

/// Where a connection's last request without a tag went. A legacy client
/// calls one service over and over on a connection; while the route table
/// is the same, its next request to that service picks from the same split
/// with no lookup at all.
#[derive(Default)]
pub(crate) struct Last {
    /// The route-table generation it holds for.
    generation: u64,
    service: String,
    split: Option<Arc<Split>>,
}

impl Last {
    /// The split of `service`, if this remembers it for `generation`.
    pub(crate) fn split(&self, generation: u64, service: &str) -> Option<&Split> {
        self.split.as_deref().filter(|_| self.generation == generation && self.service == service)
    }

    pub(crate) fn remember(&mut self, generation: u64, service: &str, split: Arc<Split>) {
        self.generation = generation;
        self.service.clear();
        self.service.push_str(service);
        self.split = Some(split);
    }
}

/// A function's entry: its route state and the revisions met so far.
struct Function {
    state: Option<Arc<RouteState>>,
    /// Few (those the split and tags name): a scan beats a map.
    revisions: Vec<Arc<Route>>,
    /// Made on first use.
    split: Option<Arc<Split>>,
}

#[derive(Default)]
struct Inner {
    /// The table the entries belong to. Held, so its routes' addresses — the
    /// keys below — are not reused while the entries live; a new table
    /// empties the memo, which so stays as small as one table.
    table: Option<Arc<RouteTable>>,
    /// By the route's address and the protocol's name.
    functions: FxHashMap<(usize, &'static str), Function>,
}

/// A worker's memo (its own: the lock is never contended).
#[derive(Default)]
pub(crate) struct Memo {
    inner: Mutex<Inner>,
}

/// What the memo needs to fill an entry the first time.
pub(crate) trait Fill {
    fn state(&self, route: &FunctionRoute) -> Option<Arc<RouteState>>;
    fn ok_series(&self, protocol: &'static str, route: &FunctionRoute, revision: &str) -> Series;
}

/// Which function, over which protocol, of which table.
pub(crate) struct Key<'a> {
    pub table: &'a Arc<RouteTable>,
    pub route: &'a Arc<FunctionRoute>,
    pub protocol: &'static str,
}

impl Memo {
    /// The route to revision `name` of the function.
    pub(crate) fn route(&self, key: Key<'_>, name: &str, fill: &impl Fill) -> Arc<Route> {
        let mut inner = self.lock(key.table);
        let function = inner.function(&key, fill);
        function.revision(&key, name, fill)
    }

    /// The function's revisions by weight.
    pub(crate) fn split(&self, key: Key<'_>, fill: &impl Fill) -> Arc<Split> {
        let mut inner = self.lock(key.table);
        let function = inner.function(&key, fill);
        if let Some(split) = &function.split {
            return split.clone();
        }
        let routes = key.route.split.entries().map(|(name, cum)| (function.revision(&key, name, fill), cum)).collect();
        let split = Arc::new(Split { routes });
        function.split = Some(split.clone());
        split
    }

    /// The memo, emptied first if it holds entries of another table.
    fn lock(&self, table: &Arc<RouteTable>) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.table.as_ref().is_some_and(|t| Arc::ptr_eq(t, table)) {
            inner.functions.clear();
            inner.table = Some(table.clone());
        }
        inner
    }
}

impl Inner {
    fn function(&mut self, key: &Key<'_>, fill: &impl Fill) -> &mut Function {
        let at = (Arc::as_ptr(key.route) as usize, key.protocol);
        self.functions.entry(at).or_insert_with(|| Function {
            state: fill.state(key.route),
            revisions: Vec::new(),
            split: None,
        })
    }
}

impl Function {
    fn revision(&mut self, key: &Key<'_>, name: &str, fill: &impl Fill) -> Arc<Route> {
        if let Some(r) = self.revisions.iter().find(|r| r.revision == name) {
            return r.clone();
        }
        let route = key.route;
        let r = Arc::new(Route {
            function: route.clone(),
            state: self.state.clone(),
            revision: name.to_string(),
            key: crate::endpoints::revision_key(&route.namespace, name),
            ok: fill.ok_series(key.protocol, route, name),
        });
        self.revisions.push(r.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Counts how often entries are filled.
    #[derive(Default)]
    struct Counting {
        states: Cell<u32>,
        series: Cell<u32>,
    }

    impl Fill for Counting {
        fn state(&self, _: &FunctionRoute) -> Option<Arc<RouteState>> {
            self.states.set(self.states.get() + 1);
            None
        }
        fn ok_series(&self, _: &'static str, _: &FunctionRoute, _: &str) -> Series {
            self.series.set(self.series.get() + 1);
            Series::detached()
        }
    }

    fn table(revisions: &[(&str, u32)]) -> Arc<RouteTable> {
        let route = FunctionRoute {
            namespace: "ns".into(),
            name: "f".into(),
            split: crate::WeightedSplit::new(revisions.iter().copied()),
            ..Default::default()
        };
        Arc::new(RouteTable::new("d", [route]))
    }

    fn route(t: &RouteTable) -> Arc<FunctionRoute> {
        t.function("ns", "f").unwrap().route
    }

    fn key<'a>(table: &'a Arc<RouteTable>, route: &'a Arc<FunctionRoute>, protocol: &'static str) -> Key<'a> {
        Key { table, route, protocol }
    }

    #[test]
    fn an_entry_is_filled_once_per_table_revision_and_protocol() {
        let (memo, fill) = (Memo::default(), Counting::default());
        let t = table(&[("a", 50), ("b", 50)]);
        let r = route(&t);
        for _ in 0..3 {
            let a = memo.route(key(&t, &r, "dubbo"), "a", &fill);
            assert_eq!((a.revision.as_str(), a.key.as_str()), ("a", "ns/a"));
            assert!(Arc::ptr_eq(&a.function, &r));
        }
        assert_eq!((fill.states.get(), fill.series.get()), (1, 1));
        memo.route(key(&t, &r, "dubbo"), "b", &fill);
        assert_eq!((fill.states.get(), fill.series.get()), (1, 2), "a second revision: its own series");
        memo.route(key(&t, &r, "bolt"), "a", &fill);
        assert_eq!((fill.states.get(), fill.series.get()), (2, 3), "another protocol: its own entry");
    }

    #[test]
    fn a_new_table_starts_the_memo_afresh() {
        let (memo, fill) = (Memo::default(), Counting::default());
        let old = table(&[("a", 100)]);
        memo.route(key(&old, &route(&old), "dubbo"), "a", &fill);
        let new = table(&[("a", 100)]);
        memo.route(key(&new, &route(&new), "dubbo"), "a", &fill);
        assert_eq!(fill.states.get(), 2, "the new table's route state is looked up again");
        assert_eq!(memo.inner.lock().unwrap().functions.len(), 1, "the old table's entries are gone");
    }

    #[test]
    fn the_split_picks_by_weight_and_shares_the_revisions_routes() {
        let (memo, fill) = (Memo::default(), Counting::default());
        let t = table(&[("a", 90), ("b", 10), ("c", 0)]);
        let r = route(&t);
        let split = memo.split(key(&t, &r, "dubbo"), &fill);
        assert!(Arc::ptr_eq(&split, &memo.split(key(&t, &r, "dubbo"), &fill)), "made once");
        let a = memo.route(key(&t, &r, "dubbo"), "a", &fill);
        fastrand::seed(7);
        let picks: Vec<_> = (0..10_000).map(|_| split.pick().unwrap().clone()).collect();
        let to_a = picks.iter().filter(|p| Arc::ptr_eq(p, &a)).count();
        assert!((8_700..9_300).contains(&to_a), "{to_a} of 10000 to a (90%)");
        assert!(picks.iter().all(|p| p.revision != "c"), "a zero weight gets nothing");
        assert_eq!(fill.series.get(), 2, "a and b only");
    }

    #[test]
    fn the_last_split_holds_for_its_service_and_generation_only() {
        let (memo, fill) = (Memo::default(), Counting::default());
        let t = table(&[("a", 100)]);
        let split = memo.split(key(&t, &route(&t), "dubbo"), &fill);
        let mut last = Last::default();
        assert!(last.split(0, "svc").is_none(), "nothing remembered yet");
        last.remember(3, "svc", split);
        assert!(last.split(3, "svc").is_some());
        assert!(last.split(3, "other").is_none(), "another service");
        assert!(last.split(4, "svc").is_none(), "the route table changed since");
    }
}
