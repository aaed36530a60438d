//! Message heads on the fast path, parsed with `httparse`: what a request
//! needs to be routed and relayed, whether the fast path can carry it at all
//! (anything unusual goes to hyper), and the heads written on each side.

use super::super::{
    HOP_BY_HOP, REPLICA, SCRIPT_NAME, TRACEPARENT, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
};
use http::{HeaderName, header};
use httparse::{EMPTY_HEADER, Header, Status};

/// Largest head accepted on the fast path (a larger one goes to hyper, which
/// refuses it with 431).
pub const MAX_HEAD: usize = 64 * 1024;
/// Headers per message on the fast path (more go to hyper).
pub const MAX_HEADERS: usize = 64;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// The outcome of reading a head so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<T> {
    /// More bytes are needed.
    Partial,
    Done(T),
    /// Not for the fast path: hyper serves it (and refuses it if it is bad).
    Unsupported,
}

/// What routing and relaying a request need; borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead<'b> {
    /// Bytes of the head, final CRLF included.
    pub len: usize,
    pub method: &'b str,
    /// The origin-form target: path and query.
    pub target: &'b str,
    pub host: &'b str,
    pub framing: Framing,
    /// The client asked to close after this exchange.
    pub close: bool,
    pub traceparent: Option<&'b str>,
}

/// Parses a request head into `headers`. Only HTTP/1.1 in origin form, with a
/// Host, no upgrade, no `Expect`, and a plain length or chunked body is taken.
pub fn request<'b>(buf: &'b [u8], headers: &mut [Header<'b>]) -> Head<(RequestHead<'b>, usize)> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) if buf.len() < MAX_HEAD => return Head::Partial,
        _ => return Head::Unsupported,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Head::Unsupported;
    };
    if !target.starts_with('/') || method == "CONNECT" {
        return Head::Unsupported;
    }
    let mut head =
        RequestHead { len, method, target, host: "", framing: Framing::Empty, close: false, traceparent: None };
    let (mut length, mut chunked) = (None, false);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).ok();
        match h.name.to_ascii_lowercase().as_str() {
            "host" => head.host = value.unwrap_or_default(),
            "content-length" => match (value.and_then(digits), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Head::Unsupported,
            },
            "transfer-encoding" if value.is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked")) => chunked = true,
            "transfer-encoding" | "upgrade" | "expect" => return Head::Unsupported,
            "connection" => {
                for token in value.unwrap_or_default().split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("upgrade") {
                        return Head::Unsupported;
                    }
                    head.close |= token.eq_ignore_ascii_case("close");
                }
            }
            "content-type" if value.is_some_and(|v| v.starts_with("application/grpc")) => return Head::Unsupported,
            "traceparent" => head.traceparent = value,
            _ => {}
        }
    }
    head.framing = match (length, chunked) {
        (Some(_), true) => return Head::Unsupported,
        (Some(0), false) | (None, false) => Framing::Empty,
        (Some(n), false) => Framing::Length(n),
        (None, true) => Framing::Chunked,
    };
    if head.host.is_empty() {
        return Head::Unsupported;
    }
    let count = req.headers.len();
    Head::Done((head, count))
}

/// What the gateway adds to a request on its way to an instance.
pub struct Forwarding<'a> {
    /// The target with the route's prefix stripped.
    pub rest: &'a str,
    pub script_name: &'a str,
    pub host: &'a str,
    pub peer_ip: &'a str,
    pub traceparent: &'a str,
}

/// Headers the gateway sets itself, so a client's own are dropped (the names
/// the hyper path replaces).
const SET_BY_GATEWAY: [HeaderName; 6] =
    [header::HOST, X_FORWARDED_HOST, X_FORWARDED_PROTO, TRACEPARENT, SCRIPT_NAME, REPLICA];

/// Writes the instance's request head into `out`, without the final CRLF (the
/// replica header, known once an instance is leased, may follow).
pub fn upstream_head(out: &mut Vec<u8>, method: &str, headers: &[Header<'_>], f: &Forwarding<'_>) {
    let named = connection_named(headers);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(f.rest.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in headers {
        let drop = is_hop_by_hop(h.name)
            || SET_BY_GATEWAY.iter().any(|n| h.name.eq_ignore_ascii_case(n.as_str()))
            || named.iter().any(|n| h.name.eq_ignore_ascii_case(n));
        if !drop {
            header(out, h.name, h.value);
        }
    }
    header(out, header::HOST.as_str(), f.host.as_bytes());
    header(out, X_FORWARDED_HOST.as_str(), f.host.as_bytes());
    header(out, X_FORWARDED_FOR.as_str(), f.peer_ip.as_bytes());
    header(out, X_FORWARDED_PROTO.as_str(), b"http");
    if !f.script_name.is_empty() {
        header(out, SCRIPT_NAME.as_str(), f.script_name.as_bytes());
    }
    header(out, TRACEPARENT.as_str(), f.traceparent.as_bytes());
}

/// What relaying a response needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The instance will close: its connection is not reused.
    pub close: bool,
    /// It carries hop-by-hop headers, so its head must be rewritten.
    pub rewrite: bool,
}

/// A response head the fast path cannot relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadResponse(pub String);

/// Parses an instance's response head; `head_request` says the request was a
/// HEAD (no body follows whatever the headers say).
pub fn response(buf: &[u8], head_request: bool) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(Status::Complete(len)) => len,
        Ok(Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(Status::Partial) => return Err(BadResponse("response head too large".into())),
        Err(e) => return Err(BadResponse(format!("bad response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    if status < 200 {
        return Err(BadResponse(format!("unexpected interim response {status}")));
    }
    let mut r =
        ResponseHead { len, status, framing: Framing::UntilClose, close: resp.version != Some(1), rewrite: false };
    let (mut length, mut chunked, mut coded) = (None, false, false);
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default();
        r.rewrite |= is_hop_by_hop(h.name);
        if h.name.eq_ignore_ascii_case("connection") {
            r.close |= value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
            r.rewrite = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = digits(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            chunked = value.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    r.framing = match () {
        _ if head_request || status == 204 || status == 304 => Framing::Empty,
        _ if chunked => Framing::Chunked,
        _ if coded => Framing::UntilClose,
        _ => length.map_or(Framing::UntilClose, |n| if n == 0 { Framing::Empty } else { Framing::Length(n) }),
    };
    r.close |= r.framing == Framing::UntilClose;
    Ok(Some(r))
}

/// Writes the client's response head: the instance's, without hop-by-hop
/// headers, and with `connection: close` when this is the last exchange.
pub fn client_head(out: &mut Vec<u8>, raw: &[u8], close: bool) -> Result<(), BadResponse> {
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(raw).map_err(|e| BadResponse(format!("bad response head: {e}")))?;
    let status = resp.code.unwrap_or(0);
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", resp.reason.unwrap_or("")).as_bytes());
    let named = connection_named(resp.headers);
    for h in resp.headers.iter() {
        if !is_hop_by_hop(h.name) && !named.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
            header(out, h.name, h.value);
        }
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// A Content-Length: digits only (`+5` or `5, 5` would be read differently
/// by the instance, and a disagreement on framing is request smuggling).
fn digits(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_str()))
}

/// Headers that `Connection` names are hop-by-hop too.
fn connection_named<'h>(headers: &'h [Header<'_>]) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .collect()
}

#[cfg(test)]
mod tests;
