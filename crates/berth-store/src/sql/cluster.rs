//! Leases: a background job that must run once across the cluster takes a named row. The
//! cluster-wide locks are PostgreSQL's own (advisory locks, in berth-postgres).

use sqlx::Pool;

use super::repos::acquire;
use super::{stmt, Backend, Conn};
use crate::error::DbContext;
use crate::meta::Millis;
use crate::StoreError;

/// One statement: insert, or take over only an expired lease or our own. On PostgreSQL the
/// conflicting row is locked and the WHERE re-checked on its newest version, so of two nodes
/// exactly one wins.
pub async fn try_lease<DB: Backend>(pool: &Pool<DB>, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
    let mut conn = acquire(pool).await?;
    let taken = conn
        .exec(
            stmt(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $4) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leases.holder = excluded.holder OR leases.until < $3",
            )
            .bind(name)
            .bind(holder)
            .bind(now)
            .bind(until),
        )
        .await
        .ctx("taking a lease")?;
    Ok(taken == 1)
}

pub async fn release_lease<DB: Backend>(pool: &Pool<DB>, name: &str, holder: &str) -> Result<(), StoreError> {
    let mut conn = acquire(pool).await?;
    conn.exec(stmt("DELETE FROM leases WHERE name = $1 AND holder = $2").bind(name).bind(holder)).await.ctx("releasing a lease")?;
    Ok(())
}
