//! Repository lifecycle and settings (the ECR control plane's repository actions).

use berth_iam::policy::{Policy, PolicyError};
use berth_store::{DeleteRepositoryOutcome, EncryptionType, RepositoryRow, RepositorySettings, TagMutability};

use crate::auth::{Principal, Resource};
use crate::error::{Invalid, Param, Result};
use crate::immutability::{self, ExclusionFilter};
use crate::names::{RegistryRef, Repo, RepositoryName};
use crate::{Registry, RegistryError};

pub const MAX_RESOURCE_TAGS: usize = 50;

/// What CreateRepository asks for.
#[derive(Debug, Clone, Default)]
pub struct NewRepository {
    pub tag_mutability: Option<String>,
    pub exclusion_filters: Vec<ExclusionFilter>,
    pub scan_on_push: bool,
    pub encryption_type: Option<String>,
    pub kms_key: Option<String>,
    pub tags: Vec<(String, String)>,
}

pub(crate) fn validate_tags(tags: &[(String, String)]) -> Result<()> {
    if tags.len() > MAX_RESOURCE_TAGS {
        return Err(RegistryError::TooManyTags(format!("a repository can have at most {MAX_RESOURCE_TAGS} tags")));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 || k.starts_with("aws:") {
            return Err(RegistryError::InvalidTagParameter(format!(
                "tag {k:?}: keys must be 1-128 characters not starting with aws:, values at most 256 characters"
            )));
        }
    }
    Ok(())
}

pub(crate) fn encryption(t: Option<&str>, kms_key: Option<&str>) -> Result<(EncryptionType, Option<String>)> {
    let t = t.unwrap_or("AES256");
    let Some(encryption) = EncryptionType::parse(t) else {
        return Err(RegistryError::InvalidParameter(Invalid::of(
            Param::EncryptionType,
            format!("encryptionType {t:?} is not AES256, KMS or KMS_DSSE"),
        )));
    };
    if kms_key.is_some() && !encryption.uses_kms() {
        return Err(RegistryError::InvalidParameter(Invalid::of(
            Param::KmsKey,
            "kmsKey can only be given with encryptionType KMS or KMS_DSSE",
        )));
    }
    Ok((encryption, kms_key.map(str::to_string)))
}

/// ECR's answer to a policy it refuses: its length constraint in the API's own words (so the
/// console and the admin CLI say what the API says), anything else as a policy problem.
pub(crate) fn invalid_resource_policy(kind: &str, e: PolicyError) -> RegistryError {
    match e {
        PolicyError::TooLong { max, .. } => RegistryError::invalid(format!(
            "Invalid parameter at 'policyText' failed to satisfy constraint: 'Member must have length less than or equal to {max}'"
        )),
        e => RegistryError::invalid(format!("Invalid {kind} policy provided: {e}")),
    }
}

/// A page of repositories the caller may describe.
pub struct RepositoryPage {
    pub rows: Vec<RepositoryRow>,
    /// Whether the registry has more repositories after `last_scanned`.
    pub more: bool,
    /// The last name looked at (the cursor for the next page, whether or not it was visible).
    pub last_scanned: Option<String>,
}

impl Registry {
    /// DescribeRepositories without names: a caller allowed on `repository/*` sees every row; one
    /// allowed on some repositories sees those; one allowed on none is refused, as ECR does.
    pub async fn describable_repositories(
        &self,
        principal: &Principal,
        scope: &RegistryRef,
        after: Option<&str>,
        limit: u32,
    ) -> Result<RepositoryPage> {
        let action = &crate::public::iam_action(scope, "DescribeRepositories");
        let everything = self.permits(principal, action, Resource::Registry(scope)).await?
            || self.permits(principal, action, Resource::AllRepositories(scope)).await?;
        let mut rows = self.repositories(scope, after, limit.saturating_add(1)).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let last_scanned = rows.last().map(|r| r.key.name.clone());
        if !everything {
            let mut visible = Vec::with_capacity(rows.len());
            for row in rows {
                let repo = Repo::new(scope, RepositoryName::parse(&row.key.name)?);
                if self.permits(principal, action, Resource::Repository(&repo)).await? {
                    visible.push(row);
                }
            }
            if visible.is_empty() {
                self.authorize(principal, action, Resource::AllRepositories(scope)).await?;
            }
            rows = visible;
        }
        Ok(RepositoryPage { rows, more, last_scanned })
    }

    /// CreateRepository on behalf of `principal`: the name needs `ecr:CreateRepository` and,
    /// when tags come with it, `ecr:TagResource` too (AWS checks both), whichever adapter asks
    /// (`ecr-public:` actions in a public registry).
    pub async fn create_repository_as(&self, principal: &Principal, repo: &Repo, req: NewRepository) -> Result<RepositoryRow> {
        let scope = repo.registry();
        self.authorize(principal, &crate::public::iam_action(&scope, "CreateRepository"), Resource::Repository(repo)).await?;
        if !req.tags.is_empty() {
            self.authorize(principal, &crate::public::iam_action(&scope, "TagResource"), Resource::Repository(repo)).await?;
        }
        self.create_repository(repo, req).await
    }

    pub async fn create_repository(&self, repo: &Repo, req: NewRepository) -> Result<RepositoryRow> {
        let mutability = req.tag_mutability.as_deref().unwrap_or(TagMutability::Mutable.as_str());
        let (mutability, exclusions) = immutability::validate(mutability, &req.exclusion_filters)?;
        let (encryption_type, kms_key) = encryption(req.encryption_type.as_deref(), req.kms_key.as_deref())?;
        validate_tags(&req.tags)?;
        let kms_key = match encryption_type.uses_kms() {
            true => Some(self.repository_kms_key(&repo.registry(), kms_key.as_deref()).await?),
            false => None,
        };
        let settings = RepositorySettings {
            tag_mutability: mutability,
            tag_mutability_exclusions: exclusions,
            scan_on_push: req.scan_on_push,
            encryption_type,
            kms_key,
        };
        self.meta.ensure_account(&repo.key().account, self.now()).await?;
        let created = self.meta.create_repository(repo.key(), &settings, &req.tags, self.now()).await?;
        self.caches.invalidate_repo_authz(repo.key());
        created.ok_or_else(|| RegistryError::RepositoryExists(repo.clone()))
    }

    pub async fn repository(&self, repo: &Repo) -> Result<RepositoryRow> {
        self.existing_repository(repo).await
    }

    /// A page of a registry's repositories, in name order after `after`.
    pub async fn repositories(&self, scope: &RegistryRef, after: Option<&str>, limit: u32) -> Result<Vec<RepositoryRow>> {
        Ok(self.meta.list_repositories(&scope.account, &scope.region, after, limit).await?)
    }

    pub async fn delete_repository(&self, repo: &Repo, force: bool) -> Result<RepositoryRow> {
        let outcome = self.meta.delete_repository(repo.key(), force).await?;
        self.caches.invalidate_repository(repo.key());
        self.forget_public_repository(repo.key());
        match outcome {
            DeleteRepositoryOutcome::Deleted(row) => Ok(*row),
            DeleteRepositoryOutcome::NotFound => Err(RegistryError::NameUnknown(repo.clone())),
            DeleteRepositoryOutcome::NotEmpty => Err(RegistryError::RepositoryNotEmpty(repo.clone())),
        }
    }

    pub async fn set_tag_mutability(&self, repo: &Repo, mutability: &str, filters: &[ExclusionFilter]) -> Result<RepositoryRow> {
        let (mutability, exclusions) = immutability::validate(mutability, filters)?;
        let mut row = self.existing_repository(repo).await?;
        row.settings.tag_mutability = mutability;
        row.settings.tag_mutability_exclusions = exclusions;
        self.meta.update_repository_settings(repo.key(), &row.settings).await?;
        Ok(row)
    }

    pub async fn set_scan_on_push(&self, repo: &Repo, scan_on_push: bool) -> Result<RepositoryRow> {
        let mut row = self.existing_repository(repo).await?;
        row.settings.scan_on_push = scan_on_push;
        self.meta.update_repository_settings(repo.key(), &row.settings).await?;
        Ok(row)
    }

    pub async fn tag_repository(&self, repo: &Repo, tags: &[(String, String)]) -> Result<()> {
        validate_tags(tags)?;
        let existing = self.meta.list_resource_tags(repo.key()).await?;
        let total = existing.iter().filter(|(k, _)| !tags.iter().any(|(n, _)| n == k)).count() + tags.len();
        if total > MAX_RESOURCE_TAGS {
            return Err(RegistryError::TooManyTags(format!("a repository can have at most {MAX_RESOURCE_TAGS} tags")));
        }
        let tagged = self.meta.put_resource_tags(repo.key(), tags).await?;
        self.caches.invalidate_repo_authz(repo.key());
        if !tagged {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        Ok(())
    }

    pub async fn untag_repository(&self, repo: &Repo, keys: &[String]) -> Result<()> {
        let untagged = self.meta.remove_resource_tags(repo.key(), keys).await?;
        self.caches.invalidate_repo_authz(repo.key());
        if !untagged {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        Ok(())
    }

    pub async fn repository_tags(&self, repo: &Repo) -> Result<Vec<(String, String)>> {
        self.existing_repository(repo).await?;
        Ok(self.meta.list_resource_tags(repo.key()).await?)
    }

    pub async fn set_repository_policy(&self, repo: &Repo, policy: &str) -> Result<()> {
        Policy::parse_resource(policy).map_err(|e| invalid_resource_policy("repository", e))?;
        let set = self.meta.set_repository_policy(repo.key(), Some(policy)).await?;
        self.caches.invalidate_repo_authz(repo.key());
        if !set {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        Ok(())
    }

    pub async fn repository_policy(&self, repo: &Repo) -> Result<String> {
        self.existing_repository(repo).await?.policy.ok_or_else(|| {
            RegistryError::PolicyNotFound(format!(
                "Repository policy does not exist for the repository with name '{repo}' in the registry with id '{}'",
                repo.key().account
            ))
        })
    }

    pub async fn delete_repository_policy(&self, repo: &Repo) -> Result<String> {
        let policy = self.repository_policy(repo).await?;
        self.meta.set_repository_policy(repo.key(), None).await?;
        self.caches.invalidate_repo_authz(repo.key());
        Ok(policy)
    }

    pub async fn set_registry_policy(&self, scope: &RegistryRef, policy: &str) -> Result<()> {
        Policy::parse_resource(policy).map_err(|e| invalid_resource_policy("registry", e))?;
        self.meta.set_registry_policy(&scope.account, &scope.region, Some(policy)).await?;
        self.caches.invalidate_registry_policy(&scope.account, &scope.region);
        Ok(())
    }

    pub async fn registry_policy(&self, scope: &RegistryRef) -> Result<String> {
        self.meta.get_registry_policy(&scope.account, &scope.region).await?.ok_or_else(|| {
            RegistryError::RegistryPolicyNotFound(format!("Registry policy does not exist in the registry with id '{}'", scope.account))
        })
    }

    pub async fn delete_registry_policy(&self, scope: &RegistryRef) -> Result<String> {
        let policy = self.registry_policy(scope).await?;
        self.meta.set_registry_policy(&scope.account, &scope.region, None).await?;
        self.caches.invalidate_registry_policy(&scope.account, &scope.region);
        Ok(policy)
    }
}
