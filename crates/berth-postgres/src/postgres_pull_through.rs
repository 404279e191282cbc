//! PostgreSQL: pull-through cache rules and tag checks (the statements are shared with SQLite,
//! `berth_store::sql::pull_through`), each call within the query deadline.

use async_trait::async_trait;
use berth_store::sql::pull_through as sql;
use berth_store::{CreateRuleOutcome, Millis, PullThroughRuleRow, PullThroughStore, RepoKey, StoreError};

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl PullThroughStore for PostgresMetadataStore {
    async fn create_pull_through_rule(
        &self,
        account: &str,
        region: &str,
        row: &PullThroughRuleRow,
        limit: u32,
    ) -> Result<CreateRuleOutcome, StoreError> {
        self.timed("create_pull_through_rule", sql::create_rule(&self.pool, account, region, row, limit)).await
    }

    async fn pull_through_rules(&self, account: &str, region: &str) -> Result<Vec<PullThroughRuleRow>, StoreError> {
        self.timed("pull_through_rules", sql::rules(&self.pool, account, region)).await
    }

    async fn update_pull_through_rule(&self, account: &str, region: &str, row: &PullThroughRuleRow) -> Result<bool, StoreError> {
        self.timed("update_pull_through_rule", sql::update_rule(&self.pool, account, region, row)).await
    }

    async fn delete_pull_through_rule(&self, account: &str, region: &str, prefix: &str) -> Result<Option<PullThroughRuleRow>, StoreError> {
        self.timed("delete_pull_through_rule", sql::delete_rule(&self.pool, account, region, prefix)).await
    }

    async fn pull_through_tag_checked(&self, key: &RepoKey, tag: &str) -> Result<Option<Millis>, StoreError> {
        self.timed("pull_through_tag_checked", sql::tag_checked(&self.pool, key, tag)).await
    }

    async fn set_pull_through_tag_checked(&self, key: &RepoKey, tag: &str, at: Millis) -> Result<(), StoreError> {
        self.timed("set_pull_through_tag_checked", sql::set_tag_checked(&self.pool, key, tag, at)).await
    }
}
