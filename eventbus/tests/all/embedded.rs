//! The embedded log: the conformance body, plus what only it does — torn-tail
//! recovery, segment rolls, retention.

use crate::conformance::{self, Backend};
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weft_eventbus::EventLog;
use weft_eventbus::log::Initial;
use weft_eventbus::log::embedded::{EmbeddedConfig, EmbeddedLog, Limits};

struct Embedded {
    dir: PathBuf,
    config: EmbeddedConfig,
}

impl Backend for Embedded {
    fn open(&self) -> Box<dyn EventLog> {
        Box::new(EmbeddedLog::open(&self.dir, self.config).unwrap())
    }
}

fn small(segment_bytes: u64, retention_bytes: u64) -> EmbeddedConfig {
    EmbeddedConfig {
        limits: Limits { segment_bytes, retention_bytes, retention_age: Duration::from_secs(3600) },
        queue: 1024,
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

async fn read_n(log: &EmbeddedLog, topic: &str, group: &str, n: usize) -> Vec<weft_eventbus::Record> {
    let mut c = log.consumer(topic, group, Initial::Earliest).await.unwrap();
    let mut out = Vec::new();
    loop {
        let got = c.poll(n, Duration::from_millis(200)).await.unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_default_settings() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(&Embedded { dir: dir.path().into(), config: EmbeddedConfig::default() }, "orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_across_many_small_segments() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(&Embedded { dir: dir.path().into(), config: small(100, u64::MAX) }, "orders").await;
    assert!(segments(&dir.path().join("orders")).len() > 50, "rolled often");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        log.ensure_topic("t").await.unwrap();
        log.append("t", vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")]).await.unwrap();
    }
    // A crash in the middle of the next write: half a record at the end.
    let seg = segments(&dir.path().join("t")).pop().unwrap();
    let good_len = std::fs::metadata(&seg).unwrap().len();
    let mut half = Vec::new();
    weft_eventbus::log::embedded::record::encode(&mut half, 2, 0, b"three, never acknowledged");
    std::fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&half[..half.len() / 2]).unwrap();

    let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len, "cut back to the last whole record");
    assert_eq!(log.append("t", vec![Bytes::from_static(b"three")]).await.unwrap(), vec![2]);
    let got = read_n(&log, "t", "g", 10).await;
    let texts: Vec<&[u8]> = got.iter().map(|r| &r.payload[..]).collect();
    assert_eq!(texts, [&b"one"[..], b"two", b"three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_cut_at_recovery() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        log.ensure_topic("t").await.unwrap();
        for i in 0..3 {
            log.append("t", vec![Bytes::from(format!("r{i}"))]).await.unwrap();
        }
    }
    let seg = segments(&dir.path().join("t")).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = bytes.len() / 3; // records are the same size: the 2nd starts here
    bytes[second + 20] ^= 1; // its timestamp
    std::fs::write(&seg, &bytes).unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
    let got = read_n(&log, "t", "g", 10).await;
    assert_eq!(got.len(), 1, "only the record before the damage is kept");
    assert_eq!(&got[0].payload[..], b"r0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_and_groups_move_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small(200, 1000)).unwrap();
    log.ensure_topic("t").await.unwrap();
    for i in 0..100 {
        log.append("t", vec![Bytes::from(format!("{i:060}"))]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // a writer round applies retention
    let total: u64 = segments(&dir.path().join("t")).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert!(total <= 1000 + 200, "kept under the limit plus the active segment: {total}");
    let got = read_n(&log, "t", "new-group", 1000).await;
    assert!(!got.is_empty() && got.len() < 100, "{}", got.len());
    assert_eq!(got.last().unwrap().offset, 99, "the newest records stay");
    assert!(got.windows(2).all(|w| w[1].offset == w[0].offset + 1), "no gap in what is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(
        EmbeddedLog::open(dir.path(), EmbeddedConfig { queue: 1, ..EmbeddedConfig::default() }).unwrap(),
    );
    log.ensure_topic("t").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { log.append("t", vec![Bytes::from(format!("{i}"))]).await }));
    }
    let mut ok = 0;
    let mut full = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.is_retryable() && e.to_string().contains("busy"), "{e}");
                full += 1;
            }
        }
    }
    assert_eq!(ok + full, 64);
    assert!(ok >= 1);
    assert_eq!(read_n(&log, "t", "g", 100).await.len(), ok, "exactly the acknowledged appends are in the log");
}
