//! SQLite: pull-through cache rules and tag checks (the statements are shared:
//! `crate::sql::pull_through`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::pull_through as sql;
use crate::StoreError;

#[async_trait]
impl PullThroughStore for SqliteMetadataStore {
    async fn create_pull_through_rule(
        &self,
        account: &str,
        region: &str,
        row: &PullThroughRuleRow,
        limit: u32,
    ) -> Result<CreateRuleOutcome, StoreError> {
        sql::create_rule(&self.writer, account, region, row, limit).await
    }

    async fn pull_through_rules(&self, account: &str, region: &str) -> Result<Vec<PullThroughRuleRow>, StoreError> {
        sql::rules(&self.reader, account, region).await
    }

    async fn update_pull_through_rule(&self, account: &str, region: &str, row: &PullThroughRuleRow) -> Result<bool, StoreError> {
        sql::update_rule(&self.writer, account, region, row).await
    }

    async fn delete_pull_through_rule(&self, account: &str, region: &str, prefix: &str) -> Result<Option<PullThroughRuleRow>, StoreError> {
        sql::delete_rule(&self.writer, account, region, prefix).await
    }

    async fn pull_through_tag_checked(&self, key: &RepoKey, tag: &str) -> Result<Option<Millis>, StoreError> {
        sql::tag_checked(&self.reader, key, tag).await
    }

    async fn set_pull_through_tag_checked(&self, key: &RepoKey, tag: &str, at: Millis) -> Result<(), StoreError> {
        sql::set_tag_checked(&self.writer, key, tag, at).await
    }
}
