//! Secrets Manager secrets: every statement is the same on both backends.

use sqlx::{FromRow, Pool};

use super::repos::acquire;
use super::{decode_all, decode_opt, stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

const COLS: &str = "account_id, region, name, arn, doc, deletion_date, created_at, updated_at, revision";

impl<'r, R: Columns> FromRow<'r, R> for SecretRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(SecretRow {
            account: r.text("account_id")?,
            region: r.text("region")?,
            name: r.text("name")?,
            arn: r.text("arn")?,
            doc: r.text("doc")?,
            deletion_date: r.opt_int("deletion_date")?,
            created_at: r.int("created_at")?,
            updated_at: r.int("updated_at")?,
            revision: r.int("revision")?,
        })
    }
}

pub async fn create_secret<DB: Backend>(pool: &Pool<DB>, s: &SecretRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    // ON CONFLICT DO NOTHING: of two creates racing on one name, one inserts.
    let inserted = conn
        .exec(
            stmt(
                "INSERT INTO secrets (account_id, region, name, arn, doc, deletion_date, created_at, updated_at, revision) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0) ON CONFLICT DO NOTHING",
            )
            .bind(&s.account)
            .bind(&s.region)
            .bind(&s.name)
            .bind(&s.arn)
            .bind(&s.doc)
            .bind(s.deletion_date)
            .bind(s.created_at)
            .bind(s.updated_at),
        )
        .await
        .ctx("inserting secret")?;
    Ok(inserted > 0)
}

pub async fn secret_by_name<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    name: &str,
) -> Result<Option<SecretRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("SELECT {COLS} FROM secrets WHERE account_id = $1 AND region = $2 AND name = $3");
    let row = conn.opt(stmt(sql).bind(account).bind(region).bind(name)).await.ctx("reading secret")?;
    decode_opt(row, "reading secret")
}

pub async fn secret_by_arn<DB: Backend>(pool: &Pool<DB>, arn: &str) -> Result<Option<SecretRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("SELECT {COLS} FROM secrets WHERE arn = $1");
    let row = conn.opt(stmt(sql).bind(arn)).await.ctx("reading secret")?;
    decode_opt(row, "reading secret")
}

pub async fn update_secret<DB: Backend>(pool: &Pool<DB>, s: &SecretRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let changed = conn
        .exec(
            stmt(
                "UPDATE secrets SET doc = $1, deletion_date = $2, updated_at = $3, revision = revision + 1 \
                 WHERE arn = $4 AND revision = $5",
            )
            .bind(&s.doc)
            .bind(s.deletion_date)
            .bind(s.updated_at)
            .bind(&s.arn)
            .bind(s.revision),
        )
        .await
        .ctx("updating secret")?;
    Ok(changed > 0)
}

pub async fn delete_secret<DB: Backend>(pool: &Pool<DB>, arn: &str, revision: i64) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let gone =
        conn.exec(stmt("DELETE FROM secrets WHERE arn = $1 AND revision = $2").bind(arn).bind(revision)).await.ctx("deleting secret")?;
    Ok(gone > 0)
}

pub async fn list_secrets<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<SecretRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("SELECT {COLS} FROM secrets WHERE account_id = $1 AND region = $2 AND name > $3 ORDER BY name LIMIT $4");
    let rows =
        conn.all(stmt(sql).bind(account).bind(region).bind(after.unwrap_or("")).bind(i64::from(limit))).await.ctx("listing secrets")?;
    decode_all(&rows, "reading secret")
}
