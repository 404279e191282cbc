//! Lifecycle policies, their previews and runs, storage classes and pull times.

use async_trait::async_trait;

use super::{content::StorageClass, Millis, QueuedJob, RepoKey};
use crate::{Digest, StoreError};

/// What the lifecycle evaluator needs to know about one image.
#[derive(Debug, Clone)]
pub struct LifecycleImageRow {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub pushed_at: Millis,
    pub last_pulled_at: Option<Millis>,
    pub storage_class: StorageClass,
    pub archived_at: Option<Millis>,
    pub last_activated_at: Option<Millis>,
    /// The manifest this one refers to (signatures, SBOMs), if any.
    pub subject: Option<Digest>,
    /// Another manifest of the repository (an index) lists this one.
    pub referenced_by_manifest: bool,
}

/// A repository's lifecycle policy.
#[derive(Debug, Clone)]
pub struct LifecyclePolicyRow {
    pub policy: String,
    pub updated_at: Millis,
    /// When a run last applied it (ECR's lastEvaluatedAt).
    pub evaluated_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// Deleted: the image and then its referrers (transitively), in that order.
    Expired(Vec<Digest>),
    /// The image changed since it was evaluated (tags moved, or an index now lists it); kept.
    Changed,
    NotFound,
}

/// The last lifecycle policy preview of a repository.
#[derive(Debug, Clone)]
pub struct LifecyclePreviewRow {
    pub policy: String,
    /// IN_PROGRESS | COMPLETE | FAILED
    pub status: String,
    /// JSON of the results, once complete.
    pub result: Option<String>,
    pub started_at: Millis,
}

#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Records pulls (ECR's lastRecordedPullTime) in one transaction; a later time never goes back.
    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError>;

    /// Moves an image to a storage class. None if there is no such image, else whether it changed.
    async fn set_storage_class(&self, key: &RepoKey, digest: &Digest, class: StorageClass, now: Millis)
        -> Result<Option<bool>, StoreError>;

    /// Sets (Some) or removes (None) the repository's lifecycle policy; false if the repository is missing.
    async fn set_lifecycle_policy(&self, key: &RepoKey, policy: Option<&str>, now: Millis) -> Result<bool, StoreError>;

    /// The policy text and when it was last set.
    async fn lifecycle_policy(&self, key: &RepoKey) -> Result<Option<LifecyclePolicyRow>, StoreError>;

    async fn mark_lifecycle_evaluated(&self, key: &RepoKey, now: Millis) -> Result<(), StoreError>;

    /// Deletes an image that lifecycle evaluation expired, with its referrers, in one transaction,
    /// only if its tags are still `expected_tags` (sorted) and no other manifest lists it.
    async fn expire_manifest(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String]) -> Result<ExpireOutcome, StoreError>;

    /// Archives an image a lifecycle rule selected, only if it is still standard with the same
    /// tags (sorted) and no index lists it; false if anything changed.
    async fn archive_if_unchanged(&self, key: &RepoKey, digest: &Digest, expected_tags: &[String], now: Millis)
        -> Result<bool, StoreError>;

    /// `expire_manifest` that, when it expires, adds `outbox` to the jobs outbox (due at `now`)
    /// in the same transaction.
    async fn expire_manifest_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        outbox: &[QueuedJob],
        now: Millis,
    ) -> Result<ExpireOutcome, StoreError>;

    /// `archive_if_unchanged` that, when it archives, adds `outbox` to the jobs outbox in the
    /// same transaction.
    async fn archive_if_unchanged_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        expected_tags: &[String],
        now: Millis,
        outbox: &[QueuedJob],
    ) -> Result<bool, StoreError>;

    /// Every repository that has a lifecycle policy.
    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError>;

    /// Every image of the repository with what the lifecycle evaluator needs.
    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError>;

    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError>;

    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError>;
}
