//! A Trigger as the dispatcher runs it: filters compiled, the delivery spec
//! merged over the Broker's defaults and parsed. Errors name the field, so a
//! bad Trigger is refused when it is applied.

use crate::delivery::{BackoffPolicy, DeliveryPolicy, parse_duration};
use crate::filter::Filter;
use weft_crds::eventing::{DeliverySpec, Destination, Ordering, Trigger};

/// In-flight deliveries per trigger when `spec.maxInFlight` is not set.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100;

/// What a dispatcher needs from a Trigger (destinations are resolved by the caller).
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    pub filter: Filter,
    pub policy: DeliveryPolicy,
    pub ordering: Ordering,
    pub max_in_flight: usize,
    pub dead_letter_sink: Option<Destination>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { field: field.into(), message: message.into() }
}

impl TriggerConfig {
    /// `broker_delivery` is the Broker's `spec.delivery` (defaults for fields the
    /// Trigger leaves out, as in Knative).
    pub fn new(t: &Trigger, broker_delivery: Option<&DeliverySpec>) -> Result<Self, ConfigError> {
        let legacy = t.spec.filter.as_ref().map(|f| &f.attributes);
        let filter = Filter::compile(&t.spec.filters, legacy).map_err(|e| err("spec", e.to_string()))?;
        let merged = merge(t.spec.delivery.as_ref(), broker_delivery);
        let policy = policy(&merged)?;
        Ok(Self {
            filter,
            policy,
            ordering: t.spec.ordering,
            max_in_flight: t.spec.max_in_flight.map_or(DEFAULT_MAX_IN_FLIGHT, |n| n.max(1) as usize),
            dead_letter_sink: merged.dead_letter_sink,
        })
    }
}

/// The Trigger's fields, each falling back to the Broker's.
pub fn merge(own: Option<&DeliverySpec>, broker: Option<&DeliverySpec>) -> DeliverySpec {
    let (o, b) = (own.cloned().unwrap_or_default(), broker.cloned().unwrap_or_default());
    DeliverySpec {
        retry: o.retry.or(b.retry),
        backoff_policy: o.backoff_policy.or(b.backoff_policy),
        backoff_delay: o.backoff_delay.or(b.backoff_delay),
        backoff_max: o.backoff_max.or(b.backoff_max),
        retry_after_max: o.retry_after_max.or(b.retry_after_max),
        timeout: o.timeout.or(b.timeout),
        dead_letter_sink: o.dead_letter_sink.or(b.dead_letter_sink),
    }
}

/// Parses a delivery spec (already merged) into a policy.
pub fn policy(d: &DeliverySpec) -> Result<DeliveryPolicy, ConfigError> {
    let mut p = DeliveryPolicy::default();
    if let Some(r) = d.retry {
        p.retry = u32::try_from(r).map_err(|_| err("spec.delivery.retry", "must not be negative"))?;
    }
    p.policy = match d.backoff_policy.as_deref() {
        None | Some("exponential") => BackoffPolicy::Exponential,
        Some("linear") => BackoffPolicy::Linear,
        Some(other) => return Err(err("spec.delivery.backoffPolicy", format!("{other:?}: use linear or exponential"))),
    };
    let duration = |v: &Option<String>, field: &str| {
        v.as_deref().map(|s| parse_duration(s).map_err(|m| err(format!("spec.delivery.{field}"), m))).transpose()
    };
    if let Some(d) = duration(&d.backoff_delay, "backoffDelay")? {
        p.delay = d;
    }
    p.max = duration(&d.backoff_max, "backoffMax")?;
    p.retry_after_max = duration(&d.retry_after_max, "retryAfterMax")?;
    if let Some(t) = duration(&d.timeout, "timeout")? {
        if t.is_zero() {
            return Err(err("spec.delivery.timeout", "must be more than zero"));
        }
        p.timeout = t;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use weft_crds::eventing::{FilterSpec, TriggerSpec};

    fn trigger(spec: TriggerSpec) -> Trigger {
        Trigger::new("t", spec)
    }

    #[test]
    fn trigger_fields_win_over_the_broker_defaults_field_by_field() {
        let broker = DeliverySpec {
            retry: Some(5),
            backoff_delay: Some("PT1S".into()),
            timeout: Some("PT2S".into()),
            ..Default::default()
        };
        let own = DeliverySpec { retry: Some(1), backoff_policy: Some("linear".into()), ..Default::default() };
        let t = trigger(TriggerSpec { delivery: Some(own), ..Default::default() });
        let c = TriggerConfig::new(&t, Some(&broker)).unwrap();
        assert_eq!(c.policy.retry, 1);
        assert_eq!(c.policy.policy, BackoffPolicy::Linear);
        assert_eq!(c.policy.delay, Duration::from_secs(1));
        assert_eq!(c.policy.timeout, Duration::from_secs(2));
        assert_eq!(c.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |d: DeliverySpec| {
            TriggerConfig::new(&trigger(TriggerSpec { delivery: Some(d), ..Default::default() }), None).unwrap_err()
        };
        assert_eq!(
            bad(DeliverySpec { backoff_delay: Some("1s".into()), ..Default::default() }).field,
            "spec.delivery.backoffDelay"
        );
        assert_eq!(
            bad(DeliverySpec { timeout: Some("PT0S".into()), ..Default::default() }).field,
            "spec.delivery.timeout"
        );
        assert_eq!(
            bad(DeliverySpec { backoff_max: Some("P1M".into()), ..Default::default() }).field,
            "spec.delivery.backoffMax"
        );
        let f = FilterSpec { cesql: Some("type = ".into()), ..Default::default() };
        let e = TriggerConfig::new(&trigger(TriggerSpec { filters: vec![f], ..Default::default() }), None).unwrap_err();
        assert!(e.to_string().contains("spec.filters[0].cesql"), "{e}");
    }
}
