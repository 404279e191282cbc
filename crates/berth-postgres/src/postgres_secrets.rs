//! PostgreSQL: Secrets Manager secrets (the statements are shared with SQLite,
//! `berth_store::sql::secrets`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::secrets as sql;
use berth_store::{SecretRow, SecretStore, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl SecretStore for PostgresMetadataStore {
    async fn create_secret(&self, row: &SecretRow) -> Result<bool, StoreError> {
        self.timed("create_secret", sql::create_secret(&self.pool, row)).await
    }

    async fn secret_by_name(&self, account: &str, region: &str, name: &str) -> Result<Option<SecretRow>, StoreError> {
        self.timed("secret_by_name", sql::secret_by_name(&self.pool, account, region, name)).await
    }

    async fn secret_by_arn(&self, arn: &str) -> Result<Option<SecretRow>, StoreError> {
        self.timed("secret_by_arn", sql::secret_by_arn(&self.pool, arn)).await
    }

    async fn update_secret(&self, row: &SecretRow) -> Result<bool, StoreError> {
        self.timed("update_secret", sql::update_secret(&self.pool, row)).await
    }

    async fn delete_secret(&self, arn: &str, revision: i64) -> Result<bool, StoreError> {
        self.timed("delete_secret", sql::delete_secret(&self.pool, arn, revision)).await
    }

    async fn list_secrets(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<SecretRow>, StoreError> {
        self.timed("list_secrets", sql::list_secrets(&self.pool, account, region, after, limit)).await
    }
}
