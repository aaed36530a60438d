//! A host's shared serving port: one listener that reaches every replica on the
//! host, picked by the `weft-replica` header the gateway sets.
//!
//! Why: a replica that just started has a port no one is connected to yet, so
//! its first request would open a connection (`connect` in the gateway,
//! `accept` here) on the cold path — and on this VM those syscalls now and then
//! stall for 10–20 ms. The gateway keeps pooled connections to the host's port,
//! so a new replica is reached over a connection that already exists. Each
//! replica keeps its own port too, for direct use and for `weft instance --config`.

use super::Proxy;
use crate::sync::lock;
use anyhow::{Context, Result};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_sidecar::endpoints::REPLICA_HEADER;
use weft_sidecar::http_util::{Body, error_reply};

type Replicas = Arc<Mutex<HashMap<u64, Arc<Proxy>>>>;

pub struct HostPort {
    addr: SocketAddr,
    replicas: Replicas,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl HostPort {
    /// Binds a free port on `ip` and serves it until [`HostPort::close`].
    pub async fn bind(ip: IpAddr) -> Result<Self> {
        let listener = TcpListener::bind((ip, 0)).await.context("bind the host's shared port")?;
        let addr = listener.local_addr()?;
        let replicas = Replicas::default();
        let shutdown = CancellationToken::new();
        let r = replicas.clone();
        let task = tokio::spawn(weft_sidecar::serve::serve(
            listener,
            move |req, peer| route(r.clone(), req, peer),
            shutdown.clone(),
        ));
        Ok(Self { addr, replicas, shutdown, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn add(&self, id: u64, proxy: Arc<Proxy>) {
        lock(&self.replicas).insert(id, proxy);
    }

    /// New requests for `id` get a 503 from now on; those in flight finish.
    pub fn remove(&self, id: u64) {
        lock(&self.replicas).remove(&id);
    }

    /// Stops accepting and lets requests in flight finish.
    pub async fn close(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

async fn route(replicas: Replicas, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let header = req.headers().get(REPLICA_HEADER).and_then(|v| v.to_str().ok());
    let Some(id) = header.and_then(|v| v.parse::<u64>().ok()) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            format!("this is a function host's shared port: a request needs a numeric {REPLICA_HEADER} header"),
        );
    };
    let proxy = lock(&replicas).get(&id).cloned();
    match proxy {
        Some(p) => p.handle(req, peer).await,
        None => error_reply(StatusCode::SERVICE_UNAVAILABLE, format!("replica {id} is not running on this host")),
    }
}
