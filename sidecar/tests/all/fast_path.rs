//! The gateway's HTTP/1.1 fast path, driven over raw keep-alive connections:
//! bodies by length and chunked both ways, pipelining, HEAD, a client's close,
//! a pooled instance connection that went stale, and the hand-over to hyper in
//! the middle of a connection.

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_sidecar::http_util::full;

/// Answers `/stream` with a chunked body of three parts, anything else with
/// what it received: method, target, forwarding headers, body length and sum.
async fn echo() -> SocketAddr {
    let (addr, _) = serve(|req: http::Request<hyper::body::Incoming>, _| async move {
        if req.uri().path() == "/stream" {
            let parts = ["one,", "two,", "three"].map(|p| Ok::<_, hyper::Error>(Frame::data(Bytes::from(p))));
            return Response::new(StreamBody::new(futures::stream::iter(parts)).boxed());
        }
        let h = |k: &str| req.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let head = format!(
            "{} {} xfh={} script={} hop={}",
            req.method(),
            req.uri(),
            h("x-forwarded-host"),
            h("weft-script-name"),
            h("x-hop")
        );
        // A client may stop mid-body: that request then has none.
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
        Response::new(full(format!("{head} len={} sum={sum}", body.len())))
    })
    .await;
    addr
}

/// A response read off a raw connection.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response (length, chunked, or no body for HEAD) from `s`.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Got {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(buf).unwrap() {
            let status = resp.code.unwrap();
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).to_string()))
                .collect();
            buf.drain(..len);
            let mut got = Got { status, headers, body: String::new() };
            if head_request {
                return got;
            }
            if got.header("transfer-encoding").is_some() {
                got.body = read_chunked(s, buf).await;
            } else {
                let n: usize = got.header("content-length").unwrap().parse().unwrap();
                fill(s, buf, n).await;
                got.body = String::from_utf8(buf.drain(..n).collect()).unwrap();
            }
            return got;
        }
        read_some(s, buf).await;
    }
}

async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    let mut body = String::new();
    loop {
        while !buf.windows(2).any(|w| w == b"\r\n") {
            read_some(s, buf).await;
        }
        let line_end = buf.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap().trim(), 16).unwrap();
        buf.drain(..line_end + 2);
        fill(s, buf, size + 2).await;
        body.push_str(std::str::from_utf8(&buf[..size]).unwrap());
        buf.drain(..size + 2);
        if size == 0 {
            return body;
        }
    }
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) {
    while buf.len() < n {
        read_some(s, buf).await;
    }
}

async fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await.unwrap().unwrap();
    assert!(n > 0, "the gateway closed the connection; had {:?}", String::from_utf8_lossy(buf));
    buf.extend_from_slice(&chunk[..n]);
}

const HOST: &str = "Host: echo.default.localhost\r\n";

#[tokio::test]
async fn bodies_both_ways_pipelining_and_head_on_one_connection() {
    let g = rpc_gateway_with(&[], 0, Default::default()).await;
    g.endpoints.set("default/echo-00001", vec![echo().await], 0);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let mut buf = Vec::new();

    s.write_all(format!("GET /a?b=1 HTTP/1.1\r\n{HOST}Connection: X-Hop\r\nX-Hop: 1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let got = read_response(&mut s, &mut buf, false).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "GET /a?b=1 xfh=echo.default.localhost script=- hop=- len=0 sum=0");

    // A body larger than any one read, by length.
    let big = vec![b'x'; 300_000];
    s.write_all(format!("POST /big HTTP/1.1\r\n{HOST}Content-Length: {}\r\n\r\n", big.len()).as_bytes()).await.unwrap();
    for part in big.chunks(70_000) {
        s.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = read_response(&mut s, &mut buf, false).await;
    assert_eq!(
        got.body,
        format!("POST /big xfh=echo.default.localhost script=- hop=- len=300000 sum={}", 300_000 * 120)
    );

    // A chunked body, cut mid-chunk between writes.
    s.write_all(format!("PUT /c HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n5\r\nhel").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.write_all(b"lo\r\n6;x=y\r\n world\r\n0\r\n\r\n").await.unwrap();
    let got = read_response(&mut s, &mut buf, false).await;
    let sum: u64 = b"hello world".iter().map(|b| u64::from(*b)).sum();
    assert_eq!(got.body, format!("PUT /c xfh=echo.default.localhost script=- hop=- len=11 sum={sum}"));

    // A chunked response, then two pipelined requests in one write, then HEAD.
    s.write_all(format!("GET /stream HTTP/1.1\r\n{HOST}\r\n").as_bytes()).await.unwrap();
    let got = read_response(&mut s, &mut buf, false).await;
    assert_eq!((got.header("transfer-encoding"), got.body.as_str()), (Some("chunked"), "one,two,three"));
    let two = format!("GET /p1 HTTP/1.1\r\n{HOST}\r\nPOST /p2 HTTP/1.1\r\n{HOST}Content-Length: 3\r\n\r\nabc");
    s.write_all(two.as_bytes()).await.unwrap();
    assert!(read_response(&mut s, &mut buf, false).await.body.starts_with("GET /p1 "));
    assert!(read_response(&mut s, &mut buf, false).await.body.starts_with("POST /p2 "));
    s.write_all(format!("HEAD /h HTTP/1.1\r\n{HOST}\r\n").as_bytes()).await.unwrap();
    let got = read_response(&mut s, &mut buf, true).await;
    assert_eq!(got.status, 200);
    assert!(got.header("content-length").is_some());

    // Path routes strip the prefix and name it; the client's close is honoured.
    s.write_all(b"GET /default/echo/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").await.unwrap();
    let got = read_response(&mut s, &mut buf, false).await;
    assert_eq!(got.body, "GET /x xfh=gw script=/default/echo hop=- len=0 sum=0");
    assert_eq!(got.header("connection"), Some("close"));
    let mut rest = [0u8; 16];
    assert_eq!(s.read(&mut rest).await.unwrap(), 0, "closed after the answer");
    assert_eq!(metric(&g.registry, "weft_gateway_requests_total{"), 8.0);
}

#[tokio::test]
async fn an_unrouted_request_hands_the_connection_to_hyper_mid_way() {
    let g = rpc_gateway_with(&[], 0, Default::default()).await;
    g.endpoints.set("default/echo-00001", vec![echo().await], 0);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(format!("GET /one HTTP/1.1\r\n{HOST}\r\n").as_bytes()).await.unwrap();
    assert!(read_response(&mut s, &mut buf, false).await.body.starts_with("GET /one "));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
    let got = read_response(&mut s, &mut buf, false).await;
    assert!(got.body.contains("weft_gateway_requests_total"), "{}", got.body);
    s.write_all(b"GET /nowhere HTTP/1.1\r\nHost: gw\r\n\r\n").await.unwrap();
    let got = read_response(&mut s, &mut buf, false).await;
    assert_eq!((got.status, got.header("weft-error")), (404, Some("true")));
    s.write_all(format!("GET /two HTTP/1.1\r\n{HOST}\r\n").as_bytes()).await.unwrap();
    assert!(read_response(&mut s, &mut buf, false).await.body.starts_with("GET /two "), "hyper routes the rest");
}

/// An instance that answers one request per connection and then closes it
/// without saying so, as one whose keep-alive timer fired would.
async fn one_shot_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                // Let the gateway pool the connection before it goes.
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_stale_pooled_instance_connection_is_replaced_not_reported() {
    let g = rpc_gateway_with(&[], 0, Default::default()).await;
    g.endpoints.set("default/echo-00001", vec![one_shot_upstream().await], 0);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..3 {
        s.write_all(format!("POST /{i} HTTP/1.1\r\n{HOST}Content-Length: 1\r\n\r\nz").as_bytes()).await.unwrap();
        let got = read_response(&mut s, &mut buf, false).await;
        assert_eq!((got.status, got.body.as_str()), (200, "ok"), "request {i}");
        tokio::time::sleep(Duration::from_millis(150)).await; // the instance closes its side
    }
}

#[tokio::test]
async fn a_client_that_stops_mid_body_leaves_the_gateway_serving() {
    let g = rpc_gateway_with(&[], 0, Default::default()).await;
    g.endpoints.set("default/echo-00001", vec![echo().await], 0);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(format!("POST /cut HTTP/1.1\r\n{HOST}Content-Length: 100\r\n\r\nonly-some").as_bytes()).await.unwrap();
    drop(s);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(format!("GET /after HTTP/1.1\r\n{HOST}\r\n").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).await.status, 200);
    // A broken chunked body is refused with 400 and the connection closed.
    s.write_all(format!("POST /bad HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\nzz\r\n").as_bytes())
        .await
        .unwrap();
    let got = read_response(&mut s, &mut buf, false).await;
    assert_eq!((got.status, got.header("connection")), (400, Some("close")));
}

/// Answers every request with `name`.
async fn named(name: &'static str) -> SocketAddr {
    serve(move |_: http::Request<hyper::body::Incoming>, _| async move { Response::new(full(name)) }).await.0
}

async fn get_from(s: &mut TcpStream, buf: &mut Vec<u8>, host: &str) -> Got {
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
    read_response(s, buf, false).await
}

/// The requests of `revision` answered `code`.
fn requests(g: &Setup, revision: &str, code: u16) -> f64 {
    let labels = format!("namespace=\"default\",function=\"echo\",revision=\"{revision}\",code=\"{code}\"");
    metric(&g.registry, &format!("weft_gateway_requests_total{{{labels}}}"))
}

#[tokio::test]
async fn split_tags_and_a_new_route_table_on_one_connection() {
    let g = rpc_gateway_with(&[], 30, Default::default()).await;
    g.endpoints.set("default/echo-00001", vec![named("one").await], 0);
    g.endpoints.set("default/echo-00002", vec![named("two").await], 0);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let mut buf = Vec::new();
    let mut two = 0;
    for _ in 0..400 {
        two += usize::from(get_from(&mut s, &mut buf, "echo.default.localhost").await.body == "two");
    }
    // 30 % of 400 is 120, one standard deviation 9.2: this is over four.
    assert!((80..160).contains(&two), "{two} of 400 to echo-00002");
    for _ in 0..20 {
        assert_eq!(get_from(&mut s, &mut buf, "Canary-Echo.default.localhost").await.body, "two", "the tag pins");
    }
    // A new table sends everything to echo-00001: nothing of the old one sticks.
    g.gateway.set_routes(echo_routes(&[], 0, Default::default()));
    for _ in 0..50 {
        assert_eq!(get_from(&mut s, &mut buf, "echo.default.localhost").await.body, "one");
    }
    let (one, two) = (400 - two as u32 + 50, two as u32 + 20);
    assert_eq!((requests(&g, "echo-00001", 200), requests(&g, "echo-00002", 200)), (one.into(), two.into()));
    // Another status has a series of its own.
    g.endpoints.set("default/echo-00001", Vec::<SocketAddr>::new(), 0);
    assert_eq!(get_from(&mut s, &mut buf, "echo.default.localhost").await.status, 503);
    assert_eq!(requests(&g, "echo-00001", 503), 1.0);
}
