//! A load driver for the RPC proxy benchmark: `conns` connections, each
//! keeping `depth` requests in flight (a multiplexed client, as Dubbo and
//! SOFA clients are), sending a request captured from a real client under a
//! fresh id each time, for `seconds`. Prints one line: requests, req/s, p50
//! and p99 latency in microseconds, errors.
//!
//! Usage: `rpc-load <dubbo|bolt> <addr> <conns> <depth> <seconds>`

use anyhow::{Context, Result};
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use weft_bench::captured;
use weft_sidecar::proto::{Codec, DecodeError, Kind};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    protocol: String,
    addr: String,
    conns: usize,
    depth: usize,
    seconds: u64,
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: rpc-load <dubbo|bolt> <addr> <conns> <depth> <seconds>";
    let args = Args {
        protocol: a.first().context(usage)?.clone(),
        addr: a.get(1).context(usage)?.clone(),
        conns: a.get(2).context(usage)?.parse()?,
        depth: a.get(3).context(usage)?.parse()?,
        seconds: a.get(4).context(usage)?.parse()?,
    };
    let codec = captured::codec_of(&args.protocol)?;
    let request = Arc::new(captured::request(&args.protocol)?);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.conns)
        .map(|_| tokio::spawn(drive(args.addr.clone(), codec, request.clone(), args.depth, until)))
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let tally = t.await??;
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
    }
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let pct = |p: f64| all.latencies_us.get(((n as f64 * p) as usize).min(n.saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "requests={n} rps={:.0} p50_us={} p99_us={} errors={}",
        n as f64 / args.seconds as f64,
        pct(0.50),
        pct(0.99),
        all.errors
    );
    Ok(())
}

/// One connection: `depth` requests in flight until `until`, then drain.
async fn drive(
    addr: String,
    codec: &'static dyn Codec,
    request: Arc<Vec<u8>>,
    depth: usize,
    until: Instant,
) -> Result<Tally> {
    let mut s = TcpStream::connect(&addr).await.with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    let mut tally = Tally::default();
    let mut sent: HashMap<u64, Instant> = HashMap::with_capacity(depth);
    let mut next_id = 1u64;
    let mut out = Vec::with_capacity(depth * request.len());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut send = |out: &mut Vec<u8>, sent: &mut HashMap<u64, Instant>| {
        let at = out.len();
        out.extend_from_slice(&request);
        codec.set_request_id(&mut out[at..], next_id);
        sent.insert(next_id, Instant::now());
        next_id += 1;
    };
    for _ in 0..depth {
        send(&mut out, &mut sent);
    }
    while !sent.is_empty() {
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
        if s.read_buf(&mut buf).await? == 0 {
            anyhow::bail!("{addr} closed the connection");
        }
        loop {
            let f = match codec.decode(&buf) {
                Ok(f) => f,
                Err(DecodeError::Incomplete) => break,
                Err(e) => anyhow::bail!(e),
            };
            let _ = buf.split_to(f.len);
            if f.kind != Kind::Response {
                continue;
            }
            let Some(at) = sent.remove(&f.request_id) else { continue };
            tally.latencies_us.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            if !ok(codec.name(), f.status) {
                tally.errors += 1;
            }
            if Instant::now() < until {
                send(&mut out, &mut sent);
            }
        }
    }
    Ok(tally)
}

/// Whether a response status is a success in its protocol.
fn ok(protocol: &str, status: u16) -> bool {
    match protocol {
        "dubbo" => status == 20,
        _ => status == 0,
    }
}
