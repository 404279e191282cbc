//! PostgreSQL: KMS keys and aliases (the statements are shared with SQLite,
//! `berth_store::sql::keys`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::keys as sql;
use berth_store::{AliasRow, KeyRow, KeyStore, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl KeyStore for PostgresMetadataStore {
    async fn create_key(&self, row: &KeyRow) -> Result<bool, StoreError> {
        self.timed("create_key", sql::create_key(&self.pool, row)).await
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRow>, StoreError> {
        self.timed("get_key", sql::get_key(&self.pool, key_id)).await
    }

    async fn update_key(&self, row: &KeyRow) -> Result<bool, StoreError> {
        self.timed("update_key", sql::update_key(&self.pool, row)).await
    }

    async fn list_keys(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<KeyRow>, StoreError> {
        self.timed("list_keys", sql::list_keys(&self.pool, account, region, after, limit)).await
    }

    async fn put_alias(&self, account: &str, region: &str, alias: &AliasRow, replace: bool) -> Result<bool, StoreError> {
        self.timed("put_alias", sql::put_alias(&self.pool, account, region, alias, replace)).await
    }

    async fn delete_alias(&self, account: &str, region: &str, alias: &str) -> Result<bool, StoreError> {
        self.timed("delete_alias", sql::delete_alias(&self.pool, account, region, alias)).await
    }

    async fn get_alias(&self, account: &str, region: &str, alias: &str) -> Result<Option<AliasRow>, StoreError> {
        self.timed("get_alias", sql::get_alias(&self.pool, account, region, alias)).await
    }

    async fn list_aliases(&self, account: &str, region: &str) -> Result<Vec<AliasRow>, StoreError> {
        self.timed("list_aliases", sql::list_aliases(&self.pool, account, region)).await
    }
}
