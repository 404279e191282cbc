//! SQLite: replication rows (the statements are shared: `crate::sql::replication`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::replication as sql;
use crate::{Digest, StoreError};

#[async_trait]
impl ReplicationStore for SqliteMetadataStore {
    async fn replication_configuration(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        sql::replication_configuration(&self.reader, account, region).await
    }

    async fn put_replication_configuration(&self, account: &str, region: &str, config: &str, now: Millis) -> Result<(), StoreError> {
        sql::put_replication_configuration(&self.writer, account, region, config, now).await
    }

    async fn queue_replication(
        &self,
        repo: &RepoKey,
        digest: &Digest,
        statuses: &[ReplicationStatusRow],
        jobs: &[QueuedJob],
        now: Millis,
    ) -> Result<(), StoreError> {
        sql::queue_replication(&self.writer, repo, digest, statuses, jobs, now).await
    }

    async fn finish_replication_job(
        &self,
        repo: &RepoKey,
        digest: &Digest,
        row: &ReplicationStatusRow,
        job_id: i64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        sql::finish_replication_job(&self.writer, repo, digest, row, job_id, holder).await
    }

    async fn set_replication_status(&self, repo: &RepoKey, digest: &Digest, row: &ReplicationStatusRow) -> Result<(), StoreError> {
        sql::set_replication_status(&self.writer, repo, digest, row).await
    }

    async fn replication_statuses(&self, repo: &RepoKey, digest: &Digest) -> Result<Vec<ReplicationStatusRow>, StoreError> {
        sql::replication_statuses(&self.reader, repo, digest).await
    }

    async fn create_backfill(&self, account: &str, region: &str, row: &BackfillRow, job: &QueuedJob) -> Result<bool, StoreError> {
        sql::create_backfill(&self.writer, account, region, row, job).await
    }

    async fn backfill(&self, account: &str, region: &str, id: &str) -> Result<Option<BackfillRow>, StoreError> {
        sql::backfill(&self.reader, account, region, id).await
    }

    async fn backfills(&self, account: &str, region: &str, limit: u32) -> Result<Vec<BackfillRow>, StoreError> {
        sql::backfills(&self.reader, account, region, limit).await
    }

    async fn advance_backfill(&self, account: &str, region: &str, row: &BackfillRow) -> Result<bool, StoreError> {
        sql::advance_backfill(&self.writer, account, region, row).await
    }

    async fn backfill_status_counts(&self, origin: &str) -> Result<Vec<(String, i64)>, StoreError> {
        sql::backfill_status_counts(&self.reader, origin).await
    }

    async fn account_exists(&self, account: &str) -> Result<bool, StoreError> {
        sql::account_exists(&self.reader, account).await
    }

    async fn remote_registries(&self) -> Result<Vec<RemoteRegistryRow>, StoreError> {
        sql::remote_registries(&self.reader).await
    }

    async fn put_remote_registry(&self, row: &RemoteRegistryRow) -> Result<(), StoreError> {
        sql::put_remote_registry(&self.writer, row).await
    }

    async fn delete_remote_registry(&self, registry_id: &str, region: &str) -> Result<bool, StoreError> {
        sql::delete_remote_registry(&self.writer, registry_id, region).await
    }
}
