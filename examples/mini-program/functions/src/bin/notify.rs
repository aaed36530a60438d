//! Trigger subscriber for `order.created`: records a notification for the
//! user in the store. A failed write answers 503, so the broker retries.

use serde_json::json;
use shop::{keep_and_answer, order_event};
use weft_guest::Request;

fn main() {
    let reply = match order_event(&Request::read()) {
        Err(refused) => refused,
        Ok((event, order)) => {
            let total = order["total"].as_i64().unwrap_or(0);
            let record = json!({
                "eventId": event.id, "orderId": order["orderId"], "user": order["user"],
                "message": format!("Order {} confirmed: {}.{:02} total", event.id, total / 100, total % 100),
            });
            keep_and_answer("notifications", &record, &json!({ "notified": order["user"] }))
        }
    };
    reply.send();
}
