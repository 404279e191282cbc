//! The replication workers: a fixed pool of supervised tasks claims `replicate` jobs from the
//! outbox under a lease (so each runs once across nodes), copies the image to its destination
//! and records COMPLETE or FAILED. Transient failures (a store hiccup, a remote that does not
//! answer) are retried with exponential backoff, IN_PROGRESS meanwhile; after
//! [`MAX_ATTEMPTS`] claims, or at once for a failure no retry can fix (a refusal by the
//! destination's policy, an immutable tag in the way), the status is FAILED with the reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_store::{DestinationKey, JobRow, ReplicationStatusRow, RepoKey};

use super::backfill::BACKFILL_JOB;
use super::{ReplicationJob, COMPLETE, FAILED, REPLICATE_JOB};
use crate::names::{RegistryRef, Repo};
use crate::supervisor::{Restart, TaskResult};
use crate::{Digest, Registry, RegistryError};

/// Claims of one job before it is given up on (about 10 minutes of backoff in all).
pub const MAX_ATTEMPTS: i64 = 12;
/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF_MILLIS: i64 = 1_000;
const MAX_BACKOFF_MILLIS: i64 = 60_000;
/// A claimed job is this node's for this long; a node that died holding it leaves it to the
/// next claim after that. Long enough for a large remote copy; a copy that overruns it may
/// run twice, which is harmless (every step is idempotent).
const LEASE_MILLIS: i64 = 15 * 60 * 1000;
/// Jobs a worker claims at once.
const CLAIM_BATCH: u32 = 4;
/// How often idle workers look for jobs another node queued (this node's wake them at once).
const POLL: Duration = Duration::from_secs(5);

/// Why a copy did not complete.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Retrying cannot help: FAILED with this reason at once.
    Permanent(String),
    /// Worth another try later.
    Retry(String),
}

impl Failure {
    pub(crate) fn permanent(reason: impl Into<String>) -> Failure {
        Failure::Permanent(reason.into())
    }
    pub(crate) fn retry(e: impl std::fmt::Display) -> Failure {
        Failure::Retry(e.to_string())
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        let code = match &e {
            RegistryError::Store(_) => return Failure::Retry(e.to_string()),
            RegistryError::Kms { kms_error: "KMSInternalException", .. } => return Failure::Retry(e.to_string()),
            RegistryError::TagImmutable { .. } => "ImageTagAlreadyExistsException",
            RegistryError::Denied(_) => "AccessDenied",
            RegistryError::Kms { .. } => "KmsException",
            RegistryError::LimitExceeded(_) => "LimitExceededException",
            RegistryError::ManifestBlobUnknown(_) | RegistryError::ManifestChildUnknown(_) => "LayerNotFound",
            RegistryError::InvalidParameter(_) | RegistryError::Validation(_) => "InvalidParameterException",
            _ => "ReplicationFailed",
        };
        Failure::Permanent(format!("{code}: {e}"))
    }
}

/// Completed and failed copies and the lag of completed ones, per destination, since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicationTotals {
    pub completed: u64,
    pub failed: u64,
    /// Sum of push → COMPLETE times, milliseconds.
    pub lag_millis_sum: u64,
    pub last_lag_millis: u64,
}

/// What /metrics reports.
#[derive(Debug, Clone, Default)]
pub struct ReplicationStats {
    /// By destination, `<region>/<registry id>`.
    pub destinations: BTreeMap<String, ReplicationTotals>,
    /// Pushes whose replication could not be queued.
    pub queue_failures: u64,
}

/// The replication state inside the registry.
#[derive(Default)]
pub(crate) struct Replicator {
    wake: Arc<tokio::sync::Notify>,
    started: std::sync::OnceLock<()>,
    stats: Mutex<ReplicationStats>,
    pub(crate) remotes: super::remote::RemoteClients,
}

impl Replicator {
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn note_queue_failure(&self) {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).queue_failures += 1;
    }

    fn note(&self, destination: &DestinationKey, completed: Option<u64>) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let totals = stats.destinations.entry(format!("{}/{}", destination.region, destination.registry_id)).or_default();
        match completed {
            Some(lag) => {
                totals.completed += 1;
                totals.lag_millis_sum += lag;
                totals.last_lag_millis = lag;
            }
            None => totals.failed += 1,
        }
    }
}

impl Registry {
    /// Starts `workers` replication workers (once) under the registry's supervisor.
    pub fn start_replication(self: &Arc<Self>, workers: usize) {
        if self.replicator.started.set(()).is_err() {
            return;
        }
        for _ in 0..workers.max(1) {
            let registry = Arc::downgrade(self);
            // Weak: the workers end (Ok) once the registry is dropped.
            self.supervisor.start("replication_worker", Restart::OnFailure, move || replication_worker(registry.clone()));
        }
    }

    pub fn replication_stats(&self) -> ReplicationStats {
        self.replicator.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs every replication job due now on this task, one after the other, until none is
    /// left due; how many ran. (Tests and `berth` tools; servers run workers.)
    pub async fn run_due_replication(&self) -> crate::error::Result<usize> {
        let mut ran = 0;
        loop {
            let now = self.now();
            let claimed = self.meta.claim_jobs(&[REPLICATE_JOB, BACKFILL_JOB], &self.node_id, now, now + LEASE_MILLIS, 16).await?;
            if claimed.is_empty() {
                return Ok(ran);
            }
            for job in claimed {
                self.run_replication_job(job).await;
                ran += 1;
            }
        }
    }

    async fn run_replication_job(&self, job: JobRow) {
        if job.kind == BACKFILL_JOB {
            return self.run_backfill(job).await;
        }
        let Ok(payload) = serde_json::from_str::<ReplicationJob>(&job.payload) else {
            let _ = self.meta.fail_job(job.id, &self.node_id, "unreadable replication job", None).await;
            return;
        };
        let Some((source, digest)) = source_of(&payload) else {
            let _ = self.meta.fail_job(job.id, &self.node_id, "replication job names no valid image", None).await;
            return;
        };
        let destination = DestinationKey { region: payload.dest_region.clone(), registry_id: payload.dest_registry.clone() };
        let outcome = self.replicate(&source, &digest, &destination).await;
        let now = self.now();
        let status = |status: &str, failure_code: Option<String>| ReplicationStatusRow {
            destination: destination.clone(),
            status: status.into(),
            failure_code,
            origin: payload.origin.clone(),
            queued_at: payload.queued_at,
            updated_at: now,
        };
        let recorded = match outcome {
            Ok(()) => {
                tracing::info!(repository = %source, digest = %digest, region = %destination.region, registry = %destination.registry_id, "image replicated");
                self.replicator.note(&destination, Some(now.saturating_sub(payload.queued_at).max(0) as u64));
                self.finish(&job, &source, &digest, status(COMPLETE, None)).await
            }
            Err(Failure::Retry(reason)) if job.attempts < MAX_ATTEMPTS => {
                let delay = FIRST_BACKOFF_MILLIS.saturating_mul(1 << (job.attempts - 1).clamp(0, 16)).min(MAX_BACKOFF_MILLIS);
                tracing::warn!(repository = %source, digest = %digest, region = %destination.region, registry = %destination.registry_id,
                    attempt = job.attempts, retry_in_ms = delay, error = %reason, "replication failed; retrying");
                self.meta.fail_job(job.id, &self.node_id, &reason, Some(now + delay)).await.map(drop)
            }
            Err(Failure::Retry(reason)) | Err(Failure::Permanent(reason)) => {
                tracing::warn!(repository = %source, digest = %digest, region = %destination.region, registry = %destination.registry_id,
                    error = %reason, "replication failed");
                self.replicator.note(&destination, None);
                let failed = status(FAILED, Some(reason.clone()));
                match self.meta.set_replication_status(source.key(), &digest, &failed).await {
                    Ok(()) => {
                        self.emit_replication_action(&source, &digest, &failed).await;
                        self.meta.fail_job(job.id, &self.node_id, &reason, None).await.map(drop)
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = recorded {
            // The lease ends on its own; the job is then claimed again.
            tracing::error!(repository = %source, digest = %digest, error = %e, "recording the replication job's end");
        }
    }

    async fn run_backfill(&self, job: JobRow) {
        let ended = match self.run_backfill_job(&job).await {
            Ok(()) => self.meta.complete_job(job.id, &self.node_id).await,
            Err(e) => {
                tracing::warn!(job = %job.key, error = %e, attempt = job.attempts, "replication backfill failed");
                let retry_at = (job.attempts < MAX_ATTEMPTS).then(|| self.now() + FIRST_BACKOFF_MILLIS * job.attempts);
                if retry_at.is_none() {
                    // Given up: FAILED, so that the registry may start another.
                    if let Err(e) = self.give_up_backfill(&job).await {
                        tracing::error!(job = %job.key, error = %e, "recording the backfill as FAILED");
                    }
                }
                self.meta.fail_job(job.id, &self.node_id, &e.to_string(), retry_at).await
            }
        };
        if let Err(e) = ended {
            tracing::error!(job = %job.key, error = %e, "recording the backfill job's end");
        }
    }

    /// COMPLETE and the job done, in one transaction (one commit: the writer is shared with pushes).
    async fn finish(&self, job: &JobRow, source: &Repo, digest: &Digest, row: ReplicationStatusRow) -> Result<(), berth_store::StoreError> {
        self.meta.finish_replication_job(source.key(), digest, &row, job.id, &self.node_id).await?;
        self.emit_replication_action(source, digest, &row).await;
        Ok(())
    }

    async fn replicate(&self, source: &Repo, digest: &Digest, destination: &DestinationKey) -> Result<(), Failure> {
        match self.remote_for(&destination.registry_id, &destination.region).await.map_err(Failure::from)? {
            Some(remote) => self.replicate_remote(&remote, &destination.region, source, digest).await,
            None => {
                let dest = RegistryRef { account: destination.registry_id.clone(), region: destination.region.clone() };
                self.replicate_local(source, digest, &dest).await
            }
        }
    }
}

fn source_of(job: &ReplicationJob) -> Option<(Repo, Digest)> {
    let key = RepoKey { account: job.account.clone(), region: job.region.clone(), name: job.repository.clone() };
    Some((crate::scanning::repo_of_key(&key)?, job.digest.parse().ok()?))
}

async fn replication_worker(registry: Weak<Registry>) -> TaskResult {
    loop {
        let Some(r) = registry.upgrade() else { return Ok(()) };
        let now = r.now();
        // A few at a time: one claim (one commit) for several copies when a burst queued many.
        let claimed = r
            .meta
            .claim_jobs(&[REPLICATE_JOB, BACKFILL_JOB], &r.node_id, now, now + LEASE_MILLIS, CLAIM_BATCH)
            .await
            .map_err(|e| Box::new(e) as _)?;
        match claimed.is_empty() {
            false => {
                for job in claimed {
                    r.run_replication_job(job).await;
                }
            }
            true => {
                let wake = r.replicator.wake.clone();
                drop(r);
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}
