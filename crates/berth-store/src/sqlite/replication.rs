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

    async fn set_replication_status(&self, repo: &RepoKey, digest: &Digest, row: &ReplicationStatusRow) -> Result<(), StoreError> {
        sql::set_replication_status(&self.writer, repo, digest, row).await
    }

    async fn replication_statuses(&self, repo: &RepoKey, digest: &Digest) -> Result<Vec<ReplicationStatusRow>, StoreError> {
        sql::replication_statuses(&self.reader, repo, digest).await
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
