//! Referrers listings (`/v2/<repo>/referrers/<digest>`) in a pull-through cache repository,
//! against a fake upstream that serves the OCI referrers API and counts its listings: a cached
//! subject's referrers are listed upstream again at most once per refresh interval and subject
//! (the injected clock), only for a principal that may import into the cache (listing or
//! re-checking a tag), and a listing waits for the upstream at most
//! `RegistryConfig::pull_through_listing_wait` before answering with the referrers the cache
//! holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::auth::{Principal, Resource};
use berth_core::{Digest, Reference, Registry, RegistryConfig, Repo};

mod common;
#[path = "common/upstream.rs"]
mod upstream;
use common::Env;
use upstream::{cache, cache_config, cache_with, repo, start_upstream, stored_image, tag, user, Upstream, REFRESH_MILLIS};

const SIGNATURE: &str = "application/vnd.test.signature+json";
const SBOM: &str = "application/vnd.test.sbom+json";

/// Digests, sorted as the comparisons below expect.
fn sorted(digests: &[&Digest]) -> Vec<String> {
    let mut v: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
    v.sort();
    v
}

/// A client's referrers listing through the cache: the digests listed, sorted.
async fn list(r: &Arc<Registry>, p: &Principal, cached: &Repo, subject: &Digest) -> Vec<String> {
    let listed = r.serve_referrers(p, cached, subject, None).await.expect("referrers listing");
    let mut v: Vec<String> = listed.iter().map(|m| m.digest.to_string()).collect();
    v.sort();
    v
}

/// Polls until `check` holds (the work it waits for runs on background tasks).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pulls `up/app:<t>` through the cache and waits for the image and the referrers it brings
/// (`expected`, fetched with it in the background) to be stored.
async fn pull_with_referrers(r: &Arc<Registry>, p: &Principal, up: &Upstream, t: &str, expected: &[&Digest]) -> Digest {
    let cached = repo("up/app");
    let subject = r.serve_manifest(p, &cached, &tag(t), false).await.expect("pulled through").digest;
    stored_image(r, &cached, &tag(t)).await;
    let want = sorted(expected);
    eventually("the subject's referrers were not cached with it", async || {
        up.referrers_gets_of(&subject) == 1 && r.referrers(&cached, &subject, None).await.is_ok_and(|l| l.len() == want.len())
    })
    .await;
    assert_eq!(list(r, p, &cached, &subject).await, want, "cached with their subject");
    assert_eq!(up.referrers_gets_of(&subject), 1, "caching the subject listed its referrers once");
    subject
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_is_listed_upstream_once_per_refresh_interval_and_new_referrers_come_with_the_next_listing() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (a, _) = up.put_image("app", "a", 21, 1000);
    let (b, _) = up.put_image("app", "b", 22, 1000);
    let sig_a = up.put_referrer("app", &a, SIGNATURE, b"signature of a");
    let (r, p) = cache(&env, &url).await;
    let cached = repo("up/app");
    assert_eq!(pull_with_referrers(&r, &p, &up, "a", &[&sig_a]).await, a);
    assert_eq!(pull_with_referrers(&r, &p, &up, "b", &[]).await, b);

    // Within the interval: answered from the cache, the upstream not asked.
    let sbom_a = up.put_referrer("app", &a, SBOM, b"sbom of a");
    for _ in 0..5 {
        assert_eq!(list(&r, &p, &cached, &a).await, sorted(&[&sig_a]));
    }
    env.advance(REFRESH_MILLIS - 1);
    assert_eq!(list(&r, &p, &cached, &a).await, sorted(&[&sig_a]), "a millisecond before the interval ends");
    assert_eq!(up.referrers_gets_of(&a), 1, "no upstream listing within the refresh interval");

    // Once it has passed, the next listing asks the upstream and answers with the new referrer.
    env.advance(1);
    assert_eq!(list(&r, &p, &cached, &a).await, sorted(&[&sig_a, &sbom_a]), "the listing brings the referrer added upstream");
    assert_eq!(up.referrers_gets_of(&a), 2);
    let stored = r.get_manifest(&cached, &Reference::Digest(sbom_a.clone()), false).await.expect("cached referrer");
    let upstream_bytes = up.manifests.lock().unwrap().get(&format!("app:{sbom_a}")).unwrap().1.clone();
    assert_eq!((stored.digest, stored.content), (sbom_a.clone(), upstream_bytes), "the upstream's manifest, byte for byte");
    let sboms = r.serve_referrers(&p, &cached, &a, Some(SBOM)).await.unwrap();
    assert_eq!(sboms.iter().map(|m| m.digest.to_string()).collect::<Vec<_>>(), [sbom_a.to_string()], "filtered by type");

    // Another subject is not held back by the first one's listing; a crowd listing it asks once.
    let sig_b = up.put_referrer("app", &b, SIGNATURE, b"signature of b");
    let crowd = futures::future::join_all((0..8).map(|_| list(&r, &p, &cached, &b))).await;
    assert!(crowd.iter().any(|l| *l == sorted(&[&sig_b])), "the listing that asked answers with the new referrer: {crowd:?}");
    assert_eq!(up.referrers_gets_of(&b), 2, "eight concurrent listings, one upstream listing");
    assert_eq!(list(&r, &p, &cached, &b).await, sorted(&[&sig_b]));
    for _ in 0..3 {
        list(&r, &p, &cached, &a).await;
        list(&r, &p, &cached, &b).await;
    }
    assert_eq!((up.referrers_gets_of(&a), up.referrers_gets_of(&b)), (2, 2), "both within their new interval");
    env.advance(REFRESH_MILLIS);
    list(&r, &p, &cached, &a).await;
    assert_eq!((up.referrers_gets_of(&a), up.referrers_gets_of(&b)), (3, 2), "each subject has its own interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_waits_for_a_hanging_upstream_at_most_the_configured_wait() {
    const WAIT: Duration = Duration::from_millis(200);
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (a, _) = up.put_image("app", "a", 23, 1000);
    let sig = up.put_referrer("app", &a, SIGNATURE, b"signature");
    let (r, p) = cache_with(&env, &url, RegistryConfig { pull_through_listing_wait: WAIT, ..cache_config() }).await;
    let cached = repo("up/app");
    pull_with_referrers(&r, &p, &up, "a", &[&sig]).await;

    let sbom = up.put_referrer("app", &a, SBOM, b"sbom");
    let hold = up.hold_referrers();
    env.advance(REFRESH_MILLIS);
    let started = Instant::now();
    let listed = tokio::time::timeout(10 * WAIT, list(&r, &p, &cached, &a)).await.expect("answered though the upstream hangs");
    assert_eq!(listed, sorted(&[&sig]), "the referrers the cache holds");
    assert!(started.elapsed() >= WAIT, "it waited for the upstream first: {:?}", started.elapsed());
    eventually("the upstream was asked", async || up.referrers_gets_of(&a) == 2).await;
    // Within the interval the next listing answers from the cache, without asking again.
    let listed = tokio::time::timeout(10 * WAIT, list(&r, &p, &cached, &a)).await.expect("answered");
    assert_eq!(listed, sorted(&[&sig]));
    assert_eq!(up.referrers_gets_of(&a), 2);

    // The upstream answers late: the import goes on in the background and caches the new one.
    hold.close();
    eventually("the late answer's referrer was cached", async || list(&r, &p, &cached, &a).await == sorted(&[&sig, &sbom])).await;
    assert_eq!(up.referrers_gets_of(&a), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_may_not_import_lists_cached_referrers_without_asking_the_upstream() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (a, _) = up.put_image("app", "a", 24, 1000);
    let sig = up.put_referrer("app", &a, SIGNATURE, b"signature");
    let (r, admin) = cache(&env, &url).await;
    let cached = repo("up/app");
    pull_with_referrers(&r, &admin, &up, "a", &[&sig]).await;
    let reader = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:DescribeImages"];
    let puller = user(&r, "puller", &reader).await;
    r.authorize(&puller, "ecr:BatchGetImage", Resource::Repository(&cached)).await.expect("may pull");
    r.authorize(&puller, "ecr:BatchImportUpstreamImage", Resource::Repository(&cached)).await.expect_err("may not import");

    let sbom = up.put_referrer("app", &a, SBOM, b"sbom");
    env.advance(REFRESH_MILLIS);
    for _ in 0..3 {
        assert_eq!(list(&r, &puller, &cached, &a).await, sorted(&[&sig]), "the cached referrers");
    }
    // Its pull re-checks the tag upstream, but lists no referrers there either.
    let heads = up.manifest_heads.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(r.serve_manifest(&puller, &cached, &tag("a"), false).await.expect("cached tag").digest, a);
    assert_eq!(up.manifest_heads.load(std::sync::atomic::Ordering::SeqCst), heads + 1, "the tag was re-checked");
    assert_eq!(up.referrers_gets_of(&a), 1, "no upstream listing for a principal that may not import");
    // Nor did its requests use up the interval: the next listing by a principal that may import asks.
    assert_eq!(list(&r, &admin, &cached, &a).await, sorted(&[&sig, &sbom]));
    assert_eq!(up.referrers_gets_of(&a), 2);
    assert_eq!(list(&r, &puller, &cached, &a).await, sorted(&[&sig, &sbom]), "then served to the puller from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_found_the_upstream_down_is_retried_minutes_later_not_a_whole_interval_later() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (a, _) = up.put_image("app", "a", 31, 1000);
    let day: i64 = 24 * 3600 * 1000;
    let (r, p) = cache_with(&env, &url, RegistryConfig { pull_through_refresh_millis: day, ..cache_config() }).await;
    let cached = repo("up/app");
    assert_eq!(pull_with_referrers(&r, &p, &up, "a", &[]).await, a);
    let sig = up.put_referrer("app", &a, SIGNATURE, b"signed after the image was cached");

    // A day on, the listing finds the upstream down: answered from the cache.
    env.advance(day);
    up.down.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(list(&r, &p, &cached, &a).await.is_empty());
    up.down.store(false, std::sync::atomic::Ordering::SeqCst);
    // Right after, the failed listing still counts: the upstream is not asked again at once.
    assert!(list(&r, &p, &cached, &a).await.is_empty());
    assert_eq!(up.referrers_gets_of(&a), 1, "only the listing made when the subject was cached reached the upstream");
    // Five minutes on (not a day): asked again, and the signature arrives.
    env.advance(5 * 60 * 1000);
    assert_eq!(list(&r, &p, &cached, &a).await, sorted(&[&sig]));
    assert_eq!(up.referrers_gets_of(&a), 2);
}
