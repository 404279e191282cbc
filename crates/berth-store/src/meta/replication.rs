//! Replication: a registry's configuration, each image's status per destination, and the
//! remote registries a destination may name.

use async_trait::async_trait;

use super::{Millis, RepoKey};
use crate::{Digest, StoreError};

/// Where an image goes: ECR's `{region, registryId}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationKey {
    pub region: String,
    pub registry_id: String,
}

/// An image's replication to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationStatusRow {
    pub destination: DestinationKey,
    /// IN_PROGRESS, COMPLETE or FAILED (ECR's ReplicationStatus).
    pub status: String,
    pub failure_code: Option<String>,
    /// When the push queued it (replication lag is measured from here).
    pub queued_at: Millis,
    pub updated_at: Millis,
}

/// A job to add to the outbox together with the statuses that announce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub kind: String,
    pub key: String,
    pub payload: String,
}

/// Another registry destinations may name by registry id (and optionally region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRegistryRow {
    pub registry_id: String,
    /// "" for every region.
    pub region: String,
    pub url: String,
    /// "anonymous", "basic" or "ecr" (the service's spelling).
    pub auth_kind: String,
    pub username: String,
    /// The password or secret key, sealed by the service; never stored in clear.
    pub sealed_secret: Option<Vec<u8>>,
    pub insecure: bool,
    pub created_at: Millis,
}

#[async_trait]
pub trait ReplicationStore: Send + Sync {
    /// The configuration PutReplicationConfiguration stored (JSON), if any.
    async fn replication_configuration(&self, account: &str, region: &str) -> Result<Option<String>, StoreError>;

    async fn put_replication_configuration(&self, account: &str, region: &str, config: &str, now: Millis) -> Result<(), StoreError>;

    /// Records the statuses (replacing earlier ones of the same destinations) and adds the
    /// jobs to the outbox (as `JobStore::enqueue_job`: a waiting job of the same key stays
    /// as it is), in one transaction: a status never says IN_PROGRESS without work queued.
    async fn queue_replication(
        &self,
        repo: &RepoKey,
        digest: &Digest,
        statuses: &[ReplicationStatusRow],
        jobs: &[QueuedJob],
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Replaces one destination's status.
    async fn set_replication_status(&self, repo: &RepoKey, digest: &Digest, row: &ReplicationStatusRow) -> Result<(), StoreError>;

    /// The image's statuses, by destination.
    async fn replication_statuses(&self, repo: &RepoKey, digest: &Digest) -> Result<Vec<ReplicationStatusRow>, StoreError>;

    /// Whether berth holds the account (a destination in another account of this berth).
    async fn account_exists(&self, account: &str) -> Result<bool, StoreError>;

    /// Every remote registry, by registry id and region.
    async fn remote_registries(&self) -> Result<Vec<RemoteRegistryRow>, StoreError>;

    /// Adds or replaces the remote of that registry id and region.
    async fn put_remote_registry(&self, row: &RemoteRegistryRow) -> Result<(), StoreError>;

    /// False when there was none.
    async fn delete_remote_registry(&self, registry_id: &str, region: &str) -> Result<bool, StoreError>;
}
