//! Pulling through: a `/v2/` read of a cache repository that misses (or a tag due for its
//! re-check) goes to the rule's upstream.
//!
//! Manifests: by digest, a stored one is served and never re-checked; by tag, a stored one is
//! served until `RegistryConfig::pull_through_refresh_millis` after the tag was last found
//! current upstream, then one `HEAD` (no pull quota spent) decides whether to fetch it again. A
//! fetched manifest is verified (by digest: the digest; by tag: the upstream's
//! `Docker-Content-Digest`), parsed, and stored at once when the repository holds everything it
//! references; otherwise it is served from memory (`pending`) while a task stores its blobs
//! through the blob flights clients join, then stores it. An index is stored at once with the
//! children the repository holds (ECR stores the index on first pull): its other children are
//! fetched as clients ask for them, and each one cached links itself to the indexes that list it
//! (see `children`). Referrers: see `referrers`. Every image cached (or failing to be) is an "ECR Pull Through
//! Cache Action" event.
//!
//! Upstream failures: 404 is the client's MANIFEST_UNKNOWN / BLOB_UNKNOWN; anything else is
//! `RegistryError::Upstream` naming the upstream and its answer. A failed upstream (down, 5xx,
//! 429) is left alone for `UPSTREAM_PAUSE` (or its Retry-After): stale tags are served from the
//! cache meanwhile and misses fail at once, so a crowd of clients makes no retry storm.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_oci_client::{ClientError, ClientOptions, Credentials, Endpoint, OciClient};
use berth_store::{ByteStream, Digest, RefKind};

use super::flight::{self, Flights, Source};
use super::{credentials, upstream_base, Rule, RuleCache, SyncOutcome, UpstreamTarget};
use crate::auth::{Principal, Resource};
use crate::error::Result;
use crate::manifest::media_types;
use crate::names::{Reference, RegistryRef, Repo};
use crate::templates::AppliedFor;
use crate::{Manifest, Registry, RegistryError};

/// `failure-code`s of a FAILED "ECR Pull Through Cache Action" (berth's: ECR documents none).
const UPSTREAM_FAILED: &str = "UPSTREAM_ERROR";
const INVALID_CONTENT: &str = "INVALID_UPSTREAM_CONTENT";
const CACHING_FAILED: &str = "CACHING_FAILED";

/// How long a failing upstream is left alone.
const UPSTREAM_PAUSE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct PullThroughState {
    pub(crate) rules: RuleCache,
    /// Upstream clients by (account, upstream, secret), each with when it was made: a client is
    /// remade after `CLIENT_TTL`, so a secret's new value (a rotated password) is picked up.
    clients: Mutex<HashMap<String, (Instant, Arc<OciClient>)>>,
    pub(crate) flights: Flights,
    manifest_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Fetched manifests not stored yet, by (repository, digest), and the tags naming them.
    pending: Mutex<HashMap<(String, String), Manifest>>,
    pending_tags: Mutex<HashMap<(String, String), String>>,
    /// Upstreams that failed lately: until when they are left alone, and why.
    paused: Mutex<HashMap<String, (Instant, String)>>,
    /// Stored indexes (by repository) some of whose children are not cached yet.
    pub(super) partial: Mutex<HashMap<String, HashSet<Digest>>>,
    /// Stored indexes this process checked for uncached children (after a restart `partial`
    /// is refilled as they are served).
    pub(super) checked_indexes: Mutex<HashSet<(String, Digest)>>,
    /// When each subject's referrers were last listed upstream (Registry's clock, ms).
    pub(super) referrers_listed: Mutex<HashMap<(String, Digest), i64>>,
}

pub(super) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn repo_id(repo: &Repo) -> String {
    let k = repo.key();
    format!("{}\n{}\n{}", k.account, k.region, k.name)
}

impl PullThroughState {
    pub(crate) fn forget_clients(&self) {
        locked(&self.clients).clear();
    }

    fn pending(&self, repo: &Repo, reference: &Reference) -> Option<Manifest> {
        let id = repo_id(repo);
        let digest = match reference {
            Reference::Digest(d) => d.to_string(),
            Reference::Tag(t) => locked(&self.pending_tags).get(&(id.clone(), t.as_str().to_string()))?.clone(),
        };
        locked(&self.pending).get(&(id, digest)).cloned()
    }

    fn forget_pending(&self, repo: &Repo, digest: &Digest) {
        let id = repo_id(repo);
        let d = digest.to_string();
        locked(&self.pending).remove(&(id.clone(), d.clone()));
        locked(&self.pending_tags).retain(|(r, _), v| !(r == &id && v == &d));
    }

    fn manifest_lock(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = locked(&self.manifest_locks);
        // Idle locks (held by nobody but the table) are dropped as the table grows.
        if locks.len() > 1024 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key).or_default().clone()
    }

    fn paused(&self, upstream: &str) -> Option<String> {
        let paused = locked(&self.paused);
        paused.get(upstream).filter(|(until, _)| Instant::now() < *until).map(|(_, why)| why.clone())
    }

    fn note_failure(&self, upstream: &str, e: &ClientError) {
        if !e.is_retryable() {
            return;
        }
        let pause = match e {
            ClientError::TooManyRequests { retry_after: Some(after) } => (*after).max(UPSTREAM_PAUSE),
            _ => UPSTREAM_PAUSE,
        };
        locked(&self.paused).insert(upstream.to_string(), (Instant::now() + pause, e.to_string()));
    }
}

/// How long an upstream client (and the credentials it was made with) is reused.
const CLIENT_TTL: Duration = Duration::from_secs(60);

/// The client's options for an upstream: bounded waits, few attempts (clients retry themselves).
fn upstream_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        max_attempts: 3,
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

fn upstream_error(target: &UpstreamTarget, what: &str, e: &ClientError) -> RegistryError {
    RegistryError::Upstream(format!("upstream registry {} failed for {what} of {}: {e}", target.rule.upstream_url, target.repository))
}

impl Registry {
    /// The client of a rule's upstream, with the rule's credentials (one per upstream and secret).
    pub(crate) async fn upstream_client(&self, scope: &RegistryRef, rule: &Rule) -> Result<Arc<OciClient>> {
        let allow_insecure = self.config.allow_insecure_upstreams;
        let base = upstream_base(&rule.upstream_url, allow_insecure)?;
        let base = match rule.upstream_registry.as_deref() {
            // Docker Hub's registry API is not at docker.io.
            Some("docker-hub") if base.host_str() == Some("docker.io") => upstream_base("registry-1.docker.io", false)?,
            _ => base,
        };
        let key = format!("{}\n{base}\n{}", scope.account, rule.credential_arn.as_deref().unwrap_or(""));
        if let Some((made, c)) = locked(&self.pull_through.clients).get(&key) {
            if made.elapsed() < CLIENT_TTL {
                return Ok(c.clone());
            }
        }
        let credentials = match &rule.credential_arn {
            None => Credentials::Anonymous,
            Some(arn) => match credentials::lookup(self, &scope.account, arn).await? {
                Some(c) => Credentials::Basic { username: c.username, password: c.access_token },
                None => return Err(RegistryError::Upstream(format!("the rule's secret {arn} no longer exists"))),
            },
        };
        let client = OciClient::new(Endpoint { base, credentials, allow_insecure }, upstream_options())
            .map_err(|e| RegistryError::Upstream(format!("upstream registry {}: {e}", rule.upstream_url)))?;
        let client = Arc::new(client);
        locked(&self.pull_through.clients).insert(key, (Instant::now(), client.clone()));
        Ok(client)
    }

    pub(super) async fn upstream_source(&self, repo: &Repo, target: &UpstreamTarget) -> Result<Source> {
        if let Some(why) = self.pull_through.paused(&target.rule.upstream_url) {
            return Err(RegistryError::Upstream(format!(
                "upstream registry {} is unavailable (last error: {why}); cached images of {} are still served",
                target.rule.upstream_url, target.repository
            )));
        }
        let client = self.upstream_client(&repo.registry(), &target.rule).await?;
        Ok(Source { client, repository: target.repository.clone(), upstream: target.rule.upstream_url.clone() })
    }

    /// Pulling through needs, beyond the pull itself, ECR's import and (for a new cache
    /// repository) creation permissions.
    pub(super) async fn authorize_import(&self, principal: &Principal, repo: &Repo) -> Result<()> {
        self.authorize(principal, "ecr:BatchImportUpstreamImage", Resource::Repository(repo)).await?;
        if !self.repository_exists(repo).await? {
            self.authorize(principal, "ecr:CreateRepository", Resource::Repository(repo)).await?;
        }
        Ok(())
    }

    /// The cache repository, created from a PULL_THROUGH_CACHE creation template when new.
    async fn ensure_cache_repository(&self, repo: &Repo) -> Result<()> {
        if self.repository_exists(repo).await? {
            return Ok(());
        }
        let template = self.template_for(&repo.registry(), repo.name.as_str(), AppliedFor::PullThroughCache).await?;
        match self.create_repository_from_template(repo, template.as_ref()).await {
            Ok(_) | Err(RegistryError::RepositoryExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A `/v2/` manifest read (`head`: no pull recorded): from the repository, or through its
    /// pull-through cache rule when it has one.
    pub async fn serve_manifest(
        self: &Arc<Self>,
        principal: &Principal,
        repo: &Repo,
        reference: &Reference,
        head: bool,
    ) -> Result<Manifest> {
        let target = self.pull_through_target(repo).await?;
        let local = self.get_manifest(repo, reference, false).await;
        let Some(target) = target else {
            let m = local?;
            if !head {
                self.note_pull(repo, &m.digest, Some(&principal.arn)).await;
            }
            return Ok(m);
        };
        // A tag fetched anew whose image is still being stored is served as fetched.
        let pending = match reference {
            Reference::Tag(_) => self.pull_through.pending(repo, reference),
            Reference::Digest(_) => None,
        };
        let m = match (pending, local, reference) {
            (Some(m), _, _) => m,
            (None, Ok(m), Reference::Digest(_)) => m,
            (None, Ok(m), Reference::Tag(tag)) => self.refreshed(principal, repo, &target, tag.as_str(), m).await?,
            (None, Err(RegistryError::ManifestUnknown(_) | RegistryError::NameUnknown(_) | RegistryError::ImageNotFound(_)), _) => {
                match self.pull_through.pending(repo, reference) {
                    Some(m) => m,
                    None => self.fetch_manifest(principal, repo, &target, reference).await?,
                }
            }
            (None, Err(e), _) => return Err(e),
        };
        if is_index(&m.media_type) {
            self.note_partial_index(repo, &m).await;
        }
        if !head && self.repository_exists(repo).await? {
            self.note_pull(repo, &m.digest, Some(&principal.arn)).await;
        }
        Ok(m)
    }

    /// A cached tag, re-checked upstream when due: the stored manifest while the upstream names
    /// the same digest (or cannot be asked), the upstream's new one when the tag moved.
    async fn refreshed(
        self: &Arc<Self>,
        principal: &Principal,
        repo: &Repo,
        target: &UpstreamTarget,
        tag: &str,
        cached: Manifest,
    ) -> Result<Manifest> {
        let now = self.now();
        let checked = self.meta.pull_through_tag_checked(repo.key(), tag).await?;
        if checked.is_some_and(|at| now.saturating_sub(at) < self.config.pull_through_refresh_millis) {
            return Ok(cached);
        }
        let Ok(source) = self.upstream_source(repo, target).await else { return Ok(cached) };
        match source.client.head_manifest(&target.repository, tag).await {
            Ok(Some(info)) if info.digest == cached.digest.to_string() => {
                self.meta.set_pull_through_tag_checked(repo.key(), tag, now).await?;
                // Signatures and SBOMs are often added upstream after the image: the re-check
                // also lists the subject's referrers again and caches the new ones (in the
                // background; only for a principal that may import into the cache).
                if self.referrers_due(principal, repo, &cached.digest).await {
                    tokio::spawn(self.clone().import_referrers(repo.clone(), target.clone(), cached.digest.clone()));
                }
                Ok(cached)
            }
            Ok(Some(_)) => match self.fetch_manifest(principal, repo, target, &Reference::Tag(Registry::tag(tag)?)).await {
                Ok(m) => Ok(m),
                Err(e) => {
                    tracing::warn!(repository = %repo, tag, error = %e, "re-fetching a moved tag failed; serving the cached image");
                    Ok(cached)
                }
            },
            // Gone upstream: the cache keeps what it has (as ECR does).
            Ok(None) => Ok(cached),
            Err(e) => {
                self.pull_through.note_failure(&target.rule.upstream_url, &e);
                tracing::warn!(repository = %repo, tag, upstream = %target.rule.upstream_url, error = %e, "tag re-check failed; serving the cached image");
                Ok(cached)
            }
        }
    }

    async fn fetch_manifest(
        self: &Arc<Self>,
        principal: &Principal,
        repo: &Repo,
        target: &UpstreamTarget,
        reference: &Reference,
    ) -> Result<Manifest> {
        self.authorize_import(principal, repo).await?;
        self.import_manifest(repo, target, reference).await
    }

    /// A manifest from the upstream into the cache repository (its caller authorized the import).
    pub(super) async fn import_manifest(self: &Arc<Self>, repo: &Repo, target: &UpstreamTarget, reference: &Reference) -> Result<Manifest> {
        Ok(self.import_manifest_storing(repo, target, reference).await?.0)
    }

    /// [`Registry::import_manifest`], and the task storing it when it could not be stored at once
    /// (its blobs are fetched first); None when it is stored, or was pending already.
    pub(super) async fn import_manifest_storing(
        self: &Arc<Self>,
        repo: &Repo,
        target: &UpstreamTarget,
        reference: &Reference,
    ) -> Result<(Manifest, Option<tokio::task::JoinHandle<()>>)> {
        let lock = self.pull_through.manifest_lock(format!("{}\n{reference}", repo_id(repo)));
        let _one = lock.lock().await;
        // Another request may have fetched it while this one waited.
        if let Some(m) = self.pull_through.pending(repo, reference) {
            return Ok((m, None));
        }
        if let (Ok(m), Reference::Digest(_)) = (self.get_manifest(repo, reference, false).await, reference) {
            return Ok((m, None));
        }
        let source = self.upstream_source(repo, target).await?;
        let reference_text = reference.to_string();
        let fetched = match source.client.get_manifest(&target.repository, &reference_text).await {
            Ok(m) => m,
            Err(ClientError::NotFound { .. }) => return Err(RegistryError::ManifestUnknown(reference_text)),
            Err(e) => {
                self.pull_through.note_failure(&target.rule.upstream_url, &e);
                let failure = upstream_error(target, &format!("manifest {reference_text}"), &e);
                let code = if matches!(e, ClientError::DigestMismatch { .. }) { INVALID_CONTENT } else { UPSTREAM_FAILED };
                self.emit_sync(repo, target, reference, None, Some((code, failure.to_string()))).await;
                return Err(failure);
            }
        };
        let checked = fetched
            .digest
            .parse::<Digest>()
            .map_err(|e| format!("upstream registry {} named an invalid digest {:?}: {e}", target.rule.upstream_url, fetched.digest))
            .and_then(|digest| {
                crate::manifest::parse(&fetched.bytes, &fetched.media_type).map(|parsed| (digest, parsed)).map_err(|e| {
                    format!(
                        "upstream registry {} sent a manifest for {}:{reference_text} that berth cannot read: {e}",
                        target.rule.upstream_url, target.repository
                    )
                })
            });
        let (digest, parsed) = match checked {
            Ok(ok) => ok,
            Err(message) => {
                self.emit_sync(repo, target, reference, None, Some((INVALID_CONTENT, message.clone()))).await;
                return Err(RegistryError::Upstream(message));
            }
        };
        let manifest = Manifest { digest: digest.clone(), media_type: parsed.media_type.clone(), content: fetched.bytes };
        self.ensure_cache_repository(repo).await?;
        let stored_as = match reference {
            Reference::Tag(t) => Reference::Tag(t.clone()),
            Reference::Digest(_) => Reference::Digest(digest.clone()),
        };
        if let Reference::Tag(t) = reference {
            self.meta.set_pull_through_tag_checked(repo.key(), t.as_str(), self.now()).await?;
        }
        if parsed.references.iter().any(|r| r.kind == RefKind::Manifest) {
            self.store_index(repo, &stored_as, parsed, &manifest).await?;
            self.cached(repo, target, &stored_as, &digest).await;
            return Ok((manifest, None));
        }
        let blobs: Vec<Digest> = parsed.references.iter().filter(|r| r.kind == RefKind::Blob).map(|r| r.digest.clone()).collect();
        match self.store_parsed_manifest(repo, &stored_as, &[], parsed, manifest.content.clone(), false).await {
            Ok(_) => {
                self.cached(repo, target, &stored_as, &digest).await;
                return Ok((manifest, None));
            }
            Err(RegistryError::ManifestBlobUnknown(_)) => {}
            Err(e) => return Err(e),
        }
        let id = repo_id(repo);
        locked(&self.pull_through.pending).insert((id.clone(), digest.to_string()), manifest.clone());
        if let Reference::Tag(t) = reference {
            locked(&self.pull_through.pending_tags).insert((id, t.as_str().to_string()), digest.to_string());
        }
        let storing = {
            let (me, repo, manifest, target) = (self.clone(), repo.clone(), manifest.clone(), target.clone());
            tokio::spawn(async move { me.complete_image(&repo, &target, source, blobs, stored_as, manifest).await })
        };
        Ok((manifest, Some(storing)))
    }

    /// Stores every blob of a fetched image (joining the flights clients started), then the image.
    async fn complete_image(
        self: &Arc<Self>,
        repo: &Repo,
        target: &UpstreamTarget,
        source: Source,
        blobs: Vec<Digest>,
        stored_as: Reference,
        manifest: Manifest,
    ) {
        let result = async {
            for digest in &blobs {
                if self.stat_blob(repo, digest).await.is_ok() {
                    continue;
                }
                let f = self.blob_flight(repo, digest, source_clone(&source))?;
                flight::stored(&f).await?;
            }
            self.store_manifest(repo, &stored_as, &[], &manifest.media_type, manifest.content.clone(), false).await
        }
        .await;
        self.pull_through.forget_pending(repo, &manifest.digest);
        match result {
            Ok(_) => self.cached(repo, target, &stored_as, &manifest.digest).await,
            Err(e) => {
                tracing::warn!(repository = %repo, digest = %manifest.digest, error = %e, "caching a pulled-through image failed");
                self.emit_sync(repo, target, &stored_as, Some(&manifest.digest), Some((CACHING_FAILED, e.to_string()))).await;
            }
        }
    }

    /// An image or index just cached: its event, its links to the indexes that list it, and its
    /// referrers fetched in the background.
    async fn cached(self: &Arc<Self>, repo: &Repo, target: &UpstreamTarget, stored_as: &Reference, digest: &Digest) {
        self.emit_sync(repo, target, stored_as, Some(digest), None).await;
        self.link_partial_indexes(repo).await;
        if let Err(e) = self.link_to_parents(repo, digest).await {
            tracing::warn!(repository = %repo, %digest, error = %e, "linking a cached manifest to the indexes that list it");
        }
        tokio::spawn(self.clone().import_referrers(repo.clone(), target.clone(), digest.clone()));
    }

    async fn emit_sync(
        &self,
        repo: &Repo,
        target: &UpstreamTarget,
        reference: &Reference,
        digest: Option<&Digest>,
        failure: Option<(&'static str, String)>,
    ) {
        let tag = match reference {
            Reference::Tag(t) => Some(t.as_str()),
            Reference::Digest(_) => None,
        };
        let digest = digest.or(match reference {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        });
        let sync = SyncOutcome { prefix: &target.rule.prefix, upstream_url: &target.rule.upstream_url, tag, digest, failure };
        self.emit_pull_through_action(repo, &sync).await;
    }

    /// A blob read that missed in a cache repository: fetched from the upstream (one flight per
    /// blob), its bytes streamed as they arrive. `None` when the repository has no rule.
    pub async fn pull_through_blob(
        self: &Arc<Self>,
        principal: &Principal,
        repo: &Repo,
        digest: &Digest,
    ) -> Result<Option<(u64, ByteStream)>> {
        let Some(target) = self.pull_through_target(repo).await? else { return Ok(None) };
        self.authorize_import(principal, repo).await?;
        self.ensure_cache_repository(repo).await?;
        let source = self.upstream_source(repo, &target).await?;
        // Stored a moment ago by another flight (the image's own storing task, say) after the
        // caller found it missing: read from the store rather than fetched again.
        if let Ok((size, _, reader)) = self.read_blob(repo, digest, None).await {
            return Ok(Some((size, reader.body)));
        }
        let f = self.blob_flight(repo, digest, source)?;
        match flight::read(f).await {
            Ok(read) => Ok(Some(read)),
            Err(RegistryError::Upstream(m)) if m.contains("not found on the remote registry") => {
                Err(RegistryError::BlobUnknown(digest.clone()))
            }
            Err(e) => Err(e),
        }
    }

    /// Blob fetches running now (single flight: one per blob and repository).
    pub fn pull_through_flights(&self) -> usize {
        self.pull_through.flights.len()
    }
}

pub(super) fn is_index(media_type: &str) -> bool {
    matches!(media_type, media_types::OCI_INDEX | media_types::DOCKER_LIST)
}

fn source_clone(s: &Source) -> Source {
    Source { client: s.client.clone(), repository: s.repository.clone(), upstream: s.upstream.clone() }
}
