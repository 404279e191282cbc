//! Lifecycle policies applied by the service on the embedded backends, with an injected
//! clock aging images by days.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use berth_core::images::ImageId;
use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, Tag};
use berth_store::{StorageClass, TagStatus};

mod common;
use bytes::Bytes;
use common::{push_blob, FakeClock};

const DAY: i64 = 86_400_000;

struct Env {
    _dir: tempfile::TempDir,
    clock: Arc<FakeClock>,
    registry: Arc<Registry>,
    repo: Repo,
    layer: Digest,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
        let (meta, blobs) = common::stores(dir.path()).await;
        let registry = Arc::new(Registry::new(meta, blobs, clock.clone(), RegistryConfig::default()).with_key_service(common::root_key()));
        let repo = Repo::new(
            &RegistryRef { account: "123456789012".into(), region: "us-east-1".into() },
            RepositoryName::parse("team/app").unwrap(),
        );
        let layer = push_blob(&registry, &repo, b"layer").await;
        Env { _dir: dir, clock, registry, repo, layer }
    }

    fn advance_days(&self, days: i64) {
        self.clock.0.fetch_add(days * DAY, Ordering::SeqCst);
    }

    /// Pushes a distinct image (by `seed`) and tags it with each of `tags`.
    async fn push(&self, seed: &str, tags: &[&str]) -> Digest {
        let data = format!("{{\"seed\":\"{seed}\"}}");
        let config = push_blob(&self.registry, &self.repo, data.as_bytes()).await;
        let body = manifest(&config, data.len(), &self.layer, None);
        self.put(body, tags).await
    }

    async fn put(&self, body: Bytes, tags: &[&str]) -> Digest {
        let digest = Digest::sha256_of(&body);
        let ct = "application/vnd.oci.image.manifest.v1+json";
        let mt = if body.starts_with(b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index") {
            "application/vnd.oci.image.index.v1+json"
        } else {
            ct
        };
        self.registry.put_manifest(&self.repo, &Reference::Digest(digest.clone()), mt, body.clone()).await.unwrap();
        for t in tags {
            self.registry.put_manifest(&self.repo, &Reference::Tag(Tag::parse(t).unwrap()), mt, body.clone()).await.unwrap();
        }
        digest
    }

    async fn digests(&self) -> BTreeSet<String> {
        let rows = self.registry.images(&self.repo, TagStatus::Any, None, None, 1000).await.unwrap();
        rows.iter().map(|r| r.digest.to_string()).collect()
    }
}

fn manifest(config: &Digest, config_size: usize, layer: &Digest, subject: Option<&Digest>) -> Bytes {
    let subject = subject
        .map(|s| format!(r#","subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{s}","size":10}}"#))
        .unwrap_or_default();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]{subject}}}"#
    ))
}

const SEED_POLICY: &str = r#"{"rules":[
 {"rulePriority":1,"description":"Keep last 10 'prod' images",
  "selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":10},
  "action":{"type":"expire"}},
 {"rulePriority":2,"description":"Delete untagged images older than 7 days",
  "selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},
  "action":{"type":"expire"}}]}"#;

#[tokio::test]
async fn seed_policy_expires_exactly_the_oldest_prod_images_and_old_untagged_ones() {
    let env = Env::new().await;
    let mut prod = Vec::new();
    for i in 1..=15 {
        prod.push(env.push(&format!("prod{i}"), &[&format!("prod-{i}")]).await);
        env.advance_days(1);
    }
    let dev = env.push("dev", &["dev-1"]).await;
    let old_untagged = env.push("untagged-old", &[]).await;
    env.advance_days(7);
    let new_untagged = env.push("untagged-new", &[]).await;
    env.advance_days(3);
    // Now: prod-1 is 25 days old, prod-15 11; old untagged 10 days; new untagged 3 days.
    env.registry.put_lifecycle_policy(&env.repo, SEED_POLICY).await.unwrap();

    let (_, planned) = env.registry.plan_lifecycle(&env.repo, None).await.unwrap();
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    assert_eq!(planned, report.actions, "the preview is what the run does");

    let mut expected: BTreeSet<String> = prod[..5].iter().map(|d| d.to_string()).collect();
    expected.insert(old_untagged.to_string());
    let expired: BTreeSet<String> = report.actions.iter().map(|a| a.digest.clone()).collect();
    assert_eq!(expired, expected);
    assert!(report.actions.iter().all(|a| a.action == "EXPIRE"));
    let priorities: Vec<u32> = report.actions.iter().map(|a| a.rule_priority).collect();
    assert_eq!(priorities, vec![1, 1, 1, 1, 1, 2]);

    let left = env.digests().await;
    for d in prod[5..].iter().chain([&dev, &new_untagged]) {
        assert!(left.contains(&d.to_string()), "{d} must stay");
    }
    assert_eq!(left.len(), 12);
    // An expired tag no longer resolves; lastEvaluatedAt is recorded.
    let err = env.registry.get_manifest(&env.repo, &Reference::Tag(Tag::parse("prod-1").unwrap()), true).await.unwrap_err();
    assert!(matches!(err, RegistryError::ManifestUnknown(_)));
    assert!(env.registry.lifecycle_policy(&env.repo).await.unwrap().evaluated_at.is_some());
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let env = Env::new().await;
    env.push("a", &[]).await;
    env.advance_days(30);
    env.registry.put_lifecycle_policy(&env.repo, SEED_POLICY).await.unwrap();
    let report = env.registry.run_lifecycle(&env.repo, true).await.unwrap();
    assert_eq!(report.actions.len(), 1);
    assert_eq!(env.digests().await.len(), 1);
}

#[tokio::test]
async fn index_children_stay_with_their_index_and_referrers_go_with_their_subject() {
    let env = Env::new().await;
    let child = env.push("child", &[]).await;
    let child_size = env.registry.get_manifest(&env.repo, &Reference::Digest(child.clone()), false).await.unwrap().content.len();
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":{child_size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
    ));
    let index = env.put(index, &["release-1"]).await;
    let subject = env.push("subject", &[]).await;
    let sig_config = push_blob(&env.registry, &env.repo, b"{\"sig\":1}").await;
    let signature = env.put(manifest(&sig_config, 9, &env.layer, Some(&subject)), &[]).await;
    env.advance_days(30);
    env.registry.put_lifecycle_policy(&env.repo, SEED_POLICY).await.unwrap();
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    let expired: Vec<String> = report.actions.iter().map(|a| a.digest.clone()).collect();
    assert_eq!(expired, vec![subject.to_string()], "only the loose untagged image is judged");
    assert_eq!(report.referrers_expired, vec![signature.to_string()]);
    let left = env.digests().await;
    assert!(left.contains(&child.to_string()) && left.contains(&index.to_string()));
    assert_eq!(left.len(), 2);
}

#[tokio::test]
async fn an_image_retagged_after_evaluation_is_not_expired() {
    let env = Env::new().await;
    let d = env.push("a", &[]).await;
    env.advance_days(30);
    env.registry.put_lifecycle_policy(&env.repo, SEED_POLICY).await.unwrap();
    let (_, planned) = env.registry.plan_lifecycle(&env.repo, None).await.unwrap();
    assert_eq!(planned.len(), 1);
    // A tag lands after a preview: the run evaluates afresh and keeps the now-tagged image.
    // (Between a run's own evaluation and its delete, the store's conditional delete checks the
    // tags again in the deleting transaction.)
    env.registry
        .put_manifest(&env.repo, &Reference::Tag(Tag::parse("keep").unwrap()), "application/vnd.oci.image.manifest.v1+json", {
            let m = env.registry.get_manifest(&env.repo, &Reference::Digest(d.clone()), false).await.unwrap();
            m.content
        })
        .await
        .unwrap();
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    assert!(report.actions.is_empty());
    assert!(env.digests().await.contains(&d.to_string()));
}

const ARCHIVE_POLICY: &str = r#"{"rules":[
 {"rulePriority":1,"description":"Archive images not pulled for 30 days",
  "selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},
  "action":{"type":"transition","targetStorageClass":"archive"}}]}"#;

#[tokio::test]
async fn pulls_are_recorded_and_archive_rules_use_them() {
    let env = Env::new().await;
    let pulled = env.push("pulled", &["hot"]).await;
    let idle = env.push("idle", &["cold"]).await;
    env.advance_days(20);
    // A pull by tag and by digest both count; a HEAD (pull = false) does not.
    env.registry.get_manifest(&env.repo, &Reference::Tag(Tag::parse("hot").unwrap()), true).await.unwrap();
    env.registry.get_manifest(&env.repo, &Reference::Tag(Tag::parse("cold").unwrap()), false).await.unwrap();
    env.advance_days(15);
    env.registry.put_lifecycle_policy(&env.repo, ARCHIVE_POLICY).await.unwrap();
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    let acted: Vec<(String, String)> = report.actions.iter().map(|a| (a.digest.clone(), a.action.clone())).collect();
    assert_eq!(acted, vec![(idle.to_string(), "TRANSITION".to_string())]);

    let rows = env.registry.images(&env.repo, TagStatus::Any, None, None, 100).await.unwrap();
    let hot = rows.iter().find(|r| r.digest == pulled).unwrap();
    assert_eq!(hot.last_pulled_at, Some(1_700_000_000_000 + 20 * DAY));
    let cold = rows.iter().find(|r| r.digest == idle).unwrap();
    assert_eq!(cold.storage_class, StorageClass::Archive);
    assert!(cold.archived_at.is_some());

    // Archived: listed, not served; ACTIVE listings leave it out.
    let err = env.registry.get_manifest(&env.repo, &Reference::Tag(Tag::parse("cold").unwrap()), true).await.unwrap_err();
    assert!(matches!(err, RegistryError::ImageArchived(_)));
    let active = env.registry.images(&env.repo, TagStatus::Any, Some(StorageClass::Standard), None, 100).await.unwrap();
    assert_eq!(active.len(), 1);
    let archived = env.registry.images(&env.repo, TagStatus::Any, Some(StorageClass::Archive), None, 100).await.unwrap();
    assert_eq!(archived.len(), 1);

    // Restore by UpdateImageStorageClass.
    let id = ImageId { digest: None, tag: Some("cold".into()) };
    env.registry.set_image_storage_class(&env.repo, &id, StorageClass::Standard).await.unwrap();
    env.registry.get_manifest(&env.repo, &Reference::Tag(Tag::parse("cold").unwrap()), true).await.unwrap();
    let row =
        env.registry.images(&env.repo, TagStatus::Any, None, None, 100).await.unwrap().into_iter().find(|r| r.digest == idle).unwrap();
    assert_eq!(row.storage_class, StorageClass::Standard);
    assert!(row.last_activated_at.is_some());

    // Archive again, then restore by pushing the same manifest again.
    env.registry.set_image_storage_class(&env.repo, &id, StorageClass::Archive).await.unwrap();
    let m = env.registry.images(&env.repo, TagStatus::Any, Some(StorageClass::Archive), None, 100).await.unwrap();
    assert_eq!(m.len(), 1);
    env.push("idle", &["cold"]).await;
    env.registry.get_manifest(&env.repo, &Reference::Digest(idle.clone()), true).await.unwrap();
}

#[tokio::test]
async fn invalid_policies_are_refused_naming_rule_and_field_and_change_nothing() {
    let env = Env::new().await;
    let bad = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":7},"action":{"type":"expire"}},{"rulePriority":2,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    let err = env.registry.put_lifecycle_policy(&env.repo, bad).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::InvalidParameter(_)));
    assert!(msg.contains("rule 1") && msg.contains("countUnit"), "{msg}");
    assert!(matches!(env.registry.lifecycle_policy(&env.repo).await.unwrap_err(), RegistryError::LifecyclePolicyNotFound(_)));
}

#[tokio::test]
async fn preview_runs_in_the_background_and_matches_the_run() {
    let env = Env::new().await;
    for i in 0..12 {
        env.push(&format!("p{i}"), &[&format!("prod-{i}")]).await;
        env.advance_days(1);
    }
    env.registry.put_lifecycle_policy(&env.repo, SEED_POLICY).await.unwrap();
    env.registry.start_lifecycle_preview(&env.repo, None).await.unwrap();
    let preview = loop {
        let p = env.registry.lifecycle_preview(&env.repo).await.unwrap();
        if p.status != "IN_PROGRESS" {
            break p;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(preview.status, "COMPLETE");
    assert_eq!(preview.results.len(), 2);
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    assert_eq!(preview.results, report.actions);
}

/// For random repositories and policies, what the preview says is exactly what the run does,
/// and what is left is everything else.
#[tokio::test]
async fn preview_equals_run_for_random_repositories_and_policies() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let policies = [
        SEED_POLICY.to_string(),
        ARCHIVE_POLICY.to_string(),
        r#"{"rules":[{"rulePriority":1,"description":"keep 3 of v*","selection":{"tagStatus":"tagged","tagPatternList":["v*"],"countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}},{"rulePriority":5,"description":"any older than 5 days","selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":5},"action":{"type":"expire"}}]}"#.to_string(),
        r#"{"rules":[{"rulePriority":1,"description":"prod and release tags","selection":{"tagStatus":"tagged","tagPrefixList":["prod","release"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},{"rulePriority":2,"description":"keep 2 images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#.to_string(),
    ];
    let tag_pool = ["prod-a", "prod-b", "release-1", "v1", "v2", "v3", "v10", "dev", "latest"];
    for case in 0..12 {
        let env = Env::new().await;
        let images = 3 + next(10);
        let mut used = BTreeSet::new();
        for i in 0..images {
            let mut tags = Vec::new();
            for _ in 0..next(3) {
                let t = tag_pool[next(tag_pool.len() as u64) as usize];
                if used.insert(t) {
                    tags.push(t);
                }
            }
            let d = env.push(&format!("c{case}i{i}"), &tags).await;
            if next(2) == 0 {
                env.registry.get_manifest(&env.repo, &Reference::Digest(d), true).await.unwrap();
            }
            env.advance_days(next(4) as i64);
        }
        env.advance_days(next(40) as i64);
        let policy = &policies[next(policies.len() as u64) as usize];
        env.registry.put_lifecycle_policy(&env.repo, policy).await.unwrap();
        let before = env.digests().await;
        let (_, planned) = env.registry.plan_lifecycle(&env.repo, None).await.unwrap();
        let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
        assert_eq!(planned, report.actions, "case {case}");
        assert!(report.skipped.is_empty());
        let expired: BTreeSet<String> = planned.iter().filter(|a| a.action == "EXPIRE").map(|a| a.digest.clone()).collect();
        let left = env.digests().await;
        let expected: BTreeSet<String> = before.difference(&expired).cloned().collect();
        assert_eq!(left, expected, "case {case}");
    }
}
