//! PostgreSQL: ECR Public registries and repository catalog data (the statements are shared
//! with SQLite, `berth_store::sql::public`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::public as sql;
use berth_store::{PublicAliasOutcome, PublicRegistryRow, PublicRepositoryHit, PublicStore, RepoKey, RepositoryCatalogRow, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl PublicStore for PostgresMetadataStore {
    async fn public_registry(&self, account: &str) -> Result<Option<PublicRegistryRow>, StoreError> {
        self.timed("public_registry", sql::public_registry(&self.pool, account)).await
    }

    async fn public_registry_by_alias(&self, alias: &str) -> Result<Option<PublicRegistryRow>, StoreError> {
        self.timed("public_registry_by_alias", sql::public_registry_by_alias(&self.pool, alias)).await
    }

    async fn create_public_registry(&self, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError> {
        self.timed("create_public_registry", sql::create_public_registry(&self.pool, row)).await
    }

    async fn set_public_alias(&self, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError> {
        self.timed("set_public_alias", sql::set_public_alias(&self.pool, row)).await
    }

    async fn set_public_display_name(&self, account: &str, display_name: &str) -> Result<bool, StoreError> {
        self.timed("set_public_display_name", sql::set_public_display_name(&self.pool, account, display_name)).await
    }

    async fn repository_catalog(&self, key: &RepoKey) -> Result<Option<RepositoryCatalogRow>, StoreError> {
        self.timed("repository_catalog", sql::repository_catalog(&self.pool, key)).await
    }

    async fn put_repository_catalog(&self, key: &RepoKey, row: &RepositoryCatalogRow) -> Result<bool, StoreError> {
        self.timed("put_repository_catalog", sql::put_repository_catalog(&self.pool, key, row)).await
    }

    async fn search_public_repositories(
        &self,
        region: &str,
        needle: &str,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<PublicRepositoryHit>, StoreError> {
        self.timed("search_public_repositories", sql::search_public_repositories(&self.pool, region, needle, after, limit)).await
    }
}
