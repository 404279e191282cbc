//! Account settings and pull-time update exclusions: every statement is the same on both
//! backends.

use sqlx::Pool;

use super::repos::acquire;
use super::{stmt, Backend, Columns, Conn};
use crate::error::DbContext;
use crate::meta::*;
use crate::StoreError;

pub async fn account_settings<DB: Backend>(pool: &Pool<DB>, account: &str, region: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut conn = acquire(pool).await?;
    let rows = conn
        .all(
            stmt("SELECT name, value FROM account_settings WHERE account_id = $1 AND region = $2 ORDER BY name").bind(account).bind(region),
        )
        .await
        .ctx("reading account settings")?;
    rows.iter().map(|r| Ok((r.text("name")?, r.text("value")?))).collect::<Result<_, sqlx::Error>>().ctx("reading account settings")
}

pub async fn put_account_setting<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    name: &str,
    value: &str,
) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(
        stmt(
            "INSERT INTO account_settings (account_id, region, name, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, region, name) DO UPDATE SET value = excluded.value",
        )
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(value),
    )
    .await
    .ctx("writing account setting")?;
    Ok(())
}

async fn read_exclusions<C: Conn>(conn: &mut C, account: &str, region: &str) -> Result<Vec<PullTimeExclusionRow>, StoreError> {
    let rows = conn
        .all(
            stmt(
                "SELECT principal_arn, created_at FROM pull_time_exclusions WHERE account_id = $1 AND region = $2 \
                 ORDER BY principal_arn",
            )
            .bind(account)
            .bind(region),
        )
        .await
        .ctx("reading pull time exclusions")?;
    rows.iter()
        .map(|r| Ok(PullTimeExclusionRow { principal_arn: r.text("principal_arn")?, created_at: r.int("created_at")? }))
        .collect::<Result<_, sqlx::Error>>()
        .ctx("reading pull time exclusions")
}

pub async fn pull_time_exclusions<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
) -> Result<Vec<PullTimeExclusionRow>, StoreError> {
    let mut conn = acquire(pool).await?;
    read_exclusions(&mut *conn, account, region).await
}

/// The table lock makes the count and the insert one step across nodes (the limit holds).
pub async fn register_pull_time_exclusion<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    row: &PullTimeExclusionRow,
    limit: u32,
) -> Result<RegisterExclusionOutcome, StoreError> {
    let mut tx = pool.begin().await.ctx("registering a pull time exclusion")?;
    tx.lock_table("pull_time_exclusions").await.ctx("locking pull time exclusions")?;
    let existing = read_exclusions(&mut *tx, account, region).await?;
    if existing.iter().any(|e| e.principal_arn == row.principal_arn) {
        return Ok(RegisterExclusionOutcome::Exists);
    }
    if existing.len() >= limit as usize {
        return Ok(RegisterExclusionOutcome::LimitReached);
    }
    tx.exec(
        stmt("INSERT INTO pull_time_exclusions (account_id, region, principal_arn, created_at) VALUES ($1, $2, $3, $4)")
            .bind(account)
            .bind(region)
            .bind(&row.principal_arn)
            .bind(row.created_at),
    )
    .await
    .ctx("registering a pull time exclusion")?;
    tx.commit().await.ctx("committing a pull time exclusion")?;
    Ok(RegisterExclusionOutcome::Registered)
}

pub async fn deregister_pull_time_exclusion<DB: Backend>(
    pool: &Pool<DB>,
    account: &str,
    region: &str,
    principal_arn: &str,
) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let n = conn
        .exec(
            stmt("DELETE FROM pull_time_exclusions WHERE account_id = $1 AND region = $2 AND principal_arn = $3")
                .bind(account)
                .bind(region)
                .bind(principal_arn),
        )
        .await
        .ctx("deregistering a pull time exclusion")?;
    Ok(n > 0)
}
