//! What several nodes coordinate through: leases (the statements are shared with SQLite,
//! `berth_store::sql::cluster`) and advisory locks on blobs and upload sessions.

use std::sync::Mutex;

use async_trait::async_trait;
use berth_store::meta::*;
use berth_store::sql::cluster as sql;
use berth_store::{Digest, StoreError};
use sqlx::{PgPool, Postgres, Transaction};

use crate::db::DbContext;
use crate::postgres::PostgresMetadataStore;

/// An open transaction holding a transaction-scoped advisory lock. Dropping it rolls the
/// transaction back, which releases the lock (sqlx sends the ROLLBACK when the connection goes
/// back to the pool); a node that dies loses its session and so the lock too. The mutex only
/// makes the guard `Sync`, as `BlobLockGuard` requires; nobody locks it.
struct BlobLock {
    _tx: Mutex<Transaction<'static, Postgres>>,
}

/// The lock key: the first 8 bytes of the digest. Different digests sharing them only serialize
/// their commits, which is harmless.
fn blob_lock_key(digest: &Digest) -> i64 {
    let prefix = digest.hex().get(..16).unwrap_or(digest.hex());
    u64::from_str_radix(prefix, 16).unwrap_or(0) as i64
}

/// The two-int4 advisory key space does not overlap the one-int8 space blob locks use; the first
/// int4 names the kind of lock.
pub(crate) async fn lock_upload(locks: &PgPool, id: &str, committing: Option<&Digest>) -> Result<BlobLockGuard, StoreError> {
    const UPLOAD_LOCKS: i32 = 1;
    let key = id.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193)) as i32; // FNV-1a
    let mut tx = locks.begin().await.ctx("locking upload session")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(UPLOAD_LOCKS)
        .bind(key)
        .execute(&mut *tx)
        .await
        .ctx("locking upload session")?;
    if let Some(digest) = committing {
        // Always upload first, then blob: the only order anyone takes both in.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(blob_lock_key(digest)).execute(&mut *tx).await.ctx("locking blob")?;
    }
    Ok(Box::new(BlobLock { _tx: Mutex::new(tx) }))
}

pub(crate) async fn lock_blob(locks: &PgPool, digest: &Digest) -> Result<BlobLockGuard, StoreError> {
    let mut tx = locks.begin().await.ctx("locking blob")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(blob_lock_key(digest)).execute(&mut *tx).await.ctx("locking blob")?;
    Ok(Box::new(BlobLock { _tx: Mutex::new(tx) }))
}

#[async_trait]
impl ClusterStore for PostgresMetadataStore {
    fn is_shared(&self) -> bool {
        true
    }

    async fn try_lease(&self, name: &str, holder: &str, now: Millis, until: Millis) -> Result<bool, StoreError> {
        self.timed("try_lease", sql::try_lease(&self.pool, name, holder, now, until)).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.timed("release_lease", sql::release_lease(&self.pool, name, holder)).await
    }

    async fn lock_blob(&self, digest: &Digest) -> Result<Option<BlobLockGuard>, StoreError> {
        self.timed_lock("lock_blob", lock_blob(&self.locks, digest)).await.map(Some)
    }

    async fn lock_upload(&self, id: &str, committing: Option<&Digest>) -> Result<Option<BlobLockGuard>, StoreError> {
        self.timed_lock("lock_upload", lock_upload(&self.locks, id, committing)).await.map(Some)
    }

    async fn watch_changes(&self, sink: &dyn ChangeSink) -> Result<bool, StoreError> {
        crate::postgres_notify::watch(&self.pool, sink).await.map(|()| true)
    }
}
