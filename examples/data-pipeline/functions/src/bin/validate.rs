//! Stage 1: accepts well-formed clicks (`click.raw` -> `click.valid`) and
//! refuses the rest with 422 and a reason, which the dead-letter record keeps.

use pipeline::{forward, incoming};
use serde_json::Value;
use weft_guest::{Request, Response};

/// Why a click is malformed, or None when it is fine.
fn problem(click: &Value) -> Option<&'static str> {
    let field = |name: &str| click.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    if !click.is_object() {
        return Some("not-an-object");
    }
    if field("user").is_none() {
        return Some("missing-user");
    }
    match field("page") {
        None => Some("missing-page"),
        Some(p) if !p.starts_with('/') => Some("bad-page"),
        Some(_) => None,
    }
}

fn main() {
    let req = Request::read();
    let reply = match incoming(&req) {
        Err(refused) => refused,
        Ok((event, click)) => match problem(&click) {
            Some(reason) => Response::text("422 Unprocessable Entity", &format!("{reason}: click {} refused", event.id)),
            None => forward(&event, "valid", "click.valid", &click),
        },
    };
    reply.send();
}
