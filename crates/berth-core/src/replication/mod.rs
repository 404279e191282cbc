//! Replication (ECR's PutReplicationConfiguration family): every image pushed into a
//! repository that a rule's filters match is copied, with its tags, to each of the rule's
//! destinations.
//!
//! - A destination `{region, registryId}` is **local** when it names a registry of this berth
//!   (another region, or another account whose registry policy allows the source account
//!   `ecr:ReplicateImage`): the copy links the blobs and stores the manifest there, so it
//!   moves no bytes unless the destination repository encrypts under another key
//!   (`local.rs`). It is **remote** when `berth admin add-remote-registry` mapped the registry
//!   id (and optionally the region) to another registry's URL: the copy is an OCI push
//!   (`remote.rs`).
//! - The push is acknowledged first: it records IN_PROGRESS per destination and adds one
//!   outbox job per destination in one transaction (`queue_after_push`); supervised workers
//!   claim jobs under a lease (any node, once), retry transient failures with backoff and
//!   record COMPLETE or FAILED with the reason (`worker.rs`).
//! - Images arriving by replication are not replicated again (as in ECR), and deletes are never
//!   replicated.

mod backfill;
mod local;
mod remote;
mod remotes;
mod worker;

use std::collections::BTreeSet;

use berth_store::{DestinationKey, QueuedJob, ReplicationStatusRow};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{Digest, Registry, RegistryError, RegistryRef, Repo};

pub use backfill::{Backfill, BackfillRequest};
pub use remotes::{RemoteAuth, RemoteRegistry};
pub(crate) use worker::Replicator;
pub use worker::{ReplicationStats, ReplicationTotals};

/// ECR's limits: rules per configuration (the model's list bound) and unique destinations
/// across all rules (the service quota).
pub const MAX_RULES: usize = 10;
pub const MAX_DESTINATIONS: usize = 25;
pub const MAX_FILTERS: usize = 100;
/// The outbox job kind.
pub(crate) const REPLICATE_JOB: &str = "replicate";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationConfiguration {
    pub rules: Vec<ReplicationRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationRule {
    pub destinations: Vec<ReplicationDestination>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repository_filters: Vec<RepositoryFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationDestination {
    pub region: String,
    pub registry_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryFilter {
    pub filter: String,
    pub filter_type: String,
}

/// An image's replication to one destination (ECR's ImageReplicationStatus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReplicationStatus {
    pub region: String,
    pub registry_id: String,
    /// IN_PROGRESS, COMPLETE or FAILED.
    pub status: String,
    pub failure_code: Option<String>,
}

pub const IN_PROGRESS: &str = "IN_PROGRESS";
pub const COMPLETE: &str = "COMPLETE";
pub const FAILED: &str = "FAILED";

impl ReplicationConfiguration {
    /// The destinations an image pushed into `repository_name` goes to: those of every rule
    /// whose filters match (a rule without filters matches every repository), each once.
    pub fn destinations_for(&self, repository_name: &str) -> Vec<ReplicationDestination> {
        let mut out = BTreeSet::new();
        for rule in &self.rules {
            let matches = rule.repository_filters.is_empty()
                || rule.repository_filters.iter().any(|f| f.filter_type == "PREFIX_MATCH" && repository_name.starts_with(&f.filter));
            if matches {
                out.extend(rule.destinations.iter().cloned());
            }
        }
        out.into_iter().collect()
    }
}

/// The job's payload: which image goes where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicationJob {
    pub account: String,
    pub region: String,
    pub repository: String,
    pub digest: String,
    pub dest_region: String,
    pub dest_registry: String,
    /// When the push queued it (the lag metric's start).
    pub queued_at: i64,
    /// The backfill that queued it; None for a push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl ReplicationJob {
    /// One job per image and destination: a push of the same image while its job waits adds
    /// nothing (the job copies the tags the image has when it runs).
    fn key(&self) -> String {
        format!("{}/{}/{}@{}->{}/{}", self.account, self.region, self.repository, self.digest, self.dest_region, self.dest_registry)
    }
}

fn invalid(message: String) -> RegistryError {
    RegistryError::invalid(message)
}

fn is_region(s: &str) -> bool {
    (2..=25).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

use crate::addressing::is_account_id as is_registry_id;

/// The model's RepositoryFilterValue: a repository name prefix.
fn is_prefix_filter(s: &str) -> bool {
    if !(2..=256).contains(&s.len()) {
        return false;
    }
    let (namespaces, last) = match s.rsplit_once('/') {
        Some((ns, last)) => (Some(ns), last),
        None => (None, s),
    };
    let component = |c: &str, allow_empty: bool| -> bool {
        if c.is_empty() {
            return allow_empty;
        }
        let first_ok = c.as_bytes()[0].is_ascii_lowercase() || c.as_bytes()[0].is_ascii_digit();
        first_ok && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    namespaces.is_none_or(|ns| ns.split('/').all(|c| component(c, false)))
        && last.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Registry {
    /// DescribeRegistry's replicationConfiguration (no rules until one was put).
    pub async fn replication_configuration(&self, scope: &RegistryRef) -> Result<ReplicationConfiguration> {
        match self.meta.replication_configuration(&scope.account, &scope.region).await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| invalid(format!("stored replication configuration: {e}"))),
            None => Ok(ReplicationConfiguration::default()),
        }
    }

    /// PutReplicationConfiguration, validated as ECR does; replaces the whole configuration.
    /// Applies to images pushed from now on.
    pub async fn put_replication_configuration(
        &self,
        scope: &RegistryRef,
        config: ReplicationConfiguration,
    ) -> Result<ReplicationConfiguration> {
        self.check_replication_configuration(scope, &config).await?;
        let json = serde_json::to_string(&config).map_err(|e| invalid(e.to_string()))?;
        self.meta.put_replication_configuration(&scope.account, &scope.region, &json, self.now()).await?;
        Ok(config)
    }

    async fn check_replication_configuration(&self, scope: &RegistryRef, config: &ReplicationConfiguration) -> Result<()> {
        if config.rules.len() > MAX_RULES {
            return Err(invalid(format!(
                "Invalid parameter at 'replicationConfiguration.rules': a replication configuration has at most {MAX_RULES} rules, not {}",
                config.rules.len()
            )));
        }
        let mut unique = BTreeSet::new();
        let remotes = self.remote_registries().await?;
        for (i, rule) in config.rules.iter().enumerate() {
            let at = format!("replicationConfiguration.rules.{}", i + 1);
            if rule.destinations.is_empty() {
                return Err(invalid(format!("Invalid parameter at '{at}.destinations': a rule needs at least one destination")));
            }
            if rule.repository_filters.len() > MAX_FILTERS {
                return Err(invalid(format!("Invalid parameter at '{at}.repositoryFilters': at most {MAX_FILTERS} filters")));
            }
            for f in &rule.repository_filters {
                if f.filter_type != "PREFIX_MATCH" {
                    return Err(invalid(format!(
                        "Invalid parameter at '{at}.repositoryFilters': filter type {:?} is not PREFIX_MATCH",
                        f.filter_type
                    )));
                }
                if !is_prefix_filter(&f.filter) {
                    return Err(invalid(format!(
                        "Invalid parameter at '{at}.repositoryFilters': {:?} is not a repository name prefix (2-256 characters of [a-z0-9._-/])",
                        f.filter
                    )));
                }
            }
            for d in &rule.destinations {
                if !is_region(&d.region) || !is_registry_id(&d.registry_id) {
                    return Err(invalid(format!(
                        "Invalid parameter at '{at}.destinations': region {:?} / registryId {:?} is not a region and a 12-digit registry id",
                        d.region, d.registry_id
                    )));
                }
                if d.region == scope.region && d.registry_id == scope.account {
                    return Err(invalid(format!(
                        "Invalid parameter at '{at}.destinations': Replication destination cannot be the same as the source registry ({} in {})",
                        d.registry_id, d.region
                    )));
                }
                let remote = remotes.iter().any(|r| r.serves(&d.registry_id, &d.region));
                if !remote && d.registry_id != scope.account && !self.meta.account_exists(&d.registry_id).await? {
                    return Err(invalid(format!(
                        "Invalid parameter at '{at}.destinations': registry {} is neither an account of this registry nor a remote \
                         registry (berth admin add-remote-registry --registry-id {} …)",
                        d.registry_id, d.registry_id
                    )));
                }
                unique.insert(d.clone());
            }
        }
        if unique.len() > MAX_DESTINATIONS {
            return Err(invalid(format!(
                "Invalid parameter at 'replicationConfiguration.rules': at most {MAX_DESTINATIONS} unique destinations across all rules, not {}",
                unique.len()
            )));
        }
        Ok(())
    }

    /// DescribeImageReplicationStatus: the image's status per destination it was queued for.
    pub async fn image_replication_statuses(&self, repo: &Repo, digest: &Digest) -> Result<Vec<ImageReplicationStatus>> {
        let rows = self.meta.replication_statuses(repo.key(), digest).await?;
        Ok(rows
            .into_iter()
            .map(|r| ImageReplicationStatus {
                region: r.destination.region,
                registry_id: r.destination.registry_id,
                status: r.status,
                failure_code: r.failure_code,
            })
            .collect())
    }

    /// DescribeImageReplicationStatus of an image named by tag or digest.
    pub async fn describe_image_replication_status(
        &self,
        repo: &Repo,
        id: &crate::images::ImageId,
    ) -> Result<(Digest, Vec<ImageReplicationStatus>)> {
        let digest = self.resolve_image(repo, id).await?;
        let statuses = self.image_replication_statuses(repo, &digest).await?;
        Ok((digest, statuses))
    }

    /// After a push (not a replicated copy): queues the image for every destination the
    /// registry's rules name for the repository. The push is acknowledged whatever happens
    /// here; a failure to queue is logged and counted.
    pub(crate) async fn replicate_after_push(&self, repo: &Repo, digest: &Digest) {
        if let Err(e) = self.queue_replication(repo, digest).await {
            self.replicator.note_queue_failure();
            tracing::error!(repository = %repo, digest = %digest, error = %e, "queueing replication");
        }
    }

    /// Queues the image for the destinations the registry's rules name for its repository; how many.
    pub(crate) async fn queue_replication(&self, repo: &Repo, digest: &Digest) -> Result<usize> {
        let config = self.replication_configuration(&repo.registry()).await?;
        let destinations = config.destinations_for(repo.name.as_str());
        self.queue_replication_to(repo, digest, &destinations, None).await?;
        Ok(destinations.len())
    }

    /// Records IN_PROGRESS and queues one job per destination, in one transaction; `origin`
    /// names the backfill that asked (None: a push).
    pub(crate) async fn queue_replication_to(
        &self,
        repo: &Repo,
        digest: &Digest,
        destinations: &[ReplicationDestination],
        origin: Option<&str>,
    ) -> Result<()> {
        if destinations.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let key = repo.key();
        let mut statuses = Vec::with_capacity(destinations.len());
        let mut jobs = Vec::with_capacity(destinations.len());
        for d in destinations {
            let job = ReplicationJob {
                account: key.account.clone(),
                region: key.region.clone(),
                repository: key.name.clone(),
                digest: digest.to_string(),
                dest_region: d.region.clone(),
                dest_registry: d.registry_id.clone(),
                queued_at: now,
                origin: origin.map(str::to_string),
            };
            let payload = serde_json::to_string(&job).map_err(|e| invalid(e.to_string()))?;
            jobs.push(QueuedJob { kind: REPLICATE_JOB.into(), key: job.key(), payload });
            statuses.push(ReplicationStatusRow {
                destination: DestinationKey { region: d.region.clone(), registry_id: d.registry_id.clone() },
                status: IN_PROGRESS.into(),
                failure_code: None,
                origin: origin.map(str::to_string),
                queued_at: now,
                updated_at: now,
            });
        }
        self.meta.queue_replication(key, digest, &statuses, &jobs, now).await?;
        self.replicator.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(dests: &[(&str, &str)], filters: &[&str]) -> ReplicationRule {
        ReplicationRule {
            destinations: dests.iter().map(|(r, a)| ReplicationDestination { region: r.to_string(), registry_id: a.to_string() }).collect(),
            repository_filters: filters
                .iter()
                .map(|f| RepositoryFilter { filter: f.to_string(), filter_type: "PREFIX_MATCH".into() })
                .collect(),
        }
    }

    #[test]
    fn destinations_are_those_of_matching_rules_once() {
        let config = ReplicationConfiguration {
            rules: vec![
                rule(&[("us-west-2", "123456789012")], &["prod"]),
                rule(&[("us-west-2", "123456789012"), ("eu-west-1", "210987654321")], &[]),
                rule(&[("ap-south-1", "123456789012")], &["team/"]),
            ],
        };
        let names = |repo: &str| -> Vec<String> { config.destinations_for(repo).into_iter().map(|d| d.region).collect() };
        assert_eq!(names("prod/app"), ["eu-west-1", "us-west-2"]);
        assert_eq!(names("team/app"), ["ap-south-1", "eu-west-1", "us-west-2"]);
        let only = ReplicationConfiguration { rules: vec![rule(&[("us-west-2", "123456789012")], &["prod"])] };
        assert!(only.destinations_for("dev/app").is_empty());
        assert_eq!(only.destinations_for("production").len(), 1, "a prefix, not a namespace");
    }

    #[test]
    fn prefix_filters_follow_the_model() {
        for ok in ["prod", "prod/", "prod/app", "a1", "team-a/svc_"] {
            assert!(is_prefix_filter(ok), "{ok}");
        }
        for bad in ["", "a", "Prod", "prod//x", "/prod", "prod app", &"a".repeat(257)] {
            assert!(!is_prefix_filter(bad), "{bad}");
        }
    }
}
