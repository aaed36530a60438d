//! The embedded event log: one directory per topic of checksummed segment
//! files, written by one thread per topic with group commit (see [`writer`]),
//! read by any number of consumers, with committed offsets per consumer group
//! in `offsets.json`.
//!
//! Recovery: opening a topic checks every record and truncates a torn tail (see
//! [`segment::recover`]). Committed offsets are written at most every 200 ms,
//! so after a crash a group may see up to that much again (at least once).
//! Retention deletes the oldest segments by total size and by age; a group whose
//! position was deleted continues at the oldest record left.

mod reader;
pub mod record;
pub mod segment;
mod writer;

use super::{Consumer, EventLog, Initial, LogError, check_name};
use async_trait::async_trait;
use bytes::Bytes;
use reader::EmbeddedConsumer;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
pub use writer::Limits;
use writer::{Append, Writer};

#[derive(Debug, Clone, Copy)]
pub struct EmbeddedConfig {
    pub limits: Limits,
    /// Appends that may wait for the writer; past that, `append` fails with `Full`.
    pub queue: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            limits: Limits {
                segment_bytes: 64 << 20,
                retention_bytes: 1 << 30,
                retention_age: Duration::from_secs(7 * 24 * 3600),
            },
            queue: 8192,
        }
    }
}

/// State of a topic shared by its writer and its consumers.
pub struct TopicShared {
    pub dir: PathBuf,
    /// The offset after the last durable record: readers see records below it.
    pub durable: watch::Sender<u64>,
    /// Base offset and path of each segment, oldest first.
    segments: RwLock<Vec<(u64, PathBuf)>>,
    offsets: Mutex<BTreeMap<String, u64>>,
    offsets_dirty: AtomicBool,
    offsets_write: Mutex<()>,
}

impl TopicShared {
    fn add_segment(&self, base: u64, path: PathBuf) {
        self.segments.write().unwrap_or_else(|e| e.into_inner()).push((base, path));
    }

    fn remove_segment(&self, base: u64) {
        self.segments.write().unwrap_or_else(|e| e.into_inner()).retain(|(b, _)| *b != base);
    }

    /// The segment holding `offset` (or the oldest, if `offset` was deleted by
    /// retention), and the one after a given base.
    fn segment_for(&self, offset: u64) -> Option<(u64, PathBuf)> {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segs.iter().rev().find(|(b, _)| *b <= offset).or(segs.first()).cloned()
    }

    fn segment_after(&self, base: u64) -> Option<(u64, PathBuf)> {
        let segs = self.segments.read().unwrap_or_else(|e| e.into_inner());
        segs.iter().find(|(b, _)| *b > base).cloned()
    }

    /// The group's committed position, and whether the group is new (its
    /// start, set from `initial`, then needs writing before it is relied on).
    fn committed_or(&self, group: &str, initial: Initial) -> (u64, bool) {
        let mut offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = offsets.get(group) {
            return (*o, false);
        }
        let start = match initial {
            Initial::Earliest => 0,
            Initial::Latest => *self.durable.borrow(),
        };
        offsets.insert(group.to_string(), start);
        self.offsets_dirty.store(true, Ordering::Release);
        (start, true)
    }

    fn commit(&self, group: &str, next: u64) {
        self.offsets.lock().unwrap_or_else(|e| e.into_inner()).insert(group.to_string(), next);
        self.offsets_dirty.store(true, Ordering::Release);
    }

    /// Writes the committed offsets if they changed (write, fsync, rename).
    fn flush_offsets(&self) {
        if !self.offsets_dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = self.write_offsets() {
            tracing::warn!(error = %e, dir = %self.dir.display(), "could not write committed offsets; will retry");
            self.offsets_dirty.store(true, Ordering::Release);
        }
    }

    fn write_offsets(&self) -> std::io::Result<()> {
        use std::io::Write;
        // The writer thread and a new consumer group may both write.
        let _one_at_a_time = self.offsets_write.lock().unwrap_or_else(|e| e.into_inner());
        let json = serde_json::to_vec(&*self.offsets.lock().unwrap_or_else(|e| e.into_inner()))?;
        let tmp = self.dir.join("offsets.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join("offsets.json"))
    }
}

struct Topic {
    shared: Arc<TopicShared>,
    tx: Option<SyncSender<Append>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Topic {
    /// Closing the queue lets the writer finish the appends it has and flush
    /// offsets; waiting for it makes a clean shutdown lose nothing.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct EmbeddedLog {
    dir: PathBuf,
    config: EmbeddedConfig,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
}

impl EmbeddedLog {
    /// Opens the log in `dir`, recovering every topic found there.
    pub fn open(dir: impl Into<PathBuf>, config: EmbeddedConfig) -> Result<Self, LogError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let log = Self { dir, config, topics: Mutex::new(HashMap::new()) };
        for entry in std::fs::read_dir(&log.dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str().filter(|n| check_name(n).is_ok())
                && entry.file_type()?.is_dir()
            {
                log.open_topic(name)?;
            }
        }
        Ok(log)
    }

    /// The topics in the log (every one found at open, and made since).
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.topics.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    fn open_topic(&self, name: &str) -> Result<Arc<Topic>, LogError> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(name) {
            return Ok(t.clone());
        }
        let topic = Arc::new(start_topic(&self.dir.join(name), &self.config)?);
        topics.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, LogError> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(name).cloned().ok_or_else(|| LogError::UnknownTopic(name.to_string()))
    }
}

/// Recovers a topic's segments and offsets and starts its writer.
fn start_topic(dir: &Path, config: &EmbeddedConfig) -> Result<Topic, LogError> {
    std::fs::create_dir_all(dir)?;
    let mut segments = Vec::new();
    for (base, path) in segment::list(dir)? {
        segments.push(segment::recover(base, &path)?);
    }
    if segments.is_empty() {
        let base = 0;
        let path = segment::path_of(dir, base);
        segment::open_for_append(&path)?;
        segment::sync_dir(dir)?;
        segments.push(segment::Segment { base, path, len: 0, next: base, last_ts: 0 });
    }
    let next = segments.last().map_or(0, |s| s.next);
    let offsets: BTreeMap<String, u64> = match std::fs::read(dir.join("offsets.json")) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(error = %e, dir = %dir.display(), "committed offsets unreadable; groups start over");
            BTreeMap::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(e.into()),
    };
    let shared = Arc::new(TopicShared {
        dir: dir.to_path_buf(),
        durable: watch::Sender::new(next),
        segments: RwLock::new(segments.iter().map(|s| (s.base, s.path.clone())).collect()),
        offsets: Mutex::new(offsets),
        offsets_dirty: AtomicBool::new(false),
        offsets_write: Mutex::new(()),
    });
    let file = match segments.last() {
        Some(s) => segment::open_for_append(&s.path)?,
        None => return Err(LogError::Unavailable("no segment".into())),
    };
    let writer =
        Writer { shared: shared.clone(), limits: config.limits, segments, file, buf: Vec::new(), chores_at: 0 };
    let (tx, rx) = sync_channel(config.queue);
    let name = format!("weft-log-{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("topic"));
    let thread = std::thread::Builder::new().name(name).spawn(move || writer.run(rx))?;
    Ok(Topic { shared, tx: Some(tx), thread: Some(thread) })
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        check_name(topic)?;
        self.open_topic(topic).map(drop)
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        check_name(topic)?;
        let open = self.topics.lock().unwrap_or_else(|e| e.into_inner()).remove(topic);
        let dir = self.dir.join(topic);
        // Dropping the last handle joins the topic's writer (which flushes
        // offsets), so the folder is removed only once nothing writes to it.
        tokio::task::spawn_blocking(move || {
            drop(open);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LogError::from(e)),
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| LogError::Unavailable(format!("delete topic {topic}: {e}")))?
    }

    async fn append(&self, topic: &str, records: Vec<Bytes>) -> Result<Vec<u64>, LogError> {
        if let Some(r) = records.iter().find(|r| r.len() > record::MAX_PAYLOAD) {
            return Err(LogError::TooLarge(r.len(), record::MAX_PAYLOAD));
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.topic(topic)?;
        let (reply, answer) = oneshot::channel();
        let tx = t.tx.as_ref().ok_or_else(|| LogError::Unavailable("closed".into()))?;
        match tx.try_send(Append { records, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(LogError::Full(self.config.queue)),
            Err(TrySendError::Disconnected(_)) => return Err(LogError::Unavailable("writer stopped".into())),
        }
        answer.await.map_err(|_| LogError::Unavailable("writer stopped".into()))?
    }

    async fn consumer(&self, topic: &str, group: &str, initial: Initial) -> Result<Box<dyn Consumer>, LogError> {
        check_name(group)?;
        let t = self.topic(topic)?;
        let (next, new) = t.shared.committed_or(group, initial);
        if new {
            // A new group's start must survive a crash: with `Latest`, a start
            // lost would move to a later end and skip events sent in between.
            let shared = t.shared.clone();
            tokio::task::spawn_blocking(move || shared.write_offsets())
                .await
                .map_err(|e| LogError::Unavailable(format!("offsets writer: {e}")))??;
        }
        Ok(Box::new(EmbeddedConsumer::new(t.shared.clone(), group.to_string(), next)))
    }

    async fn end_offset(&self, topic: &str) -> Result<u64, LogError> {
        Ok(*self.topic(topic)?.shared.durable.borrow())
    }
}
