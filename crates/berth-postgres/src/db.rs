//! Small helpers shared by the PostgreSQL store: error context, row decoding,
//! the transaction retry loop and the locked repository lookup.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use berth_store::StoreError;

/// Wraps sqlx errors with what the store was doing (as berth-store's own, crate-private, helper).
// berth-store's context helper: it also turns "cannot reach the database" into
// StoreError::Unavailable (503 to clients) rather than an internal error.
pub(crate) use berth_store::error::DbContext;

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
