//! Repositories, their resource tags and policies, and registry policies.

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::StoreError;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::db::{repo_id, repo_id_locked, DbContext};
use crate::postgres::PostgresMetadataStore;

const REPO_COLS: &str =
    "id, account_id, region, name, created_at, tag_mutability, tag_mutability_exclusions, scan_on_push, encryption_type, kms_key, policy";

fn repository_row(r: &PgRow) -> Result<RepositoryRow, StoreError> {
    let c = "reading repository";
    Ok(RepositoryRow {
        id: r.try_get("id").ctx(c)?,
        key: crate::db::repo_key(r, c)?,
        created_at: r.try_get("created_at").ctx(c)?,
        settings: RepositorySettings {
            tag_mutability: r.try_get("tag_mutability").ctx(c)?,
            tag_mutability_exclusions: r.try_get("tag_mutability_exclusions").ctx(c)?,
            scan_on_push: r.try_get("scan_on_push").ctx(c)?,
            encryption_type: r.try_get("encryption_type").ctx(c)?,
            kms_key: r.try_get("kms_key").ctx(c)?,
        },
        policy: r.try_get("policy").ctx(c)?,
    })
}

async fn upsert_resource_tags(conn: &mut PgConnection, repository_id: i64, tags: &[(String, String)]) -> Result<(), StoreError> {
    for (k, v) in tags {
        sqlx::query(
            "INSERT INTO resource_tags (repository_id, tag_key, tag_value) VALUES ($1, $2, $3) \
             ON CONFLICT (repository_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
        )
        .bind(repository_id)
        .bind(k)
        .bind(v)
        .execute(&mut *conn)
        .await
        .ctx("tagging repository")?;
    }
    Ok(())
}

pub(crate) async fn get_repository(pool: &PgPool, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
    let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3"))
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .fetch_optional(pool)
        .await
        .ctx("reading repository")?;
    row.as_ref().map(repository_row).transpose()
}

pub(crate) async fn create_repository(
    pool: &PgPool,
    key: &RepoKey,
    settings: &RepositorySettings,
    tags: &[(String, String)],
    now: Millis,
) -> Result<Option<RepositoryRow>, StoreError> {
    let mut tx = pool.begin().await.ctx("creating repository")?;
    // ON CONFLICT DO NOTHING waits for a concurrent insert of the same name to settle, so of
    // two nodes creating one repository exactly one gets the row.
    let row = sqlx::query(&format!(
        "INSERT INTO repositories (account_id, region, name, created_at, tag_mutability, tag_mutability_exclusions, scan_on_push, encryption_type, kms_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING {REPO_COLS}"
    ))
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .bind(now)
    .bind(&settings.tag_mutability)
    .bind(&settings.tag_mutability_exclusions)
    .bind(settings.scan_on_push)
    .bind(&settings.encryption_type)
    .bind(&settings.kms_key)
    .fetch_optional(&mut *tx)
    .await
    .ctx("inserting repository")?;
    let Some(row) = row else { return Ok(None) };
    let row = repository_row(&row)?;
    upsert_resource_tags(&mut tx, row.id, tags).await?;
    tx.commit().await.ctx("committing repository")?;
    Ok(Some(row))
}

pub(crate) async fn list_repositories(
    pool: &PgPool,
    account: &str,
    region: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<RepositoryRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND region = $2 AND name > $3 ORDER BY name LIMIT $4"
    ))
    .bind(account)
    .bind(region)
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .ctx("listing repositories")?;
    rows.iter().map(repository_row).collect()
}

pub(crate) async fn update_repository_settings(pool: &PgPool, key: &RepoKey, s: &RepositorySettings) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "UPDATE repositories SET tag_mutability = $1, tag_mutability_exclusions = $2, scan_on_push = $3, encryption_type = $4, kms_key = $5 \
         WHERE account_id = $6 AND region = $7 AND name = $8",
    )
    .bind(&s.tag_mutability)
    .bind(&s.tag_mutability_exclusions)
    .bind(s.scan_on_push)
    .bind(&s.encryption_type)
    .bind(&s.kms_key)
    .bind(&key.account)
    .bind(&key.region)
    .bind(&key.name)
    .execute(pool)
    .await
    .ctx("updating repository")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn set_repository_policy(pool: &PgPool, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE repositories SET policy = $1 WHERE account_id = $2 AND region = $3 AND name = $4")
        .bind(policy)
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .execute(pool)
        .await
        .ctx("setting repository policy")?;
    Ok(r.rows_affected() > 0)
}

pub(crate) async fn delete_repository(pool: &PgPool, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("deleting repository")?;
    // FOR UPDATE waits for every transaction adding rows under the repository (they hold a key
    // share on it), so the emptiness check below sees their manifests.
    let row = sqlx::query(&format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3 FOR UPDATE"))
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .fetch_optional(&mut *tx)
        .await
        .ctx("reading repository")?;
    let Some(row) = row.as_ref().map(repository_row).transpose()? else { return Ok(DeleteRepositoryOutcome::NotFound) };
    if !force {
        let images: Option<i32> = sqlx::query_scalar("SELECT 1 FROM manifests WHERE repository_id = $1 LIMIT 1")
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
        "DELETE FROM tags WHERE repository_id = $1",
        "DELETE FROM manifest_references WHERE repository_id = $1",
        "DELETE FROM manifests WHERE repository_id = $1",
        "DELETE FROM repository_blobs WHERE repository_id = $1",
        "DELETE FROM uploads WHERE repository_id = $1",
        "DELETE FROM resource_tags WHERE repository_id = $1",
        "DELETE FROM repositories WHERE id = $1",
    ] {
        sqlx::query(sql).bind(row.id).execute(&mut *tx).await.ctx("deleting repository contents")?;
    }
    tx.commit().await.ctx("committing repository delete")?;
    Ok(DeleteRepositoryOutcome::Deleted(Box::new(row)))
}

pub(crate) async fn put_resource_tags(pool: &PgPool, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("tagging repository")?;
    let Some(id) = repo_id_locked(&mut tx, key).await? else { return Ok(false) };
    upsert_resource_tags(&mut tx, id, tags).await?;
    tx.commit().await.ctx("committing tags")?;
    Ok(true)
}

pub(crate) async fn remove_resource_tags(pool: &PgPool, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("untagging repository")?;
    let Some(id) = repo_id_locked(&mut tx, key).await? else { return Ok(false) };
    sqlx::query("DELETE FROM resource_tags WHERE repository_id = $1 AND tag_key = ANY($2)")
        .bind(id)
        .bind(keys)
        .execute(&mut *tx)
        .await
        .ctx("untagging repository")?;
    tx.commit().await.ctx("committing untag")?;
    Ok(true)
}

pub(crate) async fn list_resource_tags(pool: &PgPool, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
    let mut conn = pool.acquire().await.ctx("acquiring connection")?;
    let Some(id) = repo_id(&mut conn, key).await? else { return Ok(Vec::new()) };
    let rows = sqlx::query("SELECT tag_key, tag_value FROM resource_tags WHERE repository_id = $1 ORDER BY tag_key")
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .ctx("listing resource tags")?;
    rows.iter().map(|r| Ok((r.try_get(0).ctx("reading tag")?, r.try_get(1).ctx("reading tag")?))).collect()
}

pub(crate) async fn get_registry_policy(pool: &PgPool, account: &str, region: &str) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT document FROM registry_policies WHERE account_id = $1 AND region = $2")
        .bind(account)
        .bind(region)
        .fetch_optional(pool)
        .await
        .ctx("reading registry policy")
}

pub(crate) async fn set_registry_policy(pool: &PgPool, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
    let r = match policy {
        Some(p) => sqlx::query(
            "INSERT INTO registry_policies (account_id, region, document) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, region) DO UPDATE SET document = excluded.document",
        )
        .bind(account)
        .bind(region)
        .bind(p),
        None => sqlx::query("DELETE FROM registry_policies WHERE account_id = $1 AND region = $2").bind(account).bind(region),
    }
    .execute(pool)
    .await
    .ctx("writing registry policy")?;
    Ok(r.rows_affected() > 0)
}

#[async_trait]
impl RepositoryStore for PostgresMetadataStore {
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
        self.timed("get_repository", get_repository(&self.pool, key)).await
    }

    async fn create_repository(
        &self,
        key: &RepoKey,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        now: Millis,
    ) -> Result<Option<RepositoryRow>, StoreError> {
        self.timed("create_repository", create_repository(&self.pool, key, settings, tags, now)).await
    }

    async fn list_repositories(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRow>, StoreError> {
        self.timed("list_repositories", list_repositories(&self.pool, account, region, after, limit)).await
    }

    async fn update_repository_settings(&self, key: &RepoKey, settings: &RepositorySettings) -> Result<bool, StoreError> {
        self.timed("update_repository_settings", update_repository_settings(&self.pool, key, settings)).await
    }

    async fn set_repository_policy(&self, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_repository_policy", set_repository_policy(&self.pool, key, policy)).await
    }

    async fn delete_repository(&self, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
        self.timed("delete_repository", delete_repository(&self.pool, key, force)).await
    }

    async fn put_resource_tags(&self, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
        self.timed("put_resource_tags", put_resource_tags(&self.pool, key, tags)).await
    }

    async fn remove_resource_tags(&self, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
        self.timed("remove_resource_tags", remove_resource_tags(&self.pool, key, keys)).await
    }

    async fn list_resource_tags(&self, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
        self.timed("list_resource_tags", list_resource_tags(&self.pool, key)).await
    }

    async fn get_registry_policy(&self, account: &str, region: &str) -> Result<Option<String>, StoreError> {
        self.timed("get_registry_policy", get_registry_policy(&self.pool, account, region)).await
    }

    async fn set_registry_policy(&self, account: &str, region: &str, policy: Option<&str>) -> Result<bool, StoreError> {
        self.timed("set_registry_policy", set_registry_policy(&self.pool, account, region, policy)).await
    }
}
