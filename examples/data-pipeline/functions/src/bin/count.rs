//! Stage 3b, the flaky one: counts a click toward its (section, device) key
//! (`click.enriched` -> `click.counted`), but fails `FAIL_PERCENT` % of
//! deliveries with a 503 on purpose, so the run shows the broker retrying with
//! backoff until each event gets through.

use pipeline::{forward, incoming};
use serde_json::{Value, json};
use weft_guest::{Request, Response};

/// A fresh random draw in 0..100 per attempt, so a retry of the same event may succeed.
fn roll() -> u64 {
    weft_guest::random_u64() % 100
}

fn main() {
    let req = Request::read();
    let fail_percent: u64 = std::env::var("FAIL_PERCENT").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let reply = match incoming(&req) {
        Err(refused) => refused,
        Ok(_) if roll() < fail_percent => Response::text("503 Service Unavailable", "flaky: injected failure"),
        Ok((event, click)) => {
            let field = |n: &str| click.get(n).and_then(Value::as_str).unwrap_or("?").to_string();
            let key = format!("{}/{}", field("section"), field("device"));
            forward(&event, "counted", "click.counted", &json!({ "key": key, "n": 1 }))
        }
    };
    reply.send();
}
