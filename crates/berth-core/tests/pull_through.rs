//! The pull-through cache, on every backend `common` selects: the rule actions (what they
//! accept and refuse), and pulling an image through from a fake upstream registry: streamed blobs,
//! one upstream fetch per blob however many clients ask, digests verified before anything is
//! kept, cached content served while the upstream is down, and tags re-checked after the
//! refresh interval (the injected clock).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_core::{Digest, PullThroughRefusal, Reference, RegistryConfig, RegistryError};
use futures::StreamExt;

mod common;
#[path = "common/upstream.rs"]
mod upstream;
use common::Env;
use upstream::{cache, repo, rule, scope, start_upstream, stored_image, tag};

fn refusal(e: RegistryError) -> PullThroughRefusal {
    match e {
        RegistryError::PullThrough { kind, .. } => kind,
        other => panic!("expected a pull-through refusal, got {other:?}"),
    }
}

fn is_invalid(e: &RegistryError) -> bool {
    matches!(e, RegistryError::InvalidParameter(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_created_described_updated_validated_and_deleted() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = scope();

    let hub = r.create_pull_through_cache_rule(&s, rule("hub/", "registry-1.docker.io")).await.expect("create");
    assert_eq!(hub.prefix, "hub", "the trailing / is assumed");
    assert_eq!(hub.upstream_registry.as_deref(), Some("docker-hub"), "a known host names its upstream");
    assert_eq!(hub.upstream_prefix, "ROOT");
    let mut quay = rule("quay", "https://quay.io");
    quay.upstream_prefix = Some("team".into());
    quay.custom_role_arn = Some("arn:aws:iam::123456789012:role/puller".into());
    r.create_pull_through_cache_rule(&s, quay).await.expect("create quay");
    let mine = r.create_pull_through_cache_rule(&s, rule("ROOT", "registry.example.com:5443")).await.expect("any OCI registry");
    assert_eq!(mine.upstream_registry, None);

    let page = r.describe_pull_through_cache_rules(&s, &[], None, 2).await.expect("describe");
    assert_eq!(page.rules.iter().map(|r| r.prefix.as_str()).collect::<Vec<_>>(), ["ROOT", "hub"]);
    assert!(page.more);
    let rest = r.describe_pull_through_cache_rules(&s, &[], Some("hub"), 2).await.expect("next page");
    assert_eq!(rest.rules.iter().map(|r| r.prefix.as_str()).collect::<Vec<_>>(), ["quay"]);
    assert!(!rest.more);
    let named = r.describe_pull_through_cache_rules(&s, &["quay/".into()], None, 100).await.expect("by prefix");
    assert_eq!(named.rules[0].upstream_prefix, "team");
    let missing = r.describe_pull_through_cache_rules(&s, &["nope".into()], None, 100).await.expect_err("unknown prefix");
    assert_eq!(refusal(missing), PullThroughRefusal::RuleNotFound);

    // Matching: the longest prefix, else ROOT; Docker Hub's official images under library/.
    let t = r.pull_through_target(&repo("hub/alpine")).await.unwrap().expect("hub rule");
    assert_eq!((t.rule.prefix.as_str(), t.repository.as_str()), ("hub", "library/alpine"));
    let t = r.pull_through_target(&repo("quay/coreos/etcd")).await.unwrap().expect("quay rule");
    assert_eq!(t.repository, "team/coreos/etcd");
    let t = r.pull_through_target(&repo("hubble/x")).await.unwrap().expect("ROOT rule");
    assert_eq!((t.rule.prefix.as_str(), t.repository.as_str()), ("ROOT", "hubble/x"));

    env.advance(5_000);
    let updated = r.update_pull_through_cache_rule(&s, "quay", None, Some("arn:aws:iam::123456789012:role/other".into())).await.unwrap();
    assert_eq!(updated.custom_role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/other"));
    assert_eq!(updated.updated_at, updated.created_at + 5_000);
    assert_eq!(refusal(r.update_pull_through_cache_rule(&s, "nope", None, None).await.unwrap_err()), PullThroughRefusal::RuleNotFound);

    // Nothing listens there: invalid, with the reason.
    let v = r.validate_pull_through_cache_rule(&s, "ROOT").await.expect("validate");
    assert!(!v.is_valid);
    assert!(v.failure.as_deref().unwrap_or("").contains("registry.example.com:5443"), "{:?}", v.failure);

    let deleted = r.delete_pull_through_cache_rule(&s, "hub/").await.expect("delete");
    assert_eq!(deleted.upstream_url, "registry-1.docker.io");
    assert_eq!(refusal(r.delete_pull_through_cache_rule(&s, "hub").await.unwrap_err()), PullThroughRefusal::RuleNotFound);
    let restarted = env.registry_with(RegistryConfig::default()).await;
    let left = restarted.describe_pull_through_cache_rules(&s, &[], None, 100).await.unwrap();
    assert_eq!(left.rules.iter().map(|r| r.prefix.as_str()).collect::<Vec<_>>(), ["ROOT", "quay"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = scope();
    for bad in ["h", "Hub", "-hub", "a//b", "abcdefghijabcdefghijabcdefghijk", "hub/../x"] {
        let e = r.create_pull_through_cache_rule(&s, rule(bad, "quay.io")).await.expect_err(bad);
        assert!(is_invalid(&e), "{bad:?}: {e:?}");
    }
    let mut upstream_prefix = rule("ok", "quay.io");
    upstream_prefix.upstream_prefix = Some("Bad".into());
    assert!(is_invalid(&r.create_pull_through_cache_rule(&s, upstream_prefix).await.unwrap_err()));
    for bad in ["", "https://quay.io/v2/", "ftp://quay.io", "https://user@quay.io"] {
        let e = r.create_pull_through_cache_rule(&s, rule("ok", bad)).await.expect_err(bad);
        assert!(is_invalid(&e) || matches!(e, RegistryError::PullThrough { .. }), "{bad:?}: {e:?}");
    }
    let mut unknown = rule("ok", "quay.io");
    unknown.upstream_registry = Some("dockerhub".into());
    assert_eq!(refusal(r.create_pull_through_cache_rule(&s, unknown).await.unwrap_err()), PullThroughRefusal::UnsupportedUpstream);
    let e = r.create_pull_through_cache_rule(&s, rule("ok", "http://127.0.0.1:5000")).await.unwrap_err();
    assert_eq!(refusal(e), PullThroughRefusal::UnsupportedUpstream, "plain HTTP needs the operator's consent");
    let allowing = env.registry_with(RegistryConfig { allow_insecure_upstreams: true, ..Default::default() }).await;
    allowing.create_pull_through_cache_rule(&s, rule("local", "http://127.0.0.1:5000")).await.expect("allowed");

    let mut secret = rule("ok", "ghcr.io");
    secret.credential_arn = Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/ghcr-AbCdEf".into());
    assert_eq!(refusal(r.create_pull_through_cache_rule(&s, secret).await.unwrap_err()), PullThroughRefusal::SecretNotFound);
    let mut bad_arn = rule("ok", "ghcr.io");
    bad_arn.credential_arn = Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:other/ghcr-AbCdEf-and-some-more".into());
    assert!(is_invalid(&r.create_pull_through_cache_rule(&s, bad_arn).await.unwrap_err()));

    r.create_pull_through_cache_rule(&s, rule("dup", "quay.io")).await.expect("first");
    assert_eq!(refusal(r.create_pull_through_cache_rule(&s, rule("dup/", "ghcr.io")).await.unwrap_err()), PullThroughRefusal::RuleExists);
    for i in 0..48 {
        r.create_pull_through_cache_rule(&s, rule(&format!("p{i:02}"), "quay.io")).await.expect("within the quota");
    }
    let over = r.create_pull_through_cache_rule(&s, rule("p99", "quay.io")).await.unwrap_err();
    assert!(matches!(over, RegistryError::LimitExceeded(_)), "{over:?}");
    assert_eq!(r.describe_pull_through_cache_rules(&s, &[], None, 1000).await.unwrap().rules.len(), 50);
}

async fn read_all(mut body: berth_core::BlobStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_pulled_through_cached_and_served_while_the_upstream_is_down() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (digest, blobs) = up.put_image("team/app", "v1", 1, 300_000);
    let (r, p) = cache(&env, &url).await;
    let cached = repo("up/team/app");

    let m = r.serve_manifest(&p, &cached, &tag("v1"), false).await.expect("pulled through");
    assert_eq!(m.digest, digest);
    for d in &blobs {
        let (size, body) = r.pull_through_blob(&p, &cached, d).await.expect("blob").expect("a cache repository");
        let bytes = read_all(body).await.expect("bytes");
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(Digest::sha256_of(&bytes), *d);
    }
    let stored = stored_image(&r, &cached, &tag("v1")).await;
    assert_eq!(stored.digest, digest, "cached as an ordinary image");
    for d in &blobs {
        assert_eq!(up.gets_of(d), 1, "each blob fetched once");
        assert!(r.stat_blob(&cached, d).await.is_ok());
    }
    let row = r.repository(&cached).await.expect("the cache repository was created");
    assert_eq!(row.key.name, "up/team/app");

    up.down.store(true, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(r.serve_manifest(&p, &cached, &tag("v1"), false).await.expect("cached tag").digest, digest);
    assert_eq!(r.serve_manifest(&p, &cached, &Reference::Digest(digest.clone()), false).await.expect("cached digest").digest, digest);
    env.advance(120_000);
    assert_eq!(r.serve_manifest(&p, &cached, &tag("v1"), false).await.expect("stale tag, upstream down").digest, digest);
    let e = r.serve_manifest(&p, &cached, &tag("v2"), false).await.expect_err("uncached while down");
    let message = e.to_string();
    assert!(matches!(e, RegistryError::Upstream(_)), "{e:?}");
    assert!(message.contains(&url) && (message.contains("503") || message.contains("unavailable")), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10), "no hang: {:?}", started.elapsed());

    up.down.store(false, Ordering::SeqCst);
    let e = r.serve_manifest(&p, &repo("up/team/none"), &tag("v1"), false).await.expect_err("unknown upstream");
    assert!(matches!(e, RegistryError::ManifestUnknown(_) | RegistryError::Upstream(_)), "{e:?}");
    let plain = repo("elsewhere/app");
    assert!(r.pull_through_blob(&p, &plain, &blobs[0]).await.expect("no rule").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_stream_before_they_are_whole_and_are_fetched_once() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (_, blobs) = up.put_image("app", "v1", 2, 2 * 1024 * 1024);
    let gate = Arc::new(tokio::sync::Notify::new());
    *up.gate.lock().unwrap() = Some(gate.clone());
    let (r, p) = cache(&env, &url).await;
    let cached = repo("up/app");
    let layer = blobs[1].clone();

    let (size, mut first) = r.pull_through_blob(&p, &cached, &layer).await.unwrap().unwrap();
    assert_eq!(size, 2 * 1024 * 1024);
    let chunk = tokio::time::timeout(Duration::from_secs(10), first.next()).await.expect("a first chunk while the upstream holds the rest");
    assert!(!chunk.expect("some bytes").expect("no error").is_empty());
    assert!(r.stat_blob(&cached, &layer).await.is_err(), "not visible before it is verified");

    let others = futures::future::join_all((0..12).map(|_| {
        let (r, p, cached, layer) = (r.clone(), p.clone(), cached.clone(), layer.clone());
        async move {
            let (_, body) = r.pull_through_blob(&p, &cached, &layer).await.unwrap().unwrap();
            body
        }
    }))
    .await;
    assert_eq!(r.pull_through_flights(), 1);
    gate.notify_waiters();
    gate.notify_one();
    for body in others {
        let bytes = read_all(body).await.expect("whole blob");
        assert_eq!(Digest::sha256_of(&bytes), layer);
    }
    assert_eq!(up.gets_of(&layer), 1, "one upstream GET for 13 clients");
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.stat_blob(&cached, &layer).await.is_err() {
        assert!(Instant::now() < deadline, "stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_that_does_not_match_its_digest_is_never_cached() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (_, blobs) = up.put_image("app", "v1", 3, 100_000);
    up.corrupt.lock().unwrap().push(blobs[1].to_string());
    let (r, p) = cache(&env, &url).await;
    let cached = repo("up/app");

    let (_, body) = r.pull_through_blob(&p, &cached, &blobs[1]).await.unwrap().unwrap();
    let e = read_all(body).await.expect_err("the stream fails at its end");
    assert!(e.to_string().contains("digest") || e.to_string().contains("match"), "{e}");
    // The flight ends; nothing was stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.pull_through_flights() > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(r.stat_blob(&cached, &blobs[1]).await.is_err());

    up.lying.store(true, Ordering::SeqCst);
    let e = r.serve_manifest(&p, &repo("up/app"), &tag("v1"), false).await.expect_err("a manifest that is not its digest");
    assert!(matches!(e, RegistryError::Upstream(_)), "{e:?}");
    assert!(e.to_string().contains("digest"), "{e}");
    assert!(r.get_manifest(&cached, &tag("v1"), false).await.is_err(), "nothing cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_upstream_is_seen_after_the_refresh_interval() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (first, blobs) = up.put_image("app", "latest", 4, 1000);
    let (r, p) = cache(&env, &url).await;
    let cached = repo("up/app");
    assert_eq!(r.serve_manifest(&p, &cached, &tag("latest"), false).await.unwrap().digest, first);
    for d in &blobs {
        let (_, body) = r.pull_through_blob(&p, &cached, d).await.unwrap().unwrap();
        read_all(body).await.unwrap();
    }
    stored_image(&r, &cached, &tag("latest")).await;

    let (second, _) = up.put_image("app", "latest", 5, 1000);
    let gets = up.manifest_gets.load(Ordering::SeqCst);
    env.advance(30_000);
    assert_eq!(r.serve_manifest(&p, &cached, &tag("latest"), false).await.unwrap().digest, first, "within the interval");
    assert_eq!(up.manifest_heads.load(Ordering::SeqCst), 0, "no upstream request within the interval");
    env.advance(31_000);
    assert_eq!(r.serve_manifest(&p, &cached, &tag("latest"), false).await.unwrap().digest, second, "re-checked after it");
    assert_eq!(up.manifest_heads.load(Ordering::SeqCst), 1, "one HEAD");
    assert_eq!(up.manifest_gets.load(Ordering::SeqCst), gets + 1, "one GET of the new manifest");
    // By digest, the cached image never goes upstream again.
    up.down.store(true, Ordering::SeqCst);
    env.advance(10 * 60_000);
    assert_eq!(r.serve_manifest(&p, &cached, &Reference::Digest(first.clone()), false).await.unwrap().digest, first);
}

/// Reads a body to its end or its first error: the bytes that arrived and the error.
async fn read_until_error(mut body: berth_core::BlobStream) -> (usize, Option<std::io::Error>) {
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => n += c.len(),
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_does_not_match_never_reaches_a_client_whole() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (_, blobs) = up.put_image("app", "v1", 7, 3 * 1024 * 1024);
    up.corrupt.lock().unwrap().push(blobs[1].to_string());
    // The upstream holds the second half until every client has joined the flight, so the four
    // are concurrent however slow the metadata store is (a client arriving after a failed flight
    // would rightly start another fetch).
    let gate = Arc::new(tokio::sync::Notify::new());
    *up.gate.lock().unwrap() = Some(gate.clone());
    let (r, p) = cache(&env, &url).await;
    let cached = repo("up/app");
    let mut bodies = Vec::new();
    for _ in 0..4 {
        bodies.push(r.pull_through_blob(&p, &cached, &blobs[1]).await.unwrap().unwrap());
    }
    gate.notify_waiters();
    gate.notify_one();
    let clients =
        futures::future::join_all(bodies.into_iter().map(|(size, body)| async move { (size, read_until_error(body).await) })).await;
    for (size, (got, error)) in clients {
        assert!((got as u64) < size, "the body is cut before its end ({got} of {size})");
        let e = error.expect("the body ends with an error");
        assert!(e.to_string().contains("digest"), "{e}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.pull_through_flights() > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(r.stat_blob(&cached, &blobs[1]).await.is_err(), "nothing cached");
    assert_eq!(up.gets_of(&blobs[1]), 1, "one upstream fetch for the four clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_the_memory_window_reads_the_stored_blob_and_one_leaving_stops_nothing() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    // 80 MiB: the upstream pauses after 40, more than the 32 MiB a download keeps in memory.
    let (_, blobs) = up.put_image("big", "v1", 8, 80 * 1024 * 1024);
    let gate = Arc::new(tokio::sync::Notify::new());
    *up.gate.lock().unwrap() = Some(gate.clone());
    let (r, p) = cache(&env, &url).await;
    let cached = repo("up/big");
    let layer = blobs[1].clone();

    // A client reads a chunk and leaves.
    let (size, mut leaving) = r.pull_through_blob(&p, &cached, &layer).await.unwrap().unwrap();
    assert!(!leaving.next().await.expect("a chunk").expect("bytes").is_empty());
    drop(leaving);
    // The window fills, lets its first bytes go and stays bounded while the upstream holds the rest.
    let deadline = Instant::now() + Duration::from_secs(60);
    while r.pull_through_window_bytes().1 == 0 {
        assert!(Instant::now() < deadline, "the first half arrives");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (held, _) = r.pull_through_window_bytes();
    assert!(held <= 33 * 1024 * 1024, "bounded: {held}");
    // A late client: its first bytes are gone from memory, so it reads the stored blob.
    let (_, late) = r.pull_through_blob(&p, &cached, &layer).await.unwrap().unwrap();
    let late = tokio::spawn(read_all(late));
    gate.notify_waiters();
    gate.notify_one();
    let bytes = late.await.unwrap().expect("the whole blob");
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(Digest::sha256_of(&bytes), layer);
    assert_eq!(up.gets_of(&layer), 1, "one upstream fetch");
    assert!(r.stat_blob(&cached, &layer).await.is_ok(), "stored though the first client left");
    assert_eq!(r.pull_through_window_bytes().0, 0);
}

/// The manifests of `name` that reference `child`, read beneath the service.
async fn parents_of(env: &Env, name: &berth_core::Repo, child: &Digest) -> Vec<Digest> {
    let (meta, _) = common::stores(env.dir.path()).await;
    meta.manifest_parents(name.key(), child).await.expect("parents")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cached_on_another_node_is_linked_to_the_index_stored_without_it() {
    let env = Env::new();
    let (up, url) = start_upstream().await;
    let (amd, _) = up.put_image("lib/multi", "amd", 1, 1_000);
    let (arm, _) = up.put_image("lib/multi", "arm", 2, 1_000);
    let index = up.put_index("lib/multi", "v1", &[amd.clone(), arm.clone()]);
    let (a, p) = cache(&env, &url).await;
    // Node B: a second process over the same stores, which never serves the index.
    let b = Arc::new(env.registry_with(upstream::cache_config()).await);
    let name = repo("up/lib/multi");

    // A stores the index at once, holding neither child.
    assert_eq!(a.serve_manifest(&p, &name, &tag("v1"), false).await.expect("the index").digest, index);
    // B caches one child by digest (what a runtime does after picking its platform from the
    // index A served).
    assert_eq!(b.serve_manifest(&p, &name, &Reference::Digest(arm.clone()), false).await.expect("a child").digest, arm);
    stored_image(&b, &name, &Reference::Digest(arm.clone())).await;

    // Linked by B as it cached the child: no process had to serve the index again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while parents_of(&env, &name, &arm).await.is_empty() {
        assert!(Instant::now() < deadline, "the child cached on B was never linked to the index A stored");
        tokio::task::yield_now().await;
    }
    assert_eq!(parents_of(&env, &name, &arm).await, vec![index.clone()]);
    assert!(parents_of(&env, &name, &amd).await.is_empty(), "the uncached child is not referenced");
    let (deleted, failures) = a
        .batch_delete_images(&name, &[berth_core::images::ImageId { digest: Some(arm.to_string()), tag: None }])
        .await
        .expect("batch delete");
    assert!(deleted.is_empty());
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].code, "ImageReferencedByManifestList", "{}", failures[0].reason);
    assert!(a.get_manifest(&name, &Reference::Digest(arm.clone()), false).await.is_ok(), "the child is still there");
}
