//! The instance proxy's handler for a wasm function: each request runs on a
//! blocking thread in a fresh guest instance.

use http::{HeaderValue, Response, StatusCode};
use std::sync::Arc;
use tokio::sync::Semaphore;
use weft_functions::{EpochTicker, FunctionHost, GuestRequest};
use weft_sidecar::http_util::{Body, error_reply, full};
use weft_sidecar::{Handler, HandlerRequest};

pub struct WasmHandler {
    pub host: Arc<FunctionHost>,
    /// Each guest call holds the ticker, so a guest still running while the
    /// process drains keeps its deadline (dropping the ticker would let it spin).
    pub ticker: Arc<EpochTicker>,
    /// Guest executions at once in this process: the engine's instance pool is
    /// shared by every revision a host serves, so a request waits for a slot
    /// here instead of failing to instantiate when the pool is exhausted.
    pub executions: Arc<Semaphore>,
}

impl Handler for WasmHandler {
    async fn call(&self, req: HandlerRequest) -> Response<Body> {
        let guest = to_guest_request(req);
        let Ok(permit) = self.executions.clone().acquire_owned().await else {
            return error_reply(StatusCode::SERVICE_UNAVAILABLE, "function host is shutting down");
        };
        let (host, ticker) = (self.host.clone(), self.ticker.clone());
        let call = move || {
            let r = host.handle(&guest);
            drop((ticker, permit));
            r
        };
        match tokio::task::spawn_blocking(call).await {
            Ok(Ok(r)) => guest_response(r),
            Ok(Err(e)) => {
                let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let id = self.host.identity();
                error_reply(status, format!("function {} ({}): {e}", id.function, id.revision))
            }
            Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, format!("function host task failed: {e}")),
        }
    }
}

fn to_guest_request(req: HandlerRequest) -> GuestRequest {
    let p = &req.parts;
    let headers =
        p.headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    let host = p.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((h, port)) => (h.to_string(), port.parse().unwrap_or(80)),
        None => (host.to_string(), 80),
    };
    GuestRequest {
        method: p.method.to_string(),
        path: p.uri.path().to_string(),
        query: p.uri.query().unwrap_or("").to_string(),
        script_name: req.script_name.clone(),
        headers,
        body: req.body,
        remote_addr: req.peer.ip().to_string(),
        server_name,
        server_port,
    }
}

fn guest_response(r: weft_functions::GuestResponse) -> Response<Body> {
    let mut resp = Response::new(full(r.body));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) = (http::HeaderName::try_from(name), HeaderValue::try_from(value)) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}
