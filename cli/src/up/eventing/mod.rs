//! The local eventing controller: Brokers -> topics in their event log and the
//! ingress table; Triggers -> one dispatcher each; PingSources -> one ticker
//! each. Level-triggered like the function controller: any change re-reads
//! every eventing resource (there are few) and converges.

mod resolve;
pub mod resources;
mod status;

pub use resolve::Addresses;
pub use resources::Resources;

use futures::StreamExt;
use futures::stream::BoxStream;
use resolve::{broker_ref, resolve};
use status::{Readiness, write_status};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_controller::WatchEvent;
use weft_crds::eventing::{Broker, PingSource, Trigger};
use weft_eventbus::config::TriggerConfig;
use weft_eventbus::dispatch::{Dispatcher, Publish};
use weft_eventbus::ingress::{BrokerLog, Ingress};
use weft_eventbus::log::embedded::EmbeddedLog;
use weft_eventbus::metrics::EventbusMetrics;
use weft_eventbus::ping::{Ping, PingSink};
use weft_eventbus::sender::Sender;
use weft_eventbus::trace::Traces;
use weft_eventbus::{EventLog, Initial};

const RESYNC: Duration = Duration::from_secs(10);

pub struct Eventing {
    pub store: Arc<dyn Resources>,
    pub embedded: Arc<dyn EventLog>,
    /// Set when `weft up --kafka-bootstrap` was given.
    pub kafka: Option<Arc<dyn EventLog>>,
    pub ingress: Arc<Ingress>,
    pub sender: Arc<dyn Sender>,
    pub traces: Arc<Traces>,
    pub metrics: EventbusMetrics,
    pub addresses: Addresses,
    pub running: tokio::sync::Mutex<HashMap<String, Running>>,
    /// The Brokers' logs as of the last pass, so a deleted Broker's log is
    /// deleted with it.
    pub logs: tokio::sync::Mutex<HashMap<String, BrokerLog>>,
}

/// Why an object is not ready: a condition reason and a message.
type NotReady = (&'static str, String);

/// A dispatcher or ticker, and what it was started from.
pub struct Running {
    fingerprint: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_else(|| "default".into()), meta.name.clone().unwrap_or_default())
}

/// The embedded log's topic of a Broker.
fn embedded_topic(ns: &str, name: &str) -> String {
    format!("{ns}.{name}")
}

/// Deletes the embedded topics no Broker owns: a Broker deleted while weft up
/// was down, or killed between the delete and the next pass, left its folder
/// behind. Run once at start, before any dispatcher: locally the store is
/// complete then, and this process is the log's only writer. Kafka topics are
/// left alone, since a Kafka cluster may be shared.
pub async fn prune_orphaned_logs(log: &EmbeddedLog, store: &dyn Resources) -> Result<Vec<String>, String> {
    let owned: HashSet<String> = store
        .brokers()?
        .iter()
        .filter(|b| b.spec.backend.as_deref() != Some("kafka"))
        .map(|b| {
            let (ns, name) = key_of(&b.metadata);
            embedded_topic(&ns, &name)
        })
        .collect();
    let mut pruned = Vec::new();
    for topic in log.topics().into_iter().filter(|t| !owned.contains(t)) {
        log.delete_topic(&topic).await.map_err(|e| format!("delete the orphaned log {topic}: {e}"))?;
        tracing::info!(%topic, "deleted the log of a Broker that no longer exists");
        pruned.push(topic);
    }
    Ok(pruned)
}

impl Eventing {
    /// The embedded store's changes of the kinds eventing reads.
    pub fn local_changes(watch: broadcast::Receiver<WatchEvent>) -> BoxStream<'static, ()> {
        futures::stream::unfold(watch, |mut w| async move {
            loop {
                match w.recv().await {
                    Ok(ev) if !matches!(ev.kind.as_str(), "brokers" | "triggers" | "pingsources" | "functions") => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                    _ => return Some(((), w)),
                }
            }
        })
        .boxed()
    }

    pub async fn run(self: Arc<Self>, mut changes: BoxStream<'static, ()>, shutdown: CancellationToken) {
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = resync.tick() => {}
                _ = changes.next() => {}
            }
            // Coalesce: everything is re-read.
            while let Some(Some(())) = futures::FutureExt::now_or_never(changes.next()) {}
            if let Err(e) = self.reconcile_all().await {
                tracing::error!(error = %e, "eventing reconcile failed; will retry on the next resync");
            }
        }
        let running = std::mem::take(&mut *self.running.lock().await);
        for (_, r) in running {
            r.stop.cancel();
            let _ = r.task.await;
        }
    }

    async fn reconcile_all(&self) -> Result<(), String> {
        let (brokers, dying): (Vec<Broker>, Vec<Broker>) =
            self.store.brokers()?.into_iter().partition(|b| b.metadata.deletion_timestamp.is_none());
        let mut logs = HashMap::new();
        let mut delivery = HashMap::new();
        for b in &brokers {
            let (ns, name) = key_of(&b.metadata);
            let ready = match self.broker_log(b, &ns, &name).await {
                Ok(log) => {
                    // Its log exists now: the Broker may not go before it does.
                    self.store.hold(b).await?;
                    logs.insert(format!("{ns}/{name}"), log);
                    delivery.insert(format!("{ns}/{name}"), b.spec.delivery.clone());
                    Readiness::ready(format!("{}/{ns}/{name}", self.addresses.ingress))
                }
                Err((reason, message)) => Readiness::not(reason, message),
            };
            write_status(&*self.store, b, ready).await?;
        }
        self.ingress.set_brokers(logs.clone());
        let mut wanted = HashSet::new();
        for t in self.store.triggers()? {
            let ready = self.trigger(&t, &logs, &delivery, &mut wanted).await;
            write_status(&*self.store, &t, ready).await?;
        }
        for p in self.store.pingsources()? {
            let ready = self.ping(&p, &logs, &mut wanted).await;
            write_status(&*self.store, &p, ready).await?;
        }
        self.stop_unwanted(&wanted).await;
        self.delete_logs(&brokers, &dying, logs).await;
        Ok(())
    }

    /// Deletes the logs of Brokers that are gone (locally) or being deleted
    /// (in a cluster; their finalizer is removed once the log is). Runs after
    /// their dispatchers stopped. A failure is retried on the next pass.
    async fn delete_logs(&self, live: &[Broker], dying: &[Broker], logs: HashMap<String, BrokerLog>) {
        let key = |b: &Broker| {
            let (ns, name) = key_of(&b.metadata);
            format!("{ns}/{name}")
        };
        let exists: HashSet<String> = live.iter().chain(dying).map(key).collect();
        let before = std::mem::replace(&mut *self.logs.lock().await, logs);
        for (k, old) in before.into_iter().filter(|(k, _)| !exists.contains(k)) {
            if let Err(e) = old.log.delete_topic(&old.topic).await {
                tracing::warn!(broker = %k, topic = %old.topic, error = %e, "could not delete a deleted Broker's log");
            }
        }
        for b in dying {
            let (ns, name) = key_of(&b.metadata);
            let deleted = match self.broker_topic(b, &ns, &name) {
                Ok((log, topic)) => log.delete_topic(&topic).await.map_err(|e| e.to_string()),
                // No log this event bus can reach (e.g. Kafka not configured):
                // nothing it could delete, and waiting would hold the Broker forever.
                Err((_, why)) => {
                    tracing::warn!(broker = %key(b), %why, "a deleted Broker's log is out of reach; letting it go");
                    Ok(())
                }
            };
            let released = match deleted {
                Ok(()) => self.store.release(b).await,
                Err(e) => Err(e),
            };
            match released {
                Ok(()) => tracing::info!(broker = %key(b), "Broker deleted with its log"),
                Err(e) => tracing::warn!(broker = %key(b), error = %e, "a deleted Broker's log is not deleted yet"),
            }
        }
    }

    async fn broker_log(&self, b: &Broker, ns: &str, name: &str) -> Result<BrokerLog, NotReady> {
        let (log, topic) = self.broker_topic(b, ns, name)?;
        log.ensure_topic(&topic).await.map_err(|e| ("LogUnavailable", e.to_string()))?;
        Ok(BrokerLog { topic, log })
    }

    /// Which log and topic hold the Broker's events.
    fn broker_topic(&self, b: &Broker, ns: &str, name: &str) -> Result<(Arc<dyn EventLog>, String), NotReady> {
        match b.spec.backend.as_deref() {
            Some("kafka") => match &self.kafka {
                Some(k) => Ok((k.clone(), format!("weft.{ns}.{name}"))),
                None => Err(("KafkaNotConfigured", "start weft with --kafka-bootstrap host:port".into())),
            },
            _ => Ok((self.embedded.clone(), embedded_topic(ns, name))),
        }
    }

    /// Starts (or keeps) the Trigger's dispatcher; says whether it is ready.
    async fn trigger(
        &self,
        t: &Trigger,
        logs: &HashMap<String, BrokerLog>,
        delivery: &HashMap<String, Option<weft_crds::eventing::DeliverySpec>>,
        wanted: &mut HashSet<String>,
    ) -> Readiness {
        let (ns, name) = key_of(&t.metadata);
        let broker = format!("{ns}/{}", t.spec.broker);
        let Some(log) = logs.get(&broker) else {
            return Readiness::not("BrokerDoesNotExist", format!("broker {broker} does not exist or is not ready"));
        };
        let broker_delivery = delivery.get(&broker).cloned().flatten();
        let config = match TriggerConfig::new(t, broker_delivery.as_ref()) {
            Ok(c) => c,
            Err(e) => return Readiness::not("InvalidSpec", e.to_string()),
        };
        let subscriber = match resolve(&*self.store, &self.addresses, &t.spec.subscriber, &ns) {
            Ok(s) => s,
            Err(e) => return Readiness::not("SubscriberNotResolved", e),
        };
        let dead_letter = match config.dead_letter_sink.as_ref().map(|d| resolve(&*self.store, &self.addresses, d, &ns))
        {
            Some(Err(e)) => return Readiness::not("DeadLetterSinkNotResolved", e),
            Some(Ok(d)) => Some(d),
            None => None,
        };
        let uid = t.metadata.uid.clone().unwrap_or_default();
        let key = format!("trigger/{ns}/{name}");
        let fingerprint = serde_json::json!([
            t.spec,
            broker_delivery,
            uid,
            log.topic,
            subscriber.display(),
            dead_letter.as_ref().map(|d| d.display())
        ])
        .to_string();
        wanted.insert(key.clone());
        let mut ready = Readiness::ready(subscriber.display());
        ready.dead_letter = dead_letter.as_ref().map(|d| d.display());
        if self.is_running(&key, &fingerprint).await {
            return ready;
        }
        let group = format!("trigger.{ns}.{name}.{}", &uid[..uid.len().min(8)]);
        // The group's start is committed here, before Ready: events sent after
        // the Trigger is ready are delivered even across a restart.
        let consumer = match log.log.consumer(&log.topic, &group, Initial::Latest).await {
            Ok(c) => c,
            Err(e) => return Readiness::not("LogUnavailable", e.to_string()),
        };
        let d = Arc::new(Dispatcher {
            trigger: format!("{ns}/{name}"),
            broker,
            topic: log.topic.clone(),
            config,
            subscriber,
            dead_letter,
            sender: self.sender.clone(),
            publish: self.ingress.clone() as Arc<dyn Publish>,
            log: log.log.clone(),
            traces: self.traces.clone(),
            metrics: self.metrics.trigger(&format!("{ns}/{name}")),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.run(consumer, stop.clone()));
        self.replace(key, Running { fingerprint, stop, task }).await;
        ready
    }

    async fn ping(&self, p: &PingSource, logs: &HashMap<String, BrokerLog>, wanted: &mut HashSet<String>) -> Readiness {
        let (ns, name) = key_of(&p.metadata);
        let sink = match broker_ref(&p.spec.sink, &ns) {
            Some(b) if logs.contains_key(&b) => PingSink::Broker(b),
            Some(b) => return Readiness::not("SinkNotResolved", format!("broker {b} does not exist or is not ready")),
            None => match resolve(&*self.store, &self.addresses, &p.spec.sink, &ns) {
                Ok(t) => PingSink::Target(t),
                Err(e) => return Readiness::not("SinkNotResolved", e),
            },
        };
        let sink_uri = match &sink {
            PingSink::Broker(b) => format!("{}/{b}", self.addresses.ingress),
            PingSink::Target(t) => t.display(),
        };
        let ping = match Ping::new(p, sink) {
            Ok(x) => x,
            Err(e) => return Readiness::not("InvalidSpec", e),
        };
        let key = format!("ping/{ns}/{name}");
        let fingerprint = serde_json::json!([p.spec, p.metadata.uid, sink_uri]).to_string();
        wanted.insert(key.clone());
        if !self.is_running(&key, &fingerprint).await {
            let stop = CancellationToken::new();
            let publish = self.ingress.clone() as Arc<dyn Publish>;
            let task = tokio::spawn(ping.run(publish, self.sender.clone(), stop.clone()));
            self.replace(key, Running { fingerprint, stop, task }).await;
        }
        Readiness::ready(sink_uri)
    }

    async fn is_running(&self, key: &str, fingerprint: &str) -> bool {
        let running = self.running.lock().await;
        running.get(key).is_some_and(|r| r.fingerprint == fingerprint && !r.task.is_finished())
    }

    /// Installs a new runner, stopping (and waiting for) the one it replaces,
    /// so two dispatchers of one trigger never overlap.
    async fn replace(&self, key: String, new: Running) {
        let old = self.running.lock().await.insert(key, new);
        if let Some(old) = old {
            old.stop.cancel();
            let _ = old.task.await;
        }
    }

    async fn stop_unwanted(&self, wanted: &HashSet<String>) {
        let gone: Vec<Running> = {
            let mut running = self.running.lock().await;
            let keys: Vec<String> = running.keys().filter(|k| !wanted.contains(*k)).cloned().collect();
            keys.into_iter().filter_map(|k| running.remove(&k)).collect()
        };
        for r in gone {
            r.stop.cancel();
            let _ = r.task.await;
        }
    }
}
