//! Repository creation templates (ECR's CreateRepositoryCreationTemplate), and creating a
//! repository with everything a template gives it in one transaction.

use async_trait::async_trait;

use super::{EncryptionType, Millis, RepoKey, RepositoryRow, RepositorySettings, TagMutability};
use crate::StoreError;

/// One template of a registry, as the service validated it. Strings are as ECR spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    /// A repository-name prefix or `ROOT`; the key within the registry.
    pub prefix: String,
    pub description: Option<String>,
    pub encryption_type: EncryptionType,
    /// The key as the template names it (resolved when a repository is created from it).
    pub kms_key: Option<String>,
    /// JSON array of ECR `Tag`s (`{"Key","Value"}`), written by the service.
    pub resource_tags: String,
    pub tag_mutability: TagMutability,
    /// JSON array of `{filterType, filter}`.
    pub tag_mutability_exclusions: Option<String>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    /// ECR's `RCTAppliedFor` values (REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH).
    pub applied_for: Vec<String>,
    pub custom_role_arn: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What `create_template` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateTemplateOutcome {
    Created,
    /// A template with this prefix exists (unchanged).
    Exists,
    /// The registry already holds `limit` templates.
    LimitReached,
}

/// The policies a new repository starts with.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitialPolicies<'a> {
    pub repository_policy: Option<&'a str>,
    pub lifecycle_policy: Option<&'a str>,
}

#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Inserts a template unless its prefix exists or the registry holds `limit` already.
    async fn create_template(
        &self,
        account: &str,
        region: &str,
        row: &TemplateRow,
        limit: u32,
    ) -> Result<CreateTemplateOutcome, StoreError>;

    /// Replaces the template with `row.prefix` (keeping its `created_at`); false if none.
    async fn update_template(&self, account: &str, region: &str, row: &TemplateRow) -> Result<bool, StoreError>;

    /// Deletes the template, returning what it was.
    async fn delete_template(&self, account: &str, region: &str, prefix: &str) -> Result<Option<TemplateRow>, StoreError>;

    /// The templates among `prefixes` that exist, in prefix (byte) order.
    async fn templates_with_prefixes(&self, account: &str, region: &str, prefixes: &[String]) -> Result<Vec<TemplateRow>, StoreError>;

    /// A registry's templates in prefix (byte) order strictly after `after`, at most `limit`.
    async fn list_templates(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<TemplateRow>, StoreError>;

    /// `create_repository`, with the repository and lifecycle policies set in the same
    /// transaction (so nobody sees the repository without them); None if it already exists.
    async fn create_repository_with_policies(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        policies: InitialPolicies<'_>,
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError>;
}
