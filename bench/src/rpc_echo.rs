//! The upstream of the RPC proxy benchmark: answers every Dubbo or Bolt
//! request at once with the response a real peer sent (frames captured from
//! dubbo2.js's server and sofa-rpc-node, `sidecar/src/proto/testdata/`), under
//! the request's id. Fast on purpose, so the proxy in front is what is
//! measured. Frames are decoded with weft's codecs; one port serves both
//! protocols.
//!
//! Usage: `rpc-echo 127.0.0.1:0` prints its address.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_bench::captured;
use weft_sidecar::proto::{Codec, DecodeError, Detected, Kind, codecs, detect};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("rpc-echo: {e:#}");
            }
        });
    }
}

async fn serve(mut s: TcpStream) -> anyhow::Result<()> {
    let all = codecs();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let codec: &'static dyn Codec = loop {
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        match detect(&buf, all) {
            Some(Detected::Rpc(c)) => break c,
            Some(_) => anyhow::bail!("not Dubbo or Bolt"),
            None => {}
        }
    };
    let template = captured::response(codec.name())?;
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        loop {
            match codec.decode(&buf) {
                Ok(f) => {
                    let raw = buf.split_to(f.len);
                    if f.heartbeat && f.kind != Kind::Response {
                        out.extend_from_slice(&codec.heartbeat_reply(&f, &raw));
                    } else if f.kind == Kind::Request {
                        let at = out.len();
                        out.extend_from_slice(&template);
                        codec.set_request_id(&mut out[at..], f.request_id);
                    }
                }
                Err(DecodeError::Incomplete) => break,
                Err(e) => anyhow::bail!(e),
            }
        }
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}
