//! SQLite: lifecycle policies, previews, storage classes and pull times (the statements are
//! shared: `crate::sql::lifecycle`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::lifecycle as sql;
use crate::{Digest, StoreError};

#[async_trait]
impl LifecycleStore for SqliteMetadataStore {
    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
        sql::record_pulls(&self.writer, pulls).await
    }

    async fn set_storage_class(
        &self,
        key: &RepoKey,
        digest: &Digest,
        class: StorageClass,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        sql::set_storage_class(&self.writer, key, digest, class, now).await
    }

    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
        sql::set_lifecycle_policy(&self.writer, key, policy, now).await
    }

    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
        sql::lifecycle_policy(&self.reader, key).await
    }

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
        sql::mark_lifecycle_evaluated(&self.writer, key, now).await
    }

    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError> {
        sql::expire_manifest(&self.writer, key, digest, expected_tags).await
    }

    async fn archive_if_unchanged(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
    ) -> Result<bool, StoreError> {
        sql::archive_if_unchanged(&self.writer, key, digest, expected_tags, now).await
    }

    async fn expire_manifest_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        outbox: &[QueuedJob],
        now: Millis,
    ) -> Result<ExpireOutcome, StoreError> {
        sql::expire_manifest_queueing(&self.writer, key, digest, expected_tags, outbox, now).await
    }

    async fn archive_if_unchanged_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
        outbox: &[QueuedJob],
    ) -> Result<bool, StoreError> {
        sql::archive_if_unchanged_queueing(&self.writer, key, digest, expected_tags, now, outbox).await
    }

    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError> {
        sql::lifecycle_repositories(&self.reader).await
    }

    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
        sql::lifecycle_images(&self.reader, key).await
    }

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError> {
        sql::put_lifecycle_preview(&self.writer, key, preview).await
    }

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
        sql::lifecycle_preview(&self.reader, key).await
    }
}
