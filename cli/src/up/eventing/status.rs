//! Status of the eventing resources: `Ready` with a reason, the address
//! (Broker `status.address.url`, Trigger `subscriberUri`, PingSource
//! `sinkUri`), and `observedGeneration`.

use super::resources::Resources;
use serde_json::{Value, json};
use weft_controller::now_rfc3339;
use weft_controller::store::Object;
use weft_crds::condition::set_condition;
use weft_crds::eventing::{Broker, PingSource, Trigger};
use weft_crds::{Condition, ConditionStatus};

/// What a reconcile found.
pub struct Readiness {
    /// The resolved address, when ready.
    pub address: Option<String>,
    pub dead_letter: Option<String>,
    pub problem: Option<(&'static str, String)>,
}

impl Readiness {
    pub fn ready(address: String) -> Self {
        Self { address: Some(address), dead_letter: None, problem: None }
    }

    pub fn not(reason: &'static str, message: impl Into<String>) -> Self {
        Self { address: None, dead_letter: None, problem: Some((reason, message.into())) }
    }
}

/// An eventing resource: its conditions as the reconcile read them.
pub trait WithConditions: Object {
    fn conditions(&self) -> &[Condition];
}

macro_rules! with_conditions {
    ($($k:ty),*) => {$(impl WithConditions for $k {
        fn conditions(&self) -> &[Condition] {
            self.status.as_ref().map_or(&[], |s| &s.conditions)
        }
    })*};
}
with_conditions!(Broker, Trigger, PingSource);

/// Writes the status of `obj`, as listed by this reconcile (a no-op when
/// unchanged, so reconciles converge).
pub async fn write_status<K: WithConditions>(store: &dyn Resources, obj: &K, r: Readiness) -> Result<(), String> {
    let meta = obj.meta();
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let name = meta.name.as_deref().unwrap_or_default();
    let mut conditions = obj.conditions().to_vec();
    let cond = match &r.problem {
        None => Condition::new("Ready", ConditionStatus::True, "", ""),
        Some((reason, message)) => Condition::new("Ready", ConditionStatus::False, reason, message),
    };
    set_condition(&mut conditions, cond, &now_rfc3339());
    let mut status = json!({ "observedGeneration": meta.generation, "conditions": conditions });
    match K::kind(&()).as_ref() {
        "Broker" => status["address"] = r.address.map_or(Value::Null, |url| json!({ "url": url })),
        "Trigger" => {
            status["subscriberUri"] = json!(r.address);
            status["deadLetterSinkUri"] = json!(r.dead_letter);
        }
        _ => status["sinkUri"] = json!(r.address),
    }
    strip_nulls(&mut status);
    let kind = K::kind(&());
    store.write_status(&kind, ns, name, status).await
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, v| !v.is_null());
    }
}
