//! The failing subscriber: forwards `order.created` to an audit backend that
//! is down, so every delivery fails with 503. The broker retries each event
//! by its Trigger's policy, then hands it to the dead-letter sink.

use shop::error;
use weft_guest::Request;

fn main() {
    let req = Request::read();
    let id = req.event().map(|e| e.id).unwrap_or_default();
    error("503 Service Unavailable", &format!("audit backend unavailable; order {id} not audited")).send();
}
