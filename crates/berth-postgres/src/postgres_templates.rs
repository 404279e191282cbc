//! Repository creation templates. Every statement is shared with SQLite
//! (`berth_store::sql::templates`).

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::sql::{repos, templates as sql};
use berth_store::StoreError;

use crate::postgres::PostgresMetadataStore;

#[async_trait]
impl TemplateStore for PostgresMetadataStore {
    async fn create_template(
        &self,
        account: &str,
        region: &str,
        row: &TemplateRow,
        limit: u32,
    ) -> Result<CreateTemplateOutcome, StoreError> {
        self.timed("create_template", sql::create_template(&self.pool, account, region, row, limit)).await
    }

    async fn update_template(&self, account: &str, region: &str, row: &TemplateRow) -> Result<bool, StoreError> {
        self.timed("update_template", sql::update_template(&self.pool, account, region, row)).await
    }

    async fn delete_template(&self, account: &str, region: &str, prefix: &str) -> Result<Option<TemplateRow>, StoreError> {
        self.timed("delete_template", sql::delete_template(&self.pool, account, region, prefix)).await
    }

    async fn templates_with_prefixes(&self, account: &str, region: &str, prefixes: &[String]) -> Result<Vec<TemplateRow>, StoreError> {
        self.timed("templates_with_prefixes", sql::templates_with_prefixes(&self.pool, account, region, prefixes)).await
    }

    async fn list_templates(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<TemplateRow>, StoreError> {
        self.timed("list_templates", sql::list_templates(&self.pool, account, region, after, limit)).await
    }

    async fn create_repository_with_policies(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        policies: InitialPolicies<'_>,
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        self.timed(
            "create_repository_with_policies",
            repos::create_repository_with_policies(&self.pool, key, settings, tags, policies, now),
        )
        .await
    }
}
