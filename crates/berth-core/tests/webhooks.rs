//! Events to webhooks on every backend: a push queues a signed "ECR Image Action" for the
//! account's webhook, a failed delivery is retried with backoff under the same event id, a
//! delivery is given up on after the retry period, detail-type filters hold, and a removed
//! webhook's deliveries end unsent. The receiver is a few lines of HTTP on a local port; the
//! injected clock moves the retries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use berth_core::events::{self, NewWebhook};
use berth_core::images::ImageId;
use berth_core::{Digest, Reference, Registry, RegistryConfig, RegistryRef, Repo, RepositoryName};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

mod common;
use common::{push_blob, Env};

const ACCOUNT: &str = "123456789012";
const SECRET: &str = "s3cret";

/// One request the receiver took: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n == &name.to_ascii_lowercase()).map(|(_, v)| v.as_str()).unwrap_or("")
    }
    fn event(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON event")
    }
}

/// A receiver answering each request with the next scripted status (200 once the script ends).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (g, s) = (got.clone(), script.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (g, s) = (g.clone(), s.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut conn).await else { return };
                    g.lock().unwrap().push(req);
                    let status = s.lock().unwrap().pop_front().unwrap_or(200);
                    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        Receiver { url, got, script }
    }
    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
    fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Received { headers, body: buf[head_end..head_end + len].to_vec() })
}

fn repo(name: &str) -> Repo {
    Repo::new(&RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }, RepositoryName::parse(name).unwrap())
}

async fn push_image(r: &Registry, repo: &Repo, tag: &str, layer: &[u8]) -> Digest {
    let layer_digest = push_blob(r, repo, layer).await;
    let config = push_blob(r, repo, b"{}").await;
    let body = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        layer.len()
    ));
    r.put_manifest(repo, &Reference::Tag(Registry::tag(tag).unwrap()), "application/vnd.oci.image.manifest.v1+json", body)
        .await
        .unwrap()
        .digest
}

async fn add(r: &Registry, url: &str, types: &[&str]) -> String {
    let new = NewWebhook {
        account: ACCOUNT.into(),
        url: url.into(),
        detail_types: types.iter().map(|t| t.to_string()).collect(),
        secret: Some(Zeroizing::new(SECRET.into())),
    };
    let (hook, generated) = r.add_webhook(new).await.expect("add webhook");
    assert!(generated.is_none(), "a given secret is not echoed");
    hook.id
}

fn assert_signed(req: &Received, now_secs: i64) {
    let ts: i64 = req.header(events::TIMESTAMP_HEADER).parse().expect("a timestamp header");
    assert!(events::verify(SECRET.as_bytes(), ts, &req.body, req.header(events::SIGNATURE_HEADER), now_secs, 300), "{req:?}");
}

#[tokio::test]
async fn a_push_is_delivered_signed_and_a_failed_delivery_is_retried_with_the_same_event_id() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let receiver = Receiver::start().await;
    let hook = add(&r, &receiver.url, &[]).await;
    let repo = repo("app");

    let digest = push_image(&r, &repo, "v1", b"layer one").await;
    assert_eq!(r.run_due_deliveries().await.unwrap(), 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let event = got[0].event();
    assert_eq!(event["detail-type"], "ECR Image Action");
    assert_eq!(event["source"], "aws.ecr");
    assert_eq!((event["account"].as_str(), event["region"].as_str()), (Some(ACCOUNT), Some("us-east-1")));
    assert_eq!(event["resources"][0], repo.arn());
    assert_eq!(
        event["detail"],
        serde_json::json!({"result": "SUCCESS", "repository-name": "app", "image-digest": digest.to_string(), "action-type": "PUSH", "image-tag": "v1"})
    );
    assert_eq!(got[0].header(events::EVENT_ID_HEADER), event["id"].as_str().unwrap());
    assert_signed_now(&got[0], &env);

    // The receiver fails twice: retried after 1 s, then 2 s, under the same event id.
    receiver.answer(&[500, 503]);
    let (deleted, _) = r.batch_delete_images(&repo, &[ImageId { digest: None, tag: Some("v1".into()) }]).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(r.run_due_deliveries().await.unwrap(), 1);
    assert_eq!(r.run_due_deliveries().await.unwrap(), 0, "not due before its backoff");
    env.advance(1_000);
    assert_eq!(r.run_due_deliveries().await.unwrap(), 1);
    env.advance(1_999);
    assert_eq!(r.run_due_deliveries().await.unwrap(), 0, "the second retry waits 2 s");
    env.advance(1);
    assert_eq!(r.run_due_deliveries().await.unwrap(), 1);
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    let ids: Vec<&str> = got[1..].iter().map(|g| g.header(events::EVENT_ID_HEADER)).collect();
    assert!(ids.iter().all(|id| *id == ids[0]) && ids[0] != got[0].header(events::EVENT_ID_HEADER), "{ids:?}");
    assert_eq!(got[3].event()["detail"]["action-type"], "DELETE");
    assert_eq!(got[3].event()["detail"]["image-tag"], "v1");
    assert_eq!(got[1].body, got[3].body, "every attempt sends the same bytes");
    assert_signed_now(&got[3], &env);

    let history = r.webhook_deliveries(ACCOUNT, &hook, 10).await.unwrap();
    let seen: Vec<(i64, Option<i64>, &str)> = history.iter().map(|d| (d.attempt, d.status_code, d.outcome.as_str())).collect();
    assert_eq!(
        seen,
        vec![(3, Some(200), "delivered"), (2, Some(503), "retrying"), (1, Some(500), "retrying"), (1, Some(200), "delivered")]
    );
    let listed = r.list_webhooks(ACCOUNT).await.unwrap();
    assert_eq!(listed[0].last_error.as_deref(), Some("HTTP 503 Service Unavailable"));
    assert!(listed[0].last_success_at.unwrap() > listed[0].last_error_at.unwrap());
    let stats = r.webhook_stats();
    assert_eq!((stats.delivered, stats.retried, stats.failed), (2, 2, 0));
}

fn assert_signed_now(req: &Received, env: &Env) {
    assert_signed(req, env.clock.0.load(std::sync::atomic::Ordering::SeqCst) / 1000);
}

#[tokio::test]
async fn an_unreachable_webhook_is_given_up_on_after_a_day_and_filters_and_removal_hold() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    // A port nothing listens on: connections are refused at once.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let dead = add(&r, &closed, &["ECR Image Action"]).await;
    let receiver = Receiver::start().await;
    let scans_only = add(&r, &receiver.url, &["ECR Image Scan"]).await;
    let repo = repo("app");
    push_image(&r, &repo, "v1", b"layer").await;

    // Hourly retries (after the doublings) until the day is over: then FAILED, kept.
    let mut attempts = 0;
    for _ in 0..60 {
        attempts += r.run_due_deliveries().await.unwrap();
        env.advance(3_600_000);
    }
    assert_eq!(attempts, 25, "one attempt per hour the clock moved, the last at 24 h");
    let history = r.webhook_deliveries(ACCOUNT, &dead, 100).await.unwrap();
    assert_eq!(history[0].outcome, "failed");
    assert!(history[0].error.as_deref().unwrap().contains("onnect"), "{:?}", history[0].error);
    assert!(!history[0].error.as_deref().unwrap().contains("127.0.0.1"), "errors never carry the URL: {:?}", history[0].error);
    assert_eq!(r.webhook_stats().failed, 1);
    assert!(receiver.received().is_empty(), "a webhook for scans only gets no push");

    // A removed webhook's queued deliveries end unsent.
    let other = add(&r, &receiver.url, &[]).await;
    push_image(&r, &repo, "v2", b"layer two").await;
    assert!(r.remove_webhook(ACCOUNT, &other).await.unwrap());
    assert!(!r.remove_webhook(ACCOUNT, &other).await.unwrap(), "already gone");
    assert!(r.remove_webhook(ACCOUNT, &scans_only).await.unwrap());
    r.run_due_deliveries().await.unwrap();
    assert!(receiver.received().is_empty());
}

/// The events queued in the outbox (their bodies), in queueing order, read through another
/// handle on the store as a restarted node would.
async fn queued_events(env: &Env) -> Vec<serde_json::Value> {
    let (meta, _) = common::stores(env.dir.path()).await;
    let mut jobs = meta.list_jobs(None, 100).await.expect("jobs");
    jobs.retain(|j| j.kind == events::DELIVERY_JOB);
    jobs.sort_by_key(|j| j.id);
    jobs.iter()
        .map(|j| {
            let payload: serde_json::Value = serde_json::from_str(&j.payload).expect("a delivery payload");
            serde_json::from_str(payload["body"].as_str().expect("the body")).expect("an event")
        })
        .collect()
}

fn image_action(e: &serde_json::Value) -> (String, String, Option<String>) {
    let d = &e["detail"];
    (d["action-type"].as_str().unwrap().into(), d["image-digest"].as_str().unwrap().into(), d["image-tag"].as_str().map(str::to_string))
}

#[tokio::test]
async fn events_are_queued_in_the_transaction_of_the_change_and_only_when_it_commits() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let repo = repo("outbox");

    // No webhook: a push queues nothing (and caches the account's empty list).
    push_image(&r, &repo, "v0", b"layer zero").await;
    assert!(queued_events(&env).await.is_empty());

    // Adding a webhook shows at once to this process's next push (the cache is invalidated).
    let receiver = Receiver::start().await;
    add(&r, &receiver.url, &["ECR Image Action"]).await;
    let digest = push_image(&r, &repo, "v1", b"layer one").await;
    let (meta, _) = common::stores(env.dir.path()).await;
    assert!(meta.get_manifest_by_digest(repo.key(), &digest).await.unwrap().is_some());
    let queued = queued_events(&env).await;
    assert_eq!(queued.iter().map(image_action).collect::<Vec<_>>(), vec![("PUSH".into(), digest.to_string(), Some("v1".into()))]);

    // A refused push (a layer that was never uploaded) stores nothing and queues nothing.
    let missing = Digest::sha256_of(b"never uploaded");
    let body = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{missing}","size":14}},"layers":[]}}"#
    ));
    let refused =
        r.put_manifest(&repo, &Reference::Tag(Registry::tag("bad").unwrap()), "application/vnd.oci.image.manifest.v1+json", body).await;
    assert!(refused.is_err());
    assert_eq!(queued_events(&env).await.len(), 1, "a refused push queues nothing");

    // A tag delete names the image the tag named when it was deleted; a digest delete, one
    // event per tag it removed.
    let other = push_image(&r, &repo, "v2", b"layer two").await;
    r.put_manifest_tagged(
        &repo,
        &Reference::Digest(other.clone()),
        &[Registry::tag("v3").unwrap()],
        "application/vnd.oci.image.manifest.v1+json",
        meta.get_manifest_by_digest(repo.key(), &other).await.unwrap().unwrap().content,
    )
    .await
    .unwrap();
    r.delete_manifest(&repo, &Reference::Tag(Registry::tag("v1").unwrap())).await.unwrap();
    r.delete_manifest(&repo, &Reference::Digest(other.clone())).await.unwrap();
    assert!(r.delete_manifest(&repo, &Reference::Digest(other.clone())).await.is_err(), "already gone");
    let actions: Vec<_> = queued_events(&env).await.iter().map(image_action).collect();
    assert_eq!(
        actions[1..],
        [
            ("PUSH".into(), other.to_string(), Some("v2".into())),
            ("PUSH".into(), other.to_string(), Some("v3".into())),
            ("DELETE".into(), digest.to_string(), Some("v1".into())),
            ("DELETE".into(), other.to_string(), Some("v2".into())),
            ("DELETE".into(), other.to_string(), Some("v3".into())),
        ]
    );

    // BatchDeleteImage by digest of the untagged image: one DELETE without a tag.
    let (deleted, failures) = r.batch_delete_images(&repo, &[ImageId { digest: Some(digest.to_string()), tag: None }]).await.unwrap();
    assert_eq!((deleted.len(), failures.len()), (1, 0));
    let last = queued_events(&env).await.last().map(image_action);
    assert_eq!(last, Some(("DELETE".into(), digest.to_string(), None)));
}
