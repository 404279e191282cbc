//! The registry service: repositories, blobs, manifests, tags, referrers.

use std::collections::HashMap;
use std::sync::Arc;

use berth_store::{
    BlobRange, BlobReader, BlobStore, DeleteManifestOutcome, Digest, ManifestReference, ManifestRow, ManifestSummary, MetadataStore,
    NewManifest, PutManifestOutcome, RefKind, RepositoryRow, RepositorySettings, StorageClass, TagMove, UnlinkOutcome,
};
use bytes::Bytes;

use crate::error::Result;
use crate::integrity::BlobCheck;
use crate::locks::DigestLocks;
use crate::manifest;
use crate::names::{Reference, RegistryRef, Repo, Tag};
use crate::sealing::BlobLocation;
use crate::templates::AppliedFor;
use crate::uploads::UploadState;
use crate::{Clock, RegistryError};

/// Tunables of the service (not of any one protocol).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Blobs unreferenced for longer than this may be garbage-collected; also the
    /// age after which an idle upload session is abandoned.
    pub gc_grace_millis: i64,
    /// Create a repository on its first push (OCI registries do; ECR does not).
    pub create_repository_on_push: bool,
    /// The account and region a request addresses when its host does not name one.
    pub default_registry: RegistryRef,
    /// Registry host names, e.g. `{account}.dkr.ecr.{region}.example.com`; None: the listen address.
    pub registry_host_template: Option<String>,
    /// AES256 repositories' new blobs are stored in clear, their encryption left to the
    /// storage underneath (an encrypted disk, the bucket's SSE-S3), as AWS leaves AES256 to
    /// S3. KMS and KMS_DSSE repositories are always encrypted by berth.
    pub aes256_by_storage: bool,
    /// The host public repositories are served on (`<host>/<alias>/<name>`, like
    /// public.ecr.aws); None: any host, where an alias path names a public repository that exists.
    pub public_registry_host: Option<String>,
    /// ECR Public's pull quotas: image pulls (manifest GETs) of public repositories per source
    /// address without credentials, and per principal with them. None: unlimited.
    pub anonymous_pulls: Option<crate::rate_limit::Rate>,
    pub authenticated_pulls: Option<crate::rate_limit::Rate>,
    /// Calls of the AWS APIs (ECR, ECR Public, KMS, STS) per principal. None: unlimited.
    pub api_calls: Option<crate::rate_limit::Rate>,
    /// Pull-through cache rules may name plain-HTTP upstreams (`--allow-insecure-upstreams`).
    pub allow_insecure_upstreams: bool,
    /// A cached tag is re-checked against its upstream at most this often (ECR: 24 hours).
    pub pull_through_refresh_millis: i64,
    /// How long a referrers listing in a cache repository waits for the upstream's new referrers
    /// before answering with those the cache holds (the import goes on in the background).
    pub pull_through_listing_wait: std::time::Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            gc_grace_millis: 24 * 3600 * 1000,
            create_repository_on_push: true,
            default_registry: RegistryRef { account: "000000000000".into(), region: "us-east-1".into() },
            registry_host_template: None,
            aes256_by_storage: false,
            public_registry_host: None,
            anonymous_pulls: crate::rate_limit::Rate::new(1.0, 20.0),
            authenticated_pulls: crate::rate_limit::Rate::new(10.0, 100.0),
            api_calls: None,
            allow_insecure_upstreams: false,
            pull_through_refresh_millis: 24 * 3600 * 1000,
            pull_through_listing_wait: std::time::Duration::from_secs(5),
        }
    }
}

pub struct Registry {
    /// This process among the nodes sharing a metadata store (holder of cluster leases).
    pub(crate) node_id: String,
    pub(crate) meta: Arc<dyn MetadataStore>,
    /// The plain store: blobs written before encryption at rest (scope "").
    pub(crate) blobs: Arc<dyn BlobStore>,
    /// Its namespace for encrypted objects (crate::sealing).
    pub(crate) sealed: Option<Arc<dyn BlobStore>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: RegistryConfig,
    pub(crate) digest_locks: Arc<DigestLocks>,
    /// Which stored blobs this node has verified or quarantined (see crate::integrity).
    pub(crate) integrity: Arc<crate::integrity::Integrity>,
    pub(crate) uploads: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadState>>>>,
    /// Registry token HMAC keys, newest first (loaded by `init_identity`).
    pub(crate) signing_keys: std::sync::RwLock<Vec<Vec<u8>>>,
    /// When the signing keys were last read from the metadata store (clock millis).
    pub(crate) keys_loaded_at: std::sync::atomic::AtomicI64,
    pub(crate) small_parts: crate::uploads::SmallParts,
    pub(crate) caches: crate::cache::Caches,
    pub(crate) pulls: crate::pulls::PullLog,
    pub(crate) scanner: crate::scanning::Scanner,
    pub(crate) replicator: crate::replication::Replicator,
    pub(crate) events: crate::events::Events,
    pub(crate) public_access: crate::public_access::PublicAccess,
    pub(crate) api_limiter: Option<crate::rate_limit::RateLimiter>,
    pub(crate) pull_flush: tokio::sync::Mutex<()>,
    /// The key service, once `install_key_service` gave it its store and root key.
    pub(crate) kms: std::sync::OnceLock<crate::kms::KeyService>,
    /// Every background task of this process (see crate::supervisor).
    pub(crate) supervisor: crate::supervisor::Supervisor,
    /// The audit trail's recorder (see crate::audit).
    pub(crate) audit: crate::audit::Auditor,
    /// Pull-through cache rules, upstream clients and blob flights (see crate::pull_through).
    pub(crate) pull_through: crate::pull_through::PullThroughState,
}

/// A manifest to serve.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Bytes,
}

impl From<ManifestRow> for Manifest {
    fn from(r: ManifestRow) -> Self {
        Manifest { digest: r.digest, media_type: r.media_type, content: r.content }
    }
}

#[derive(Debug)]
pub struct PutManifestResult {
    pub digest: Digest,
    pub media_type: String,
    pub subject: Option<Digest>,
    /// The tags now pointing at the manifest by this push.
    pub tags: Vec<String>,
}

/// A page of a lexically ordered listing; `next` is the `last` to ask for the following page.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<String>,
    pub more: bool,
}

/// What a blob delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobDeletion {
    /// The repository no longer links the blob.
    Unlinked,
    /// A manifest in the repository references it; nothing changed.
    Referenced,
}

/// Result of a blob mount request.
#[derive(Debug)]
pub enum MountOutcome {
    Mounted(Digest),
    /// The blob could not be mounted; a fresh upload session was opened instead.
    Upload(crate::UploadStatus),
}

/// Largest page a listing returns, whatever `n` asks for (a Link header leads on).
pub const MAX_PAGE: u32 = 10_000;

impl Registry {
    pub fn new(meta: Arc<dyn MetadataStore>, blobs: Arc<dyn BlobStore>, clock: Arc<dyn Clock>, config: RegistryConfig) -> Self {
        let caches = crate::cache::Caches::new(meta.is_shared());
        let digest_locks = Arc::new(DigestLocks::new());
        let integrity = Arc::new(crate::integrity::Integrity::new(blobs.clone(), meta.clone(), digest_locks.clone()));
        let sealed = blobs.namespace("sealed");
        let public_access = crate::public_access::PublicAccess::new(&config);
        let api_limiter = config.api_calls.map(crate::rate_limit::RateLimiter::new);
        Registry {
            node_id: uuid::Uuid::new_v4().to_string(),
            meta,
            blobs,
            sealed,
            clock,
            config,
            digest_locks,
            integrity,
            uploads: Default::default(),
            signing_keys: Default::default(),
            keys_loaded_at: Default::default(),
            small_parts: Default::default(),
            caches,
            pulls: Default::default(),
            scanner: Default::default(),
            replicator: Default::default(),
            events: Default::default(),
            public_access,
            api_limiter,
            pull_flush: Default::default(),
            kms: Default::default(),
            supervisor: Default::default(),
            audit: Default::default(),
            pull_through: Default::default(),
        }
    }

    /// The same registry under a node id kept across restarts (the data directory's), so that
    /// at start-up it takes back the jobs its previous process held (see `resume_interrupted_scans`).
    pub fn with_node_id(mut self, node_id: impl Into<String>) -> Self {
        self.node_id = node_id.into();
        self
    }

    /// The background tasks of this process.
    pub fn supervisor(&self) -> &crate::supervisor::Supervisor {
        &self.supervisor
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    pub(crate) async fn existing_repository(&self, repo: &Repo) -> Result<RepositoryRow> {
        match self.meta.get_repository(repo.key()).await? {
            Some(r) => Ok(r),
            None => Err(RegistryError::NameUnknown(repo.clone())),
        }
    }

    pub async fn repository_exists(&self, repo: &Repo) -> Result<bool> {
        Ok(self.meta.get_repository(repo.key()).await?.is_some())
    }

    /// The repository a push writes into, created on first push when configured so.
    pub(crate) async fn push_target(&self, repo: &Repo) -> Result<RepositoryRow> {
        if let Some(r) = self.meta.get_repository(repo.key()).await? {
            return Ok(r);
        }
        if !self.config.create_repository_on_push {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        let template = self.template_for(&repo.registry(), repo.name.as_str(), AppliedFor::CreateOnPush).await?;
        match self.create_repository_from_template(repo, template.as_ref()).await {
            // Created concurrently by another push.
            Err(RegistryError::RepositoryExists(_)) => self.existing_repository(repo).await,
            created => created,
        }
    }

    // ---- blobs ----

    /// Size of a blob readable through this repository.
    pub async fn stat_blob(&self, repo: &Repo, digest: &Digest) -> Result<u64> {
        Ok(self.locate_blob(repo, digest).await?.0)
    }

    /// Size of a blob readable through this repository, and where its bytes are.
    pub(crate) async fn locate_blob(&self, repo: &Repo, digest: &Digest) -> Result<(u64, BlobLocation)> {
        match self.meta.repository_blob_object(repo.key(), digest).await? {
            Some(found) => {
                let location = if found.sealed { BlobLocation::Sealed { scope: found.scope } } else { BlobLocation::Plain };
                // A clear blob that failed its hash, or an encrypted object that failed
                // authentication, answers as missing until a push writes it again.
                let quarantined = match &location {
                    BlobLocation::Plain => self.integrity.is_quarantined(digest),
                    BlobLocation::Sealed { scope } => self.integrity.is_quarantined(&crate::sealing::object_name(scope, digest)),
                };
                if quarantined {
                    return Err(RegistryError::BlobQuarantined(digest.clone()));
                }
                self.keep_alive(digest).await?;
                Ok((found.size, location))
            }
            None => {
                self.existing_repository(repo).await?;
                Err(RegistryError::BlobUnknown(digest.clone()))
            }
        }
    }

    /// Clients check a blob exists and then reference it; keep the collector off it meanwhile.
    async fn keep_alive(&self, digest: &Digest) -> Result<()> {
        let now = self.now();
        self.meta.touch_blob(digest, now, now - self.config.gc_grace_millis / 4).await?;
        Ok(())
    }

    /// Opens a blob (or a range of it). `range` is the raw (start, end) from the request,
    /// `end` None meaning "to the end"; a suffix range is `(None, Some(n))`.
    pub async fn read_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        range: Option<(Option<u64>, Option<u64>)>,
    ) -> Result<(u64, Option<BlobRange>, BlobReader)> {
        let (size, location) = self.locate_blob(repo, digest).await?;
        let range = match range {
            None => None,
            Some(r) => Some(resolve_range(r, size)?),
        };
        if let BlobLocation::Sealed { scope } = &location {
            return match self.sealed_get(scope, digest, size, range).await? {
                Some(reader) => Ok((size, range, reader)),
                None => {
                    // A deleted key's objects are reclaimed by GC: say why, not just "unknown".
                    self.check_scope_key(scope).await?;
                    Err(self.blob_missing(digest))
                }
            };
        }
        // See crate::integrity: a verified blob is served as stored; a full read of an
        // unverified one is hashed as it streams; a range of one is served after a full check.
        let verified = self.integrity.is_verified(digest);
        if !verified && range.is_some() {
            match self.integrity.check(digest, None).await?.0 {
                BlobCheck::Intact => {}
                BlobCheck::Corrupt { .. } => return Err(RegistryError::BlobQuarantined(digest.clone())),
                BlobCheck::Missing => return Err(self.blob_missing(digest)),
            }
        }
        match self.blobs.get(digest, range).await? {
            Some(reader) if verified || range.is_some() => Ok((size, range, reader)),
            Some(reader) => Ok((size, range, self.integrity.verifying(digest.clone(), reader))),
            None => Err(self.blob_missing(digest)),
        }
    }

    fn blob_missing(&self, digest: &Digest) -> RegistryError {
        if self.integrity.is_quarantined(digest) {
            return RegistryError::BlobQuarantined(digest.clone());
        }
        tracing::error!(%digest, "blob is recorded in metadata but missing from the blob store");
        RegistryError::BlobUnknown(digest.clone())
    }

    /// A URL the client may fetch the blob from directly (a presigned bucket URL), when the
    /// blob store offers them; None means serve the bytes through berth.
    pub async fn blob_download_url(&self, repo: &Repo, digest: &Digest) -> Result<Option<String>> {
        // Asked first: stores without URLs answer None at no cost, so serving through berth
        // pays no extra lookup.
        // Not only for verified blobs: an operator who configured presigned URLs chose to keep
        // blob bytes off berth's network; the bucket serves them and the scrub checks them.
        // The longest S3 allows; the store shortens it to its configured expiry.
        let Some(url) = self.blobs.download_url(digest, std::time::Duration::from_secs(7 * 24 * 3600)).await? else {
            return Ok(None);
        };
        // An encrypted blob is never handed out as its bucket object: that holds ciphertext
        // only berth can open, so berth serves it.
        match self.locate_blob(repo, digest).await?.1 {
            BlobLocation::Plain => Ok(Some(url)),
            BlobLocation::Sealed { .. } => Ok(None),
        }
    }

    /// Removes the repository's link to a blob. A blob a manifest of the repository references
    /// keeps its link (the manifest must stay pullable): that is [`BlobDeletion::Referenced`],
    /// which the `/v2/` adapter answers as "not offered" (405).
    pub async fn delete_blob(&self, repo: &Repo, digest: &Digest) -> Result<BlobDeletion> {
        self.existing_repository(repo).await?;
        match self.meta.unlink_blob(repo.key(), digest).await? {
            UnlinkOutcome::Unlinked => Ok(BlobDeletion::Unlinked),
            UnlinkOutcome::NotLinked => Err(RegistryError::BlobUnknown(digest.clone())),
            UnlinkOutcome::Referenced => Ok(BlobDeletion::Referenced),
        }
    }

    /// Links a blob from another repository without copying bytes (`from` readable by the caller:
    /// the adapter authorizes that before calling).
    /// A cross-repository mount for `principal`: linked when the blob is in `from` and the
    /// principal may read `from` (ecr:GetDownloadUrlForLayer); otherwise an upload session,
    /// so the client falls back to uploading (the spec's answer, not a refusal).
    pub async fn mount_blob(
        &self,
        principal: &crate::auth::Principal,
        repo: &Repo,
        digest: &Digest,
        from: Option<&Repo>,
    ) -> Result<MountOutcome> {
        let target = self.push_target(repo).await?;
        let readable = match from {
            // BLOB_MOUNTING DISABLED: every mount request gets an upload session, as in ECR.
            Some(f) if self.blob_mounting_enabled(repo).await? => {
                self.permits(principal, "ecr:GetDownloadUrlForLayer", crate::auth::Resource::Repository(f)).await?
            }
            _ => false,
        };
        if let Some(from) = from.filter(|_| readable) {
            if self.link_blob_from(from, repo, &self.write_scope(&target.settings), digest).await? {
                return Ok(MountOutcome::Mounted(digest.clone()));
            }
        }
        Ok(MountOutcome::Upload(self.start_upload(repo).await?))
    }

    /// Links `digest`, which `from` holds, into `to`, whose objects are sealed in `scope`
    /// (a mount, a replicated copy). False when `from` does not hold it.
    pub(crate) async fn link_blob_from(&self, from: &Repo, to: &Repo, scope: &str, digest: &Digest) -> Result<bool> {
        if self.meta.repository_blob_object(from.key(), digest).await?.is_none() {
            return Ok(false);
        }
        // The same locks a collector takes, and a re-check under them: a blob the
        // collector forgot meanwhile is not linked back without its bytes.
        let _guard = self.digest_locks.lock(digest).await;
        let _cluster_guard = self.meta.lock_blob(digest).await?;
        let Some(source) = self.meta.repository_blob_object(from.key(), digest).await? else { return Ok(false) };
        // Deduplication holds within one key: a link into a repository under another key
        // stores a second object, sealed under that key.
        if !self.provide_object(&source, digest, scope).await? {
            return Ok(false);
        }
        self.meta.link_blob_in(to.key(), digest, source.size, self.now(), scope).await?;
        Ok(true)
    }

    // ---- manifests ----

    /// A manifest to serve; `pull` records the pull (a GET, not a HEAD). Archived images are
    /// listed but not served.
    pub async fn get_manifest(&self, repo: &Repo, reference: &Reference, pull: bool) -> Result<Manifest> {
        let manifest = self.find_manifest(repo, reference).await?;
        if manifest.storage_class == StorageClass::Archive {
            return Err(RegistryError::ImageArchived(manifest.digest.to_string()));
        }
        if pull {
            self.pulls.note(repo.key(), &manifest.digest, self.now());
        }
        Ok(manifest.into())
    }

    /// A manifest GET by `puller` (the caller's principal ARN): `get_manifest` with `pull`,
    /// except that a principal the registry excludes from pull time updates
    /// (RegisterPullTimeUpdateExclusion) leaves lastRecordedPullTime where it was.
    pub async fn pull_manifest(&self, repo: &Repo, reference: &Reference, puller: &str) -> Result<Manifest> {
        let manifest = self.get_manifest(repo, reference, false).await?;
        self.note_pull(repo, &manifest.digest, Some(puller)).await;
        Ok(manifest)
    }

    /// Writes pending pull times (see [`crate::pulls`]).
    pub async fn flush_pulls(&self) -> Result<()> {
        // One flush at a time: a reader that flushes must see every pull noted before it,
        // including ones another flush has taken but not yet written.
        let _one = self.pull_flush.lock().await;
        let pending = self.pulls.take();
        if pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.meta.record_pulls(&pending).await {
            self.pulls.restore(pending);
            return Err(e.into());
        }
        Ok(())
    }

    async fn find_manifest(&self, repo: &Repo, reference: &Reference) -> Result<ManifestRow> {
        let row = match reference {
            // Another node may move the tag at any time: cached only while the change feed
            // listens (see cache.rs).
            Reference::Tag(t) if !self.caches.tags_cacheable() => self.meta.get_manifest_by_tag(repo.key(), t.as_str()).await?,
            Reference::Tag(t) => {
                let key = (repo.key().clone(), t.as_str().to_string());
                if let Some(hit) = self.caches.tags.get(&key) {
                    return Ok(hit.as_ref().clone());
                }
                let generation = self.caches.generation();
                let row = self.meta.get_manifest_by_tag(repo.key(), t.as_str()).await?;
                // Archived manifests are never cached, so a restore can never leave one stale.
                if let Some(r) = row.as_ref().filter(|r| r.storage_class == StorageClass::Standard) {
                    self.caches.fill(&self.caches.tags, generation, key, std::sync::Arc::new(r.clone()));
                }
                row
            }
            Reference::Digest(d) => self.meta.get_manifest_by_digest(repo.key(), d).await?,
        };
        match row {
            Some(r) => Ok(r),
            None => {
                self.existing_repository(repo).await?;
                Err(RegistryError::ManifestUnknown(reference.to_string()))
            }
        }
    }

    /// Stores a manifest exactly as pushed and, when `reference` is a tag, moves the tag to it.
    pub async fn put_manifest(&self, repo: &Repo, reference: &Reference, content_type: &str, body: Bytes) -> Result<PutManifestResult> {
        self.put_manifest_tagged(repo, reference, &[], content_type, body).await
    }

    /// [`Registry::put_manifest`] that also points `extra_tags` at the manifest, in the same
    /// transaction and under the same immutability rule as the reference's own tag (the
    /// distribution-spec's `PUT …/manifests/<digest>?tag=…`, the only way to tag a manifest
    /// whose digest is not sha256).
    pub async fn put_manifest_tagged(
        &self,
        repo: &Repo,
        reference: &Reference,
        extra_tags: &[Tag],
        content_type: &str,
        body: Bytes,
    ) -> Result<PutManifestResult> {
        self.store_manifest(repo, reference, extra_tags, content_type, body, false).await
    }

    /// [`Registry::put_manifest_tagged`]; `replicated` for a copy made by replication, which is
    /// not replicated again (as in ECR).
    pub(crate) async fn store_manifest(
        &self,
        repo: &Repo,
        reference: &Reference,
        extra_tags: &[Tag],
        content_type: &str,
        body: Bytes,
        replicated: bool,
    ) -> Result<PutManifestResult> {
        let parsed = manifest::parse(&body, content_type)?;
        self.store_parsed_manifest(repo, reference, extra_tags, parsed, body, replicated).await
    }

    /// [`Registry::store_manifest`] of a manifest already parsed; the pull-through cache stores
    /// an index with only the children it holds among its `references` (ECR's partial index).
    pub(crate) async fn store_parsed_manifest(
        &self,
        repo: &Repo,
        reference: &Reference,
        extra_tags: &[Tag],
        parsed: manifest::ParsedManifest,
        body: Bytes,
        replicated: bool,
    ) -> Result<PutManifestResult> {
        let media_type = parsed.media_type.clone();
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if &actual != expected {
                    return Err(RegistryError::DigestInvalid(format!("manifest digest is {actual}, not {expected}")));
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(&body),
        };
        let repository = self.push_target(repo).await?;
        let mut names: Vec<&str> = match reference {
            Reference::Tag(t) => vec![t.as_str()],
            Reference::Digest(_) => Vec::new(),
        };
        for t in extra_tags {
            if !names.contains(&t.as_str()) {
                names.push(t.as_str());
            }
        }
        let mut tags = Vec::with_capacity(names.len());
        for name in names {
            let rule = if crate::immutability::tag_is_immutable(&repository.settings, name)? { TagMove::CreateOnly } else { TagMove::Move };
            tags.push((name, rule));
        }
        let hooks = self.event_webhooks(repo).await;
        let tag_names: Vec<String> = tags.iter().map(|(t, _)| t.to_string()).collect();
        let outbox = self.push_outbox(&hooks, repo, &digest, &tag_names);
        let outcome = self
            .meta
            .put_manifest(NewManifest {
                repository: repo.key(),
                manifest: ManifestRow {
                    digest: digest.clone(),
                    media_type: parsed.media_type,
                    artifact_type: parsed.artifact_type,
                    subject: parsed.subject.clone(),
                    annotations: parsed.annotations,
                    image_size: parsed.total_size,
                    content: body,
                    pushed_at: self.now(),
                    storage_class: StorageClass::Standard,
                },
                references: parsed.references,
                tags: tags.clone(),
                outbox,
            })
            .await?;
        if let PutManifestOutcome::Stored { restored, .. } = &outcome {
            if *restored {
                // Other tags of the restored image may be cached as archived.
                self.caches.invalidate_repository_tags();
            } else {
                for (t, _) in &tags {
                    self.caches.invalidate_tag(repo.key(), t);
                }
            }
        }
        match outcome {
            PutManifestOutcome::Stored { inserted, .. } => {
                self.outbox_committed(&hooks);
                // ECR scans new images on push, not re-pushes of ones it holds (a new tag, say).
                if inserted {
                    self.scan_after_push(repo, &digest, repository.settings.scan_on_push, parsed.subject.is_some(), &media_type).await;
                }
                // A re-push may have moved tags: the copies get them too.
                if !replicated {
                    self.replicate_after_push(repo, &digest).await;
                }
                Ok(PutManifestResult { digest, media_type, subject: parsed.subject, tags: tag_names })
            }
            PutManifestOutcome::MissingReference(d, RefKind::Blob) => Err(RegistryError::ManifestBlobUnknown(d)),
            PutManifestOutcome::MissingReference(d, RefKind::Manifest) => Err(RegistryError::ManifestChildUnknown(d)),
            PutManifestOutcome::SizeMismatch { reference, stored } => Err(size_mismatch(&reference, stored)),
            PutManifestOutcome::TagExists(_) => {
                let tag = self.immutable_tag_in_the_way(repo, &tags, &digest).await?;
                Err(RegistryError::TagImmutable { tag, repository: repo.to_string() })
            }
            PutManifestOutcome::RepositoryMissing => Err(RegistryError::NameUnknown(repo.clone())),
        }
    }

    /// Which of the immutable `tags` names another manifest than `digest` (for the refusal's
    /// message; the store made the decision).
    async fn immutable_tag_in_the_way(&self, repo: &Repo, tags: &[(&str, TagMove)], digest: &Digest) -> Result<String> {
        for (t, _) in tags.iter().filter(|(_, rule)| *rule == TagMove::CreateOnly) {
            if self.meta.get_manifest_by_tag(repo.key(), t).await?.is_some_and(|m| m.digest != *digest) {
                return Ok(t.to_string());
            }
        }
        Ok(tags.first().map(|(t, _)| t.to_string()).unwrap_or_default())
    }

    /// By digest: deletes the manifest and its tags, unless an index of the repository lists
    /// it (the index would lose a platform). By tag: deletes only the tag, always.
    pub async fn delete_manifest(&self, repo: &Repo, reference: &Reference) -> Result<()> {
        self.existing_repository(repo).await?;
        // The DELETE events are built inside the delete's transaction, from what it removed.
        let hooks = self.event_webhooks(repo).await;
        let deleted = match reference {
            Reference::Tag(t) => {
                let outbox = self.tag_delete_outbox(&hooks, repo, t.as_str());
                let deleted = self.meta.delete_tag_queueing(repo.key(), t.as_str(), self.now(), &outbox).await?;
                self.caches.invalidate_tag(repo.key(), t.as_str());
                deleted
            }
            Reference::Digest(d) => {
                match self.meta.delete_manifest_queueing(repo.key(), d, self.now(), &self.manifest_delete_outbox(&hooks, repo, d)).await? {
                    DeleteManifestOutcome::Deleted => {
                        self.caches.invalidate_repository_tags();
                        true
                    }
                    DeleteManifestOutcome::NotFound => false,
                    DeleteManifestOutcome::ListedBy(index) => {
                        return Err(RegistryError::ImageReferencedByIndex { image: d.clone(), index });
                    }
                }
            }
        };
        if deleted {
            self.outbox_committed(&hooks);
            Ok(())
        } else {
            Err(RegistryError::ManifestUnknown(reference.to_string()))
        }
    }

    pub async fn list_tags(&self, repo: &Repo, last: Option<&str>, n: Option<u32>) -> Result<Page> {
        self.existing_repository(repo).await?;
        let limit = n.unwrap_or(u32::MAX).min(MAX_PAGE);
        let mut items = self.meta.list_tags(repo.key(), last, limit.saturating_add(1)).await?;
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Page { items, more })
    }

    pub async fn list_repositories(&self, scope: &RegistryRef, last: Option<&str>, n: Option<u32>) -> Result<Page> {
        let limit = n.unwrap_or(u32::MAX).min(MAX_PAGE);
        let rows = self.meta.list_repositories(&scope.account, &scope.region, last, limit.saturating_add(1)).await?;
        let mut items: Vec<String> = rows.into_iter().map(|r| r.key.name).collect();
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(Page { items, more })
    }

    /// Manifests whose subject is `subject`, optionally only those of `artifact_type`.
    pub async fn referrers(&self, repo: &Repo, subject: &Digest, artifact_type: Option<&str>) -> Result<Vec<ManifestSummary>> {
        if self.meta.get_repository(repo.key()).await?.is_none() {
            // The spec wants an empty index, not an error, for unknown subjects.
            return Ok(Vec::new());
        }
        let mut all = self.meta.list_referrers(repo.key(), subject).await?;
        for m in all.iter_mut().filter(|m| m.artifact_type.is_none()) {
            m.artifact_type = self.config_media_type(repo, m).await?;
        }
        if let Some(t) = artifact_type {
            all.retain(|m| m.artifact_type.as_deref() == Some(t));
        }
        Ok(all)
    }

    /// ListImageReferrers: the referrers of `subject` whose artifact type is one of
    /// `artifact_types` (any when empty) and whose storage class is `storage` (any when None),
    /// after the digest `after`, at most `limit`, in digest order (a page boundary survives
    /// referrers pushed or deleted between pages). Returns the page and whether more follow.
    pub async fn referrers_page(
        &self,
        repo: &Repo,
        subject: &Digest,
        artifact_types: &[String],
        storage: Option<StorageClass>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ManifestSummary>, bool)> {
        self.existing_repository(repo).await?;
        let mut found: Vec<(String, ManifestSummary)> = self
            .referrers(repo, subject, None)
            .await?
            .into_iter()
            .filter(|m| artifact_types.is_empty() || m.artifact_type.as_ref().is_some_and(|t| artifact_types.contains(t)))
            .filter(|m| storage.is_none_or(|s| m.storage_class == s))
            .map(|m| (m.digest.to_string(), m))
            .filter(|(d, _)| after.is_none_or(|a| d.as_str() > a))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let more = found.len() > limit;
        found.truncate(limit);
        Ok((found.into_iter().map(|(_, m)| m).collect(), more))
    }

    /// An image manifest without `artifactType` is listed with its config's media type as one
    /// (the distribution-spec's MUST). The store keeps only a declared or non-image type, so
    /// plain images (and Docker ones) are read back here; referrer lists are short.
    async fn config_media_type(&self, repo: &Repo, m: &ManifestSummary) -> Result<Option<String>> {
        if !manifest::is_image_manifest(&m.media_type) {
            return Ok(None);
        }
        let Some(row) = self.meta.get_manifest_by_digest(repo.key(), &m.digest).await? else { return Ok(None) };
        Ok(manifest::config_media_type(&row.content))
    }

    pub async fn open_upload_sessions(&self) -> Result<u64> {
        Ok(self.meta.count_uploads().await?)
    }

    /// Jobs in the durable outbox per (kind, status), for metrics.
    pub async fn job_counts(&self) -> Result<Vec<(String, berth_store::JobStatus, u64)>> {
        Ok(self.meta.count_jobs().await?)
    }

    pub fn tag(s: &str) -> Result<Tag> {
        Tag::parse(s)
    }
}

/// Settings of a repository created by a push (ECR's CreateRepository defaults).
pub fn default_settings() -> RepositorySettings {
    RepositorySettings::ecr_defaults()
}

/// The OCI image-spec requires a descriptor's size to be the content's: a declared size is
/// what clients trust for progress, limits and ECR's imageSizeInBytes, so a wrong one is refused.
fn size_mismatch(reference: &ManifestReference, stored: u64) -> RegistryError {
    let what = match reference.kind {
        RefKind::Blob => "blob",
        RefKind::Manifest => "manifest",
    };
    RegistryError::ManifestInvalid(format!(
        "the descriptor of {what} {} declares size {} but the stored {what} is {stored} bytes",
        reference.digest, reference.size
    ))
}

fn resolve_range((start, end): (Option<u64>, Option<u64>), size: u64) -> Result<BlobRange> {
    let unsatisfiable = RegistryError::RangeNotSatisfiable { size };
    let (s, e) = match (start, end) {
        (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
        (Some(s), None) => (s, size.saturating_sub(1)),
        (None, Some(n)) if n > 0 => (size.saturating_sub(n), size.saturating_sub(1)),
        _ => return Err(unsatisfiable),
    };
    if size == 0 || s >= size {
        return Err(unsatisfiable);
    }
    Ok(BlobRange { start: s, end_inclusive: e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(resolve_range((Some(0), Some(9)), 100).unwrap(), BlobRange { start: 0, end_inclusive: 9 });
        assert_eq!(resolve_range((Some(90), Some(200)), 100).unwrap(), BlobRange { start: 90, end_inclusive: 99 });
        assert_eq!(resolve_range((Some(10), None), 100).unwrap(), BlobRange { start: 10, end_inclusive: 99 });
        assert_eq!(resolve_range((None, Some(10)), 100).unwrap(), BlobRange { start: 90, end_inclusive: 99 });
        assert!(resolve_range((Some(100), None), 100).is_err());
        assert!(resolve_range((Some(5), Some(4)), 100).is_err());
        assert!(resolve_range((None, Some(0)), 100).is_err());
    }
}
