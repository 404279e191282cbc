//! PostgreSQL: account settings and pull-time update exclusions (the statements are shared
//! with SQLite, `berth_store::sql::settings`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::settings as sql;
use berth_store::{PullTimeExclusionRow, RegisterExclusionOutcome, SettingsStore, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl SettingsStore for PostgresMetadataStore {
    async fn account_settings(&self, account: &str, region: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.timed("account_settings", sql::account_settings(&self.pool, account, region)).await
    }

    async fn put_account_setting(&self, account: &str, region: &str, name: &str, value: &str) -> Result<(), StoreError> {
        self.timed("put_account_setting", sql::put_account_setting(&self.pool, account, region, name, value)).await
    }

    async fn pull_time_exclusions(&self, account: &str, region: &str) -> Result<Vec<PullTimeExclusionRow>, StoreError> {
        self.timed("pull_time_exclusions", sql::pull_time_exclusions(&self.pool, account, region)).await
    }

    async fn register_pull_time_exclusion(
        &self,
        account: &str,
        region: &str,
        row: &PullTimeExclusionRow,
        limit: u32,
    ) -> Result<RegisterExclusionOutcome, StoreError> {
        self.timed("register_pull_time_exclusion", sql::register_pull_time_exclusion(&self.pool, account, region, row, limit)).await
    }

    async fn deregister_pull_time_exclusion(&self, account: &str, region: &str, principal_arn: &str) -> Result<bool, StoreError> {
        self.timed("deregister_pull_time_exclusion", sql::deregister_pull_time_exclusion(&self.pool, account, region, principal_arn)).await
    }
}
