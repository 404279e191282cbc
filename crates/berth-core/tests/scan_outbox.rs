//! Scans run from the durable job outbox: a restarted node takes back the scans its previous
//! process held (and scans an older berth left IN_PROGRESS with no job), never another node's.

use std::sync::Arc;
use std::time::Duration;

use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryRef, Repo, RepositoryName};
use berth_store::{ImageScanRow, JobStatus, MetadataStore};
use bytes::Bytes;

mod common;
use common::{push_blob, Env};

fn repo(s: &str) -> Repo {
    Repo::new(&RegistryRef { account: "123456789012".into(), region: "us-east-1".into() }, RepositoryName::parse(s).unwrap())
}

async fn push_image(r: &Registry, repo: &Repo, layer: &[u8]) -> Digest {
    let config = push_blob(r, repo, b"{}").await;
    let layer_digest = push_blob(r, repo, layer).await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        layer.len()
    );
    let body = Bytes::from(manifest);
    let digest = Digest::sha256_of(&body);
    r.put_manifest(repo, &Reference::Digest(digest.clone()), "application/vnd.oci.image.manifest.v1+json", body).await.unwrap();
    digest
}

fn in_progress() -> ImageScanRow {
    ImageScanRow {
        status: "IN_PROGRESS".into(),
        description: None,
        started_at: 1,
        completed_at: None,
        vulndb_version: None,
        findings: None,
    }
}

/// The stored job of a scan (its key and payload are rows that must stay readable across versions).
async fn scan_job(meta: &Arc<dyn MetadataStore>, repo: &Repo, digest: &Digest) {
    let k = repo.key();
    let key = format!("{}/{}/{}@{digest}", k.account, k.region, k.name);
    let payload = serde_json::json!({"account": k.account, "region": k.region, "repository": k.name, "digest": digest.to_string()});
    assert!(meta.enqueue_job("scan", &key, &payload.to_string(), 0).await.unwrap());
}

async fn status_of(r: &Registry, repo: &Repo, digest: &Digest) -> String {
    r.image_scan(repo, digest).await.unwrap().expect("a scan row").row.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_its_own_scans_and_leaves_another_nodes() {
    let env = Env::new();
    let (a, b, c) = (repo("team/a"), repo("team/b"), repo("team/c"));
    let r0 = env.registry_with(RegistryConfig::default()).await;
    let (da, db, dc) =
        (push_image(&r0, &a, b"layer a").await, push_image(&r0, &b, b"layer b").await, push_image(&r0, &c, b"layer c").await);
    drop(r0);

    // node-a's previous process was scanning a when it stopped; node-b, alive, is scanning b; an
    // older berth (in-memory queue) left c IN_PROGRESS with no job.
    let (meta, _) = common::stores(env.dir.path()).await;
    for (r, d) in [(&a, &da), (&b, &db), (&c, &dc)] {
        assert!(meta.put_image_scan(r.key(), d, &in_progress()).await.unwrap());
    }
    scan_job(&meta, &a, &da).await;
    scan_job(&meta, &b, &db).await;
    let far = i64::MAX / 2;
    assert_eq!(meta.claim_jobs(&["scan"], "node-a", 1, far, 1).await.unwrap().len(), 1);
    assert_eq!(meta.claim_jobs(&["scan"], "node-b", 1, far, 1).await.unwrap().len(), 1);

    let node_a = Arc::new(env.registry_with(RegistryConfig::default()).await.with_node_id("node-a"));
    // Counted before the workers start: a worker finishing a's requeued job between the listing
    // of IN_PROGRESS scans and their enqueueing would make it count a twice (a harmless rescan,
    // but not the count this test pins).
    assert_eq!(node_a.resume_interrupted_scans().await.unwrap(), 2, "a requeued, c enqueued");
    node_a.start_scanner(berth_core::scanning::ScanSettings {
        vulndb_dir: env.dir.path().join("no-vulndb"),
        workers: 2,
        timeout: Duration::from_secs(30),
    });

    // The two resumed scans end (the layers are no tar archives: FAILED with the reason).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while status_of(&node_a, &a, &da).await == "IN_PROGRESS" || status_of(&node_a, &c, &dc).await == "IN_PROGRESS" {
        assert!(tokio::time::Instant::now() < deadline, "the resumed scans did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (r, d) in [(&a, &da), (&c, &dc)] {
        let scan = node_a.image_scan(r, d).await.unwrap().expect("scan");
        assert_eq!(scan.row.status, "FAILED", "{r}: {:?}", scan.row.description);
        assert!(scan.row.description.is_some_and(|d| !d.is_empty()));
    }

    // b is still node-b's: neither requeued nor scanned here. A worker records the scan's
    // result before it finishes the job, so node-a's jobs may linger a moment after the
    // statuses changed: polled for (the deadline is only a safety net).
    assert_eq!(status_of(&node_a, &b, &db).await, "IN_PROGRESS");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = meta.list_jobs(None, 10).await.unwrap();
        let jobs: Vec<_> = jobs.iter().map(|j| (j.status, j.holder.clone())).collect();
        if jobs.iter().all(|(_, holder)| holder.as_deref() != Some("node-a")) {
            assert_eq!(jobs, [(JobStatus::Running, Some("node-b".to_string()))]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "node-a's jobs did not finish: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(node_a.supervisor().shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_scan_is_a_job_until_a_worker_finishes_it() {
    let env = Env::new();
    let a = repo("team/a");
    let r = Arc::new(env.registry_with(RegistryConfig::default()).await.with_node_id("node-a"));
    let digest = push_image(&r, &a, b"layer a").await;
    r.start_scanner(berth_core::scanning::ScanSettings {
        vulndb_dir: env.dir.path().join("no-vulndb"),
        workers: 1,
        timeout: Duration::from_secs(30),
    });
    let id = berth_core::images::ImageId { digest: Some(digest.to_string()), tag: None };
    let (_, row) = r.start_image_scan(&a, &id).await.unwrap();
    assert_eq!(row.status, "IN_PROGRESS");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while status_of(&r, &a, &digest).await == "IN_PROGRESS" {
        assert!(tokio::time::Instant::now() < deadline, "the scan did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_of(&r, &a, &digest).await, "FAILED");
    let (meta, _) = common::stores(env.dir.path()).await;
    assert!(meta.list_jobs(None, 10).await.unwrap().is_empty(), "a finished job leaves the outbox");
    let tasks = r.supervisor().status();
    assert_eq!(tasks.iter().map(|t| (t.name.as_str(), t.restarts)).collect::<Vec<_>>(), [("scan_worker", 0)]);
    assert!(r.supervisor().shutdown(Duration::from_secs(5)).await);
}
