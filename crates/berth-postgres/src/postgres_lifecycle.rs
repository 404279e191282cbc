//! Lifecycle policies, previews, storage classes and pull times. Every statement is shared
//! with SQLite (`berth_store::sql::lifecycle`, which also says how expiry and archiving lock);
//! the write transactions that lock several rows run under the deadlock retry.

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::sql::lifecycle as sql;
use berth_store::{Digest, StoreError};

use crate::db::retrying;
use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl LifecycleStore for PostgresMetadataStore {
    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError> {
        self.timed("record_pulls", retrying(|| Box::pin(sql::record_pulls(&self.pool, pulls)))).await
    }

    async fn set_storage_class(
        &self,
        key: &RepoKey,
        digest: &Digest,
        class: StorageClass,
        now: Millis,
    ) -> Result<Option<bool>, StoreError> {
        self.timed("set_storage_class", sql::set_storage_class(&self.pool, key, digest, class, now)).await
    }

    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError> {
        self.timed("set_lifecycle_policy", sql::set_lifecycle_policy(&self.pool, key, policy, now)).await
    }

    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError> {
        self.timed("lifecycle_policy", sql::lifecycle_policy(&self.pool, key)).await
    }

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError> {
        self.timed("mark_lifecycle_evaluated", sql::mark_lifecycle_evaluated(&self.pool, key, now)).await
    }

    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError> {
        self.timed("expire_manifest", retrying(|| Box::pin(sql::expire_manifest(&self.pool, key, digest, expected_tags)))).await
    }

    async fn archive_if_unchanged(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.timed("archive_if_unchanged", retrying(|| Box::pin(sql::archive_if_unchanged(&self.pool, key, digest, expected_tags, now))))
            .await
    }

    async fn expire_manifest_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        outbox: &[QueuedJob],
        now: Millis,
    ) -> Result<ExpireOutcome, StoreError> {
        self.timed(
            "expire_manifest",
            retrying(|| Box::pin(sql::expire_manifest_queueing(&self.pool, key, digest, expected_tags, outbox, now))),
        )
        .await
    }

    async fn archive_if_unchanged_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
        outbox: &[QueuedJob],
    ) -> Result<bool, StoreError> {
        self.timed(
            "archive_if_unchanged",
            retrying(|| Box::pin(sql::archive_if_unchanged_queueing(&self.pool, key, digest, expected_tags, now, outbox))),
        )
        .await
    }

    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError> {
        self.timed("lifecycle_repositories", sql::lifecycle_repositories(&self.pool)).await
    }

    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError> {
        self.timed("lifecycle_images", sql::lifecycle_images(&self.pool, key)).await
    }

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError> {
        self.timed("put_lifecycle_preview", sql::put_lifecycle_preview(&self.pool, key, preview)).await
    }

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError> {
        self.timed("lifecycle_preview", sql::lifecycle_preview(&self.pool, key)).await
    }
}
