//! Trigger subscriber for `order.created`: records a notification for the
//! user in the store. A failed write answers 503, so the broker retries.

use serde_json::{Value, json};
use shop::{error, keep};
use weft_guest::{Request, Response};

fn main() {
    let req = Request::read();
    let reply = match req.event() {
        None => error("400 Bad Request", "expected an order.created CloudEvent"),
        Some(event) => {
            let order: Value = serde_json::from_slice(&event.data).unwrap_or(Value::Null);
            let total = order["total"].as_i64().unwrap_or(0);
            let record = json!({
                "eventId": event.id, "orderId": order["orderId"], "user": order["user"],
                "message": format!("Order {} confirmed: {}.{:02} total", event.id, total / 100, total % 100),
            });
            match keep("notifications", &record) {
                Ok(()) => Response::json("200 OK", &json!({ "notified": order["user"] })),
                Err(why) => error("503 Service Unavailable", &why),
            }
        }
    };
    reply.send();
}
