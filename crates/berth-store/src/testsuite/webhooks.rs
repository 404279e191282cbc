//! Webhooks, their delivery jobs in the outbox and their bounded delivery history.

use super::*;

const ACCOUNT: &str = "123456789012";

fn hook(id: &str, account: &str, at: Millis, types: &[&str]) -> WebhookRow {
    WebhookRow {
        id: id.into(),
        account: account.into(),
        url: format!("https://hooks.example/{id}"),
        detail_types: types.iter().map(|t| t.to_string()).collect(),
        sealed_secret: vec![0, 1, 2, 255],
        created_at: at,
        last_error: None,
        last_error_at: None,
        last_success_at: None,
    }
}

fn attempt(webhook: &str, n: i64, error: Option<&str>) -> DeliveryRow {
    DeliveryRow {
        webhook_id: webhook.into(),
        event_id: "e1".into(),
        detail_type: "ECR Image Action".into(),
        attempt: n,
        at: NOW + n,
        status_code: Some(if error.is_some() { 500 } else { 204 }),
        error: error.map(str::to_string),
        outcome: if error.is_some() { "retrying" } else { "delivered" }.into(),
    }
}

pub async fn webhooks_deliveries_and_history(f: Fixture) {
    let s = &f.store;
    s.put_webhook(&hook("w2", ACCOUNT, NOW + 1, &[])).await.expect("add");
    s.put_webhook(&hook("w1", ACCOUNT, NOW, &["ECR Image Action", "ECR Image Scan"])).await.expect("add");
    s.put_webhook(&hook("w3", "210987654321", NOW, &[])).await.expect("another account");
    assert!(s.put_webhook(&hook("w1", ACCOUNT, NOW, &[])).await.is_err(), "ids are unique");
    let listed = s.webhooks(ACCOUNT).await.expect("list");
    assert_eq!(listed, vec![hook("w1", ACCOUNT, NOW, &["ECR Image Action", "ECR Image Scan"]), hook("w2", ACCOUNT, NOW + 1, &[])]);
    assert_eq!(s.webhook("w3").await.unwrap().map(|w| w.account), Some("210987654321".to_string()));
    assert!(s.webhook("nope").await.unwrap().is_none());

    // Deliveries are outbox jobs; queueing the same (event, webhook) twice adds one.
    let job = |key: &str| QueuedJob { kind: "webhook_delivery".into(), key: key.into(), payload: "{}".into() };
    s.queue_deliveries(&[job("e1/w1"), job("e1/w2")], NOW).await.expect("queue");
    s.queue_deliveries(&[job("e1/w1")], NOW).await.expect("queue again");
    s.queue_deliveries(&[], NOW).await.expect("nothing to queue");
    let claimed = s.claim_jobs(&["webhook_delivery"], "node", NOW, NOW + 1000, 10).await.expect("claim");
    assert_eq!(claimed.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(), vec!["e1/w1", "e1/w2"]);

    // History: newest first, the webhook's last error and success, at most `keep` attempts.
    assert!(s.record_delivery(&attempt("w1", 1, Some("HTTP 500")), 3).await.unwrap());
    assert!(s.record_delivery(&attempt("w1", 2, Some("HTTP 502")), 3).await.unwrap());
    assert!(s.record_delivery(&attempt("w1", 3, Some("timed out")), 3).await.unwrap());
    assert!(s.record_delivery(&attempt("w1", 4, None), 3).await.unwrap());
    assert!(s.record_delivery(&attempt("w2", 1, None), 3).await.unwrap());
    assert!(!s.record_delivery(&attempt("gone", 1, None), 3).await.unwrap(), "no such webhook: nothing recorded");
    let restarted = f.reopen().await;
    let history = restarted.deliveries("w1", 10).await.expect("history");
    assert_eq!(history.iter().map(|d| d.attempt).collect::<Vec<_>>(), vec![4, 3, 2], "the newest three");
    assert_eq!(history[0], attempt("w1", 4, None));
    assert_eq!(restarted.deliveries("w1", 1).await.unwrap().len(), 1);
    let w1 = restarted.webhook("w1").await.unwrap().expect("w1");
    assert_eq!((w1.last_error.as_deref(), w1.last_error_at, w1.last_success_at), (Some("timed out"), Some(NOW + 3), Some(NOW + 4)));

    assert!(!restarted.delete_webhook("210987654321", "w1").await.unwrap(), "another account's id");
    assert!(restarted.delete_webhook(ACCOUNT, "w1").await.unwrap());
    assert!(!restarted.delete_webhook(ACCOUNT, "w1").await.unwrap(), "already gone");
    assert!(restarted.deliveries("w1", 10).await.unwrap().is_empty(), "its history went with it");
    assert_eq!(restarted.webhooks(ACCOUNT).await.unwrap().len(), 1);
}

/// Outbox jobs written with the change they announce: only when it is applied, built from what
/// its transaction found (the manifest a deleted tag named, the tags a deleted manifest had).
pub async fn outbox_jobs_commit_with_their_change(f: Fixture) {
    let s = &f.store;
    let k = repo(s, "outbox").await;
    let job = |key: &str| QueuedJob { kind: "webhook_delivery".into(), key: key.into(), payload: key.into() };
    let keys = |s: &Store| {
        let s = s.clone();
        async move { s.list_jobs(None, 100).await.expect("jobs").into_iter().map(|j| j.key).collect::<Vec<_>>() }
    };

    // A push: its jobs iff it is stored.
    s.link_blob(&k, &d("layer"), 10, NOW).await.expect("link");
    let layer = vec![reference(d("layer"), RefKind::Blob, 10)];
    let stored = s
        .put_manifest(NewManifest {
            repository: &k,
            manifest: manifest("m1", NOW),
            references: layer.clone(),
            tags: vec![("v1", TagMove::CreateOnly), ("v2", TagMove::Move)],
            outbox: vec![job("push-m1")],
        })
        .await
        .expect("put");
    assert!(matches!(stored, PutManifestOutcome::Stored { .. }), "{stored:?}");
    let refused = s
        .put_manifest(NewManifest {
            repository: &k,
            manifest: manifest("m2", NOW),
            references: layer.clone(),
            tags: vec![("v1", TagMove::CreateOnly)],
            outbox: vec![job("push-m2")],
        })
        .await
        .expect("put");
    assert!(matches!(refused, PutManifestOutcome::TagExists(_)), "{refused:?}");
    assert_eq!(keys(s).await, vec!["push-m1"], "a refused push queues nothing");

    // A tag delete: built from the manifest the tag named.
    let named = |digest: &Digest| vec![job(&format!("untag-{digest}"))];
    assert!(s.delete_tag_queueing(&k, "v2", NOW, &named).await.expect("untag"));
    assert!(!s.delete_tag_queueing(&k, "v2", NOW, &named).await.expect("untag again"), "gone: nothing");
    assert!(!s.delete_tag_queueing(&key("missing"), "v2", NOW, &named).await.expect("no repository"));

    // A manifest delete: built from the tags it removed; refused (an index lists it): nothing.
    let listed = s
        .put_manifest(NewManifest {
            repository: &k,
            manifest: manifest("index", NOW),
            references: vec![reference(d("m1"), RefKind::Manifest, 2)],
            tags: Vec::new(),
            outbox: Vec::new(),
        })
        .await
        .expect("index");
    assert!(matches!(listed, PutManifestOutcome::Stored { .. }), "{listed:?}");
    let removed = |tags: &[String]| vec![job(&format!("delete-{}", tags.join(",")))];
    assert_eq!(s.delete_manifest_queueing(&k, &d("m1"), NOW, &removed).await.expect("delete"), DeleteManifestOutcome::ListedBy(d("index")));
    assert_eq!(s.delete_manifest_queueing(&k, &d("index"), NOW, &removed).await.expect("delete"), DeleteManifestOutcome::Deleted);
    assert_eq!(s.delete_manifest_queueing(&k, &d("m1"), NOW, &removed).await.expect("delete"), DeleteManifestOutcome::Deleted);
    assert_eq!(s.delete_manifest_queueing(&k, &d("m1"), NOW, &removed).await.expect("delete"), DeleteManifestOutcome::NotFound);

    // Lifecycle: only when the image is unchanged since evaluation.
    push(s, &k, "old", "layer3", Some("old"), NOW).await;
    assert_eq!(
        s.expire_manifest_queueing(&k, &d("old"), &strings(&["other"]), &[job("expire-wrong")], NOW).await.expect("expire"),
        ExpireOutcome::Changed
    );
    assert!(matches!(
        s.expire_manifest_queueing(&k, &d("old"), &strings(&["old"]), &[job("expire-old")], NOW).await.expect("expire"),
        ExpireOutcome::Expired(_)
    ));
    push(s, &k, "cold", "layer4", Some("cold"), NOW).await;
    assert!(!s.archive_if_unchanged_queueing(&k, &d("cold"), &[], NOW, &[job("archive-wrong")]).await.expect("archive"));
    assert!(s.archive_if_unchanged_queueing(&k, &d("cold"), &strings(&["cold"]), NOW, &[job("archive-cold")]).await.expect("archive"));

    let restarted = f.reopen().await;
    let mut queued = keys(&restarted).await;
    queued.sort();
    let mut expected = vec![
        "push-m1".to_string(),
        format!("untag-{}", d("m1")),
        "delete-".into(),
        "delete-v1".into(),
        "expire-old".into(),
        "archive-cold".into(),
    ];
    expected.sort();
    assert_eq!(queued, expected);
}
