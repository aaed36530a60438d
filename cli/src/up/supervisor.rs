//! The local supervisor: runs each revision's replicas on the function hosts
//! (`hosts.rs`), restarts them with backoff when they are lost, publishes ready
//! addresses to the gateway's endpoints, and drains them on stop.
//!
//! Each replica is a *slot* with its own task. A slot owns its replica, so a
//! crash, a restart or a stop of one replica never touches another. Changes are
//! reported to the controller as the key of the function, which then re-reads the
//! state (level-triggered, like a watch).
//!
//! This is the local backend of the `Scaler` seam (weft-autoscaler): the
//! controller defines a revision, the autoscaler sets its replica count.

use super::hosts::{Assignment, HostPool};
use super::process::{self, ProcessReplica};
use crate::instance::InstanceConfig;
use crate::sync::lock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_autoscaler::{Replicas, ScaleTarget, Scaler, ScalerError};
use weft_controller::ReplicaState;
use weft_sidecar::Endpoints;
use weft_sidecar::endpoints::{Target, revision_key};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A replica that ran this long is healthy again: its next crash restarts fast.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// `(namespace, function)`, what the controller reconciles.
pub type FunctionKey = (String, String);

#[derive(Default)]
struct SlotShared {
    running: bool,
    ready: Option<Target>,
    admin: Option<SocketAddr>,
}

type SharedSlots = Arc<Mutex<Vec<Arc<Mutex<SlotShared>>>>>;
type Failure = Arc<Mutex<Option<(String, String)>>>;

struct Slot {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct RevisionSet {
    config: InstanceConfig,
    slots: Vec<Slot>,
    shared: SharedSlots,
    failure: Failure,
}

pub struct Supervisor {
    hosts: Arc<HostPool>,
    /// Where process functions' output goes (`<ns>_<function>_<revision>.log`).
    process_logs: PathBuf,
    endpoints: Arc<Endpoints>,
    notify: mpsc::UnboundedSender<FunctionKey>,
    revisions: Mutex<HashMap<String, RevisionSet>>,
    /// Set by `shutdown`: no replica starts after it.
    closed: std::sync::atomic::AtomicBool,
}

/// What one slot task needs.
#[derive(Clone)]
struct SlotCtx {
    hosts: Arc<HostPool>,
    process_logs: PathBuf,
    config: InstanceConfig,
    me: Arc<Mutex<SlotShared>>,
    siblings: SharedSlots,
    failure: Failure,
    endpoints: Arc<Endpoints>,
    notify: mpsc::UnboundedSender<FunctionKey>,
    stop: CancellationToken,
}

impl Supervisor {
    pub fn new(
        hosts: Arc<HostPool>,
        process_logs: PathBuf,
        endpoints: Arc<Endpoints>,
        notify: mpsc::UnboundedSender<FunctionKey>,
    ) -> Self {
        let revisions = Mutex::new(HashMap::new());
        Self { hosts, process_logs, endpoints, notify, revisions, closed: Default::default() }
    }

    /// Makes a revision known (like creating its Deployment) at its current
    /// replica count, zero for a new one. Revisions are immutable: a second
    /// definition of the same revision changes nothing.
    pub fn define(&self, config: &InstanceConfig) {
        let key = revision_key(&config.namespace, &config.revision);
        if config.process.is_some() {
            self.endpoints.meter(&key); // a process reports no load itself
        }
        lock(&self.revisions).entry(key).or_insert_with(|| RevisionSet {
            config: config.clone(),
            slots: Vec::new(),
            shared: Arc::default(),
            failure: Arc::default(),
        });
    }

    /// Stops a revision's replicas and forgets it (its function was deleted).
    pub fn forget(&self, namespace: &str, revision: &str) {
        let key = revision_key(namespace, revision);
        if let Some(set) = lock(&self.revisions).remove(&key) {
            set.slots.iter().for_each(|s| s.stop.cancel());
        }
        self.endpoints.unmeter(&key);
    }

    /// The load of a revision measured at the gateway (process functions,
    /// whose replicas report none), since the last call.
    pub fn gateway_report(&self, key: &str) -> Option<weft_sidecar::stats::Report> {
        self.endpoints.report(key)
    }

    /// Ready admin addresses of a revision's replicas (for `/stats`).
    pub fn admin_addrs(&self, key: &str) -> Vec<SocketAddr> {
        let revs = lock(&self.revisions);
        let Some(set) = revs.get(key) else {
            return Vec::new();
        };
        let shared = lock(&set.shared);
        shared.iter().filter_map(|s| lock(s).admin).collect()
    }

    /// Runs exactly `n` replicas of a defined revision.
    fn scale_set(&self, set: &mut RevisionSet, n: usize) {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        while set.slots.len() < n {
            let slot = self.start_slot(set);
            set.slots.push(slot);
        }
        while set.slots.len() > n {
            if let Some(slot) = set.slots.pop() {
                slot.stop.cancel();
            }
        }
    }

    fn start_slot(&self, set: &RevisionSet) -> Slot {
        let me: Arc<Mutex<SlotShared>> = Arc::default();
        lock(&set.shared).push(me.clone());
        let stop = CancellationToken::new();
        let ctx = SlotCtx {
            hosts: self.hosts.clone(),
            process_logs: self.process_logs.clone(),
            config: set.config.clone(),
            me,
            siblings: set.shared.clone(),
            failure: set.failure.clone(),
            endpoints: self.endpoints.clone(),
            notify: self.notify.clone(),
            stop: stop.clone(),
        };
        Slot { stop, task: tokio::spawn(run_slot(ctx)) }
    }

    /// Replica counts of a revision, for its status.
    pub fn state(&self, namespace: &str, revision: &str) -> ReplicaState {
        let revs = lock(&self.revisions);
        let Some(set) = revs.get(&revision_key(namespace, revision)) else {
            return ReplicaState::default();
        };
        let shared = lock(&set.shared);
        let count = |f: fn(&SlotShared) -> bool| shared.iter().filter(|s| f(&lock(s))).count() as i32;
        ReplicaState {
            desired: set.slots.len() as i32,
            actual: count(|s| s.running),
            ready: count(|s| s.ready.is_some()),
            failure: lock(&set.failure).clone(),
            initialized: false, // the autoscaler knows; the controller fills it in
        }
    }

    /// Stops every replica and waits for them (Ctrl-C of `weft up`).
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut revs = lock(&self.revisions);
            self.closed.store(true, std::sync::atomic::Ordering::Release);
            revs.drain()
                .flat_map(|(_, set)| set.slots)
                .map(|s| {
                    s.stop.cancel();
                    s.task
                })
                .collect()
        };
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn run_slot(ctx: SlotCtx) {
    let mut backoff = BACKOFF_MIN;
    while !ctx.stop.is_cancelled() {
        match ctx.start().await {
            Ok(replica) => {
                let started = Instant::now();
                let (target, admin) = replica.addrs();
                tracing::debug!(revision = %ctx.config.revision, serving = %target.addr, "replica started");
                ctx.set(|s| *s = SlotShared { running: true, ready: Some(target), admin });
                *lock(&ctx.failure) = None;
                ctx.changed();
                if supervise(&ctx, replica).await == Exit::Stopped {
                    break;
                }
                if started.elapsed() > HEALTHY_RUN {
                    backoff = BACKOFF_MIN;
                }
            }
            Err(e) => {
                tracing::warn!(revision = %ctx.config.revision, error = %format!("{e:#}"), "instance failed to start");
                *lock(&ctx.failure) = Some(("StartFailed".into(), format!("{e:#}")));
                ctx.changed();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ctx.stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    // This slot is gone: drop it from the revision's list.
    lock(&ctx.siblings).retain(|s| !Arc::ptr_eq(s, &ctx.me));
    ctx.changed();
}

#[derive(PartialEq, Eq)]
enum Exit {
    Lost,
    Stopped,
}

/// A running replica: on a function host (wasm), or a process of its own.
enum Replica {
    Host(Assignment),
    Process(ProcessReplica),
}

impl Replica {
    /// Where requests go, and where its load is read (none for a process:
    /// the gateway meters it).
    fn addrs(&self) -> (Target, Option<SocketAddr>) {
        match self {
            Self::Host(a) => (a.ready.target(), Some(a.ready.admin)),
            Self::Process(p) => (Target::from(p.addr), None),
        }
    }
}

/// Waits for the replica to be lost (its host or process died) or for the
/// slot to be stopped.
async fn supervise(ctx: &SlotCtx, replica: Replica) -> Exit {
    match replica {
        Replica::Host(a) => {
            tokio::select! {
                _ = a.lost() => {
                    let pid = a.host_pid();
                    let why = format!("the function host (pid {pid}) running this instance exited; see `weft logs {}`", ctx.config.function);
                    ctx.lost("HostExited", why)
                }
                _ = ctx.stop.cancelled() => ctx.stopped(a.stop()).await,
            }
        }
        Replica::Process(mut p) => {
            let pid = p.pid;
            tokio::select! {
                status = p.lost() => {
                    let why = format!("the process (pid {pid}) exited: {status}; see `weft logs {}`", ctx.config.function);
                    ctx.lost("ProcessExited", why)
                }
                _ = ctx.stop.cancelled() => ctx.stopped(p.stop()).await,
            }
        }
    }
}

impl SlotCtx {
    /// Starts a replica of this slot's revision.
    async fn start(&self) -> anyhow::Result<Replica> {
        if self.config.process.is_none() {
            return Ok(Replica::Host(self.hosts.assign(&self.config).await?));
        }
        let c = &self.config;
        let log = self.process_logs.join(format!("{}_{}_{}.log", c.namespace, c.function, c.revision));
        Ok(Replica::Process(process::start(c, &log).await?))
    }

    /// The replica died: report why; the slot restarts it with backoff.
    fn lost(&self, reason: &str, why: String) -> Exit {
        tracing::warn!(revision = %self.config.revision, %why, "instance lost; restarting with backoff");
        *lock(&self.failure) = Some((reason.into(), why));
        self.set(|s| *s = SlotShared::default());
        self.changed();
        Exit::Lost
    }

    /// Takes the replica out of the endpoints first, so no new request
    /// reaches it, then runs `stop` (which drains it).
    async fn stopped(&self, stop: impl std::future::Future<Output = ()>) -> Exit {
        self.set(|s| (s.ready, s.admin) = (None, None));
        self.changed();
        stop.await;
        self.set(|s| s.running = false);
        Exit::Stopped
    }

    /// Updates this slot's state; callers then report it with `changed`.
    fn set(&self, f: impl FnOnce(&mut SlotShared)) {
        f(&mut lock(&self.me));
    }

    /// Publishes the revision's ready addresses to the gateway.
    fn publish(&self) {
        let addrs: Vec<Target> = lock(&self.siblings).iter().filter_map(|s| lock(s).ready).collect();
        let capacity = self.config.container_concurrency as usize;
        self.endpoints.set(&revision_key(&self.config.namespace, &self.config.revision), addrs, capacity);
    }

    fn changed(&self) {
        self.publish();
        let _ = self.notify.send((self.config.namespace.clone(), self.config.function.clone()));
    }
}

// === impl Backend ===

impl super::autoscale::Backend for Supervisor {
    fn admin_addrs(&self, key: &str) -> Vec<SocketAddr> {
        Supervisor::admin_addrs(self, key)
    }

    fn gateway_report(&self, key: &str) -> Option<weft_sidecar::stats::Report> {
        Supervisor::gateway_report(self, key)
    }
}

// === impl Scaler ===

impl Scaler for Supervisor {
    fn set_replicas(&self, target: &ScaleTarget, replicas: u32) -> Result<(), ScalerError> {
        let key = target.key();
        let mut revs = lock(&self.revisions);
        let set = revs.get_mut(&key).ok_or(ScalerError::UnknownTarget(key))?;
        self.scale_set(set, replicas as usize);
        Ok(())
    }

    fn replicas(&self, target: &ScaleTarget) -> Result<Replicas, ScalerError> {
        let state = self.state(&target.namespace, &target.revision);
        let n = |v: i32| u32::try_from(v).unwrap_or(0);
        Ok(Replicas { desired: n(state.desired), actual: n(state.actual), ready: n(state.ready) })
    }
}
