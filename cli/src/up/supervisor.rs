//! The local process supervisor: runs each revision's replicas as `weft instance`
//! child processes on loopback, restarts them with backoff when they crash,
//! publishes ready addresses to the gateway's endpoints, and drains them on stop.
//!
//! Each replica is a *slot* with its own task. A slot owns its child process, so
//! a crash, a restart or a stop of one replica never touches another. Changes are
//! reported to the controller as the key of the function, which then re-reads the
//! state (level-triggered, like a watch).
//!
//! This is the local backend of the `Scaler` seam (weft-autoscaler): the
//! controller defines a revision, the autoscaler sets its replica count.

use super::standby::{StandbyPool, assign};
use crate::instance::{InstanceConfig, ReadyLine};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_autoscaler::{Replicas, ScaleTarget, Scaler, ScalerError};
use weft_controller::ReplicaState;
use weft_sidecar::Endpoints;
use weft_sidecar::endpoints::revision_key;

/// Time an instance has to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a stopping instance has to drain before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A replica that ran this long is healthy again: its next crash restarts fast.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// `(namespace, function)`, what the controller reconciles.
pub type FunctionKey = (String, String);

#[derive(Default)]
struct SlotShared {
    running: bool,
    ready: Option<SocketAddr>,
    admin: Option<SocketAddr>,
}

type SharedSlots = Arc<Mutex<Vec<Arc<Mutex<SlotShared>>>>>;
type Failure = Arc<Mutex<Option<(String, String)>>>;

struct Slot {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct RevisionSet {
    pub(super) config: InstanceConfig,
    slots: Vec<Slot>,
    shared: SharedSlots,
    failure: Failure,
}

pub struct Supervisor {
    standby: Arc<StandbyPool>,
    exe: PathBuf,
    logs: PathBuf,
    endpoints: Arc<Endpoints>,
    notify: mpsc::UnboundedSender<FunctionKey>,
    revisions: Mutex<HashMap<String, RevisionSet>>,
    /// Set by `shutdown`: no replica starts after it.
    closed: std::sync::atomic::AtomicBool,
}

/// What one slot task needs.
#[derive(Clone)]
pub(super) struct SlotCtx {
    standby: Arc<StandbyPool>,
    exe: PathBuf,
    pub(super) log: PathBuf,
    pub(super) config: InstanceConfig,
    me: Arc<Mutex<SlotShared>>,
    siblings: SharedSlots,
    failure: Failure,
    endpoints: Arc<Endpoints>,
    notify: mpsc::UnboundedSender<FunctionKey>,
    stop: CancellationToken,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Supervisor {
    pub fn new(
        standby: Arc<StandbyPool>,
        exe: PathBuf,
        logs: PathBuf,
        endpoints: Arc<Endpoints>,
        notify: mpsc::UnboundedSender<FunctionKey>,
    ) -> Self {
        Self {
            standby,
            exe,
            logs,
            endpoints,
            notify,
            revisions: Mutex::new(HashMap::new()),
            closed: Default::default(),
        }
    }

    /// Makes a revision known (like creating its Deployment) at its current
    /// replica count, zero for a new one. Revisions are immutable: a second
    /// definition of the same revision changes nothing.
    pub fn define(&self, config: &InstanceConfig) {
        let key = revision_key(&config.namespace, &config.revision);
        lock(&self.revisions).entry(key).or_insert_with(|| RevisionSet {
            config: config.clone(),
            slots: Vec::new(),
            shared: Arc::default(),
            failure: Arc::default(),
        });
    }

    /// Stops a revision's replicas and forgets it (its function was deleted).
    pub fn forget(&self, namespace: &str, revision: &str) {
        if let Some(set) = lock(&self.revisions).remove(&revision_key(namespace, revision)) {
            set.slots.iter().for_each(|s| s.stop.cancel());
        }
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
            let slot = self.start_slot(set, set.slots.len());
            set.slots.push(slot);
        }
        while set.slots.len() > n {
            if let Some(slot) = set.slots.pop() {
                slot.stop.cancel();
            }
        }
    }

    fn start_slot(&self, set: &RevisionSet, index: usize) -> Slot {
        let config = &set.config;
        let me: Arc<Mutex<SlotShared>> = Arc::default();
        lock(&set.shared).push(me.clone());
        let stop = CancellationToken::new();
        let log =
            self.logs.join(&config.namespace).join(&config.function).join(format!("{}-{index}.log", config.revision));
        let ctx = SlotCtx {
            standby: self.standby.clone(),
            exe: self.exe.clone(),
            log,
            config: config.clone(),
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
        match start_instance(&ctx).await {
            Ok((child, ready)) => {
                let started = Instant::now();
                ctx.set(|s| *s = SlotShared { running: true, ready: Some(ready.serving), admin: Some(ready.admin) });
                *lock(&ctx.failure) = None;
                ctx.changed();
                if supervise(&ctx, child).await == Exit::Stopped {
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
    Crashed,
    Stopped,
}

/// Waits for the child to exit or for the slot to be stopped.
async fn supervise(ctx: &SlotCtx, mut child: Child) -> Exit {
    tokio::select! {
        status = child.wait() => {
            let what = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            tracing::warn!(revision = %ctx.config.revision, status = %what, "instance exited; restarting with backoff");
            *lock(&ctx.failure) = Some(("ExitCode".into(), format!("instance exited ({what}); see `weft logs {}`", ctx.config.function)));
            ctx.set(|s| *s = SlotShared::default());
            ctx.changed();
            Exit::Crashed
        }
        _ = ctx.stop.cancelled() => {
            // Take it out of the endpoints first, so no new request reaches it.
            ctx.set(|s| (s.ready, s.admin) = (None, None));
            ctx.changed();
            terminate(&mut child).await;
            ctx.set(|s| s.running = false);
            Exit::Stopped
        }
    }
}

async fn start_instance(ctx: &SlotCtx) -> Result<(Child, ReadyLine)> {
    if let Some(dir) = ctx.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if let Some(standby) = ctx.standby.take() {
        let pool = ctx.standby.clone();
        tokio::task::spawn_blocking(move || pool.refill());
        match assign(ctx, standby).await {
            Ok(started) => return Ok(started),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "standby instance failed; starting a new one"),
        }
    }
    spawn_instance(ctx).await
}

async fn spawn_instance(ctx: &SlotCtx) -> Result<(Child, ReadyLine)> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ctx.log)
        .with_context(|| format!("open {}", ctx.log.display()))?;
    tracing::debug!(revision = %ctx.config.revision, "spawning instance");
    let mut child = Command::new(&ctx.exe)
        .arg("instance")
        .arg("--config")
        .arg(serde_json::to_string(&ctx.config)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawn {} instance", ctx.exe.display()))?;
    let stdout = child.stdout.take().context("instance stdout")?;
    let ready = read_ready(ctx, &mut child, stdout).await?;
    Ok((child, ready))
}

/// Reads an instance's ready line (its readiness signal).
pub(super) async fn read_ready(
    ctx: &SlotCtx,
    child: &mut Child,
    stdout: tokio::process::ChildStdout,
) -> Result<ReadyLine> {
    let mut lines = BufReader::new(stdout).lines();
    let line = match tokio::time::timeout(START_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => line,
        Ok(_) => {
            let status = child.wait().await.map(|s| s.to_string()).unwrap_or_default();
            bail!("instance exited before it was ready ({status}); see {}", ctx.log.display());
        }
        Err(_) => bail!("instance was not ready within {START_TIMEOUT:?}"),
    };
    let ready: ReadyLine = serde_json::from_str(&line).with_context(|| format!("instance ready line {line:?}"))?;
    tracing::debug!(revision = %ctx.config.revision, serving = %ready.serving, "instance ready line read");
    Ok(ready)
}

/// SIGTERM, then SIGKILL after the grace period.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

impl SlotCtx {
    /// Updates this slot's state; callers then report it with `changed`.
    fn set(&self, f: impl FnOnce(&mut SlotShared)) {
        f(&mut lock(&self.me));
    }

    /// Publishes the revision's ready addresses to the gateway.
    fn publish(&self) {
        let addrs: Vec<SocketAddr> = lock(&self.siblings).iter().filter_map(|s| lock(s).ready).collect();
        let capacity = self.config.container_concurrency as usize;
        self.endpoints.set(&revision_key(&self.config.namespace, &self.config.revision), addrs, capacity);
    }

    fn changed(&self) {
        self.publish();
        let _ = self.notify.send((self.config.namespace.clone(), self.config.function.clone()));
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
