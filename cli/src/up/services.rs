//! Interface-name addressing in `weft up`: each function's own loopback
//! address (`weft_sidecar::addressing`) gets a listener on the gateway's port,
//! serving every protocol like the gateway, with the function as the route of
//! RPC frames that name no declared interface; the DNS responder answers the
//! function's names with that address. Both follow the route table.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use weft_sidecar::addressing::ServiceAddresses;
use weft_sidecar::{Gateway, RouteTable, dns};

type Function = (String, String);

pub struct Services {
    gateway: Arc<Gateway>,
    port: u16,
    table: dns::Table,
    /// The listener on each address, and the function it was started for.
    listeners: Mutex<HashMap<Ipv4Addr, (Function, CancellationToken)>>,
    shutdown: CancellationToken,
}

impl Services {
    pub fn new(gateway: Arc<Gateway>, port: u16, table: dns::Table, shutdown: CancellationToken) -> Self {
        Self { gateway, port, table, listeners: Mutex::default(), shutdown }
    }

    /// Follows a new route table: listeners for new functions, none for gone
    /// ones, and the DNS answers.
    pub fn update(&self, routes: &RouteTable) {
        let addrs = ServiceAddresses::new(routes);
        let mut listeners = crate::sync::lock(&self.listeners);
        listeners.retain(|ip, (f, token)| {
            let keep = addrs.function_at(*ip) == Some((f.0.as_str(), f.1.as_str()));
            if !keep {
                token.cancel();
            }
            keep
        });
        for ip in addrs.addrs() {
            if listeners.contains_key(&ip) {
                continue;
            }
            let Some((ns, name)) = addrs.function_at(ip) else { continue };
            let function = (ns.to_string(), name.to_string());
            match self.listen(ip, &function) {
                Ok(token) => drop(listeners.insert(ip, (function, token))),
                Err(e) => tracing::warn!(address = %ip, port = self.port, error = %e, "cannot listen for {ns}/{name}"),
            }
        }
        self.table.store(Arc::new(addrs));
    }

    /// Serves `function`'s address until it goes away or weft stops.
    fn listen(&self, ip: Ipv4Addr, function: &Function) -> std::io::Result<CancellationToken> {
        let std_listener = std::net::TcpListener::bind(SocketAddr::from((ip, self.port)))?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let token = self.shutdown.child_token();
        let http = self.gateway.worker();
        let rpc = Arc::new(weft_sidecar::rpc::RpcWorker::new_bound(self.gateway.clone(), &function.0, &function.1));
        let handle = move |req, peer| http.clone().handle(req, peer);
        tokio::spawn(weft_sidecar::serve::serve_with(listener, handle, Some(rpc), token.clone()));
        tracing::debug!(address = %ip, namespace = %function.0, function = %function.1, "service address listening");
        Ok(token)
    }
}
