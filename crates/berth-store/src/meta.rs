//! The metadata interface: rows, not rules. Every method is one transaction.

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Digest, StoreError, UploadCursor};

/// Milliseconds since the Unix epoch, as supplied by the service's clock.
pub type Millis = i64;

/// A repository's identity: the registry (account + region) and its name there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoKey {
    pub account: String,
    pub region: String,
    pub name: String,
}

/// Settings a repository carries (strings as ECR spells them; the service validates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    pub tag_mutability: String,
    /// JSON array of `{filterType, filter}`.
    pub tag_mutability_exclusions: Option<String>,
    pub scan_on_push: bool,
    pub encryption_type: String,
    pub kms_key: Option<String>,
}

impl RepositorySettings {
    /// ECR's CreateRepository defaults (also what a repository created by a push gets).
    pub fn ecr_defaults() -> Self {
        RepositorySettings {
            tag_mutability: "MUTABLE".into(),
            tag_mutability_exclusions: None,
            scan_on_push: false,
            encryption_type: "AES256".into(),
            kms_key: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RepositoryRow {
    pub id: i64,
    pub key: RepoKey,
    pub created_at: Millis,
    pub settings: RepositorySettings,
    pub policy: Option<String>,
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

/// What deleting one manifest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteManifestOutcome {
    Deleted,
    NotFound,
    /// An index of the repository lists it (this one, the first by digest); nothing changed.
    ListedBy(Digest),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// Deleted: the image and then its referrers (transitively), in that order.
    Expired(Vec<Digest>),
    /// The image changed since it was evaluated (tags moved, or an index now lists it); kept.
    Changed,
    NotFound,
}

/// The latest scan of an image.
#[derive(Debug, Clone)]
pub struct ImageScanRow {
    /// ECR's ScanStatus: IN_PROGRESS | COMPLETE | FAILED | UNSUPPORTED_IMAGE | FINDINGS_UNAVAILABLE …
    pub status: String,
    pub description: Option<String>,
    pub started_at: Millis,
    pub completed_at: Option<Millis>,
    pub vulndb_version: Option<String>,
    /// JSON written by the service, once complete.
    pub findings: Option<String>,
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

#[derive(Debug)]
pub enum DeleteRepositoryOutcome {
    Deleted(Box<RepositoryRow>),
    NotFound,
    /// It holds images and `force` was not given.
    NotEmpty,
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

/// What checking a console session needs of its user, in one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSessionState {
    /// Sessions issued in an earlier epoch have ended (sign-out, password change).
    pub epoch: i64,
    pub has_password: bool,
}

#[derive(Debug, Clone)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub secret: String,
    pub user_arn: String,
    pub account: String,
    pub active: bool,
}

#[async_trait]
pub trait MetadataStore: crate::jobs::JobStore + Send + Sync + 'static {
    // ---- repositories ----
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError>;
    /// Creates the repository; None if it already exists.
    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError>;
    /// Repositories of a registry in lexical name order strictly after `after`, at most `limit`.
    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError>;
    async fn update_repository_settings(&self, key: &RepoKey, settings: &RepositorySettings) -> Result<bool, StoreError>;
    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError>;
    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError>;
    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError>;
    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError>;
    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError>;
    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError>;
    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError>;

    // ---- blobs ----
    /// Size of a blob linked into the repository.
    async fn repository_blob(&self, key: &RepoKey, digest: &Digest) -> Result<Option<u64>, StoreError>;
    /// Records the blob (if new) and links it into the repository; refreshes its last-seen time.
    async fn link_blob(&self, key: &RepoKey, digest: &Digest, size: u64, now: Millis) -> Result<(), StoreError>;
    /// Removes the blob from the repository unless a manifest there references it.
    async fn unlink_blob(&self, key: &RepoKey, digest: &Digest) -> Result<UnlinkOutcome, StoreError>;
    /// Refreshes a blob's last-seen time if it is older than `stale_before` (keeps GC away from
    /// blobs clients are about to reference).
    async fn touch_blob(&self, digest: &Digest, now: Millis, stale_before: Millis) -> Result<(), StoreError>;

    // ---- uploads ----
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

    // ---- manifests and tags ----
    /// Stores the manifest and moves the tag, or changes nothing (see the outcome).
    async fn put_manifest(&self, new: NewManifest<'_>) -> Result<PutManifestOutcome, StoreError>;
    async fn get_manifest_by_digest(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ManifestRow>, StoreError>;
    async fn get_manifest_by_tag(&self, key: &RepoKey, tag: &str) -> Result<Option<ManifestRow>, StoreError>;
    /// Deletes the manifest and every tag pointing at it, unless an index of the repository
    /// lists it (checked in the same transaction, so an index push cannot race it).
    async fn delete_manifest(&self, key: &RepoKey, digest: &Digest) -> Result<DeleteManifestOutcome, StoreError>;
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
    /// Records pulls (ECR's lastRecordedPullTime) in one transaction; a later time never goes back.
    async fn record_pulls(&self, pulls: &[(RepoKey, Digest, Millis)]) -> Result<(), StoreError>;
    /// Moves an image to a storage class. None if there is no such image, else whether it changed.
    async fn set_storage_class(&self, key: &RepoKey, digest: &Digest, class: StorageClass, now: Millis)
        -> Result<Option<bool>, StoreError>;

    // ---- lifecycle ----
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
    /// Every repository that has a lifecycle policy.
    async fn lifecycle_repositories(&self) -> Result<Vec<RepoKey>, StoreError>;
    /// Every image of the repository with what the lifecycle evaluator needs.
    async fn lifecycle_images(&self, key: &RepoKey) -> Result<Vec<LifecycleImageRow>, StoreError>;
    async fn put_lifecycle_preview(&self, key: &RepoKey, preview: &LifecyclePreviewRow) -> Result<bool, StoreError>;
    async fn lifecycle_preview(&self, key: &RepoKey) -> Result<Option<LifecyclePreviewRow>, StoreError>;
    /// Every (repository, manifest digest, reference) triple, for fsck.
    async fn all_references(&self) -> Result<Vec<(RepoKey, Digest, Digest, RefKind)>, StoreError>;

    // ---- garbage collection ----
    /// Blobs no manifest references whose last-seen time is before `before`.
    async fn gc_candidates(&self, before: Millis) -> Result<Vec<GcCandidate>, StoreError>;
    /// Re-checks the candidate inside one transaction and forgets it; false if it became live.
    async fn gc_forget_blob(&self, digest: &Digest, before: Millis) -> Result<bool, StoreError>;

    // ---- scans ----
    /// Records the image's latest scan; false if the image does not exist.
    async fn put_image_scan(&self, key: &RepoKey, digest: &Digest, scan: &ImageScanRow) -> Result<bool, StoreError>;
    async fn image_scan(&self, key: &RepoKey, digest: &Digest) -> Result<Option<ImageScanRow>, StoreError>;
    /// The scans of many images of one repository in one query (listings).
    async fn image_scans(&self, key: &RepoKey, digests: &[Digest]) -> Result<Vec<(Digest, ImageScanRow)>, StoreError>;
    /// Every image that has a scan (of that status, if given).
    async fn scanned_images(&self, status: Option<&str>) -> Result<Vec<(RepoKey, Digest)>, StoreError>;
    /// The registry scanning configuration (JSON), if one was put.
    async fn registry_scanning(&self, account: &str, region: &str) -> Result<Option<String>, StoreError>;
    async fn set_registry_scanning(&self, account: &str, region: &str, config: &str) -> Result<(), StoreError>;

    // ---- identity ----
    async fn ensure_account(&self, account: &str, now: Millis) -> Result<(), StoreError>;
    /// Creates a user; false if it exists.
    async fn create_user(&self, account: &str, name: &str, arn: &str, now: Millis) -> Result<bool, StoreError>;
    /// The account of a user, if the user exists.
    async fn user_account(&self, user_arn: &str) -> Result<Option<String>, StoreError>;
    async fn create_access_key(&self, access_key_id: &str, secret: &str, user_arn: &str, now: Millis) -> Result<(), StoreError>;
    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRow>, StoreError>;
    async fn put_user_policy(&self, user_arn: &str, policy_name: &str, document: &str) -> Result<(), StoreError>;
    async fn user_policies(&self, user_arn: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Sets or clears a user's console password hash and ends the user's console sessions (moves
    /// the session epoch on) in the same write; false if the user does not exist.
    async fn set_console_password(&self, user_arn: &str, hash: Option<&str>) -> Result<bool, StoreError>;
    async fn console_password(&self, user_arn: &str) -> Result<Option<String>, StoreError>;
    /// The user's console session epoch and whether a console password is set; None: no such user.
    async fn console_session_state(&self, user_arn: &str) -> Result<Option<ConsoleSessionState>, StoreError>;
    /// Ends every console session of the user (moves the epoch on); false if the user does not exist.
    async fn end_console_sessions(&self, user_arn: &str) -> Result<bool, StoreError>;
    /// All token signing keys, newest first; creates the first one from `fresh` if there are none.
    async fn signing_keys(&self, fresh: &[u8], now: Millis) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Adds `fresh` as the newest signing key and keeps only the newest `keep` keys (tokens
    /// signed with a dropped key stop verifying); returns the kept keys, newest first.
    async fn rotate_signing_key(&self, fresh: &[u8], now: Millis, keep: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    // ---- cluster ----
    /// True when other processes (other berth nodes) change these rows too, so nothing read
    /// may be cached beyond one request.
    fn is_shared(&self) -> bool {
        false
    }
    /// Takes the named lease (a background job that must run once across the cluster) for
    /// `holder` until `until`, if it is free, has expired (its end is before `now`), or is
    /// already `holder`'s (a renewal). True when `holder` holds it now.
    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError>;
    /// Gives the lease up if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Holds a cluster-wide lock on one blob digest until the returned guard drops, so a
    /// garbage collector deleting a blob's bytes and a node committing the same bytes
    /// never interleave. None where only one process uses the store (the service's
    /// in-process lock covers that).
    async fn lock_blob(&self, _digest: &Digest) -> Result<Option<BlobLockGuard>, StoreError> {
        Ok(None)
    }
    /// Holds a cluster-wide lock on one upload session until the guard drops, so two requests
    /// on one session reaching different nodes write and commit one after the other; with
    /// `committing`, also the blob lock of that digest, taken on the same connection (one
    /// connection per request, so concurrent commits cannot starve the lock pool). None where
    /// only one process uses the store (the service's per-session mutex covers that).
    async fn lock_upload(&self, _id: &str, _committing: Option<&Digest>) -> Result<Option<BlobLockGuard>, StoreError> {
        Ok(None)
    }
}

/// Holds a cluster-wide blob lock while alive (see `MetadataStore::lock_blob`).
pub type BlobLockGuard = Box<dyn std::any::Any + Send + Sync>;
