//! Lifecycle policies: stored per repository, evaluated by `berth-lifecycle`, applied here.
//!
//! One evaluator serves the preview and the real run, so a preview shows exactly what a run
//! at the same moment would do. What the evaluator sees is decided here: an image that an
//! index lists, or that refers to another image (a signature, an SBOM), is not judged on its
//! own. The first stays while its index stays; the second goes when its subject is expired (or,
//! as ECR cleans up artifacts of deleted images, a day after its subject was deleted by hand).

use std::collections::{HashMap, HashSet};

use berth_lifecycle::{evaluate, parse_policy, ActionKind, Decision, ImageFacts, LifecyclePolicy};
use berth_store::{ExpireOutcome, LifecycleImageRow, LifecyclePreviewRow, Millis, RepoKey, StorageClass};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::names::Repo;
use crate::{Digest, Registry, RegistryError};

/// One image a policy acts on (ECR's LifecyclePolicyPreviewResult).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedAction {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: Millis,
    pub rule_priority: u32,
    /// EXPIRE | TRANSITION
    pub action: String,
    /// The image's storage class when evaluated: STANDARD | ARCHIVE.
    pub storage_class: String,
}

/// A policy as stored, with ECR's lastEvaluatedAt.
#[derive(Debug, Clone)]
pub struct StoredLifecyclePolicy {
    pub text: String,
    pub evaluated_at: Option<Millis>,
}

/// The last preview of a repository.
#[derive(Debug, Clone)]
pub struct LifecyclePreview {
    pub policy: String,
    /// IN_PROGRESS | COMPLETE | FAILED
    pub status: String,
    pub results: Vec<PlannedAction>,
}

impl LifecyclePreview {
    /// ECR's preview summary: (expiringImageTotalCount, images transitioning to archive).
    pub fn summary(&self) -> (usize, usize) {
        let expiring = self.results.iter().filter(|p| p.action == ActionKind::Expire.as_api_str()).count();
        (expiring, self.results.len() - expiring)
    }
}

/// What one run did (or, dry, would do) to one repository.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRunReport {
    pub repository: String,
    pub account: String,
    pub region: String,
    pub dry_run: bool,
    /// Images expired or archived by a rule.
    pub actions: Vec<PlannedAction>,
    /// Referrers deleted with an expired subject.
    pub referrers_expired: Vec<String>,
    /// Planned actions skipped because the image changed between evaluation and action.
    pub skipped: Vec<String>,
}

/// An IN_PROGRESS preview older than this was interrupted (a restart) and may be replaced.
const PREVIEW_STALE_MILLIS: Millis = 10 * 60 * 1000;

pub(crate) fn invalid_policy(e: berth_lifecycle::PolicyError) -> RegistryError {
    RegistryError::invalid(e.to_string())
}

fn no_policy(repo: &Repo) -> RegistryError {
    RegistryError::LifecyclePolicyNotFound(format!(
        "Lifecycle policy does not exist for the repository with name '{repo}' in the registry with id '{}'",
        repo.key().account
    ))
}

fn facts(row: &LifecycleImageRow) -> ImageFacts {
    ImageFacts {
        digest: row.digest.to_string(),
        tags: row.tags.clone(),
        pushed_at: row.pushed_at,
        last_pulled_at: row.last_pulled_at,
        storage_class: match row.storage_class {
            StorageClass::Standard => berth_lifecycle::StorageClass::Standard,
            StorageClass::Archive => berth_lifecycle::StorageClass::Archive,
        },
        transitioned_at: row.archived_at,
        last_activated_at: row.last_activated_at,
    }
}

/// The evaluation shared by preview and run: the images the policy may judge, and its decisions.
fn plan(policy: &LifecyclePolicy, rows: &[LifecycleImageRow], now: Millis) -> Vec<PlannedAction> {
    let present: HashSet<&Digest> = rows.iter().map(|r| &r.digest).collect();
    // Index children and referrers of a present subject follow their parent / subject.
    let judged: Vec<&LifecycleImageRow> =
        rows.iter().filter(|r| !r.referenced_by_manifest && r.subject.as_ref().is_none_or(|s| !present.contains(s))).collect();
    let images: Vec<ImageFacts> = judged.iter().map(|r| facts(r)).collect();
    let decisions: Vec<Decision> = evaluate(policy, &images, now);
    let by_digest: HashMap<&str, &LifecycleImageRow> = images.iter().map(|f| f.digest.as_str()).zip(judged.iter().copied()).collect();
    decisions
        .into_iter()
        .filter_map(|d| {
            let row = by_digest.get(d.digest.as_str())?;
            Some(PlannedAction {
                digest: d.digest,
                tags: row.tags.clone(),
                pushed_at: row.pushed_at,
                rule_priority: d.rule_priority,
                action: d.action.as_api_str().to_string(),
                storage_class: row.storage_class.as_str().to_string(),
            })
        })
        .collect()
}

/// Referrers left behind by a subject deleted by hand (BatchDeleteImage, `/v2/` DELETE). ECR:
/// "lifecycle policies will automatically clean up those artifacts within 24 hours of the
/// deletion of the subject image. The artifact must also remain in its current storage class
/// for at least 24 hours" — so a run removes them whether or not a rule selects them. Untagged
/// ones only (a tag is a user's claim), none an index lists, none a rule already acted on.
fn orphaned_referrers(rows: &[LifecycleImageRow], planned: &[PlannedAction], now: Millis) -> Vec<Digest> {
    let present: HashSet<&Digest> = rows.iter().map(|r| &r.digest).collect();
    let acted: HashSet<&str> = planned.iter().map(|p| p.digest.as_str()).collect();
    rows.iter()
        .filter(|r| r.subject.as_ref().is_some_and(|s| !present.contains(s)))
        .filter(|r| r.tags.is_empty() && !r.referenced_by_manifest && !acted.contains(r.digest.to_string().as_str()))
        .filter(|r| {
            let in_class_since = [Some(r.pushed_at), r.archived_at, r.last_activated_at].into_iter().flatten().max();
            in_class_since.is_some_and(|t| now.saturating_sub(t) >= berth_lifecycle::DAY_MS)
        })
        .map(|r| r.digest.clone())
        .collect()
}

impl Registry {
    /// PutLifecyclePolicy: validates as ECR does, then stores.
    pub async fn put_lifecycle_policy(&self, repo: &Repo, text: &str) -> Result<()> {
        parse_policy(text).map_err(invalid_policy)?;
        if !self.meta.set_lifecycle_policy(repo.key(), Some(text), self.now()).await? {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        Ok(())
    }

    pub async fn lifecycle_policy(&self, repo: &Repo) -> Result<StoredLifecyclePolicy> {
        self.existing_repository(repo).await?;
        let row = self.meta.lifecycle_policy(repo.key()).await?.ok_or_else(|| no_policy(repo))?;
        Ok(StoredLifecyclePolicy { text: row.policy, evaluated_at: row.evaluated_at })
    }

    /// DeleteLifecyclePolicy: returns what was deleted.
    pub async fn delete_lifecycle_policy(&self, repo: &Repo) -> Result<StoredLifecyclePolicy> {
        let existing = self.lifecycle_policy(repo).await?;
        self.meta.set_lifecycle_policy(repo.key(), None, self.now()).await?;
        Ok(existing)
    }

    /// What `policy` (or the stored policy) would do now, changing nothing.
    pub async fn plan_lifecycle(&self, repo: &Repo, policy_text: Option<&str>) -> Result<(String, Vec<PlannedAction>)> {
        self.existing_repository(repo).await?;
        let text = match policy_text {
            Some(t) => t.to_string(),
            None => self.lifecycle_policy(repo).await?.text,
        };
        let policy = parse_policy(&text).map_err(invalid_policy)?;
        self.flush_pulls().await?;
        let rows = self.meta.lifecycle_images(repo.key()).await?;
        let now = self.now();
        // Evaluation is CPU work proportional to the repository; keep it off the async workers.
        let planned = tokio::task::spawn_blocking(move || plan(&policy, &rows, now))
            .await
            .map_err(|e| RegistryError::invalid(format!("lifecycle evaluation failed: {e}")))?;
        Ok((text, planned))
    }

    /// StartLifecyclePolicyPreview: records an IN_PROGRESS preview and evaluates it in the
    /// background. Refused while the repository's previous preview is still running.
    pub async fn start_lifecycle_preview(self: &std::sync::Arc<Self>, repo: &Repo, policy_text: Option<&str>) -> Result<String> {
        self.existing_repository(repo).await?;
        if let Some(t) = policy_text {
            parse_policy(t).map_err(invalid_policy)?;
        }
        let text = match policy_text {
            Some(t) => t.to_string(),
            None => self.lifecycle_policy(repo).await?.text,
        };
        if let Some(p) = self.meta.lifecycle_preview(repo.key()).await? {
            // A preview left IN_PROGRESS by a stopped server is stale, not running.
            if p.status == "IN_PROGRESS" && self.now() - p.started_at < PREVIEW_STALE_MILLIS {
                return Err(RegistryError::LifecyclePreviewInProgress(format!(
                    "The previous lifecycle policy preview request has not completed for repository '{repo}'. Wait and try again."
                )));
            }
        }
        let started_at = self.now();
        let row = LifecyclePreviewRow { policy: text.clone(), status: "IN_PROGRESS".into(), result: None, started_at };
        self.meta.put_lifecycle_preview(repo.key(), &row).await?;
        let (registry, repo2) = (self.clone(), repo.clone());
        // Supervised, so shutdown ends it; a preview a stopped server left IN_PROGRESS is stale
        // after PREVIEW_STALE_MILLIS and may be started again.
        self.supervisor.run_once(async move {
            let outcome = registry.plan_lifecycle(&repo2, Some(&row.policy)).await;
            let done = match outcome {
                Ok((_, planned)) => LifecyclePreviewRow {
                    status: "COMPLETE".into(),
                    result: Some(serde_json::to_string(&planned).unwrap_or_else(|_| "[]".into())),
                    ..row
                },
                Err(e) => {
                    tracing::warn!(repository = %repo2, error = %e, "lifecycle preview failed");
                    LifecyclePreviewRow { status: "FAILED".into(), result: None, ..row }
                }
            };
            if let Err(e) = registry.meta.put_lifecycle_preview(repo2.key(), &done).await {
                tracing::error!(repository = %repo2, error = %e, "storing lifecycle preview");
            }
        });
        Ok(text)
    }

    /// GetLifecyclePolicyPreview.
    pub async fn lifecycle_preview(&self, repo: &Repo) -> Result<LifecyclePreview> {
        self.existing_repository(repo).await?;
        let row = self.meta.lifecycle_preview(repo.key()).await?.ok_or_else(|| {
            RegistryError::LifecyclePreviewNotFound(format!(
                "There is no lifecycle policy preview for the repository with name '{repo}' in the registry with id '{}'",
                repo.key().account
            ))
        })?;
        let results = match &row.result {
            Some(json) => serde_json::from_str(json).map_err(|e| RegistryError::invalid(format!("stored preview: {e}")))?,
            None => Vec::new(),
        };
        Ok(LifecyclePreview { policy: row.policy, status: row.status, results })
    }

    /// Applies the repository's policy now (or reports what it would do, `dry_run`).
    pub async fn run_lifecycle(&self, repo: &Repo, dry_run: bool) -> Result<LifecycleRunReport> {
        let (_, planned) = self.plan_lifecycle(repo, None).await?;
        let key = repo.key();
        let mut report = LifecycleRunReport {
            repository: repo.to_string(),
            account: key.account.clone(),
            region: key.region.clone(),
            dry_run,
            actions: Vec::new(),
            referrers_expired: Vec::new(),
            skipped: Vec::new(),
        };
        if dry_run {
            let rows = self.meta.lifecycle_images(key).await?;
            report.referrers_expired = orphaned_referrers(&rows, &planned, self.now()).iter().map(|d| d.to_string()).collect();
            report.actions = planned;
            return Ok(report);
        }
        let mut outcome = self.apply_planned(repo, planned, &mut report).await;
        if outcome.is_ok() {
            outcome = self.clean_up_orphaned_referrers(repo, &mut report).await;
        }
        // Whatever happened, cached tags of changed images must not outlive this run.
        if !report.actions.is_empty() {
            self.caches.invalidate_repository_tags();
        }
        outcome?;
        self.meta.mark_lifecycle_evaluated(key, self.now()).await?;
        Ok(report)
    }

    /// Deletes the referrers whose subject is gone (see `orphaned_referrers`), each with its own
    /// referrers, in the conditional transaction the rules use (still untagged, still unlisted).
    async fn clean_up_orphaned_referrers(&self, repo: &Repo, report: &mut LifecycleRunReport) -> Result<()> {
        let key = repo.key();
        let rows = self.meta.lifecycle_images(key).await?;
        for digest in orphaned_referrers(&rows, &report.actions, self.now()) {
            if let ExpireOutcome::Expired(gone) = self.meta.expire_manifest(key, &digest, &[]).await? {
                tracing::info!(repository = %repo, digest = %digest, "lifecycle: referrer of a deleted image cleaned up");
                report.referrers_expired.extend(gone.iter().map(|d| d.to_string()));
            }
        }
        Ok(())
    }

    async fn apply_planned(&self, repo: &Repo, planned: Vec<PlannedAction>, report: &mut LifecycleRunReport) -> Result<()> {
        let key = repo.key();
        let hooks = self.event_webhooks(repo).await;
        for action in planned {
            self.lease_checkpoint()?;
            let digest: Digest = action.digest.parse().map_err(|e| RegistryError::DigestInvalid(format!("{e}")))?;
            // The event is queued in the same transaction as the expiry (or archiving).
            let outbox = self.lifecycle_outbox(&hooks, repo, &action);
            let applied = if action.action == ActionKind::Expire.as_api_str() {
                match self.meta.expire_manifest_queueing(key, &digest, &action.tags, &outbox, self.now()).await? {
                    ExpireOutcome::Expired(gone) => {
                        report.referrers_expired.extend(gone.iter().skip(1).map(|d| d.to_string()));
                        true
                    }
                    ExpireOutcome::Changed | ExpireOutcome::NotFound => false,
                }
            } else {
                self.meta.archive_if_unchanged_queueing(key, &digest, &action.tags, self.now(), &outbox).await?
            };
            if applied {
                tracing::info!(
                    repository = %repo, digest = %action.digest, rule = action.rule_priority, action = %action.action,
                    tags = ?action.tags, "lifecycle policy applied"
                );
                self.outbox_committed(&hooks);
                report.actions.push(action);
            } else {
                tracing::info!(repository = %repo, digest = %action.digest, "lifecycle: image changed since evaluation; skipped");
                report.skipped.push(action.digest);
            }
        }
        Ok(())
    }

    /// Applies every repository's lifecycle policy (or only `only`'s). A repository whose run
    /// fails is logged and skipped; the others still run.
    pub async fn run_lifecycle_policies(&self, only: Option<&Repo>, dry_run: bool) -> Result<Vec<LifecycleRunReport>> {
        let keys: Vec<RepoKey> = match only {
            Some(r) => vec![r.key().clone()],
            None => self.meta.lifecycle_repositories().await?,
        };
        let mut reports = Vec::new();
        for key in keys {
            // A lost lease ends the whole run, not just this repository's.
            self.lease_checkpoint()?;
            let Ok(name) = crate::RepositoryName::parse(&key.name) else { continue };
            let repo = Repo::new(&crate::RegistryRef { account: key.account.clone(), region: key.region.clone() }, name);
            match self.run_lifecycle(&repo, dry_run).await {
                Ok(r) => {
                    // ECR records what its lifecycle policies did as CloudTrail's PolicyExecutionEvent.
                    let acted = !r.actions.is_empty() || !r.referrers_expired.is_empty();
                    if acted && !r.dry_run {
                        let details = serde_json::json!({
                            "repositoryName": r.repository,
                            "imageActionCount": r.actions.len(),
                            "referrersExpired": r.referrers_expired.len(),
                        });
                        self.record_service_event("ecr.amazonaws.com", "PolicyExecutionEvent", Some(&repo.registry()), details).await;
                    }
                    reports.push(r)
                }
                Err(e) if only.is_some() => return Err(e),
                Err(e) => tracing::error!(repository = %repo, account = %key.account, error = %e, "lifecycle run failed"),
            }
        }
        Ok(reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(d: u8, tags: &[&str], pushed_at: Millis) -> LifecycleImageRow {
        LifecycleImageRow {
            digest: format!("sha256:{}", hex::encode([d; 32])).parse().expect("digest"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at,
            last_pulled_at: None,
            storage_class: StorageClass::Standard,
            archived_at: None,
            last_activated_at: None,
            subject: None,
            referenced_by_manifest: false,
        }
    }

    #[test]
    fn index_children_and_referrers_are_not_judged_alone() {
        let policy = parse_policy(
            r#"{"rules":[{"rulePriority":1,"description":"all untagged","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
        )
        .expect("policy");
        let day = berth_lifecycle::DAY_MS;
        let mut child = row(1, &[], 0);
        child.referenced_by_manifest = true;
        let subject = row(2, &["v1"], 0);
        let mut signature = row(3, &[], 0);
        signature.subject = Some(subject.digest.clone());
        let mut orphan_referrer = row(4, &[], 0);
        orphan_referrer.subject = Some(row(9, &[], 0).digest);
        let loose = row(5, &[], 0);
        let planned = plan(&policy, &[child, subject, signature, orphan_referrer.clone(), loose.clone()], 10 * day);
        let digests: Vec<String> = planned.iter().map(|p| p.digest.clone()).collect();
        assert_eq!(digests.len(), 2);
        assert!(digests.contains(&orphan_referrer.digest.to_string()));
        assert!(digests.contains(&loose.digest.to_string()));
    }
}
