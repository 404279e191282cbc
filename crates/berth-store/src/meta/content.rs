//! What a push and a pull touch: blobs and their links, upload sessions, manifests, tags,
//! image listings and referrers, and garbage collection.

use async_trait::async_trait;
use bytes::Bytes;

use super::{Millis, QueuedJob, RepoKey};
use crate::{Digest, StoreError, UploadCursor};

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
    /// Sum of the sizes of what it references (ECR's imageSizeInBytes).
    pub image_size: u64,
    pub content: Bytes,
    pub pushed_at: Millis,
    /// Archived manifests are listed but not served.
    pub storage_class: StorageClass,
}

/// Where an image's bytes live: ECR's standard and archive storage classes
/// (imageStatus ACTIVE and ARCHIVED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageClass {
    #[default]
    Standard,
    Archive,
}

impl StorageClass {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::Archive => "ARCHIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "STANDARD" => Some(StorageClass::Standard),
            "ARCHIVE" => Some(StorageClass::Archive),
            _ => None,
        }
    }
}

/// What deleting one manifest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteManifestOutcome {
    Deleted,
    NotFound,
    /// An index of the repository lists it (this one, the first by digest); nothing changed.
    ListedBy(Digest),
}

/// How a manifest push may move its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMove {
    /// Point the tag at the new manifest, wherever it pointed before.
    Move,
    /// Only create the tag (or keep it if it already names this manifest): immutable tags.
    CreateOnly,
}

/// A descriptor of a pushed manifest: what it names and the size it declares for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestReference {
    pub digest: Digest,
    pub kind: RefKind,
    pub size: u64,
}

pub struct NewManifest<'a> {
    pub repository: &'a RepoKey,
    pub manifest: ManifestRow,
    /// Everything the manifest references, each of which must already be in the repository
    /// with the size its descriptor declares.
    pub references: Vec<ManifestReference>,
    /// Tags to point at the manifest, all in the same transaction (a PUT by tag, or by digest
    /// with `?tag=` parameters).
    pub tags: Vec<(&'a str, TagMove)>,
    /// Jobs to add to the outbox (due at the push time) in the same transaction, only when the
    /// manifest is stored: the push's events can never be lost to a crash after its commit.
    pub outbox: Vec<QueuedJob>,
}

#[derive(Debug)]
pub enum PutManifestOutcome {
    /// `inserted`: the manifest is new to the repository (not a re-push); `restored`: it was
    /// archived and a re-push brought it back.
    Stored {
        inserted: bool,
        restored: bool,
    },
    /// A reference is missing from the repository; nothing was written.
    MissingReference(Digest, RefKind),
    /// A reference is present but its stored size (a blob's bytes, a child manifest's length)
    /// is not the declared one; nothing was written.
    SizeMismatch {
        reference: ManifestReference,
        stored: u64,
    },
    /// `TagMove::CreateOnly` and a tag names another manifest (this one); nothing was written.
    TagExists(Digest),
    RepositoryMissing,
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
    pub repository: RepoKey,
    pub started_at: Millis,
    /// The blob store's cursor as of the last recorded append (len 0 and the store's initial
    /// state when created).
    pub cursor: UploadCursor,
    /// The serialized sha256 state over exactly `cursor.len` bytes, once any were recorded.
    pub hash_state: Option<Vec<u8>>,
}

/// A blob's bytes as stored under one encryption scope. The same digest has one object per
/// scope that holds it (deduplication holds within a scope only). The scope of a repository
/// is [`crate::storage_scope`] of its encryption settings; scope "" is a blob stored in clear,
/// before encryption at rest existed (`berth encrypt` seals those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobObject {
    pub digest: Digest,
    pub scope: String,
    /// The blob's (plaintext) size.
    pub size: u64,
}

/// A blob readable through a repository: its size and whether the repository's own scope
/// holds an object of it (else only a clear "" object does, written before encryption).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryBlobObject {
    pub size: u64,
    pub sealed: bool,
    /// The repository's scope ([`crate::storage_scope`] of its settings).
    pub scope: String,
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
    pub storage_class: StorageClass,
}

/// One image (manifest) of a repository with all its tags.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub image_size: u64,
    pub pushed_at: Millis,
    pub last_pulled_at: Option<Millis>,
    pub storage_class: StorageClass,
    pub archived_at: Option<Millis>,
    pub last_activated_at: Option<Millis>,
    /// The manifest this one refers to (ECR's subjectManifestDigest), if it is a referrer.
    pub subject: Option<Digest>,
}

/// Which images a listing in push order holds.
#[derive(Debug, Clone, Copy)]
pub struct ImageFilter<'a> {
    pub status: TagStatus,
    /// None: any storage class.
    pub storage: Option<StorageClass>,
    /// Only images with a tag or digest containing this, lower-cased (tags compare lower-cased).
    pub search: Option<&'a str>,
    /// Leave out the untagged manifests shown under another image of the repository: platform
    /// manifests an index lists, and referrers whose subject is present. A tag is a name
    /// someone gave, so a tagged manifest is always listed.
    pub top_level: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStatus {
    Any,
    Tagged,
    Untagged,
}

#[async_trait]
pub trait ContentStore: Send + Sync {
    /// Size of a blob linked into the repository.
    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError>;

    /// Records the blob (if new) and links it into the repository; refreshes its last-seen time.
    /// The repository's own scope is recorded as holding its bytes (see [`BlobObject`]).
    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError>;

    /// `link_blob`, recording `scope` as the one holding the bytes: "" when they were written
    /// in clear (AES256 left to the storage, see berth-core's sealing).
    async fn link_blob_in(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis, scope: &str) -> Result<(), StoreError>;

    /// Removes the blob from the repository unless a manifest there references it.
    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError>;

    /// Refreshes a blob's last-seen time if it is older than `stale_before` (keeps GC away from
    /// blobs clients are about to reference).
    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError>;

    async fn create_upload(&self, upload: &UploadRow) -> Result<(), StoreError>;

    async fn get_upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError>;

    async fn delete_upload(&self, id: &str) -> Result<bool, StoreError>;

    /// Records an append: only if the recorded length is still `expected_len` (so of two nodes
    /// racing on one session, one wins); false otherwise or when the session is gone.
    async fn record_upload_progress(
        &self,
        id: &str,
        expected_len: u64,
        cursor: &UploadCursor,
        hash_state: &[u8],
    ) -> Result<bool, StoreError>;

    async fn uploads_started_before(&self, before: Millis) -> Result<Vec<UploadRow>, StoreError>;

    async fn count_uploads(&self) -> Result<u64, StoreError>;

    /// Stores the manifest and moves the tag, or changes nothing (see the outcome).
    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError>;

    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError>;

    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError>;

    /// Deletes the manifest and every tag pointing at it, unless an index of the repository
    /// lists it (checked in the same transaction, so an index push cannot race it).
    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError>;

    /// `delete_manifest` that, when it deletes, adds `outbox(the tags it removed, by name)` to the
    /// jobs outbox (due at `now`) in the same transaction.
    async fn delete_manifest_queueing(
        &self,
        key: &RepoKey,
        digest: &Digest,
        now: Millis,
        outbox: &(dyn for<'t> Fn(&'t [String]) -> Vec<QueuedJob> + Send + Sync),
    ) -> Result<DeleteManifestOutcome, StoreError>;

    /// `delete_tag` that, when it deletes, adds `outbox(the manifest the tag named)` to the jobs
    /// outbox (due at `now`) in the same transaction.
    async fn delete_tag_queueing(
        &self,
        key: &RepoKey,
        tag: &str,
        now: Millis,
        outbox: &(dyn for<'t> Fn(&'t Digest) -> Vec<QueuedJob> + Send + Sync),
    ) -> Result<bool, StoreError>;

    /// The manifests of the repository (indexes) that list this one, in digest order.
    async fn manifest_parents(&self, key: &RepoKey, digest: &Digest) -> Result<Vec<Digest>, StoreError>;

    /// Bytes of the distinct blobs the repository's manifests reference: a layer shared by
    /// many images (or listed by several platforms) counts once.
    async fn repository_size(&self, key: &RepoKey) -> Result<u64, StoreError>;

    async fn delete_tag(&self, key: &RepoKey, tag: &str) -> Result<bool, StoreError>;

    async fn list_tags(&self, key: &RepoKey, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError>;

    async fn list_referrers(&self, key: &RepoKey, subject: &Digest) -> Result<Vec<ManifestSummary>, StoreError>;

    /// Images in digest order strictly after `after`, at most `limit`.
    async fn list_images(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError>;

    /// Images newest first (push time descending, then digest), strictly after the `after`
    /// position (push time, digest), at most `limit`: the console's images table.
    async fn list_images_by_push(
        &self,
        key: &RepoKey,
        filter: &ImageFilter<'_>,
        after: Option<(Millis, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageRow>, StoreError>;

    async fn get_image(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageRow>, StoreError>;

    /// Image identifiers (digest, tag; "" for an untagged image) in (digest, tag) order strictly
    /// after `after`, at most `limit`: one row per tag, as ECR's ListImages pages them.
    async fn list_image_ids(
        &self,
        key: &RepoKey,
        status: TagStatus,
        storage: Option<StorageClass>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(Digest, String)>, StoreError>;

    /// Every (repository, manifest digest, reference) triple, for fsck.
    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError>;

    /// Blobs no manifest references whose last-seen time is before `before`.
    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError>;

    /// Re-checks the candidate inside one transaction and forgets it; false if it became live.
    /// Forgetting a blob forgets its objects (`blob_objects` rows) too; the caller has listed
    /// them first (`blob_objects`) under the digest's locks and deletes their bytes.
    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError>;

    // ---- stored objects per encryption scope ----

    /// Like `repository_blob`, and whether the repository's scope holds an object of it.
    async fn repository_blob_object(&self, key: &RepoKey, digest: &Digest) -> Result<Option<RepositoryBlobObject>, StoreError>;

    /// Records that `scope` holds an object of `digest` (idempotent). `link_blob` records the
    /// linked repository's scope itself; this is for objects written outside a link (`berth encrypt`).
    async fn record_blob_object(&self, digest: &Digest, scope: &str, now: Millis) -> Result<(), StoreError>;

    /// The objects of one blob.
    async fn blob_objects(&self, digest: &Digest) -> Result<Vec<BlobObject>, StoreError>;

    /// Every object after `after` (ordered by digest, then scope), at most `limit` (fsck).
    async fn list_blob_objects(&self, after: Option<(&Digest, &str)>, limit: u32) -> Result<Vec<BlobObject>, StoreError>;

    /// Objects of blobs that are still referenced, that no repository needs any more, both
    /// the blob's last-seen time and the object's stored time before `before`: a sealed
    /// object when no manifest of a repository of its scope references the digest; a clear
    /// ("") one when every repository whose manifests reference it has its own object.
    async fn gc_object_candidates(&self, before: Millis) -> Result<Vec<BlobObject>, StoreError>;

    /// Re-checks an object candidate in one transaction (locking as `gc_forget_blob` does)
    /// and forgets it: removes its row and the links of the repositories of its scope (whose
    /// bytes it was; for a clear object, the repositories whose scope holds none of the blob,
    /// which read it). False when it became needed again.
    async fn gc_forget_object(&self, digest: &Digest, scope: &str, before: Millis) -> Result<bool, StoreError>;

    /// Blobs a repository links whose repository's scope holds no object yet (data written
    /// before encryption at rest, which `berth encrypt` seals): distinct (scope, digest, size),
    /// ordered by digest then scope, after `after`, at most `limit`.
    async fn unsealed_blobs(&self, after: Option<(&Digest, &str)>, limit: u32) -> Result<Vec<BlobObject>, StoreError>;
}
