//! One dispatcher per Trigger: reads the Broker's log from the trigger's
//! committed position, filters, delivers with bounded in-flight (in log order
//! per key when the trigger is `ordered`), retries by the delivery policy,
//! dead-letters, puts reply events back into the broker, and commits what is
//! done.

mod deliver;
mod progress;

pub use progress::Progress;

use crate::cloudevent::from_record;
use crate::config::TriggerConfig;
use crate::filter::Attributes;
use crate::ingress::IngressError;
use crate::log::{Consumer, EventLog, Record};
use crate::metrics::TriggerMetrics;
use crate::sender::{Sender, Target};
use crate::trace::Traces;
use async_trait::async_trait;
use cloudevents::{AttributesReader, Event};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use weft_crds::eventing::Ordering;

/// How long an idle poll waits for new records.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// Most records taken from the log per poll.
const POLL_MAX: usize = 500;
const LAG_EVERY: Duration = Duration::from_secs(1);

/// Where reply events go: back into a broker's log.
#[async_trait]
pub trait Publish: Send + Sync {
    async fn publish(&self, broker: &str, event: Event) -> Result<(), IngressError>;
}

/// A running trigger's fixed parts.
pub struct Dispatcher {
    /// `namespace/name` of the trigger (metrics, trace, dead-letter attribute).
    pub trigger: String,
    /// `namespace/name` of its broker (replies go there).
    pub broker: String,
    pub topic: String,
    pub config: TriggerConfig,
    pub subscriber: Target,
    pub dead_letter: Option<Target>,
    pub sender: Arc<dyn Sender>,
    pub publish: Arc<dyn Publish>,
    pub log: Arc<dyn EventLog>,
    pub traces: Arc<Traces>,
    /// From `EventbusMetrics::trigger`.
    pub metrics: TriggerMetrics,
}

/// An event read and matched, waiting for or in delivery.
struct Job {
    offset: u64,
    appended_ms: i64,
    event: Event,
}

/// The ordering key: the `partitionkey` extension, else the source.
fn key_of(event: &Event) -> String {
    event.attribute("partitionkey").or_else(|| event.attribute("source")).map(|k| k.into_owned()).unwrap_or_default()
}

impl Dispatcher {
    /// Runs until `shutdown`. Deliveries in progress then stop (their events are
    /// not committed, so they are delivered again after a restart).
    pub async fn run(self: Arc<Self>, consumer: Box<dyn Consumer>, shutdown: CancellationToken) {
        // The log is read by its own task, so a poll is never cut short by a
        // finished delivery (a cancelled poll is safe but costs a re-read).
        let (records_tx, records) = mpsc::channel(POLL_MAX);
        let (commits, commit_rx) = watch::channel(None);
        let reader_stop = CancellationToken::new();
        let reader =
            tokio::spawn(read_loop(consumer, records_tx, commit_rx, reader_stop.clone(), self.trigger.clone()));
        let span = tracing::info_span!("dispatcher", trigger = %self.trigger, broker = %self.broker);
        let mut state = Loop::new(self.clone(), records, commits, shutdown.clone());
        async {
            while !shutdown.is_cancelled() && state.step().await {}
            state.finish().await;
        }
        .instrument(span)
        .await;
        reader_stop.cancel();
        let _ = reader.await;
    }
}

/// Polls the log into `out` (bounded: it waits while the dispatcher is full)
/// and commits what the dispatcher says is done; commits the last word on stop.
async fn read_loop(
    mut consumer: Box<dyn Consumer>,
    out: mpsc::Sender<Record>,
    mut commits: watch::Receiver<Option<u64>>,
    stop: CancellationToken,
    trigger: String,
) {
    let mut committed = None;
    'reading: while !stop.is_cancelled() {
        let room = out.capacity();
        if room == 0 {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = out.reserve() => {}
                _ = commits.changed() => {}
            }
        } else {
            let polled = tokio::select! {
                _ = stop.cancelled() => break,
                r = consumer.poll(room.min(POLL_MAX), POLL_WAIT) => r,
            };
            match polled {
                Ok(records) => {
                    for r in records {
                        if out.send(r).await.is_err() {
                            break 'reading; // the dispatcher stopped
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(%trigger, error = %e, "event log read failed; retrying in 1 s");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        committed = commit(&mut *consumer, &mut commits, committed, &trigger).await;
    }
    commit(&mut *consumer, &mut commits, committed, &trigger).await;
}

/// Commits the dispatcher's latest position if it moved; returns what is committed.
async fn commit(
    consumer: &mut dyn Consumer,
    commits: &mut watch::Receiver<Option<u64>>,
    committed: Option<u64>,
    trigger: &str,
) -> Option<u64> {
    let want = *commits.borrow_and_update();
    match want {
        Some(next) if want != committed => match consumer.commit(next).await {
            Ok(()) => want,
            Err(e) => {
                tracing::warn!(%trigger, error = %e, "commit failed; events may be delivered again");
                committed
            }
        },
        _ => committed,
    }
}

/// The dispatcher's moving parts.
struct Loop {
    d: Arc<Dispatcher>,
    records: mpsc::Receiver<Record>,
    commits: watch::Sender<Option<u64>>,
    shutdown: CancellationToken,
    progress: Progress,
    tasks: JoinSet<(u64, Option<String>, bool)>,
    /// Ordered mode: keys with an event in flight, and what waits behind it.
    waiting: HashMap<String, VecDeque<Job>>,
    queued: usize,
    lag_at: tokio::time::Instant,
}

impl Loop {
    fn new(
        d: Arc<Dispatcher>,
        records: mpsc::Receiver<Record>,
        commits: watch::Sender<Option<u64>>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            d,
            records,
            commits,
            shutdown,
            progress: Progress::default(),
            tasks: JoinSet::new(),
            waiting: HashMap::new(),
            queued: 0,
            lag_at: tokio::time::Instant::now(),
        }
    }

    fn room(&self) -> usize {
        self.d.config.max_in_flight.saturating_sub(self.tasks.len() + self.queued)
    }

    /// One round; false once the reader is gone.
    async fn step(&mut self) -> bool {
        let room = self.room();
        tokio::select! {
            _ = self.shutdown.cancelled() => return true,
            Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.finished(done),
            r = self.records.recv(), if room > 0 => match r {
                Some(r) => {
                    self.accept(r);
                    while self.room() > 0 && let Ok(r) = self.records.try_recv() {
                        self.accept(r);
                    }
                }
                None => return false,
            },
        }
        while let Some(done) = self.tasks.try_join_next() {
            self.finished(done);
        }
        if let Some(next) = self.progress.to_commit() {
            self.commits.send_replace(Some(next));
        }
        self.report_lag().await;
        true
    }

    fn accept(&mut self, r: Record) {
        self.progress.read(r.offset);
        let event = match from_record(&r.payload) {
            Ok(e) => e,
            Err(e) => {
                // Only the ingress writes the log, and it writes valid events:
                // this is damage. Skip it rather than stop the trigger.
                tracing::error!(trigger = %self.d.trigger, offset = r.offset, error = %e, "undecodable record skipped");
                self.progress.done(r.offset);
                return;
            }
        };
        if !self.d.config.filter.matches(&event) {
            self.progress.done(r.offset);
            return;
        }
        let job = Job { offset: r.offset, appended_ms: r.timestamp_ms, event };
        if self.d.config.ordering == Ordering::Unordered {
            return self.start(job, None);
        }
        let key = key_of(&job.event);
        match self.waiting.get_mut(&key) {
            Some(queue) => {
                queue.push_back(job);
                self.queued += 1;
            }
            None => {
                self.waiting.insert(key.clone(), VecDeque::new());
                self.start(job, Some(key));
            }
        }
    }

    fn start(&mut self, job: Job, key: Option<String>) {
        let d = self.d.clone();
        let stop = self.shutdown.clone();
        self.d.metrics.in_flight.inc();
        let span =
            tracing::debug_span!("delivery", trigger = %self.d.trigger, event = %job.event.id(), offset = job.offset);
        self.tasks.spawn(
            async move {
                let completed = deliver::deliver(&d, &job, &stop).await;
                d.metrics.in_flight.dec();
                (job.offset, key, completed)
            }
            .instrument(span),
        );
    }

    fn finished(&mut self, done: Result<(u64, Option<String>, bool), tokio::task::JoinError>) {
        let (offset, key, completed) = match done {
            Ok(x) => x,
            Err(e) => return tracing::error!(trigger = %self.d.trigger, error = %e, "delivery task failed"),
        };
        if completed {
            self.progress.done(offset);
        }
        let Some(key) = key else { return };
        let next = self.waiting.get_mut(&key).and_then(|q| q.pop_front());
        match next {
            Some(job) => {
                self.queued -= 1;
                self.start(job, Some(key));
            }
            None => {
                self.waiting.remove(&key);
            }
        }
    }

    async fn report_lag(&mut self) {
        if self.lag_at.elapsed() < LAG_EVERY {
            return;
        }
        self.lag_at = tokio::time::Instant::now();
        if let (Ok(end), Some(committed)) = (self.d.log.end_offset(&self.d.topic).await, self.progress.committed()) {
            self.d.metrics.lag.set(end.saturating_sub(committed) as i64);
        }
    }

    /// After shutdown: let deliveries notice it, then commit what finished.
    async fn finish(mut self) {
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done);
        }
        if let Some(next) = self.progress.to_commit() {
            self.commits.send_replace(Some(next));
        }
    }
}

#[cfg(test)]
mod tests;
