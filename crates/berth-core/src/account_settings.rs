//! ECR's account settings (GetAccountSetting / PutAccountSetting) and pull-time update
//! exclusions, per registry (account + region).
//!
//! Both are read on hot paths (every manifest GET asks whether its caller is excluded; a
//! cross-repository mount asks whether mounting is on), so a registry's settings and
//! exclusions are read once into [`RegistrySettings`] and cached: invalidated by this
//! process's writes, and expiring after a few seconds when other nodes share the metadata
//! store (their writes never reach this process's invalidations).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use berth_store::{Digest, Millis, PullTimeExclusionRow, RegisterExclusionOutcome};

use crate::error::Result;
use crate::{Registry, RegistryError, RegistryRef, Repo};

/// ECR's bound on a registry's exclusion list (the model's `PullTimeUpdateExclusionList`).
pub const MAX_PULL_TIME_EXCLUSIONS: u32 = 100;
/// `PrincipalArn`'s maximum length in the model.
const MAX_PRINCIPAL_ARN: usize = 200;

pub const BASIC_SCAN_TYPE_VERSION: &str = "BASIC_SCAN_TYPE_VERSION";
pub const REGISTRY_POLICY_SCOPE: &str = "REGISTRY_POLICY_SCOPE";
pub const BLOB_MOUNTING: &str = "BLOB_MOUNTING";

/// A setting ECR knows: the values PutAccountSetting takes, and what GetAccountSetting
/// answers before any was put.
struct Setting {
    name: &'static str,
    values: &'static [&'static str],
    default: &'static str,
}

/// CLAIR basic scanning ended on 2 February 2026 (every account moved to AWS_NATIVE; the model
/// now lists AWS_NATIVE only). V1 stays settable: the API reference still lists it, and ECR
/// only recommends against going back. BLOB_MOUNTING defaults to ENABLED here, not to ECR's
/// DISABLED: berth has always mounted within a registry, and turning that off for every
/// existing install would make re-pushes upload bytes it already holds.
const SETTINGS: &[Setting] = &[
    Setting { name: BASIC_SCAN_TYPE_VERSION, values: &["AWS_NATIVE"], default: "AWS_NATIVE" },
    Setting { name: REGISTRY_POLICY_SCOPE, values: &["V1", "V2"], default: "V2" },
    Setting { name: BLOB_MOUNTING, values: &["ENABLED", "DISABLED"], default: "ENABLED" },
];

fn setting(name: &str) -> Result<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        RegistryError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            names.join(", ")
        ))
    })
}

/// A registry's settings and exclusions as last read (what the cache holds).
#[derive(Debug, Default)]
pub(crate) struct RegistrySettings {
    values: HashMap<String, String>,
    excluded: HashSet<String>,
}

impl RegistrySettings {
    fn value(&self, s: &Setting) -> String {
        self.values.get(s.name).cloned().unwrap_or_else(|| s.default.to_string())
    }
}

/// One page of ListPullTimeUpdateExclusions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExclusionPage {
    pub principal_arns: Vec<String>,
    /// More follow the last ARN of this page.
    pub more: bool,
}

/// `PrincipalArn` as the model has it: an IAM user or role of a 12-digit account.
fn check_principal_arn(arn: &str) -> Result<()> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        regex::Regex::new(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$").expect("a valid pattern")
    });
    if arn.len() > MAX_PRINCIPAL_ARN || !pattern.is_match(arn) {
        return Err(RegistryError::invalid(format!(
            "Invalid parameter at 'principalArn' failed to satisfy constraint: 'Member must be the ARN of an IAM user or role \
             (arn:aws:iam::<account>:user/<name> or role/<name>), at most {MAX_PRINCIPAL_ARN} characters'"
        )));
    }
    Ok(())
}

impl Registry {
    /// GetAccountSetting: the stored value, else ECR's default.
    pub async fn account_setting(&self, scope: &RegistryRef, name: &str) -> Result<String> {
        let s = setting(name)?;
        Ok(self.registry_settings(scope).await?.value(s))
    }

    /// PutAccountSetting.
    pub async fn put_account_setting(&self, scope: &RegistryRef, name: &str, value: &str) -> Result<()> {
        let s = setting(name)?;
        if !s.values.contains(&value) {
            return Err(RegistryError::invalid(format!(
                "Invalid parameter at 'value' failed to satisfy constraint: 'Member must be one of [{}] for {name}'",
                s.values.join(", ")
            )));
        }
        self.meta.put_account_setting(&scope.account, &scope.region, name, value).await?;
        self.caches.invalidate_registry_settings(&scope.account, &scope.region);
        tracing::info!(account = %scope.account, region = %scope.region, name, value, "account setting changed");
        Ok(())
    }

    /// RegisterPullTimeUpdateExclusion: when it was created.
    pub async fn register_pull_time_exclusion(&self, scope: &RegistryRef, principal_arn: &str) -> Result<Millis> {
        check_principal_arn(principal_arn)?;
        let row = PullTimeExclusionRow { principal_arn: principal_arn.to_string(), created_at: self.now() };
        let outcome = self.meta.register_pull_time_exclusion(&scope.account, &scope.region, &row, MAX_PULL_TIME_EXCLUSIONS).await?;
        match outcome {
            RegisterExclusionOutcome::Registered => {}
            RegisterExclusionOutcome::Exists => {
                return Err(RegistryError::ExclusionExists(format!(
                    "The principal '{principal_arn}' is already excluded from pull time updates in the registry with id '{}'",
                    scope.account
                )))
            }
            RegisterExclusionOutcome::LimitReached => {
                return Err(RegistryError::LimitExceeded(format!(
                    "The registry with id '{}' already has {MAX_PULL_TIME_EXCLUSIONS} pull time update exclusions, the maximum",
                    scope.account
                )))
            }
        }
        self.caches.invalidate_registry_settings(&scope.account, &scope.region);
        tracing::info!(account = %scope.account, region = %scope.region, principal = principal_arn, "pull time update exclusion registered");
        Ok(row.created_at)
    }

    /// DeregisterPullTimeUpdateExclusion.
    pub async fn deregister_pull_time_exclusion(&self, scope: &RegistryRef, principal_arn: &str) -> Result<()> {
        check_principal_arn(principal_arn)?;
        if !self.meta.deregister_pull_time_exclusion(&scope.account, &scope.region, principal_arn).await? {
            return Err(RegistryError::ExclusionNotFound(format!(
                "The principal '{principal_arn}' is not excluded from pull time updates in the registry with id '{}'",
                scope.account
            )));
        }
        self.caches.invalidate_registry_settings(&scope.account, &scope.region);
        tracing::info!(account = %scope.account, region = %scope.region, principal = principal_arn, "pull time update exclusion deregistered");
        Ok(())
    }

    /// ListPullTimeUpdateExclusions: up to `limit` ARNs after `after`, in byte order (read from
    /// the store, not the cache: a listing must show a registration at once, on any node).
    pub async fn pull_time_exclusions(&self, scope: &RegistryRef, after: Option<&str>, limit: usize) -> Result<ExclusionPage> {
        let rows = self.meta.pull_time_exclusions(&scope.account, &scope.region).await?;
        let mut arns = rows.into_iter().map(|r| r.principal_arn).filter(|a| after.is_none_or(|after| a.as_str() > after));
        let principal_arns: Vec<String> = arns.by_ref().take(limit.max(1)).collect();
        Ok(ExclusionPage { more: arns.next().is_some(), principal_arns })
    }

    /// A manifest GET (`/v2/`) or BatchGetImage by `puller` (a principal ARN): notes the pull
    /// unless the registry excludes that principal.
    pub(crate) async fn note_pull(&self, repo: &Repo, digest: &Digest, puller: Option<&str>) {
        if let Some(arn) = puller {
            match self.registry_settings(&repo.registry()).await {
                Ok(s) if s.excluded.contains(arn) => return,
                Ok(_) => {}
                // The pull is served either way; a pull time recorded wrongly is the lesser harm
                // than failing a pull the manifest read already answered.
                Err(e) => tracing::warn!(error = %e, repository = %repo, "could not read pull time update exclusions; recording the pull"),
            }
        }
        self.pulls.note(repo.key(), digest, self.now());
    }

    /// Whether a cross-repository mount into `repo` may link (BLOB_MOUNTING).
    pub(crate) async fn blob_mounting_enabled(&self, repo: &Repo) -> Result<bool> {
        let s = setting(BLOB_MOUNTING)?;
        Ok(self.registry_settings(&repo.registry()).await?.value(s) == "ENABLED")
    }

    async fn registry_settings(&self, scope: &RegistryRef) -> Result<Arc<RegistrySettings>> {
        let key = (scope.account.clone(), scope.region.clone());
        if let Some(hit) = self.caches.registry_settings.get(&key) {
            return Ok(hit);
        }
        let generation = self.caches.generation();
        let values = self.meta.account_settings(&scope.account, &scope.region).await?.into_iter().collect();
        let excluded = self.meta.pull_time_exclusions(&scope.account, &scope.region).await?.into_iter().map(|r| r.principal_arn).collect();
        let settings = Arc::new(RegistrySettings { values, excluded });
        self.caches.fill(&self.caches.registry_settings, generation, key, settings.clone());
        Ok(settings)
    }
}
