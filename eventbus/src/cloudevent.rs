//! CloudEvents over HTTP in, as the broker ingress takes them: binary mode
//! (`ce-*` headers, the body is the data), structured mode
//! (`application/cloudevents+json`) and batched mode
//! (`application/cloudevents-batch+json`). Parsing is the cloudevents SDK's;
//! this module first checks each attribute so that a bad event is refused
//! with the exact attribute that is wrong (the SDK's own errors do not say).
//!
//! In the log an event is kept in structured JSON, so a record is the event.

use crate::filter::Attributes;
use bytes::Bytes;
use cloudevents::{AttributesReader, Event};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde_json::{Map, Value};
use std::borrow::Cow;

pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// Why a request holds no valid CloudEvent; the ingress answers 400 with it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error("attribute {attribute}: {message}")]
    Attribute { attribute: String, message: String },
    #[error("body: {0}")]
    Body(String),
    #[error(
        "not a CloudEvent: binary mode needs ce-specversion, ce-id, ce-source and ce-type headers; structured mode needs Content-Type: {STRUCTURED}; batched mode {BATCH}"
    )]
    NotAnEvent,
}

fn bad(attribute: impl Into<String>, message: impl Into<String>) -> EventError {
    EventError::Attribute { attribute: attribute.into(), message: message.into() }
}

/// The events of one ingress request, in order.
pub fn decode_http(headers: &HeaderMap, body: &Bytes) -> Result<Vec<Event>, EventError> {
    match media_type(headers).as_str() {
        BATCH => decode_batch(body),
        STRUCTURED => decode_structured(body).map(|e| vec![e]),
        _ if headers.contains_key("ce-specversion") => decode_binary(headers, body).map(|e| vec![e]),
        _ => Err(EventError::NotAnEvent),
    }
}

fn decode_binary(headers: &HeaderMap, body: &Bytes) -> Result<Event, EventError> {
    let mut attrs = Map::new();
    for (name, value) in headers {
        if let Some(attr) = name.as_str().strip_prefix("ce-") {
            let v = value.to_str().map_err(|_| bad(attr, "header value is not visible ASCII"))?;
            attrs.insert(attr.to_string(), Value::String(v.to_string()));
        }
    }
    check_attributes(&attrs, "")?;
    cloudevents::binding::http::to_event(headers, body.to_vec()).map_err(|e| EventError::Body(e.to_string()))
}

fn decode_structured(body: &Bytes) -> Result<Event, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| EventError::Body(format!("not JSON: {e}")))?;
    from_json(value, "")
}

fn decode_batch(body: &Bytes) -> Result<Vec<Event>, EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| EventError::Body(format!("not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(EventError::Body("a batch is a JSON array of events".into()));
    };
    items.into_iter().enumerate().map(|(i, v)| from_json(v, &format!("[{i}]."))).collect()
}

fn from_json(value: Value, prefix: &str) -> Result<Event, EventError> {
    let Value::Object(obj) = value else {
        return Err(EventError::Body(format!("{prefix}event: a structured event is a JSON object")));
    };
    check_attributes(&obj, prefix)?;
    serde_json::from_value(Value::Object(obj)).map_err(|e| EventError::Body(format!("{prefix}event: {e}")))
}

/// The checks of the CloudEvents 1.0 spec that name an attribute.
fn check_attributes(attrs: &Map<String, Value>, prefix: &str) -> Result<(), EventError> {
    let name = |a: &str| format!("{prefix}{a}");
    let text = |a: &str| -> Result<Option<&str>, EventError> {
        match attrs.get(a) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(name(a), "must be a string")),
        }
    };
    match text("specversion")? {
        Some("1.0") | Some("0.3") => {}
        Some(v) => return Err(bad(name("specversion"), format!("{v:?} is not a supported version (1.0)"))),
        None => return Err(bad(name("specversion"), "missing")),
    }
    for required in ["id", "source", "type"] {
        match text(required)? {
            Some(s) if !s.is_empty() => {}
            Some(_) => return Err(bad(name(required), "must not be empty")),
            None => return Err(bad(name(required), "missing")),
        }
    }
    if let Some(t) = text("time")? {
        chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| bad(name("time"), format!("{t:?} is not RFC 3339: {e}")))?;
    }
    if let Some(u) = text("dataschema")? {
        url::Url::parse(u).map_err(|e| bad(name("dataschema"), format!("{u:?} is not an absolute URI: {e}")))?;
    }
    for (key, value) in attrs {
        if is_known(key) {
            continue;
        }
        if !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) || key.is_empty() {
            return Err(bad(name(key), "extension names are lower-case letters and digits"));
        }
        if !matches!(value, Value::String(_) | Value::Bool(_) | Value::Number(_)) {
            return Err(bad(name(key), "an extension is a string, boolean or integer"));
        }
    }
    Ok(())
}

fn is_known(key: &str) -> bool {
    matches!(
        key,
        "specversion"
            | "id"
            | "source"
            | "type"
            | "subject"
            | "time"
            | "datacontenttype"
            | "dataschema"
            | "schemaurl"
            | "datacontentencoding"
            | "data"
            | "data_base64"
    )
}

/// An event in HTTP binary mode (`ce-*` headers, the data as the body), for
/// delivery. The encoding is the SDK's; this only collects its output.
pub fn to_binary(event: Event) -> Result<(HeaderMap, Bytes), EventError> {
    use cloudevents::binding::http::{Builder, Serializer};
    use cloudevents::message::BinaryDeserializer;
    struct Collect(HeaderMap);
    impl Builder<(HeaderMap, Bytes)> for Collect {
        fn header(&mut self, key: &str, value: http::HeaderValue) {
            if let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) {
                self.0.insert(name, value);
            }
        }
        fn body(&mut self, bytes: Vec<u8>) -> cloudevents::message::Result<(HeaderMap, Bytes)> {
            Ok((std::mem::take(&mut self.0), Bytes::from(bytes)))
        }
        fn finish(&mut self) -> cloudevents::message::Result<(HeaderMap, Bytes)> {
            self.body(Vec::new())
        }
    }
    BinaryDeserializer::deserialize_binary(event, Serializer::new(Collect(HeaderMap::new())))
        .map_err(|e| EventError::Body(format!("encode: {e}")))
}

/// Whether an HTTP message carries a CloudEvent (binary or structured mode).
pub fn is_event(headers: &HeaderMap) -> bool {
    headers.contains_key("ce-specversion") || media_type(headers) == STRUCTURED
}

/// The Content-Type without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> String {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// An event as a log record (structured JSON).
pub fn to_record(event: &Event) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(event).map(Bytes::from)
}

pub fn from_record(record: &[u8]) -> Result<Event, serde_json::Error> {
    serde_json::from_slice(record)
}

impl Attributes for Event {
    fn attribute(&self, name: &str) -> Option<Cow<'_, str>> {
        Some(match name {
            "specversion" => Cow::Owned(self.specversion().as_str().to_string()),
            "id" => Cow::Borrowed(self.id()),
            "source" => Cow::Borrowed(self.source().as_str()),
            "type" => Cow::Borrowed(self.ty()),
            "subject" => Cow::Borrowed(self.subject()?),
            "time" => Cow::Owned(self.time()?.to_rfc3339()),
            "datacontenttype" => Cow::Borrowed(self.datacontenttype()?),
            "dataschema" => Cow::Borrowed(self.dataschema()?.as_str()),
            ext => Cow::Owned(self.extension(ext)?.to_string()),
        })
    }
}

#[cfg(test)]
mod tests;
