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
use crate::log::{Consumer, EventLog, LogError, Record};
use crate::metrics::{EventbusMetrics, TriggerLabels};
use crate::sender::{Sender, Target};
use crate::trace::Traces;
use async_trait::async_trait;
use cloudevents::Event;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weft_crds::eventing::Ordering;

/// How long an idle poll waits for new records.
const POLL_WAIT: Duration = Duration::from_millis(200);
/// Most records taken from the log per poll.
const POLL_MAX: usize = 500;
const LAG_EVERY: Duration = Duration::from_secs(1);

/// Where reply events go: back into a broker's log.
#[async_trait]
pub trait Publish: Send + Sync {
    async fn publish(&self, broker: &str, event: Event) -> Result<(), LogError>;
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
    pub metrics: EventbusMetrics,
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
    fn labels(&self) -> TriggerLabels {
        TriggerLabels { trigger: self.trigger.clone() }
    }

    /// Runs until `shutdown`. Deliveries in progress then stop (their events are
    /// not committed, so they are delivered again after a restart).
    pub async fn run(self: Arc<Self>, consumer: Box<dyn Consumer>, shutdown: CancellationToken) {
        let span = tracing::info_span!("dispatcher", trigger = %self.trigger, broker = %self.broker);
        let _g = span.enter();
        drop(_g);
        let mut state = Loop::new(self.clone(), consumer, shutdown.clone());
        while !shutdown.is_cancelled() {
            if let Err(e) = state.step().await {
                tracing::error!(trigger = %self.trigger, error = %e, "event log read failed; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        state.finish().await;
    }
}

/// The dispatcher's moving parts.
struct Loop {
    d: Arc<Dispatcher>,
    consumer: Box<dyn Consumer>,
    shutdown: CancellationToken,
    progress: Progress,
    tasks: JoinSet<(u64, Option<String>, bool)>,
    /// Ordered mode: keys with an event in flight, and what waits behind it.
    waiting: HashMap<String, VecDeque<Job>>,
    queued: usize,
    lag_at: tokio::time::Instant,
}

impl Loop {
    fn new(d: Arc<Dispatcher>, consumer: Box<dyn Consumer>, shutdown: CancellationToken) -> Self {
        Self {
            d,
            consumer,
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

    async fn step(&mut self) -> Result<(), LogError> {
        let room = self.room();
        tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.finished(done),
            polled = self.consumer.poll(room.min(POLL_MAX), POLL_WAIT), if room > 0 => {
                for r in polled? {
                    self.accept(r);
                }
            }
        }
        while let Some(done) = self.tasks.try_join_next() {
            self.finished(done);
        }
        if let Some(next) = self.progress.to_commit() {
            self.consumer.commit(next).await?;
        }
        self.report_lag().await;
        Ok(())
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
        self.d.metrics.in_flight.get_or_create(&self.d.labels()).inc();
        self.tasks.spawn(async move {
            let completed = deliver::deliver(&d, &job, &stop).await;
            d.metrics.in_flight.get_or_create(&d.labels()).dec();
            (job.offset, key, completed)
        });
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
            self.d.metrics.lag.get_or_create(&self.d.labels()).set(end.saturating_sub(committed) as i64);
        }
    }

    /// After shutdown: let deliveries notice it, then commit what finished.
    async fn finish(mut self) {
        while let Some(done) = self.tasks.join_next().await {
            self.finished(done);
        }
        if let Some(next) = self.progress.to_commit()
            && let Err(e) = self.consumer.commit(next).await
        {
            tracing::warn!(trigger = %self.d.trigger, error = %e, "final commit failed; events will be delivered again");
        }
    }
}

#[cfg(test)]
mod tests;
