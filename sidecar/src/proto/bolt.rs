//! SOFARPC Bolt, v1 and v2. A fixed header (protocol, type, command code,
//! request id, codec, timeout or response status, and the lengths of class
//! name, header map and content), then the class name, the header map and the
//! content. v2 adds a version byte and a switch byte whose bit 0 appends a
//! CRC32 (IEEE) of the frame. The `service` header (`interface:version`) names
//! the service; the method comes from the `SofaRequest` at the content's start.

use super::hessian::{self, Reader};
use super::{Codec, DecodeError, DecodeMemo, Detect, Frame, Headers, Kind, Names, Status, be, whole};

const NAME: &str = "bolt";
const V1: u8 = 1;
const V2: u8 = 2;
const TYPE_RESPONSE: u8 = 0;
const TYPE_REQUEST: u8 = 1;
const TYPE_ONEWAY: u8 = 2;
const CMD_HEARTBEAT: u16 = 0;
const CMD_RESPONSE: u16 = 2;
const CODEC_HESSIAN2: u8 = 1;
const SWITCH_CRC: u8 = 0x01;
/// Protocol headers SOFA may carry the method in (protobuf requests do).
const METHOD_HEADER: &str = "sofa_head_method_name";
const ERROR_CLASS: &str = "com.alipay.remoting.rpc.exception.RpcServerException";

/// Response statuses (`com.alipay.remoting.ResponseStatus`).
const SERVER_EXCEPTION: u16 = 0x02;
const SERVER_THREADPOOL_BUSY: u16 = 0x04;
const ERROR_COMM: u16 = 0x05;
const NO_PROCESSOR: u16 = 0x06;
const TIMEOUT: u16 = 0x07;
const SERVER_DESERIAL_EXCEPTION: u16 = 0x12;

pub struct Bolt;

/// Where the fields of one header layout are.
struct Layout {
    version: u8,
    /// Width of v2's extra version byte.
    ver1: usize,
    response: bool,
}

impl Layout {
    fn of(buf: &[u8]) -> Result<Self, DecodeError> {
        let version = *buf.first().ok_or(DecodeError::Incomplete)?;
        if version != V1 && version != V2 {
            return Err(DecodeError::malformed(NAME, format!("unknown protocol code {version}")));
        }
        let ver1 = usize::from(version == V2);
        let response = buf.get(1 + ver1).ok_or(DecodeError::Incomplete)? == &TYPE_RESPONSE;
        Ok(Self { version, ver1, response })
    }
    fn ty(&self) -> usize {
        1 + self.ver1
    }
    fn cmd(&self) -> usize {
        2 + self.ver1
    }
    fn ver2(&self) -> usize {
        4 + self.ver1
    }
    fn id(&self) -> usize {
        5 + self.ver1
    }
    fn codec(&self) -> usize {
        9 + self.ver1
    }
    fn switch(&self) -> Option<usize> {
        (self.version == V2).then_some(11)
    }
    /// Whether the frame in `buf` carries a CRC32 (v2, switch bit 0).
    fn crc(&self, buf: &[u8]) -> bool {
        self.switch().and_then(|s| buf.get(s)).is_some_and(|b| b & SWITCH_CRC != 0)
    }
    /// Offset of the timeout (request) or status (response).
    fn timeout_or_status(&self) -> usize {
        10 + 2 * self.ver1
    }
    fn lengths(&self) -> usize {
        self.timeout_or_status() + if self.response { 2 } else { 4 }
    }
    fn header_len(&self) -> usize {
        self.lengths() + 8
    }
}

impl Codec for Bolt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, head: &[u8]) -> Detect {
        let Some(&proto) = head.first() else { return Detect::NeedMore };
        if proto != V1 && proto != V2 {
            return Detect::NoMatch;
        }
        // Type and command code must be known ones.
        let at = usize::from(proto == V2);
        match (head.get(1 + at), be::<2>(head, 2 + at)) {
            (Some(t), Some(cmd)) if *t <= TYPE_ONEWAY && cmd <= 2 => Detect::Match,
            (Some(t), _) if *t > TYPE_ONEWAY => Detect::NoMatch,
            _ => Detect::NeedMore,
        }
    }

    fn decode(&self, buf: &[u8]) -> Result<Frame, DecodeError> {
        decode(buf, None)
    }

    fn decode_with(&self, buf: &[u8], memo: &mut DecodeMemo) -> Result<Frame, DecodeError> {
        decode(buf, Some(memo))
    }

    fn set_request_id(&self, frame: &mut [u8], id: u64) {
        let Ok(l) = Layout::of(frame) else { return };
        if let Some(f) = frame.get_mut(l.id()..l.id() + 4) {
            f.copy_from_slice(&(id as u32).to_be_bytes());
        }
        if l.crc(frame) {
            write_crc(frame);
        }
    }

    fn heartbeat_reply(&self, req: &Frame, raw: &[u8]) -> Vec<u8> {
        response(req, raw, CMD_HEARTBEAT, 0, b"", b"")
    }

    fn error_reply(&self, req: &Frame, raw: &[u8], status: Status, message: &str) -> Vec<u8> {
        let mut text = Vec::with_capacity(message.len() + 3);
        hessian::write_string(&mut text, message);
        let mut content = Vec::with_capacity(text.len() + 96);
        let fields: [(&str, &[u8]); 3] = [("detailMessage", &text), ("stackTrace", b"N"), ("cause", b"N")];
        hessian::write_draft_object(&mut content, ERROR_CLASS, &fields);
        response(req, raw, CMD_RESPONSE, code(status), ERROR_CLASS.as_bytes(), &content)
    }
}

/// Reads a frame's header, and a request's names (the method from `memo`
/// when the content starts as the connection's last request's did).
fn decode(buf: &[u8], memo: Option<&mut DecodeMemo>) -> Result<Frame, DecodeError> {
    if buf.len() < 2 {
        return Err(DecodeError::Incomplete);
    }
    let l = Layout::of(buf)?;
    if buf.len() < l.header_len() {
        return Err(DecodeError::Incomplete);
    }
    let class_len = be::<2>(buf, l.lengths()).unwrap_or(0);
    let header_len = be::<2>(buf, l.lengths() + 2).unwrap_or(0);
    let content_len = be::<4>(buf, l.lengths() + 4).unwrap_or(0);
    let crc = l.crc(buf);
    let total = l.header_len() as u64 + class_len + header_len + content_len + if crc { 4 } else { 0 };
    let len = whole(NAME, buf, total)?;
    if crc && !crc_ok(&buf[..len]) {
        return Err(DecodeError::malformed(NAME, "CRC32 does not match"));
    }
    let cmd = be::<2>(buf, l.cmd()).unwrap_or(0);
    let mut frame = Frame {
        len,
        request_id: be::<4>(buf, l.id()).unwrap_or(0),
        kind: kind(buf[l.ty()])?,
        heartbeat: cmd == u64::from(CMD_HEARTBEAT),
        status: if l.response { be::<2>(buf, l.timeout_or_status()).unwrap_or(0) as u16 } else { 0 },
        ..Frame::default()
    };
    let headers_at = l.header_len() + class_len as usize;
    let content_at = headers_at + header_len as usize;
    frame.body = content_at..content_at + content_len as usize;
    if frame.is_request() && !frame.heartbeat {
        frame.headers = header_map(&buf[headers_at..content_at])?;
        let content = &buf[frame.body.clone()];
        read_service(&mut frame, content, memo);
    }
    Ok(frame)
}

fn kind(ty: u8) -> Result<Kind, DecodeError> {
    match ty {
        TYPE_REQUEST => Ok(Kind::Request),
        TYPE_ONEWAY => Ok(Kind::OneWay),
        TYPE_RESPONSE => Ok(Kind::Response),
        t => Err(DecodeError::malformed(NAME, format!("unknown frame type {t}"))),
    }
}

/// The header map: length-prefixed (4 bytes) key and value strings. Sized
/// first, by a pass over the lengths alone, so that it is filled without
/// reallocating.
fn header_map(b: &[u8]) -> Result<Headers, DecodeError> {
    let (mut rest, mut entries) = (b, 0);
    while !rest.is_empty() {
        take_bytes(&mut rest)?;
        take_bytes(&mut rest)?;
        entries += 1;
    }
    let mut out = Headers::with_capacity(b.len() - 8 * entries, entries);
    let mut rest = b;
    while !rest.is_empty() {
        let key = text(take_bytes(&mut rest)?)?;
        let value = text(take_bytes(&mut rest)?)?;
        out.push(key, value);
    }
    Ok(out)
}

fn take_bytes<'a>(b: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let bad = || DecodeError::malformed(NAME, "header map entry overruns the header");
    let len = usize::try_from(be::<4>(b, 0).ok_or_else(bad)?).map_err(|_| bad())?;
    let s = b.get(4..4usize.checked_add(len).ok_or_else(bad)?).ok_or_else(bad)?;
    *b = &b[4 + len..];
    Ok(s)
}

fn text(s: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(s).map_err(|_| DecodeError::malformed(NAME, "header map entry is not UTF-8"))
}

/// Service and version from the `service` header (`interface:version[:uniqueId]`),
/// the method from the headers or the start of a Hessian `SofaRequest`.
fn read_service(frame: &mut Frame, content: &[u8], memo: Option<&mut DecodeMemo>) {
    let (iface, version) = match frame.header("service") {
        Some(s) => s.split_once(':').unwrap_or((s, "")),
        None => ("", ""),
    };
    frame.names = match frame.header(METHOD_HEADER) {
        Some(m) => Names::new(iface, version, m),
        // The content's class definition and method are the same bytes in
        // every call of one method, while the header map may not be (trace
        // ids): only the content is remembered. Hessian values delimit
        // themselves, so content that starts with the bytes the last method
        // was read from names that method.
        None => match memo.as_deref().and_then(|m| m.recall(content)) {
            Some((known, _)) => Names::new(iface, version, known.method()),
            None => {
                let mut r = Reader::new(content);
                let method = r.method_name_field().ok().flatten();
                if let (Some(m), Some(method)) = (memo, &method) {
                    m.remember(&content[..r.position()], &Names::new("", "", method));
                }
                Names::new(iface, version, &method.unwrap_or_default())
            }
        },
    };
}

/// A response to `req` (bytes `raw`, a decoded request) in its protocol
/// version, ver2, codec and checksum setting.
fn response(req: &Frame, raw: &[u8], cmd: u16, status: u16, class: &[u8], content: &[u8]) -> Vec<u8> {
    let l = Layout::of(raw).unwrap_or(Layout { version: V1, ver1: 0, response: false });
    let v2 = l.version == V2;
    let crc = l.crc(raw);
    let mut out = Vec::with_capacity(32 + class.len() + content.len());
    out.push(l.version);
    if v2 {
        out.push(raw.get(1).copied().unwrap_or(1)); // ver1
    }
    out.push(TYPE_RESPONSE);
    out.extend_from_slice(&cmd.to_be_bytes());
    out.push(raw.get(l.ver2()).copied().unwrap_or(1));
    out.extend_from_slice(&(req.request_id as u32).to_be_bytes());
    out.push(raw.get(l.codec()).copied().unwrap_or(CODEC_HESSIAN2));
    if v2 {
        out.push(if crc { SWITCH_CRC } else { 0 });
    }
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&(class.len() as u16).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(content.len() as u32).to_be_bytes());
    out.extend_from_slice(class);
    out.extend_from_slice(content);
    if crc {
        out.extend_from_slice(&[0; 4]);
        write_crc(&mut out);
    }
    out
}

/// Writes the CRC32 of everything before the frame's last four bytes into them.
fn write_crc(frame: &mut [u8]) {
    let Some(at) = frame.len().checked_sub(4) else { return };
    let crc = crc32fast::hash(&frame[..at]);
    frame[at..].copy_from_slice(&crc.to_be_bytes());
}

/// Whether a v2 frame with a CRC carries the right one.
pub fn crc_ok(frame: &[u8]) -> bool {
    let Some(at) = frame.len().checked_sub(4) else { return false };
    crc32fast::hash(&frame[..at]).to_be_bytes() == frame[at..]
}

fn code(status: Status) -> u16 {
    match status {
        Status::NoRoute => NO_PROCESSOR,
        Status::Unavailable => ERROR_COMM,
        Status::Timeout => TIMEOUT,
        Status::Overloaded => SERVER_THREADPOOL_BUSY,
        Status::Aborted => SERVER_EXCEPTION,
        Status::BadRequest => SERVER_DESERIAL_EXCEPTION,
    }
}
