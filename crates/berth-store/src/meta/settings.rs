//! A registry's (account + region) ECR account settings and its pull-time update exclusions.

use async_trait::async_trait;

use super::Millis;
use crate::StoreError;

/// A principal whose pulls do not move `lastRecordedPullTime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullTimeExclusionRow {
    pub principal_arn: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterExclusionOutcome {
    Registered,
    /// The principal was already excluded; nothing changed.
    Exists,
    /// The registry already has `limit` exclusions; nothing changed.
    LimitReached,
}

#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Every setting ever put for the registry: (name, value), by name.
    async fn account_settings(&self, account: &str, region: &str) -> Result<Vec<(String, String)>, StoreError>;

    async fn put_account_setting(&self, account: &str, region: &str, name: &str, value: &str) -> Result<(), StoreError>;

    /// The registry's exclusions, by principal ARN.
    async fn pull_time_exclusions(&self, account: &str, region: &str) -> Result<Vec<PullTimeExclusionRow>, StoreError>;

    /// Adds an exclusion unless it exists or the registry holds `limit` already (checked in the
    /// same transaction, so racing nodes cannot pass the limit together).
    async fn register_pull_time_exclusion(
        &self,
        account: &str,
        region: &str,
        row: &PullTimeExclusionRow,
        limit: u32,
    ) -> Result<RegisterExclusionOutcome, StoreError>;

    /// False when the principal was not excluded.
    async fn deregister_pull_time_exclusion(&self, account: &str, region: &str, principal_arn: &str) -> Result<bool, StoreError>;
}
