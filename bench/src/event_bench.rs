//! Load driver of `bench/eventbus.sh`.
//!
//! ```text
//! event-bench ingest  URL SECONDS CONNS BATCH   durable ingest: keep-alive POSTs as fast as
//!                                               acknowledged; BATCH=1 binary mode, >1 batched
//! event-bench latency URL RATE SECONDS LISTEN   end-to-end: sends RATE events/s to URL, runs the
//!                                               subscriber on LISTEN, prints p50/p99 of send->receive
//! event-bench kafka   BOOTSTRAP EVENTS          weft's Kafka EventLog vs raw rdkafka, same broker
//! ```
//! With `latency`, URL may be the subscriber itself (`http://LISTEN/`): the
//! direct-delivery baseline.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

mod kafka_ratio;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A keep-alive HTTP/1 connection to `url`'s host.
struct Conn {
    tx: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: String,
    path: String,
}

impl Conn {
    async fn open(url: &str) -> Result<Self> {
        let uri: hyper::Uri = url.parse().context("url")?;
        let authority = uri.authority().context("url has no host")?.to_string();
        let stream = tokio::net::TcpStream::connect(&authority).await?;
        stream.set_nodelay(true)?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self { tx, authority, path: uri.path().to_string() })
    }

    /// POSTs one binary-mode event (or a batch of `batch`) stamped with `t`
    /// (Unix ns); returns the status.
    async fn post(&mut self, seq: u64, batch: usize, t: u64) -> Result<u16> {
        let b = Request::post(&self.path).header("host", &self.authority);
        let req = if batch <= 1 {
            b.header("ce-specversion", "1.0")
                .header("ce-id", format!("e{seq}"))
                .header("ce-type", "bench.event")
                .header("ce-source", "/bench")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(format!(r#"{{"t":{t},"seq":{seq}}}"#))))?
        } else {
            let items: Vec<String> = (0..batch)
                .map(|i| format!(r#"{{"specversion":"1.0","id":"e{seq}-{i}","type":"bench.event","source":"/bench","data":{{"t":{t}}}}}"#))
                .collect();
            b.header("content-type", "application/cloudevents-batch+json")
                .body(Full::new(Bytes::from(format!("[{}]", items.join(",")))))?
        };
        self.tx.ready().await?;
        let resp = self.tx.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}

async fn ingest(url: &str, seconds: u64, conns: usize, batch: usize) -> Result<()> {
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (url, acked, refused) = (url.to_string(), acked.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&url).await?;
            let mut seq = (c as u64) << 40;
            while Instant::now() < end {
                seq += 1;
                match conn.post(seq, batch, unix_nanos()).await? {
                    200 | 202 => acked.fetch_add(batch as u64, Ordering::Relaxed),
                    _ => refused.fetch_add(batch as u64, Ordering::Relaxed),
                };
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let n = acked.load(Ordering::Relaxed);
    println!("events/s {:.0} acked {n} refused {}", n as f64 / seconds as f64, refused.load(Ordering::Relaxed));
    Ok(())
}

/// The subscriber: records send->receive latency of every event, answers 200.
/// (due time, latency) in ns of every event received.
type Samples = Arc<std::sync::Mutex<Vec<(u64, u64)>>>;

async fn subscriber(listen: &str, lat: Samples) -> Result<()> {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let lat = lat.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let lat = lat.clone();
                async move {
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let text = String::from_utf8_lossy(&body);
                    if let Some(t) = text.split("\"t\":").nth(1).and_then(|r| r.split([',', '}']).next()) {
                        let sent: u64 = t.trim().parse().unwrap_or(0);
                        lat.lock().unwrap_or_else(|e| e.into_inner()).push((sent, unix_nanos().saturating_sub(sent)));
                    }
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

async fn latency(url: &str, rate: u64, seconds: u64, listen: &str) -> Result<()> {
    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listen2 = listen.to_string();
    let sub = lat.clone();
    tokio::spawn(async move { subscriber(&listen2, sub).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A pool of connections; each tick hands events to idle ones. Events are
    // stamped when due, so time spent queued here counts (no coordinated
    // omission); up to one second of events may queue.
    let conns = 64;
    let (tx, rx) = async_channel(rate as usize);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (url, rx) = (url.to_string(), rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&url).await?;
            while let Ok((seq, t)) = rx.recv().await {
                conn.post(seq, 1, t).await?;
            }
            anyhow::Ok(())
        }));
    }
    drop(rx);
    let total = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let per_ms = rate as f64 / 1000.0;
    let (mut sent, start) = (0u64, Instant::now());
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * 1000.0) * per_ms) as u64;
        while sent < due.min(total) {
            if tx.try_send((sent, unix_nanos())).is_err() {
                bail!("the target falls behind {rate}/s: a second of events is queued");
            }
            sent += 1;
        }
    }
    drop(tx);
    for t in tasks {
        t.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (lat.lock().unwrap_or_else(|e| e.into_inner()).len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = lat.lock().unwrap_or_else(|e| e.into_inner()).clone();
    print_worst_seconds(&samples);
    // The first second is warm-up (connections opened, pools filled): shown
    // above, left out of the percentiles.
    let first = samples.iter().map(|s| s.0).min().unwrap_or(0);
    let mut v: Vec<u64> = samples.iter().filter(|s| s.0 >= first + 1_000_000_000).map(|s| s.1).collect();
    v.sort_unstable();
    let q = |p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0) as f64 / 1e6
    };
    let n = samples.len();
    println!(
        "received {n} of {total}  after 1 s warm-up: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        q(0.5),
        q(0.99),
        q(1.0)
    );
    Ok(())
}

/// The slowest event of each second of the run, on stderr, so a tail can be
/// told apart as one pause or a steady spread.
fn print_worst_seconds(samples: &[(u64, u64)]) {
    let Some(first) = samples.iter().map(|s| s.0).min() else { return };
    let mut worst = std::collections::BTreeMap::<u64, u64>::new();
    for (due, lat) in samples {
        let sec = (due - first) / 1_000_000_000;
        let w = worst.entry(sec).or_default();
        *w = (*w).max(*lat);
    }
    let line: Vec<String> = worst.values().map(|w| format!("{:.1}", *w as f64 / 1e6)).collect();
    eprintln!("slowest per second (ms): {}", line.join(" "));
}

/// A bounded MPMC queue from tokio primitives.
fn async_channel(cap: usize) -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap);
    (Sender(tx), Receiver(Arc::new(tokio::sync::Mutex::new(rx))))
}

type Due = (u64, u64);

struct Sender(tokio::sync::mpsc::Sender<Due>);
impl Sender {
    fn try_send(&self, v: Due) -> Result<(), ()> {
        self.0.try_send(v).map_err(|_| ())
    }
}

#[derive(Clone)]
struct Receiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Due>>>);
impl Receiver {
    async fn recv(&self) -> Result<Due, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().context("missing argument (see the usage in the source)");
    let num = |i: usize| -> Result<u64> { Ok(arg(i)?.parse()?) };
    match args.first().map(String::as_str) {
        Some("ingest") => ingest(&arg(1)?, num(2)?, num(3)? as usize, num(4)? as usize).await,
        Some("latency") => latency(&arg(1)?, num(2)?, num(3)?, &arg(4)?).await,
        Some("kafka") => kafka_ratio::run(&arg(1)?, num(2)? as usize).await,
        _ => bail!("usage: event-bench ingest|latency|kafka ..."),
    }
}
