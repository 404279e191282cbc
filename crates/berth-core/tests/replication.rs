//! Replication within one berth, on every backend `common` selects: what
//! PutReplicationConfiguration accepts and refuses, a push queued and copied to another region
//! and another account (metadata only: no new stored object), an index with its children,
//! cross-account refusal without the destination's registry policy, an immutable tag in the
//! way, a REPLICATION creation template, and no replication of replicated copies.

use berth_core::images::ImageId;
use berth_core::replication::{ReplicationConfiguration, ReplicationDestination, ReplicationRule, RepositoryFilter};
use berth_core::templates::TemplateInput;
use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName};
use bytes::Bytes;

mod common;
use common::{push_blob, Env};

const ACCOUNT: &str = "123456789012";
const OTHER: &str = "210987654321";

fn scope(account: &str, region: &str) -> RegistryRef {
    RegistryRef { account: account.into(), region: region.into() }
}

fn repo_in(s: &RegistryRef, name: &str) -> Repo {
    Repo::new(s, RepositoryName::parse(name).unwrap())
}

fn source() -> RegistryRef {
    scope(ACCOUNT, "us-east-1")
}

fn rule(dests: &[(&str, &str)], filters: &[&str]) -> ReplicationRule {
    ReplicationRule {
        destinations: dests.iter().map(|(r, a)| ReplicationDestination { region: r.to_string(), registry_id: a.to_string() }).collect(),
        repository_filters: filters
            .iter()
            .map(|f| RepositoryFilter { filter: f.to_string(), filter_type: "PREFIX_MATCH".into() })
            .collect(),
    }
}

fn config(rules: Vec<ReplicationRule>) -> ReplicationConfiguration {
    ReplicationConfiguration { rules }
}

fn manifest(config: &Digest, layer: &Digest, layer_size: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#
    ))
}

/// Pushes a one-layer image tagged `tag`; its manifest digest.
async fn push_image(r: &Registry, repo: &Repo, layer: &[u8], tag: &str) -> Digest {
    let config = push_blob(r, repo, b"{}").await;
    let layer_digest = push_blob(r, repo, layer).await;
    r.put_manifest(repo, &Reference::parse(tag).unwrap(), "", manifest(&config, &layer_digest, layer.len())).await.expect("manifest").digest
}

/// How many files the filesystem blob store holds (objects, sealed or clear).
fn stored_files(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).map(|d| d.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()).unwrap_or(0)
    }
    walk(&dir.join("sealed").join("blobs")) + walk(&dir.join("blobs"))
}

fn invalid(e: RegistryError) -> String {
    match e {
        RegistryError::InvalidParameter(i) => i.message,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

async fn statuses(r: &Registry, repo: &Repo, digest: &Digest) -> Vec<(String, String, String, Option<String>)> {
    r.image_replication_statuses(repo, digest)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.region, s.registry_id, s.status, s.failure_code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_are_validated_as_ecr_does_and_bad_ones_change_nothing() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = source();
    assert_eq!(r.replication_configuration(&s).await.unwrap(), ReplicationConfiguration::default());
    let good = config(vec![rule(&[("us-west-2", ACCOUNT)], &["prod"])]);
    assert_eq!(r.put_replication_configuration(&s, good.clone()).await.unwrap(), good);

    let same = invalid(r.put_replication_configuration(&s, config(vec![rule(&[("us-east-1", ACCOUNT)], &[])])).await.unwrap_err());
    assert!(same.contains("cannot be the same as the source registry"), "{same}");
    let many = config((0..11).map(|_| rule(&[("us-west-2", ACCOUNT)], &[])).collect());
    assert!(invalid(r.put_replication_configuration(&s, many).await.unwrap_err()).contains("at most 10 rules"));
    let regions: Vec<String> = (0..26).map(|i| format!("region-{i}")).collect();
    let wide: Vec<(&str, &str)> = regions.iter().map(|g| (g.as_str(), ACCOUNT)).collect();
    assert!(
        invalid(r.put_replication_configuration(&s, config(vec![rule(&wide, &[])])).await.unwrap_err()).contains("25 unique destinations")
    );
    let mut bad_type = rule(&[("us-west-2", ACCOUNT)], &[]);
    bad_type.repository_filters.push(RepositoryFilter { filter: "prod".into(), filter_type: "WILDCARD".into() });
    assert!(invalid(r.put_replication_configuration(&s, config(vec![bad_type])).await.unwrap_err()).contains("PREFIX_MATCH"));
    assert!(invalid(r.put_replication_configuration(&s, config(vec![rule(&[("us-west-2", ACCOUNT)], &["Prod"])])).await.unwrap_err())
        .contains("not a repository name prefix"));
    let unknown =
        invalid(r.put_replication_configuration(&s, config(vec![rule(&[("us-west-2", "999999999999")], &[])])).await.unwrap_err());
    assert!(unknown.contains("neither an account of this registry nor a remote registry"), "{unknown}");
    assert!(invalid(r.put_replication_configuration(&s, config(vec![rule(&[("US", ACCOUNT)], &[])])).await.unwrap_err())
        .contains("is not a region"));
    assert_eq!(r.replication_configuration(&s).await.unwrap(), good, "refused configurations changed nothing");

    r.put_replication_configuration(&s, ReplicationConfiguration::default()).await.unwrap();
    assert!(r.replication_configuration(&s).await.unwrap().rules.is_empty(), "an empty configuration turns replication off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_copied_to_another_region_without_copying_bytes() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = source();
    r.put_replication_configuration(&s, config(vec![rule(&[("us-west-2", ACCOUNT)], &["prod"])])).await.unwrap();
    let repo = repo_in(&s, "prod/app");
    let digest = push_image(&r, &repo, &vec![7u8; 300_000], "v1").await;
    let unmatched = push_image(&r, &repo_in(&s, "dev/app"), b"dev layer", "v1").await;
    assert_eq!(statuses(&r, &repo, &digest).await, vec![("us-west-2".into(), ACCOUNT.into(), "IN_PROGRESS".into(), None)]);
    assert!(statuses(&r, &repo_in(&s, "dev/app"), &unmatched).await.is_empty(), "no rule matches dev/");

    // The destination registry replicates too: a copy arriving there must not go on.
    r.put_replication_configuration(&scope(ACCOUNT, "us-west-2"), config(vec![rule(&[("eu-west-1", ACCOUNT)], &[])])).await.unwrap();
    let objects_before = stored_files(env.dir.path());
    assert_eq!(r.run_due_replication().await.unwrap(), 1);
    assert_eq!(statuses(&r, &repo, &digest).await, vec![("us-west-2".into(), ACCOUNT.into(), "COMPLETE".into(), None)]);
    if common::blobs_on_disk() {
        assert_eq!(stored_files(env.dir.path()), objects_before, "same key: the copy links, it stores nothing");
    }

    let copy = repo_in(&scope(ACCOUNT, "us-west-2"), "prod/app");
    let pulled = r.get_manifest(&copy, &Reference::parse("v1").unwrap(), false).await.expect("the tag is replicated");
    assert_eq!(pulled.digest, digest);
    for layer in berth_core::manifest::parse(&pulled.content, &pulled.media_type).unwrap().references {
        assert!(r.stat_blob(&copy, &layer.digest).await.is_ok(), "blob {} readable in the copy", layer.digest);
    }
    // A replicated copy is not replicated again, and deleting the source leaves the copy.
    assert!(r.image_replication_statuses(&copy, &digest).await.unwrap().is_empty());
    assert_eq!(r.run_due_replication().await.unwrap(), 0, "nothing queued by the copy");
    assert!(!r.repository_exists(&repo_in(&scope(ACCOUNT, "eu-west-1"), "prod/app")).await.unwrap());
    r.batch_delete_images(&repo, &[ImageId { digest: Some(digest.to_string()), tag: None }]).await.unwrap();
    assert!(r.get_manifest(&copy, &Reference::Digest(digest.clone()), false).await.is_ok(), "deletes are not replicated");
    assert_eq!(r.replication_stats().destinations[&format!("us-west-2/{ACCOUNT}")].completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_is_copied_with_every_manifest_it_lists() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = source();
    let repo = repo_in(&s, "multi");
    let amd = push_image(&r, &repo, b"amd64 layer", "amd").await;
    let arm = push_image(&r, &repo, b"arm64 layer", "arm").await;
    r.put_replication_configuration(&s, config(vec![rule(&[("eu-west-1", ACCOUNT)], &[])])).await.unwrap();
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{amd}","size":{}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{arm}","size":{}}}]}}"#,
        r.get_manifest(&repo, &Reference::Digest(amd.clone()), false).await.unwrap().content.len(),
        r.get_manifest(&repo, &Reference::Digest(arm.clone()), false).await.unwrap().content.len(),
    ));
    let index_digest = r.put_manifest(&repo, &Reference::parse("latest").unwrap(), "", index).await.unwrap().digest;
    assert_eq!(r.run_due_replication().await.unwrap(), 1, "only the index was pushed after the rule");
    let copy = repo_in(&scope(ACCOUNT, "eu-west-1"), "multi");
    assert_eq!(r.get_manifest(&copy, &Reference::parse("latest").unwrap(), false).await.unwrap().digest, index_digest);
    for child in [&amd, &arm] {
        assert!(r.get_manifest(&copy, &Reference::Digest(child.clone()), false).await.is_ok(), "child {child} copied first");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_needs_its_registry_policy_and_gets_its_template() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    r.create_account(OTHER).await.unwrap();
    let s = source();
    let dest = scope(OTHER, "us-west-2");
    r.put_replication_configuration(&s, config(vec![rule(&[("us-west-2", OTHER)], &[])])).await.unwrap();
    let repo = repo_in(&s, "shared/app");
    let first = push_image(&r, &repo, b"first", "v1").await;
    r.run_due_replication().await.unwrap();
    let failed = statuses(&r, &repo, &first).await;
    assert_eq!(failed[0].2, "FAILED");
    assert!(failed[0].3.as_deref().unwrap().starts_with("AccessDenied"), "{failed:?}");
    assert!(!r.repository_exists(&repo_in(&dest, "shared/app")).await.unwrap(), "nothing created without permission");

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"replication","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":["ecr:CreateRepository","ecr:ReplicateImage"],"Resource":"arn:aws:ecr:us-west-2:{OTHER}:repository/*"}}]}}"#
    );
    r.set_registry_policy(&dest, &policy).await.unwrap();
    let template = TemplateInput {
        applied_for: Some(vec!["REPLICATION".into()]),
        tag_mutability: Some("IMMUTABLE".into()),
        resource_tags: Some(vec![("origin".into(), "replication".into())]),
        ..Default::default()
    };
    r.create_repository_creation_template(&dest, "shared", template).await.unwrap();
    let second = push_image(&r, &repo, b"second", "v2").await;
    r.run_due_replication().await.unwrap();
    assert_eq!(statuses(&r, &repo, &second).await[0].2, "COMPLETE");
    let created = r.repository(&repo_in(&dest, "shared/app")).await.unwrap();
    assert_eq!(created.settings.tag_mutability, berth_store::TagMutability::Immutable, "the REPLICATION template's settings");
    assert_eq!(r.repository_tags(&repo_in(&dest, "shared/app")).await.unwrap(), vec![("origin".to_string(), "replication".to_string())]);

    // The destination's immutable tag now points at `second`: moving it fails that image only.
    let third = push_image(&r, &repo, b"third", "v2").await;
    let fourth = push_image(&r, &repo, b"fourth", "v4").await;
    r.run_due_replication().await.unwrap();
    let refused = statuses(&r, &repo, &third).await;
    assert_eq!(refused[0].2, "FAILED");
    assert!(refused[0].3.as_deref().unwrap().starts_with("ImageTagAlreadyExistsException"), "{refused:?}");
    assert_eq!(statuses(&r, &repo, &fourth).await[0].2, "COMPLETE", "the queue goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_queues_images_pushed_before_the_rules() {
    use berth_core::replication::BackfillRequest;
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = source();
    let (app, lib, other) = (repo_in(&s, "prod/app"), repo_in(&s, "prod/lib"), repo_in(&s, "dev/tool"));
    let old = [
        push_image(&r, &app, b"app one", "v1").await,
        push_image(&r, &app, b"app two", "v2").await,
        push_image(&r, &lib, b"lib one", "v1").await,
    ];
    let skipped = push_image(&r, &other, b"dev one", "v1").await;
    let refused = r.start_replication_backfill(&s, BackfillRequest::default()).await.unwrap_err();
    assert!(invalid(refused).contains("no replication configuration"));
    r.put_replication_configuration(&s, config(vec![rule(&[("us-west-2", ACCOUNT)], &[])])).await.unwrap();
    assert_eq!(r.run_due_replication().await.unwrap(), 0, "rules apply to pushes from now on");

    let bad = BackfillRequest {
        destinations: vec![ReplicationDestination { region: "ap-south-1".into(), registry_id: ACCOUNT.into() }],
        ..Default::default()
    };
    assert!(invalid(r.start_replication_backfill(&s, bad).await.unwrap_err()).contains("not a destination"));
    let request = BackfillRequest {
        repository_filters: vec![RepositoryFilter { filter: "prod".into(), filter_type: "PREFIX_MATCH".into() }],
        ..Default::default()
    };
    let started = r.start_replication_backfill(&s, request.clone()).await.unwrap();
    assert_eq!(started.status, "IN_PROGRESS");
    assert!(matches!(r.start_replication_backfill(&s, request).await, Err(RegistryError::LimitExceeded(_))), "one at a time");
    r.run_due_replication().await.unwrap();

    let done = r.replication_backfill(&s, &started.id).await.unwrap();
    assert_eq!((done.status.as_str(), done.images_queued), ("COMPLETE", 3));
    assert_eq!(done.results.get("COMPLETE"), Some(&3));
    let west = scope(ACCOUNT, "us-west-2");
    for (repo, digest) in [(&app, &old[0]), (&app, &old[1]), (&lib, &old[2])] {
        assert_eq!(statuses(&r, repo, digest).await[0].2, "COMPLETE");
        assert!(r.get_manifest(&repo_in(&west, repo.name.as_str()), &Reference::Digest(digest.clone()), false).await.is_ok());
    }
    assert!(statuses(&r, &other, &skipped).await.is_empty(), "outside the backfill's filter");
    assert_eq!(r.replication_backfills(&s).await.unwrap()[0].id, started.id);

    // A stopped backfill queues nothing more; another may start.
    let again = r.start_replication_backfill(&s, BackfillRequest::default()).await.unwrap();
    let stopped = r.stop_replication_backfill(&s, &again.id).await.unwrap();
    assert_eq!(stopped.status, "STOPPED");
    r.run_due_replication().await.unwrap();
    let after = r.replication_backfill(&s, &again.id).await.unwrap();
    assert_eq!((after.status.as_str(), after.images_queued), ("STOPPED", 0));
    assert!(statuses(&r, &other, &skipped).await.is_empty());
    assert!(invalid(r.stop_replication_backfill(&s, "nope").await.unwrap_err()).contains("does not exist"));
}
