//! SQLite: ECR Public registries and repository catalog data (the statements are shared:
//! `crate::sql::public`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::public as sql;
use crate::StoreError;

#[async_trait]
impl PublicStore for SqliteMetadataStore {
    async fn public_registry(&self, account: &str) -> Result<Option<PublicRegistryRow>, StoreError> {
        sql::public_registry(&self.reader, account).await
    }

    async fn public_registry_by_alias(&self, alias: &str) -> Result<Option<PublicRegistryRow>, StoreError> {
        sql::public_registry_by_alias(&self.reader, alias).await
    }

    async fn create_public_registry(&self, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError> {
        sql::create_public_registry(&self.writer, row).await
    }

    async fn set_public_alias(&self, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError> {
        sql::set_public_alias(&self.writer, row).await
    }

    async fn set_public_display_name(&self, account: &str, display_name: &str) -> Result<bool, StoreError> {
        sql::set_public_display_name(&self.writer, account, display_name).await
    }

    async fn repository_catalog(&self, key: &RepoKey) -> Result<Option<RepositoryCatalogRow>, StoreError> {
        sql::repository_catalog(&self.reader, key).await
    }

    async fn put_repository_catalog(&self, key: &RepoKey, row: &RepositoryCatalogRow) -> Result<bool, StoreError> {
        sql::put_repository_catalog(&self.writer, key, row).await
    }

    async fn search_public_repositories(
        &self,
        region: &str,
        needle: &str,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<PublicRepositoryHit>, StoreError> {
        sql::search_public_repositories(&self.reader, region, needle, after, limit).await
    }
}
