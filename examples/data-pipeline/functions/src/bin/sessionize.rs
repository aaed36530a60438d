//! Stage 3a: assigns each enriched click to a session (`click.enriched` ->
//! `click.sessionized`): the user and the 30-minute window of the click's time.
//! Stateless, as every weft instance is: the window is computed, not remembered.

use pipeline::{forward, incoming};
use serde_json::{Value, json};
use weft_guest::Request;

/// Minutes since midnight from an RFC 3339 time (`2026-11-25T10:42:07Z`).
fn minute_of_day(time: &str) -> Option<u32> {
    let clock = time.split('T').nth(1)?;
    let mut parts = clock.split(':');
    let h: u32 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    Some(h * 60 + m)
}

fn main() {
    let req = Request::read();
    let reply = match incoming(&req) {
        Err(refused) => refused,
        Ok((event, click)) => {
            let user = click.get("user").and_then(Value::as_str).unwrap_or("?");
            let time = event.time.clone().unwrap_or_default();
            let day = time.split('T').next().unwrap_or("");
            let window = minute_of_day(&time).map_or(0, |m| m / 30);
            let session = format!("{user}@{day}#{window}");
            let out = json!({ "user": user, "session": session, "page": click.get("page"), "device": click.get("device") });
            forward(&event, "sessionized", "click.sessionized", &out)
        }
    };
    reply.send();
}
