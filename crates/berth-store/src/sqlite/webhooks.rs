//! SQLite: webhooks and their delivery history (the statements are shared:
//! `crate::sql::webhooks`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::webhooks as sql;
use crate::StoreError;

#[async_trait]
impl WebhookStore for SqliteMetadataStore {
    async fn put_webhook(&self, row: &WebhookRow) -> Result<(), StoreError> {
        sql::put_webhook(&self.writer, row).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError> {
        sql::webhook(&self.reader, id).await
    }

    async fn webhooks(&self, account: &str) -> Result<Vec<WebhookRow>, StoreError> {
        sql::webhooks(&self.reader, account).await
    }

    async fn delete_webhook(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        sql::delete_webhook(&self.writer, account, id).await
    }

    async fn queue_deliveries(&self, jobs: &[QueuedJob], now: Millis) -> Result<(), StoreError> {
        sql::queue_deliveries(&self.writer, jobs, now).await
    }

    async fn record_delivery(&self, row: &DeliveryRow, keep: u32) -> Result<bool, StoreError> {
        sql::record_delivery(&self.writer, row, keep).await
    }

    async fn deliveries(&self, webhook_id: &str, limit: u32) -> Result<Vec<DeliveryRow>, StoreError> {
        sql::deliveries(&self.reader, webhook_id, limit).await
    }
}
