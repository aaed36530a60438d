//! Shape checks of the eventing resources, naming the field. What needs the
//! event bus to judge (filter syntax, durations, cron) is checked by
//! weft-eventbus when the resource is applied.

use super::broker::{Broker, DeliverySpec};
use super::destination::Destination;
use super::ping::PingSource;
use super::trigger::Trigger;
use crate::names::check_dns_label;
use crate::validate::ValidationErrors;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub fn validate_broker(b: &Broker) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_meta(&b.metadata, &mut errs);
    if let Some(backend) = b.spec.backend.as_deref()
        && !matches!(backend, "embedded" | "kafka")
    {
        errs.add("spec.backend", format!("{backend:?} is not a backend: use embedded or kafka"));
    }
    if let Some(d) = &b.spec.delivery {
        check_delivery(d, "spec.delivery", &mut errs);
    }
    errs.into_result()
}

pub fn validate_trigger(t: &Trigger) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_meta(&t.metadata, &mut errs);
    if let Err(m) = check_dns_label(&t.spec.broker, 63) {
        errs.add("spec.broker", m);
    }
    check_destination(&t.spec.subscriber, "spec.subscriber", &mut errs);
    if let Some(d) = &t.spec.delivery {
        check_delivery(d, "spec.delivery", &mut errs);
    }
    if t.spec.max_in_flight == Some(0) {
        errs.add("spec.maxInFlight", "must be at least 1");
    }
    errs.into_result()
}

pub fn validate_ping_source(p: &PingSource) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_meta(&p.metadata, &mut errs);
    if p.spec.schedule.trim().is_empty() {
        errs.add("spec.schedule", "missing: a cron schedule such as \"*/1 * * * *\"");
    }
    check_destination(&p.spec.sink, "spec.sink", &mut errs);
    errs.into_result()
}

fn check_meta(meta: &ObjectMeta, errs: &mut ValidationErrors) {
    if let Err(m) = check_dns_label(meta.name.as_deref().unwrap_or(""), 63) {
        errs.add("metadata.name", m);
    }
    if let Some(ns) = meta.namespace.as_deref()
        && let Err(m) = check_dns_label(ns, 63)
    {
        errs.add("metadata.namespace", m);
    }
}

fn check_delivery(d: &DeliverySpec, at: &str, errs: &mut ValidationErrors) {
    if let Some(r) = d.retry
        && r < 0
    {
        errs.add(format!("{at}.retry"), "must not be negative");
    }
    if let Some(p) = d.backoff_policy.as_deref()
        && !matches!(p, "linear" | "exponential")
    {
        errs.add(format!("{at}.backoffPolicy"), format!("{p:?}: use linear or exponential"));
    }
    if let Some(dls) = &d.dead_letter_sink {
        check_destination(dls, &format!("{at}.deadLetterSink"), errs);
    }
}

/// Exactly one of `ref` (a Function or Broker) and `uri` (absolute http URL).
pub fn check_destination(d: &Destination, at: &str, errs: &mut ValidationErrors) {
    match (&d.reference, &d.uri) {
        (Some(_), Some(_)) | (None, None) => errs.add(at, "set exactly one of ref and uri"),
        (Some(r), None) => {
            if !matches!(r.kind.as_str(), "Function" | "Broker") {
                errs.add(format!("{at}.ref.kind"), format!("{:?}: weft can address Function or Broker", r.kind));
            }
            if let Err(m) = check_dns_label(&r.name, 63) {
                errs.add(format!("{at}.ref.name"), m);
            }
        }
        (None, Some(uri)) => {
            let rest = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                errs.add(format!("{at}.uri"), format!("{uri:?} is not an absolute http(s) URL"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventing::{BrokerSpec, KReference, TriggerSpec};

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta { name: Some(name.into()), ..Default::default() }
    }

    fn fields(r: Result<(), ValidationErrors>) -> Vec<String> {
        r.err().map(|e| e.0.into_iter().map(|f| f.field).collect()).unwrap_or_default()
    }

    #[test]
    fn trigger_destination_and_delivery_are_checked_with_the_field_named() {
        let mut t = Trigger { metadata: meta("t"), spec: TriggerSpec::default(), status: None };
        t.spec.broker = "default".into();
        assert_eq!(fields(validate_trigger(&t)), ["spec.subscriber"]);
        t.spec.subscriber.uri = Some("ftp://x".into());
        assert_eq!(fields(validate_trigger(&t)), ["spec.subscriber.uri"]);
        t.spec.subscriber.uri = None;
        t.spec.subscriber.reference =
            Some(KReference { kind: "Service".into(), name: "x".into(), ..Default::default() });
        t.spec.delivery =
            Some(DeliverySpec { retry: Some(-1), backoff_policy: Some("fast".into()), ..Default::default() });
        assert_eq!(
            fields(validate_trigger(&t)),
            ["spec.subscriber.ref.kind", "spec.delivery.retry", "spec.delivery.backoffPolicy"]
        );
        t.spec.subscriber.reference.as_mut().unwrap().kind = "Function".into();
        t.spec.delivery = None;
        assert_eq!(validate_trigger(&t), Ok(()));
    }

    #[test]
    fn broker_backend_is_checked() {
        let b = Broker {
            metadata: meta("b"),
            spec: BrokerSpec { backend: Some("redis".into()), ..Default::default() },
            status: None,
        };
        assert_eq!(fields(validate_broker(&b)), ["spec.backend"]);
        let bad_name = Broker { metadata: meta("B_1"), spec: BrokerSpec::default(), status: None };
        assert_eq!(fields(validate_broker(&bad_name)), ["metadata.name"]);
    }
}
