//! ECR Public: each account's public registry (alias, display name) and public repositories'
//! catalog data. The repositories themselves are rows of `RepositoryStore` in the account's
//! public registry scope.

use async_trait::async_trait;

use super::{Millis, RepoKey};
use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRegistryRow {
    pub account: String,
    pub alias: String,
    pub display_name: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicAliasOutcome {
    /// The row was written (created, or its alias set).
    Written,
    /// The account already had a public registry; nothing changed (creating only).
    Exists,
    /// Another account's registry holds the alias; nothing changed.
    AliasTaken,
}

/// A public repository's catalog data: the service's JSON document and the logo's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryCatalogRow {
    pub catalog: String,
    pub logo: Option<Vec<u8>>,
    pub updated_at: Millis,
}

/// One public repository found by [`PublicStore::search_public_repositories`]: the gallery's
/// search result, across accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRepositoryHit {
    pub key: RepoKey,
    /// The registry alias of the repository's account.
    pub alias: String,
    pub created_at: Millis,
    /// The catalog JSON document, when the repository has catalog data.
    pub catalog: Option<String>,
    pub has_logo: bool,
}

#[async_trait]
pub trait PublicStore: Send + Sync {
    async fn public_registry(&self, account: &str) -> Result<Option<PublicRegistryRow>, StoreError>;

    async fn public_registry_by_alias(&self, alias: &str) -> Result<Option<PublicRegistryRow>, StoreError>;

    /// Creates the account's public registry unless it has one (`Exists`) or another account
    /// holds the alias (`AliasTaken`), in one transaction.
    async fn create_public_registry(&self, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError>;

    /// Sets the account's alias (creating its registry with `row`'s other members if it has
    /// none) unless another account holds it.
    async fn set_public_alias(&self, row: &PublicRegistryRow) -> Result<PublicAliasOutcome, StoreError>;

    /// False when the account has no public registry.
    async fn set_public_display_name(&self, account: &str, display_name: &str) -> Result<bool, StoreError>;

    async fn repository_catalog(&self, key: &RepoKey) -> Result<Option<RepositoryCatalogRow>, StoreError>;

    /// Replaces the repository's catalog data; false when the repository does not exist.
    async fn put_repository_catalog(&self, key: &RepoKey, row: &RepositoryCatalogRow) -> Result<bool, StoreError>;

    /// Public repositories of every account (the `region` scope given, with a registry
    /// alias) whose name, alias or catalog description contains `needle` (already lower-cased;
    /// compared with ASCII-lower-cased text; "" matches all), in (alias, name) order after
    /// `after`, at most `limit`.
    async fn search_public_repositories(
        &self,
        region: &str,
        needle: &str,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<PublicRepositoryHit>, StoreError>;
}
