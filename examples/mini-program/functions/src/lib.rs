//! What the shop's functions share: the legacy service's interfaces (reached
//! by name through the sidecar's Dubbo bridge) and JSON error answers.

use serde_json::{Value, json};
use weft_guest::{Event, Request, Response, http};

pub const INVENTORY: &str = "com.example.shop.InventoryService";
pub const PRICE: &str = "com.example.shop.PriceService";
/// The service version the legacy provider exports.
pub const VERSION: &str = "1.0.0";

/// Calls the legacy service (Dubbo, by interface name) with JSON arguments.
pub fn legacy(interface: &str, method: &str, args: Value) -> Result<Value, String> {
    http::dubbo(interface, VERSION, method, &args)
}

/// A JSON error answer: `{"error": message}` with `status`.
pub fn error(status: &str, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

/// The store function's URL for `collection`, by its path route on the sidecar.
pub fn store(collection: &str) -> String {
    let ns = std::env::var("WEFT_NAMESPACE").unwrap_or_else(|_| "default".into());
    http::sidecar(&format!("/{ns}/store/{collection}"))
}

/// Writes `record` to the store; `Err` (the delivery is retried) if it failed.
pub fn keep(collection: &str, record: &Value) -> Result<(), String> {
    let answer = http::send("POST", &store(collection), &[("Content-Type", "application/json")], record.to_string().as_bytes())?;
    match answer.is_success() {
        true => Ok(()),
        false => Err(format!("store answered {}: {}", answer.status, String::from_utf8_lossy(&answer.body))),
    }
}

/// The `order.created` event a trigger delivered and its order, or the 400
/// refusing anything else.
pub fn order_event(req: &Request) -> Result<(Event, Value), Response> {
    let event = req.event().ok_or_else(|| error("400 Bad Request", "expected an order.created CloudEvent"))?;
    let order = serde_json::from_slice(&event.data).unwrap_or(Value::Null);
    Ok((event, order))
}

/// Keeps `record` and answers 200 with `done`, or 503 so the broker retries.
pub fn keep_and_answer(collection: &str, record: &Value, done: &Value) -> Response {
    match keep(collection, record) {
        Ok(()) => Response::json("200 OK", done),
        Err(why) => error("503 Service Unavailable", &why),
    }
}
