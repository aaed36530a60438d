//! weft's Kafka `EventLog` against raw rdkafka through the same broker, in one
//! run: produce N events (appends of 100, 64 in flight, for weft; a FutureProducer
//! with the same acks=all/idempotence settings for raw), then consume them all
//! (weft's consumer vs a StreamConsumer). Prints events/s and the ratios.

use anyhow::{Result, bail};
use bytes::Bytes;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tokio::time::Instant;
use weft_eventbus::log::kafka::KafkaLog;
use weft_eventbus::{EventLog, Initial};

const BATCH: usize = 100;
const IN_FLIGHT: usize = 64;

fn payload(i: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"specversion":"1.0","id":"e{i}","type":"bench.event","source":"/bench","data":{{"seq":{i},"pad":"{}"}}}}"#,
        "x".repeat(40)
    ))
}

async fn weft_side(bootstrap: &str, topic: &str, n: usize) -> Result<(f64, f64)> {
    let log = KafkaLog::connect(bootstrap).await?;
    log.ensure_topic(topic).await?;
    let start = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(BATCH) {
        let records: Vec<Bytes> = chunk.iter().map(|i| payload(*i)).collect();
        pending.push(log.append(topic, records));
        // As the ingress does: many requests' appends in flight at once.
        if pending.len() >= IN_FLIGHT {
            futures::StreamExt::next(&mut pending).await.transpose()?;
        }
    }
    while let Some(r) = futures::StreamExt::next(&mut pending).await {
        r?;
    }
    let produce = n as f64 / start.elapsed().as_secs_f64();
    let mut c = log.consumer(topic, "bench-weft", Initial::Earliest).await?;
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        let batch = c.poll(1000, Duration::from_secs(10)).await?;
        if batch.is_empty() {
            bail!("weft consumer stalled at {got} of {n}");
        }
        got += batch.len();
    }
    Ok((produce, n as f64 / start.elapsed().as_secs_f64()))
}

async fn raw_side(bootstrap: &str, topic: &str, n: usize) -> Result<(f64, f64)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()?;
    KafkaLog::connect(bootstrap).await?.ensure_topic(topic).await?; // topic creation only
    let start = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for i in 0..n {
        let p = payload(i);
        let rec = FutureRecord::<(), [u8]>::to(topic).partition(0).payload(&p[..]);
        match producer.send_result(rec) {
            Ok(f) => pending.push(f),
            Err((e, _)) => bail!("raw produce: {e}"),
        }
    }
    for f in pending {
        f.await?.map_err(|(e, _)| e)?;
    }
    let produce = n as f64 / start.elapsed().as_secs_f64();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let consume = async {
        for _ in 0..n {
            let m = consumer.recv().await?;
            let _ = rdkafka::Message::payload(&m).map(<[u8]>::len);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), consume).await??;
    Ok((produce, n as f64 / start.elapsed().as_secs_f64()))
}

pub async fn run(bootstrap: &str, n: usize) -> Result<()> {
    let stamp = std::process::id();
    // Raw first, then weft, then raw again: drift shows as a spread in raw.
    let raw1 = raw_side(bootstrap, &format!("bench-raw-a-{stamp}"), n).await?;
    let weft = weft_side(bootstrap, &format!("bench-weft-{stamp}"), n).await?;
    let raw2 = raw_side(bootstrap, &format!("bench-raw-b-{stamp}"), n).await?;
    let raw = ((raw1.0 + raw2.0) / 2.0, (raw1.1 + raw2.1) / 2.0);
    println!(
        "raw rdkafka   produce {:>9.0}/s ({:.0}, {:.0})  consume {:>9.0}/s ({:.0}, {:.0})",
        raw.0, raw1.0, raw2.0, raw.1, raw1.1, raw2.1
    );
    println!("weft KafkaLog produce {:>9.0}/s  consume {:>9.0}/s", weft.0, weft.1);
    println!("ratio weft/raw  produce {:.2}  consume {:.2}", weft.0 / raw.0, weft.1 / raw.1);
    Ok(())
}
