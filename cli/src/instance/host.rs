//! `weft instance --host`: a warm process that serves replicas of any revision,
//! so a cold start does not wait for a process to start.
//!
//! `weft up` starts a few hosts and drives each over its stdin and stdout, one
//! JSON object per line:
//! - in: `{"start":{"id":N,"config":{...}}}` starts replica `N` (an
//!   [`InstanceConfig`]); `{"stop":{"id":N}}` drains and stops it.
//! - out: `{"ready":{"id":N,"ready":{"serving":..,"admin":..}}}`,
//!   `{"failed":{"id":N,"error":".."}}`, `{"stopped":{"id":N}}`.
//!
//! Every replica is also reachable on the host's shared port (see
//! [`super::host_port`]), named by the `weft-replica` header; its `ready` line
//! carries that port and id.
//!
//! Replicas share the host's engine and instance pool and a cache of loaded
//! modules (a second replica of a revision skips the load); each has its own
//! ports, `containerConcurrency`, statistics and drain, exactly as a replica in
//! its own process. Wasm isolates guests from each other; what a host shares is
//! its fate: if it dies, its replicas are restarted elsewhere by the supervisor.
//! Closing stdin (or the parent dying) drains every replica and exits.

use super::host_port::HostPort;
use super::spare_ports::SparePorts;
use super::{InstanceConfig, ReadyLine, Running, Runtime, SharedPort, load_module, start};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use wasmtime::Module;

/// Guest instances at once in one host, over all its replicas.
const HOST_SLOTS: u32 = 256;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCommand {
    Start { id: u64, config: Box<InstanceConfig> },
    Stop { id: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostReply {
    Ready { id: u64, ready: ReadyLine },
    Failed { id: u64, error: String },
    Stopped { id: u64 },
}

struct Host {
    rt: Runtime,
    ports: SparePorts,
    port: HostPort,
    modules: HashMap<String, Module>,
    running: HashMap<u64, (String, Running)>,
    out: mpsc::UnboundedSender<HostReply>,
    drains: tokio::task::JoinSet<()>,
}

pub async fn run() -> Result<()> {
    let mut shutdown = std::pin::pin!(crate::signals::listen().wait());
    let rt = Runtime::new(HOST_SLOTS)?;
    let (out, replies) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_replies(replies));
    let ip = std::net::Ipv4Addr::LOCALHOST.into();
    let (ports, port) = (SparePorts::start(ip), HostPort::bind(ip).await?);
    let modules = HashMap::new();
    let mut host = Host { rt, ports, port, modules, running: HashMap::new(), out, drains: Default::default() };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    tracing::info!(pid = std::process::id(), shared = %host.port.addr(), "host ready");
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => host.command(&line).await,
                Ok(None) => break, // the platform let this host go
                Err(e) => { tracing::error!(error = %e, "read stdin"); break; }
            },
            _ = super::parent_gone() => { tracing::warn!("parent exited"); break; }
            _ = &mut shutdown => break,
        }
    }
    host.shutdown().await.close().await;
    let _ = writer.await;
    Ok(())
}

impl Host {
    async fn command(&mut self, line: &str) {
        match serde_json::from_str::<HostCommand>(line) {
            // A start is handled before the next command is read, so a stop can
            // never overtake the start of the same replica.
            Ok(HostCommand::Start { id, config }) => {
                let reply = match self.start(id, &config).await {
                    Ok(ready) => HostReply::Ready { id, ready },
                    Err(e) => {
                        tracing::warn!(namespace = %config.namespace, function = %config.function, revision = %config.revision, error = %format!("{e:#}"), "instance failed to start");
                        HostReply::Failed { id, error: format!("{e:#}") }
                    }
                };
                let _ = self.out.send(reply);
            }
            Ok(HostCommand::Stop { id }) => self.stop(id),
            Err(e) => tracing::error!(error = %e, line, "bad host command"),
        }
    }

    async fn start(&mut self, id: u64, cfg: &InstanceConfig) -> Result<ReadyLine> {
        let module = match self.modules.get(&cfg.digest) {
            Some(m) => m.clone(),
            None => {
                let m = load_module(cfg, &self.rt.engine)?;
                self.modules.insert(cfg.digest.clone(), m.clone());
                m
            }
        };
        let started = match self.ports.take(cfg.listen).await {
            Ok(ports) => start(cfg, &module, &self.rt, ports).await,
            Err(e) => Err(e),
        };
        let running = started.inspect_err(|_| self.forget_unused(&cfg.digest))?;
        self.port.add(id, running.proxy.clone());
        let ready = ReadyLine { shared: Some(SharedPort { addr: self.port.addr(), replica: id }), ..running.ready };
        self.running.insert(id, (cfg.digest.clone(), running));
        Ok(ready)
    }

    /// Drains a replica in the background and reports when it is gone.
    fn stop(&mut self, id: u64) {
        let out = self.out.clone();
        let Some((digest, running)) = self.running.remove(&id) else {
            let _ = out.send(HostReply::Stopped { id }); // already gone: stopping is idempotent
            return;
        };
        self.port.remove(id);
        self.forget_unused(&digest);
        self.drains.spawn(async move {
            running.drain().await;
            let _ = out.send(HostReply::Stopped { id });
        });
    }

    /// Drops a module from the cache once no replica runs it.
    fn forget_unused(&mut self, digest: &str) {
        if !self.running.values().any(|(d, _)| d == digest) {
            self.modules.remove(digest);
        }
    }

    /// Drains every replica; what is left to close is the shared port (the rest,
    /// the reply channel with it, is dropped here so the writer ends).
    async fn shutdown(mut self) -> HostPort {
        let ids: Vec<u64> = self.running.keys().copied().collect();
        tracing::info!(replicas = ids.len(), "host draining");
        ids.into_iter().for_each(|id| self.stop(id));
        while self.drains.join_next().await.is_some() {}
        self.port
    }
}

async fn write_replies(mut replies: mpsc::UnboundedReceiver<HostReply>) -> Result<()> {
    let mut stdout = tokio::io::stdout();
    while let Some(reply) = replies.recv().await {
        let mut line = serde_json::to_vec(&reply)?;
        line.push(b'\n');
        stdout.write_all(&line).await.context("write to stdout")?;
        stdout.flush().await?;
    }
    Ok(())
}
