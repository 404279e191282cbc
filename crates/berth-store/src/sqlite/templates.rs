//! SQLite: repository creation templates (the statements are shared: `crate::sql::templates`).

use async_trait::async_trait;

use super::SqliteMetadataStore;
use crate::meta::*;
use crate::sql::{repos, templates as sql};
use crate::StoreError;

#[async_trait]
impl TemplateStore for SqliteMetadataStore {
    async fn create_template(
        &self,
        account: &str,
        region: &str,
        row: &TemplateRow,
        limit: u32,
    ) -> Result<CreateTemplateOutcome, StoreError> {
        sql::create_template(&self.writer, account, region, row, limit).await
    }

    async fn update_template(&self, account: &str, region: &str, row: &TemplateRow) -> Result<bool, StoreError> {
        sql::update_template(&self.writer, account, region, row).await
    }

    async fn delete_template(&self, account: &str, region: &str, prefix: &str) -> Result<Option<TemplateRow>, StoreError> {
        sql::delete_template(&self.writer, account, region, prefix).await
    }

    async fn templates_with_prefixes(&self, account: &str, region: &str, prefixes: &[String]) -> Result<Vec<TemplateRow>, StoreError> {
        sql::templates_with_prefixes(&self.reader, account, region, prefixes).await
    }

    async fn list_templates(&self, account: &str, region: &str, after: Option<&str>, limit: u32) -> Result<Vec<TemplateRow>, StoreError> {
        sql::list_templates(&self.reader, account, region, after, limit).await
    }

    async fn create_repository_with_policies(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        policies: InitialPolicies<'_>,
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        repos::create_repository_with_policies(&self.writer, key, settings, tags, policies, now).await
    }
}
