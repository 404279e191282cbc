//! What several nodes sharing one store coordinate through: leases and cluster-wide locks.

use async_trait::async_trait;

use super::Millis;
use crate::{Digest, StoreError};

/// Holds a cluster-wide blob lock while alive (see `MetadataStore::lock_blob`).
pub type BlobLockGuard = Box<dyn std::any::Any + Send + Sync>;

/// Where `ClusterStore::watch_changes` reports.
pub trait ChangeSink: Send + Sync {
    /// From now on every committed change is reported (until `watch_changes` returns).
    fn listening(&self);
    /// Tags or a manifest's storage class changed somewhere in the cluster (committed).
    fn tags_changed(&self);
}

#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// True when other processes (other berth nodes) change these rows too, so nothing read
    /// may be cached beyond one request.
    fn is_shared(&self) -> bool {
        false
    }

    /// Takes the named lease (a background job that must run once across the cluster) for
    /// `holder` until `until`, if it is free, has expired (its end is before `now`), or is
    /// already `holder`'s (a renewal). True when `holder` holds it now.
    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError>;

    /// Gives the lease up if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Holds a cluster-wide lock on one blob digest until the returned guard drops, so a
    /// garbage collector deleting a blob's bytes and a node committing the same bytes
    /// never interleave. None where only one process uses the store (the service's
    /// in-process lock covers that).
    async fn lock_blob(&self, _digest: &Digest) -> Result<Option<BlobLockGuard>, StoreError> {
        Ok(None)
    }

    /// Holds a cluster-wide lock on one upload session until the guard drops, so two requests
    /// on one session reaching different nodes write and commit one after the other; with
    /// `committing`, also the blob lock of that digest, taken on the same connection (one
    /// connection per request, so concurrent commits cannot starve the lock pool). None where
    /// only one process uses the store (the service's per-session mutex covers that).
    async fn lock_upload(&self, _id: &str, _committing: Option<&Digest>) -> Result<Option<BlobLockGuard>, StoreError> {
        Ok(None)
    }

    /// Reports changes any process commits to what a manifest GET by tag reads, for as long
    /// as it can vouch that it misses none: `sink.listening()` once it listens, then
    /// `sink.tags_changed()` per change. Returns when it can no longer vouch (connection lost,
    /// silence past its heartbeat), after which nothing it reported before may be trusted.
    /// Stores that cannot tell return `Ok(false)` at once without calling `listening`.
    async fn watch_changes(&self, _sink: &dyn ChangeSink) -> Result<bool, StoreError> {
        Ok(false)
    }
}
