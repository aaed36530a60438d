//! The standby pool: instance processes started ahead of demand
//! (`weft instance --standby`), each waiting on stdin for the config of the
//! revision it will serve, so a cold start skips the process start.

use super::supervisor::{SlotCtx, lock, read_ready};
use crate::instance::{InstanceConfig, ReadyLine};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use tokio::process::{Child, Command};

/// Instance processes started ahead of demand (`weft instance --standby`),
/// each waiting for the config of the revision it will serve. Taking one skips
/// the process start in a cold start; the pool refills in the background.
pub struct StandbyPool {
    exe: PathBuf,
    state: PathBuf,
    log: PathBuf,
    target: usize,
    ready: Mutex<Vec<Standby>>,
}

pub(super) struct Standby {
    child: Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
}

impl StandbyPool {
    pub fn new(exe: PathBuf, state: PathBuf, log: PathBuf, target: usize) -> Self {
        Self { exe, state, log, target, ready: Mutex::new(Vec::new()) }
    }

    /// Starts standbys until the pool holds its target.
    pub fn refill(&self) {
        while lock(&self.ready).len() < self.target {
            match self.spawn() {
                Ok(s) => lock(&self.ready).push(s),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "start a standby instance");
                    return;
                }
            }
        }
    }

    fn spawn(&self) -> Result<Standby> {
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut child = Command::new(&self.exe)
            .args(["instance", "--standby", "--state"])
            .arg(&self.state) // names the platform in `ps`, so its instances can be told apart
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {} instance --standby", self.exe.display()))?;
        let stdin = child.stdin.take().context("standby stdin")?;
        let stdout = child.stdout.take().context("standby stdout")?;
        Ok(Standby { child, stdin, stdout })
    }

    /// A live standby, if any.
    pub(super) fn take(&self) -> Option<Standby> {
        let mut ready = lock(&self.ready);
        while let Some(mut s) = ready.pop() {
            if matches!(s.child.try_wait(), Ok(None)) {
                return Some(s);
            }
        }
        None
    }

    /// Lets every standby go (shutdown); `kill_on_drop` ends them.
    pub fn clear(&self) {
        lock(&self.ready).clear();
    }
}

/// Hands a standby its revision and waits for its ready line.
pub(super) async fn assign(ctx: &SlotCtx, mut s: Standby) -> Result<(Child, ReadyLine)> {
    use tokio::io::AsyncWriteExt;
    let config = InstanceConfig { log_file: Some(ctx.log.display().to_string()), ..ctx.config.clone() };
    let mut line = serde_json::to_vec(&config)?;
    line.push(b'\n');
    s.stdin.write_all(&line).await.context("send the config to a standby")?;
    s.stdin.flush().await?;
    let ready = read_ready(ctx, &mut s.child, s.stdout).await?;
    Ok((s.child, ready))
}
