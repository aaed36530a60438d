//! Revision -> Deployment + Service, and the Revision's status from the
//! Deployment's, with `weft_controller::cluster` and `plan_revision_status`.
//!
//! The Deployment is created at the revision's initial scale; after that the
//! autoscaler owns `spec.replicas` (through `/scale`), so later applies leave
//! it out. Server-side apply removes only fields this manager applied before,
//! and the count set at creation belongs to the create, not to the applies.

use crate::{Context, Error, MANAGER, apply_status, failed_already, namespace_of, timed};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use weft_autoscaler::spec::ScalingSpec;
use weft_controller::cluster::{WorkloadError, revision_deployment, revision_service};
use weft_controller::{ReplicaState, plan_revision_status};
use weft_crds::Revision;

/// Reconciles one Revision; requeued by changes to it, its Deployment or Service.
pub async fn reconcile(rev: Arc<Revision>, ctx: Arc<Context>) -> Result<Action, Error> {
    timed(&*rev, &ctx, apply(&rev, &ctx)).await
}

async fn apply(rev: &Revision, ctx: &Context) -> Result<Action, Error> {
    // Being deleted: its Deployment and Service go by owner reference, and an
    // apply now would bring back what the garbage collector just removed.
    if rev.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = namespace_of(rev)?;
    let state = match workload(rev, ctx) {
        Ok((deployment, service)) => {
            let deployment = ensure_deployment(&ns, deployment, ctx).await?;
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
            services.patch(&rev.name_any(), &apply_params(), &Patch::Apply(&service)).await?;
            replica_state(&deployment)
        }
        Err(e) => {
            let conditions = rev.status.as_ref().map(|s| &s.conditions[..]);
            if !failed_already(conditions, Some(e.reason())) {
                ctx.warn(rev, e.reason(), e.to_string()).await;
            }
            ReplicaState { failure: Some((e.reason().into(), e.to_string())), ..Default::default() }
        }
    };
    let status = plan_revision_status(rev, &state, &weft_controller::now_rfc3339());
    if rev.status.as_ref() != Some(&status) {
        apply_status(&ctx.client, rev, MANAGER, &status).await?;
    }
    Ok(Action::await_change())
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// The objects to run `rev`, or why it cannot run.
fn workload(rev: &Revision, ctx: &Context) -> Result<(Deployment, Service), WorkloadError> {
    let annotations = rev.metadata.annotations.clone().unwrap_or_default();
    let cc = ctx.defaults.container_concurrency(rev.spec.container_concurrency);
    let initial = ScalingSpec::from_annotations(&annotations, &ctx.defaults, cc)
        .map_err(|e| WorkloadError::Scaling(e.to_string()))?
        .initial_scale;
    let deployment = revision_deployment(rev, &ctx.settings, i32::try_from(initial).unwrap_or(i32::MAX))?;
    Ok((deployment, revision_service(rev)?))
}

/// Creates the Deployment, or applies it without `replicas` when it exists.
async fn ensure_deployment(ns: &str, mut d: Deployment, ctx: &Context) -> Result<Deployment, Error> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let name = d.metadata.name.clone().unwrap_or_default();
    if api.get_opt(&name).await?.is_none() {
        let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        match api.create(&params, &d).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(s)) if s.code == 409 => {} // raced with another pass: apply below
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = None;
    }
    Ok(api.patch(&name, &apply_params(), &Patch::Apply(&d)).await?)
}

/// Instance counts and the last failure, as the Deployment reports them.
pub fn replica_state(d: &Deployment) -> ReplicaState {
    let status = d.status.clone().unwrap_or_default();
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let observed = status.observed_generation >= d.metadata.generation;
    let conditions = status.conditions.unwrap_or_default();
    // A rollout that stopped progressing (e.g. image pull or crash loop past
    // the progress deadline), or Pods the ReplicaSet could not create.
    let failure = conditions
        .iter()
        .find(|c| {
            (c.type_ == "Progressing" && c.status == "False") || (c.type_ == "ReplicaFailure" && c.status == "True")
        })
        .map(|c| (c.reason.clone().unwrap_or_else(|| c.type_.clone()), c.message.clone().unwrap_or_default()));
    ReplicaState {
        desired,
        actual: status.replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        failure,
        initialized: observed && (desired == 0 || status.ready_replicas.unwrap_or(0) > 0),
    }
}
