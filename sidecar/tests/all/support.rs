use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weft_sidecar::http_util::Body;

/// Serves `f` on a free loopback port until the token is cancelled.
pub async fn serve<F, Fut>(f: F) -> (SocketAddr, CancellationToken)
where
    F: Fn(http::Request<hyper::body::Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = http::Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    tokio::spawn(weft_sidecar::serve::serve(listener, f, token.clone()));
    (addr, token)
}

pub fn client(http2: bool) -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).http2_only(http2).build(HttpConnector::new())
}

/// GET `url` with an optional Host header; returns status, headers and body.
pub async fn get(
    c: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    host: Option<&str>,
) -> (u16, http::HeaderMap, String) {
    let mut req = http::Request::get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let resp = c.request(req.body(Empty::new()).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).to_string())
}
