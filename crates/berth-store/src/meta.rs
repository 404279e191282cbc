//! The metadata interface: rows, not rules. Every method is one transaction.

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Digest, StoreError};

/// Milliseconds since the Unix epoch, as supplied by the service's clock.
pub type Millis = i64;

#[derive(Debug, Clone)]
pub struct RepositoryRow {
    pub id: i64,
    pub name: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Blob,
    Manifest,
}

/// A manifest as stored: the exact bytes pushed plus what the service parsed out of them.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// JSON object of the manifest's annotations (for referrers listings), if any.
    pub annotations: Option<String>,
    pub content: Bytes,
    pub pushed_at: Millis,
}

pub struct NewManifest<'a> {
    pub repository: &'a str,
    pub manifest: ManifestRow,
    /// Everything the manifest references, each of which must already be in the repository.
    pub references: Vec<(Digest, RefKind)>,
    pub tag: Option<&'a str>,
}

#[derive(Debug)]
pub enum PutManifestOutcome {
    Stored,
    /// A reference is missing from the repository; nothing was written.
    MissingReference(Digest, RefKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkOutcome {
    Unlinked,
    NotLinked,
    /// A manifest in the repository references the blob; nothing changed.
    Referenced,
}

#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub repository: String,
    pub started_at: Millis,
}

/// A blob that garbage collection may remove.
#[derive(Debug, Clone)]
pub struct GcCandidate {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct ManifestSummary {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
    pub size: u64,
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    async fn get_repository(&self, name: &str) -> Result<Option<RepositoryRow>, StoreError>;
    /// Returns the repository, creating it if needed.
    async fn ensure_repository(&self, name: &str, now: Millis) -> Result<RepositoryRow, StoreError>;
    /// Names in lexical order strictly after `last`, at most `limit`.
    async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Size of a blob linked into the repository.
    async fn repository_blob(&self, repository: &str, digest: &Digest) -> Result<Option<u64>, StoreError>;
    /// Size of a blob known anywhere (for dedup and mounts).
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;
    /// Records the blob (if new) and links it into the repository; refreshes its last-seen time.
    async fn link_blob(&self, repository: &str, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError>;
    /// Removes the blob from the repository unless a manifest there references it.
    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<UnlinkOutcome, StoreError>;
    /// Refreshes a blob's last-seen time if it is older than `stale_before` (keeps GC away from
    /// blobs clients are about to reference).
    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError>;

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError>;
    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError>;
    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError>;
    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError>;
    async fn count_uploads(&self) -> Result<u64, StoreError>;

    /// Stores the manifest and moves the tag, or changes nothing if a reference is missing.
    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError>;
    async fn get_manifest_by_digest(&self, repository: &str, digest: &Digest) -> Result<Option<ManifestRow>, StoreError>;
    async fn get_manifest_by_tag(&self, repository: &str, tag: &str) -> Result<Option<ManifestRow>, StoreError>;
    /// Deletes the manifest and every tag pointing at it.
    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError>;
    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError>;
    async fn list_tags(&self, repository: &str, last: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError>;
    async fn list_referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError>;
    /// Every (repository, manifest digest, reference) triple, for fsck.
    async fn all_references(&self) -> Result<Vec<(String, Digest, Digest, RefKind)>, StoreError>;

    /// Blobs no manifest references whose last-seen time is before `before`.
    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError>;
    /// Re-checks the candidate inside one transaction and forgets it; false if it became live.
    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError>;
}
