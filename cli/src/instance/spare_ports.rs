//! Listening sockets a host opens ahead of demand, so starting a replica does
//! not create sockets on the cold-start path.
//!
//! Why: on this project's VM, `socket()` occasionally stalls 10–20 ms (the
//! kernel waits for fresh memory from the hypervisor; strace showed 2 in 160
//! calls that slow), and two sockets per replica made those stalls the p99 of
//! a cold start. The refill runs on a blocking thread, after the replica is up.

use super::Ports;
use crate::sync::lock;
use anyhow::Result;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Sockets kept open and listening, ready to hand out.
const TARGET: usize = 16;
/// Refill when fewer than this are left.
const LOW: usize = 8;

pub struct SparePorts {
    ip: IpAddr,
    ready: Arc<Mutex<Vec<std::net::TcpListener>>>,
    refilling: Arc<AtomicBool>,
}

impl SparePorts {
    pub fn start(ip: IpAddr) -> Self {
        let ports = Self { ip, ready: Arc::default(), refilling: Arc::default() };
        ports.refill();
        ports
    }

    /// Both ports of a replica that asked for `listen`: spare sockets when it
    /// asked for any free port on our address, fresh ones otherwise.
    pub async fn take(&self, listen: SocketAddr) -> Result<Ports> {
        if listen.port() != 0 || listen.ip() != self.ip {
            return Ports::bind(listen, None).await;
        }
        let pair = {
            let mut ready = lock(&self.ready);
            if ready.len() >= 2 { ready.pop().zip(ready.pop()) } else { None }
        };
        self.refill();
        match pair {
            Some((serving, admin)) => {
                Ok(Ports { serving: TcpListener::from_std(serving)?, admin: TcpListener::from_std(admin)? })
            }
            None => Ports::bind(listen, None).await,
        }
    }

    /// Tops the spares up on a blocking thread, if they run low.
    fn refill(&self) {
        let low = lock(&self.ready).len() < LOW;
        if !low || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let (ip, ready, refilling) = (self.ip, self.ready.clone(), self.refilling.clone());
        tokio::task::spawn_blocking(move || {
            while lock(&ready).len() < TARGET {
                match bind(ip) {
                    Ok(l) => lock(&ready).push(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "open a spare port");
                        break;
                    }
                }
            }
            refilling.store(false, Ordering::Release);
        });
    }
}

fn bind(ip: IpAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind((ip, 0))?;
    l.set_nonblocking(true)?;
    Ok(l)
}
