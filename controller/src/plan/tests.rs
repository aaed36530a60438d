use super::*;
use std::collections::BTreeSet;
use weft_crds::{EnvVar, FunctionSpec, WasmSource};

const NOW: &str = "2026-01-01T00:00:00Z";

fn base() -> RouteBase {
    RouteBase { domain: "localhost".into(), port: 8080 }
}

fn function(greeting: &str, traffic: Vec<TrafficTarget>) -> Function {
    let mut spec = FunctionSpec::default();
    spec.template.spec.wasm = Some(WasmSource { path: Some("hello.wasm".into()), ..Default::default() });
    spec.template.spec.env.push(EnvVar { name: "GREETING".into(), value: greeting.into() });
    spec.traffic = traffic;
    let mut f = Function::new("hello", spec);
    f.metadata.namespace = Some("default".into());
    f.metadata.uid = Some("uid-1".into());
    f.metadata.generation = Some(1);
    f
}

fn ready(mut r: Revision) -> Revision {
    r.status = Some(plan_revision_status(
        &r,
        &ReplicaState { desired: 1, actual: 1, ready: 1, failure: None, initialized: true },
        NOW,
    ));
    r
}

fn target(rev: &str, percent: u32, tag: Option<&str>) -> TrafficTarget {
    TrafficTarget {
        revision_name: Some(rev.into()),
        percent: Some(percent),
        tag: tag.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn first_reconcile_creates_revision_one_and_waits_for_it() {
    let f = function("Hi", vec![]);
    let plan = plan_function(&f, &[], &base(), NOW);
    let rev = plan.new_revision.clone().unwrap();
    assert_eq!(rev.metadata.name.as_deref(), Some("hello-00001"));
    assert_eq!(rev.metadata.labels.as_ref().unwrap()[FUNCTION_LABEL], "hello");
    assert_eq!(rev.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
    assert_eq!(rev.spec, f.spec.template.spec);
    assert_eq!(plan.status.latest_created_revision_name.as_deref(), Some("hello-00001"));
    assert_eq!(plan.status.latest_ready_revision_name, None);
    assert_eq!(plan.status.url.as_deref(), Some("http://hello.default.localhost:8080"));
    let ready_cond = weft_crds::condition::find(&plan.status.conditions, "Ready").unwrap();
    assert_eq!(ready_cond.status, ConditionStatus::Unknown);
    assert_eq!(plan.routed, BTreeSet::from(["hello-00001".to_string()]));
}

#[test]
fn ready_revision_makes_the_function_ready_and_routed() {
    let f = function("Hi", vec![]);
    let rev = ready(plan_function(&f, &[], &base(), NOW).new_revision.unwrap());
    let plan = plan_function(&f, &[rev], &base(), NOW);
    assert!(plan.new_revision.is_none(), "unchanged template must not create a revision");
    assert_eq!(plan.status.latest_ready_revision_name.as_deref(), Some("hello-00001"));
    assert_eq!(plan.status.traffic[0].revision_name.as_deref(), Some("hello-00001"));
    assert_eq!(plan.status.traffic[0].percent, Some(100));
    assert!(is_true(&plan.status.conditions, "Ready"));
    assert_eq!(plan.status.observed_generation, Some(1));
}

#[test]
fn template_change_creates_the_next_revision_and_keeps_old_routes_until_ready() {
    let r1 = ready(plan_function(&function("Hi", vec![]), &[], &base(), NOW).new_revision.unwrap());
    let mut f2 = function("Hej", vec![]);
    f2.metadata.generation = Some(2);
    let plan = plan_function(&f2, std::slice::from_ref(&r1), &base(), NOW);
    let r2 = plan.new_revision.clone().unwrap();
    assert_eq!(r2.metadata.name.as_deref(), Some("hello-00002"));
    assert_eq!(r2.metadata.labels.as_ref().unwrap()[GENERATION_LABEL], "2");
    // Until 00002 is ready, traffic stays on 00001 and both run.
    assert_eq!(plan.status.traffic[0].revision_name.as_deref(), Some("hello-00001"));
    assert_eq!(plan.routed.len(), 2, "both run until 00002 is ready");
    // Once it is ready, it takes the traffic and 00001 scales to zero.
    let plan = plan_function(&f2, &[r1, ready(r2)], &base(), NOW);
    assert_eq!(plan.status.traffic[0].revision_name.as_deref(), Some("hello-00002"));
    assert_eq!(plan.routed, BTreeSet::from(["hello-00002".to_string()]));
}

#[test]
fn split_and_tags_resolve_to_revisions_with_urls() {
    let r1 = ready(plan_function(&function("Hi", vec![]), &[], &base(), NOW).new_revision.unwrap());
    let f = function(
        "Hi",
        vec![
            target("hello-00001", 90, None),
            TrafficTarget {
                latest_revision: Some(true),
                percent: Some(10),
                tag: Some("canary".into()),
                ..Default::default()
            },
        ],
    );
    let plan = plan_function(&f, &[r1], &base(), NOW);
    let t = &plan.status.traffic;
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].revision_name.as_deref(), Some("hello-00001"));
    assert_eq!(t[1].url.as_deref(), Some("http://canary-hello.default.localhost:8080"));
    assert!(is_true(&plan.status.conditions, "RoutesReady"));
}

#[test]
fn missing_revision_in_traffic_is_a_route_failure() {
    let r1 = ready(plan_function(&function("Hi", vec![]), &[], &base(), NOW).new_revision.unwrap());
    let f = function("Hi", vec![target("hello-00009", 100, None)]);
    let plan = plan_function(&f, &[r1], &base(), NOW);
    let cond = weft_crds::condition::find(&plan.status.conditions, "Ready").unwrap();
    assert_eq!((cond.status, cond.reason.as_deref()), (ConditionStatus::False, Some("RevisionMissing")));
    assert!(plan.status.traffic.is_empty());
}

#[test]
fn failing_revision_explains_itself_up_to_the_function() {
    let f = function("Hi", vec![]);
    let mut r1 = plan_function(&f, &[], &base(), NOW).new_revision.unwrap();
    let crash = ReplicaState {
        desired: 1,
        actual: 0,
        ready: 0,
        failure: Some(("ExitCode".into(), "exited with 1".into())),
        initialized: false,
    };
    r1.status = Some(plan_revision_status(&r1, &crash, NOW));
    let plan = plan_function(&f, &[r1], &base(), NOW);
    let cond = weft_crds::condition::find(&plan.status.conditions, "Ready").unwrap();
    assert_eq!(cond.status, ConditionStatus::False);
    assert_eq!(cond.reason.as_deref(), Some("ExitCode"));
}

#[test]
fn revision_status_counts_and_conditions() {
    let r = plan_function(&function("Hi", vec![]), &[], &base(), NOW).new_revision.unwrap();
    let s = plan_revision_status(
        &r,
        &ReplicaState { desired: 2, actual: 2, ready: 0, failure: None, initialized: true },
        NOW,
    );
    assert_eq!((s.desired_replicas, s.actual_replicas, s.ready_replicas), (Some(2), Some(2), Some(0)));
    assert_eq!(weft_crds::condition::find(&s.conditions, "Ready").unwrap().status, ConditionStatus::Unknown);
    // Scaled to zero after being ready: still Ready, but not Active.
    let r = ready(r);
    let s = plan_revision_status(&r, &ReplicaState::default(), NOW);
    assert!(is_true(&s.conditions, "Ready"));
    assert_eq!(weft_crds::condition::find(&s.conditions, "Active").unwrap().reason.as_deref(), Some("NoTraffic"));
}

#[test]
fn a_crashing_revision_keeps_its_route() {
    let f = function("Hi", vec![]);
    let r1 = ready(plan_function(&f, &[], &base(), NOW).new_revision.unwrap());
    let mut f = f;
    f.status = Some(plan_function(&f, std::slice::from_ref(&r1), &base(), NOW).status);
    let mut r1 = r1;
    let crash = ReplicaState {
        desired: 1,
        actual: 0,
        ready: 0,
        failure: Some(("ExitCode".into(), "x".into())),
        initialized: false,
    };
    r1.status = Some(plan_revision_status(&r1, &crash, NOW));
    let plan = plan_function(&f, &[r1], &base(), NOW);
    assert_eq!(plan.status.latest_ready_revision_name.as_deref(), Some("hello-00001"));
    assert_eq!(plan.status.traffic[0].revision_name.as_deref(), Some("hello-00001"));
    assert!(!is_true(&plan.status.conditions, "Ready"));
}

#[test]
fn a_revision_at_initial_scale_zero_is_ready_but_inactive() {
    let r = plan_function(&function("Hi", vec![]), &[], &base(), NOW).new_revision.unwrap();
    let waiting = plan_revision_status(&r, &ReplicaState::default(), NOW);
    assert_eq!(weft_crds::condition::find(&waiting.conditions, "Ready").unwrap().status, ConditionStatus::Unknown);
    let at_zero = plan_revision_status(&r, &ReplicaState { initialized: true, ..Default::default() }, NOW);
    assert!(is_true(&at_zero.conditions, "Ready"));
    assert!(!is_true(&at_zero.conditions, "Active"));
}
