//! Referrers (signatures, SBOMs, attestations) in cache repositories: the upstream's referrers of
//! a subject are fetched when the subject is cached, and listed upstream again when a tag naming
//! the subject is re-checked or when a client lists the subject's referrers through the cache,
//! each at most once per refresh interval (`RegistryConfig::pull_through_refresh_millis`). So a
//! signature added upstream after its image was cached arrives for digest-pinned pulls too
//! (cosign and notation look referrers up by digest), and a crowd listing referrers asks the
//! upstream once. A listing that asks waits (at most `RegistryConfig::pull_through_listing_wait`)
//! until the new referrers are stored, blobs and all, so it lists them itself; a principal that
//! may not import into the cache is answered from the cache and claims no interval. A listing
//! that failed makes its subject due again after `LISTING_RETRY_MILLIS`, not a whole interval.

use std::collections::HashMap;
use std::sync::Arc;

use berth_store::{Digest, ManifestSummary};
use futures::future::BoxFuture;

use super::fetch::{locked, repo_id};
use super::UpstreamTarget;
use crate::auth::Principal;
use crate::error::Result;
use crate::names::{Reference, Repo};
use crate::Registry;

/// Referrers fetched per subject at most (an upstream may list many signatures).
const MAX_REFERRERS: usize = 100;
/// After a failed upstream listing the subject is due again this soon (at most its refresh
/// interval): one transient upstream error must not hold a new signature back for a day.
const LISTING_RETRY_MILLIS: i64 = 5 * 60 * 1000;
/// Subjects whose last listing time is remembered; past this the record starts afresh (each
/// subject is then listed upstream once more).
const LISTED_SUBJECTS: usize = 100_000;

#[derive(serde::Deserialize)]
struct ReferrersIndex {
    #[serde(default)]
    manifests: Vec<ReferrerDescriptor>,
}

#[derive(serde::Deserialize)]
struct ReferrerDescriptor {
    digest: String,
}

impl Registry {
    /// A `/v2/` referrers listing. In a cache repository whose subject is cached, the upstream
    /// is asked first when it was not within the refresh interval (by a principal that may
    /// import into the cache), for at most `RegistryConfig::pull_through_listing_wait`.
    pub async fn serve_referrers(
        self: &Arc<Self>,
        principal: &Principal,
        repo: &Repo,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestSummary>> {
        if let Some(target) = self.pull_through_target(repo).await? {
            let cached = matches!(self.meta.get_manifest_by_digest(repo.key(), subject).await, Ok(Some(_)));
            if cached && self.referrers_due(principal, repo, subject).await {
                let listing = tokio::spawn(self.clone().import_referrers(repo.clone(), target, subject.clone()));
                // Either way the listing below answers: with the new referrers when they came in time.
                let _ = tokio::time::timeout(self.config.pull_through_listing_wait, listing).await;
            }
        }
        self.referrers(repo, subject, artifact_type).await
    }

    /// Whether `principal` is to list `subject`'s referrers upstream now: they were not listed
    /// within the refresh interval and it may import into the cache. If so the time is recorded
    /// now, so concurrent callers do not; a principal that may not import claims nothing (its
    /// request must not hold back the next importer's for a whole interval).
    pub(super) async fn referrers_due(&self, principal: &Principal, repo: &Repo, subject: &Digest) -> bool {
        let key = (repo_id(repo), subject.clone());
        let lately = |listed: &HashMap<(String, Digest), i64>| {
            listed.get(&key).is_some_and(|at| self.now().saturating_sub(*at) < self.config.pull_through_refresh_millis)
        };
        let listed_lately = lately(&locked(&self.pull_through.referrers_listed));
        if listed_lately || self.authorize_import(principal, repo).await.is_err() {
            return false;
        }
        let mut listed = locked(&self.pull_through.referrers_listed);
        if lately(&listed) {
            return false;
        }
        if listed.len() >= LISTED_SUBJECTS {
            listed.clear();
        }
        listed.insert(key, self.now());
        true
    }

    /// The upstream's referrers of a cached subject, each not cached yet fetched into the cache
    /// repository; done once they are stored. An upstream without the referrers API has none to
    /// give. Boxed: a referrer cached imports its own.
    pub(super) fn import_referrers(self: Arc<Self>, repo: Repo, target: UpstreamTarget, subject: Digest) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            locked(&self.pull_through.referrers_listed).insert((repo_id(&repo), subject.clone()), self.now());
            if !self.list_and_cache_referrers(&repo, &target, &subject).await {
                // Due again after LISTING_RETRY_MILLIS rather than a whole interval.
                let refresh = self.config.pull_through_refresh_millis;
                let at = self.now().saturating_sub(refresh).saturating_add(LISTING_RETRY_MILLIS.min(refresh));
                locked(&self.pull_through.referrers_listed).insert((repo_id(&repo), subject), at);
            }
        })
    }

    /// `import_referrers`' work; false when the upstream could not be asked or a referrer could
    /// not be cached.
    async fn list_and_cache_referrers(self: &Arc<Self>, repo: &Repo, target: &UpstreamTarget, subject: &Digest) -> bool {
        let Ok(source) = self.upstream_source(repo, target).await else { return false };
        let index = match source.client.referrers(&target.repository, &subject.to_string()).await {
            Ok(Some(index)) => index,
            Ok(None) => return true,
            Err(e) => {
                tracing::debug!(repository = %repo, %subject, error = %e, "listing the upstream's referrers failed");
                return false;
            }
        };
        let Ok(index) = serde_json::from_slice::<ReferrersIndex>(&index) else {
            tracing::warn!(repository = %repo, %subject, upstream = %target.rule.upstream_url, "the upstream's referrers list is not an image index");
            return false;
        };
        let mut complete = true;
        let mut storing = Vec::new();
        for d in index.manifests.iter().take(MAX_REFERRERS) {
            let Ok(digest) = d.digest.parse::<Digest>() else { continue };
            if matches!(self.meta.get_manifest_by_digest(repo.key(), &digest).await, Ok(Some(_))) {
                continue;
            }
            match self.import_manifest_storing(repo, target, &Reference::Digest(digest.clone())).await {
                Ok((_, Some(task))) => storing.push(task),
                Ok((_, None)) => {}
                Err(e) => {
                    tracing::warn!(repository = %repo, %subject, referrer = %digest, error = %e, "caching a referrer failed");
                    complete = false;
                }
            }
        }
        // Done once the referrers are stored (their blobs fetched), not only fetched: a
        // listing waiting for this lists them.
        futures::future::join_all(storing).await;
        complete
    }
}
