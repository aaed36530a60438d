//! What the pipeline stages share: the incoming click event as JSON, and the
//! reply that carries a stage's result on to the next trigger.

use serde_json::Value;
use weft_guest::{Event, Request, Response};

/// The incoming event and its JSON data, or the response refusing it (a 4xx,
/// which the broker does not retry: the event goes to the dead-letter sink with
/// this text as its reason).
pub fn incoming(req: &Request) -> Result<(Event, Value), Response> {
    let Some(event) = req.event() else {
        return Err(Response::text("400 Bad Request", "not-an-event: this stage takes CloudEvents"));
    };
    match serde_json::from_slice(&event.data) {
        Ok(data) => Ok((event, data)),
        Err(_) => Err(Response::text("422 Unprocessable Entity", "not-json: event data is not JSON")),
    }
}

/// The next event in the chain: same source, subject and time (so the sink can
/// measure end-to-end latency from the original click), a new type, and an id
/// derived from the original (`<id>.<stage>`) so duplicates stay detectable.
pub fn forward(event: &Event, stage: &str, ty: &str, data: &Value) -> Response {
    let next = Event { id: format!("{}.{stage}", event.id), ty: ty.to_string(), ..event.clone() };
    Response::reply(&next, data)
}
