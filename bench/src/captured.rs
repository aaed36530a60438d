//! Frames captured from real peers (`sidecar/src/proto/testdata/`), used by
//! the RPC benchmark as the requests its load driver sends and the answers
//! its upstream gives: what sofa-rpc-node (Bolt v1, Hessian 2) and dubbo2.js
//! (Dubbo 2) put on the wire.

use anyhow::{Context, Result, bail};
use weft_sidecar::proto::{Codec, codec};

const BOLT: &str = include_str!("../../sidecar/src/proto/testdata/bolt-v1-hessian2-sofa-rpc-node.hex");
const DUBBO: &str = include_str!("../../sidecar/src/proto/testdata/dubbo2-dubbo2js.hex");

/// The first request a client of `protocol` sent.
pub fn request(protocol: &str) -> Result<Vec<u8>> {
    first_frame(protocol, "C->S")
}

/// The first response its server sent.
pub fn response(protocol: &str) -> Result<Vec<u8>> {
    first_frame(protocol, "S->C")
}

fn first_frame(protocol: &str, dir: &str) -> Result<Vec<u8>> {
    let capture = match protocol {
        "bolt" => BOLT,
        "dubbo" => DUBBO,
        other => bail!("no captured frames of {other:?} (dubbo or bolt)"),
    };
    let codec = codec(protocol).context("no such codec")?;
    let line = capture.lines().find(|l| l.split_whitespace().nth(1) == Some(dir)).context("no frame that way")?;
    let bytes = hex::decode(line.split_whitespace().nth(3).context("no bytes")?)?;
    let len = codec.decode(&bytes).map_err(|e| anyhow::anyhow!("captured frame: {e}"))?.len;
    Ok(bytes[..len].to_vec())
}

/// The codec of `protocol`.
pub fn codec_of(protocol: &str) -> Result<&'static dyn Codec> {
    codec(protocol).with_context(|| format!("unknown protocol {protocol:?}"))
}
