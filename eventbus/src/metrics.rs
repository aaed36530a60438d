//! `weft_eventbus_*` Prometheus metrics. Labels are bounded: brokers and
//! triggers that exist, and a fixed set of reasons.

use crate::delivery::GiveUp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    /// `namespace/name`
    pub broker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// Empty for `unknown_broker` (the name is the client's, unbounded).
    pub broker: String,
    /// `invalid`, `unknown_broker`, `busy`, `unavailable`, `too_large`
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    /// `namespace/name`
    pub trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLabels {
    pub trigger: String,
    /// `not_retryable` or `retries_exhausted`
    pub reason: &'static str,
}

#[derive(Clone)]
pub struct EventbusMetrics {
    pub ingested: Family<BrokerLabels, Counter>,
    pub rejected: Family<RejectLabels, Counter>,
    pub delivered: Family<TriggerLabels, Counter>,
    pub retried: Family<TriggerLabels, Counter>,
    pub dead_lettered: Family<DeadLabels, Counter>,
    /// Given up and not in any dead-letter sink (none set, or it failed too).
    pub dropped: Family<TriggerLabels, Counter>,
    pub replies: Family<TriggerLabels, Counter>,
    /// From append to the subscriber's 2xx.
    pub latency: Family<TriggerLabels, Histogram>,
    /// Events in the log that the trigger has not committed.
    pub lag: Family<TriggerLabels, Gauge>,
    pub in_flight: Family<TriggerLabels, Gauge>,
}

/// The series of one trigger (handles into the families above).
#[derive(Clone)]
pub struct TriggerMetrics {
    pub delivered: Counter,
    pub retried: Counter,
    pub dead_not_retryable: Counter,
    pub dead_retries_exhausted: Counter,
    pub dropped: Counter,
    pub replies: Counter,
    pub latency: Histogram,
    pub lag: Gauge,
    pub in_flight: Gauge,
}

/// 0.25 ms to ~8 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

impl EventbusMetrics {
    /// Registers under `weft_eventbus_` in `reg` (give it the root registry).
    pub fn register(reg: &mut Registry) -> Self {
        let reg = reg.sub_registry_with_prefix("weft_eventbus");
        let m = Self {
            ingested: Family::default(),
            rejected: Family::default(),
            delivered: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            dropped: Family::default(),
            replies: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            lag: Family::default(),
            in_flight: Family::default(),
        };
        reg.register("ingested", "Events made durable by a broker's ingress", m.ingested.clone());
        reg.register("rejected", "Events refused by a broker's ingress, by reason", m.rejected.clone());
        reg.register("delivered", "Events a subscriber accepted (2xx)", m.delivered.clone());
        reg.register("retried", "Delivery attempts that were retries", m.retried.clone());
        reg.register("dead_lettered", "Events given up on, by reason", m.dead_lettered.clone());
        reg.register("dropped", "Events given up on and not kept by a dead-letter sink", m.dropped.clone());
        reg.register("replies", "Reply events put back into the broker", m.replies.clone());
        reg.register("delivery_latency_seconds", "From append to the subscriber's 2xx", m.latency.clone());
        reg.register("lag", "Events in the log a trigger has not committed", m.lag.clone());
        reg.register("in_flight", "Deliveries in flight (including waiting retries)", m.in_flight.clone());
        m
    }

    /// One trigger's series, looked up once: the dispatcher touches them for
    /// every event, and a family lookup hashes and clones the label each time.
    pub fn trigger(&self, trigger: &str) -> TriggerMetrics {
        let l = TriggerLabels { trigger: trigger.to_string() };
        let dead = |why: GiveUp| {
            self.dead_lettered.get_or_create(&DeadLabels { trigger: trigger.to_string(), reason: why.as_str() }).clone()
        };
        TriggerMetrics {
            delivered: self.delivered.get_or_create(&l).clone(),
            retried: self.retried.get_or_create(&l).clone(),
            dead_not_retryable: dead(GiveUp::NotRetryable),
            dead_retries_exhausted: dead(GiveUp::RetriesExhausted),
            dropped: self.dropped.get_or_create(&l).clone(),
            replies: self.replies.get_or_create(&l).clone(),
            latency: self.latency.get_or_create(&l).clone(),
            lag: self.lag.get_or_create(&l).clone(),
            in_flight: self.in_flight.get_or_create(&l).clone(),
        }
    }

    /// Unregistered metrics, for tests and tools.
    pub fn detached() -> Self {
        Self::register(&mut Registry::default())
    }
}
