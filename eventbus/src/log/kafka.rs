//! The Kafka `EventLog`, through rdkafka: a topic per broker (one partition,
//! so the log order is the order triggers see), a consumer group per trigger
//! with offsets committed to Kafka, and an idempotent producer with
//! `acks=all`, so an append returns only once the in-sync replicas have it.
//!
//! Differences from the embedded log, by Kafka's nature:
//! - An append of several records is not atomic (no transactions: tansu, the
//!   test broker, has none); on error some may be stored, and a producer's
//!   retry then makes duplicates — delivery is at least once either way.
//! - Retention is the topic's (`retention.ms` / `retention.bytes` on the broker).

use super::{Consumer, EventLog, Initial, LogError, Record, check_name};
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

const PARTITION: i32 = 0;
const META_TIMEOUT: Duration = Duration::from_secs(5);

pub struct KafkaLog {
    bootstrap: String,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// For metadata calls (watermarks); never subscribes.
    meta: Arc<BaseConsumer>,
    /// Topics seen to exist: an append to any other is checked first, as the
    /// producer would otherwise wait for it until the message times out.
    known: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("kafka: {e}"))
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("client.id", "weft");
    c
}

impl KafkaLog {
    /// Connects and checks that the cluster answers.
    pub async fn connect(bootstrap: &str) -> Result<Self, LogError> {
        let producer: FutureProducer = base_config(bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .set("message.timeout.ms", "30000")
            .set("queue.buffering.max.messages", "200000")
            .create()
            .map_err(unavailable)?;
        let admin = base_config(bootstrap).create().map_err(unavailable)?;
        let meta: BaseConsumer =
            base_config(bootstrap).set("group.id", "weft-metadata").create().map_err(unavailable)?;
        let meta = Arc::new(meta);
        let probe = meta.clone();
        tokio::task::spawn_blocking(move || probe.fetch_metadata(None, META_TIMEOUT))
            .await
            .map_err(unavailable)?
            .map_err(|e| unavailable(format!("{bootstrap} does not answer: {e}")))?;
        Ok(Self { bootstrap: bootstrap.to_string(), producer, admin, meta, known: Default::default() })
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        check_name(topic)?;
        // Reconciles call this often; only the first call per topic asks Kafka.
        if self.is_known(topic) {
            return Ok(());
        }
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(META_TIMEOUT));
        let results = self.admin.create_topics([&new], &opts).await.map_err(unavailable)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(unavailable(format!("create topic {t}: {code}"))),
            }
        }
        self.remember(topic);
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        check_name(topic)?;
        self.known.lock().unwrap_or_else(|e| e.into_inner()).remove(topic);
        let opts = AdminOptions::new().operation_timeout(Some(META_TIMEOUT));
        let results = self.admin.delete_topics(&[topic], &opts).await.map_err(unavailable)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, code)) => return Err(unavailable(format!("delete topic {t}: {code}"))),
            }
        }
        Ok(())
    }

    async fn append(&self, topic: &str, records: Vec<Bytes>) -> Result<Vec<u64>, LogError> {
        self.check_exists(topic).await?;
        // Enqueue all first (in order: the idempotent producer keeps it), then wait.
        let mut pending = Vec::with_capacity(records.len());
        for payload in &records {
            let rec = FutureRecord::<(), [u8]>::to(topic).partition(PARTITION).payload(&payload[..]);
            match self.producer.send_result(rec) {
                Ok(f) => pending.push(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(LogError::Full(pending.len()));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    return Err(LogError::TooLarge(payload.len(), 1 << 20));
                }
                Err((e, _)) => return Err(unavailable(e)),
            }
        }
        let mut offsets = Vec::with_capacity(pending.len());
        for f in pending {
            match f.await {
                Ok(Ok(d)) => offsets.push(d.offset as u64),
                Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition), _))) => {
                    return Err(LogError::UnknownTopic(topic.to_string()));
                }
                Ok(Err((e, _))) => return Err(unavailable(e)),
                Err(_) => return Err(unavailable("producer closed")),
            }
        }
        Ok(offsets)
    }

    async fn consumer(&self, topic: &str, group: &str, initial: Initial) -> Result<Box<dyn Consumer>, LogError> {
        check_name(group)?;
        let consumer: StreamConsumer = base_config(&self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_uncommitted")
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(unavailable)?;
        let consumer = Arc::new(consumer);
        let (c, meta, t, b) = (consumer.clone(), self.meta.clone(), topic.to_string(), self.bootstrap.clone());
        let start = tokio::task::spawn_blocking(move || start_position(&c, &meta, &b, &t, initial))
            .await
            .map_err(unavailable)??;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, PARTITION, start).map_err(unavailable)?;
        consumer.assign(&tpl).map_err(unavailable)?;
        let next = match start {
            Offset::Offset(o) => o.max(0) as u64,
            _ => 0,
        };
        Ok(Box::new(KafkaConsumer { consumer, topic: topic.to_string(), next }))
    }

    /// The broker's high watermark. (tansu reports the start of the last batch
    /// instead, so there the lag metric can be short by up to one batch.)
    async fn end_offset(&self, topic: &str) -> Result<u64, LogError> {
        let (meta, t) = (self.meta.clone(), topic.to_string());
        let (_, high) = tokio::task::spawn_blocking(move || meta.fetch_watermarks(&t, PARTITION, META_TIMEOUT))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(high.max(0) as u64)
    }
}

impl KafkaLog {
    fn is_known(&self, topic: &str) -> bool {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).contains(topic)
    }

    fn remember(&self, topic: &str) {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(topic.to_string());
    }

    async fn check_exists(&self, topic: &str) -> Result<(), LogError> {
        if self.is_known(topic) {
            return Ok(());
        }
        let (meta, t) = (self.meta.clone(), topic.to_string());
        let md = tokio::task::spawn_blocking(move || meta.fetch_metadata(Some(&t), META_TIMEOUT))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        let exists = md.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Err(LogError::UnknownTopic(topic.to_string()));
        }
        self.remember(topic);
        Ok(())
    }
}

/// The group's committed offset, or (for a new group) `initial`, committed now.
fn start_position(
    c: &StreamConsumer,
    meta: &BaseConsumer,
    bootstrap: &str,
    topic: &str,
    initial: Initial,
) -> Result<Offset, LogError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, PARTITION);
    let committed = c.committed_offsets(tpl, META_TIMEOUT).map_err(unavailable)?;
    let offset = committed.find_partition(topic, PARTITION).map(|p| p.offset());
    if let Some(Offset::Offset(o)) = offset {
        return Ok(Offset::Offset(o));
    }
    let start = match initial {
        Initial::Earliest => meta.fetch_watermarks(topic, PARTITION, META_TIMEOUT).map_err(unavailable)?.0,
        Initial::Latest => {
            let high = meta.fetch_watermarks(topic, PARTITION, META_TIMEOUT).map_err(unavailable)?.1;
            end_from(bootstrap, topic, high)?
        }
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, PARTITION, Offset::Offset(start)).map_err(unavailable)?;
    c.commit(&tpl, CommitMode::Sync).map_err(unavailable)?;
    Ok(Offset::Offset(start))
}

/// The end of the log, read forward from a reported high watermark: some
/// Kafka-protocol brokers (tansu) report the start of the last batch instead,
/// and a new `latest` group must not replay that batch. On Kafka the scan
/// finds nothing and costs one short poll.
fn end_from(bootstrap: &str, topic: &str, high: i64) -> Result<i64, LogError> {
    let scan: BaseConsumer = base_config(bootstrap)
        .set("group.id", "weft-end-scan")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(unavailable)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, PARTITION, Offset::Offset(high)).map_err(unavailable)?;
    scan.assign(&tpl).map_err(unavailable)?;
    let mut end = high;
    while let Some(m) = scan.poll(Duration::from_millis(300)) {
        end = end.max(m.map_err(unavailable)?.offset() + 1);
    }
    Ok(end)
}

struct KafkaConsumer {
    consumer: Arc<StreamConsumer>,
    topic: String,
    /// One past the last offset returned: a record below it is a replay by the
    /// broker (tansu can return a batch again) and is dropped.
    next: u64,
}

impl KafkaConsumer {
    fn keep(&mut self, m: &rdkafka::message::BorrowedMessage<'_>, out: &mut Vec<Record>) {
        let r = to_record(m);
        if r.offset >= self.next {
            self.next = r.offset + 1;
            out.push(r);
        }
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, LogError> {
        let mut out = Vec::new();
        let consumer = self.consumer.clone();
        // recv() is cancel-safe: an undelivered message stays in the queue.
        let first = match tokio::time::timeout(wait, consumer.recv()).await {
            Err(_) => return Ok(out),
            Ok(m) => m.map_err(unavailable)?,
        };
        self.keep(&first, &mut out);
        while out.len() < max {
            match futures::FutureExt::now_or_never(consumer.recv()) {
                Some(Ok(m)) => self.keep(&m, &mut out),
                Some(Err(e)) => return Err(unavailable(e)),
                None => break,
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, next: u64) -> Result<(), LogError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, PARTITION, Offset::Offset(next as i64)).map_err(unavailable)?;
        // Async: a lost commit only means a re-delivery (at least once).
        self.consumer.commit(&tpl, CommitMode::Async).map_err(unavailable)
    }
}

fn to_record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    Record {
        offset: m.offset().max(0) as u64,
        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
        payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
    }
}
