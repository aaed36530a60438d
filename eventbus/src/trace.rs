//! Where each event went: a per-event record (ingested, which triggers matched,
//! every attempt with status and latency, the outcome), kept in memory for a
//! bounded time and count. `weft events trace <id>` reads it.
//!
//! It is a debugging aid, not the source of truth (the log is): records are
//! not kept across a restart.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Attempts kept per trigger and event; later ones are counted, not kept.
const MAX_ATTEMPTS: usize = 32;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventTrace {
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub broker: String,
    /// Each append of an event with this id (a producer's retry appends again).
    pub ingested: Vec<Ingest>,
    /// By trigger (`namespace/name`); a list, shown as a map: a trace has one
    /// or two entries, and a map node would allocate room for eleven.
    #[serde(serialize_with = "as_map")]
    pub triggers: Vec<(String, TriggerTrace)>,
}

impl EventTrace {
    pub fn trigger(&self, name: &str) -> Option<&TriggerTrace> {
        self.triggers.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

fn as_map<S: serde::Serializer>(v: &[(String, TriggerTrace)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, t)| (k, t)))
}

/// A time as Unix milliseconds, shown as RFC 3339 (kept as a number: a
/// string per attempt was most of a trace's memory).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Millis(pub i64);

impl Serialize for Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => s.collect_str(&t),
            Err(_) => s.serialize_i64(self.0),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ingest {
    pub at: Millis,
    pub offset: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TriggerTrace {
    pub subscriber: String,
    pub attempts: Vec<AttemptTrace>,
    /// Attempts beyond those kept.
    #[serde(skip_serializing_if = "is_zero")]
    pub more_attempts: u32,
    /// `delivered`, `dead-lettered`, `dropped`; absent while in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttemptTrace {
    pub at: Millis,
    /// HTTP status, or absent for a timeout / connection error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: f64,
    /// `subscriber` or `dead-letter`.
    pub to: &'static str,
}

pub struct Traces {
    inner: Mutex<Inner>,
    retention: Duration,
    max_events: usize,
}

/// Sized for the bound up front, and the traces boxed: growing a table of
/// large inline values means moving all of them (and faulting in a new table)
/// while the lock is held, which at 5k events/s showed as pauses of 100+ ms.
struct Inner {
    by_id: HashMap<String, Box<EventTrace>>,
    /// Insertion order with Unix ms, for eviction.
    order: VecDeque<(i64, String)>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Traces {
    pub fn new(retention: Duration, max_events: usize) -> Self {
        let cap = max_events.saturating_add(1);
        let inner = Inner { by_id: HashMap::with_capacity(cap), order: VecDeque::with_capacity(cap) };
        Self { inner: Mutex::new(inner), retention, max_events }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> Option<R> {
        if self.max_events == 0 {
            return None; // tracing is off
        }
        // A panic while holding the lock cannot leave a trace half-written in a
        // way that matters: keep going with what is there.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut g))
    }

    /// Records an append. The dispatcher can see the record before this
    /// runs (it is durable first), so either side may create the entry.
    pub fn ingested(&self, broker: &str, event: &impl crate::filter::Attributes, offset: u64) {
        let ms = now_ms();
        let attr = |n: &str| event.attribute(n).map(|v| v.into_owned()).unwrap_or_default();
        let id = attr("id");
        self.with(|g| {
            let e = g.entry(&id, ms, self.retention, self.max_events);
            if e.broker.is_empty() {
                (e.source, e.type_, e.broker) = (attr("source"), attr("type"), broker.to_string());
            }
            if e.ingested.len() < MAX_ATTEMPTS {
                e.ingested.push(Ingest { at: Millis(ms), offset });
            }
        });
    }

    /// Runs `f` on the trace of `trigger` for event `id`.
    pub fn trigger(&self, id: &str, trigger: &str, f: impl FnOnce(&mut TriggerTrace)) {
        let ms = now_ms();
        self.with(|g| {
            let triggers = &mut g.entry(id, ms, self.retention, self.max_events).triggers;
            let i = match triggers.iter().position(|(n, _)| n == trigger) {
                Some(i) => i,
                None => {
                    triggers.push((trigger.to_string(), TriggerTrace::default()));
                    triggers.len() - 1
                }
            };
            f(&mut triggers[i].1)
        });
    }

    pub fn attempt(&self, id: &str, trigger: &str, mut a: AttemptTrace) {
        a.at = Millis(now_ms());
        self.trigger(id, trigger, |t| {
            if t.attempts.len() < MAX_ATTEMPTS {
                t.attempts.push(a);
            } else {
                t.more_attempts += 1;
            }
        });
    }

    pub fn get(&self, id: &str) -> Option<EventTrace> {
        self.with(|g| g.by_id.get(id).map(|t| (**t).clone())).flatten()
    }

    pub fn len(&self) -> usize {
        self.with(|g| g.by_id.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// The trace of `id`, created (and older ones evicted) if new.
    fn entry(&mut self, id: &str, now_ms: i64, retention: Duration, max: usize) -> &mut EventTrace {
        if !self.by_id.contains_key(id) {
            self.evict(now_ms, retention, max);
            self.order.push_back((now_ms, id.to_string()));
        }
        self.by_id.entry(id.to_string()).or_insert_with(|| {
            Box::new(EventTrace {
                id: id.to_string(),
                source: String::new(),
                type_: String::new(),
                broker: String::new(),
                ingested: Vec::new(),
                triggers: Vec::new(),
            })
        })
    }

    fn evict(&mut self, now_ms: i64, retention: Duration, max: usize) {
        let oldest_kept = now_ms - retention.as_millis() as i64;
        while let Some((ms, _)) = self.order.front() {
            if *ms >= oldest_kept && self.order.len() < max {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.by_id.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> std::collections::BTreeMap<String, String> {
        [("id", id), ("source", "/s"), ("type", "t")].into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn records_attempts_and_outcome_and_keeps_a_bounded_number() {
        let t = Traces::new(Duration::from_secs(3600), 3);
        t.ingested("default/default", &ev("a"), 0);
        let a = AttemptTrace { at: Millis(0), status: Some(500), error: None, latency_ms: 1.0, to: "subscriber" };
        t.attempt("a", "default/t1", a.clone());
        t.attempt("a", "default/t1", AttemptTrace { status: Some(200), ..a });
        t.trigger("a", "default/t1", |x| x.outcome = Some("delivered".into()));
        let got = t.get("a").unwrap();
        assert_eq!(got.trigger("default/t1").unwrap().attempts.len(), 2);
        assert_eq!(got.trigger("default/t1").unwrap().outcome.as_deref(), Some("delivered"));
        for id in ["b", "c", "d"] {
            t.ingested("default/default", &ev(id), 1);
        }
        assert_eq!(t.len(), 3, "the oldest is evicted past the bound");
        assert!(t.get("a").is_none());
        let a = AttemptTrace { at: Millis(0), status: None, error: None, latency_ms: 0.0, to: "subscriber" };
        t.attempt("e", "x", a);
        t.ingested("default/default", &ev("e"), 9);
        let e = t.get("e").unwrap();
        assert_eq!(
            (e.broker.as_str(), e.type_.as_str(), e.triggers.len()),
            ("default/default", "t", 1),
            "either order"
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_bound_of_zero_keeps_nothing() {
        let t = Traces::new(Duration::from_secs(60), 0);
        t.ingested("b", &ev("a"), 0);
        assert!(t.get("a").is_none() && t.is_empty());
    }

    #[test]
    fn old_records_expire() {
        let t = Traces::new(Duration::ZERO, 100);
        t.ingested("b", &ev("a"), 0);
        std::thread::sleep(Duration::from_millis(5));
        t.ingested("b", &ev("b"), 1);
        assert!(t.get("a").is_none());
        assert!(t.get("b").is_some());
    }
}
