//! Pull-through cache rules and tag check times: every statement is the same on both backends.

use sqlx::{FromRow, Pool};

use super::repos::acquire;
use super::{decode_all, decode_opt, stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

const RULE_COLS: &str = "prefix, upstream_url, upstream_registry, upstream_prefix, credential_arn, custom_role_arn, created_at, updated_at";

impl<'r, R: Columns> FromRow<'r, R> for PullThroughRuleRow {
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(PullThroughRuleRow {
            prefix: r.text("prefix")?,
            upstream_url: r.text("upstream_url")?,
            upstream_registry: r.text("upstream_registry")?,
            upstream_prefix: r.text("upstream_prefix")?,
            credential_arn: r.opt_text("credential_arn")?,
            custom_role_arn: r.opt_text("custom_role_arn")?,
            created_at: r.int("created_at")?,
            updated_at: r.int("updated_at")?,
        })
    }
}

/// The table lock makes the count, the duplicate check and the insert one step across nodes.
pub async fn create_rule<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    row: &PullThroughRuleRow,
    limit: u32,
) -> Result<CreateRuleOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("creating a pull-through cache rule")?;
    tx.lock_table("pull_through_rules").await.ctx("locking pull-through cache rules")?;
    let prefixes = tx
        .all(stmt("SELECT prefix FROM pull_through_rules WHERE account_id = $1 AND region = $2").bind(account).bind(region))
        .await
        .ctx("reading pull-through cache rules")?;
    let prefixes: Vec<String> =
        prefixes.iter().map(|r| r.text("prefix")).collect::<Result<_, sqlx::Error>>().ctx("reading pull-through cache rules")?;
    if prefixes.contains(&row.prefix) {
        return Ok(CreateRuleOutcome::Exists);
    }
    if prefixes.len() >= limit as usize {
        return Ok(CreateRuleOutcome::LimitReached);
    }
    tx.exec(
        stmt(format!("INSERT INTO pull_through_rules (account_id, region, {RULE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(account)
            .bind(region)
            .bind(&row.prefix)
            .bind(&row.upstream_url)
            .bind(&row.upstream_registry)
            .bind(&row.upstream_prefix)
            .bind(&row.credential_arn)
            .bind(&row.custom_role_arn)
            .bind(row.created_at)
            .bind(row.updated_at),
    )
    .await
    .ctx("creating a pull-through cache rule")?;
    tx.commit().await.ctx("committing a pull-through cache rule")?;
    Ok(CreateRuleOutcome::Created)
}

pub async fn rules<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str) -> Result<Vec<PullThroughRuleRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt(format!("SELECT {RULE_COLS} FROM pull_through_rules WHERE account_id = $1 AND region = $2 ORDER BY prefix"))
                .bind(account)
                .bind(region),
        )
        .await
        .ctx("reading pull-through cache rules")?;
    decode_all(&rows, "reading pull-through cache rules")
}

pub async fn update_rule<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str, row: &PullThroughRuleRow) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(
            stmt(
                "UPDATE pull_through_rules SET credential_arn = $4, custom_role_arn = $5, updated_at = $6 \
                 WHERE account_id = $1 AND region = $2 AND prefix = $3",
            )
            .bind(account)
            .bind(region)
            .bind(&row.prefix)
            .bind(&row.credential_arn)
            .bind(&row.custom_role_arn)
            .bind(row.updated_at),
        )
        .await
        .ctx("updating a pull-through cache rule")?;
    Ok(n > 0)
}

pub async fn delete_rule<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    prefix: &str,
) -> Result<Option<PullThroughRuleRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    let sql = format!("DELETE FROM pull_through_rules WHERE account_id = $1 AND region = $2 AND prefix = $3 RETURNING {RULE_COLS}");
    let row = conn.opt(stmt(sql).bind(account).bind(region).bind(prefix)).await.ctx("deleting a pull-through cache rule")?;
    decode_opt(row, "reading the deleted pull-through cache rule")
}

pub async fn tag_checked<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, tag: &str) -> Result<Option<Millis>, StoreError> {
    let mut conn = acquire(pool).await?;
    let row = conn
        .opt(
            stmt("SELECT checked_at FROM pull_through_tags WHERE account_id = $1 AND region = $2 AND repository = $3 AND tag = $4")
                .bind_key(key)
                .bind(tag),
        )
        .await
        .ctx("reading a pull-through tag check")?;
    row.map(|r| r.int("checked_at")).transpose().ctx("reading a pull-through tag check")
}

pub async fn set_tag_checked<DB: Backend>(pool: &Pool<DB>, key: &RepoKey, tag: &str, at: Millis) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt(
            "INSERT INTO pull_through_tags (account_id, region, repository, tag, checked_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account_id, region, repository, tag) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind_key(key)
        .bind(tag)
        .bind(at),
    )
    .await
    .ctx("recording a pull-through tag check")?;
    Ok(())
}
