//! SQLite: Secrets Manager secrets (the statements are shared: `crate::sql::secrets`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::secrets as sql;
use crate::StoreError;

#[async_trait]
impl SecretStore for SqliteMetadataStore {
    async fn create_secret(&self, row: &SecretRow) -> Result<bool, StoreError> {
        sql::create_secret(&self.writer, row).await
    }

    async fn secret_by_name(&self, account: &str, region: &str, name: &str) -> Result<Option<SecretRow>, StoreError> {
        sql::secret_by_name(&self.reader, account, region, name).await
    }

    async fn secret_by_arn(&self, arn: &str) -> Result<Option<SecretRow>, StoreError> {
        sql::secret_by_arn(&self.reader, arn).await
    }

    async fn update_secret(&self, row: &SecretRow) -> Result<bool, StoreError> {
        sql::update_secret(&self.writer, row).await
    }

    async fn delete_secret(&self, arn: &str, revision: i64) -> Result<bool, StoreError> {
        sql::delete_secret(&self.writer, arn, revision).await
    }

    async fn list_secrets(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<SecretRow>, StoreError> {
        sql::list_secrets(&self.reader, account, region, after, limit).await
    }
}
