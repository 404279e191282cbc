//! Events: what happened to images, in Amazon EventBridge's shape for ECR (`source` "aws.ecr",
//! ECR's detail-types and detail fields), delivered to the webhooks an account configured.
//!
//! ```text
//!  push / delete / lifecycle expiry or archive ──► the account's webhooks (cached per account)
//!    that want the detail-type → one `webhook_delivery` outbox job per (event, webhook), which
//!    the store writes in the change's own transaction ──► the request goes on
//!  scan stored / replication finished ──► Registry::emit, right after the result committed
//!  webhook_worker ×N (supervised): claim (lease 60 s) → POST the event, signed → 2xx: done;
//!    anything else: retried with exponential backoff (1 s doubling, ≤ 1 h) for 24 h, then FAILED
//! ```
//!
//! Delivery is at least once: the event id is the idempotency key a receiver de-duplicates on
//! (`X-Berth-Event-Id`). Requests only ever add rows to their own transaction; a slow or dead
//! receiver holds up workers, never pushes. A push, delete or lifecycle action and its events
//! commit together or not at all; what an event says that depends on the transaction (the image
//! a deleted tag named, the tags a deleted manifest had) is built inside it, from what it found
//! (`tag_delete_outbox`, `manifest_delete_outbox`). Scan and replication events are queued right
//! after their result is stored: a crash between the two loses that event (the result stands).
//! A webhook another process added shows within the cache's 3 s.

mod delivery;
mod webhooks;

use std::sync::Arc;

use berth_store::{QueuedJob, WebhookRow};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::names::Repo;
use crate::{Digest, Registry};

pub(crate) use delivery::Events;
pub use delivery::{backoff_millis, sign, verify, DeliverySettings, DeliveryStats, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
pub use webhooks::{NewWebhook, Webhook, WebhookDelivery};

/// The outbox job kind of one event's delivery to one webhook.
pub const DELIVERY_JOB: &str = "webhook_delivery";

pub const IMAGE_ACTION: &str = "ECR Image Action";
pub const IMAGE_SCAN: &str = "ECR Image Scan";
/// Not among ECR's documented samples: berth's shape (`action-type` EXPIRE, the image's tags).
pub const LIFECYCLE_ACTION: &str = "ECR Lifecycle Policy Action";
/// EventBridge lists this detail-type for ECR without a documented detail: berth's shape.
pub const REPLICATION_ACTION: &str = "ECR Replication Action";
/// ECR's sample's fields (`sync-status`, `ecr-repository-prefix`, `upstream-registry-url`, ...).
pub const PULL_THROUGH_ACTION: &str = "ECR Pull Through Cache Action";

/// Every detail-type berth emits (what a webhook may ask for).
pub const DETAIL_TYPES: [&str; 5] = [IMAGE_ACTION, IMAGE_SCAN, LIFECYCLE_ACTION, REPLICATION_ACTION, PULL_THROUGH_ACTION];

/// One event, as EventBridge would deliver it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub version: String,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub account: String,
    /// RFC 3339, whole seconds, UTC.
    pub time: String,
    pub region: String,
    pub resources: Vec<String>,
    pub detail: Value,
}

/// EventBridge's `time`: `2019-11-16T01:54:34Z`.
fn event_time(millis: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

impl Registry {
    fn event(&self, repo: &Repo, detail_type: &str, detail: Value) -> Event {
        let key = repo.key();
        Event {
            version: "0".into(),
            id: uuid::Uuid::new_v4().to_string(),
            detail_type: detail_type.into(),
            source: "aws.ecr".into(),
            account: key.account.clone(),
            time: event_time(self.now()),
            region: key.region.clone(),
            resources: vec![repo.arn()],
            detail,
        }
    }

    /// The webhooks that may want `repo`'s events: none for a public repository (ECR Public
    /// sends no EventBridge events); none either, logged and counted, when they cannot be read
    /// (the change goes on without its events rather than fail).
    pub(crate) async fn event_webhooks(&self, repo: &Repo) -> Arc<[WebhookRow]> {
        if repo.key().region == crate::public::PUBLIC_REGION {
            return Arc::from(Vec::new());
        }
        match self.account_webhooks(&repo.key().account).await {
            Ok(hooks) => hooks,
            Err(e) => {
                self.events.note_queue_failure();
                tracing::error!(repository = %repo, error = %e, "reading the account's webhooks; the change's events are lost");
                Arc::from(Vec::new())
            }
        }
    }

    /// The outbox jobs of `events` for `hooks` (nothing without webhooks: no event is built).
    fn outbox_of(&self, hooks: &[WebhookRow], events: impl FnOnce() -> Vec<Event>) -> Vec<QueuedJob> {
        if hooks.is_empty() {
            return Vec::new();
        }
        let events = events();
        match webhooks::delivery_jobs(hooks, &events, self.now()) {
            Ok(jobs) => jobs,
            Err(e) => {
                self.events.note_queue_failure();
                tracing::error!(error = %e, "encoding events for webhooks; they are lost");
                Vec::new()
            }
        }
    }

    /// Wakes this node's delivery workers once a change that carried outbox jobs committed.
    pub(crate) fn outbox_committed(&self, hooks: &[WebhookRow]) {
        if !hooks.is_empty() {
            self.events.wake();
        }
    }

    /// "ECR Image Action" events: one per tag, or one without a tag.
    fn image_action_events(&self, repo: &Repo, digest: &Digest, action: &str, tags: &[String]) -> Vec<Event> {
        let detail = |tag: Option<&String>| {
            let mut d = json!({ "result": "SUCCESS", "repository-name": repo.name.as_str(), "image-digest": digest.to_string(), "action-type": action });
            if let Some(t) = tag {
                d["image-tag"] = json!(t);
            }
            d
        };
        match tags {
            [] => vec![self.event(repo, IMAGE_ACTION, detail(None))],
            tags => tags.iter().map(|t| self.event(repo, IMAGE_ACTION, detail(Some(t)))).collect(),
        }
    }

    /// The PUSH events of a manifest push (one per tag it names, or one without a tag), as
    /// outbox jobs the store adds in the push's own transaction.
    pub(crate) fn push_outbox(&self, hooks: &[WebhookRow], repo: &Repo, digest: &Digest, tags: &[String]) -> Vec<QueuedJob> {
        self.outbox_of(hooks, || self.image_action_events(repo, digest, "PUSH", tags))
    }

    /// The DELETE event of a deleted tag, built inside the delete's transaction from the image
    /// the tag named there.
    pub(crate) fn tag_delete_outbox<'a>(
        &'a self,
        hooks: &'a [WebhookRow],
        repo: &'a Repo,
        tag: &'a str,
    ) -> impl Fn(&Digest) -> Vec<QueuedJob> + Send + Sync + 'a {
        move |digest| self.outbox_of(hooks, || self.image_action_events(repo, digest, "DELETE", &[tag.to_string()]))
    }

    /// The DELETE events of a deleted manifest, built inside the delete's transaction: one per
    /// tag it removed, or one without a tag.
    pub(crate) fn manifest_delete_outbox<'a>(
        &'a self,
        hooks: &'a [WebhookRow],
        repo: &'a Repo,
        digest: &'a Digest,
    ) -> impl Fn(&[String]) -> Vec<QueuedJob> + Send + Sync + 'a {
        move |tags| self.outbox_of(hooks, || self.image_action_events(repo, digest, "DELETE", tags))
    }

    /// The scan event of a stored scan result.
    pub(crate) async fn emit_scan_result(&self, repo: &Repo, digest: &Digest, row: &berth_store::ImageScanRow) {
        let counts = row
            .findings
            .as_deref()
            .and_then(|f| serde_json::from_str::<crate::scanning::ScanResult>(f).ok())
            .map(|r| r.severity_counts())
            .unwrap_or_default();
        self.emit_image_scan(repo, digest, &row.status, &counts).await;
    }

    /// "ECR Image Scan" once a scan's result is stored (`finding-severity-counts` only names the
    /// severities found, as ECR's).
    pub(crate) async fn emit_image_scan(
        &self,
        repo: &Repo,
        digest: &Digest,
        status: &str,
        counts: &std::collections::BTreeMap<String, u64>,
    ) {
        let tags = match self.meta.get_image(repo.key(), digest).await {
            Ok(image) => image.map(|i| i.tags).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let detail = json!({
            "scan-status": status,
            "repository-name": repo.name.as_str(),
            "finding-severity-counts": counts,
            "image-digest": digest.to_string(),
            "image-tags": tags,
        });
        self.emit(self.event(repo, IMAGE_SCAN, detail)).await;
    }

    /// "ECR Lifecycle Policy Action" for an image a rule expires or archives, as outbox jobs
    /// the store adds in the expiry's (or archiving's) own transaction.
    pub(crate) fn lifecycle_outbox(&self, hooks: &[WebhookRow], repo: &Repo, action: &crate::lifecycle::PlannedAction) -> Vec<QueuedJob> {
        self.outbox_of(hooks, || {
            let detail = json!({
                "result": "SUCCESS",
                "action-type": action.action,
                "repository-name": repo.name.as_str(),
                "image-digest": action.digest,
                "image-tags": action.tags,
                "rule-priority": action.rule_priority,
            });
            vec![self.event(repo, LIFECYCLE_ACTION, detail)]
        })
    }

    /// "ECR Replication Action" when a copy to a destination is COMPLETE or FAILED.
    pub(crate) async fn emit_replication_action(&self, repo: &Repo, digest: &Digest, row: &berth_store::ReplicationStatusRow) {
        let mut detail = json!({
            "result": if row.status == crate::replication::COMPLETE { "SUCCESS" } else { "FAILURE" },
            "action-type": "REPLICATE",
            "repository-name": repo.name.as_str(),
            "image-digest": digest.to_string(),
            "destination-region": row.destination.region,
            "destination-registry-id": row.destination.registry_id,
        });
        if let Some(code) = &row.failure_code {
            detail["failure-reason"] = json!(code);
        }
        self.emit(self.event(repo, REPLICATION_ACTION, detail)).await;
    }

    /// "ECR Pull Through Cache Action" when an image is first cached from an upstream (SUCCESS)
    /// or a fetch of one failed (FAILED, with the reason).
    pub(crate) async fn emit_pull_through_action(&self, repo: &Repo, sync: &crate::pull_through::SyncOutcome<'_>) {
        let mut detail = json!({
            "rule-version": "1",
            "sync-status": if sync.failure.is_none() { "SUCCESS" } else { "FAILED" },
            "ecr-repository-prefix": sync.prefix,
            "repository-name": repo.name.as_str(),
            "upstream-registry-url": sync.upstream_url,
        });
        if let Some(tag) = sync.tag {
            detail["image-tag"] = json!(tag);
        }
        if let Some(digest) = sync.digest {
            detail["image-digest"] = json!(digest.to_string());
        }
        if let Some((code, reason)) = &sync.failure {
            detail["failure-code"] = json!(code);
            detail["failure-reason"] = json!(reason);
        }
        self.emit(self.event(repo, PULL_THROUGH_ACTION, detail)).await;
    }

    /// Queues the event for the account's webhooks that want it. Never fails the caller: the
    /// change already happened; a lost event is logged and counted.
    pub(crate) async fn emit(&self, event: Event) {
        if event.region == crate::public::PUBLIC_REGION {
            // ECR Public sends no EventBridge events.
            return;
        }
        match self.queue_event(&event).await {
            Ok(0) => {}
            Ok(_) => self.events.wake(),
            Err(e) => {
                self.events.note_queue_failure();
                tracing::error!(event = %event.id, detail_type = %event.detail_type, error = %e, "queueing an event for webhooks");
            }
        }
    }
}
