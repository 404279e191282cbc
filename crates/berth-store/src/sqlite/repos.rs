//! SQLite: Repositories, their resource tags and policies, and registry policies.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl RepositoryStore for SqliteMetadataStore {
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = ? AND region = ? AND name = ?"))
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name)
            .fetch_optional(&self.reader)
            .await
            .ctx("reading repository")?;
        row.as_ref().map(repository_row).transpose()
    }

    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        let mut tx = self.writer.begin().await.ctx("creating repository")?;
        let inserted = sqlx::query(
            "INSERT INTO repositories (account_id, region, name, created_at, tag_mutability, tag_mutability_exclusions, scan_on_push, encryption_type, kms_key) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .bind(now)
        .bind(&settings.tag_mutability)
        .bind(&settings.tag_mutability_exclusions)
        .bind(settings.scan_on_push as i64)
        .bind(&settings.encryption_type)
        .bind(&settings.kms_key)
        .execute(&mut *tx)
        .await
        .ctx("inserting repository")?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        let id = inserted.last_insert_rowid();
        upsert_resource_tags(&mut tx, id, tags).await?;
        let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .ctx("reading created repository")?;
        tx.commit().await.ctx("committing repository")?;
        repository_row(&row).map(Some)
    }

    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REPO_COLS} FROM repositories WHERE account_id = ? AND region = ? AND name > ? ORDER BY name LIMIT ?"
        ))
        .bind(account)
        .bind(region)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .ctx("listing repositories")?;
        rows.iter().map(repository_row).collect()
    }

    async fn update_repository_settings(&self, key: &RepoKey, s: &RepositorySettings) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE repositories SET tag_mutability = ?, tag_mutability_exclusions = ?, scan_on_push = ?, encryption_type = ?, kms_key = ? \
             WHERE account_id = ? AND region = ? AND name = ?",
        )
        .bind(&s.tag_mutability)
        .bind(&s.tag_mutability_exclusions)
        .bind(s.scan_on_push as i64)
        .bind(&s.encryption_type)
        .bind(&s.kms_key)
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .execute(&self.writer)
        .await
        .ctx("updating repository")?;
        Ok(r.rows_affected() > 0)
    }

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE repositories SET policy = ? WHERE account_id = ? AND region = ? AND name = ?")
            .bind(policy)
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name)
            .execute(&self.writer)
            .await
            .ctx("setting repository policy")?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
        let mut tx = self.writer.begin().await.ctx("deleting repository")?;
        let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = ? AND region = ? AND name = ?"))
            .bind(&key.account)
            .bind(&key.region)
            .bind(&key.name)
            .fetch_optional(&mut *tx)
            .await
            .ctx("reading repository")?;
        let Some(row) = row.as_ref().map(repository_row).transpose()? else { return Ok(DeleteRepositoryOutcome::NotFound) };
        if !force {
            let images: Option<i64> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = ? LIMIT 1")
                .bind(row.id)
                .fetch_optional(&mut *tx)
                .await
                .ctx("counting images")?;
            if images.is_some() {
                return Ok(DeleteRepositoryOutcome::NotEmpty);
            }
        }
        // Children first: tags and references name manifests, manifests name the repository.
        for sql in [
            "DELETE FROM tags WHERE repository_id = ?",
            "DELETE FROM manifest_references WHERE repository_id = ?",
            "DELETE FROM manifests WHERE repository_id = ?",
            "DELETE FROM repository_blobs WHERE repository_id = ?",
            "DELETE FROM uploads WHERE repository_id = ?",
            "DELETE FROM resource_tags WHERE repository_id = ?",
            "DELETE FROM repositories WHERE id = ?",
        ] {
            sqlx::query(sql).bind(row.id).execute(&mut *tx).await.ctx("deleting repository contents")?;
        }
        tx.commit().await.ctx("committing repository delete")?;
        Ok(DeleteRepositoryOutcome::Deleted(Box::new(row)))
    }

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.ctx("tagging repository")?;
        let Some(id) = repo_id_in(&mut tx, key).await? else { return Ok(false) };
        upsert_resource_tags(&mut tx, id, tags).await?;
        tx.commit().await.ctx("committing tags")?;
        Ok(true)
    }

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await.ctx("untagging repository")?;
        let Some(id) = repo_id_in(&mut tx, key).await? else { return Ok(false) };
        for k in keys {
            sqlx::query("DELETE FROM resource_tags WHERE repository_id = ? AND tag_key = ?")
                .bind(id)
                .bind(k)
                .execute(&mut *tx)
                .await
                .ctx("untagging repository")?;
        }
        tx.commit().await.ctx("committing untag")?;
        Ok(true)
    }

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
        let Some(id) = self.repo_id(key).await? else { return Ok(Vec::new()) };
        let rows = sqlx::query("SELECT tag_key, tag_value FROM resource_tags WHERE repository_id = ? ORDER BY tag_key")
            .bind(id)
            .fetch_all(&self.reader)
            .await
            .ctx("listing resource tags")?;
        rows.iter().map(|r| Ok((r.try_get(0).ctx("reading tag")?, r.try_get(1).ctx("reading tag")?))).collect()
    }

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT document FROM registry_policies WHERE account_id = ? AND region = ?")
            .bind(account)
            .bind(region)
            .fetch_optional(&self.reader)
            .await
            .ctx("reading registry policy")
    }

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
        let r = match policy {
            Some(p) => sqlx::query(
                "INSERT INTO registry_policies (account_id, region, document) VALUES (?, ?, ?) ON CONFLICT (account_id, region) DO UPDATE SET document = excluded.document",
            )
            .bind(account)
            .bind(region)
            .bind(p),
            None => sqlx::query("DELETE FROM registry_policies WHERE account_id = ? AND region = ?").bind(account).bind(region),
        }
        .execute(&self.writer)
        .await
        .ctx("writing registry policy")?;
        Ok(r.rows_affected() > 0)
    }
}
