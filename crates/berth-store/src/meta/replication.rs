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
    /// The backfill that queued it; None for a push.
    pub origin: Option<String>,
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

/// A replication backfill: images pushed before the rules, queued page by page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRow {
    pub id: String,
    /// IN_PROGRESS, COMPLETE, STOPPED or FAILED.
    pub status: String,
    /// What was asked for (JSON, the service's).
    pub request: String,
    /// The last (repository, digest) queued: the next page starts after it.
    pub cursor: Option<(String, String)>,
    pub images_queued: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
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

    /// Records the final status and deletes the finished job (`holder`'s) in one transaction;
    /// false when `holder` no longer held the job (the status is recorded anyway: the copy
    /// was made).
    async fn finish_replication_job(
        &self,
        repo: &RepoKey,
        digest: &Digest,
        row: &ReplicationStatusRow,
        job_id: i64,
        holder: &str,
    ) -> Result<bool, StoreError>;

    /// Replaces one destination's status.
    async fn set_replication_status(&self, repo: &RepoKey, digest: &Digest, row: &ReplicationStatusRow) -> Result<(), StoreError>;

    /// The image's statuses, by destination.
    async fn replication_statuses(&self, repo: &RepoKey, digest: &Digest) -> Result<Vec<ReplicationStatusRow>, StoreError>;

    /// Adds the backfill and its outbox job in one transaction, unless the registry has one
    /// IN_PROGRESS already (checked under a table lock; false, nothing changed).
    async fn create_backfill(&self, account: &str, region: &str, row: &BackfillRow, job: &QueuedJob) -> Result<bool, StoreError>;

    async fn backfill(&self, account: &str, region: &str, id: &str) -> Result<Option<BackfillRow>, StoreError>;

    /// The registry's backfills, newest first, at most `limit`.
    async fn backfills(&self, account: &str, region: &str, limit: u32) -> Result<Vec<BackfillRow>, StoreError>;

    /// Moves an IN_PROGRESS backfill on (its cursor, count and status); false when it is no
    /// longer IN_PROGRESS (stopped meanwhile): nothing changed.
    async fn advance_backfill(&self, account: &str, region: &str, row: &BackfillRow) -> Result<bool, StoreError>;

    /// How many of the statuses a backfill queued are in each status.
    async fn backfill_status_counts(&self, origin: &str) -> Result<Vec<(String, i64)>, StoreError>;

    /// Whether berth holds the account (a destination in another account of this berth).
    async fn account_exists(&self, account: &str) -> Result<bool, StoreError>;

    /// Every remote registry, by registry id and region.
    async fn remote_registries(&self) -> Result<Vec<RemoteRegistryRow>, StoreError>;

    /// Adds or replaces the remote of that registry id and region.
    async fn put_remote_registry(&self, row: &RemoteRegistryRow) -> Result<(), StoreError>;

    /// False when there was none.
    async fn delete_remote_registry(&self, registry_id: &str, region: &str) -> Result<bool, StoreError>;
}
