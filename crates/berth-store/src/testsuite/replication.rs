//! Replication configurations, statuses queued with their jobs, and remote registries.

use super::*;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn status(region: &str, registry: &str, status: &str, at: Millis) -> ReplicationStatusRow {
    ReplicationStatusRow {
        destination: DestinationKey { region: region.into(), registry_id: registry.into() },
        status: status.into(),
        failure_code: None,
        origin: None,
        queued_at: at,
        updated_at: at,
    }
}

fn job(key: &str) -> QueuedJob {
    QueuedJob { kind: "replicate".into(), key: key.into(), payload: format!("{{\"k\":\"{key}\"}}") }
}

pub async fn replication_configuration_and_statuses(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.replication_configuration(ACCOUNT, REGION).await.unwrap(), None);
    s.put_replication_configuration(ACCOUNT, REGION, r#"{"rules":[]}"#, NOW).await.unwrap();
    s.put_replication_configuration(ACCOUNT, REGION, r#"{"rules":[1]}"#, NOW + 1).await.unwrap();
    assert_eq!(s.replication_configuration(ACCOUNT, REGION).await.unwrap().as_deref(), Some(r#"{"rules":[1]}"#));
    assert_eq!(s.replication_configuration(ACCOUNT, "eu-west-1").await.unwrap(), None, "per registry");

    let (repo, digest) = (key("app"), d("image"));
    let queued = [status("us-west-2", ACCOUNT, "IN_PROGRESS", NOW), status("eu-west-1", "210987654321", "IN_PROGRESS", NOW)];
    s.queue_replication(&repo, &digest, &queued, &[job("a"), job("b")], NOW).await.unwrap();
    let jobs = s.list_jobs(None, 10).await.unwrap();
    assert_eq!(jobs.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(), ["a", "b"], "the jobs are queued with the statuses");
    let got = s.replication_statuses(&repo, &digest).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].destination.region, "eu-west-1", "by destination");

    let mut done = status("us-west-2", ACCOUNT, "COMPLETE", NOW);
    done.updated_at = NOW + 5;
    s.set_replication_status(&repo, &digest, &done).await.unwrap();
    let mut failed = status("eu-west-1", "210987654321", "FAILED", NOW);
    failed.failure_code = Some("denied by the destination's registry policy".into());
    s.set_replication_status(&repo, &digest, &failed).await.unwrap();
    // Finishing records the status and deletes the holder's job in one step.
    let claimed = s.claim_jobs(&["replicate"], "node-a", NOW, NOW + 1000, 1).await.unwrap();
    let mut finished = status("us-west-2", ACCOUNT, "COMPLETE", NOW);
    finished.updated_at = NOW + 5;
    assert!(!s.finish_replication_job(&repo, &digest, &finished, claimed[0].id, "node-b").await.unwrap(), "not node-b's job");
    assert!(s.finish_replication_job(&repo, &digest, &finished, claimed[0].id, "node-a").await.unwrap());
    assert_eq!(s.list_jobs(None, 10).await.unwrap().iter().map(|j| j.key.as_str()).collect::<Vec<_>>(), ["b"]);
    let restarted = f.reopen().await;
    let got = restarted.replication_statuses(&repo, &digest).await.unwrap();
    assert_eq!(got, vec![failed, done]);
    assert!(restarted.replication_statuses(&key("other"), &digest).await.unwrap().is_empty());

    // Queueing again replaces the statuses; a job of the same key still waiting is not doubled.
    s.queue_replication(&repo, &digest, &queued[..1], &[job("b")], NOW + 10).await.unwrap();
    assert_eq!(s.list_jobs(None, 10).await.unwrap().len(), 1);
    let got = s.replication_statuses(&repo, &digest).await.unwrap();
    assert_eq!(got.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), ["FAILED", "IN_PROGRESS"]);
}

pub async fn remote_registries(f: Fixture) {
    let s = &f.store;
    assert!(!s.account_exists("210987654321").await.unwrap());
    s.ensure_account("210987654321", NOW).await.unwrap();
    assert!(s.account_exists("210987654321").await.unwrap());
    assert!(s.remote_registries().await.unwrap().is_empty());
    let mut row = RemoteRegistryRow {
        registry_id: "111111111111".into(),
        region: String::new(),
        url: "https://mirror.example:5000".into(),
        auth_kind: "basic".into(),
        username: "robot".into(),
        sealed_secret: Some(vec![1, 2, 3]),
        insecure: false,
        created_at: NOW,
    };
    s.put_remote_registry(&row).await.unwrap();
    row.url = "http://127.0.0.1:5001".into();
    row.insecure = true;
    row.sealed_secret = None;
    s.put_remote_registry(&row).await.unwrap();
    let regional = RemoteRegistryRow { region: "eu-west-1".into(), ..row.clone() };
    s.put_remote_registry(&regional).await.unwrap();
    assert_eq!(f.reopen().await.remote_registries().await.unwrap(), vec![row.clone(), regional.clone()]);
    assert!(s.delete_remote_registry("111111111111", "").await.unwrap());
    assert!(!s.delete_remote_registry("111111111111", "").await.unwrap());
    assert_eq!(s.remote_registries().await.unwrap(), vec![regional]);
}

pub async fn replication_backfills(f: Fixture) {
    let s = &f.store;
    let row = |id: &str, at: Millis| BackfillRow {
        id: id.into(),
        status: "IN_PROGRESS".into(),
        request: "{}".into(),
        cursor: None,
        images_queued: 0,
        created_at: at,
        updated_at: at,
    };
    let job = |id: &str| QueuedJob { kind: "replication_backfill".into(), key: id.into(), payload: "{}".into() };
    assert!(s.create_backfill(ACCOUNT, REGION, &row("b1", NOW), &job("b1")).await.unwrap());
    assert!(!s.create_backfill(ACCOUNT, REGION, &row("b2", NOW + 1), &job("b2")).await.unwrap(), "one at a time per registry");
    assert!(s.create_backfill(ACCOUNT, "eu-west-1", &row("b3", NOW + 1), &job("b3")).await.unwrap(), "another registry");
    assert_eq!(s.list_jobs(None, 10).await.unwrap().iter().map(|j| j.key.as_str()).collect::<Vec<_>>(), ["b1", "b3"]);

    let mut moved = row("b1", NOW);
    moved.cursor = Some(("app".into(), d("x").to_string()));
    moved.images_queued = 7;
    moved.updated_at = NOW + 5;
    assert!(s.advance_backfill(ACCOUNT, REGION, &moved).await.unwrap());
    assert_eq!(f.reopen().await.backfill(ACCOUNT, REGION, "b1").await.unwrap(), Some(moved.clone()));
    let mut stopped = moved.clone();
    stopped.status = "STOPPED".into();
    assert!(s.advance_backfill(ACCOUNT, REGION, &stopped).await.unwrap());
    assert!(!s.advance_backfill(ACCOUNT, REGION, &moved).await.unwrap(), "a stopped backfill stays stopped");
    assert!(s.create_backfill(ACCOUNT, REGION, &row("b4", NOW + 10), &job("b4")).await.unwrap(), "the registry may start another");
    let listed = s.backfills(ACCOUNT, REGION, 10).await.unwrap();
    assert_eq!(listed.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["b4", "b1"], "newest first");
    assert_eq!(s.backfill(ACCOUNT, REGION, "nope").await.unwrap(), None);

    let mut queued = status("us-west-2", ACCOUNT, "COMPLETE", NOW);
    queued.origin = Some("b1".into());
    s.set_replication_status(&key("a"), &d("1"), &queued).await.unwrap();
    s.set_replication_status(&key("a"), &d("2"), &queued).await.unwrap();
    queued.status = "FAILED".into();
    s.set_replication_status(&key("b"), &d("1"), &queued).await.unwrap();
    s.set_replication_status(&key("c"), &d("1"), &status("us-west-2", ACCOUNT, "COMPLETE", NOW)).await.unwrap();
    assert_eq!(s.backfill_status_counts("b1").await.unwrap(), vec![("COMPLETE".to_string(), 2), ("FAILED".to_string(), 1)]);
}
