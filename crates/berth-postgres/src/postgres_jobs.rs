//! The job outbox on PostgreSQL. A claim locks the due rows it takes with SKIP LOCKED, so two
//! nodes claiming at once each take different jobs instead of waiting for one another.

use async_trait::async_trait;
use berth_store::jobs::{job_counts_from_rows, job_from_row, sql};
use berth_store::{JobRow, JobStatus, JobStore, Millis, StoreError};
use sqlx::PgPool;

use crate::db::DbContext;
use crate::PostgresMetadataStore;

async fn enqueue(pool: &PgPool, kind: &str, key: &str, payload: &str, run_after: Millis) -> Result<bool, StoreError> {
    let q = sqlx::query(sql::ENQUEUE).bind(kind).bind(key).bind(payload).bind(run_after);
    Ok(q.execute(pool).await.ctx("enqueueing job")?.rows_affected() > 0)
}

async fn claim(
    pool: &PgPool,
    kinds: &[&str],
    holder: &str,
    now: Millis,
    lease_until: Millis,
    limit: u32,
) -> Result<Vec<JobRow>, StoreError> {
    if kinds.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    let statement = format!(
        "UPDATE jobs SET status = 'running', holder = $1, lease_until = $2, attempts = attempts + 1 WHERE id IN (\
         SELECT id FROM jobs WHERE kind = ANY($3) AND run_after <= $4 \
         AND (status = 'pending' OR (status = 'running' AND lease_until < $4)) ORDER BY run_after, id LIMIT $5 \
         FOR UPDATE SKIP LOCKED) RETURNING {}",
        sql::JOB_COLS
    );
    let q = sqlx::query(&statement).bind(holder).bind(lease_until).bind(&kinds).bind(now).bind(i64::from(limit));
    let rows = q.fetch_all(pool).await.ctx("claiming jobs")?;
    let mut jobs = rows.iter().map(job_from_row).collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by_key(|j| (j.run_after, j.id));
    Ok(jobs)
}

async fn fail(pool: &PgPool, id: i64, holder: &str, error: &str, retry_at: Option<Millis>) -> Result<bool, StoreError> {
    // Typed casts: PostgreSQL cannot infer a parameter's type from `IS NULL` alone.
    let q = sqlx::query(
        "UPDATE jobs SET status = CASE WHEN $1::BIGINT IS NULL THEN 'failed' ELSE 'pending' END, run_after = COALESCE($1, run_after), \
         holder = NULL, lease_until = NULL, last_error = $2 WHERE id = $3 AND holder = $4 AND status = 'running'",
    )
    .bind(retry_at)
    .bind(error)
    .bind(id)
    .bind(holder);
    Ok(q.execute(pool).await.ctx("recording job failure")?.rows_affected() > 0)
}

async fn list(pool: &PgPool, status: Option<JobStatus>, limit: u32) -> Result<Vec<JobRow>, StoreError> {
    let statement = format!("SELECT {} FROM jobs WHERE $1::TEXT IS NULL OR status = $1 ORDER BY id LIMIT $2", sql::JOB_COLS);
    let q = sqlx::query(&statement).bind(status.map(JobStatus::as_str)).bind(i64::from(limit));
    q.fetch_all(pool).await.ctx("listing jobs")?.iter().map(job_from_row).collect()
}

#[async_trait]
impl JobStore for PostgresMetadataStore {
    async fn enqueue_job(&self, kind: &str, key: &str, payload: &str, run_after: Millis) -> Result<bool, StoreError> {
        self.timed("enqueue_job", enqueue(&self.pool, kind, key, payload, run_after)).await
    }

    async fn claim_jobs(
        &self,
        kinds: &[&str],
        holder: &str,
        now: Millis,
        lease_until: Millis,
        limit: u32,
    ) -> Result<Vec<JobRow>, StoreError> {
        self.timed("claim_jobs", claim(&self.pool, kinds, holder, now, lease_until, limit)).await
    }

    async fn complete_job(&self, id: i64, holder: &str) -> Result<bool, StoreError> {
        let call = async {
            Ok(sqlx::query(sql::COMPLETE).bind(id).bind(holder).execute(&self.pool).await.ctx("completing job")?.rows_affected() > 0)
        };
        self.timed("complete_job", call).await
    }

    async fn fail_job(&self, id: i64, holder: &str, error: &str, retry_at: Option<Millis>) -> Result<bool, StoreError> {
        self.timed("fail_job", fail(&self.pool, id, holder, error, retry_at)).await
    }

    async fn requeue_own_jobs(&self, holder: &str) -> Result<u64, StoreError> {
        let call =
            async { Ok(sqlx::query(sql::REQUEUE_OWN).bind(holder).execute(&self.pool).await.ctx("requeueing own jobs")?.rows_affected()) };
        self.timed("requeue_own_jobs", call).await
    }

    async fn list_jobs(&self, status: Option<JobStatus>, limit: u32) -> Result<Vec<JobRow>, StoreError> {
        self.timed("list_jobs", list(&self.pool, status, limit)).await
    }

    async fn count_jobs(&self) -> Result<Vec<(String, JobStatus, u64)>, StoreError> {
        let call = async { job_counts_from_rows(&sqlx::query(sql::COUNT).fetch_all(&self.pool).await.ctx("counting jobs")?) };
        self.timed("count_jobs", call).await
    }
}
