//! SQLite: account settings and pull-time update exclusions (the statements are shared:
//! `crate::sql::settings`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::settings as sql;
use crate::StoreError;

#[async_trait]
impl SettingsStore for SqliteMetadataStore {
    async fn account_settings(&self, account: &str, region: &str) -> Result<Vec<(String, String)>, StoreError> {
        sql::account_settings(&self.reader, account, region).await
    }

    async fn put_account_setting(&self, account: &str, region: &str, name: &str, value: &str) -> Result<(), StoreError> {
        sql::put_account_setting(&self.writer, account, region, name, value).await
    }

    async fn pull_time_exclusions(&self, account: &str, region: &str) -> Result<Vec<PullTimeExclusionRow>, StoreError> {
        sql::pull_time_exclusions(&self.reader, account, region).await
    }

    async fn register_pull_time_exclusion(
        &self,
        account: &str,
        region: &str,
        row: &PullTimeExclusionRow,
        limit: u32,
    ) -> Result<RegisterExclusionOutcome, StoreError> {
        sql::register_pull_time_exclusion(&self.writer, account, region, row, limit).await
    }

    async fn deregister_pull_time_exclusion(&self, account: &str, region: &str, principal_arn: &str) -> Result<bool, StoreError> {
        sql::deregister_pull_time_exclusion(&self.writer, account, region, principal_arn).await
    }
}
