//! Small HTTP helpers shared by the roles: one body type and error replies.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// The body type every role answers with: a streamed upstream body or a buffer.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A buffered body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A plain-text error reply. weft's own errors carry `weft-error: true` so a
/// caller can tell them from the function's answers.
pub fn error_reply(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut text = message.into();
    text.push('\n');
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("weft-error", HeaderValue::from_static("true"));
    resp
}

/// The request's host: `Host` header (HTTP/1.1) or the URI authority (HTTP/2).
pub fn request_host<B>(req: &http::Request<B>) -> Option<&str> {
    req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()))
}
