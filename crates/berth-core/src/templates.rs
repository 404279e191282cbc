//! Repository creation templates (ECR's Create/Describe/Update/DeleteRepositoryCreationTemplate)
//! and the repositories berth creates from them.
//!
//! A template is keyed by a repository-name prefix or `ROOT`. ECR assumes a `/` after every
//! prefix ("a prefix of prod would apply to all repositories beginning with prod/"), so `prod`
//! and `prod/` are one template: the prefix is kept without its trailing slash. A repository
//! berth creates for one of the template's `appliedFor` reasons takes the longest matching
//! prefix's template, else `ROOT`'s, else ECR's defaults. Every setting is checked when the
//! template is written, with the validators the repository actions use; only the KMS key is
//! resolved when a repository is created from it (as CreateRepository resolves it).

use berth_iam::policy::Policy;
use berth_lifecycle::parse_policy;
use berth_store::{CreateTemplateOutcome, EncryptionType, InitialPolicies, RepositoryRow, RepositorySettings, TagMutability, TemplateRow};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::immutability::{self, ExclusionFilter};
use crate::names::{follows_name_grammar, RegistryRef, Repo};
use crate::repositories::{encryption, invalid_resource_policy, validate_tags};
use crate::{Registry, RegistryError};

/// The prefix of the template that applies to every repository no other template matches.
pub const ROOT: &str = "ROOT";
/// Templates per registry. ECR documents no quota; a bound keeps DescribeRepositoryCreationTemplates
/// and template matching small, and CreateRepositoryCreationTemplate says LimitExceededException.
pub const MAX_TEMPLATES: u32 = 100;
const MAX_PREFIX_LEN: usize = 256;
const MAX_DESCRIPTION_CHARS: usize = 256;

/// Why berth creates a repository (ECR's `RCTAppliedFor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedFor {
    Replication,
    PullThroughCache,
    CreateOnPush,
}

impl AppliedFor {
    pub const ALL: [AppliedFor; 3] = [AppliedFor::Replication, AppliedFor::PullThroughCache, AppliedFor::CreateOnPush];

    pub fn as_str(self) -> &'static str {
        match self {
            AppliedFor::Replication => "REPLICATION",
            AppliedFor::PullThroughCache => "PULL_THROUGH_CACHE",
            AppliedFor::CreateOnPush => "CREATE_ON_PUSH",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A stored template, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub prefix: String,
    pub description: Option<String>,
    pub encryption_type: EncryptionType,
    pub kms_key: Option<String>,
    pub resource_tags: Vec<(String, String)>,
    pub tag_mutability: TagMutability,
    pub exclusion_filters: Vec<ExclusionFilter>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub applied_for: Vec<AppliedFor>,
    pub custom_role_arn: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What Create asks for, or what Update changes (a member left out keeps its value; an empty
/// policy text removes that policy).
#[derive(Debug, Clone, Default)]
pub struct TemplateInput {
    pub description: Option<String>,
    /// `encryptionType` and `kmsKey` (an empty key is none).
    pub encryption: Option<(String, Option<String>)>,
    pub resource_tags: Option<Vec<(String, String)>>,
    pub tag_mutability: Option<String>,
    pub exclusion_filters: Option<Vec<ExclusionFilter>>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub applied_for: Option<Vec<String>>,
    pub custom_role_arn: Option<String>,
}

/// A page of templates; `more` when templates follow the last one.
pub struct TemplatePage {
    pub templates: Vec<Template>,
    pub more: bool,
}

/// ECR's `Tag` shape, as the stored JSON spells it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoredTag {
    key: String,
    value: String,
}

/// The template key for `prefix`: `ROOT`, or a name prefix without its assumed trailing `/`.
pub fn normalize_prefix(prefix: &str) -> Result<String> {
    if prefix == ROOT {
        return Ok(ROOT.to_string());
    }
    let bare = prefix.strip_suffix('/').unwrap_or(prefix);
    if prefix.len() > MAX_PREFIX_LEN || bare.is_empty() || !follows_name_grammar(bare) {
        return Err(RegistryError::invalid(format!(
            "Invalid parameter at 'prefix' failed to satisfy constraint: 'must be ROOT or a repository name prefix of at most \
             {MAX_PREFIX_LEN} characters (lowercase letters, digits, . _ __ - separators, / between components)' ({prefix:?})"
        )));
    }
    Ok(bare.to_string())
}

/// The template prefixes that could match `name`, ROOT included: `a/b/c` → `a`, `a/b`, ROOT.
fn candidate_prefixes(name: &str) -> Vec<String> {
    let mut out: Vec<String> = name.match_indices('/').map(|(i, _)| name[..i].to_string()).collect();
    out.push(ROOT.to_string());
    out
}

fn invalid_at(member: &str, message: impl std::fmt::Display) -> RegistryError {
    RegistryError::invalid(format!("Invalid parameter at '{member}' failed to satisfy constraint: '{message}'"))
}

fn applied_for(values: &[String]) -> Result<Vec<AppliedFor>> {
    let mut out = Vec::new();
    for v in values {
        let a = AppliedFor::parse(v)
            .ok_or_else(|| invalid_at("appliedFor", format!("{v:?} is not one of REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH")))?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        return Err(invalid_at("appliedFor", "Member must have length greater than or equal to 1"));
    }
    Ok(out)
}

/// The tags a created repository gets: the repository limits, reported as this action's
/// InvalidParameterException (the template actions have no tag exceptions).
fn resource_tags(tags: &[(String, String)]) -> Result<String> {
    validate_tags(tags).map_err(|e| match e {
        RegistryError::TooManyTags(m) | RegistryError::InvalidTagParameter(m) => invalid_at("resourceTags", m),
        other => other,
    })?;
    for (i, (k, _)) in tags.iter().enumerate() {
        if tags[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(invalid_at("resourceTags", format!("tag key {k:?} is given twice")));
        }
    }
    let stored: Vec<StoredTag> = tags.iter().map(|(k, v)| StoredTag { key: k.clone(), value: v.clone() }).collect();
    serde_json::to_string(&stored).map_err(|e| RegistryError::invalid(format!("resourceTags: {e}")))
}

/// The role ECR would assume must be an IAM role of the registry's own account.
fn custom_role_arn(scope: &RegistryRef, arn: &str) -> Result<()> {
    let ok = arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(":role/"))
        .is_some_and(|(account, name)| account == scope.account && !name.is_empty());
    if !ok {
        return Err(invalid_at(
            "customRoleArn",
            format!(
                "must be the ARN of an IAM role in the registry's account ({}): arn:aws:iam::{}:role/<name>",
                scope.account, scope.account
            ),
        ));
    }
    Ok(())
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// Applies `input` to `row` (a new template's defaults, or the stored one), checking each
/// member it sets with the rule the repository actions use for the same setting.
fn apply(scope: &RegistryRef, row: &mut TemplateRow, input: TemplateInput) -> Result<()> {
    if let Some(d) = input.description {
        if d.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(invalid_at("description", format!("Member must have length less than or equal to {MAX_DESCRIPTION_CHARS}")));
        }
        row.description = non_empty(Some(d));
    }
    if let Some((t, key)) = input.encryption {
        let (encryption_type, kms_key) = encryption(Some(&t), non_empty(key).as_deref())?;
        row.encryption_type = encryption_type;
        row.kms_key = kms_key;
    }
    if let Some(tags) = input.resource_tags {
        row.resource_tags = resource_tags(&tags)?;
    }
    if input.tag_mutability.is_some() || input.exclusion_filters.is_some() {
        // A new setting drops the old filters unless it brings its own.
        let mutability = input.tag_mutability.unwrap_or_else(|| row.tag_mutability.as_str().to_string());
        let filters = input.exclusion_filters.unwrap_or_default();
        let (setting, exclusions) = immutability::validate(&mutability, &filters)?;
        row.tag_mutability = setting;
        row.tag_mutability_exclusions = exclusions;
    }
    if let Some(p) = input.repository_policy {
        let p = non_empty(Some(p));
        if let Some(text) = &p {
            Policy::parse_resource(text).map_err(|e| invalid_resource_policy("repository", e))?;
        }
        row.repository_policy = p;
    }
    if let Some(p) = input.lifecycle_policy {
        let p = non_empty(Some(p));
        if let Some(text) = &p {
            parse_policy(text).map_err(crate::lifecycle::invalid_policy)?;
        }
        row.lifecycle_policy = p;
    }
    if let Some(values) = input.applied_for {
        row.applied_for = applied_for(&values)?.into_iter().map(|a| a.as_str().to_string()).collect();
    }
    if let Some(arn) = input.custom_role_arn {
        let arn = non_empty(Some(arn));
        if let Some(a) = &arn {
            custom_role_arn(scope, a)?;
        }
        row.custom_role_arn = arn;
    }
    Ok(())
}

fn decode(row: TemplateRow) -> Result<Template> {
    let tags: Vec<StoredTag> = serde_json::from_str(&row.resource_tags)
        .map_err(|e| RegistryError::invalid(format!("stored template {:?} has unreadable tags: {e}", row.prefix)))?;
    let filters: Vec<ExclusionFilter> = match &row.tag_mutability_exclusions {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| RegistryError::invalid(format!("stored template {:?} has unreadable exclusion filters: {e}", row.prefix)))?,
        None => Vec::new(),
    };
    Ok(Template {
        prefix: row.prefix,
        description: row.description,
        encryption_type: row.encryption_type,
        kms_key: row.kms_key,
        resource_tags: tags.into_iter().map(|t| (t.key, t.value)).collect(),
        tag_mutability: row.tag_mutability,
        exclusion_filters: filters,
        repository_policy: row.repository_policy,
        lifecycle_policy: row.lifecycle_policy,
        applied_for: row.applied_for.iter().filter_map(|a| AppliedFor::parse(a)).collect(),
        custom_role_arn: row.custom_role_arn,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn not_found(scope: &RegistryRef, prefix: &str) -> RegistryError {
    RegistryError::TemplateNotFound(format!(
        "The repository creation template with prefix '{prefix}' does not exist in the registry with id '{}'",
        scope.account
    ))
}

impl Registry {
    /// CreateRepositoryCreationTemplate.
    pub async fn create_repository_creation_template(&self, scope: &RegistryRef, prefix: &str, input: TemplateInput) -> Result<Template> {
        let now = self.now();
        let mut row = TemplateRow {
            prefix: normalize_prefix(prefix)?,
            description: None,
            encryption_type: EncryptionType::Aes256,
            kms_key: None,
            resource_tags: "[]".to_string(),
            tag_mutability: TagMutability::Mutable,
            tag_mutability_exclusions: None,
            repository_policy: None,
            lifecycle_policy: None,
            applied_for: Vec::new(),
            custom_role_arn: None,
            created_at: now,
            updated_at: now,
        };
        if input.applied_for.is_none() {
            return Err(invalid_at("appliedFor", "Member must not be null"));
        }
        apply(scope, &mut row, input)?;
        match self.meta.create_template(&scope.account, &scope.region, &row, MAX_TEMPLATES).await? {
            CreateTemplateOutcome::Created => decode(row),
            CreateTemplateOutcome::Exists => Err(RegistryError::TemplateAlreadyExists(format!(
                "The repository creation template with prefix '{}' already exists in the registry with id '{}'",
                row.prefix, scope.account
            ))),
            CreateTemplateOutcome::LimitReached => Err(RegistryError::LimitExceeded(format!(
                "The registry with id '{}' already has {MAX_TEMPLATES} repository creation templates",
                scope.account
            ))),
        }
    }

    /// UpdateRepositoryCreationTemplate: the members given replace the stored ones.
    pub async fn update_repository_creation_template(&self, scope: &RegistryRef, prefix: &str, input: TemplateInput) -> Result<Template> {
        let prefix = normalize_prefix(prefix)?;
        let mut row = self.template_row(scope, &prefix).await?;
        apply(scope, &mut row, input)?;
        row.updated_at = self.now().max(row.created_at);
        if !self.meta.update_template(&scope.account, &scope.region, &row).await? {
            return Err(not_found(scope, &prefix));
        }
        decode(row)
    }

    /// DeleteRepositoryCreationTemplate: returns what was deleted.
    pub async fn delete_repository_creation_template(&self, scope: &RegistryRef, prefix: &str) -> Result<Template> {
        let prefix = normalize_prefix(prefix)?;
        let row = self.meta.delete_template(&scope.account, &scope.region, &prefix).await?.ok_or_else(|| not_found(scope, &prefix))?;
        decode(row)
    }

    /// DescribeRepositoryCreationTemplates: the templates named by `prefixes` (all when empty),
    /// in prefix order after `after`, at most `limit`. Prefixes with no template are left out.
    pub async fn describe_repository_creation_templates(
        &self,
        scope: &RegistryRef,
        prefixes: &[String],
        after: Option<&str>,
        limit: u32,
    ) -> Result<TemplatePage> {
        let mut rows = if prefixes.is_empty() {
            self.meta.list_templates(&scope.account, &scope.region, after, limit.saturating_add(1)).await?
        } else {
            let keys = prefixes.iter().map(|p| normalize_prefix(p)).collect::<Result<Vec<_>>>()?;
            let mut rows = self.meta.templates_with_prefixes(&scope.account, &scope.region, &keys).await?;
            rows.retain(|r| after.is_none_or(|a| r.prefix.as_str() > a));
            rows
        };
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(TemplatePage { templates: rows.into_iter().map(decode).collect::<Result<_>>()?, more })
    }

    /// The template a repository named `repo` gets when berth creates it for `reason`: the
    /// longest prefix matching the name whose template applies to `reason`, else ROOT's.
    pub async fn template_for(&self, scope: &RegistryRef, repository_name: &str, reason: AppliedFor) -> Result<Option<Template>> {
        let candidates = candidate_prefixes(repository_name);
        let rows = self.meta.templates_with_prefixes(&scope.account, &scope.region, &candidates).await?;
        let best = rows.into_iter().filter(|r| r.applied_for.iter().any(|a| a == reason.as_str())).max_by_key(|r| {
            if r.prefix == ROOT {
                0
            } else {
                r.prefix.len() + 1
            }
        });
        best.map(decode).transpose()
    }

    /// Creates `repo` with `template`'s settings (ECR's defaults without one), its tags,
    /// repository policy and lifecycle policy in one transaction, so no other request sees it
    /// half made. A KMS template key is resolved as CreateRepository resolves one.
    /// RepositoryExists if it exists already.
    pub async fn create_repository_from_template(&self, repo: &Repo, template: Option<&Template>) -> Result<RepositoryRow> {
        let Some(t) = template else {
            return self.create_repository_with(repo, &RepositorySettings::ecr_defaults(), &[], InitialPolicies::default()).await;
        };
        let kms_key = match t.encryption_type.uses_kms() {
            true => Some(self.repository_kms_key(&repo.registry(), t.kms_key.as_deref()).await?),
            false => None,
        };
        let exclusions = match t.exclusion_filters.is_empty() {
            true => None,
            false => Some(serde_json::to_string(&t.exclusion_filters).map_err(|e| RegistryError::invalid(e.to_string()))?),
        };
        let settings = RepositorySettings {
            tag_mutability: t.tag_mutability,
            tag_mutability_exclusions: exclusions,
            scan_on_push: false,
            encryption_type: t.encryption_type,
            kms_key,
        };
        let policies =
            InitialPolicies { repository_policy: t.repository_policy.as_deref(), lifecycle_policy: t.lifecycle_policy.as_deref() };
        self.create_repository_with(repo, &settings, &t.resource_tags, policies).await
    }

    async fn create_repository_with(
        &self,
        repo: &Repo,
        settings: &RepositorySettings,
        tags: &[(String, String)],
        policies: InitialPolicies<'_>,
    ) -> Result<RepositoryRow> {
        self.meta.ensure_account(&repo.key().account, self.now()).await?;
        let created = self.meta.create_repository_with_policies(repo.key(), settings, tags, policies, self.now()).await?;
        // Authorization caches may hold "no such repository, no policy" for this name.
        self.caches.invalidate_repo_authz(repo.key());
        created.ok_or_else(|| RegistryError::RepositoryExists(repo.clone()))
    }

    async fn template_row(&self, scope: &RegistryRef, prefix: &str) -> Result<TemplateRow> {
        let rows = self.meta.templates_with_prefixes(&scope.account, &scope.region, &[prefix.to_string()]).await?;
        rows.into_iter().next().ok_or_else(|| not_found(scope, prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_root_or_name_prefixes_without_the_assumed_slash() {
        assert_eq!(normalize_prefix("ROOT").unwrap(), "ROOT");
        assert_eq!(normalize_prefix("prod").unwrap(), "prod");
        assert_eq!(normalize_prefix("prod/").unwrap(), "prod");
        assert_eq!(normalize_prefix("prod/team-a").unwrap(), "prod/team-a");
        assert_eq!(normalize_prefix("a").unwrap(), "a");
        assert_eq!(normalize_prefix("root").unwrap(), "root", "a namespace called root, not ROOT");
        for bad in ["", "/", "Prod", "ROOT/", "prod//x", "-prod", "prod/-x", "prod//", &"a".repeat(257)] {
            assert!(matches!(normalize_prefix(bad), Err(RegistryError::InvalidParameter(_))), "{bad:?}");
        }
    }

    #[test]
    fn candidates_are_every_namespace_of_the_name_and_root() {
        assert_eq!(candidate_prefixes("a/b/c"), vec!["a", "a/b", "ROOT"]);
        assert_eq!(candidate_prefixes("app"), vec!["ROOT"]);
    }

    #[test]
    fn custom_roles_are_roles_of_the_registrys_account() {
        let scope = RegistryRef { account: "123456789012".into(), region: "us-east-1".into() };
        assert!(custom_role_arn(&scope, "arn:aws:iam::123456789012:role/ecr-templates").is_ok());
        assert!(custom_role_arn(&scope, "arn:aws:iam::210987654321:role/ecr-templates").is_err());
        assert!(custom_role_arn(&scope, "arn:aws:iam::123456789012:user/someone").is_err());
        assert!(custom_role_arn(&scope, "arn:aws:iam::123456789012:role/").is_err());
    }
}
