//! Account settings and pull-time update exclusions on every backend, with the injected clock
//! showing which pulls move lastRecordedPullTime.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use berth_core::account_settings::MAX_PULL_TIME_EXCLUSIONS;
use berth_core::auth::Principal;
use berth_core::images::ImageId;
use berth_core::{Digest, MountOutcome, Reference, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, Tag};
use berth_store::TagStatus;
use bytes::Bytes;

mod common;
use common::{push_blob, FakeClock};

const ACCOUNT: &str = "123456789012";
const START: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";

struct Env {
    dir: tempfile::TempDir,
    clock: Arc<FakeClock>,
    registry: Registry,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FakeClock(AtomicI64::new(START)));
        let registry = open(&dir, &clock).await;
        Env { dir, clock, registry }
    }

    fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }
}

async fn open(dir: &tempfile::TempDir, clock: &Arc<FakeClock>) -> Registry {
    let (meta, blobs) = common::stores(dir.path()).await;
    Registry::new(meta, blobs, clock.clone(), RegistryConfig::default()).with_key_service(common::root_key())
}

fn scope(region: &str) -> RegistryRef {
    RegistryRef { account: ACCOUNT.into(), region: region.into() }
}

fn repo(name: &str) -> Repo {
    Repo::new(&scope("us-east-1"), RepositoryName::parse(name).unwrap())
}

/// Pushes one image tagged `tag` and returns its digest.
async fn push_image(r: &Registry, repo: &Repo, tag: &str) -> Digest {
    let layer = push_blob(r, repo, b"layer").await;
    let config = push_blob(r, repo, b"{}").await;
    let body = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]}}"#
    ));
    let mt = "application/vnd.oci.image.manifest.v1+json";
    r.put_manifest(repo, &Reference::Tag(Tag::parse(tag).unwrap()), mt, body.clone()).await.unwrap();
    Digest::sha256_of(&body)
}

async fn last_pulled(r: &Registry, repo: &Repo, digest: &Digest) -> Option<i64> {
    let rows = r.images(repo, TagStatus::Any, None, None, 100).await.unwrap();
    rows.iter().find(|row| &row.digest == digest).expect("the image is listed").last_pulled_at
}

#[tokio::test]
async fn settings_have_ecr_defaults_and_take_only_known_values() {
    let env = Env::new().await;
    let (r, east, west) = (&env.registry, scope("us-east-1"), scope("us-west-2"));
    assert_eq!(r.account_setting(&east, "BASIC_SCAN_TYPE_VERSION").await.unwrap(), "AWS_NATIVE");
    assert_eq!(r.account_setting(&east, "REGISTRY_POLICY_SCOPE").await.unwrap(), "V2");
    assert_eq!(r.account_setting(&east, "BLOB_MOUNTING").await.unwrap(), "ENABLED");

    r.put_account_setting(&east, "REGISTRY_POLICY_SCOPE", "V1").await.unwrap();
    r.put_account_setting(&east, "BLOB_MOUNTING", "DISABLED").await.unwrap();
    assert_eq!(r.account_setting(&east, "REGISTRY_POLICY_SCOPE").await.unwrap(), "V1", "a put is read back at once (cache invalidated)");
    assert_eq!(r.account_setting(&east, "BLOB_MOUNTING").await.unwrap(), "DISABLED");
    assert_eq!(r.account_setting(&west, "REGISTRY_POLICY_SCOPE").await.unwrap(), "V2", "settings are per region");

    let unknown = r.put_account_setting(&east, "NO_SUCH_SETTING", "V1").await.unwrap_err();
    assert!(matches!(&unknown, RegistryError::Validation(m) if m.contains("NO_SUCH_SETTING")), "{unknown}");
    assert!(matches!(r.account_setting(&east, "blob_mounting").await.unwrap_err(), RegistryError::Validation(_)));
    for (name, value) in [("BASIC_SCAN_TYPE_VERSION", "CLAIR"), ("REGISTRY_POLICY_SCOPE", "V3"), ("BLOB_MOUNTING", "enabled")] {
        let err = r.put_account_setting(&east, name, value).await.unwrap_err();
        assert!(matches!(err, RegistryError::InvalidParameter(_)), "{name}={value}: {err}");
    }
    assert_eq!(r.account_setting(&east, "BLOB_MOUNTING").await.unwrap(), "DISABLED", "a refused put changes nothing");

    let restarted = open(&env.dir, &env.clock).await;
    assert_eq!(restarted.account_setting(&east, "REGISTRY_POLICY_SCOPE").await.unwrap(), "V1");
}

#[tokio::test]
async fn exclusions_register_list_page_and_deregister() {
    let env = Env::new().await;
    let (r, east) = (&env.registry, scope("us-east-1"));
    assert_eq!(r.register_pull_time_exclusion(&east, ALICE).await.unwrap(), START);
    assert!(matches!(r.register_pull_time_exclusion(&east, ALICE).await.unwrap_err(), RegistryError::ExclusionExists(_)));
    for bad in ["alice", "arn:aws:iam::123:user/alice", "arn:aws:sts::123456789012:assumed-role/r/s", "arn:aws:iam::123456789012:group/g"] {
        assert!(matches!(r.register_pull_time_exclusion(&east, bad).await.unwrap_err(), RegistryError::InvalidParameter(_)), "{bad}");
    }
    r.register_pull_time_exclusion(&east, "arn:aws:iam::123456789012:role/ci/builder").await.unwrap();
    r.register_pull_time_exclusion(&east, BOB).await.unwrap();

    let first = r.pull_time_exclusions(&east, None, 2).await.unwrap();
    assert_eq!(first.principal_arns, vec!["arn:aws:iam::123456789012:role/ci/builder".to_string(), ALICE.to_string()]);
    assert!(first.more);
    let second = r.pull_time_exclusions(&east, first.principal_arns.last().map(String::as_str), 2).await.unwrap();
    assert_eq!(second.principal_arns, vec![BOB.to_string()]);
    assert!(!second.more);

    r.deregister_pull_time_exclusion(&east, ALICE).await.unwrap();
    assert!(matches!(r.deregister_pull_time_exclusion(&east, ALICE).await.unwrap_err(), RegistryError::ExclusionNotFound(_)));
    assert_eq!(r.pull_time_exclusions(&east, None, 100).await.unwrap().principal_arns.len(), 2);
    assert!(r.pull_time_exclusions(&scope("us-west-2"), None, 100).await.unwrap().principal_arns.is_empty());
}

#[tokio::test]
async fn the_exclusion_list_is_bounded() {
    let env = Env::new().await;
    let (r, east) = (&env.registry, scope("us-east-1"));
    for i in 0..MAX_PULL_TIME_EXCLUSIONS {
        r.register_pull_time_exclusion(&east, &format!("arn:aws:iam::123456789012:user/u{i:03}")).await.unwrap();
    }
    let err = r.register_pull_time_exclusion(&east, ALICE).await.unwrap_err();
    assert!(matches!(err, RegistryError::LimitExceeded(_)), "{err}");
    assert_eq!(r.pull_time_exclusions(&east, None, 1000).await.unwrap().principal_arns.len(), MAX_PULL_TIME_EXCLUSIONS as usize);
}

#[tokio::test]
async fn an_excluded_principal_does_not_move_the_pull_time() {
    let env = Env::new().await;
    let r = &env.registry;
    let app = repo("team/app");
    let digest = push_image(r, &app, "v1").await;
    let by_tag = Reference::Tag(Tag::parse("v1").unwrap());
    r.register_pull_time_exclusion(&app.registry(), ALICE).await.unwrap();

    // Alice's pulls, through both paths, leave no pull time.
    env.advance(10 * MINUTE);
    r.pull_manifest(&app, &by_tag, ALICE).await.unwrap();
    r.batch_get_images(&app, &[ImageId { digest: None, tag: Some("v1".into()) }], &[], ALICE).await.unwrap();
    assert_eq!(last_pulled(r, &app, &digest).await, None);

    // Bob's pull counts; Alice pulling later leaves Bob's time.
    env.advance(10 * MINUTE);
    let bobs = env.clock.0.load(Ordering::SeqCst);
    r.pull_manifest(&app, &Reference::Digest(digest.clone()), BOB).await.unwrap();
    assert_eq!(last_pulled(r, &app, &digest).await, Some(bobs));
    env.advance(10 * MINUTE);
    r.pull_manifest(&app, &by_tag, ALICE).await.unwrap();
    assert_eq!(last_pulled(r, &app, &digest).await, Some(bobs));

    // Another registry's exclusions do not apply here.
    let west = Repo::new(&scope("us-west-2"), RepositoryName::parse("team/app").unwrap());
    let west_digest = push_image(r, &west, "v1").await;
    r.pull_manifest(&west, &by_tag, ALICE).await.unwrap();
    assert!(last_pulled(r, &west, &west_digest).await.is_some());

    // Deregistered (and after a restart), Alice's pulls count again.
    r.deregister_pull_time_exclusion(&app.registry(), ALICE).await.unwrap();
    env.advance(10 * MINUTE);
    let alices = env.clock.0.load(Ordering::SeqCst);
    r.pull_manifest(&app, &by_tag, ALICE).await.unwrap();
    assert_eq!(last_pulled(r, &app, &digest).await, Some(alices));

    r.register_pull_time_exclusion(&app.registry(), ALICE).await.unwrap();
    let restarted = open(&env.dir, &env.clock).await;
    env.advance(10 * MINUTE);
    restarted.pull_manifest(&app, &by_tag, ALICE).await.unwrap();
    assert_eq!(last_pulled(&restarted, &app, &digest).await, Some(alices));
}

#[tokio::test]
async fn blob_mounting_disabled_answers_mounts_with_an_upload_session() {
    let env = Env::new().await;
    let r = &env.registry;
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let (arn, access_key_id, _) = r.create_user(ACCOUNT, "keeper", &[("all".into(), all.into())]).await.unwrap();
    let me = Principal { arn, account: ACCOUNT.into(), access_key_id, region: None, source_ip: None, secure_transport: false };
    let (from, to, later) = (repo("team/from"), repo("team/to"), repo("team/later"));
    let d = push_blob(r, &from, b"shared layer").await;
    assert!(matches!(r.mount_blob(&me, &to, &d, Some(&from)).await.unwrap(), MountOutcome::Mounted(_)));
    r.put_account_setting(&from.registry(), "BLOB_MOUNTING", "DISABLED").await.unwrap();
    assert!(matches!(r.mount_blob(&me, &later, &d, Some(&from)).await.unwrap(), MountOutcome::Upload(_)));
    assert_eq!(r.stat_blob(&to, &d).await.unwrap(), 12, "what was mounted stays mounted");
}
