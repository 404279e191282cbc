//! The durable job outbox: work that must happen after a commit (a scan after a push; next,
//! replication, webhooks, audit) is a row, so it survives a restart and any node can take it.
//!
//! A job is claimed with a lease (`holder` until `lease_until`): a node that dies holding one
//! leaves it to whoever claims after the lease ends, and a node that restarts gives its own
//! claims back at once (`requeue_own`) without touching jobs another live node holds. Finished
//! jobs are deleted; jobs given up on stay, `failed`, until the same (kind, key) is enqueued again.

use async_trait::async_trait;

use crate::{Millis, StoreError};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobStatus {
    /// Waiting for `run_after` and a claim.
    Pending,
    /// Claimed: `holder` works on it until `lease_until`.
    Running,
    /// Given up on (`fail` without a retry time); kept for inspection.
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 3] = [JobStatus::Pending, JobStatus::Running, JobStatus::Failed];

    /// The stored (and metric label) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    /// Unique per kind: enqueueing the same (kind, key) again while the job waits or runs adds nothing.
    pub key: String,
    /// JSON, read by the job's handler.
    pub payload: String,
    pub status: JobStatus,
    pub run_after: Millis,
    /// How many times it has been claimed.
    pub attempts: i64,
    pub holder: Option<String>,
    pub lease_until: Option<Millis>,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Adds a pending job due at `run_after`. Idempotent by (kind, key): while a job of that key
    /// is pending or running nothing changes (false); a failed one is reset to pending with the
    /// new payload, its attempts at zero (true), as is a new one (true).
    async fn enqueue_job(&self, kind: &str, key: &str, payload: &str, run_after: Millis) -> Result<bool, StoreError>;
    /// Takes up to `limit` jobs of these kinds that are due (`run_after <= now`) and pending, or
    /// running under a lease that ended before `now`, for `holder` until `lease_until`, in one
    /// transaction: two holders claiming at once never get the same job. Counts an attempt.
    async fn claim_jobs(
        &self,
        kinds: &[&str],
        holder: &str,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<JobRow>, StoreError>;
    /// Deletes the finished job; false if `holder` no longer holds it (its lease ended and
    /// another holder took it).
    async fn complete_job(&self, id: i64, holder: &str) -> Result<bool, StoreError>;
    /// Records the error; with `retry_at` the job is pending again from then, without it the
    /// job is given up on (failed). False if `holder` no longer holds it.
    async fn fail_job(&self, id: i64, holder: &str, error: &str, retry_at: Option<Millis>) -> Result<bool, StoreError>;
    /// At start-up: `holder`'s running jobs (left by its previous process) are pending again,
    /// due at once. Returns how many.
    async fn requeue_own_jobs(&self, holder: &str) -> Result<u64, StoreError>;
    /// Jobs of that status (any, if None), oldest first, at most `limit`.
    async fn list_jobs(&self, status: Option<JobStatus>, limit: u32) -> Result<Vec<JobRow>, StoreError>;
    /// How many jobs there are per (kind, status), for metrics.
    async fn count_jobs(&self) -> Result<Vec<(String, JobStatus, u64)>, StoreError>;
}

/// The statements both SQL backends run as they are (`$n` placeholders; SQLite reads them as
/// named parameters, bound in order of first use). The claim differs: PostgreSQL skips rows
/// another claim has locked, SQLite's single writer needs no lock.
#[doc(hidden)]
pub mod sql {
    pub const JOB_COLS: &str = "id, kind, key, payload, status, run_after, attempts, holder, lease_until, last_error";
    pub const ENQUEUE: &str = "INSERT INTO jobs (kind, key, payload, status, run_after) VALUES ($1, $2, $3, 'pending', $4) \
         ON CONFLICT (kind, key) DO UPDATE SET payload = excluded.payload, status = 'pending', run_after = excluded.run_after, \
         attempts = 0, holder = NULL, lease_until = NULL, last_error = NULL WHERE jobs.status = 'failed'";
    pub const COMPLETE: &str = "DELETE FROM jobs WHERE id = $1 AND holder = $2 AND status = 'running'";
    pub const REQUEUE_OWN: &str =
        "UPDATE jobs SET status = 'pending', holder = NULL, lease_until = NULL WHERE holder = $1 AND status = 'running'";
    pub const COUNT: &str = "SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status ORDER BY kind, status";
}

/// Decodes a `sql::JOB_COLS` row of either backend.
#[doc(hidden)]
pub fn job_from_row<'r, R>(r: &'r R) -> Result<JobRow, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::error::DbContext;
    let c = "reading job";
    let status: String = r.try_get("status").ctx(c)?;
    Ok(JobRow {
        id: r.try_get("id").ctx(c)?,
        kind: r.try_get("kind").ctx(c)?,
        key: r.try_get("key").ctx(c)?,
        payload: r.try_get("payload").ctx(c)?,
        // An unknown status (a newer berth's) reads as failed: never claimed, still listed.
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        run_after: r.try_get("run_after").ctx(c)?,
        attempts: r.try_get("attempts").ctx(c)?,
        holder: r.try_get("holder").ctx(c)?,
        lease_until: r.try_get("lease_until").ctx(c)?,
        last_error: r.try_get("last_error").ctx(c)?,
    })
}

/// Decodes `sql::COUNT` rows of either backend.
#[doc(hidden)]
pub fn job_counts_from_rows<'r, R>(rows: &'r [R]) -> Result<Vec<(String, JobStatus, u64)>, StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::error::DbContext;
    let c = "counting jobs";
    let mut out = Vec::new();
    for r in rows {
        let status: String = r.try_get("status").ctx(c)?;
        let n: i64 = r.try_get("n").ctx(c)?;
        out.push((r.try_get("kind").ctx(c)?, JobStatus::parse(&status).unwrap_or(JobStatus::Failed), n.max(0) as u64));
    }
    Ok(out)
}
