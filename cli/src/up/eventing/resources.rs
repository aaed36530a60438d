//! Where the eventing controller reads Brokers, Triggers and PingSources and
//! writes their status: the embedded store locally, the Kubernetes API in a
//! cluster (`cluster::eventbus`).

use futures::future::BoxFuture;
use serde_json::Value;
use weft_controller::EmbeddedStore;
use weft_crds::Function;
use weft_crds::eventing::{Broker, PingSource, Trigger};

pub trait Resources: Send + Sync {
    fn brokers(&self) -> Result<Vec<Broker>, String>;
    fn triggers(&self) -> Result<Vec<Trigger>, String>;
    fn pingsources(&self) -> Result<Vec<PingSource>, String>;
    /// Whether a Function or Broker `ns/name` exists.
    fn exists(&self, kind: &str, ns: &str, name: &str) -> Result<bool, String>;
    /// Replaces the object's status (`kind` is Broker, Trigger or PingSource).
    fn write_status<'a>(
        &'a self,
        kind: &'a str,
        ns: &'a str,
        name: &'a str,
        status: Value,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Keeps a Broker from going away before its log is deleted: a finalizer
    /// in a cluster. Locally nothing: deleting a Broker is seen at once.
    fn hold<'a>(&'a self, _broker: &'a Broker) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    /// Lets a deleted Broker go, its log deleted.
    fn release<'a>(&'a self, _broker: &'a Broker) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

impl Resources for EmbeddedStore {
    fn brokers(&self) -> Result<Vec<Broker>, String> {
        self.list::<Broker>(None).map_err(|e| e.to_string())
    }

    fn triggers(&self) -> Result<Vec<Trigger>, String> {
        self.list::<Trigger>(None).map_err(|e| e.to_string())
    }

    fn pingsources(&self) -> Result<Vec<PingSource>, String> {
        self.list::<PingSource>(None).map_err(|e| e.to_string())
    }

    fn exists(&self, kind: &str, ns: &str, name: &str) -> Result<bool, String> {
        let found = match kind {
            "Function" => self.get::<Function>(ns, name).map(|o| o.is_some()),
            "Broker" => self.get::<Broker>(ns, name).map(|o| o.is_some()),
            other => return Err(format!("weft cannot address a {other}")),
        };
        found.map_err(|e| e.to_string())
    }

    /// A no-op when unchanged (the store compares), so reconciles converge.
    fn write_status<'a>(
        &'a self,
        kind: &'a str,
        ns: &'a str,
        name: &'a str,
        status: Value,
    ) -> BoxFuture<'a, Result<(), String>> {
        let write = move || match kind {
            "Broker" => self.update_status::<Broker>(ns, name, &status).map(drop),
            "Trigger" => self.update_status::<Trigger>(ns, name, &status).map(drop),
            _ => self.update_status::<PingSource>(ns, name, &status).map(drop),
        };
        Box::pin(async move { tokio::task::block_in_place(write).map_err(|e| e.to_string()) })
    }
}
