//! A consumer of one topic for one group: reads records below the durable
//! offset, segment after segment, each read checked against its checksum.

use super::TopicShared;
use super::record::{Read1, read_one};
use crate::log::{Consumer, LogError, Record};
use async_trait::async_trait;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

/// Where a consumer is in a segment file. No read buffer is kept between
/// polls: bytes past the durable offset may still be being written.
struct Cursor {
    base: u64,
    file: File,
    pos: u64,
}

pub struct EmbeddedConsumer {
    topic: Arc<TopicShared>,
    group: String,
    next: u64,
    cursor: Option<Cursor>,
}

impl EmbeddedConsumer {
    pub fn new(topic: Arc<TopicShared>, group: String, next: u64) -> Self {
        Self { topic, group, next, cursor: None }
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, LogError> {
        let mut durable = self.topic.durable.subscribe();
        let next = self.next;
        if *durable.borrow_and_update() <= next {
            let _ = tokio::time::timeout(wait, durable.wait_for(|d| *d > next)).await;
        }
        let limit = *durable.borrow();
        if limit <= next {
            return Ok(Vec::new());
        }
        let (topic, cursor) = (self.topic.clone(), self.cursor.take());
        let read = tokio::task::spawn_blocking(move || read_batch(&topic, cursor, next, limit, max.max(1))).await;
        let (records, cursor) = read.map_err(|e| LogError::Unavailable(format!("reader task: {e}")))??;
        self.cursor = cursor;
        if let Some(last) = records.last() {
            self.next = last.offset + 1;
        }
        Ok(records)
    }

    async fn commit(&mut self, next: u64) -> Result<(), LogError> {
        self.topic.commit(&self.group, next);
        Ok(())
    }
}

type Batch = (Vec<Record>, Option<Cursor>);

/// Reads records with offsets in `next..limit`, at most `max`.
fn read_batch(
    topic: &TopicShared,
    cursor: Option<Cursor>,
    next: u64,
    limit: u64,
    max: usize,
) -> Result<Batch, LogError> {
    let mut cursor = match cursor {
        Some(c) => c,
        None => match topic.segment_for(next) {
            Some((base, path)) => Cursor { base, file: File::open(path)?, pos: 0 },
            None => return Ok((Vec::new(), None)),
        },
    };
    let mut out = Vec::new();
    let mut want = next;
    while out.len() < max && want < limit {
        cursor.file.seek(SeekFrom::Start(cursor.pos))?;
        let mut r = BufReader::with_capacity(256 << 10, &cursor.file);
        while out.len() < max && want < limit {
            match read_one(&mut r)? {
                Read1::Record(rec, n) => {
                    cursor.pos += n;
                    if rec.offset >= want {
                        want = rec.offset + 1;
                        out.push(rec);
                    }
                }
                Read1::End => break,
                Read1::Torn(why) => {
                    // Below the durable offset every byte was fsynced: this is damage.
                    return Err(LogError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("corrupt record in segment {} at byte {}: {why}", cursor.base, cursor.pos),
                    )));
                }
            }
        }
        if out.len() < max && want < limit {
            // This segment is done; the rest is in the next one.
            match topic.segment_after(cursor.base) {
                Some((base, path)) => cursor = Cursor { base, file: File::open(path)?, pos: 0 },
                None => break,
            }
        }
    }
    Ok((out, Some(cursor)))
}
