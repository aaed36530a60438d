//! The function hosts of `weft up`: a fixed number of warm `weft instance --host`
//! processes (one per core by default), each serving replicas of any revision.
//! Starting a replica is a message to a host, not a process start: this is what
//! makes a cold start cost milliseconds (see `bench/README.md`).
//!
//! Each host slot restarts its process with backoff when it dies; the replicas
//! it ran see it as a crash (their supervisor slots restart them on a live host).

use crate::instance::host::{HostCommand, HostReply};
use crate::instance::{InstanceConfig, ReadyLine};
use crate::sync::lock;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Time a host has to start a replica (load, link, open ports).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a replica has to drain (the instance proxy's own drain is 10 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a host has to exit once its stdin is closed, before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(15);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A host that ran this long is healthy again: its next crash restarts fast.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// One live host process, as seen by the replicas on it.
struct HostProc {
    pid: u32,
    commands: mpsc::UnboundedSender<HostCommand>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<HostReply>>>,
    /// Cancelled when the process is gone.
    gone: CancellationToken,
    replicas: AtomicUsize,
}

/// What starting host processes needs.
struct Spawner {
    exe: PathBuf,
    state: PathBuf,
    logs: PathBuf,
}

pub struct HostPool {
    spawner: Spawner,
    /// The live process of each host slot, if it is up.
    live: Mutex<Vec<Option<Arc<HostProc>>>>,
    next_id: AtomicU64,
    closed: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A replica running on a host.
pub struct Assignment {
    proc: Arc<HostProc>,
    id: u64,
    pub ready: ReadyLine,
}

impl HostPool {
    /// Starts `n` host processes (at least one); their logs go to `logs/host-<i>.log`.
    pub fn start(exe: PathBuf, state: PathBuf, logs: PathBuf, n: usize) -> Arc<Self> {
        let n = n.max(1);
        let pool = Arc::new(Self {
            spawner: Spawner { exe, state, logs },
            live: Mutex::new(vec![None; n]),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = (0..n).map(|i| tokio::spawn(pool.clone().keep_running(i))).collect();
        *lock(&pool.tasks) = tasks;
        pool
    }

    /// Runs host slot `index`: starts its process, restarts it when it dies.
    async fn keep_running(self: Arc<Self>, index: usize) {
        let mut backoff = BACKOFF_MIN;
        while !self.closed.is_cancelled() {
            let started = tokio::time::Instant::now();
            match self.spawner.spawn(index) {
                Ok((child, stdin, stdout)) => self.serve(index, child, stdin, stdout).await,
                Err(e) => tracing::error!(host = index, error = %format!("{e:#}"), "start a function host"),
            }
            if started.elapsed() > HEALTHY_RUN {
                backoff = BACKOFF_MIN;
            }
            tokio::select! {
                _ = self.closed.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Drives one host process until it exits.
    async fn serve(&self, index: usize, mut child: Child, stdin: ChildStdin, stdout: ChildStdout) {
        let (commands, rx) = mpsc::unbounded_channel();
        let proc = Arc::new(HostProc {
            pid: child.id().unwrap_or(0),
            commands,
            waiting: Mutex::new(HashMap::new()),
            gone: CancellationToken::new(),
            replicas: AtomicUsize::new(0),
        });
        lock(&self.live)[index] = Some(proc.clone());
        let writer = tokio::spawn(write_commands(rx, stdin, self.closed.clone()));
        read_replies(&proc, stdout).await;
        // Stdout closed: the process is exiting (or was told to).
        let status = match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
            Ok(s) => s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            Err(_) => {
                let _ = child.kill().await;
                "killed after the exit grace".into()
            }
        };
        lock(&self.live)[index] = None;
        proc.gone.cancel();
        lock(&proc.waiting).clear(); // waiters see the host gone
        writer.abort();
        if !self.closed.is_cancelled() {
            tracing::warn!(host = index, pid = proc.pid, %status, "function host exited; restarting it");
        }
    }

    /// Starts a replica on the host with the fewest replicas.
    pub async fn assign(&self, config: &InstanceConfig) -> Result<Assignment> {
        let proc = self.pick().ok_or_else(|| anyhow!("no function host is running (one is being restarted)"))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let reply =
            proc.request(id, HostCommand::Start { id, config: Box::new(config.clone()) }, START_TIMEOUT).await?;
        match reply {
            HostReply::Ready { ready, .. } => {
                proc.replicas.fetch_add(1, Ordering::AcqRel);
                Ok(Assignment { proc, id, ready })
            }
            HostReply::Failed { error, .. } => bail!("{error}"),
            HostReply::Stopped { .. } => bail!("host stopped the replica before it started"),
        }
    }

    fn pick(&self) -> Option<Arc<HostProc>> {
        let live = lock(&self.live);
        live.iter().flatten().min_by_key(|p| p.replicas.load(Ordering::Acquire)).cloned()
    }

    /// Lets every host go (their replicas must be stopped first) and waits for them.
    pub async fn shutdown(&self) {
        self.closed.cancel();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl HostProc {
    /// Sends a command and waits for the reply with the same id.
    async fn request(&self, id: u64, command: HostCommand, timeout: Duration) -> Result<HostReply> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(id, tx);
        if self.commands.send(command).is_err() || self.gone.is_cancelled() {
            lock(&self.waiting).remove(&id);
            bail!("function host (pid {}) is gone", self.pid);
        }
        let reply = tokio::select! {
            biased;
            r = tokio::time::timeout(timeout, rx) => r.map(Result::ok),
            _ = self.gone.cancelled() => Ok(None),
        };
        match reply {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => bail!("function host (pid {}) exited", self.pid),
            Err(_) => {
                lock(&self.waiting).remove(&id);
                bail!("function host (pid {}) did not answer within {timeout:?}", self.pid)
            }
        }
    }
}

impl Assignment {
    pub fn host_pid(&self) -> u32 {
        self.proc.pid
    }

    /// Returns when the host running this replica is gone (a crash, for the replica).
    pub async fn lost(&self) {
        self.proc.gone.cancelled().await
    }

    /// Drains the replica and waits until it is stopped (or its host is gone).
    pub async fn stop(self) {
        let id = self.id;
        if let Err(e) = self.proc.request(id, HostCommand::Stop { id }, STOP_TIMEOUT).await {
            tracing::warn!(error = %format!("{e:#}"), "stop a replica");
        }
    }
}

impl Drop for Assignment {
    fn drop(&mut self) {
        self.proc.replicas.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Spawner {
    fn spawn(&self, index: usize) -> Result<(Child, ChildStdin, ChildStdout)> {
        std::fs::create_dir_all(&self.logs).with_context(|| format!("create {}", self.logs.display()))?;
        let path = self.logs.join(format!("host-{index}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("open {}", path.display()))?;
        let mut child = Command::new(&self.exe)
            .args(["instance", "--host", "--state"])
            .arg(&self.state) // names the platform in `ps`, so its hosts can be told apart
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {} instance --host", self.exe.display()))?;
        let stdin = child.stdin.take().context("host stdin")?;
        let stdout = child.stdout.take().context("host stdout")?;
        Ok((child, stdin, stdout))
    }
}

/// Writes commands to a host's stdin until the pool closes (closing stdin tells
/// the host to drain and exit).
async fn write_commands(
    mut rx: mpsc::UnboundedReceiver<HostCommand>,
    mut stdin: ChildStdin,
    closed: CancellationToken,
) {
    loop {
        let command = tokio::select! {
            c = rx.recv() => c,
            _ = closed.cancelled() => None,
        };
        let Some(command) = command else { return };
        let Ok(mut line) = serde_json::to_vec(&command) else { continue };
        line.push(b'\n');
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            return; // the host is gone; its reader sees that too
        }
    }
}

/// Hands each reply to whoever waits for its id, until stdout closes.
async fn read_replies(proc: &HostProc, stdout: ChildStdout) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply: HostReply = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(pid = proc.pid, error = %e, line, "bad reply from a function host");
                continue;
            }
        };
        let id = match &reply {
            HostReply::Ready { id, .. } | HostReply::Failed { id, .. } | HostReply::Stopped { id } => *id,
        };
        if let Some(tx) = lock(&proc.waiting).remove(&id) {
            let _ = tx.send(reply);
        }
    }
}
