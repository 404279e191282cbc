//! SQLite: repositories, their resource tags and policies, and registry policies (the
//! statements are shared: `crate::sql::repos`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::repos as sql;
use crate::StoreError;

#[async_trait]
impl RepositoryStore for SqliteMetadataStore {
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
        sql::get_repository(&self.reader, key).await
    }

    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        sql::create_repository(&self.writer, key, settings, tags, now).await
    }

    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        sql::list_repositories(&self.reader, account, region, after, limit).await
    }

    async fn update_repository_settings(&self, key: &RepoKey, settings: &RepositorySettings) -> Result<bool, StoreError> {
        sql::update_repository_settings(&self.writer, key, settings).await
    }

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
        sql::set_repository_policy(&self.writer, key, policy).await
    }

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
        sql::delete_repository(&self.writer, key, force).await
    }

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
        sql::put_resource_tags(&self.writer, key, tags).await
    }

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
        sql::remove_resource_tags(&self.writer, key, keys).await
    }

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
        sql::list_resource_tags(&self.reader, key).await
    }

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        sql::get_registry_policy(&self.reader, account, region).await
    }

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
        sql::set_registry_policy(&self.writer, account, region, policy).await
    }
}
