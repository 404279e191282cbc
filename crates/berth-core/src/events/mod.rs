//! Events: what happened to images, in Amazon EventBridge's shape for ECR (`source` "aws.ecr",
//! ECR's detail-types and detail fields), delivered to the webhooks an account configured.
//!
//! ```text
//!  push / delete / scan / lifecycle expiry / replication ──► Registry::emit (after the change
//!    committed): the account's webhooks that want the detail-type → one `webhook_delivery`
//!    outbox job per webhook (one transaction) ──► the request goes on
//!  webhook_worker ×N (supervised): claim (lease 60 s) → POST the event, signed → 2xx: done;
//!    anything else: retried with exponential backoff (1 s doubling, ≤ 1 h) for 24 h, then FAILED
//! ```
//!
//! Delivery is at least once: the event id is the idempotency key a receiver de-duplicates on
//! (`X-Berth-Event-Id`). Requests only ever queue; a slow or dead receiver holds up workers,
//! never pushes. Events are queued right after the change commits, not in its transaction:
//! a crash between the two loses that event (the change stands).

mod delivery;
mod webhooks;

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

/// Every detail-type berth emits (what a webhook may ask for).
pub const DETAIL_TYPES: [&str; 4] = [IMAGE_ACTION, IMAGE_SCAN, LIFECYCLE_ACTION, REPLICATION_ACTION];

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

    /// "ECR Image Action": a push (one event per tag it moved, or one without a tag) or a
    /// delete (one per identifier deleted).
    pub(crate) async fn emit_image_action(&self, repo: &Repo, digest: &Digest, action: &str, tags: &[String]) {
        let detail = |tag: Option<&String>| {
            let mut d = json!({ "result": "SUCCESS", "repository-name": repo.name.as_str(), "image-digest": digest.to_string(), "action-type": action });
            if let Some(t) = tag {
                d["image-tag"] = json!(t);
            }
            d
        };
        let events: Vec<Event> = match tags {
            [] => vec![self.event(repo, IMAGE_ACTION, detail(None))],
            tags => tags.iter().map(|t| self.event(repo, IMAGE_ACTION, detail(Some(t)))).collect(),
        };
        for e in events {
            self.emit(e).await;
        }
    }

    /// DELETE events of a BatchDeleteImage: one per identifier deleted.
    pub(crate) async fn emit_deletes(&self, repo: &Repo, deleted: &[crate::images::ImageId]) {
        for id in deleted {
            if let Some(digest) = id.digest.as_deref().and_then(|d| d.parse::<Digest>().ok()) {
                self.emit_image_action(repo, &digest, "DELETE", id.tag.as_slice()).await;
            }
        }
    }

    /// The DELETE event of a `/v2/` manifest delete; `tagged` is the image a deleted tag named.
    pub(crate) async fn emit_deleted(&self, repo: &Repo, reference: &crate::Reference, tagged: Option<Digest>) {
        match (reference, tagged) {
            (crate::Reference::Digest(d), _) => self.emit_image_action(repo, d, "DELETE", &[]).await,
            (crate::Reference::Tag(t), Some(d)) => self.emit_image_action(repo, &d, "DELETE", &[t.as_str().to_string()]).await,
            (crate::Reference::Tag(_), None) => {}
        }
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

    /// "ECR Lifecycle Policy Action" for an image a rule expired or archived.
    pub(crate) async fn emit_lifecycle_action(&self, repo: &Repo, action: &crate::lifecycle::PlannedAction) {
        let detail = json!({
            "result": "SUCCESS",
            "action-type": action.action,
            "repository-name": repo.name.as_str(),
            "image-digest": action.digest,
            "image-tags": action.tags,
            "rule-priority": action.rule_priority,
        });
        self.emit(self.event(repo, LIFECYCLE_ACTION, detail)).await;
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
