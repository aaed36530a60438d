//! The `EventLog` seam: what a broker keeps its events in.
//!
//! A topic is an ordered log of opaque records (a broker's events, encoded by
//! the caller). `append` returns only once the records are durable, so a 202
//! means the event survives a crash. Each consumer group (one per trigger)
//! reads from its committed position; what it has not committed it reads again
//! after a restart (at least once).

pub mod embedded;
pub mod kafka;

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

/// One record of a topic, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    /// When it was appended, Unix milliseconds.
    pub timestamp_ms: i64,
    pub payload: Bytes,
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Initial {
    /// The oldest record kept.
    #[default]
    Earliest,
    /// The next record appended (Knative's default for a new Trigger).
    Latest,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Too many appends are waiting: the caller should retry later (a 503).
    #[error("the event log is busy: {0} appends are waiting; retry later")]
    Full(usize),
    /// The log cannot take writes now (disk full, broker down, closed).
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    #[error("no topic {0:?}")]
    UnknownTopic(String),
    #[error("bad topic or group name {0:?}: use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error("record of {0} bytes is over the limit of {1}")]
    TooLarge(usize, usize),
    #[error("event log I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl LogError {
    /// Whether the same call may succeed later (the ingress answers 503 + Retry-After).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Full(_) | Self::Unavailable(_) | Self::Io(_))
    }
}

#[async_trait]
pub trait EventLog: Send + Sync {
    /// Creates `topic` if it does not exist.
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError>;

    /// Appends `records` to `topic` in order and returns their offsets once all
    /// are durable. Either every record is appended or the call fails.
    async fn append(&self, topic: &str, records: Vec<Bytes>) -> Result<Vec<u64>, LogError>;

    /// A reader of `topic` for consumer group `group`, starting at the group's
    /// committed position. A group with none starts where `initial` says, and
    /// that position is committed at once (so a restart does not move it).
    async fn consumer(&self, topic: &str, group: &str, initial: Initial) -> Result<Box<dyn Consumer>, LogError>;

    /// The offset the next appended record will get (so `end - committed` is a
    /// group's lag).
    async fn end_offset(&self, topic: &str) -> Result<u64, LogError>;

    /// Deletes `topic`, its records and its groups' offsets (a deleted
    /// Broker's log). A topic that does not exist is already deleted: `Ok`.
    /// Callers stop the topic's consumers first.
    async fn delete_topic(&self, topic: &str) -> Result<(), LogError>;
}

#[async_trait]
pub trait Consumer: Send {
    /// The records after the last one returned, up to `max`, waiting up to
    /// `wait` for the first; empty if none came. Cancel-safe: a poll dropped
    /// before it returns loses no record (the next poll returns them).
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, LogError>;

    /// Every record before offset `next` is done for this group: after a
    /// restart the group starts at `next`.
    async fn commit(&mut self, next: u64) -> Result<(), LogError>;
}

/// Topic and group names become file names and Kafka names: keep them plain.
pub fn check_name(name: &str) -> Result<(), LogError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(LogError::BadName(name.to_string())) }
}
