//! Small helpers shared by the PostgreSQL store: error context, row decoding,
//! the transaction retry loop and the locked repository lookup.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use berth_store::{Digest, RepoKey, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

/// Wraps sqlx errors with what the store was doing (as berth-store's own, crate-private, helper).
// berth-store's context helper: it also turns "cannot reach the database" into
// StoreError::Unavailable (503 to clients) rather than an internal error.
pub(crate) use berth_store::error::DbContext;

/// Digests in the database were validated on the way in; one that does not parse means corruption.
pub(crate) fn parse_digest(s: &str) -> Result<Digest, StoreError> {
    Digest::from_str(s).map_err(|e| StoreError::Db { context: "corrupt digest in database", source: sqlx::Error::Decode(Box::new(e)) })
}

pub(crate) fn digest_col(row: &PgRow, col: &str) -> Result<Digest, StoreError> {
    let s: String = row.try_get(col).ctx("reading digest column")?;
    parse_digest(&s)
}

pub(crate) fn repo_key(row: &PgRow, context: &'static str) -> Result<RepoKey, StoreError> {
    Ok(RepoKey {
        account: row.try_get("account_id").ctx(context)?,
        region: row.try_get("region").ctx(context)?,
        name: row.try_get("name").ctx(context)?,
    })
}

/// The repository's id for a read.
pub(crate) async fn repo_id(conn: &mut PgConnection, key: &RepoKey) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT id FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3")
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .fetch_optional(conn)
        .await
        .ctx("looking up repository")
}

/// The repository's id inside a write transaction that adds rows under it: the key-share lock
/// makes a concurrent `delete_repository` (which locks the row FOR UPDATE) either finish first
/// (we then see no repository) or wait for us (it then sees what we wrote).
pub(crate) async fn repo_id_locked(conn: &mut PgConnection, key: &RepoKey) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT id FROM repositories WHERE account_id = $1 AND region = $2 AND name = $3 FOR KEY SHARE")
        .bind(&key.account)
        .bind(&key.region)
        .bind(&key.name)
        .fetch_optional(conn)
        .await
        .ctx("looking up repository")
}

pub(crate) type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

const ATTEMPTS: u32 = 5;

/// Deadlock (40P01) or serialization failure (40001): the transaction was rolled back whole and
/// running it again is safe.
fn is_transient(e: &StoreError) -> bool {
    match e {
        StoreError::Db { source: sqlx::Error::Database(db), .. } => matches!(db.code().as_deref(), Some("40P01") | Some("40001")),
        _ => false,
    }
}

/// Runs one transaction, again when PostgreSQL aborted it for a deadlock. Each attempt is a whole
/// transaction, so a retry never sees half of an earlier one.
pub(crate) async fn retrying<'a, T, F>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> TxFuture<'a, T> + Send,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS && is_transient(&e) => {
                tracing::debug!(error = %e, attempt = tries, "retrying a metadata transaction");
                // A little jitter-free backoff: the other party of a deadlock already went on.
                tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
                tries += 1;
            }
            result => return result,
        }
    }
}
