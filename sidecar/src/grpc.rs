//! gRPC on the gateway: HTTP/2 requests with `content-type: application/grpc`.
//! They route by service name (`/<package.Service>/<Method>`) like the RPC
//! protocols route by interface, go to the instance over HTTP/2 (trailers
//! carry the status), and the gateway's own failures come back as a gRPC
//! status — a trailers-only response — instead of an HTTP error page.

use crate::http_util::{Body, full};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;

/// Whether `req` is a gRPC call.
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The service of a gRPC path: `weft.test.Echo` in `/weft.test.Echo/Say`.
pub fn service(path: &str) -> Option<&str> {
    let (svc, method) = path.strip_prefix('/')?.split_once('/')?;
    (!svc.is_empty() && !method.is_empty() && !method.contains('/')).then_some(svc)
}

/// gRPC status codes the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Internal = 13,
    Unimplemented = 12,
    Unavailable = 14,
    DeadlineExceeded = 4,
    ResourceExhausted = 8,
    InvalidArgument = 3,
}

impl Code {
    /// The gRPC status of a gateway error (gRPC's HTTP-to-gRPC mapping, with
    /// the gateway's own meanings: 404 is a service no function serves).
    pub fn of_http(status: StatusCode) -> Self {
        match status.as_u16() {
            400 | 413 => Self::InvalidArgument,
            404 => Self::Unimplemented,
            429 => Self::ResourceExhausted,
            502 | 503 => Self::Unavailable,
            504 => Self::DeadlineExceeded,
            _ => Self::Internal,
        }
    }
}

/// A trailers-only gRPC response: HTTP 200 with the status in the headers.
pub fn status_reply(code: Code, message: &str) -> Response<Body> {
    let mut resp = Response::new(full(""));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(u16::from(code as u8)));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        h.insert("grpc-message", v);
    }
    h.insert("weft-error", HeaderValue::from_static("true"));
    resp
}

/// Turns one of the gateway's own error replies (`weft-error: true`, a short
/// text body) into a gRPC status; any other response passes unchanged.
pub async fn translate_error(resp: Response<Body>) -> Response<Body> {
    if !resp.headers().contains_key("weft-error") || resp.headers().contains_key("grpc-status") {
        return resp;
    }
    let code = Code::of_http(resp.status());
    let text = match resp.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim_end().to_string(),
        Err(_) => String::new(),
    };
    status_reply(code, &text)
}

/// `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses").
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_come_from_the_path() {
        assert_eq!(service("/weft.test.Echo/Say"), Some("weft.test.Echo"));
        for bad in ["/", "/x", "//Say", "/x/", "/a/b/c", "x/y"] {
            assert_eq!(service(bad), None, "{bad}");
        }
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("no route: 100% é"), "no route: 100%25 %C3%A9");
    }

    #[test]
    fn http_statuses_map_to_grpc_codes() {
        assert_eq!(Code::of_http(StatusCode::NOT_FOUND), Code::Unimplemented);
        assert_eq!(Code::of_http(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
        assert_eq!(Code::of_http(StatusCode::GATEWAY_TIMEOUT), Code::DeadlineExceeded);
    }
}
