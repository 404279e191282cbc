//! ECR's pull-through cache: rules (Create/Describe/Update/Delete/ValidatePullThroughCacheRule)
//! and pulling images of another registry through this one (`fetch.rs`, `flight.rs`, `window.rs`).
//!
//! A rule maps repositories named `<prefix>/<rest>` (any name for `ROOT`) to `<rest>` (under the
//! rule's upstream repository prefix) at its upstream registry. Unlike ECR, any OCI registry
//! may be an upstream; plain HTTP only when the operator allows it
//! (`RegistryConfig::allow_insecure_upstreams`). A cache prefix is kept without its trailing
//! `/`, as creation templates keep theirs, and the longest matching prefix wins over `ROOT`.

mod children;
mod credentials;
mod fetch;
mod flight;
mod referrers;
mod window;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::{CreateRuleOutcome, PullThroughRuleRow};
use url::Url;

pub(crate) use fetch::PullThroughState;

use crate::error::{PullThroughRefusal, Result};
use crate::names::{follows_name_grammar, RegistryRef, Repo};
use crate::{Registry, RegistryError};

/// Rules per registry (ECR's quota).
pub const MAX_RULES: u32 = 50;
pub const ROOT: &str = "ROOT";
/// ECR's `UpstreamRegistry` values.
pub const UPSTREAM_REGISTRIES: [&str; 9] = [
    "ecr",
    "ecr-public",
    "quay",
    "k8s",
    "docker-hub",
    "github-container-registry",
    "azure-container-registry",
    "gitlab-container-registry",
    "chainguard",
];
/// The hosts ECR knows for each upstream, so a rule that names none is recognised.
const KNOWN_HOSTS: [(&str, &str); 8] = [
    ("public.ecr.aws", "ecr-public"),
    ("quay.io", "quay"),
    ("registry.k8s.io", "k8s"),
    ("registry-1.docker.io", "docker-hub"),
    ("docker.io", "docker-hub"),
    ("ghcr.io", "github-container-registry"),
    ("registry.gitlab.com", "gitlab-container-registry"),
    ("cgr.dev", "chainguard"),
];
const MAX_PREFIX_LEN: usize = 30;
const MAX_URL_LEN: usize = 2048;
/// Rules are read on every pull of a cache repository; another node's change is seen this late.
const RULES_TTL: Duration = Duration::from_secs(3);

/// A pull-through cache rule, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub prefix: String,
    pub upstream_url: String,
    /// ECR's `UpstreamRegistry` value; `None` for an upstream ECR does not know.
    pub upstream_registry: Option<String>,
    pub upstream_prefix: String,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What CreatePullThroughCacheRule asks for.
#[derive(Debug, Clone, Default)]
pub struct NewRule {
    pub prefix: String,
    pub upstream_url: String,
    pub upstream_registry: Option<String>,
    pub upstream_prefix: Option<String>,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
}

/// ValidatePullThroughCacheRule's answer.
#[derive(Debug, Clone)]
pub struct RuleValidation {
    pub rule: Rule,
    pub is_valid: bool,
    pub failure: Option<String>,
}

/// A page of rules; `more` when rules follow the last one.
#[derive(Debug)]
pub struct RulePage {
    pub rules: Vec<Rule>,
    pub more: bool,
}

/// Where a cache repository's images come from.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub rule: Rule,
    /// The repository at the upstream (`library/alpine` for Docker Hub's `alpine`).
    pub repository: String,
}

/// What an "ECR Pull Through Cache Action" event says: the rule, the image, and for a failed
/// sync its code and reason.
pub(crate) struct SyncOutcome<'a> {
    pub prefix: &'a str,
    pub upstream_url: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a berth_store::Digest>,
    pub failure: Option<(&'static str, String)>,
}

impl From<PullThroughRuleRow> for Rule {
    fn from(r: PullThroughRuleRow) -> Rule {
        Rule {
            prefix: r.prefix,
            upstream_url: r.upstream_url,
            upstream_registry: (!r.upstream_registry.is_empty()).then_some(r.upstream_registry),
            upstream_prefix: r.upstream_prefix,
            credential_arn: r.credential_arn,
            custom_role_arn: r.custom_role_arn,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Rule {
    fn row(&self) -> PullThroughRuleRow {
        PullThroughRuleRow {
            prefix: self.prefix.clone(),
            upstream_url: self.upstream_url.clone(),
            upstream_registry: self.upstream_registry.clone().unwrap_or_default(),
            upstream_prefix: self.upstream_prefix.clone(),
            credential_arn: self.credential_arn.clone(),
            custom_role_arn: self.custom_role_arn.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    fn is_docker_hub(&self) -> bool {
        self.upstream_registry.as_deref() == Some("docker-hub")
    }

    /// The upstream repository a cache repository named `name` mirrors, if the rule covers it.
    pub fn upstream_repository(&self, name: &str) -> Option<String> {
        let rest = if self.prefix == ROOT { name } else { name.strip_prefix(&self.prefix)?.strip_prefix('/')? };
        if rest.is_empty() {
            return None;
        }
        let mut upstream = if self.upstream_prefix == ROOT { rest.to_string() } else { format!("{}/{rest}", self.upstream_prefix) };
        // Docker Hub's official images live under `library/`; clients add it, so must we.
        if self.is_docker_hub() && !upstream.contains('/') {
            upstream = format!("library/{upstream}");
        }
        Some(upstream)
    }
}

fn invalid_at(member: &str, message: impl std::fmt::Display) -> RegistryError {
    RegistryError::invalid(format!("Invalid parameter at '{member}' failed to satisfy constraint: '{message}'"))
}

fn refusal(kind: PullThroughRefusal, message: impl Into<String>) -> RegistryError {
    RegistryError::PullThrough { kind, message: message.into() }
}

/// `ROOT`, or a repository-name prefix of 2 to 30 characters, kept without its trailing `/`.
pub fn normalize_prefix(member: &str, prefix: &str) -> Result<String> {
    if prefix == ROOT {
        return Ok(ROOT.to_string());
    }
    let bare = prefix.strip_suffix('/').unwrap_or(prefix);
    if prefix.len() < 2 || prefix.len() > MAX_PREFIX_LEN || bare.is_empty() || !follows_name_grammar(bare) {
        return Err(invalid_at(
            member,
            format!(
                "must be ROOT or a repository name prefix of 2 to {MAX_PREFIX_LEN} characters (lowercase letters, digits, . _ __ - \
                 separators, / between components)' ({prefix:?}"
            ),
        ));
    }
    Ok(bare.to_string())
}

/// The upstream's base URL: `https://` unless the rule says `http://`, which needs the operator's
/// consent. No path: a registry's API is at `/v2/` of its origin.
pub fn upstream_base(url: &str, allow_insecure: bool) -> Result<Url> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(invalid_at("upstreamRegistryUrl", format!("must be a registry host or URL of 1 to {MAX_URL_LEN} characters")));
    }
    let text = if url.contains("://") { url.to_string() } else { format!("https://{url}") };
    let parsed = Url::parse(&text).map_err(|e| invalid_at("upstreamRegistryUrl", format!("{url:?} is not a registry URL: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty)
        || !matches!(parsed.path(), "" | "/")
        || parsed.query().is_some()
        || !parsed.username().is_empty()
    {
        return Err(invalid_at("upstreamRegistryUrl", format!("{url:?} must be a registry host or scheme://host[:port], without a path")));
    }
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(refusal(
                PullThroughRefusal::UnsupportedUpstream,
                format!(
                    "The upstream registry URL {url} is plain HTTP; berth allows that only when started with --allow-insecure-upstreams"
                ),
            ))
        }
        other => {
            return Err(refusal(
                PullThroughRefusal::UnsupportedUpstream,
                format!("The upstream registry URL scheme {other} is not supported"),
            ))
        }
    }
    let mut base = parsed;
    base.set_path("/");
    Ok(base)
}

fn known_upstream(base: &Url) -> Option<&'static str> {
    let host = base.host_str()?;
    KNOWN_HOSTS.iter().find(|(h, _)| *h == host).map(|(_, r)| *r).or_else(|| host.ends_with(".amazonaws.com").then_some("ecr"))
}

fn check_credential_arn(arn: &str) -> Result<()> {
    let ok = arn.len() >= 50
        && arn.len() <= 612
        && arn.starts_with("arn:aws")
        && arn.split(':').nth(2) == Some("secretsmanager")
        && arn.contains(":secret:ecr-pullthroughcache/");
    if !ok {
        return Err(invalid_at(
            "credentialArn",
            format!("must be the ARN of a Secrets Manager secret named ecr-pullthroughcache/… (50 to 612 characters) ({arn:?})"),
        ));
    }
    Ok(())
}

fn check_role_arn(arn: &str) -> Result<()> {
    if arn.is_empty() || arn.len() > 2048 {
        return Err(invalid_at("customRoleArn", "Member must have length less than or equal to 2048"));
    }
    Ok(())
}

type CachedRules = (Instant, Arc<Vec<Rule>>);

/// Rules read recently, per registry (see `RULES_TTL`).
#[derive(Default)]
pub(crate) struct RuleCache(std::sync::Mutex<HashMap<(String, String), CachedRules>>);

impl RuleCache {
    fn get(&self, scope: &RegistryRef) -> Option<Arc<Vec<Rule>>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(scope.account.clone(), scope.region.clone())).filter(|(at, _)| at.elapsed() < RULES_TTL).map(|(_, r)| r.clone())
    }

    fn put(&self, scope: &RegistryRef, rules: Arc<Vec<Rule>>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert((scope.account.clone(), scope.region.clone()), (Instant::now(), rules));
    }

    fn forget(&self, scope: &RegistryRef) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&(scope.account.clone(), scope.region.clone()));
    }
}

impl Registry {
    /// A secret the rule names must exist (ECR's SecretNotFoundException).
    async fn check_secret(&self, scope: &RegistryRef, arn: &str) -> Result<()> {
        check_credential_arn(arn)?;
        if credentials::lookup(self, &scope.account, arn).await?.is_none() {
            return Err(refusal(
                PullThroughRefusal::SecretNotFound,
                format!("The specified secret {arn} could not be found in the registry with id '{}'", scope.account),
            ));
        }
        Ok(())
    }

    pub async fn create_pull_through_cache_rule(&self, scope: &RegistryRef, new: NewRule) -> Result<Rule> {
        let prefix = normalize_prefix("ecrRepositoryPrefix", &new.prefix)?;
        let upstream_prefix = match &new.upstream_prefix {
            Some(p) => normalize_prefix("upstreamRepositoryPrefix", p)?,
            None => ROOT.to_string(),
        };
        let base = upstream_base(&new.upstream_url, self.config.allow_insecure_upstreams)?;
        let upstream_registry = match new.upstream_registry {
            Some(r) if UPSTREAM_REGISTRIES.contains(&r.as_str()) => Some(r),
            Some(r) => {
                return Err(refusal(
                    PullThroughRefusal::UnsupportedUpstream,
                    format!("The upstream registry {r:?} is not one of {}", UPSTREAM_REGISTRIES.join(", ")),
                ))
            }
            None => known_upstream(&base).map(str::to_string),
        };
        if let Some(role) = &new.custom_role_arn {
            check_role_arn(role)?;
        }
        if let Some(arn) = &new.credential_arn {
            self.check_secret(scope, arn).await?;
        }
        let now = self.now();
        let rule = Rule {
            prefix,
            upstream_url: new.upstream_url,
            upstream_registry,
            upstream_prefix,
            credential_arn: new.credential_arn,
            custom_role_arn: new.custom_role_arn,
            created_at: now,
            updated_at: now,
        };
        let outcome = self.meta.create_pull_through_rule(&scope.account, &scope.region, &rule.row(), MAX_RULES).await?;
        self.pull_through.rules.forget(scope);
        match outcome {
            CreateRuleOutcome::Created => Ok(rule),
            CreateRuleOutcome::Exists => Err(refusal(
                PullThroughRefusal::RuleExists,
                format!(
                    "A pull through cache rule with these settings already exists for the registry with id '{}' (prefix '{}')",
                    scope.account, rule.prefix
                ),
            )),
            CreateRuleOutcome::LimitReached => Err(RegistryError::LimitExceeded(format!(
                "The pull through cache rule quota of {MAX_RULES} per registry has been reached for the registry with id '{}'",
                scope.account
            ))),
        }
    }

    /// The registry's rules (cached briefly: every pull of a cache repository reads them).
    pub async fn pull_through_cache_rules(&self, scope: &RegistryRef) -> Result<Arc<Vec<Rule>>> {
        if let Some(rules) = self.pull_through.rules.get(scope) {
            return Ok(rules);
        }
        let rows = self.meta.pull_through_rules(&scope.account, &scope.region).await?;
        let rules = Arc::new(rows.into_iter().map(Rule::from).collect::<Vec<_>>());
        self.pull_through.rules.put(scope, rules.clone());
        Ok(rules)
    }

    async fn fresh_rules(&self, scope: &RegistryRef) -> Result<Vec<Rule>> {
        self.pull_through.rules.forget(scope);
        Ok(self.pull_through_cache_rules(scope).await?.as_ref().clone())
    }

    fn rule_not_found(scope: &RegistryRef, prefix: &str) -> RegistryError {
        refusal(
            PullThroughRefusal::RuleNotFound,
            format!("The pull through cache rule with prefix '{prefix}' does not exist in the registry with id '{}'", scope.account),
        )
    }

    async fn rule(&self, scope: &RegistryRef, prefix: &str) -> Result<Rule> {
        let prefix = normalize_prefix("ecrRepositoryPrefix", prefix)?;
        self.fresh_rules(scope).await?.into_iter().find(|r| r.prefix == prefix).ok_or_else(|| Self::rule_not_found(scope, &prefix))
    }

    /// Rules by prefix after `after`; named `prefixes` must all exist (PullThroughCacheRuleNotFoundException).
    pub async fn describe_pull_through_cache_rules(
        &self,
        scope: &RegistryRef,
        prefixes: &[String],
        after: Option<&str>,
        limit: u32,
    ) -> Result<RulePage> {
        let rules = self.fresh_rules(scope).await?;
        let wanted: Vec<String> = prefixes.iter().map(|p| normalize_prefix("ecrRepositoryPrefixes", p)).collect::<Result<_>>()?;
        if let Some(missing) = wanted.iter().find(|p| !rules.iter().any(|r| &r.prefix == *p)) {
            return Err(Self::rule_not_found(scope, missing));
        }
        let mut selected: Vec<Rule> = rules
            .into_iter()
            .filter(|r| wanted.is_empty() || wanted.contains(&r.prefix))
            .filter(|r| after.is_none_or(|a| r.prefix.as_str() > a))
            .collect();
        let more = selected.len() > limit as usize;
        selected.truncate(limit as usize);
        Ok(RulePage { rules: selected, more })
    }

    /// Changes the rule's credential and role (the members given; ECR's Update takes no others).
    pub async fn update_pull_through_cache_rule(
        &self,
        scope: &RegistryRef,
        prefix: &str,
        credential_arn: Option<String>,
        custom_role_arn: Option<String>,
    ) -> Result<Rule> {
        let mut rule = self.rule(scope, prefix).await?;
        if let Some(role) = &custom_role_arn {
            check_role_arn(role)?;
        }
        if let Some(arn) = &credential_arn {
            self.check_secret(scope, arn).await?;
        }
        if credential_arn.is_some() {
            rule.credential_arn = credential_arn;
        }
        if custom_role_arn.is_some() {
            rule.custom_role_arn = custom_role_arn;
        }
        rule.updated_at = self.now();
        let found = self.meta.update_pull_through_rule(&scope.account, &scope.region, &rule.row()).await?;
        self.pull_through.rules.forget(scope);
        self.pull_through.forget_clients();
        if !found {
            return Err(Self::rule_not_found(scope, &rule.prefix));
        }
        Ok(rule)
    }

    pub async fn delete_pull_through_cache_rule(&self, scope: &RegistryRef, prefix: &str) -> Result<Rule> {
        let prefix = normalize_prefix("ecrRepositoryPrefix", prefix)?;
        let deleted = self.meta.delete_pull_through_rule(&scope.account, &scope.region, &prefix).await?;
        self.pull_through.rules.forget(scope);
        deleted.map(Rule::from).ok_or_else(|| Self::rule_not_found(scope, &prefix))
    }

    /// Whether the rule can reach its upstream now: its secret exists and the registry answers
    /// `/v2/` with them (ValidatePullThroughCacheRule).
    pub async fn validate_pull_through_cache_rule(&self, scope: &RegistryRef, prefix: &str) -> Result<RuleValidation> {
        let rule = self.rule(scope, prefix).await?;
        let failure = match self.upstream_client(scope, &rule).await {
            Err(e) => Some(e.to_string()),
            Ok(client) => client.ping().await.err().map(|e| format!("upstream registry {}: {e}", rule.upstream_url)),
        };
        Ok(RuleValidation { rule, is_valid: failure.is_none(), failure })
    }

    /// The rule covering `repo` (the longest prefix, else ROOT) and the upstream repository.
    pub async fn pull_through_target(&self, repo: &Repo) -> Result<Option<UpstreamTarget>> {
        let rules = self.pull_through_cache_rules(&repo.registry()).await?;
        if rules.is_empty() {
            return Ok(None);
        }
        let name = repo.name.as_str();
        let best = rules
            .iter()
            .filter(|r| r.prefix != ROOT && r.upstream_repository(name).is_some())
            .max_by_key(|r| r.prefix.len())
            .or_else(|| rules.iter().find(|r| r.prefix == ROOT));
        Ok(best.and_then(|r| r.upstream_repository(name).map(|repository| UpstreamTarget { rule: r.clone(), repository })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, upstream_prefix: &str, registry: Option<&str>) -> Rule {
        Rule {
            prefix: prefix.into(),
            upstream_url: "registry-1.docker.io".into(),
            upstream_registry: registry.map(str::to_string),
            upstream_prefix: upstream_prefix.into(),
            credential_arn: None,
            custom_role_arn: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn upstream_repositories() {
        let hub = rule("hub", ROOT, Some("docker-hub"));
        assert_eq!(hub.upstream_repository("hub/alpine").as_deref(), Some("library/alpine"));
        assert_eq!(hub.upstream_repository("hub/grafana/grafana").as_deref(), Some("grafana/grafana"));
        assert_eq!(hub.upstream_repository("hubx/alpine"), None);
        assert_eq!(hub.upstream_repository("hub"), None);
        let root = rule(ROOT, "mirror", None);
        assert_eq!(root.upstream_repository("a/b").as_deref(), Some("mirror/a/b"));
    }

    #[test]
    fn prefixes_and_urls() {
        assert_eq!(normalize_prefix("p", "hub/").unwrap(), "hub");
        assert_eq!(normalize_prefix("p", "ROOT").unwrap(), "ROOT");
        for bad in ["h", "Hub", "-hub", "a//b", "abcdefghijabcdefghijabcdefghijx", ""] {
            assert!(normalize_prefix("p", bad).is_err(), "{bad:?}");
        }
        assert_eq!(upstream_base("quay.io", false).unwrap().as_str(), "https://quay.io/");
        assert_eq!(upstream_base("http://127.0.0.1:5000", true).unwrap().as_str(), "http://127.0.0.1:5000/");
        assert!(matches!(
            upstream_base("http://127.0.0.1:5000", false),
            Err(RegistryError::PullThrough { kind: PullThroughRefusal::UnsupportedUpstream, .. })
        ));
        assert!(upstream_base("https://quay.io/v2/x", false).is_err());
        assert!(upstream_base("ftp://quay.io", false).is_err());
    }
}
