//! KMS keys and aliases (`crate::keys::KeyStore`): every statement is the same on both backends,
//! and so is the schema (v6 on both).

/// Schema v6, the same text on SQLite and PostgreSQL.
pub const SCHEMA_V6: &str = include_str!("../schema_v6_keys.sql");

use sqlx::Pool;

use super::repos::acquire;
use super::{stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::keys::{AliasRow, KeyRow};
use crate::StoreError;

fn key_row<R: Columns>(r: &R) -> Result<KeyRow, sqlx::Error> {
    Ok(KeyRow {
        key_id: r.text("key_id")?,
        account: r.text("account")?,
        region: r.text("region")?,
        doc: r.text("doc")?,
        revision: r.int("revision")?,
    })
}

fn alias_row<R: Columns>(r: &R) -> Result<AliasRow, sqlx::Error> {
    Ok(AliasRow { alias: r.text("alias")?, key_id: r.text("key_id")?, created: r.int("created")?, updated: r.int("updated")? })
}

pub async fn create_key<DB: Backend>(pool: &Pool<DB>, row: &KeyRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(
            stmt(
                "INSERT INTO kms_keys (key_id, account, region, doc, revision) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(&row.key_id)
            .bind(&row.account)
            .bind(&row.region)
            .bind(&row.doc)
            .bind(row.revision),
        )
        .await
        .ctx("creating a key")?;
    Ok(n == 1)
}

pub async fn get_key<DB: Backend>(pool: &Pool<DB>, key_id: &str) -> Result<Option<KeyRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(stmt("SELECT key_id, account, region, doc, revision FROM kms_keys WHERE key_id = $1").bind(key_id))
        .await
        .ctx("reading a key")?;
    row.as_ref().map(key_row).transpose().ctx("reading a key")
}

pub async fn update_key<DB: Backend>(pool: &Pool<DB>, row: &KeyRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(
            stmt("UPDATE kms_keys SET doc = $1, revision = revision + 1 WHERE key_id = $2 AND revision = $3")
                .bind(&row.doc)
                .bind(&row.key_id)
                .bind(row.revision),
        )
        .await
        .ctx("updating a key")?;
    Ok(n == 1)
}

pub async fn list_keys<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<KeyRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(
                "SELECT key_id, account, region, doc, revision FROM kms_keys \
                 WHERE account = $1 AND region = $2 AND key_id > $3 ORDER BY key_id LIMIT $4",
            )
            .bind(account)
            .bind(region)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit)),
        )
        .await
        .ctx("listing keys")?;
    rows.iter().map(key_row).collect::<Result<_, _>>().ctx("reading a key")
}

pub async fn put_alias<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    alias: &AliasRow,
    replace: bool,
) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let s = if replace {
        stmt("UPDATE kms_aliases SET key_id = $4, updated = $5 WHERE account = $1 AND region = $2 AND alias = $3")
            .bind(account)
            .bind(region)
            .bind(&alias.alias)
            .bind(&alias.key_id)
            .bind(alias.updated)
    } else {
        stmt(
            "INSERT INTO kms_aliases (account, region, alias, key_id, created, updated) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account, region, alias) DO NOTHING",
        )
        .bind(account)
        .bind(region)
        .bind(&alias.alias)
        .bind(&alias.key_id)
        .bind(alias.created)
        .bind(alias.updated)
    };
    let n = conn.exec(s).await.ctx("writing an alias")?;
    Ok(n == 1)
}

pub async fn delete_alias<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, alias: &str) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(stmt("DELETE FROM kms_aliases WHERE account = $1 AND region = $2 AND alias = $3").bind(account).bind(region).bind(alias))
        .await
        .ctx("deleting an alias")?;
    Ok(n == 1)
}

pub async fn get_alias<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, alias: &str) -> Result<Option<AliasRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt("SELECT alias, key_id, created, updated FROM kms_aliases WHERE account = $1 AND region = $2 AND alias = $3")
                .bind(account)
                .bind(region)
                .bind(alias),
        )
        .await
        .ctx("reading an alias")?;
    row.as_ref().map(alias_row).transpose().ctx("reading an alias")
}

pub async fn list_aliases<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str) -> Result<Vec<AliasRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt("SELECT alias, key_id, created, updated FROM kms_aliases WHERE account = $1 AND region = $2 ORDER BY alias")
                .bind(account)
                .bind(region),
        )
        .await
        .ctx("listing aliases")?;
    rows.iter().map(alias_row).collect::<Result<_, _>>().ctx("reading an alias")
}
