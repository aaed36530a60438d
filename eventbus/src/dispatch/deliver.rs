//! Delivering one event: attempts by the delivery policy, then the dead-letter
//! sink; the trace and metrics of each step; the reply back into the broker.

use super::{Dispatcher, Job};
use crate::delivery::{Attempt, GiveUp, Next};
use crate::filter::Attributes;
use crate::sender::{Sent, Target};
use crate::trace::AttemptTrace;
use cloudevents::{AttributesReader, Event};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Extension attributes set on a dead-lettered event, saying why.
pub const DEAD_REASON: &str = "deadletterreason";
pub const DEAD_STATUS: &str = "deadletterstatus";
pub const DEAD_ATTEMPTS: &str = "deadletterattempts";
pub const DEAD_TRIGGER: &str = "deadlettertrigger";
pub const DEAD_DETAIL: &str = "deadletterdetail";

/// The result of a series of attempts at one target.
enum Tried {
    Done(Sent),
    GaveUp {
        why: GiveUp,
        last: Sent,
        attempts: u32,
    },
    /// Shut down before an answer: not finished, delivered again after restart.
    Stopped,
}

/// Delivers `job`; false if it stopped on shutdown before finishing.
pub(super) async fn deliver(d: &Dispatcher, job: &Job, stop: &CancellationToken) -> bool {
    if stop.is_cancelled() {
        return false;
    }
    let id = job.event.id().to_string();
    d.traces.trigger(&id, &d.trigger, |t| t.subscriber = d.subscriber.display());
    match attempts(d, &d.subscriber, &job.event, "subscriber", stop).await {
        Tried::Stopped => false,
        Tried::Done(sent) => {
            d.metrics.delivered.inc();
            let age = jiff::Timestamp::now().as_millisecond() - job.appended_ms;
            d.metrics.latency.observe(age.max(0) as f64 / 1000.0);
            d.traces.trigger(&id, &d.trigger, |t| t.outcome = Some("delivered".into()));
            if let Some(reply) = sent.reply {
                reply_to_broker(d, reply, stop).await;
            }
            true
        }
        Tried::GaveUp { why, last, attempts } => {
            dead_letter(d, job, why, &last, attempts, stop).await;
            true
        }
    }
}

/// Attempts at `target` until success, giving up, or shutdown.
async fn attempts(d: &Dispatcher, target: &Target, event: &Event, to: &'static str, stop: &CancellationToken) -> Tried {
    let policy = &d.config.policy;
    let id = event.id();
    let mut n = 0;
    loop {
        n += 1;
        if n > 1 {
            d.metrics.retried.inc();
        }
        let started = tokio::time::Instant::now();
        let sent = tokio::select! {
            _ = stop.cancelled() => return Tried::Stopped,
            s = d.sender.send(target, event, policy.timeout) => s,
        };
        d.traces.attempt(id, &d.trigger, attempt_trace(&sent, started.elapsed(), to));
        match policy.next(n, sent.attempt) {
            Next::Done => return Tried::Done(sent),
            Next::DeadLetter(why) => return Tried::GaveUp { why, last: sent, attempts: n },
            Next::RetryAfter(wait) => {
                tracing::debug!(trigger = %d.trigger, event = %id, attempt = n, ?wait, detail = ?sent.detail, "retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Tried::Stopped,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

fn attempt_trace(sent: &Sent, took: Duration, to: &'static str) -> AttemptTrace {
    let (status, error) = match sent.attempt {
        Attempt::Status { code, .. } => (Some(code), sent.detail.clone()),
        Attempt::Timeout => (None, Some("timeout".into())),
        Attempt::ConnectionError => (None, sent.detail.clone().or(Some("connection error".into()))),
    };
    AttemptTrace { at: crate::trace::Millis(0), status, error, latency_ms: took.as_secs_f64() * 1000.0, to }
}

fn status_of(a: Attempt) -> String {
    match a {
        Attempt::Status { code, .. } => code.to_string(),
        Attempt::Timeout => "timeout".into(),
        Attempt::ConnectionError => "connection-error".into(),
    }
}

/// The event as sent to the dead-letter sink: unchanged, plus why.
pub fn dead_letter_event(event: &Event, trigger: &str, why: GiveUp, last: &Sent, attempts: u32) -> Event {
    let mut e = event.clone();
    e.set_extension(DEAD_REASON, why.as_str().replace('_', "-"));
    e.set_extension(DEAD_STATUS, status_of(last.attempt));
    e.set_extension(DEAD_ATTEMPTS, i64::from(attempts));
    e.set_extension(DEAD_TRIGGER, trigger.to_string());
    if let Some(detail) = &last.detail {
        // Header values must be visible ASCII; keep it short.
        let clean: String = detail.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect();
        e.set_extension(DEAD_DETAIL, clean);
    }
    e
}

async fn dead_letter(
    d: &Dispatcher,
    job: &Job,
    why: GiveUp,
    last: &Sent,
    attempts_made: u32,
    stop: &CancellationToken,
) {
    let id = job.event.id().to_string();
    let reason = why.as_str();
    match why {
        GiveUp::NotRetryable => d.metrics.dead_not_retryable.inc(),
        GiveUp::RetriesExhausted => d.metrics.dead_retries_exhausted.inc(),
    };
    let detail = format!("{reason} after {attempts_made} attempt(s), last {}", status_of(last.attempt));
    let Some(sink) = &d.dead_letter else {
        tracing::warn!(trigger = %d.trigger, event = %id, %detail, "delivery given up and no deadLetterSink: event dropped");
        d.metrics.dropped.inc();
        return d.traces.trigger(&id, &d.trigger, |t| {
            t.outcome = Some("dropped".into());
            t.detail = Some(format!("{detail}; no deadLetterSink"));
        });
    };
    let event = dead_letter_event(&job.event, &d.trigger, why, last, attempts_made);
    let outcome = match attempts(d, sink, &event, "dead-letter", stop).await {
        Tried::Done(_) => ("dead-lettered", detail),
        Tried::Stopped => return,
        Tried::GaveUp { last, .. } => {
            d.metrics.dropped.inc();
            let why = format!("{detail}; the deadLetterSink failed too ({})", status_of(last.attempt));
            tracing::error!(trigger = %d.trigger, event = %id, %why, "event dropped");
            ("dropped", why)
        }
    };
    d.traces.trigger(&id, &d.trigger, |t| {
        t.outcome = Some(outcome.0.into());
        t.detail = Some(outcome.1);
    });
}

/// Puts a reply event into the trigger's broker, retrying while the log is
/// busy (a reply is an event like any other: it must not be lost).
async fn reply_to_broker(d: &Dispatcher, reply: Event, stop: &CancellationToken) {
    let mut wait = Duration::from_millis(50);
    loop {
        match d.publish.publish(&d.broker, reply.clone()).await {
            Ok(()) => {
                d.metrics.replies.inc();
                return;
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(trigger = %d.trigger, error = %e, "reply not stored yet; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => wait = (wait * 2).min(Duration::from_secs(2)),
                }
            }
            Err(e) => {
                let id = reply.attribute("id").map(|s| s.into_owned()).unwrap_or_default();
                return tracing::error!(trigger = %d.trigger, reply = %id, error = %e, "reply event refused by the broker");
            }
        }
    }
}
