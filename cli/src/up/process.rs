//! Replicas of `process` functions: an ordinary program (an existing HTTP,
//! Dubbo or Bolt service) run as the function, listening on `$PORT`. It joins
//! the mesh unchanged: the gateway routes to it by host, path or interface
//! name, and its own outbound calls can go to `$WEFT_SIDECAR`.
//!
//! A process reports no load of its own, so the gateway meters the leases on
//! its replicas instead (`Endpoints::meter`); every request to it passes there.

use crate::instance::InstanceConfig;
use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a new process may take to accept connections on `$PORT`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped process may drain after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Variables passed through from `weft up`'s own environment (the rest of a
/// process's environment is what its spec grants).
const PASS_THROUGH: [&str; 5] = ["PATH", "HOME", "LANG", "TMPDIR", "NODE_PATH"];

/// One running replica of a process function.
pub struct ProcessReplica {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

/// Starts a replica: the program gets a free loopback port in `$PORT` and is
/// ready once it accepts a connection there. Output goes to `log`.
pub async fn start(config: &InstanceConfig, log: &Path) -> Result<ProcessReplica> {
    let spec = config.process.as_ref().context("not a process function")?;
    let (program, args) = spec.command.split_first().context("spec.process.command is empty")?;
    let port = free_port()?;
    let out = open_log(log)?;
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).kill_on_drop(true);
    for key in PASS_THROUGH {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(config.env.iter().map(|(k, v)| (k, v))).env("PORT", port.to_string());
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().with_context(|| format!("start {program:?}"))?;
    let pid = child.id().unwrap_or(0);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(&mut child, addr).await.with_context(|| format!("{program:?} (pid {pid}); see `weft logs`"))?;
    Ok(ProcessReplica { child, addr, pid })
}

impl ProcessReplica {
    /// Returns when the process has exited by itself.
    pub async fn lost(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// SIGTERM, then SIGKILL after the grace period.
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait()).await.is_err() {
            tracing::warn!(pid = self.pid, "process did not stop within {STOP_GRACE:?}; killing it");
            let _ = self.child.kill().await;
        }
    }
}

/// A port free now on loopback (the process binds it a moment later; another
/// process taking it between is possible but shows as a failed start, retried).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").context("find a free port")?.local_addr()?.port())
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("open {}", path.display()))
}

/// Polls `addr` until it accepts a connection, the process exits, or time runs out.
async fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited before listening on $PORT ({addr}): {status}");
        }
        if Instant::now() > deadline {
            bail!("did not listen on $PORT ({addr}) within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
