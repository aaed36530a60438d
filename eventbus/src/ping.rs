//! PingSource: sends an event with fixed data to a sink on a cron schedule, as
//! Knative's (`dev.knative.sources.ping`, so a Knative user's filters still
//! match). Schedules are evaluated in UTC.

use crate::dispatch::Publish;
use crate::sender::{Sender, Target};
use chrono::{DateTime, Utc};
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use weft_crds::eventing::PingSource;

pub const PING_TYPE: &str = "dev.knative.sources.ping";
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a PingSource's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingSink {
    /// Straight into a broker's log (`namespace/name`).
    Broker(String),
    Target(Target),
}

#[derive(Debug, Clone)]
pub struct Ping {
    pub source: String,
    pub schedule: Cron,
    pub content_type: String,
    pub data: Option<String>,
    pub sink: PingSink,
}

/// Parses a schedule: five fields, or six with seconds first. Errors name the field.
pub fn parse_schedule(s: &str, timezone: Option<&str>) -> Result<Cron, String> {
    if let Some(tz) = timezone.filter(|tz| !matches!(*tz, "UTC" | "Etc/UTC")) {
        return Err(format!("spec.timezone: {tz:?}: weft evaluates schedules in UTC only for now"));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(s)
        .map_err(|e| format!("spec.schedule: {s:?} is not a cron schedule (e.g. \"*/1 * * * *\"): {e}"))
}

impl Ping {
    pub fn new(p: &PingSource, sink: PingSink) -> Result<Self, String> {
        let ns = p.metadata.namespace.as_deref().unwrap_or("default");
        let name = p.metadata.name.as_deref().unwrap_or_default();
        Ok(Self {
            source: format!("/apis/v1/namespaces/{ns}/pingsources/{name}"),
            schedule: parse_schedule(&p.spec.schedule, p.spec.timezone.as_deref())?,
            content_type: p.spec.content_type.clone().unwrap_or_else(|| "application/json".into()),
            data: p.spec.data.clone(),
            sink,
        })
    }

    /// The next time after `now` the schedule fires.
    pub fn next_after(&self, now: &DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.find_next_occurrence(now, false).ok()
    }

    /// The event sent for the tick at `at`.
    pub fn event(&self, at: DateTime<Utc>) -> Result<Event, String> {
        let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let mut b = EventBuilderV10::new().id(id).ty(PING_TYPE).source(self.source.as_str()).time(at);
        if let Some(d) = &self.data {
            b = b.data(self.content_type.as_str(), d.clone().into_bytes());
        }
        b.build().map_err(|e| e.to_string())
    }

    /// Sends an event at every tick until `shutdown`.
    pub async fn run(self, publish: Arc<dyn Publish>, sender: Arc<dyn Sender>, shutdown: CancellationToken) {
        loop {
            let now = Utc::now();
            let Some(next) = self.next_after(&now) else {
                return tracing::warn!(source = %self.source, "the schedule never fires again");
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.event(next) {
                Ok(e) => self.send(e, &*publish, &*sender).await,
                Err(e) => tracing::error!(source = %self.source, error = %e, "ping event not built"),
            }
        }
    }

    async fn send(&self, event: Event, publish: &dyn Publish, sender: &dyn Sender) {
        let failed = match &self.sink {
            PingSink::Broker(b) => publish.publish(b, event).await.err().map(|e| e.to_string()),
            PingSink::Target(t) => {
                let sent = sender.send(t, &event, SEND_TIMEOUT).await;
                let ok = matches!(sent.attempt, crate::delivery::Attempt::Status { code: 200..=299, .. });
                (!ok).then(|| sent.detail.unwrap_or_else(|| format!("{:?}", sent.attempt)))
            }
        };
        match failed {
            None => tracing::debug!(source = %self.source, "ping sent"),
            Some(e) => tracing::warn!(source = %self.source, error = %e, "ping not delivered"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::AttributesReader;

    #[test]
    fn schedules_with_and_without_seconds_and_bad_ones_named() {
        let c = parse_schedule("*/2 * * * *", None).unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(c.find_next_occurrence(&t("2026-01-01T00:00:30Z"), false).unwrap(), t("2026-01-01T00:02:00Z"));
        let s = parse_schedule("*/5 * * * * *", None).unwrap();
        assert_eq!(s.find_next_occurrence(&t("2026-01-01T00:00:01Z"), false).unwrap(), t("2026-01-01T00:00:05Z"));
        assert!(parse_schedule("every minute", None).unwrap_err().starts_with("spec.schedule"));
        assert!(parse_schedule("* * * * *", Some("Europe/Paris")).unwrap_err().starts_with("spec.timezone"));
    }

    #[test]
    fn the_event_is_knatives_ping() {
        let p = Ping {
            source: "/apis/v1/namespaces/ns/pingsources/p".into(),
            schedule: parse_schedule("* * * * *", None).unwrap(),
            content_type: "application/json".into(),
            data: Some(r#"{"hello":1}"#.into()),
            sink: PingSink::Broker("ns/b".into()),
        };
        let e = p.event(Utc::now()).unwrap();
        assert_eq!(e.ty(), PING_TYPE);
        assert_eq!(e.source().as_str(), "/apis/v1/namespaces/ns/pingsources/p");
        assert_eq!(e.datacontenttype(), Some("application/json"));
        assert_ne!(p.event(Utc::now()).unwrap().id(), e.id(), "a new id per tick");
    }
}
