//! Repositories, their resource tags and policies, and registry policies: every statement is
//! the same on both backends.

use sqlx::pool::PoolConnection;
use sqlx::{FromRow, Pool};

use super::{decode_all, decode_opt, stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

pub const REPO_COLS: &str =
    "id, account_id, region, name, created_at, tag_mutability, tag_mutability_exclusions, scan_on_push, encryption_type, kms_key, policy";

impl<'r, R: Columns> FromRow<'r, R> for RepositoryRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(RepositoryRow {
            id: r.int("id")?,
            key: r.repo_key()?,
            created_at: r.int("created_at")?,
            settings: RepositorySettings {
                tag_mutability: stored_setting(TagMutability::parse, &r.text("tag_mutability")?)?,
                tag_mutability_exclusions: r.opt_text("tag_mutability_exclusions")?,
                scan_on_push: r.flag("scan_on_push")?,
                encryption_type: stored_setting(EncryptionType::parse, &r.text("encryption_type")?)?,
                kms_key: r.opt_text("kms_key")?,
            },
            policy: r.opt_text("policy")?,
        })
    }
}

/// A connection for a read.
pub async fn acquire<DB: Backend>(pool: &Pool<DB>) -> Result<PoolConnection<DB>, StoreError> {
    pool.acquire().await.ctx("acquiring connection")
}

/// The repository's id.
pub async fn repo_id<C: Conn>(conn: &mut C, key: &RepoKey) -> Result<Option<i64>, StoreError> {
    let row = conn
        .opt(stmt("SELECT id FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3").bind_key(key))
        .await
        .ctx("looking up repository")?;
    row.map(|r| r.int("id").ctx("looking up repository")).transpose()
}

/// The repository's id inside a write transaction that adds rows under it: on PostgreSQL the
/// key-share lock makes a concurrent `delete_repository` (which locks the row FOR UPDATE)
/// either finish first (we then see no repository) or wait for us (it then sees what we wrote).
pub async fn repo_id_locked<C: Conn>(conn: &mut C, key: &RepoKey) -> Result<Option<i64>, StoreError> {
    let sql = format!("SELECT id FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3{}", C::FOR_KEY_SHARE);
    let row = conn.opt(stmt(sql).bind_key(key)).await.ctx("looking up repository")?;
    row.map(|r| r.int("id").ctx("looking up repository")).transpose()
}

async fn upsert_resource_tags<C: Conn>(conn: &mut C, repository_id: i64, tags: &[(String, String)]) -> Result<(), StoreError> {
    for (k, v) in tags {
        conn.exec(
            stmt(
                "INSERT INTO resource_tags (repository_id, tag_key, tag_value) VALUES ($1, $2, $3) \
                 ON CONFLICT (repository_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
            )
            .bind(repository_id)
            .bind(k)
            .bind(v),
        )
        .await
        .ctx("tagging repository")?;
    }
    Ok(())
}

pub async fn get_repository<DB: Backend>(pool: &Pool<DB>, key: &RepoKey) -> Result<Option<RepositoryRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3");
    let row = conn.opt(stmt(sql).bind_key(key)).await.ctx("reading repository")?;
    decode_opt(row, "reading repository")
}

pub async fn create_repository<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    settings: &RepositorySettings,
    tags: &[(String, String)],
    now: Millis,
) -> Result<Option<RepositoryRow>, StoreError> {
    create_repository_with_policies(pool, key, settings, tags, InitialPolicies::default(), now).await
}

/// `create_repository` with its first repository and lifecycle policies in the same insert.
pub async fn create_repository_with_policies<DB: Backend>(
    pool: &Pool<DB>,
    key: &RepoKey,
    settings: &RepositorySettings,
    tags: &[(String, String)],
    policies: InitialPolicies<'_>,
    now: Millis,
) -> Result<Option<RepositoryRow>, StoreError> {
    let mut tx = pool.begin().await.ctx("creating repository")?;
    // ON CONFLICT DO NOTHING waits (PostgreSQL) for a concurrent insert of the same name to
    // settle, so of two nodes creating one repository exactly one gets the row.
    let sql = format!(
        "INSERT INTO repositories (account_id, region, name, created_at, tag_mutability, tag_mutability_exclusions, scan_on_push, encryption_type, kms_key, \
         policy, lifecycle_policy, lifecycle_policy_updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING RETURNING {REPO_COLS}"
    );
    let row = tx
        .opt(
            stmt(sql)
                .bind_key(key)
                .bind(now)
                .bind(settings.tag_mutability.as_str())
                .bind(&settings.tag_mutability_exclusions)
                .bind(settings.scan_on_push)
                .bind(settings.encryption_type.as_str())
                .bind(&settings.kms_key)
                .bind(policies.repository_policy)
                .bind(policies.lifecycle_policy)
                .bind(policies.lifecycle_policy.map(|_| now)),
        )
        .await
        .ctx("inserting repository")?;
    let Some(row) = decode_opt::<RepositoryRow, _>(row, "reading created repository")? else { return Ok(None) };
    upsert_resource_tags(&mut *tx, row.id, tags).await?;
    tx.commit().await.ctx("committing repository")?;
    Ok(Some(row))
}

/// Repositories of a registry in name order strictly after `after`, at most `limit`.
pub async fn list_repositories<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<RepositoryRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND region = $2 AND name > $3 ORDER BY name LIMIT $4");
    let rows = conn
        .all(stmt(sql).bind(account).bind(region).bind(after.unwrap_or("")).bind(i64::from(limit)))
        .await
        .ctx("listing repositories")?;
    decode_all(&rows, "reading repository")
}

pub async fn update_repository_settings<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, s: &RepositorySettings) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let changed = conn
        .exec(
            stmt(
                "UPDATE repositories SET tag_mutability = $4, tag_mutability_exclusions = $5, scan_on_push = $6, encryption_type = $7, kms_key = $8 \
                 WHERE account_id = $1 AND region = $2 AND name = $3",
            )
            .bind_key(key)
            .bind(s.tag_mutability.as_str())
            .bind(&s.tag_mutability_exclusions)
            .bind(s.scan_on_push)
            .bind(s.encryption_type.as_str())
            .bind(&s.kms_key),
        )
        .await
        .ctx("updating repository")?;
    Ok(changed > 0)
}

pub async fn set_repository_policy<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, policy: Option<&str>) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let changed = conn
        .exec(stmt("UPDATE repositories SET policy = $4 WHERE account_id = $1 AND region = $2 AND name = $3").bind_key(key).bind(policy))
        .await
        .ctx("setting repository policy")?;
    Ok(changed > 0)
}

pub async fn delete_repository<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, force: bool) -> Result<DeleteRepositoryOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("deleting repository")?;
    // FOR UPDATE (PostgreSQL) waits for every transaction adding rows under the repository
    // (they hold a key share on it), so the emptiness check below sees their manifests.
    let sql = format!(
        "SELECT {REPO_COLS} FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3{}",
        <DB::Connection as Conn>::FOR_UPDATE
    );
    let row = tx.opt(stmt(sql).bind_key(key)).await.ctx("reading repository")?;
    let Some(row) = decode_opt::<RepositoryRow, _>(row, "reading repository")? else { return Ok(DeleteRepositoryOutcome::NotFound) };
    if !force {
        let images = tx.opt(stmt("SELECT 1 FROM manifests WHERE repository_id = $1 LIMIT 1").bind(row.id)).await.ctx("counting images")?;
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
        tx.exec(stmt(sql).bind(row.id)).await.ctx("deleting repository contents")?;
    }
    tx.commit().await.ctx("committing repository delete")?;
    Ok(DeleteRepositoryOutcome::Deleted(Box::new(row)))
}

pub async fn put_resource_tags<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, tags: &[(String, String)]) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("tagging repository")?;
    let Some(id) = repo_id_locked(&mut *tx, key).await? else { return Ok(false) };
    upsert_resource_tags(&mut *tx, id, tags).await?;
    tx.commit().await.ctx("committing tags")?;
    Ok(true)
}

pub async fn remove_resource_tags<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, keys: &[String]) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.ctx("untagging repository")?;
    let Some(id) = repo_id_locked(&mut *tx, key).await? else { return Ok(false) };
    for k in keys {
        tx.exec(stmt("DELETE FROM resource_tags WHERE repository_id = $1 AND tag_key = $2").bind(id).bind(k))
            .await
            .ctx("untagging repository")?;
    }
    tx.commit().await.ctx("committing untag")?;
    Ok(true)
}

pub async fn list_resource_tags<DB: Backend>(pool: &Pool<DB>, key: &RepoKey) -> Result<Vec<(String, String)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let Some(id) = repo_id(&mut *conn, key).await? else { return Ok(Vec::new()) };
    let rows = conn
        .all(stmt("SELECT tag_key, tag_value FROM resource_tags WHERE repository_id = $1 ORDER BY tag_key").bind(id))
        .await
        .ctx("listing resource tags")?;
    rows.iter().map(|r| Ok((r.text("tag_key")?, r.text("tag_value")?))).collect::<Result<_, sqlx::Error>>().ctx("reading tag")
}

pub async fn get_registry_policy<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str) -> Result<Option<String>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(stmt("SELECT document FROM registry_policies WHERE account_id = $1 AND region = $2").bind(account).bind(region))
        .await
        .ctx("reading registry policy")?;
    row.map(|r| r.text("document")).transpose().ctx("reading registry policy")
}

pub async fn set_registry_policy<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    policy: Option<&str>,
) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let s = match policy {
        Some(p) => stmt(
            "INSERT INTO registry_policies (account_id, region, document) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, region) DO UPDATE SET document = excluded.document",
        )
        .bind(account)
        .bind(region)
        .bind(p),
        None => stmt("DELETE FROM registry_policies WHERE account_id = $1 AND region = $2").bind(account).bind(region),
    };
    Ok(conn.exec(s).await.ctx("writing registry policy")? > 0)
}

/// A stored setting read back into its enum; a value no berth wrote is a decode error.
pub(crate) fn stored_setting<T>(parse: fn(&str) -> Option<T>, text: &str) -> Result<T, sqlx::Error> {
    parse(text).ok_or_else(|| sqlx::Error::Decode(format!("unknown stored repository setting {text:?}").into()))
}
