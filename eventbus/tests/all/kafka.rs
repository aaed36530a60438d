//! The Kafka backend against a real Kafka-protocol broker (tansu): the same
//! conformance body as the embedded log. "Restart" here is a new client (new
//! producer and consumers); the broker keeps the log and the group offsets.

use crate::conformance::{self, Backend};
use crate::tansu::Tansu;
use weft_eventbus::EventLog;
use weft_eventbus::log::kafka::KafkaLog;

struct Kafka {
    bootstrap: String,
}

impl Backend for Kafka {
    fn open(&self) -> Box<dyn EventLog> {
        let connect = KafkaLog::connect(&self.bootstrap);
        let log = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(connect)).unwrap();
        Box::new(log)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_a_real_kafka_protocol_broker() {
    let broker = Tansu::start();
    conformance::run(&Kafka { bootstrap: broker.bootstrap.clone() }, "weft.default.orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = KafkaLog::connect(&format!("127.0.0.1:{port}")).await.err().expect("no broker there");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("does not answer"), "{err}");
}
