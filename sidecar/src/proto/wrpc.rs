//! wrpc: a small private TCP protocol, and the example of what adding a
//! protocol to the sidecar costs — this file and one line in [`super::codecs`].
//! Routing, revision split, retries, timeouts and metrics come for free.
//!
//! Every frame is a 16-byte header and three byte strings:
//!
//! ```text
//! 0xf7 0x01 | kind u8 | status u8 | request id u32 | service len u16 | method len u16 | body len u32
//! service | method | body
//! ```
//!
//! `kind`: 0 request, 1 one-way, 2 response, 3 ping, 4 pong. `status` is 0 on
//! success; the sidecar's own failures use 1–6 with a UTF-8 message as body.
//! All integers are big-endian.

use super::{Codec, DecodeError, Detect, Frame, Kind, Names, Status, be, whole};

const NAME: &str = "wrpc";
/// Not ASCII, so it cannot be taken for the start of an HTTP request.
const MAGIC: &[u8; 2] = &[0xf7, 0x01];
const HEADER: usize = 16;

pub const REQUEST: u8 = 0;
pub const ONEWAY: u8 = 1;
pub const RESPONSE: u8 = 2;
pub const PING: u8 = 3;
pub const PONG: u8 = 4;

pub struct Wrpc;

impl Codec for Wrpc {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, head: &[u8]) -> Detect {
        match head {
            [0xf7, 0x01, ..] => Detect::Match,
            [] | [0xf7] => Detect::NeedMore,
            _ => Detect::NoMatch,
        }
    }

    fn decode(&self, buf: &[u8]) -> Result<Frame, DecodeError> {
        if buf.len() < HEADER {
            return Err(DecodeError::Incomplete);
        }
        if &buf[..2] != MAGIC {
            return Err(DecodeError::malformed(NAME, "bad magic"));
        }
        let service_len = be::<2>(buf, 8).unwrap_or(0) as usize;
        let method_len = be::<2>(buf, 10).unwrap_or(0) as usize;
        let body_len = be::<4>(buf, 12).unwrap_or(0);
        let len = whole(NAME, buf, (HEADER + service_len + method_len) as u64 + body_len)?;
        let (kind, heartbeat) = match buf[2] {
            REQUEST => (Kind::Request, false),
            ONEWAY => (Kind::OneWay, false),
            RESPONSE => (Kind::Response, false),
            PING => (Kind::Request, true),
            PONG => (Kind::Response, true),
            k => return Err(DecodeError::malformed(NAME, format!("unknown kind {k}"))),
        };
        let text = |range: std::ops::Range<usize>| {
            std::str::from_utf8(&buf[range]).map_err(|_| DecodeError::malformed(NAME, "not UTF-8"))
        };
        let method_at = HEADER + service_len;
        Ok(Frame {
            len,
            request_id: be::<4>(buf, 4).unwrap_or(0),
            kind,
            heartbeat,
            names: Names::new(text(HEADER..method_at)?, "", text(method_at..method_at + method_len)?),
            status: u16::from(buf[3]),
            body: method_at + method_len..len,
            ..Frame::default()
        })
    }

    fn set_request_id(&self, frame: &mut [u8], id: u64) {
        if let Some(f) = frame.get_mut(4..8) {
            f.copy_from_slice(&(id as u32).to_be_bytes());
        }
    }

    fn heartbeat_reply(&self, req: &Frame, _raw: &[u8]) -> Vec<u8> {
        encode(PONG, 0, req.request_id as u32, "", "", b"")
    }

    fn error_reply(&self, req: &Frame, _raw: &[u8], status: Status, message: &str) -> Vec<u8> {
        encode(RESPONSE, code(status), req.request_id as u32, req.service(), req.method(), message.as_bytes())
    }
}

/// One frame (also what clients and servers of the protocol write).
pub fn encode(kind: u8, status: u8, id: u32, service: &str, method: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + service.len() + method.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[kind, status]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(service.len() as u16).to_be_bytes());
    out.extend_from_slice(&(method.len() as u16).to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(service.as_bytes());
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(body);
    out
}

fn code(status: Status) -> u8 {
    match status {
        Status::NoRoute => 1,
        Status::Unavailable => 2,
        Status::Timeout => 3,
        Status::Overloaded => 4,
        Status::Aborted => 5,
        Status::BadRequest => 6,
    }
}
