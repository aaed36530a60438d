//! Leader election on a `coordination.k8s.io/v1` Lease, so two controller
//! replicas are safe: only the holder reconciles.
//!
//! The holder renews every `duration / 3`; another replica takes the Lease
//! once it has not been renewed for `duration`. Every write carries the
//! `resourceVersion` it read, so two replicas taking an expired Lease at once
//! conflict, and only one wins. A holder that cannot renew before its Lease
//! expires stops leading (the caller exits and is restarted as a follower).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use std::time::Duration;

/// Who holds the Lease, from the point of view of one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// This candidate holds it (renewed or taken now).
    ByUs,
    /// Another candidate holds an unexpired Lease.
    ByOther(String),
}

/// The decision for one look at the Lease: pure, so it is tested without a
/// clock or an API server.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else { return Decision::Create };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me || holder.is_empty() {
        return Decision::Take;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let renewed = spec.renew_time.as_ref().map(|t| t.0).or(spec.acquire_time.as_ref().map(|t| t.0));
    match renewed {
        Some(t) if t.checked_add(duration).is_ok_and(|expiry| expiry > now) => Decision::Follow(holder),
        _ => Decision::Take,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it, held by us.
    Create,
    /// Ours, free or expired: write ourselves as holder.
    Take,
    /// Someone else's and fresh.
    Follow(String),
}

pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
    duration: Duration,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, me: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.into(), me: me.into(), duration }
    }

    /// How often a holder renews.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// Looks at the Lease once, taking or renewing it when it may.
    pub async fn try_acquire(&self) -> Result<Held, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let now = Timestamp::now();
        match decide(current.as_ref().and_then(|l| l.spec.as_ref()), &self.me, now) {
            Decision::Follow(holder) => Ok(Held::ByOther(holder)),
            Decision::Create => {
                let lease = Lease { metadata: self.meta(None), spec: Some(self.spec(None, now)) };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Held::ByUs),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Held::ByOther("another candidate".into())),
                    Err(e) => Err(e),
                }
            }
            Decision::Take => {
                let current = current.unwrap_or_default();
                let version = current.metadata.resource_version.clone();
                let previous = current.spec.as_ref();
                let lease = Lease { metadata: self.meta(version), spec: Some(self.spec(previous, now)) };
                match self.api.replace(&self.name, &PostParams::default(), &lease).await {
                    Ok(_) => Ok(Held::ByUs),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Held::ByOther("another candidate".into())),
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn meta(&self, resource_version: Option<String>) -> ObjectMeta {
        ObjectMeta { name: Some(self.name.clone()), resource_version, ..Default::default() }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let ours = previous.is_some_and(|p| p.holder_identity.as_deref() == Some(&self.me));
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.me.clone()),
            lease_duration_seconds: Some(i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: if ours { previous.and_then(|p| p.acquire_time.clone()) } else { Some(MicroTime(now)) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || previous.is_none() { transitions } else { transitions + 1 }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(now - SignedDuration::from_secs(renewed_secs_ago))),
            ..Default::default()
        }
    }

    #[test]
    fn a_fresh_lease_of_another_is_followed_an_expired_one_taken() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&spec("b", 5, 15, now)), "a", now), Decision::Follow("b".into()));
        assert_eq!(decide(Some(&spec("b", 16, 15, now)), "a", now), Decision::Take);
        assert_eq!(decide(Some(&spec("a", 5, 15, now)), "a", now), Decision::Take, "our own: renew");
        assert_eq!(decide(Some(&spec("", 1, 15, now)), "a", now), Decision::Take, "released");
        let never_renewed = LeaseSpec { holder_identity: Some("b".into()), ..Default::default() };
        assert_eq!(decide(Some(&never_renewed), "a", now), Decision::Take);
    }
}
