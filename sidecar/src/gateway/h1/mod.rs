//! The gateway's HTTP/1.1 fast path. A plain HTTP/1.1 request is parsed with
//! `httparse`, routed, admitted and leased exactly as on the hyper path, and
//! relayed over a pooled instance connection by the client connection's own
//! task: one read and one write on each side per request, as nginx does, with
//! no task hop, channel or per-request allocation of hyper's client.
//!
//! Anything else — HTTP/1.0, upgrades, `Expect`, odd framing, unrouted paths
//! (`/metrics`, the 404 text), the Dubbo bridge — hands the connection to
//! hyper with its unread bytes, where it stays. So both paths give the same
//! answers, and hyper remains the one place for the rare cases.

pub mod chunked;
pub mod head;
mod idle;
mod pool;
mod relay;

use super::Gateway;
use crate::http_util::{Body, error_reply};
use crate::memo::{self, Memo, Route};
use crate::metrics::{RequestLabels, Series, SeriesCache};
use crate::resilience::RouteState;
use crate::routing::{Found, FunctionRoute, RouteTable};
use crate::trace::{ensure_traceparent, trace_id};
use bytes::{Buf, BytesMut};
use head::{Forwarding, Framing, Head, MAX_HEADERS};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use httparse::EMPTY_HEADER;
use relay::Left;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a client may take to send a whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle keep-alive client connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// One worker's fast path: its own instance connections, routes and metric
/// series.
pub struct H1 {
    gateway: Arc<Gateway>,
    pool: pool::Pool,
    /// Per revision: its key, route state and 200 series (see [`memo`]).
    memo: Memo,
    /// Series of the other status codes.
    series: SeriesCache<u16>,
}

/// A routed request, ready to be admitted and sent.
struct Prepared {
    head_len: usize,
    framing: Framing,
    close: bool,
    head_request: bool,
    route: Arc<Route>,
    traceparent: String,
    /// The instance's request head so far (no final CRLF).
    out: Vec<u8>,
}

/// Whether the client connection goes on after an exchange.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

impl H1 {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway, pool: pool::Pool::default(), memo: Memo::default(), series: SeriesCache::default() }
    }

    /// Serves `stream`'s requests (its first bytes are in `buf`) while they are
    /// plain HTTP/1.1; returns the connection and its unread bytes as soon as
    /// one is not, for hyper. `None`: the connection is done.
    pub async fn serve(
        &self,
        mut stream: TcpStream,
        mut buf: BytesMut,
        peer: SocketAddr,
        shutdown: &CancellationToken,
    ) -> Option<(TcpStream, BytesMut)> {
        let peer_ip = peer.ip().to_string();
        let mut upstream_buf = BytesMut::with_capacity(8 * 1024);
        let mut waits = idle::Waits::new(shutdown);
        loop {
            let prepared = loop {
                let mut headers = [EMPTY_HEADER; MAX_HEADERS];
                match head::request(&buf, &mut headers) {
                    Head::Unsupported => return Some((stream, buf)),
                    Head::Done((h, n)) => match self.prepare(&h, &headers[..n], &peer_ip) {
                        Some(p) => break p,
                        None => return Some((stream, buf)),
                    },
                    Head::Partial => {}
                }
                if !read_more(&mut stream, &mut buf, &mut waits).await {
                    return None;
                }
            };
            buf.advance(prepared.head_len);
            let (function, revision) = (&prepared.route.function, &prepared.route.revision);
            let span = tracing::info_span!("gateway", namespace = %function.namespace, function = %function.name, revision = %revision, trace_id = %trace_id(&prepared.traceparent));
            let next = self.exchange(&mut stream, &mut buf, &mut upstream_buf, prepared).instrument(span).await;
            if next == Next::Close || shutdown.is_cancelled() {
                let _ = stream.shutdown().await;
                return None;
            }
        }
    }

    /// Routes a parsed request and writes the instance's head; `None` sends
    /// the request to hyper (unrouted, the bridge, a bad path).
    fn prepare(&self, h: &head::RequestHead<'_>, headers: &[httparse::Header<'_>], peer_ip: &str) -> Option<Prepared> {
        if h.target.starts_with(crate::rpc::bridge::PREFIX) {
            return None;
        }
        let routes = self.gateway.routes();
        let path = h.target.split('?').next().unwrap_or("/");
        let found = routes.find(Some(h.host), path)?;
        let route = self.pick(&routes, found)?;
        let (rest, script_name) = super::split_target(h.target, found.prefix_len);
        let traceparent = ensure_traceparent(h.traceparent);
        let forwarding = Forwarding { rest: &rest, script_name, host: h.host, peer_ip, traceparent: &traceparent };
        let mut out = Vec::with_capacity(h.len + 256);
        head::upstream_head(&mut out, h.method, headers, &forwarding);
        Some(Prepared {
            head_len: h.len,
            framing: h.framing,
            close: h.close,
            head_request: h.method == "HEAD",
            route,
            traceparent,
            out,
        })
    }

    /// The revision a request to `found` goes to: its tag's, else one by
    /// weight. `None`: the function has no routable revision.
    fn pick(&self, routes: &Arc<RouteTable>, found: Found<'_>) -> Option<Arc<Route>> {
        let key = memo::Key { table: routes, route: found.route, protocol: "http" };
        match found.tag_revision {
            Some(revision) => Some(self.memo.route(key, revision, self)),
            None => self.memo.split(key, self).pick().cloned(),
        }
    }

    /// Admits, leases, relays one request and its response.
    async fn exchange(
        &self,
        client: &mut TcpStream,
        buf: &mut BytesMut,
        upstream_buf: &mut BytesMut,
        mut p: Prepared,
    ) -> Next {
        let start = Instant::now();
        let route = p.route.clone();
        let (function, state) = (&route.function, route.state.as_deref());
        let refused = match self.gateway.guard(function, state).await {
            Err(refusal) => Some(refusal.reply()),
            Ok(()) => None,
        };
        let ejected = Gateway::ejected(state, Instant::now());
        let lease = match refused {
            Some(reply) => Err(reply),
            None => {
                let leased = self.gateway.lease(&function.namespace, &route.revision, &route.key, &ejected).await;
                leased.map_err(|e| e.reply())
            }
        };
        let lease = match lease {
            Ok(l) => l,
            Err(reply) => return self.answer_locally(client, buf, &p, reply, start).await,
        };
        let target = lease.target();
        if let Some(id) = target.replica {
            p.out.extend_from_slice(format!("{}: {id}\r\n", super::REPLICA).as_bytes());
        }
        p.out.extend_from_slice(b"\r\n");
        let mut left = Left::of(p.framing);
        let whole = match left.take_into(buf, &mut p.out) {
            Ok(done) => done,
            Err(e) => {
                // Its framing is lost, so is the connection's.
                let reply = error_reply(StatusCode::BAD_REQUEST, format!("bad request body: {e}"));
                return self.answer(client, reply, false, &p, start).await;
            }
        };
        let sent = relay::send(&self.pool, target.addr, &p.out, client, buf, left, whole, upstream_buf, p.head_request);
        let sent = match route.policy().timeout {
            Some(t) => tokio::time::timeout(t, sent).await.map_err(|_| t),
            None => Ok(sent.await),
        };
        drop(lease);
        let ok = matches!(&sent, Ok(Ok((_, h))) if h.status < 500);
        Gateway::record_health(function, state, &route.revision, target, ok);
        let key = &route.key;
        let (upstream, head) = match sent {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = %e.error, instance = %target.addr, "forward to instance failed");
                let msg = format!("instance {} of {key} did not answer: {}", target.addr, e.error);
                let reply = error_reply(StatusCode::BAD_GATEWAY, msg);
                return self.answer(client, reply, e.body_read, &p, start).await;
            }
            Err(t) => {
                let msg = format!("instance {} of {key} sent no response headers within {t:?}", target.addr);
                // Part of the request may still be unread: the connection ends.
                let reply = error_reply(StatusCode::GATEWAY_TIMEOUT, msg);
                return self.answer(client, reply, false, &p, start).await;
            }
        };
        self.record(&p, head.status, start);
        let close = p.close || head.close;
        match relay::respond(client, upstream, upstream_buf, head, close, &self.pool, target.addr).await {
            Ok(()) if !close => Next::KeepAlive,
            Ok(()) => Next::Close,
            Err(e) => {
                tracing::debug!(error = %e, instance = %target.addr, "response relay ended early");
                Next::Close
            }
        }
    }

    /// Answers a request refused before it reached an instance: its body, if
    /// all of it is here, is skipped so the connection can go on.
    async fn answer_locally(
        &self,
        client: &mut TcpStream,
        buf: &mut BytesMut,
        p: &Prepared,
        reply: Response<Body>,
        start: Instant,
    ) -> Next {
        let mut skipped = Vec::new();
        let whole = Left::of(p.framing).take_into(buf, &mut skipped).unwrap_or(false);
        self.answer(client, reply, whole, p, start).await
    }

    /// Writes weft's own reply; the connection goes on only when `keep_alive`
    /// (the request was read whole) and the client did not ask to close.
    async fn answer(
        &self,
        client: &mut TcpStream,
        reply: Response<Body>,
        keep_alive: bool,
        p: &Prepared,
        start: Instant,
    ) -> Next {
        let close = p.close || !keep_alive;
        self.record(p, reply.status().as_u16(), start);
        let (parts, body) = reply.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let mut out =
            format!("HTTP/1.1 {} {}\r\n", parts.status.as_u16(), parts.status.canonical_reason().unwrap_or(""));
        for (name, value) in &parts.headers {
            out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or_default()));
        }
        out.push_str(&format!("content-length: {}\r\n", body.len()));
        if close {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !p.head_request {
            bytes.extend_from_slice(&body);
        }
        match client.write_all(&bytes).await {
            Ok(()) if !close => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    fn record(&self, p: &Prepared, code: u16, start: Instant) {
        let (r, took) = (&p.route, start.elapsed());
        if code == 200 {
            return r.ok.record(took); // the usual case: the series is at hand
        }
        let (ns, name) = (r.function.namespace.as_str(), r.function.name.as_str());
        self.series.record(ns, &r.revision, code, took, || {
            self.gateway.metrics.series(&RequestLabels::new(ns, name, &r.revision, code))
        });
    }
}

impl memo::Fill for H1 {
    fn state(&self, route: &FunctionRoute) -> Option<Arc<RouteState>> {
        self.gateway.route_state(route)
    }

    fn ok_series(&self, _: &'static str, route: &FunctionRoute, revision: &str) -> Series {
        self.gateway.metrics.series(&RequestLabels::new(&route.namespace, &route.name, revision, 200))
    }
}

/// Reads more of a request head; false when the connection is done (closed,
/// failed, silent too long, or idle at shutdown).
async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut, waits: &mut idle::Waits) -> bool {
    use tokio::io::AsyncReadExt;
    let idle = buf.is_empty();
    waits.start(if idle { IDLE_TIMEOUT } else { HEAD_TIMEOUT });
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(8 * 1024);
    }
    tokio::select! {
        biased;
        r = stream.read_buf(buf) => matches!(r, Ok(n) if n > 0),
        _ = waits.ended(idle) => false,
    }
}
