//! Lifecycle runs and referrers (SBOMs, signatures), on every backend: a referrer is never
//! expired while its subject lives, goes with its subject, and — as ECR cleans up "those
//! artifacts within 24 hours of the deletion of the subject image" — a referrer whose subject
//! was deleted by hand is removed by the next run at least a day after it was pushed, whatever
//! the rules select.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use berth_core::images::ImageId;
use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryRef, Repo, RepositoryName, Tag};
use berth_store::TagStatus;

mod common;
use bytes::Bytes;
use common::{push_blob, FakeClock};

const DAY: i64 = 86_400_000;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The ECR guide's example: expire untagged images older than 14 days.
const GUIDE_POLICY: &str = r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;
/// Selects tagged images only: untagged referrers are never a rule's business here.
const TAGGED_POLICY: &str = r#"{"rules":[{"rulePriority":1,"description":"keep 5 prod","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;

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
            RepositoryName::parse("team/signed").unwrap(),
        );
        let layer = push_blob(&registry, &repo, b"layer").await;
        Env { _dir: dir, clock, registry, repo, layer }
    }

    fn advance_days(&self, days: i64) {
        self.clock.0.fetch_add(days * DAY, Ordering::SeqCst);
    }

    /// An image (distinct by `seed`), tagged `tag` if given, referring to `subject` if given.
    async fn push(&self, seed: &str, tag: Option<&str>, subject: Option<&Digest>) -> Digest {
        let data = format!("{{\"seed\":\"{seed}\"}}");
        let config = push_blob(&self.registry, &self.repo, data.as_bytes()).await;
        let config_size = data.len();
        let subject = subject
            .map(|s| {
                format!(
                    r#","artifactType":"application/vnd.example+json","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":10}}"#
                )
            })
            .unwrap_or_default();
        let body = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":5}}]{subject}}}"#,
            self.layer
        ));
        let digest = Digest::sha256_of(&body);
        let reference = match tag {
            Some(t) => Reference::Tag(Tag::parse(t).unwrap()),
            None => Reference::Digest(digest.clone()),
        };
        self.registry.put_manifest(&self.repo, &reference, OCI_MANIFEST, body).await.unwrap();
        digest
    }

    async fn exists(&self, d: &Digest) -> bool {
        let rows = self.registry.images(&self.repo, TagStatus::Any, None, None, 1000).await.unwrap();
        rows.iter().any(|r| r.digest == *d)
    }
}

#[tokio::test]
async fn the_guides_untagged_rule_keeps_a_live_images_referrers_and_takes_a_dead_ones() {
    let env = Env::new().await;
    let live = env.push("live", Some("v1"), None).await;
    let live_sbom = env.push("live-sbom", None, Some(&live)).await;
    let live_sig = env.push("live-sig", None, Some(&live)).await;
    let sig_of_sbom = env.push("sig-of-sbom", None, Some(&live_sbom)).await;
    let dead = env.push("dead", None, None).await;
    let dead_sbom = env.push("dead-sbom", None, Some(&dead)).await;
    env.advance_days(15);
    env.registry.put_lifecycle_policy(&env.repo, GUIDE_POLICY).await.unwrap();

    let (_, planned) = env.registry.plan_lifecycle(&env.repo, None).await.unwrap();
    assert_eq!(planned.iter().map(|p| p.digest.clone()).collect::<Vec<_>>(), vec![dead.to_string()]);
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    assert_eq!(report.actions, planned, "the run does what the preview showed");
    assert_eq!(report.referrers_expired, vec![dead_sbom.to_string()]);
    for d in [&live, &live_sbom, &live_sig, &sig_of_sbom] {
        assert!(env.exists(d).await, "{d} must stay while its subject lives");
    }
    assert!(!env.exists(&dead).await && !env.exists(&dead_sbom).await);
}

#[tokio::test]
async fn referrers_of_an_image_deleted_by_hand_are_cleaned_up_a_day_on() {
    let env = Env::new().await;
    let image = env.push("image", Some("prod-1"), None).await;
    let sbom = env.push("sbom", None, Some(&image)).await;
    let sig_of_sbom = env.push("sig-of-sbom", None, Some(&sbom)).await;
    let tagged_sig = env.push("tagged-sig", Some("sig-keep"), Some(&image)).await;
    env.registry.put_lifecycle_policy(&env.repo, TAGGED_POLICY).await.unwrap();
    let (_, failures) =
        env.registry.batch_delete_images(&env.repo, &[ImageId { digest: Some(image.to_string()), tag: None }]).await.unwrap();
    assert!(failures.is_empty());
    // A fresh orphan waits (ECR: it must stay in its storage class for 24 hours first).
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    assert!(report.actions.is_empty() && report.referrers_expired.is_empty(), "{report:?}");
    assert!(env.exists(&sbom).await);

    env.advance_days(1);
    let dry = env.registry.run_lifecycle(&env.repo, true).await.unwrap();
    assert_eq!(dry.referrers_expired, vec![sbom.to_string()]);
    assert!(env.exists(&sbom).await, "a dry run changes nothing");
    let report = env.registry.run_lifecycle(&env.repo, false).await.unwrap();
    assert!(report.actions.is_empty(), "no rule selected it: {report:?}");
    assert_eq!(report.referrers_expired, vec![sbom.to_string(), sig_of_sbom.to_string()]);
    assert!(!env.exists(&sbom).await && !env.exists(&sig_of_sbom).await);
    assert!(env.exists(&tagged_sig).await, "a tagged referrer is the user's to delete");
}
