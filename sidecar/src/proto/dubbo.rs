//! Dubbo 2.x: a 16-byte header (magic `0xdabb`, flag, status, 8-byte request
//! id, 4-byte body length) and a Hessian 2 body. A request body starts with
//! the Dubbo version, service path, service version and method name as
//! strings; only those are read.

use super::hessian::{self, Reader};
use super::{Codec, DecodeError, DecodeMemo, Detect, Frame, Headers, Kind, Names, Status, TAG_HEADER, be, whole};

const NAME: &str = "dubbo";
const HEADER: usize = 16;
const FLAG_REQUEST: u8 = 0x80;
const FLAG_TWO_WAY: u8 = 0x40;
const FLAG_EVENT: u8 = 0x20;
const SERIALIZATION_MASK: u8 = 0x1f;
const HESSIAN2: u8 = 2;

/// Response statuses (`org.apache.dubbo.remoting.exchange.Response`).
const OK: u8 = 20;
const SERVER_TIMEOUT: u8 = 31;
const BAD_REQUEST: u8 = 40;
const SERVICE_NOT_FOUND: u8 = 60;
const SERVICE_ERROR: u8 = 70;
const SERVER_ERROR: u8 = 80;
const THREADPOOL_EXHAUSTED: u8 = 100;

pub struct Dubbo;

impl Codec for Dubbo {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, head: &[u8]) -> Detect {
        match head {
            [0xda, 0xbb, ..] => Detect::Match,
            [0xda] | [] => Detect::NeedMore,
            _ => Detect::NoMatch,
        }
    }

    fn decode(&self, buf: &[u8]) -> Result<Frame, DecodeError> {
        decode(buf, None)
    }

    fn decode_with(&self, buf: &[u8], memo: &mut DecodeMemo) -> Result<Frame, DecodeError> {
        decode(buf, Some(memo))
    }

    fn set_request_id(&self, frame: &mut [u8], id: u64) {
        if let Some(f) = frame.get_mut(4..12) {
            f.copy_from_slice(&id.to_be_bytes());
        }
    }

    fn heartbeat_reply(&self, req: &Frame, raw: &[u8]) -> Vec<u8> {
        response(req, raw, FLAG_EVENT, OK, b"N")
    }

    fn error_reply(&self, req: &Frame, raw: &[u8], status: Status, message: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(message.len() + 3);
        hessian::write_string(&mut body, message);
        response(req, raw, 0, code(status), &body)
    }

    fn max_request_id(&self) -> u64 {
        u64::MAX
    }
}

/// Reads a frame's header, and a request's names (from `memo` when they are
/// written as the connection's last request wrote them).
fn decode(buf: &[u8], memo: Option<&mut DecodeMemo>) -> Result<Frame, DecodeError> {
    if buf.len() < HEADER {
        return Err(DecodeError::Incomplete);
    }
    if buf[..2] != [0xda, 0xbb] {
        return Err(DecodeError::malformed(NAME, "bad magic"));
    }
    let body_len = be::<4>(buf, 12).unwrap_or(0);
    let len = whole(NAME, buf, HEADER as u64 + body_len)?;
    let flag = buf[2];
    let mut frame = Frame {
        len,
        request_id: be::<8>(buf, 4).unwrap_or(0),
        kind: kind(flag),
        heartbeat: flag & FLAG_EVENT != 0,
        status: u16::from(buf[3]),
        body: HEADER..len,
        ..Frame::default()
    };
    if frame.is_request() && !frame.heartbeat {
        read_invocation(&mut frame, flag, &buf[HEADER..len], memo)?;
    }
    Ok(frame)
}

fn kind(flag: u8) -> Kind {
    match (flag & FLAG_REQUEST != 0, flag & FLAG_TWO_WAY != 0) {
        (true, true) => Kind::Request,
        (true, false) => Kind::OneWay,
        (false, _) => Kind::Response,
    }
}

/// Reads the service path, version and method from a request body, and the
/// attachments after the arguments when they can be reached (arguments in
/// encodings this reader does not know just leave the attachments unread).
fn read_invocation(frame: &mut Frame, flag: u8, body: &[u8], memo: Option<&mut DecodeMemo>) -> Result<(), DecodeError> {
    let ser = flag & SERIALIZATION_MASK;
    if ser != HESSIAN2 {
        return Err(DecodeError::malformed(NAME, format!("serialization {ser} is not supported (only hessian2)")));
    }
    // Hessian strings delimit themselves, so a body that starts with the
    // bytes of the last request's four strings starts with those strings.
    let mut r = match memo.as_deref().and_then(|m| m.recall(body)) {
        Some((names, at)) => {
            frame.names = names.clone();
            Reader::at(body, at)
        }
        None => {
            let mut r = Reader::new(body);
            frame.names = read_names(&mut r)?;
            if let Some(m) = memo {
                m.remember(&body[..r.position()], &frame.names);
            }
            r
        }
    };
    // Reaching the attachments means stepping over every argument, which
    // costs more than the rest of the decode. Routing reads one attachment,
    // the tag, and a body whose bytes do not contain its name cannot carry it
    // (Hessian writes an ASCII string's bytes as they are; writers split
    // strings into chunks only past 32 KiB).
    if names_tag(&body[r.position()..]) {
        frame.headers = attachments(&mut r).unwrap_or_default();
    }
    Ok(())
}

/// The Dubbo version (skipped), service path, service version and method.
fn read_names(r: &mut Reader<'_>) -> Result<Names, DecodeError> {
    let bad = |e: hessian::HessianError| DecodeError::malformed(NAME, e.to_string());
    r.skip_str().map_err(bad)?;
    let service = r.str().map_err(bad)?.unwrap_or_default();
    let version = r.str().map_err(bad)?.unwrap_or_default();
    let method = r.str().map_err(bad)?.unwrap_or_default();
    if service.is_empty() {
        return Err(DecodeError::malformed(NAME, "request names no service path"));
    }
    Ok(Names::new(&service, &version, &method))
}

/// Whether `bytes` contain the tag's name, ASCII case ignored: candidates
/// are found with memchr (few bytes of a body are a `w`), then compared.
fn names_tag(bytes: &[u8]) -> bool {
    let tag = TAG_HEADER.as_bytes();
    memchr::memchr2_iter(b'w', b'W', bytes)
        .any(|at| bytes.get(at..at + tag.len()).is_some_and(|w| w.eq_ignore_ascii_case(tag)))
}

/// Every attachment of a request frame, the arguments stepped over (what
/// decoding skips unless the tag is named); `None` if they cannot be reached.
pub fn all_attachments(frame: &[u8]) -> Option<Headers> {
    let mut r = Reader::new(frame.get(HEADER..)?);
    // The Dubbo version, service path, service version and method.
    for _ in 0..4 {
        r.skip_str().ok()?;
    }
    attachments(&mut r)
}

/// Skips the argument descriptor's arguments and reads the attachments map.
fn attachments(r: &mut Reader<'_>) -> Option<Headers> {
    let desc = r.str().ok()??;
    let mut classes = Vec::new();
    for _ in 0..hessian::descriptor_args(&desc)? {
        r.skip(&mut classes).ok()?;
    }
    r.string_map(&mut classes).ok()
}

/// A response to `req` with `flags` (beside the serialization id), `status` and `body`.
fn response(req: &Frame, raw: &[u8], flags: u8, status: u8, body: &[u8]) -> Vec<u8> {
    let ser = raw.get(2).map_or(HESSIAN2, |f| f & SERIALIZATION_MASK);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&[0xda, 0xbb, ser | flags, status]);
    out.extend_from_slice(&req.request_id.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn code(status: Status) -> u8 {
    match status {
        Status::NoRoute => SERVICE_NOT_FOUND,
        Status::Unavailable => SERVER_ERROR,
        Status::Timeout => SERVER_TIMEOUT,
        Status::Overloaded => THREADPOOL_EXHAUSTED,
        Status::Aborted => SERVICE_ERROR,
        Status::BadRequest => BAD_REQUEST,
    }
}

// === the HTTP bridge's side: building a request, reading an answer ===

/// Result kinds at the start of an OK response body (`DubboCodec`): with an
/// exception, a value, or null; each also in a form followed by attachments.
const RESPONSE_WITH_EXCEPTION: i32 = 0;
const RESPONSE_VALUE: i32 = 1;
const RESPONSE_NULL_VALUE: i32 = 2;

/// A call the sidecar makes itself on behalf of a JSON caller.
pub struct Invocation<'a> {
    pub service: &'a str,
    /// The service version the provider exported (empty: none).
    pub version: &'a str,
    pub method: &'a str,
    pub args: &'a [serde_json::Value],
    pub attachments: &'a Headers,
}

/// A whole two-way Hessian 2 request frame for `inv`.
pub fn request_frame(inv: &Invocation<'_>, request_id: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(128);
    hessian::write_string(&mut body, "2.0.2");
    hessian::write_string(&mut body, inv.service);
    hessian::write_string(&mut body, inv.version);
    hessian::write_string(&mut body, inv.method);
    let desc: String = inv.args.iter().map(hessian::json::descriptor).collect();
    hessian::write_string(&mut body, &desc);
    for arg in inv.args {
        hessian::json::write_json(&mut body, arg);
    }
    body.push(b'H');
    let mut attach = |k: &str, v: &str| {
        hessian::write_string(&mut body, k);
        hessian::write_string(&mut body, v);
    };
    attach("path", inv.service);
    attach("interface", inv.service);
    if !inv.version.is_empty() {
        attach("version", inv.version);
    }
    for (k, v) in inv.attachments.iter() {
        attach(k, v);
    }
    body.push(b'Z');
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&[0xda, 0xbb, FLAG_REQUEST | FLAG_TWO_WAY | HESSIAN2, 0]);
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// What a Dubbo response said.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The method returned (null for void).
    Value(serde_json::Value),
    /// The method threw; the exception object as JSON.
    Exception(serde_json::Value),
    /// The exchange failed (status other than OK): the status and its message.
    Failed { status: u8, message: String },
}

impl Answer {
    /// The HTTP status a JSON caller gets for this answer.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Value(_) => 200,
            Self::Exception(_) => 500,
            Self::Failed { status, .. } => match *status {
                BAD_REQUEST => 400,
                SERVICE_NOT_FOUND => 404,
                SERVER_TIMEOUT => 504,
                THREADPOOL_EXHAUSTED => 503,
                SERVICE_ERROR => 500, // the method failed, as a thrown exception
                _ => 502,
            },
        }
    }
}

/// Reads a whole response frame (as the bridge gets it back).
pub fn read_answer(raw: &[u8]) -> Result<Answer, DecodeError> {
    let frame = Dubbo.decode(raw)?;
    if frame.kind != Kind::Response {
        return Err(DecodeError::malformed(NAME, "a response was expected"));
    }
    let bad = |e: hessian::HessianError| DecodeError::malformed(NAME, e.to_string());
    let mut r = Reader::new(&raw[frame.body.clone()]);
    let status = u8::try_from(frame.status).unwrap_or(SERVER_ERROR);
    if status != OK {
        let message = r.string().ok().flatten().unwrap_or_default();
        return Ok(Answer::Failed { status, message });
    }
    Ok(match r.int().map_err(bad)? % 3 {
        RESPONSE_VALUE => Answer::Value(r.json().map_err(bad)?),
        RESPONSE_NULL_VALUE => Answer::Value(serde_json::Value::Null),
        RESPONSE_WITH_EXCEPTION => Answer::Exception(r.json().map_err(bad)?),
        _ => return Err(DecodeError::malformed(NAME, "unknown result kind")),
    })
}
