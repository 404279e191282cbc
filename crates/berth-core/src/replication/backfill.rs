//! Replication backfill: images pushed before the rules (or before a destination was added)
//! are queued for replication, as if just pushed. A backfill is a row and one outbox job; the
//! job walks the registry's repositories and images page by page, recording its cursor after
//! each page, so a restart (or another node, after the lease) resumes where it stopped, and
//! StopReplicationBackfill ends it between two pages. The statuses it queues carry its id, so
//! its results are counted from them.
//!
//! The installed botocore model has no backfill actions, so their shapes are berth's (see
//! berth-ecr's replication_actions.rs), in ECR's style; the aws CLI cannot call them, SDKs can
//! with a signed request, and the console has a button.

use std::collections::BTreeMap;

use berth_store::{BackfillRow, JobRow, QueuedJob, TagStatus};
use serde::{Deserialize, Serialize};

use super::{invalid, is_prefix_filter, ReplicationDestination, RepositoryFilter, IN_PROGRESS};
use crate::error::Result;
use crate::names::{RegistryRef, Repo};
use crate::{Digest, Registry, RegistryError, RepositoryName};

pub(crate) const BACKFILL_JOB: &str = "replication_backfill";
/// Images queued per page (one cursor update each).
const PAGE: u32 = 200;
/// Backfills a listing shows.
const LISTED: u32 = 100;
/// Sorts after every tag (tags are [A-Za-z0-9_.-]), so a page starts after all of a digest's rows.
const AFTER_EVERY_TAG: &str = "~";

/// What StartReplicationBackfill asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillRequest {
    /// Only repositories matching one of these (PREFIX_MATCH); all when empty.
    #[serde(default)]
    pub repository_filters: Vec<RepositoryFilter>,
    /// Only these of the configured destinations; all when empty.
    #[serde(default)]
    pub destinations: Vec<ReplicationDestination>,
}

/// A backfill as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    pub id: String,
    /// IN_PROGRESS, COMPLETE (every image queued), STOPPED or FAILED.
    pub status: String,
    pub request: BackfillRequest,
    /// Images queued so far (each for every destination its repository's rules name).
    pub images_queued: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The queued copies by replication status (IN_PROGRESS, COMPLETE, FAILED).
    pub results: BTreeMap<String, i64>,
}

#[derive(Serialize, Deserialize)]
struct BackfillJob {
    account: String,
    region: String,
    id: String,
}

fn decode(row: BackfillRow) -> Result<Backfill> {
    let request = serde_json::from_str(&row.request).map_err(|e| invalid(format!("stored backfill request: {e}")))?;
    Ok(Backfill {
        id: row.id,
        status: row.status,
        request,
        images_queued: row.images_queued,
        created_at: row.created_at,
        updated_at: row.updated_at,
        results: BTreeMap::new(),
    })
}

fn not_found(id: &str) -> RegistryError {
    invalid(format!("Invalid parameter at 'backfillId': replication backfill {id:?} does not exist in this registry"))
}

impl Registry {
    /// StartReplicationBackfill: queues every image the request selects for its destinations.
    /// One backfill at a time per registry (LimitExceededException while one runs).
    pub async fn start_replication_backfill(&self, scope: &RegistryRef, request: BackfillRequest) -> Result<Backfill> {
        let config = self.replication_configuration(scope).await?;
        if config.rules.is_empty() {
            return Err(invalid(
                "Invalid parameter: the registry has no replication configuration; put one (PutReplicationConfiguration) first".into(),
            ));
        }
        for f in &request.repository_filters {
            if f.filter_type != "PREFIX_MATCH" || !is_prefix_filter(&f.filter) {
                return Err(invalid(format!(
                    "Invalid parameter at 'repositoryFilters': {:?} of type {:?} is not a PREFIX_MATCH repository name prefix",
                    f.filter, f.filter_type
                )));
            }
        }
        let configured: Vec<ReplicationDestination> = config.rules.iter().flat_map(|r| r.destinations.iter().cloned()).collect();
        if let Some(d) = request.destinations.iter().find(|d| !configured.contains(d)) {
            return Err(invalid(format!(
                "Invalid parameter at 'destinations': {} in {} is not a destination of the replication configuration",
                d.registry_id, d.region
            )));
        }
        let now = self.now();
        let id = uuid::Uuid::new_v4().to_string();
        let text = serde_json::to_string(&request).map_err(|e| invalid(e.to_string()))?;
        let row = BackfillRow {
            id: id.clone(),
            status: IN_PROGRESS.into(),
            request: text,
            cursor: None,
            images_queued: 0,
            created_at: now,
            updated_at: now,
        };
        let job = BackfillJob { account: scope.account.clone(), region: scope.region.clone(), id: id.clone() };
        let payload = serde_json::to_string(&job).map_err(|e| invalid(e.to_string()))?;
        let queued = QueuedJob { kind: BACKFILL_JOB.into(), key: format!("{}/{}/{id}", scope.account, scope.region), payload };
        if !self.meta.create_backfill(&scope.account, &scope.region, &row, &queued).await? {
            return Err(RegistryError::LimitExceeded(
                "A replication backfill is already in progress in this registry; stop it or wait for it to finish".into(),
            ));
        }
        self.replicator.wake();
        decode(row)
    }

    /// DescribeReplicationBackfillResults: the backfill with its queued copies by status.
    pub async fn replication_backfill(&self, scope: &RegistryRef, id: &str) -> Result<Backfill> {
        let row = self.meta.backfill(&scope.account, &scope.region, id).await?.ok_or_else(|| not_found(id))?;
        let mut backfill = decode(row)?;
        backfill.results = self.meta.backfill_status_counts(id).await?.into_iter().collect();
        Ok(backfill)
    }

    /// ListReplicationBackfills: the newest 100.
    pub async fn replication_backfills(&self, scope: &RegistryRef) -> Result<Vec<Backfill>> {
        self.meta.backfills(&scope.account, &scope.region, LISTED).await?.into_iter().map(decode).collect()
    }

    /// StopReplicationBackfill: no image is queued after the page in progress; the ones
    /// queued stay queued.
    pub async fn stop_replication_backfill(&self, scope: &RegistryRef, id: &str) -> Result<Backfill> {
        let mut row = self.meta.backfill(&scope.account, &scope.region, id).await?.ok_or_else(|| not_found(id))?;
        if row.status == IN_PROGRESS {
            row.status = "STOPPED".into();
            row.updated_at = self.now();
            self.meta.advance_backfill(&scope.account, &scope.region, &row).await?;
        }
        self.replication_backfill(scope, id).await
    }

    /// Runs a claimed backfill job to its end (or until it is stopped).
    pub(crate) async fn run_backfill_job(&self, job: &JobRow) -> Result<()> {
        let payload: BackfillJob = serde_json::from_str(&job.payload).map_err(|e| invalid(format!("backfill job: {e}")))?;
        let scope = RegistryRef { account: payload.account, region: payload.region };
        let Some(mut row) = self.meta.backfill(&scope.account, &scope.region, &payload.id).await? else { return Ok(()) };
        let request: BackfillRequest = serde_json::from_str(&row.request).map_err(|e| invalid(format!("backfill request: {e}")))?;
        let config = self.replication_configuration(&scope).await?;
        while row.status == IN_PROGRESS {
            let (cursor, queued, done) = self.backfill_page(&scope, &config, &request, &row.id, row.cursor.clone()).await?;
            row.cursor = cursor;
            row.images_queued += queued as i64;
            row.updated_at = self.now();
            if done {
                row.status = super::COMPLETE.into();
            }
            if !self.meta.advance_backfill(&scope.account, &scope.region, &row).await? {
                break; // stopped meanwhile
            }
        }
        Ok(())
    }

    pub(crate) async fn give_up_backfill(&self, job: &JobRow) -> Result<()> {
        let payload: BackfillJob = serde_json::from_str(&job.payload).map_err(|e| invalid(format!("backfill job: {e}")))?;
        if let Some(mut row) = self.meta.backfill(&payload.account, &payload.region, &payload.id).await? {
            row.status = super::FAILED.into();
            row.updated_at = self.now();
            self.meta.advance_backfill(&payload.account, &payload.region, &row).await?;
        }
        Ok(())
    }

    /// Queues one page of images after `cursor`; the next cursor, how many, and whether the
    /// registry is done.
    async fn backfill_page(
        &self,
        scope: &RegistryRef,
        config: &super::ReplicationConfiguration,
        request: &BackfillRequest,
        origin: &str,
        cursor: Option<(String, String)>,
    ) -> Result<(Option<(String, String)>, usize, bool)> {
        let (name, after) = match cursor {
            Some(c) => c,
            None => match self.meta.list_repositories(&scope.account, &scope.region, None, 1).await?.into_iter().next() {
                Some(first) => (first.key.name, String::new()),
                None => return Ok((None, 0, true)),
            },
        };
        let wanted = request.repository_filters.is_empty() || request.repository_filters.iter().any(|f| name.starts_with(&f.filter));
        let mut destinations = config.destinations_for(&name);
        if !request.destinations.is_empty() {
            destinations.retain(|d| request.destinations.contains(d));
        }
        let repo = RepositoryName::parse(&name).ok().map(|n| Repo::new(scope, n));
        let mut queued = 0;
        let mut last = None;
        let mut full_page = false;
        if let (true, false, Some(repo)) = (wanted, destinations.is_empty(), &repo) {
            let from = (!after.is_empty()).then_some((after.as_str(), AFTER_EVERY_TAG));
            let rows = self.meta.list_image_ids(repo.key(), TagStatus::Any, None, from, PAGE).await?;
            full_page = rows.len() == PAGE as usize;
            let mut digests: Vec<Digest> = rows.into_iter().map(|(d, _)| d).collect();
            digests.dedup();
            for digest in &digests {
                self.queue_replication_to(repo, digest, &destinations, Some(origin)).await?;
                queued += 1;
            }
            last = digests.last().map(|d| d.to_string());
        }
        if full_page {
            return Ok((Some((name, last.unwrap_or(after))), queued, false));
        }
        match self.meta.list_repositories(&scope.account, &scope.region, Some(&name), 1).await?.into_iter().next() {
            Some(next) => Ok((Some((next.key.name, String::new())), queued, false)),
            None => Ok((None, queued, true)),
        }
    }
}
