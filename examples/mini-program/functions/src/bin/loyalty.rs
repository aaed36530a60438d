//! Trigger subscriber for `order.created`: adds loyalty points (one per whole
//! currency unit spent) to the user's account in the store.

use serde_json::{Value, json};
use shop::{error, keep};
use weft_guest::{Request, Response};

fn main() {
    let req = Request::read();
    let reply = match req.event() {
        None => error("400 Bad Request", "expected an order.created CloudEvent"),
        Some(event) => {
            let order: Value = serde_json::from_slice(&event.data).unwrap_or(Value::Null);
            let points = order["total"].as_i64().unwrap_or(0) / 100;
            let record = json!({ "eventId": event.id, "orderId": order["orderId"], "user": order["user"], "points": points });
            match keep("points", &record) {
                Ok(()) => Response::json("200 OK", &json!({ "points": points })),
                Err(why) => error("503 Service Unavailable", &why),
            }
        }
    };
    reply.send();
}
