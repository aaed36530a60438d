//! The embedded resource store: Kubernetes-shaped objects persisted in a redb file
//! in the state directory, with a watch channel.
//!
//! It keeps the API server's bookkeeping that the controllers rely on: `uid`,
//! `creationTimestamp`, `generation` (bumped only when `spec` changes) and
//! `resourceVersion` (bumped on every change). Every write is one redb
//! transaction, durable when the call returns.

use kube::Resource;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::path::Path;
use thiserror::Error;
use tokio::sync::broadcast;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RESOURCE_VERSION: &str = "resourceVersion";

/// A resource type the store can hold.
pub trait Object: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone {}
impl<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone> Object for K {}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("open the resource store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("resource store: {0}")]
    Db(String),
    #[error("{key} does not encode or decode as JSON: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} has no metadata.name")]
    NoName(String),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(impl From<$t> for StoreError {
        fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
    })*};
}
db_err!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// What changed; watchers re-read the object (level-triggered, as kube-rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Plural resource name, e.g. `functions`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// Result of [`EmbeddedStore::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
}

pub struct EmbeddedStore {
    db: Database,
    events: broadcast::Sender<WatchEvent>,
    /// When a status write last waited for fsync.
    last_durable_status: std::sync::Mutex<tokio::time::Instant>,
}

/// Status writes between two durable ones are at most this far apart.
const DURABLE_STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn key_of<K: Object>(namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", K::plural(&()))
}

fn prefix_of<K: Object>(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{}/{ns}/", K::plural(&())),
        None => format!("{}/", K::plural(&())),
    }
}

fn decode<K: Object>(key: &str, bytes: &[u8]) -> Result<K, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode { key: key.into(), source })
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db =
            Database::create(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        let (events, _) = broadcast::channel(1024);
        let store = Self { db, events, last_durable_status: std::sync::Mutex::new(tokio::time::Instant::now()) };
        store.init_tables()?;
        Ok(store)
    }

    fn init_tables(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(OBJECTS)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(())
    }

    /// Subscribes to changes. A lagging receiver should re-list everything.
    pub fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        self.events.subscribe()
    }

    pub fn get<K: Object>(&self, namespace: &str, name: &str) -> Result<Option<K>, StoreError> {
        let key = key_of::<K>(namespace, name);
        let tx = self.db.begin_read()?;
        let table = tx.open_table(OBJECTS)?;
        let found = table.get(key.as_str())?;
        found.map(|v| decode(&key, v.value())).transpose()
    }

    /// Lists objects of a kind, in one namespace or all, ordered by namespace/name.
    pub fn list<K: Object>(&self, namespace: Option<&str>) -> Result<Vec<K>, StoreError> {
        self.scan(&prefix_of::<K>(namespace))
    }

    /// Lists objects of a kind in one namespace whose names start with `prefix`.
    pub fn list_prefixed<K: Object>(&self, namespace: &str, prefix: &str) -> Result<Vec<K>, StoreError> {
        self.scan(&format!("{}{prefix}", prefix_of::<K>(Some(namespace))))
    }

    fn scan<K: Object>(&self, prefix: &str) -> Result<Vec<K>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(OBJECTS)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..)? {
            let (k, v) = entry?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Creates or updates an object from what a user (or a controller) wrote. The
    /// stored status and server-set metadata are kept; `generation` is bumped when
    /// the spec changed.
    pub fn apply<K: Object>(&self, obj: &K) -> Result<(K, ApplyOutcome), StoreError> {
        let meta = obj.meta();
        let name = meta.name.clone().ok_or_else(|| StoreError::NoName(K::kind(&()).to_string()))?;
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let key = key_of::<K>(&ns, &name);
        let mut incoming =
            serde_json::to_value(obj).map_err(|source| StoreError::Decode { key: key.clone(), source })?;
        incoming["metadata"]["namespace"] = json!(ns);
        let tx = self.db.begin_write()?;
        let (stored, outcome) = {
            let mut table = tx.open_table(OBJECTS)?;
            let (merged, outcome) = merge(read_json(&table, &key)?, incoming);
            if outcome == ApplyOutcome::Unchanged {
                (merged, outcome)
            } else {
                (self.write_json(&tx, &mut table, &key, merged)?, outcome)
            }
        };
        if finish(tx, outcome != ApplyOutcome::Unchanged)? {
            self.notify::<K>(&ns, &name);
        }
        let typed = serde_json::from_value(stored).map_err(|source| StoreError::Decode { key, source })?;
        Ok((typed, outcome))
    }

    /// Replaces the status of an existing object; returns false if it is gone.
    /// Writing an equal status is a no-op (no event, no disk write), so
    /// reconcilers converge.
    ///
    /// Status is observed state that the controllers recompute after a restart
    /// (as in Kubernetes), so it is committed without waiting for fsync, except
    /// once a second (redb reuses freed pages only after a durable commit, so
    /// this bounds the file's growth). This keeps an fsync off every replica
    /// change, which is on the path of a cold start.
    pub fn update_status<K: Object>(
        &self,
        namespace: &str,
        name: &str,
        status: &impl Serialize,
    ) -> Result<bool, StoreError> {
        let key = key_of::<K>(namespace, name);
        let status = serde_json::to_value(status).map_err(|source| StoreError::Decode { key: key.clone(), source })?;
        let mut tx = self.db.begin_write()?;
        if !self.durable_status_due() {
            tx.set_durability(redb::Durability::None).map_err(|e| StoreError::Db(e.to_string()))?;
        }
        let changed = {
            let mut table = tx.open_table(OBJECTS)?;
            let Some(mut obj) = read_json(&table, &key)? else {
                return Ok(false);
            };
            let changed = obj.get("status") != Some(&status);
            if changed {
                obj["status"] = status;
                self.write_json(&tx, &mut table, &key, obj)?;
            }
            changed
        };
        if finish(tx, changed)? {
            self.notify::<K>(namespace, name);
        }
        Ok(true)
    }

    /// Deletes an object; returns whether it existed.
    pub fn delete<K: Object>(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let key = key_of::<K>(namespace, name);
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(OBJECTS)?.remove(key.as_str())?.is_some();
        tx.commit()?;
        if existed {
            self.notify::<K>(namespace, name);
        }
        Ok(existed)
    }

    /// Whether this status write should be durable (one a second at most).
    fn durable_status_due(&self) -> bool {
        let mut last = self.last_durable_status.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.elapsed() >= DURABLE_STATUS_EVERY;
        if due {
            *last = tokio::time::Instant::now();
        }
        due
    }

    /// Stamps `obj` with the next `resourceVersion` and stores it; returns it.
    fn write_json(
        &self,
        tx: &redb::WriteTransaction,
        table: &mut redb::Table<&str, &[u8]>,
        key: &str,
        obj: Value,
    ) -> Result<Value, StoreError> {
        let obj = self.stamp(tx, obj)?;
        let bytes = serde_json::to_vec(&obj).map_err(|source| StoreError::Decode { key: key.into(), source })?;
        table.insert(key, bytes.as_slice())?;
        Ok(obj)
    }

    /// Sets the next `resourceVersion` on an object inside a write transaction.
    fn stamp(&self, tx: &redb::WriteTransaction, mut obj: Value) -> Result<Value, StoreError> {
        let mut meta = tx.open_table(META)?;
        let rv = meta.get(RESOURCE_VERSION)?.map(|v| v.value()).unwrap_or(0) + 1;
        meta.insert(RESOURCE_VERSION, rv)?;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        Ok(obj)
    }

    fn notify<K: Object>(&self, namespace: &str, name: &str) {
        // No receiver is fine: nobody is watching yet.
        let _ = self.events.send(WatchEvent {
            kind: K::plural(&()).to_string(),
            namespace: namespace.into(),
            name: name.into(),
        });
    }
}

/// The object stored at `key`, as JSON.
fn read_json(table: &redb::Table<&str, &[u8]>, key: &str) -> Result<Option<Value>, StoreError> {
    let Some(v) = table.get(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(v.value()).map(Some).map_err(|source| StoreError::Decode { key: key.into(), source })
}

/// Commits a write transaction that changed something, aborts one that did
/// not (no disk write); returns `changed`.
fn finish(tx: redb::WriteTransaction, changed: bool) -> Result<bool, StoreError> {
    if changed {
        tx.commit()?
    } else {
        tx.abort()?
    }
    Ok(changed)
}

/// Merges what was written into what is stored, as the API server does for an
/// update: server-owned metadata and status stay, user-owned fields are replaced.
fn merge(old: Option<Value>, mut new: Value) -> (Value, ApplyOutcome) {
    let Some(old) = old else {
        let meta = &mut new["metadata"];
        meta["uid"] = json!(new_uid());
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!(crate::now_rfc3339());
        return (new, ApplyOutcome::Created);
    };
    for field in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
        new["metadata"][field] = old["metadata"][field].clone();
    }
    if let Some(status) = old.get("status") {
        new["status"] = status.clone();
    }
    if new == old {
        return (old, ApplyOutcome::Unchanged);
    }
    if new.get("spec") != old.get("spec") {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(generation);
    }
    (new, ApplyOutcome::Configured)
}

fn new_uid() -> String {
    let h = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests;
