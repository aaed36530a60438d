//! The dispatcher under a simulated clock (tokio's paused time): a scripted
//! sender stands in for subscribers, the log is the real embedded one.

use super::*;
use crate::cloudevent::to_record;
use crate::delivery::{Attempt, DeliveryPolicy};
use crate::filter::Filter;
use crate::log::Initial;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};
use crate::metrics::{EventbusMetrics, TriggerLabels};
use crate::sender::Sent;
use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};
use std::sync::Mutex;
use tokio::time::Instant;

#[derive(Default)]
struct Script {
    /// Answers by event id, in order; then 200.
    answers: Mutex<HashMap<String, VecDeque<Attempt>>>,
    /// (target url, event, when) of every send.
    calls: Mutex<Vec<(String, Event, Instant)>>,
    /// How long each send takes.
    latency: Duration,
    in_flight: Mutex<(usize, usize)>,
    /// Reply with this event type on success.
    reply_type: Option<String>,
}

#[async_trait]
impl Sender for Script {
    async fn send(&self, target: &Target, event: &Event, _timeout: Duration) -> Sent {
        self.calls.lock().unwrap().push((target.url.clone(), event.clone(), Instant::now()));
        {
            let mut f = self.in_flight.lock().unwrap();
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        tokio::time::sleep(self.latency).await;
        self.in_flight.lock().unwrap().0 -= 1;
        let next = self.answers.lock().unwrap().get_mut(event.id()).and_then(|q| q.pop_front());
        let attempt = next.unwrap_or(Attempt::Status { code: 200, retry_after: None });
        let ok = matches!(attempt, Attempt::Status { code: 200..=299, .. });
        let reply = self.reply_type.as_ref().filter(|_| ok).map(|t| event_with(&format!("re-{}", event.id()), t, "/r"));
        Sent { attempt, reply, detail: (!ok).then(|| "scripted failure".into()) }
    }
}

#[derive(Default)]
struct Replies(Mutex<Vec<(String, Event)>>);

#[async_trait]
impl Publish for Replies {
    async fn publish(&self, broker: &str, event: Event) -> Result<(), crate::ingress::IngressError> {
        self.0.lock().unwrap().push((broker.to_string(), event));
        Ok(())
    }
}

fn event_with(id: &str, ty: &str, source: &str) -> Event {
    EventBuilderV10::new().id(id).ty(ty).source(source).build().unwrap()
}

fn status(code: u16) -> Attempt {
    Attempt::Status { code, retry_after: None }
}

struct Harness {
    _dir: tempfile::TempDir,
    log: Arc<EmbeddedLog>,
    script: Arc<Script>,
    replies: Arc<Replies>,
    traces: Arc<Traces>,
    metrics: EventbusMetrics,
}

impl Harness {
    fn new(script: Script) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap());
        Self {
            _dir: dir,
            log,
            script: Arc::new(script),
            replies: Arc::default(),
            traces: Arc::new(Traces::new(Duration::from_secs(3600), 1000)),
            metrics: EventbusMetrics::detached(),
        }
    }

    async fn append(&self, events: &[Event]) {
        self.log.ensure_topic("b").await.unwrap();
        let records = events.iter().map(|e| to_record(e).unwrap()).collect();
        for (o, e) in self.log.append("b", records).await.unwrap().into_iter().zip(events) {
            self.traces.ingested("ns/b", e, o);
        }
    }

    fn dispatcher(&self, policy: DeliveryPolicy, ordering: Ordering, max_in_flight: usize) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            trigger: "ns/t".into(),
            broker: "ns/b".into(),
            topic: "b".into(),
            config: TriggerConfig {
                filter: Filter::compile(&[], None).unwrap(),
                policy,
                ordering,
                max_in_flight,
                dead_letter_sink: None,
            },
            subscriber: Target::uri("http://subscriber"),
            dead_letter: Some(Target::uri("http://dls")),
            sender: self.script.clone(),
            publish: self.replies.clone(),
            log: self.log.clone(),
            traces: self.traces.clone(),
            metrics: self.metrics.trigger("ns/t"),
        })
    }

    /// Runs the dispatcher until `sends` sends were made and all settled, then stops it.
    async fn run(&self, d: Arc<Dispatcher>, sends: usize) {
        let stop = CancellationToken::new();
        let consumer = self.log.consumer("b", "t", Initial::Earliest).await.unwrap();
        let task = tokio::spawn(d.run(consumer, stop.clone()));
        for _ in 0..10_000 {
            if self.script.calls.lock().unwrap().len() >= sends && self.script.in_flight.lock().unwrap().0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // let the commit happen
        stop.cancel();
        task.await.unwrap();
    }

    fn calls(&self) -> Vec<(String, Event, Instant)> {
        self.script.calls.lock().unwrap().clone()
    }
}

fn gaps(calls: &[(String, Event, Instant)]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1].2 - w[0].2).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_exact_backoff_schedule_then_dead_letter_says_why() {
    let script = Script::default();
    script.answers.lock().unwrap().insert("e1".into(), [status(500), status(503), status(502), status(500)].into());
    let h = Harness::new(script);
    h.append(&[event_with("e1", "t", "/s")]).await;
    let policy = DeliveryPolicy { retry: 3, delay: ms(100), ..DeliveryPolicy::default() };
    h.run(h.dispatcher(policy, Ordering::Unordered, 10), 5).await;
    let calls = h.calls();
    assert_eq!(calls.len(), 5, "4 attempts, then the dead-letter sink");
    assert_eq!(gaps(&calls[..4]), [ms(200), ms(400), ms(800)], "delay * 2^n");
    let (url, dead, _) = &calls[4];
    assert_eq!(url, "http://dls");
    assert_eq!(dead.attribute("deadletterreason").as_deref(), Some("retries-exhausted"));
    assert_eq!(dead.attribute("deadletterstatus").as_deref(), Some("500"));
    assert_eq!(dead.attribute("deadletterattempts").as_deref(), Some("4"));
    assert_eq!(dead.attribute("deadlettertrigger").as_deref(), Some("ns/t"));
    let trace = h.traces.get("e1").unwrap();
    let t = &trace.trigger("ns/t").unwrap();
    assert_eq!(t.outcome.as_deref(), Some("dead-lettered"));
    let statuses: Vec<_> = t.attempts.iter().map(|a| (a.to, a.status)).collect();
    assert_eq!(statuses[0], ("subscriber", Some(500)));
    assert_eq!(statuses[4], ("dead-letter", Some(200)));
}

#[tokio::test(start_paused = true)]
async fn linear_backoff_is_capped_by_backoff_max_and_timeouts_are_retried() {
    let script = Script::default();
    script
        .answers
        .lock()
        .unwrap()
        .insert("e1".into(), [Attempt::Timeout, Attempt::ConnectionError, status(408), status(429)].into());
    let h = Harness::new(script);
    h.append(&[event_with("e1", "t", "/s")]).await;
    let policy = DeliveryPolicy {
        retry: 5,
        delay: ms(100),
        policy: crate::delivery::BackoffPolicy::Linear,
        max: Some(ms(250)),
        ..DeliveryPolicy::default()
    };
    h.run(h.dispatcher(policy, Ordering::Unordered, 10), 5).await;
    let calls = h.calls();
    assert_eq!(calls.len(), 5, "four failures, then success: no dead letter");
    assert_eq!(gaps(&calls), [ms(100), ms(200), ms(250), ms(250)]);
    assert_eq!(h.traces.get("e1").unwrap().trigger("ns/t").unwrap().outcome.as_deref(), Some("delivered"));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_a_4xx_is_dead_lettered_at_once() {
    let script = Script::default();
    let ra = Attempt::Status { code: 429, retry_after: Some(Duration::from_secs(3)) };
    script.answers.lock().unwrap().insert("slow".into(), [ra].into());
    script.answers.lock().unwrap().insert("bad".into(), [status(422)].into());
    let h = Harness::new(script);
    h.append(&[event_with("slow", "t", "/a"), event_with("bad", "t", "/b")]).await;
    let policy = DeliveryPolicy { retry: 2, delay: ms(10), ..DeliveryPolicy::default() };
    h.run(h.dispatcher(policy, Ordering::Unordered, 10), 4).await;
    let calls = h.calls();
    let of = |id: &str| calls.iter().filter(|c| c.1.id() == id).cloned().collect::<Vec<_>>();
    assert_eq!(gaps(&of("slow")), [Duration::from_secs(3)]);
    let bad = of("bad");
    assert_eq!(bad.len(), 2, "one attempt, then the dead-letter sink");
    assert_eq!(bad[1].0, "http://dls");
    assert_eq!(bad[1].1.attribute("deadletterreason").as_deref(), Some("not-retryable"));
    assert_eq!(bad[1].1.attribute("deadletterstatus").as_deref(), Some("422"));
}

#[tokio::test(start_paused = true)]
async fn ordered_delivers_one_at_a_time_per_key_in_log_order() {
    let script = Script { latency: ms(50), ..Script::default() };
    // The first event of key a fails once: the second must wait for its retry.
    script.answers.lock().unwrap().insert("a0".into(), [status(500)].into());
    let h = Harness::new(script);
    let mut events = Vec::new();
    for i in 0..4 {
        events.push(event_with(&format!("a{i}"), "t", "/a"));
        let mut b = event_with(&format!("b{i}"), "t", "/other");
        b.set_extension("partitionkey", "b");
        events.push(b);
    }
    h.append(&events).await;
    let policy = DeliveryPolicy { retry: 1, delay: ms(100), ..DeliveryPolicy::default() };
    h.run(h.dispatcher(policy, Ordering::Ordered, 10), 9).await;
    let calls = h.calls();
    let ids =
        |prefix: &str| calls.iter().map(|c| c.1.id().to_string()).filter(|i| i.starts_with(prefix)).collect::<Vec<_>>();
    assert_eq!(ids("a"), ["a0", "a0", "a1", "a2", "a3"]);
    assert_eq!(ids("b"), ["b0", "b1", "b2", "b3"]);
    assert_eq!(h.script.in_flight.lock().unwrap().1, 2, "two keys in parallel, never two of one key");
}

#[tokio::test(start_paused = true)]
async fn unordered_is_parallel_up_to_max_in_flight_and_commits_what_is_done() {
    let script = Script { latency: ms(100), reply_type: Some("reply".into()), ..Script::default() };
    let h = Harness::new(script);
    let events: Vec<_> = (0..20).map(|i| event_with(&format!("e{i}"), "t", "/s")).collect();
    h.append(&events).await;
    h.run(h.dispatcher(DeliveryPolicy::default(), Ordering::Unordered, 4), 20).await;
    assert_eq!(h.script.in_flight.lock().unwrap().1, 4);
    assert_eq!(h.replies.0.lock().unwrap().len(), 20, "every reply went back to the broker");
    assert!(h.replies.0.lock().unwrap().iter().all(|(b, e)| b == "ns/b" && e.ty() == "reply"));
    // Everything was committed: a new consumer of the group sees nothing.
    let mut again = h.log.consumer("b", "t", Initial::Earliest).await.unwrap();
    assert!(again.poll(10, ms(10)).await.unwrap().is_empty());
    let delivered = h.metrics.delivered.get_or_create(&TriggerLabels { trigger: "ns/t".into() }).get();
    assert_eq!(delivered, 20);
}

#[tokio::test(start_paused = true)]
async fn unmatched_events_are_skipped_and_committed() {
    let h = Harness::new(Script::default());
    h.append(&[event_with("x", "other", "/s"), event_with("y", "wanted", "/s")]).await;
    let mut d = Arc::into_inner(h.dispatcher(DeliveryPolicy::default(), Ordering::Unordered, 4)).unwrap();
    let spec = weft_crds::eventing::FilterSpec {
        exact: Some([("type".to_string(), "wanted".to_string())].into()),
        ..Default::default()
    };
    d.config.filter = Filter::compile(&[spec], None).unwrap();
    h.run(Arc::new(d), 1).await;
    let ids: Vec<_> = h.calls().iter().map(|c| c.1.id().to_string()).collect();
    assert_eq!(ids, ["y"]);
    let mut again = h.log.consumer("b", "t", Initial::Earliest).await.unwrap();
    assert!(again.poll(10, ms(10)).await.unwrap().is_empty());
}
