//! PostgreSQL: webhooks and their delivery history (the statements are shared with SQLite,
//! `berth_store::sql::webhooks`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::webhooks as sql;
use berth_store::{DeliveryRow, Millis, QueuedJob, StoreError, WebhookRow, WebhookStore};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl WebhookStore for PostgresMetadataStore {
    async fn put_webhook(&self, row: &WebhookRow) -> Result<(), StoreError> {
        self.timed("put_webhook", sql::put_webhook(&self.pool, row)).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError> {
        self.timed("webhook", sql::webhook(&self.pool, id)).await
    }

    async fn webhooks(&self, account: &str) -> Result<Vec<WebhookRow>, StoreError> {
        self.timed("webhooks", sql::webhooks(&self.pool, account)).await
    }

    async fn delete_webhook(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        self.timed("delete_webhook", sql::delete_webhook(&self.pool, account, id)).await
    }

    async fn queue_deliveries(&self, jobs: &[QueuedJob], now: Millis) -> Result<(), StoreError> {
        self.timed("queue_deliveries", sql::queue_deliveries(&self.pool, jobs, now)).await
    }

    async fn record_delivery(&self, row: &DeliveryRow, keep: u32) -> Result<bool, StoreError> {
        self.timed("record_delivery", sql::record_delivery(&self.pool, row, keep)).await
    }

    async fn deliveries(&self, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRow>, StoreError> {
        self.timed("deliveries", sql::deliveries(&self.pool, webhook_id, limit)).await
    }
}
