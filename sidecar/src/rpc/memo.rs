//! Where a request goes, as far as it is the same for every request to one
//! revision over one protocol — the function, its route state, the
//! revision's endpoints key, the `ok` request series — worked out once per
//! route table on each worker and shared by those requests. Per request that
//! saves two string allocations (the revision's name and key), three hashed
//! string lookups for the series and, for a stateful policy, the state map's
//! lookup under the gateway's lock; one reference count covers it all.

use crate::metrics::Series;
use crate::resilience::{Policy, RouteState};
use crate::routing::{FunctionRoute, RouteTable};
use rustc_hash::FxHashMap;
use std::sync::{Arc, Mutex};

/// One revision of a function, as requests over one protocol see it.
pub(super) struct Route {
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
    pub(super) fn detached() -> Arc<Self> {
        let (function, state) = (Arc::default(), None);
        Arc::new(Self { function, state, revision: String::new(), key: String::new(), ok: Series::detached() })
    }
}

/// A function's entry: its route state and the revisions met so far.
struct Function {
    state: Option<Arc<RouteState>>,
    /// Few (those the split and tags name): a scan beats a map.
    revisions: Vec<Arc<Route>>,
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
pub(super) struct Memo {
    inner: Mutex<Inner>,
}

/// What the memo needs to fill an entry the first time.
pub(super) trait Fill {
    fn state(&self, route: &FunctionRoute) -> Option<Arc<RouteState>>;
    fn ok_series(&self, protocol: &'static str, route: &FunctionRoute, revision: &str) -> Series;
}

impl Memo {
    /// The route to revision `name` of `route` (a route of `table`) for
    /// `protocol`.
    pub(super) fn route(
        &self,
        table: &Arc<RouteTable>,
        route: &Arc<FunctionRoute>,
        protocol: &'static str,
        name: &str,
        fill: &impl Fill,
    ) -> Arc<Route> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.table.as_ref().is_some_and(|t| Arc::ptr_eq(t, table)) {
            inner.functions.clear();
            inner.table = Some(table.clone());
        }
        let key = (Arc::as_ptr(route) as usize, protocol);
        let function =
            inner.functions.entry(key).or_insert_with(|| Function { state: fill.state(route), revisions: Vec::new() });
        if let Some(r) = function.revisions.iter().find(|r| r.revision == name) {
            return r.clone();
        }
        let r = Arc::new(Route {
            function: route.clone(),
            state: function.state.clone(),
            revision: name.to_string(),
            key: crate::endpoints::revision_key(&route.namespace, name),
            ok: fill.ok_series(protocol, route, name),
        });
        function.revisions.push(r.clone());
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

    #[test]
    fn an_entry_is_filled_once_per_table_revision_and_protocol() {
        let (memo, fill) = (Memo::default(), Counting::default());
        let t = table(&[("a", 50), ("b", 50)]);
        let r = route(&t);
        for _ in 0..3 {
            let a = memo.route(&t, &r, "dubbo", "a", &fill);
            assert_eq!((a.revision.as_str(), a.key.as_str()), ("a", "ns/a"));
            assert!(Arc::ptr_eq(&a.function, &r));
        }
        assert_eq!((fill.states.get(), fill.series.get()), (1, 1));
        memo.route(&t, &r, "dubbo", "b", &fill);
        assert_eq!((fill.states.get(), fill.series.get()), (1, 2), "a second revision: its own series");
        memo.route(&t, &r, "bolt", "a", &fill);
        assert_eq!((fill.states.get(), fill.series.get()), (2, 3), "another protocol: its own entry");
    }

    #[test]
    fn a_new_table_starts_the_memo_afresh() {
        let (memo, fill) = (Memo::default(), Counting::default());
        let old = table(&[("a", 100)]);
        memo.route(&old, &route(&old), "dubbo", "a", &fill);
        let new = table(&[("a", 100)]);
        memo.route(&new, &route(&new), "dubbo", "a", &fill);
        assert_eq!(fill.states.get(), 2, "the new table's route state is looked up again");
        assert_eq!(memo.inner.lock().unwrap().functions.len(), 1, "the old table's entries are gone");
    }
}
