//! SQLite: KMS keys and aliases (shared statements: `crate::sql::keys`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::keys::{AliasRow, KeyRow, KeyStore};
use crate::sql::keys as sql;
use crate::StoreError;

#[async_trait]
impl KeyStore for SqliteMetadataStore {
    async fn create_key(&self, row: &KeyRow) -> Result<bool, StoreError> {
        sql::create_key(&self.writer, row).await
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRow>, StoreError> {
        sql::get_key(&self.reader, key_id).await
    }

    async fn update_key(&self, row: &KeyRow) -> Result<bool, StoreError> {
        sql::update_key(&self.writer, row).await
    }

    async fn list_keys(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<KeyRow>, StoreError> {
        sql::list_keys(&self.reader, account, region, after, limit).await
    }

    async fn put_alias(&self, account: &str, region: &str, alias: &AliasRow, replace: bool) -> Result<bool, StoreError> {
        sql::put_alias(&self.writer, account, region, alias, replace).await
    }

    async fn delete_alias(&self, account: &str, region: &str, alias: &str) -> Result<bool, StoreError> {
        sql::delete_alias(&self.writer, account, region, alias).await
    }

    async fn get_alias(&self, account: &str, region: &str, alias: &str) -> Result<Option<AliasRow>, StoreError> {
        sql::get_alias(&self.reader, account, region, alias).await
    }

    async fn list_aliases(&self, account: &str, region: &str) -> Result<Vec<AliasRow>, StoreError> {
        sql::list_aliases(&self.reader, account, region).await
    }
}
