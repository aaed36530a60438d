//! The instance proxy's handler for an `image` function: the user's container
//! in the same Pod serves HTTP on `$PORT`, and each request is forwarded to it
//! over a pooled loopback connection. The proxy in front still enforces
//! `containerConcurrency` and the deadline, and reports the load the autoscaler
//! reads, as Knative's queue-proxy does.

use anyhow::{Result, bail};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;
use weft_sidecar::http_util::{Body, error_reply};
use weft_sidecar::{Handler, HandlerRequest};

/// How long the user container may take to listen after the Pod starts.
const START_TIMEOUT: Duration = Duration::from_secs(300);

pub struct ForwardHandler {
    client: Client<HttpConnector, Full<bytes::Bytes>>,
    upstream: SocketAddr,
}

impl ForwardHandler {
    pub fn new(upstream: SocketAddr) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), upstream }
    }
}

impl Handler for ForwardHandler {
    async fn call(&self, req: HandlerRequest) -> Response<Body> {
        let HandlerRequest { mut parts, body, .. } = req;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri =
            match Uri::builder().scheme("http").authority(self.upstream.to_string()).path_and_query(path).build() {
                Ok(uri) => uri,
                Err(e) => return error_reply(StatusCode::BAD_REQUEST, format!("bad request path: {e}")),
            };
        match self.client.request(Request::from_parts(parts, Full::new(body))).await {
            Ok(resp) => resp.map(|b| b.boxed()),
            Err(e) => error_reply(StatusCode::BAD_GATEWAY, format!("user container on {}: {e}", self.upstream)),
        }
    }
}

/// Returns once the user container accepts connections: only then does the
/// admin port (and so the readiness probe) come up.
pub async fn wait_ready(upstream: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while tokio::net::TcpStream::connect(upstream).await.is_err() {
        if Instant::now() > deadline {
            bail!("the user container did not listen on {upstream} within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
