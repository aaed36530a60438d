//! RPC through the gateway's port with the `wrpc` example codec: routing by
//! interface name, a weighted split per request on one multiplexed
//! connection, retries of unsent requests, timeouts, heartbeats and errors in
//! the protocol — none of it written for wrpc. A small server of the protocol
//! stands for the function (wrpc is our own protocol; this is its real peer).

use crate::support::{echo_routes, metric, rpc_gateway, rpc_gateway_with};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_sidecar::proto::wrpc::{self, Wrpc};
use weft_sidecar::proto::{Codec, DecodeError, Frame};
use weft_sidecar::resilience::{Breaker, Fault, Policy, RateLimit};

const ECHO: &str = "com.example.Echo";

/// A wrpc server answering `<name>:<body>`; method `slow` answers after
/// 300 ms, `hang` never. Requests are answered concurrently.
async fn server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve_conn(name, s));
        }
    });
    addr
}

async fn serve_conn(name: &'static str, s: TcpStream) {
    let (mut rd, wr) = s.into_split();
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let mut buf = bytes::BytesMut::new();
    loop {
        while let Ok(f) = Wrpc.decode(&buf) {
            let raw = buf.split_to(f.len);
            let body = format!("{name}:{}", String::from_utf8_lossy(&raw[f.body.clone()]));
            let wr = wr.clone();
            tokio::spawn(async move {
                match f.method() {
                    "hang" => return,
                    "slow" => tokio::time::sleep(Duration::from_millis(300)).await,
                    _ => {}
                }
                let out =
                    wrpc::encode(wrpc::RESPONSE, 0, f.request_id as u32, f.service(), f.method(), body.as_bytes());
                let _ = wr.lock().await.write_all(&out).await;
            });
        }
        if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
}

/// A client that writes frames and reads answers (in whatever order they come).
struct Client {
    s: TcpStream,
    buf: bytes::BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Self { s: TcpStream::connect(addr).await.unwrap(), buf: bytes::BytesMut::new() }
    }

    async fn send(&mut self, kind: u8, id: u32, service: &str, method: &str, body: &str) {
        self.s.write_all(&wrpc::encode(kind, 0, id, service, method, body.as_bytes())).await.unwrap();
    }

    /// The next frame and its body; `None` when the sidecar closed the connection.
    async fn recv(&mut self) -> Option<(Frame, String)> {
        loop {
            match Wrpc.decode(&self.buf) {
                Ok(f) => {
                    let raw = self.buf.split_to(f.len);
                    return Some((f.clone(), String::from_utf8_lossy(&raw[f.body]).into_owned()));
                }
                Err(DecodeError::Incomplete) => {}
                Err(e) => panic!("{e}"),
            }
            let read = tokio::time::timeout(Duration::from_secs(10), self.s.read_buf(&mut self.buf)).await;
            if read.expect("an answer within 10 s").unwrap_or(0) == 0 {
                return None;
            }
        }
    }
}

#[tokio::test]
async fn one_multiplexed_connection_is_split_per_request_and_ids_are_kept() {
    let g = rpc_gateway(&[(ECHO, "wrpc")], 20, Duration::from_secs(10)).await;
    g.endpoints.set("default/echo-00001", vec![server("one").await], 0);
    g.endpoints.set("default/echo-00002", vec![server("two").await], 0);
    let mut c = Client::connect(g.addr).await;
    let n = 1000u32;
    for id in 0..n {
        c.send(wrpc::REQUEST, 1_000_000 + id, ECHO, "echo", &id.to_string()).await;
    }
    let mut two = 0;
    for _ in 0..n {
        let (f, body) = c.recv().await.unwrap();
        let (who, echoed) = body.split_once(':').unwrap();
        assert_eq!(f.request_id, 1_000_000 + echoed.parse::<u64>().unwrap(), "the caller's id comes back");
        two += usize::from(who == "two");
    }
    // 20 % of 1000 ± 5 %: over three standard deviations.
    assert!((150..=250).contains(&two), "{two} of {n} to the 20 % revision");
    let requests = metric(&g.registry, "weft_rpc_requests_total{protocol=\"wrpc\"");
    assert_eq!(requests, f64::from(n));
}

#[tokio::test]
async fn a_new_split_applies_from_the_next_request_on_an_open_connection() {
    let g = rpc_gateway(&[(ECHO, "wrpc")], 0, Duration::from_secs(10)).await;
    g.endpoints.set("default/echo-00001", vec![server("one").await], 0);
    g.endpoints.set("default/echo-00002", vec![server("two").await], 0);
    let mut c = Client::connect(g.addr).await;
    let mut ask = async |id| {
        c.send(wrpc::REQUEST, id, ECHO, "echo", "x").await;
        c.recv().await.unwrap().1
    };
    for id in 0..20 {
        assert_eq!(ask(id).await, "one:x", "the whole split goes to echo-00001");
    }
    let policy = Policy { timeout: Some(Duration::from_secs(10)), ..Policy::default() };
    g.gateway.set_routes(echo_routes(&[(ECHO, "wrpc")], 100, policy));
    for id in 20..40 {
        assert_eq!(ask(id).await, "two:x", "the connection's remembered route gave way to the new table");
    }
}

#[tokio::test]
async fn heartbeats_unknown_services_timeouts_and_out_of_order_answers() {
    let g = rpc_gateway(&[(ECHO, "wrpc")], 0, Duration::from_millis(500)).await;
    g.endpoints.set("default/echo-00001", vec![server("one").await], 0);
    let mut c = Client::connect(g.addr).await;
    c.send(wrpc::PING, 7, "", "", "").await;
    let (f, _) = c.recv().await.unwrap();
    assert_eq!((f.request_id, f.heartbeat), (7, true), "the sidecar answers heartbeats");
    c.send(wrpc::REQUEST, 8, "com.example.Nope", "x", "").await;
    let (f, body) = c.recv().await.unwrap();
    assert_eq!((f.request_id, f.status), (8, 1), "no route, in the protocol: {body}");
    assert!(body.contains("com.example.Nope"), "{body}");
    c.send(wrpc::REQUEST, 9, ECHO, "slow", "a").await;
    c.send(wrpc::REQUEST, 10, ECHO, "fast", "b").await;
    assert_eq!(c.recv().await.unwrap().0.request_id, 10, "the fast answer overtakes the slow one");
    assert_eq!(c.recv().await.unwrap().0.request_id, 9);
    c.send(wrpc::REQUEST, 11, ECHO, "hang", "").await;
    let (f, body) = c.recv().await.unwrap();
    assert_eq!((f.request_id, f.status), (11, 3), "a timeout, in the protocol: {body}");
}

#[tokio::test]
async fn requests_that_never_reached_an_instance_are_retried_on_another() {
    let g = rpc_gateway(&[(ECHO, "wrpc")], 0, Duration::from_secs(10)).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap() // closed when `l` drops: connects are refused
    };
    g.endpoints.set("default/echo-00001", vec![dead, server("live").await], 0);
    let mut c = Client::connect(g.addr).await;
    for id in 0..30 {
        c.send(wrpc::REQUEST, id, ECHO, "echo", "x").await;
        let (f, body) = c.recv().await.unwrap();
        assert_eq!((f.request_id, f.status, body.as_str()), (u64::from(id), 0, "live:x"));
    }
    assert!(metric(&g.registry, "weft_rpc_retries_total") >= 1.0, "the dead instance was tried and skipped");
    g.endpoints.set("default/echo-00001", vec![dead], 0);
    c.send(wrpc::REQUEST, 99, ECHO, "echo", "x").await;
    let (f, body) = c.recv().await.unwrap();
    assert_eq!((f.request_id, f.status), (99, 2), "unavailable after the tries: {body}");
}

#[tokio::test]
async fn a_malformed_frame_closes_the_connection_and_is_counted() {
    let g = rpc_gateway(&[(ECHO, "wrpc")], 0, Duration::from_secs(10)).await;
    let mut c = Client::connect(g.addr).await;
    let mut bad = wrpc::encode(wrpc::REQUEST, 0, 1, ECHO, "m", b"");
    bad[2] = 42; // no such kind
    c.s.write_all(&bad).await.unwrap();
    assert!(c.recv().await.is_none(), "closed");
    let mut absurd = wrpc::encode(wrpc::REQUEST, 0, 1, ECHO, "m", b"");
    absurd[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut c = Client::connect(g.addr).await;
    c.s.write_all(&absurd).await.unwrap();
    assert!(c.recv().await.is_none(), "closed without waiting for 4 GiB");
    assert_eq!(metric(&g.registry, "weft_rpc_frame_errors_total{protocol=\"wrpc\",reason=\"malformed\"}"), 2.0);
}

#[tokio::test]
async fn http_is_still_served_on_the_same_port() {
    let g = rpc_gateway(&[(ECHO, "wrpc")], 0, Duration::from_secs(10)).await;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// An instance that reads each request and closes the connection unanswered.
async fn closing_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await; // the request arrived: then nothing
            });
        }
    });
    addr
}

fn policy() -> Policy {
    Policy { resend_methods: vec!["get".into()], ..Policy::default() }
}

#[tokio::test]
async fn a_request_that_may_have_arrived_is_resent_only_for_safe_methods() {
    let g = rpc_gateway_with(&[(ECHO, "wrpc")], 0, policy()).await;
    // Capacity 1: the first free instance in order takes a request, so the
    // closing one is always tried first.
    g.endpoints.set("default/echo-00001", vec![closing_server().await, server("live").await], 1);
    let mut c = Client::connect(g.addr).await;
    c.send(wrpc::REQUEST, 1, ECHO, "get", "x").await;
    let (f, body) = c.recv().await.unwrap();
    assert_eq!((f.status, body.as_str()), (0, "live:x"), "get is safe to resend");
    c.send(wrpc::REQUEST, 2, ECHO, "post", "x").await;
    let (f, body) = c.recv().await.unwrap();
    assert_eq!(f.status, 2, "post is not resent: {body}");
    assert!(body.contains("closed before the answer"), "{body}");
}

#[tokio::test]
async fn an_instance_failing_in_a_row_is_ejected() {
    let breaker = Breaker { consecutive_failures: 2, eject_for: Duration::from_secs(60) };
    let g = rpc_gateway_with(&[(ECHO, "wrpc")], 0, Policy { breaker: Some(breaker), ..policy() }).await;
    g.endpoints.set("default/echo-00001", vec![closing_server().await, server("live").await], 1);
    let mut c = Client::connect(g.addr).await;
    for id in 0..6 {
        c.send(wrpc::REQUEST, id, ECHO, "get", "x").await;
        assert_eq!(c.recv().await.unwrap().1, "live:x");
    }
    // The first two went to the closing instance first; then it was ejected.
    assert_eq!(metric(&g.registry, "weft_rpc_retries_total"), 2.0);
}

#[tokio::test]
async fn a_rate_limit_refuses_past_the_burst_in_the_protocol() {
    let limit = RateLimit { per_second: 1, burst: 2 };
    let g = rpc_gateway_with(&[(ECHO, "wrpc")], 0, Policy { rate_limit: Some(limit), ..Policy::default() }).await;
    g.endpoints.set("default/echo-00001", vec![server("one").await], 0);
    let mut c = Client::connect(g.addr).await;
    let mut statuses = Vec::new();
    for id in 0..5 {
        c.send(wrpc::REQUEST, id, ECHO, "echo", "x").await;
        statuses.push(c.recv().await.unwrap().0.status);
    }
    assert_eq!(statuses, [0, 0, 4, 4, 4], "the burst, then overloaded");
}

#[tokio::test]
async fn injected_faults_abort_or_delay() {
    let abort = Fault { abort_percent: 100, delay_percent: 0, delay: Duration::ZERO };
    let g = rpc_gateway_with(&[(ECHO, "wrpc")], 0, Policy { fault: Some(abort), ..Policy::default() }).await;
    g.endpoints.set("default/echo-00001", vec![server("one").await], 0);
    let mut c = Client::connect(g.addr).await;
    c.send(wrpc::REQUEST, 1, ECHO, "echo", "x").await;
    let (f, body) = c.recv().await.unwrap();
    assert_eq!(f.status, 5, "aborted: {body}");

    let delay = Fault { abort_percent: 0, delay_percent: 100, delay: Duration::from_millis(200) };
    let g = rpc_gateway_with(&[(ECHO, "wrpc")], 0, Policy { fault: Some(delay), ..Policy::default() }).await;
    g.endpoints.set("default/echo-00001", vec![server("one").await], 0);
    let mut c = Client::connect(g.addr).await;
    let start = tokio::time::Instant::now();
    c.send(wrpc::REQUEST, 1, ECHO, "echo", "x").await;
    assert_eq!(c.recv().await.unwrap().1, "one:x");
    assert!(start.elapsed() >= Duration::from_millis(200), "delayed");
}

/// A Dubbo server that answers every request with its own name (as an error
/// reply's message: all the test needs is who answered).
async fn dubbo_server(name: &'static str) -> SocketAddr {
    use weft_sidecar::proto::{Status, dubbo::Dubbo};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = bytes::BytesMut::new();
                loop {
                    while let Ok(f) = Dubbo.decode(&buf) {
                        let raw = buf.split_to(f.len);
                        let _ = s.write_all(&Dubbo.error_reply(&f, &raw, Status::Aborted, name)).await;
                    }
                    if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_dubbo_weft_tag_attachment_pins_the_tagged_revision() {
    use weft_sidecar::proto::dubbo::{Dubbo, Invocation, request_frame};
    use weft_sidecar::proto::{Headers, TAG_HEADER};
    const STOCK: &str = "com.example.Stock";
    let g = rpc_gateway(&[(STOCK, "dubbo")], 0, Duration::from_secs(10)).await;
    g.endpoints.set("default/echo-00001", vec![dubbo_server("one").await], 0);
    g.endpoints.set("default/echo-00002", vec![dubbo_server("two").await], 0);
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let args = [serde_json::json!("apple")];
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "one"),
        (&[(TAG_HEADER, "canary")], "two"),
        (&[("Weft-Tag", "canary")], "two"),
        (&[("weft-tagged", "no"), ("x", "weft-tag")], "one"),
    ];
    for (i, (attachments, want)) in cases.into_iter().enumerate() {
        let attachments: Headers = attachments.iter().copied().collect();
        let inv = Invocation { service: STOCK, version: "", method: "get", args: &args, attachments: &attachments };
        s.write_all(&request_frame(&inv, i as u64)).await.unwrap();
        let mut buf = bytes::BytesMut::new();
        let answer = loop {
            if let Ok(f) = Dubbo.decode(&buf) {
                break buf.split_to(f.len);
            }
            assert!(s.read_buf(&mut buf).await.unwrap() > 0);
        };
        let who = String::from_utf8_lossy(&answer[16..]).into_owned();
        assert!(who.ends_with(want), "case {i}: {attachments:?} answered by {who:?}");
    }
}
