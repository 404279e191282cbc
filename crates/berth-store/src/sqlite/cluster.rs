//! SQLite: Leases (the locks are in-process: one process uses an SQLite store).

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ClusterStore for SqliteMetadataStore {
    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        // One statement: insert, or take over only an expired lease or our own.
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = ?2, until = ?4 WHERE leases.holder = ?2 OR leases.until < ?3",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .execute(&self.writer)
        .await
        .ctx("taking a lease")?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.writer)
            .await
            .ctx("releasing a lease")?;
        Ok(())
    }
}
