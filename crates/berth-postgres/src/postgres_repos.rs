//! Repositories, their resource tags and policies, and registry policies. Every statement
//! is shared with SQLite (`berth_store::sql::repos`); the row locks they take here are
//! written there.

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::sql::repos as sql;
use berth_store::StoreError;

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl RepositoryStore for PostgresMetadataStore {
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
        self.timed("get_repository", sql::get_repository(&self.pool, key)).await
    }

    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        self.timed("create_repository", sql::create_repository(&self.pool, key, settings, tags, now)).await
    }

    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        self.timed("list_repositories", sql::list_repositories(&self.pool, account, region, after, limit)).await
    }

    async fn update_repository_settings(&self, key: &RepoKey, settings: &RepositorySettings) -> Result<bool, StoreError> {
        self.timed("update_repository_settings", sql::update_repository_settings(&self.pool, key, settings)).await
    }

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_repository_policy", sql::set_repository_policy(&self.pool, key, policy)).await
    }

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
        self.timed("delete_repository", sql::delete_repository(&self.pool, key, force)).await
    }

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
        self.timed("put_resource_tags", sql::put_resource_tags(&self.pool, key, tags)).await
    }

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
        self.timed("remove_resource_tags", sql::remove_resource_tags(&self.pool, key, keys)).await
    }

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
        self.timed("list_resource_tags", sql::list_resource_tags(&self.pool, key)).await
    }

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        self.timed("get_registry_policy", sql::get_registry_policy(&self.pool, account, region)).await
    }

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_registry_policy", sql::set_registry_policy(&self.pool, account, region, policy)).await
    }
}
