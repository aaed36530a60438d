//! The writer of one topic: a thread that owns the active segment.
//!
//! Group commit: the thread takes every append waiting, writes them in one
//! `write`, and makes them durable with one `fdatasync`; appends that arrive
//! meanwhile wait for the next round. So durability costs one fsync per round,
//! not per event, and a round is as large as the load makes it. Only after the
//! fsync are the records visible to readers and their appends answered.
//!
//! The same thread rolls segments and, at most every [`FLUSH_EVERY`] (and
//! retention also after each roll), applies retention and flushes committed
//! group offsets — not after every round, so a busy log does not pay an extra
//! fsync for offsets per round.

use super::TopicShared;
use super::record::encode;
use super::segment::{self, Segment};
use crate::log::LogError;
use bytes::Bytes;
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// How often committed offsets are written out (when they changed).
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Appends written in one round at most.
const MAX_ROUND: usize = 4096;

pub struct Append {
    pub records: Vec<Bytes>,
    pub reply: oneshot::Sender<Result<Vec<u64>, LogError>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub segment_bytes: u64,
    pub retention_bytes: u64,
    pub retention_age: Duration,
}

pub struct Writer {
    pub shared: Arc<TopicShared>,
    pub limits: Limits,
    /// Oldest first; the last one is active.
    pub segments: Vec<Segment>,
    pub file: File,
    pub buf: Vec<u8>,
    /// When retention and the offset flush last ran, Unix ms.
    pub chores_at: i64,
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Append>) {
        loop {
            let first = match rx.recv_timeout(FLUSH_EVERY) {
                Ok(a) => Some(a),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut round: Vec<Append> = first.into_iter().collect();
            while round.len() < MAX_ROUND {
                match rx.try_recv() {
                    Ok(a) => round.push(a),
                    Err(_) => break,
                }
            }
            if !round.is_empty() {
                self.write_round(round);
            }
            let now = now_ms();
            if now - self.chores_at >= FLUSH_EVERY.as_millis() as i64 {
                self.chores_at = now;
                self.shared.flush_offsets();
                self.apply_retention(now);
            }
        }
        self.shared.flush_offsets();
    }

    fn write_round(&mut self, round: Vec<Append>) {
        let ts = now_ms();
        let active = self.active();
        let (start_len, start_next) = (active.len, active.next);
        self.buf.clear();
        let mut next = start_next;
        let mut offsets = Vec::with_capacity(round.len());
        for a in &round {
            let ids: Vec<u64> = (next..next + a.records.len() as u64).collect();
            for (r, id) in a.records.iter().zip(&ids) {
                encode(&mut self.buf, *id, ts, r);
            }
            next += a.records.len() as u64;
            offsets.push(ids);
        }
        let written = self.file.write_all(&self.buf).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut back to the last durable record so the file stays a valid log.
            if let Err(e2) = self.file.set_len(start_len) {
                tracing::error!(error = %e2, "could not cut a failed write back");
            }
            tracing::error!(error = %e, "event log write failed");
            for a in round {
                let _ = a.reply.send(Err(LogError::Unavailable(format!("write failed: {e}"))));
            }
            return;
        }
        let len = start_len + self.buf.len() as u64;
        let active = self.active_mut();
        (active.len, active.next, active.last_ts) = (len, next, ts);
        self.shared.durable.send_replace(next);
        for (a, ids) in round.into_iter().zip(offsets) {
            let _ = a.reply.send(Ok(ids));
        }
        if self.active().len >= self.limits.segment_bytes {
            self.roll();
        }
    }

    /// Starts a new active segment at the next offset.
    fn roll(&mut self) {
        let next = self.active().next;
        let path = segment::path_of(&self.shared.dir, next);
        let opened = segment::open_for_append(&path).and_then(|f| segment::sync_dir(&self.shared.dir).map(|()| f));
        match opened {
            Ok(f) => {
                self.file = f;
                self.segments.push(Segment { base: next, path: path.clone(), len: 0, next, last_ts: 0 });
                self.shared.add_segment(next, path);
                self.apply_retention(now_ms());
            }
            // Keep appending to the current one; a later round tries again.
            Err(e) => tracing::error!(error = %e, "could not roll the event log segment"),
        }
    }

    /// Deletes the oldest closed segments while the topic is over its size
    /// or they are older than the retention age. The active one always stays.
    fn apply_retention(&mut self, now: i64) {
        let age_ms = self.limits.retention_age.as_millis() as i64;
        while self.segments.len() > 1 {
            let total: u64 = self.segments.iter().map(|s| s.len).sum();
            let oldest = &self.segments[0];
            if total <= self.limits.retention_bytes && now - oldest.last_ts <= age_ms {
                break;
            }
            tracing::info!(segment = %oldest.path.display(), total_bytes = total, "event log retention: segment deleted");
            self.shared.remove_segment(oldest.base);
            if let Err(e) = std::fs::remove_file(&oldest.path) {
                tracing::warn!(error = %e, "delete segment");
            }
            self.segments.remove(0);
        }
    }

    fn active(&self) -> &Segment {
        // Never empty: `open` creates the first segment.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let i = self.segments.len() - 1;
        &mut self.segments[i]
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
