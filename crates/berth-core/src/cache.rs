//! In-memory caches for the hot reads: manifest by tag, access keys, and the
//! inputs of an authorization decision. Safe because every write goes through
//! this process's `Registry`, which invalidates what it changes. A reader only
//! fills the cache if no write happened while it read (generation check), so
//! an invalidation can never be overtaken by a stale fill.
//!
//! Identity rows can also change from `berth admin` (another process); those
//! entries expire after a few seconds instead.
//!
//! When several nodes share the metadata store, writes on another node never
//! reach this process's invalidations. Manifests by tag are then cached only
//! while the store's change feed vouches for them (PostgreSQL LISTEN/NOTIFY,
//! see `cache_feed.rs`): every change anywhere drops them all, and while the
//! feed is down nothing is cached and every read goes to the database. Policy
//! inputs expire after the same few seconds as identity rows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_iam::policy::Policy;
use berth_store::{AccessKeyRow, ManifestRow, RepoKey};
use moka::sync::Cache;

/// How long identity rows written by other processes may be served stale.
const IDENTITY_TTL: Duration = Duration::from_secs(3);
/// Backstop for entries this process invalidates itself.
const CONTENT_TTL: Duration = Duration::from_secs(300);
/// Memory the manifest-by-tag cache may hold.
const TAG_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Authorization inputs that belong to a repository.
#[derive(Clone, Default)]
pub(crate) struct RepoAuthz {
    pub policy: Option<Arc<Policy>>,
    pub tags: Vec<(String, String)>,
}

pub(crate) struct Caches {
    generation: AtomicU64,
    /// Other processes write the same metadata store (see the module doc).
    pub shared_metadata: bool,
    /// With shared metadata: the change feed is listening, so tags may be cached.
    feed_live: AtomicBool,
    pub tags: Cache<(RepoKey, String), Arc<ManifestRow>>,
    pub access_keys: Cache<String, Arc<AccessKeyRow>>,
    pub user_policies: Cache<String, Arc<Vec<Policy>>>,
    pub repo_authz: Cache<RepoKey, Arc<RepoAuthz>>,
    pub registry_policies: Cache<(String, String), Arc<Option<Policy>>>,
    /// Account settings and pull-time update exclusions per registry (read on every manifest GET).
    pub registry_settings: Cache<(String, String), Arc<crate::account_settings::RegistrySettings>>,
    /// Each account's webhooks (read on every push and delete; most accounts have none).
    /// `berth admin add-webhook` writes from another process even on the embedded store, so
    /// entries expire after `IDENTITY_TTL` whatever the store.
    pub webhooks: Cache<String, Arc<[berth_store::WebhookRow]>>,
}

impl Caches {
    pub(crate) fn new(shared_metadata: bool) -> Caches {
        let policy_ttl = if shared_metadata { IDENTITY_TTL } else { CONTENT_TTL };
        Caches {
            generation: AtomicU64::new(0),
            shared_metadata,
            feed_live: AtomicBool::new(false),
            // Weighed by manifest size (up to 4 MiB each), so memory stays bounded whatever is pushed.
            tags: Cache::builder()
                .weigher(|_k, v: &Arc<ManifestRow>| u32::try_from(v.content.len() + 256).unwrap_or(u32::MAX))
                .max_capacity(TAG_CACHE_BYTES)
                .time_to_live(CONTENT_TTL)
                .build(),
            access_keys: Cache::builder().max_capacity(10_000).time_to_live(IDENTITY_TTL).build(),
            user_policies: Cache::builder().max_capacity(10_000).time_to_live(IDENTITY_TTL).build(),
            repo_authz: Cache::builder().max_capacity(50_000).time_to_live(policy_ttl).build(),
            registry_policies: Cache::builder().max_capacity(1_000).time_to_live(policy_ttl).build(),
            registry_settings: Cache::builder().max_capacity(1_000).time_to_live(policy_ttl).build(),
            webhooks: Cache::builder().max_capacity(10_000).time_to_live(IDENTITY_TTL).build(),
        }
    }

    /// Whether manifests by tag may be cached (and served from the cache) now.
    pub(crate) fn tags_cacheable(&self) -> bool {
        !self.shared_metadata || self.feed_live.load(Ordering::SeqCst)
    }

    /// The change feed listens (again): whatever changed while it did not was never
    /// reported, so everything cached goes before caching resumes.
    pub(crate) fn feed_listening(&self) {
        self.invalidate_repository_tags();
        self.feed_live.store(true, Ordering::SeqCst);
    }

    /// The change feed stopped: caching stops first, then what it cached goes (a fill racing
    /// this sees the bump and drops its entry).
    pub(crate) fn feed_lost(&self) {
        self.feed_live.store(false, Ordering::SeqCst);
        self.invalidate_repository_tags();
    }

    /// Call before reading the database for a fill.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Fills unless something was invalidated since `generation` was read. Insert first, check
    /// second: a writer bumps after its commit and invalidates after its bump, so either our
    /// check sees the bump (and we take the entry out) or the writer's invalidation comes
    /// after our insert.
    pub(crate) fn fill<K, V>(&self, cache: &Cache<K, V>, generation: u64, key: K, value: V)
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if self.generation() != generation {
            return;
        }
        cache.insert(key.clone(), value);
        if self.generation() != generation {
            cache.invalidate(&key);
        }
    }

    /// Call after a write commits (and before answering it).
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn invalidate_tag(&self, repo: &RepoKey, tag: &str) {
        self.bump();
        self.tags.invalidate(&(repo.clone(), tag.to_string()));
    }

    /// A manifest delete may untag many tags; a repository delete, everything in it.
    pub(crate) fn invalidate_repository_tags(&self) {
        self.bump();
        self.tags.invalidate_all();
    }

    pub(crate) fn invalidate_repository(&self, repo: &RepoKey) {
        self.bump();
        self.repo_authz.invalidate(repo);
        self.tags.invalidate_all();
    }

    pub(crate) fn invalidate_repo_authz(&self, repo: &RepoKey) {
        self.bump();
        self.repo_authz.invalidate(repo);
    }

    pub(crate) fn invalidate_registry_policy(&self, account: &str, region: &str) {
        self.bump();
        self.registry_policies.invalidate(&(account.to_string(), region.to_string()));
    }

    pub(crate) fn invalidate_webhooks(&self, account: &str) {
        self.bump();
        self.webhooks.invalidate(account);
    }

    pub(crate) fn invalidate_registry_settings(&self, account: &str, region: &str) {
        self.bump();
        self.registry_settings.invalidate(&(account.to_string(), region.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_raced_a_write_is_dropped() {
        let c = Caches::new(false);
        let g = c.generation();
        c.fill(&c.access_keys, g, "k1".to_string(), Arc::new(key("k1")));
        assert!(c.access_keys.get("k1").is_some());
        let stale = c.generation();
        c.bump(); // a write committed while a reader was reading
        c.fill(&c.access_keys, stale, "k2".to_string(), Arc::new(key("k2")));
        assert!(c.access_keys.get("k2").is_none());
    }

    #[test]
    fn shared_tags_are_cached_only_while_the_feed_listens() {
        let c = Caches::new(true);
        assert!(!c.tags_cacheable(), "not before the feed listens");
        let before = c.generation();
        c.feed_listening();
        assert!(c.tags_cacheable());
        // A fill that read before the feed listened may have missed a change: dropped.
        c.fill(&c.access_keys, before, "k0".to_string(), Arc::new(key("k0")));
        assert!(c.access_keys.get("k0").is_none());
        let g = c.generation();
        c.fill(&c.access_keys, g, "k1".to_string(), Arc::new(key("k1")));
        assert!(c.access_keys.get("k1").is_some());
        c.feed_lost();
        assert!(!c.tags_cacheable());
        c.fill(&c.access_keys, g, "k2".to_string(), Arc::new(key("k2")));
        assert!(c.access_keys.get("k2").is_none(), "a fill racing the loss is dropped");
        assert!(Caches::new(false).tags_cacheable(), "one process: its own invalidations suffice");
    }

    fn key(id: &str) -> AccessKeyRow {
        AccessKeyRow {
            access_key_id: id.into(),
            secret: "s".into(),
            user_arn: "arn:aws:iam::1:user/u".into(),
            account: "1".into(),
            active: true,
        }
    }
}
