//! Pure reconcile plans: given the stored state and `now`, what should exist and
//! what the status should say. No I/O here; the caller applies the plan.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use std::collections::BTreeSet;
use weft_crds::condition::{ConditionStatus, is_true, set_condition};
use weft_crds::names::{function_host, revision_name, tag_host};
use weft_crds::{
    Condition, FUNCTION_LABEL, Function, FunctionStatus, GENERATION_LABEL, Revision, RevisionStatus, TrafficTarget,
};

/// Where functions are reachable: `http://<fn>.<ns>.<domain>[:port]`.
#[derive(Debug, Clone)]
pub struct RouteBase {
    pub domain: String,
    pub port: u16,
}

impl RouteBase {
    fn url(&self, host: &str) -> String {
        if self.port == 80 { format!("http://{host}") } else { format!("http://{host}:{}", self.port) }
    }
}

/// What reconciling one Function should do.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionPlan {
    /// A revision to create because the template changed.
    pub new_revision: Option<Revision>,
    /// The Function's status as it should be.
    pub status: FunctionStatus,
    /// Revisions that receive traffic (or are the latest created): the
    /// autoscaler may keep them at `min-scale`; the others scale to zero.
    pub routed: BTreeSet<String>,
}

/// Plans one Function given its revisions (any order).
pub fn plan_function(f: &Function, revisions: &[Revision], base: &RouteBase, now: &str) -> FunctionPlan {
    let name = f.metadata.name.clone().unwrap_or_default();
    let ns = f.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut revs: Vec<&Revision> = revisions.iter().collect();
    revs.sort_by_key(|r| revision_number(r));
    let latest = revs.last().copied();
    let new_revision = match latest {
        Some(r) if template_matches(f, r) => None,
        _ => Some(new_revision(f, latest.map_or(1, |r| revision_number(r) + 1))),
    };
    let latest_created = new_revision.as_ref().or(latest).and_then(|r| r.metadata.name.clone());
    let latest_ready = latest_ready(f, &revs);

    let mut status = f.status.clone().unwrap_or_default();
    status.observed_generation = f.metadata.generation;
    status.latest_created_revision_name = latest_created.clone();
    status.latest_ready_revision_name = latest_ready.clone();
    status.url = Some(base.url(&function_host(&name, &ns, &base.domain)));
    let traffic = resolve_traffic(f, latest_ready.as_deref(), &revs, base, &name, &ns);
    set_configuration_condition(&mut status.conditions, new_revision.as_ref().or(latest), now);
    set_route_condition(&mut status.conditions, &traffic, now);
    status.traffic = traffic.unwrap_or_default();
    set_ready(&mut status.conditions, now);

    let routed = routed(&revs, new_revision.as_ref(), latest_created.as_deref(), &status.traffic);
    FunctionPlan { new_revision, status, routed }
}

/// The `n` of `<function>-0000n`; revisions not named that way sort first.
pub fn revision_number(r: &Revision) -> u64 {
    let name = r.metadata.name.as_deref().unwrap_or("");
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

/// The newest revision that is ready, or that was the latest ready one before:
/// as in Knative, a revision whose instances crash keeps its traffic (and
/// callers get 503s) instead of losing its route.
fn latest_ready(f: &Function, revs: &[&Revision]) -> Option<String> {
    let previous = f.status.as_ref().and_then(|s| s.latest_ready_revision_name.as_deref());
    revs.iter()
        .rev()
        .find(|r| revision_ready(r) || r.metadata.name.as_deref() == previous)
        .and_then(|r| r.metadata.name.clone())
}

fn revision_ready(r: &Revision) -> bool {
    r.status.as_ref().is_some_and(|s| is_true(&s.conditions, "Ready"))
}

/// A revision matches the template when spec, annotations and user labels are equal.
fn template_matches(f: &Function, r: &Revision) -> bool {
    let t = &f.spec.template;
    let mut labels = r.metadata.labels.clone().unwrap_or_default();
    labels.remove(FUNCTION_LABEL);
    labels.remove(GENERATION_LABEL);
    r.spec == t.spec
        && r.metadata.annotations.clone().unwrap_or_default() == t.metadata.annotations
        && labels == t.metadata.labels
}

fn new_revision(f: &Function, n: u64) -> Revision {
    let name = f.metadata.name.clone().unwrap_or_default();
    let t = &f.spec.template;
    let mut labels = t.metadata.labels.clone();
    labels.insert(FUNCTION_LABEL.into(), name.clone());
    labels.insert(GENERATION_LABEL.into(), f.metadata.generation.unwrap_or(1).to_string());
    let metadata = ObjectMeta {
        name: Some(revision_name(&name, n)),
        namespace: f.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: (!t.metadata.annotations.is_empty()).then(|| t.metadata.annotations.clone()),
        owner_references: Some(vec![controller_ref(f)]),
        ..Default::default()
    };
    Revision { metadata, spec: t.spec.clone(), status: None }
}

/// The reference that makes `owner` the controller of an object it creates:
/// in a cluster, Kubernetes' garbage collector deletes the object with its owner.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Resolves `spec.traffic` to revision names, or says (reason, message) why a
/// target cannot be routed yet (no ready revision, or a named one that is missing).
fn resolve_traffic(
    f: &Function,
    latest_ready: Option<&str>,
    revs: &[&Revision],
    base: &RouteBase,
    name: &str,
    ns: &str,
) -> Result<Vec<TrafficTarget>, (String, String)> {
    let default = [TrafficTarget { latest_revision: Some(true), percent: Some(100), ..Default::default() }];
    let spec = if f.spec.traffic.is_empty() { &default[..] } else { &f.spec.traffic[..] };
    spec.iter()
        .map(|t| {
            let revision = match (&t.revision_name, latest_ready) {
                (Some(r), _) if revs.iter().any(|x| x.metadata.name.as_deref() == Some(r)) => r.clone(),
                (Some(r), _) => {
                    return Err(("RevisionMissing".into(), format!("revision {r:?} does not exist")));
                }
                (None, Some(r)) => r.to_string(),
                (None, None) => {
                    return Err(("RevisionNotReady".into(), "waiting for the first revision to become ready".into()));
                }
            };
            let url = t.tag.as_deref().map(|tag| base.url(&tag_host(tag, name, ns, &base.domain)));
            Ok(TrafficTarget { revision_name: Some(revision), url, ..t.clone() })
        })
        .collect()
}

fn set_configuration_condition(conds: &mut Vec<Condition>, latest: Option<&Revision>, now: &str) {
    let rc = latest.and_then(|r| r.status.as_ref()).map(|s| s.conditions.clone()).unwrap_or_default();
    let cond = match weft_crds::condition::find(&rc, "Ready") {
        Some(c) if c.status == ConditionStatus::True => {
            Condition::new("ConfigurationsReady", ConditionStatus::True, "", "")
        }
        Some(c) => Condition { type_: "ConfigurationsReady".into(), last_transition_time: None, ..c.clone() },
        None => Condition::new(
            "ConfigurationsReady",
            ConditionStatus::Unknown,
            "RevisionDeploying",
            "the latest revision is being created",
        ),
    };
    set_condition(conds, cond, now);
}

fn set_route_condition(conds: &mut Vec<Condition>, traffic: &Result<Vec<TrafficTarget>, (String, String)>, now: &str) {
    let cond = match traffic {
        Ok(_) => Condition::new("RoutesReady", ConditionStatus::True, "", ""),
        Err((reason, message)) if reason == "RevisionNotReady" => {
            Condition::new("RoutesReady", ConditionStatus::Unknown, reason, message)
        }
        Err((reason, message)) => Condition::new("RoutesReady", ConditionStatus::False, reason, message),
    };
    set_condition(conds, cond, now);
}

/// `Ready` is the conjunction of the others, with the first unhappy one's reason.
fn set_ready(conds: &mut Vec<Condition>, now: &str) {
    let worst = conds.iter().filter(|c| c.type_ != "Ready").min_by_key(|c| match c.status {
        ConditionStatus::False => 0,
        ConditionStatus::Unknown => 1,
        ConditionStatus::True => 2,
    });
    let ready = match worst {
        Some(c) if c.status != ConditionStatus::True => Condition { type_: "Ready".into(), ..c.clone() },
        _ => Condition::new("Ready", ConditionStatus::True, "", ""),
    };
    set_condition(conds, ready, now);
}

/// Revisions in the resolved traffic (with a share or a tag) and the latest
/// created one; the rest have no route (Knative scales those to zero).
fn routed(
    revs: &[&Revision],
    new: Option<&Revision>,
    latest: Option<&str>,
    traffic: &[TrafficTarget],
) -> BTreeSet<String> {
    let in_traffic = |n: &str| {
        traffic.iter().any(|t| t.revision_name.as_deref() == Some(n) && (t.percent.unwrap_or(0) > 0 || t.tag.is_some()))
    };
    revs.iter()
        .copied()
        .chain(new)
        .filter_map(|r| r.metadata.name.clone())
        .filter(|n| latest == Some(n.as_str()) || in_traffic(n))
        .collect()
}

/// What the process supervisor reports about one revision's instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaState {
    pub desired: i32,
    pub actual: i32,
    pub ready: i32,
    /// The last failure (reason, message), e.g. a crash or a compile error.
    pub failure: Option<(String, String)>,
    /// The autoscaler reached the initial scale once (immediately for an
    /// initial scale of 0): at zero the revision is ready, just inactive.
    pub initialized: bool,
}

/// The status a revision should have, given its instances.
pub fn plan_revision_status(r: &Revision, state: &ReplicaState, now: &str) -> RevisionStatus {
    let mut status = r.status.clone().unwrap_or_default();
    status.observed_generation = r.metadata.generation;
    status.desired_replicas = Some(state.desired);
    status.actual_replicas = Some(state.actual);
    status.ready_replicas = Some(state.ready);
    let was_ready = is_true(&status.conditions, "Ready");
    let ready = match (&state.failure, state.ready, state.desired) {
        (_, n, _) if n > 0 => Condition::new("Ready", ConditionStatus::True, "", ""),
        (None, _, 0) if was_ready || state.initialized => Condition::new("Ready", ConditionStatus::True, "", ""),
        (Some((reason, message)), _, _) => Condition::new("Ready", ConditionStatus::False, reason, message),
        (None, _, _) => {
            Condition::new("Ready", ConditionStatus::Unknown, "Deploying", "waiting for an instance to become ready")
        }
    };
    let active = if state.ready > 0 {
        Condition::new("Active", ConditionStatus::True, "", "")
    } else if state.desired == 0 {
        Condition::new(
            "Active",
            ConditionStatus::False,
            "NoTraffic",
            "the revision has no traffic and runs no instance",
        )
    } else {
        Condition::new("Active", ConditionStatus::Unknown, "Activating", "instances are starting")
    };
    set_condition(&mut status.conditions, ready, now);
    set_condition(&mut status.conditions, active, now);
    status
}

#[cfg(test)]
mod tests;
