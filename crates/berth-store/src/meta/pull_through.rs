//! Pull-through cache rules (ECR's Create/Describe/Update/DeletePullThroughCacheRule) and when
//! each cached tag was last checked against its upstream.

use async_trait::async_trait;

use super::{Millis, RepoKey};
use crate::StoreError;

/// A rule: repositories named `<prefix>/…` (or any, for `ROOT`) are caches of `upstream_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullThroughRuleRow {
    /// `ROOT` or a repository-name prefix without its trailing `/`.
    pub prefix: String,
    pub upstream_url: String,
    /// ECR's `UpstreamRegistry` value (`docker-hub`, `ecr`, ...), or berth's `oci` for any other.
    pub upstream_registry: String,
    /// `ROOT` or the upstream repository prefix the cache prefix maps to.
    pub upstream_prefix: String,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRuleOutcome {
    Created,
    /// A rule with this prefix exists; nothing changed.
    Exists,
    /// The registry has `limit` rules already; nothing changed.
    LimitReached,
}

#[async_trait]
pub trait PullThroughStore: Send + Sync {
    /// Adds a rule unless its prefix exists or the registry holds `limit` (one transaction).
    async fn create_pull_through_rule(
        &self,
        account: &str,
        region: &str,
        row: &PullThroughRuleRow,
        limit: u32,
    ) -> Result<CreateRuleOutcome, StoreError>;

    /// Every rule of the registry, by prefix.
    async fn pull_through_rules(&self, account: &str, region: &str) -> Result<Vec<PullThroughRuleRow>, StoreError>;

    /// Writes the rule's credential, role and `updated_at`; false when no rule has its prefix.
    async fn update_pull_through_rule(&self, account: &str, region: &str, row: &PullThroughRuleRow) -> Result<bool, StoreError>;

    /// The deleted rule, or `None` when there was none.
    async fn delete_pull_through_rule(&self, account: &str, region: &str, prefix: &str) -> Result<Option<PullThroughRuleRow>, StoreError>;

    /// When the cached tag was last found current upstream (`None`: never).
    async fn pull_through_tag_checked(&self, key: &RepoKey, tag: &str) -> Result<Option<Millis>, StoreError>;

    async fn set_pull_through_tag_checked(&self, key: &RepoKey, tag: &str, at: Millis) -> Result<(), StoreError>;
}
