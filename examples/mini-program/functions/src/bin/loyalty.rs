//! Trigger subscriber for `order.created`: adds loyalty points (one per whole
//! currency unit spent) to the user's account in the store.

use serde_json::json;
use shop::{keep_and_answer, order_event};
use weft_guest::Request;

fn main() {
    let reply = match order_event(&Request::read()) {
        Err(refused) => refused,
        Ok((event, order)) => {
            let points = order["total"].as_i64().unwrap_or(0) / 100;
            let record = json!({ "eventId": event.id, "orderId": order["orderId"], "user": order["user"], "points": points });
            keep_and_answer("points", &record, &json!({ "points": points }))
        }
    };
    reply.send();
}
