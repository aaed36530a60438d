//! The `Protocol` seam: what the sidecar needs to know about an RPC protocol to
//! route, split and retry its requests without understanding their payload.
//!
//! A codec detects its protocol from a connection's first bytes, reads only the
//! header of each frame (request id, kind, heartbeat, service, method, version,
//! headers, body span), rewrites the request id of a frame in place (so many
//! callers can share one upstream connection), and builds replies of its own:
//! a heartbeat answer and an error response ("hijack") for a request the
//! sidecar could not deliver. The body is forwarded as bytes and never
//! deserialized ("fast decode, forward").
//!
//! HTTP/1.1, HTTP/2 and gRPC are detected here too but served by hyper (see
//! [`Detected::Http`]); every other protocol is a [`Codec`] listed in
//! [`codecs`] — adding one is a file plus one line there (see `README.md`).

pub mod bolt;
pub mod detect;
pub mod dubbo;
pub mod hessian;
pub mod wrpc;

pub use detect::{Detected, detect};

use std::ops::Range;

/// Largest frame accepted (header and body). A length field above it is taken
/// as garbage rather than a reason to buffer gigabytes.
pub const MAX_FRAME: usize = 16 << 20;

/// What the first bytes of a connection say about a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    Match,
    NoMatch,
    /// Too few bytes to tell.
    NeedMore,
}

/// The role of a frame on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// A request that expects a response.
    #[default]
    Request,
    /// A request without a response.
    OneWay,
    Response,
}

/// Header that pins a tagged revision, as the `<tag>-<function>` host does for
/// HTTP: a Bolt header, a Dubbo attachment or gRPC metadata.
pub const TAG_HEADER: &str = "weft-tag";

/// The header of one frame, as far as routing needs it. Byte offsets are into
/// the buffer the frame was decoded from, which starts at the frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// Length of the whole frame in bytes.
    pub len: usize,
    pub request_id: u64,
    pub kind: Kind,
    pub heartbeat: bool,
    /// The interface or service name (`com.example.UserService`), its
    /// version and the method; empty if the frame names none (responses,
    /// heartbeats).
    pub names: Names,
    /// Protocol headers or attachments the codec reads cheaply. Dubbo's
    /// attachments come after the arguments and are read only when the body
    /// names [`TAG_HEADER`], the one routing uses (`dubbo::all_attachments`
    /// reads them regardless).
    pub headers: Headers,
    /// A response's status in the protocol's own codes.
    pub status: u16,
    pub body: Range<usize>,
}

impl Frame {
    pub fn service(&self) -> &str {
        self.names.service()
    }

    pub fn version(&self) -> &str {
        self.names.version()
    }

    pub fn method(&self) -> &str {
        self.names.method()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Whether this is a request (two-way or one-way) rather than a response.
    pub fn is_request(&self) -> bool {
        self.kind != Kind::Response
    }
}

/// A request's service, version and method in one string: one allocation
/// per frame for its names, not three.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Names {
    text: String,
    service_end: usize,
    version_end: usize,
}

impl Names {
    pub fn new(service: &str, version: &str, method: &str) -> Self {
        let mut text = String::with_capacity(service.len() + version.len() + method.len());
        text.push_str(service);
        text.push_str(version);
        text.push_str(method);
        Self { text, service_end: service.len(), version_end: service.len() + version.len() }
    }

    pub fn service(&self) -> &str {
        &self.text[..self.service_end]
    }

    pub fn version(&self) -> &str {
        &self.text[self.service_end..self.version_end]
    }

    pub fn method(&self) -> &str {
        &self.text[self.version_end..]
    }
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("service", &self.service())
            .field("version", &self.version())
            .field("method", &self.method())
            .finish()
    }
}

/// What a connection's last request named, and the bytes that named it. A
/// client calls the same few methods again and again; when a request's
/// names are written exactly as the last one's, they need not be read again.
#[derive(Default)]
pub struct DecodeMemo {
    /// The encoded names (empty: nothing remembered).
    prefix: Vec<u8>,
    /// What those bytes name (Bolt's content names only the method).
    names: Names,
}

impl DecodeMemo {
    /// Encoded names longer than this are not remembered (a hostile client
    /// could otherwise make every connection hold a large copy).
    const MAX_PREFIX: usize = 512;

    /// The names last read from bytes that `bytes` start with, and how many
    /// bytes they took.
    fn recall(&self, bytes: &[u8]) -> Option<(&Names, usize)> {
        (!self.prefix.is_empty() && bytes.starts_with(&self.prefix)).then_some((&self.names, self.prefix.len()))
    }

    /// Remembers `names`, read from `prefix`.
    fn remember(&mut self, prefix: &[u8], names: &Names) {
        self.prefix.clear();
        if prefix.len() <= Self::MAX_PREFIX {
            self.prefix.extend_from_slice(prefix);
            self.names.clone_from(names);
        }
    }
}

/// A frame's headers (Bolt's header map, Dubbo's attachments): every key and
/// value in one string, so a frame costs two allocations for its headers, not
/// two per header.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Headers {
    text: String,
    /// `(key end, value end)` in `text`; each entry starts where the last ended.
    ends: Vec<(usize, usize)>,
}

impl Headers {
    /// Room for `entries` keys and values of `text` bytes in all.
    pub fn with_capacity(text: usize, entries: usize) -> Self {
        Self { text: String::with_capacity(text), ends: Vec::with_capacity(entries) }
    }

    pub fn push(&mut self, key: &str, value: &str) {
        self.text.push_str(key);
        let key_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((key_end, self.text.len()));
    }

    /// The first value of `name` (ASCII case ignored).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|(_, v)| *v));
        starts.zip(&self.ends).map(|(start, (k, v))| (&self.text[start..*k], &self.text[*k..*v]))
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        let mut h = Self::default();
        for (k, v) in pairs {
            h.push(k, v);
        }
        h
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer holds only part of a frame: read more and try again. Cheap
    /// (no allocation), since it is the common case on the hot path.
    #[error("incomplete frame")]
    Incomplete,
    /// The bytes are not a valid frame; the stream cannot continue.
    #[error("malformed {protocol} frame: {reason}")]
    Malformed { protocol: &'static str, reason: String },
}

impl DecodeError {
    pub fn malformed(protocol: &'static str, reason: impl Into<String>) -> Self {
        Self::Malformed { protocol, reason: reason.into() }
    }

    /// A bounded label for the error metric.
    pub fn reason_label(&self) -> &'static str {
        match self {
            Self::Incomplete => "incomplete",
            Self::Malformed { .. } => "malformed",
        }
    }
}

/// Why the sidecar answers a request itself, protocol-neutral. Each codec maps
/// it to its own status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No function serves the service.
    NoRoute,
    /// The service exists but nothing could take the request.
    Unavailable,
    /// No answer within the route's timeout.
    Timeout,
    /// Refused by a local rate limit or a full queue.
    Overloaded,
    /// Aborted on purpose (fault injection).
    Aborted,
    /// The request frame could not be routed as sent.
    BadRequest,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
            Self::Aborted => "aborted",
            Self::BadRequest => "bad_request",
        }
    }
}

/// One RPC protocol.
///
/// # Guarantees
/// `decode` never panics on any input and never asks for more than
/// [`MAX_FRAME`] bytes; `set_request_id` changes only the id (and any checksum
/// that covers it) of a frame `decode` accepted.
pub trait Codec: Send + Sync + 'static {
    /// Lowercase name for metrics, logs and `spec.interfaces[].protocol`.
    fn name(&self) -> &'static str;

    /// Whether a connection whose first bytes are `head` speaks this protocol.
    fn detect(&self, head: &[u8]) -> Detect;

    /// Reads the header of the frame at the start of `buf`.
    ///
    /// # Errors
    /// [`DecodeError::Incomplete`] if `buf` holds less than a whole frame,
    /// [`DecodeError::Malformed`] if it is not a frame of this protocol.
    fn decode(&self, buf: &[u8]) -> Result<Frame, DecodeError>;

    /// Like [`Self::decode`], with what one connection's earlier requests left
    /// in `memo`: a codec may use it to skip reading what the last request
    /// already named. The result must equal `decode`'s.
    ///
    /// # Errors
    /// As [`Self::decode`].
    fn decode_with(&self, buf: &[u8], _memo: &mut DecodeMemo) -> Result<Frame, DecodeError> {
        self.decode(buf)
    }

    /// Writes `id` as the request id of `frame` (the bytes of one decoded frame).
    fn set_request_id(&self, frame: &mut [u8], id: u64);

    /// The answer to heartbeat request `req`, whose bytes are `raw`.
    fn heartbeat_reply(&self, req: &Frame, raw: &[u8]) -> Vec<u8>;

    /// A response to request `req` (bytes `raw`) saying the sidecar failed it.
    fn error_reply(&self, req: &Frame, raw: &[u8], status: Status, message: &str) -> Vec<u8>;

    /// Largest request id the protocol carries (ids wrap after it).
    fn max_request_id(&self) -> u64 {
        u64::from(u32::MAX)
    }
}

/// Every RPC protocol the sidecar speaks, in detection order. A new protocol
/// is registered here and nowhere else.
pub fn codecs() -> &'static [&'static dyn Codec] {
    &[&dubbo::Dubbo, &bolt::Bolt, &wrpc::Wrpc]
}

/// The codec named `name` (as in `spec.interfaces[].protocol`).
pub fn codec(name: &str) -> Option<&'static dyn Codec> {
    codecs().iter().copied().find(|c| c.name() == name)
}

/// Reads a big-endian integer of `N` bytes at `at`, if the buffer has them.
fn be<const N: usize>(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at + N)?;
    Some(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Checks a frame length read from a header against [`MAX_FRAME`] and the
/// buffer: `Ok(len)` if the whole frame is there.
fn whole(protocol: &'static str, buf: &[u8], len: u64) -> Result<usize, DecodeError> {
    let len = usize::try_from(len).ok().filter(|l| *l <= MAX_FRAME);
    let len = len.ok_or_else(|| DecodeError::malformed(protocol, format!("frame longer than {MAX_FRAME} bytes")))?;
    if buf.len() < len { Err(DecodeError::Incomplete) } else { Ok(len) }
}

/// The invariants every codec keeps on any input, checked by the fuzz targets
/// (`sidecar/fuzz/`) and the tests; panics when one is broken.
pub fn check_codec(codec: &dyn Codec, data: &[u8]) {
    // A memo filled by the same bytes, then hit by them, changes nothing.
    let mut memo = DecodeMemo::default();
    for _ in 0..2 {
        assert_eq!(codec.decode_with(data, &mut memo), codec.decode(data), "decode_with differs from decode");
    }
    let frame = match codec.decode(data) {
        Ok(f) => f,
        Err(DecodeError::Incomplete) => return assert!(data.len() < MAX_FRAME, "incomplete past MAX_FRAME"),
        Err(DecodeError::Malformed { .. }) => return,
    };
    assert!(frame.len <= data.len() && frame.body.start <= frame.body.end && frame.body.end <= frame.len);
    let mut raw = data[..frame.len].to_vec();
    codec.set_request_id(&mut raw, 0x0102_0304);
    let again = codec.decode(&raw).unwrap_or_else(|e| panic!("a rewritten frame no longer decodes: {e}"));
    assert_eq!((again.len, again.request_id), (frame.len, 0x0102_0304));
    if frame.is_request() {
        let reply = codec.error_reply(&again, &raw, Status::Unavailable, "fuzz");
        let r = codec.decode(&reply).unwrap_or_else(|e| panic!("an error reply does not decode: {e}"));
        assert_eq!((r.kind, r.request_id), (Kind::Response, 0x0102_0304));
    }
}

#[cfg(test)]
mod tests;
