//! SQLite rows for the job outbox. Claims need no row locks: the single writer connection
//! serializes them.

use async_trait::async_trait;

use crate::error::DbContext;
use crate::jobs::{job_counts_from_rows, job_from_row, sql, JobRow, JobStatus, JobStore};
use crate::{Millis, SqliteMetadataStore, StoreError};

#[async_trait]
impl JobStore for SqliteMetadataStore {
    async fn enqueue_job(&self, kind: &str, key: &str, payload: &str, run_after: Millis) -> Result<bool, StoreError> {
        let q = sqlx::query(sql::ENQUEUE).bind(kind).bind(key).bind(payload).bind(run_after);
        Ok(q.execute(&self.writer).await.ctx("enqueueing job")?.rows_affected() > 0)
    }

    async fn claim_jobs(
        &self,
        kinds: &[&str],
        holder: &str,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<JobRow>, StoreError> {
        if kinds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; kinds.len()].join(", ");
        // One statement, so one transaction on the one writer connection.
        let statement = format!(
            "UPDATE jobs SET status = 'running', holder = ?, lease_until = ?, attempts = attempts + 1 WHERE id IN (\
             SELECT id FROM jobs WHERE kind IN ({marks}) AND run_after <= ? \
             AND (status = 'pending' OR (status = 'running' AND lease_until < ?)) ORDER BY run_after, id LIMIT ?) \
             RETURNING {}",
            sql::JOB_COLS
        );
        let mut q = sqlx::query(&statement).bind(holder).bind(lease_until);
        for k in kinds {
            q = q.bind(*k);
        }
        let rows = q.bind(now).bind(now).bind(i64::from(limit)).fetch_all(&self.writer).await.ctx("claiming jobs")?;
        let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| (j.run_after, j.id));
        Ok(jobs)
    }

    async fn complete_job(&self, id: i64, holder: &str) -> Result<bool, StoreError> {
        let q = sqlx::query(sql::COMPLETE).bind(id).bind(holder);
        Ok(q.execute(&self.writer).await.ctx("completing job")?.rows_affected() > 0)
    }

    async fn fail_job(&self, id: i64, holder: &str, error: &str, retry_at: Option<Millis>) -> Result<bool, StoreError> {
        let q = sqlx::query(
            "UPDATE jobs SET status = CASE WHEN $1 IS NULL THEN 'failed' ELSE 'pending' END, run_after = COALESCE($1, run_after), \
             holder = NULL, lease_until = NULL, last_error = $2 WHERE id = $3 AND holder = $4 AND status = 'running'",
        )
        .bind(retry_at)
        .bind(error)
        .bind(id)
        .bind(holder);
        Ok(q.execute(&self.writer).await.ctx("recording job failure")?.rows_affected() > 0)
    }

    async fn requeue_own_jobs(&self, holder: &str) -> Result<u64, StoreError> {
        let q = sqlx::query(sql::REQUEUE_OWN).bind(holder);
        Ok(q.execute(&self.writer).await.ctx("requeueing own jobs")?.rows_affected())
    }

    async fn list_jobs(&self, status: Option<JobStatus>, limit: u32) -> Result<Vec<JobRow>, StoreError> {
        let statement = format!("SELECT {} FROM jobs WHERE $1 IS NULL OR status = $1 ORDER BY id LIMIT $2", sql::JOB_COLS);
        let q = sqlx::query(&statement).bind(status.map(JobStatus::as_str)).bind(i64::from(limit));
        q.fetch_all(&self.reader).await.ctx("listing jobs")?.iter().map(job_from_row).collect()
    }

    async fn count_jobs(&self) -> Result<Vec<(String, JobStatus, u64)>, StoreError> {
        job_counts_from_rows(&sqlx::query(sql::COUNT).fetch_all(&self.reader).await.ctx("counting jobs")?)
    }
}
