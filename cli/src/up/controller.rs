//! The local controller: applies the pure plans of `weft-controller` to the
//! embedded store, the supervisor and the gateway. Level-triggered: every event
//! only names a function, which is then reconciled from what is stored now, so a
//! missed or repeated event does no harm. A periodic resync catches the rest.

use super::autoscale::Autoscale;
use super::routes;
use super::supervisor::{FunctionKey, Supervisor};
use crate::instance::InstanceConfig;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use weft_autoscaler::{Defaults, ScaleTarget};
use weft_controller::{
    EmbeddedStore, ReplicaState, RouteBase, StoreError, WatchEvent, now_rfc3339, plan_function, plan_revision_status,
};
use weft_crds::quantity::parse_memory;
use weft_crds::{FUNCTION_LABEL, Function, Revision, RevisionSpec};
use weft_functions::ModuleStore;
use weft_sidecar::Gateway;
use weft_sidecar::endpoints::revision_key;

const RESYNC: Duration = Duration::from_secs(10);

pub struct Controller {
    pub store: Arc<EmbeddedStore>,
    pub supervisor: Arc<Supervisor>,
    pub autoscale: Arc<Autoscale>,
    pub gateway: Arc<Gateway>,
    pub modules: ModuleStore,
    pub engine: wasmtime::Engine,
    pub base: RouteBase,
    /// The sidecar address instances get as `$WEFT_SIDECAR` (the gateway's
    /// port, which serves every protocol).
    pub sidecar: std::net::SocketAddr,
    /// The broker ingress URL instances get as `$WEFT_EVENTS`.
    pub events: String,
    /// Per-function addresses and their DNS names, following the routes.
    pub services: Arc<super::services::Services>,
    /// Revisions that cannot run (e.g. their module does not compile), by
    /// `namespace/revision`: reported in status instead of starting instances.
    pub broken: Mutex<HashMap<String, (String, String)>>,
}

impl Controller {
    pub async fn run(
        self: Arc<Self>,
        mut watch: broadcast::Receiver<WatchEvent>,
        mut changes: mpsc::UnboundedReceiver<FunctionKey>,
        shutdown: CancellationToken,
    ) {
        self.reconcile_all();
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            let mut due = BTreeSet::new();
            // Routes come from Functions only: rebuild them when one changed.
            let mut routes_changed = false;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = resync.tick() => { self.reconcile_all(); continue; }
                ev = watch.recv() => match ev {
                    Ok(ev) => { routes_changed |= ev.kind == "functions"; due.insert(function_of(&ev)); }
                    // Missed events: reconcile everything.
                    Err(_) => { self.reconcile_all(); continue; }
                },
                Some(key) = changes.recv() => { due.insert(key); }
            }
            // Coalesce whatever else is already queued.
            while let Ok(ev) = watch.try_recv() {
                routes_changed |= ev.kind == "functions";
                due.insert(function_of(&ev));
            }
            while let Ok(key) = changes.try_recv() {
                due.insert(key);
            }
            for (ns, name) in due {
                self.reconcile_logged(&ns, &name);
            }
            // Reconciling may have written a Function's status (its ready revision):
            // its event comes back through the watch and rebuilds the table then.
            if routes_changed {
                self.publish_routes(); // once per batch: built from every Function
            }
        }
    }

    fn reconcile_all(&self) {
        let mut keys = BTreeSet::new();
        let (functions, revisions) = match (self.store.list::<Function>(None), self.store.list::<Revision>(None)) {
            (Ok(f), Ok(r)) => (f, r),
            (Err(e), _) | (_, Err(e)) => {
                return tracing::error!(error = %e, "list resources; will retry on the next resync");
            }
        };
        for f in functions {
            keys.insert((
                f.metadata.namespace.clone().unwrap_or_default(),
                f.metadata.name.clone().unwrap_or_default(),
            ));
        }
        // Revisions whose function is gone still need cleaning up.
        for r in revisions {
            if let Some(f) = r.metadata.labels.as_ref().and_then(|l| l.get(FUNCTION_LABEL)) {
                keys.insert((r.metadata.namespace.clone().unwrap_or_default(), f.clone()));
            }
        }
        for (ns, name) in keys {
            self.reconcile_logged(&ns, &name);
        }
        self.publish_routes();
    }

    fn reconcile_logged(&self, ns: &str, name: &str) {
        let span = tracing::info_span!("reconcile", namespace = %ns, function = %name);
        let _enter = span.enter();
        // Store writes wait for fsync: keep them off the async worker threads.
        if let Err(e) = tokio::task::block_in_place(|| self.reconcile(ns, name)) {
            tracing::error!(error = %e, "reconcile failed; will retry on the next resync");
        }
    }

    fn reconcile(&self, ns: &str, name: &str) -> Result<(), StoreError> {
        let revisions = self.revisions_of(ns, name)?;
        let Some(function) = self.store.get::<Function>(ns, name)? else {
            return self.remove(ns, revisions);
        };
        let now = now_rfc3339();
        let mut plan = plan_function(&function, &revisions, &self.base, &now);
        let mut revisions = revisions;
        if let Some(new) = plan.new_revision.take() {
            self.prepare(&new);
            let (stored, _) = self.store.apply(&new)?;
            tracing::info!(revision = stored.metadata.name.as_deref().unwrap_or(""), "revision created");
            revisions.push(stored);
            plan = plan_function(&function, &revisions, &self.base, &now);
        }
        for rev in &mut revisions {
            let rname = rev.metadata.name.clone().unwrap_or_default();
            let state = self.scale(ns, name, rev, plan.routed.contains(&rname));
            let status = plan_revision_status(rev, &state, &now);
            self.store.update_status::<Revision>(ns, &rname, &status)?;
            rev.status = Some(status);
        }
        // Plan again with the revisions' fresh status for the function's status.
        let plan = plan_function(&function, &revisions, &self.base, &now);
        // Routes first, then the status: a client that waits for Ready (`weft
        // apply`) must find the route in place. Published after the status,
        // a request sent at once could get a 404. Any change counts (traffic,
        // or a new generation whose spec changed its hosts or interfaces).
        if function.status.as_ref() != Some(&plan.status) {
            let mut routed = function.clone();
            routed.status = Some(plan.status.clone());
            self.publish_routes_with(Some(&routed));
        }
        self.store.update_status::<Function>(ns, name, &plan.status)?;
        Ok(())
    }

    /// Compiles a new revision's module once, ahead of its instances.
    fn prepare(&self, rev: &Revision) {
        let key = rev_key(rev);
        let result = match rev.spec.wasm.as_ref().and_then(|w| w.digest.as_deref()) {
            Some(digest) => {
                self.modules.compiled(&self.engine, digest).map(|_| ()).map_err(|e| ("ModuleInvalid", e.to_string()))
            }
            None if rev.spec.wasm.is_some() => {
                Err(("ModuleMissing", "spec.wasm.digest is not set; apply with `weft apply`".into()))
            }
            None if rev.spec.process.is_some() => Ok(()),
            None => {
                Err(("Unsupported", "weft up runs wasm and process functions; image functions need a cluster".into()))
            }
        };
        if let Err((reason, message)) = result {
            tracing::warn!(revision = %key, %reason, %message, "revision cannot run");
            self.broken_map().insert(key, (reason.into(), message));
        }
    }

    /// Defines the revision's instances for the supervisor and hands its count
    /// to the autoscaler; returns where its instances are.
    fn scale(&self, ns: &str, function: &str, rev: &Revision, routed: bool) -> ReplicaState {
        let key = rev_key(rev);
        if let Some(failure) = self.broken_map().get(&key).cloned() {
            return ReplicaState { failure: Some(failure), ..Default::default() };
        }
        let cfg = match instance_config(
            ns,
            function,
            rev,
            &self.modules,
            self.autoscale.defaults(),
            (self.sidecar, &self.events),
        ) {
            Ok(cfg) => cfg,
            Err(message) => {
                return ReplicaState { failure: Some(("InvalidSpec".into(), message)), ..Default::default() };
            }
        };
        self.supervisor.define(&cfg);
        let target = ScaleTarget { namespace: ns.to_string(), revision: cfg.revision.clone() };
        let annotations = rev.metadata.annotations.clone().unwrap_or_default();
        if let Err(e) = self.autoscale.upsert(target, &annotations, cfg.container_concurrency, routed) {
            return ReplicaState { failure: Some(("InvalidScaling".into(), e.to_string())), ..Default::default() };
        }
        ReplicaState { initialized: self.autoscale.initialized(&key), ..self.supervisor.state(ns, &cfg.revision) }
    }

    /// The function is gone: stop and delete its revisions (owner references).
    fn remove(&self, ns: &str, revisions: Vec<Revision>) -> Result<(), StoreError> {
        for rev in revisions {
            let rname = rev.metadata.name.clone().unwrap_or_default();
            self.autoscale.remove(&rev_key(&rev));
            self.supervisor.forget(ns, &rname);
            self.broken_map().remove(&rev_key(&rev));
            self.store.delete::<Revision>(ns, &rname)?;
            tracing::info!(revision = %rname, "revision deleted");
        }
        Ok(())
    }

    fn revisions_of(&self, ns: &str, name: &str) -> Result<Vec<Revision>, StoreError> {
        // Revision names start with their function's name: scan only those.
        let all = self.store.list_prefixed::<Revision>(ns, &format!("{name}-"))?;
        Ok(all
            .into_iter()
            .filter(|r| r.metadata.labels.as_ref().and_then(|l| l.get(FUNCTION_LABEL)).is_some_and(|f| f == name))
            .collect())
    }

    fn publish_routes(&self) {
        self.publish_routes_with(None);
    }

    /// Publishes the routes of every stored Function, with `updated` in place
    /// of its stored copy (a status about to be written).
    fn publish_routes_with(&self, updated: Option<&Function>) {
        match self.store.list::<Function>(None) {
            Ok(mut fns) => {
                if let Some(u) = updated {
                    let same = |f: &Function| {
                        f.metadata.namespace == u.metadata.namespace && f.metadata.name == u.metadata.name
                    };
                    // In place, so the table is built in the store's order.
                    match fns.iter_mut().find(|f| same(f)) {
                        Some(f) => *f = u.clone(),
                        None => fns.push(u.clone()),
                    }
                }
                let table = routes::table(&self.base.domain, &fns);
                self.services.update(&table);
                self.gateway.set_routes(table);
            }
            Err(e) => tracing::error!(error = %e, "list functions for routes"),
        }
    }

    fn broken_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        crate::sync::lock(&self.broken)
    }
}

fn rev_key(rev: &Revision) -> String {
    revision_key(rev.metadata.namespace.as_deref().unwrap_or(""), rev.metadata.name.as_deref().unwrap_or(""))
}

/// The function a store event is about.
fn function_of(ev: &WatchEvent) -> FunctionKey {
    let name = if ev.kind == "revisions" {
        ev.name.rsplit_once('-').map_or(ev.name.as_str(), |(f, _)| f).to_string()
    } else {
        ev.name.clone()
    };
    (ev.namespace.clone(), name)
}

/// What an instance of this revision runs with.
pub fn instance_config(
    ns: &str,
    function: &str,
    rev: &Revision,
    modules: &ModuleStore,
    defaults: &Defaults,
    (sidecar, events): (std::net::SocketAddr, &str),
) -> Result<InstanceConfig, String> {
    let spec: &RevisionSpec = &rev.spec;
    let digest = spec.wasm.as_ref().and_then(|w| w.digest.clone());
    let digest = match (&spec.process, digest) {
        (Some(_), _) => String::new(),
        (None, d) => d.ok_or("no module digest")?,
    };
    let memory_bytes = parse_memory(spec.memory()).map_err(|e| e.to_string())?;
    let env = weft_controller::instance_env(&spec.env, &sidecar.to_string(), events);
    Ok(InstanceConfig {
        namespace: ns.to_string(),
        function: function.to_string(),
        revision: rev.metadata.name.clone().unwrap_or_default(),
        module_dir: modules.dir().display().to_string(),
        digest,
        env,
        timeout_ms: u64::from(spec.timeout_seconds()) * 1000,
        memory_bytes,
        container_concurrency: defaults.container_concurrency(spec.container_concurrency),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        exit_with_parent: true,
        process: spec.process.clone(),
        module_source: None,
        admin_listen: None,
        upstream: None,
    })
}
