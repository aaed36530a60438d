//! `weft_rpc_*`: requests by protocol, function, revision and outcome, frame
//! errors, retries, heartbeats and open connections. Label values are bounded:
//! protocols are the registered codecs, functions and revisions those that
//! exist (empty for a request that resolved to none), outcomes a fixed set.

use crate::metrics::{RequestMetrics, Series, ShardedHistogram};
use crate::proto::Codec;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub protocol: &'static str,
    pub namespace: String,
    pub function: String,
    pub revision: String,
    /// `ok` (the instance answered, whatever it said) or a `Status` name.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: &'static str,
}

impl ProtocolLabels {
    pub fn of(codec: &'static dyn Codec) -> Self {
        Self { protocol: codec.name() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameErrorLabels {
    pub protocol: &'static str,
    /// `malformed` or `unknown_protocol`.
    pub reason: &'static str,
}

/// 0.1 ms to ~13 s: RPC answers are often well under a millisecond.
fn rpc_latency_histogram() -> ShardedHistogram {
    ShardedHistogram::new(exponential_buckets(0.0001, 2.0, 18))
}

#[derive(Clone)]
pub struct RpcMetrics {
    requests: RequestMetrics<RpcLabels>,
    pub frame_errors: Family<FrameErrorLabels, Counter>,
    pub retries: Family<ProtocolLabels, Counter>,
    pub heartbeats: Family<ProtocolLabels, Counter>,
    pub connections: Family<ProtocolLabels, Gauge>,
}

impl RpcMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let reg = registry.sub_registry_with_prefix("weft_rpc");
        let requests = RequestMetrics::register(
            reg,
            "RPC requests, by protocol, function, revision and outcome",
            "Time to the answer, by the same labels",
            rpc_latency_histogram,
        );
        let m = Self {
            requests,
            frame_errors: Family::default(),
            retries: Family::default(),
            heartbeats: Family::default(),
            connections: Family::default(),
        };
        reg.register("frame_errors", "Connections closed for a bad frame, by protocol", m.frame_errors.clone());
        reg.register(
            "retries",
            "Requests sent again after a failed try (never sent, or a method safe to resend)",
            m.retries.clone(),
        );
        reg.register("heartbeats", "Heartbeats answered by the sidecar", m.heartbeats.clone());
        reg.register("connections", "Open client connections, by protocol", m.connections.clone());
        m
    }

    pub(crate) fn series(&self, labels: &RpcLabels) -> Series {
        self.requests.series(labels)
    }
}
