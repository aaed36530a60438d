//! Kubernetes-style status conditions (`Ready`, plus specific ones).
//!
//! A small own type instead of `k8s_openapi`'s `Condition`: ours keeps the
//! transition time as an RFC 3339 string and `reason`/`message` optional, which is
//! what Knative's duck-typed conditions look like.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The three condition states of the Kubernetes API conventions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// One observation about a resource, e.g. `Ready=False reason=ModuleNotFound`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    pub fn new(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Self {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Self {
            type_: type_.to_string(),
            status,
            reason: opt(reason),
            message: opt(message),
            last_transition_time: None,
        }
    }
}

/// Sets `cond` in `list`, keeping the old transition time when the status did not
/// change (so `lastTransitionTime` means what the conventions say it means).
pub fn set_condition(list: &mut Vec<Condition>, mut cond: Condition, now: &str) {
    match list.iter_mut().find(|c| c.type_ == cond.type_) {
        Some(old) => {
            cond.last_transition_time =
                if old.status == cond.status { old.last_transition_time.clone() } else { Some(now.to_string()) };
            *old = cond;
        }
        None => {
            cond.last_transition_time = Some(now.to_string());
            list.push(cond);
        }
    }
}

/// Looks up a condition by type.
pub fn find<'a>(list: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    list.iter().find(|c| c.type_ == type_)
}

/// True when the condition `type_` is present with status `True`.
pub fn is_true(list: &[Condition], type_: &str) -> bool {
    find(list, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_changes_only_with_status() {
        let mut list = Vec::new();
        set_condition(&mut list, Condition::new("Ready", ConditionStatus::Unknown, "A", ""), "t1");
        set_condition(&mut list, Condition::new("Ready", ConditionStatus::Unknown, "B", ""), "t2");
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t1"));
        assert_eq!(list[0].reason.as_deref(), Some("B"));
        set_condition(&mut list, Condition::new("Ready", ConditionStatus::True, "", ""), "t3");
        assert_eq!(list[0].last_transition_time.as_deref(), Some("t3"));
        assert!(is_true(&list, "Ready"));
        assert_eq!(list.len(), 1);
    }
}
