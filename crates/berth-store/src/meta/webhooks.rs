//! Webhooks: where an account's events go (URL, the detail-types it wants, its sealed signing
//! secret), and each webhook's recent delivery attempts. The deliveries themselves are jobs of
//! the outbox (`crate::jobs`, kind `webhook_delivery`).

use async_trait::async_trait;

use super::{Millis, QueuedJob};
use crate::StoreError;

/// One webhook of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub id: String,
    pub account: String,
    pub url: String,
    /// The detail-types it receives (JSON array of strings); empty: every one.
    pub detail_types: Vec<String>,
    /// The HMAC secret, sealed by the service; never stored in clear.
    pub sealed_secret: Vec<u8>,
    pub created_at: Millis,
    /// The latest failed attempt's error (a status code or a transport error), cleared by none:
    /// a delivery after it is seen in `last_success_at`.
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
    pub last_success_at: Option<Millis>,
}

/// One delivery attempt of an event to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub webhook_id: String,
    pub event_id: String,
    pub detail_type: String,
    /// 1 for the first try.
    pub attempt: i64,
    pub at: Millis,
    /// The receiver's HTTP status; None when no answer came (a timeout, a refused connection).
    pub status_code: Option<i64>,
    /// None: delivered (2xx).
    pub error: Option<String>,
    /// "delivered", "retrying" or "failed" (given up after the retry period).
    pub outcome: String,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds a webhook (ids are the service's, unique).
    async fn put_webhook(&self, row: &WebhookRow) -> Result<(), StoreError>;

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError>;

    /// The account's webhooks, oldest first.
    async fn webhooks(&self, account: &str) -> Result<Vec<WebhookRow>, StoreError>;

    /// Deletes the webhook and its history; false when the account has no such webhook.
    /// Deliveries still queued for it find it gone and end.
    async fn delete_webhook(&self, account: &str, id: &str) -> Result<bool, StoreError>;

    /// Adds the deliveries of one event to the outbox in one transaction (as
    /// `JobStore::enqueue_job`, due at `now`).
    async fn queue_deliveries(&self, jobs: &[QueuedJob], now: Millis) -> Result<(), StoreError>;

    /// Records an attempt, the webhook's last error or success, and keeps only its `keep`
    /// newest attempts, in one transaction. False when the webhook is gone (nothing recorded).
    async fn record_delivery(&self, row: &DeliveryRow, keep: u32) -> Result<bool, StoreError>;

    /// The webhook's attempts, newest first, at most `limit`.
    async fn deliveries(&self, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRow>, StoreError>;
}
