//! PostgreSQL: replication rows (the statements are shared with SQLite,
//! `berth_store::sql::replication`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::replication as sql;
use berth_store::{BackfillRow, Digest, Millis, QueuedJob, RemoteRegistryRow, ReplicationStatusRow, ReplicationStore, RepoKey, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl ReplicationStore for PostgresMetadataStore {
    async fn replication_configuration(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        self.timed("replication_configuration", sql::replication_configuration(&self.pool, account, region)).await
    }

    async fn put_replication_configuration(&self, account: &str, region: &str, config: &str, now: Millis) -> Result<(), StoreError> {
        self.timed("put_replication_configuration", sql::put_replication_configuration(&self.pool, account, region, config, now)).await
    }

    async fn queue_replication(
        &self,
        repo: &RepoKey,
        digest: &Digest,
        statuses: &[ReplicationStatusRow],
        jobs: &[QueuedJob],
        now: Millis,
    ) -> Result<(), StoreError> {
        self.timed("queue_replication", sql::queue_replication(&self.pool, repo, digest, statuses, jobs, now)).await
    }

    async fn finish_replication_job(
        &self,
        repo: &RepoKey,
        digest: &Digest,
        row: &ReplicationStatusRow,
        job_id: i64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        self.timed("finish_replication_job", sql::finish_replication_job(&self.pool, repo, digest, row, job_id, holder)).await
    }

    async fn set_replication_status(&self, repo: &RepoKey, digest: &Digest, row: &ReplicationStatusRow) -> Result<(), StoreError> {
        self.timed("set_replication_status", sql::set_replication_status(&self.pool, repo, digest, row)).await
    }

    async fn replication_statuses(&self, repo: &RepoKey, digest: &Digest) -> Result<Vec<ReplicationStatusRow>, StoreError> {
        self.timed("replication_statuses", sql::replication_statuses(&self.pool, repo, digest)).await
    }

    async fn create_backfill(&self, account: &str, region: &str, row: &BackfillRow, job: &QueuedJob) -> Result<bool, StoreError> {
        self.timed("create_backfill", sql::create_backfill(&self.pool, account, region, row, job)).await
    }

    async fn backfill(&self, account: &str, region: &str, id: &str) -> Result<Option<BackfillRow>, StoreError> {
        self.timed("backfill", sql::backfill(&self.pool, account, region, id)).await
    }

    async fn backfills(&self, account: &str, region: &str, limit: u32) -> Result<Vec<BackfillRow>, StoreError> {
        self.timed("backfills", sql::backfills(&self.pool, account, region, limit)).await
    }

    async fn advance_backfill(&self, account: &str, region: &str, row: &BackfillRow) -> Result<bool, StoreError> {
        self.timed("advance_backfill", sql::advance_backfill(&self.pool, account, region, row)).await
    }

    async fn backfill_status_counts(&self, origin: &str) -> Result<Vec<(String, i64)>, StoreError> {
        self.timed("backfill_status_counts", sql::backfill_status_counts(&self.pool, origin)).await
    }

    async fn account_exists(&self, account: &str) -> Result<bool, StoreError> {
        self.timed("account_exists", sql::account_exists(&self.pool, account)).await
    }

    async fn remote_registries(&self) -> Result<Vec<RemoteRegistryRow>, StoreError> {
        self.timed("remote_registries", sql::remote_registries(&self.pool)).await
    }

    async fn put_remote_registry(&self, row: &RemoteRegistryRow) -> Result<(), StoreError> {
        self.timed("put_remote_registry", sql::put_remote_registry(&self.pool, row)).await
    }

    async fn delete_remote_registry(&self, registry_id: &str, region: &str) -> Result<bool, StoreError> {
        self.timed("delete_remote_registry", sql::delete_remote_registry(&self.pool, registry_id, region)).await
    }
}
