//! The baseline of the gateway benchmark: a bare hyper server on the same runtime
//! and connection builder as weft's roles, answering what the hello guest answers
//! without any routing, proxying or WebAssembly.
//!
//! Usage: `bare-hello 127.0.0.1:0` prints its address on stdout.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use std::convert::Infallible;
use tokio::net::TcpListener;

const BODY: &[u8] = b"Hello from weft! (GET /, 0 bytes)\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                let mut resp = hyper::Response::new(Full::new(Bytes::from_static(BODY)));
                resp.headers_mut()
                    .insert("content-type", hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
                Ok::<_, Infallible>(resp)
            });
            let _ = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
