//! Pulls of public repositories (ECR Public) on `/v2/`: which paths name one, who may read
//! them (anyone: no credentials needed, no policy consulted), and the pull quotas.
//!
//! Public repositories are addressed `<host>/<alias>/<name>`. On the `--public-registry-host`
//! every path is read that way; on any other host an alias path names the public repository
//! when it exists, else the path is resolved as a private one (so a private `team/app` stays
//! reachable unless the account whose alias is `team` publishes `app`; choose aliases that are
//! not private namespaces). Either way the public repository lives in its own scope
//! (`public::PUBLIC_REGION`), so its name never reaches a private repository's content.

use std::time::Duration;

use crate::auth::{Principal, Transport};
use crate::error::Result;
use crate::public::PUBLIC_REGION;
use crate::rate_limit::RateLimiter;
use crate::{Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName};

/// How long an alias → account answer is kept (a new alias reaches other nodes this late).
const ALIAS_TTL: Duration = Duration::from_secs(5);
const ALIASES_KEPT: u64 = 10_000;
/// The principal ARN of a caller without credentials (in logs and audit records).
pub const ANONYMOUS: &str = "anonymous";
/// The bearer token the realm hands a caller without credentials (docker's, containerd's and
/// podman's anonymous token flow). It is no secret and grants nothing: a request carrying it is
/// exactly as anonymous as one carrying nothing.
pub const ANONYMOUS_BEARER_TOKEN: &str = "berth-anonymous";

/// The alias cache and the pull limiters.
pub(crate) struct PublicAccess {
    aliases: moka::sync::Cache<String, Option<String>>,
    /// account → alias, as last resolved (for the paths of `Location` headers).
    alias_of: moka::sync::Cache<String, String>,
    /// Public repositories known to exist (positives only: a repository created a moment ago
    /// must never be taken for absent, which would send its path to a private namesake).
    repositories: moka::sync::Cache<berth_store::RepoKey, ()>,
    anonymous: Option<RateLimiter>,
    authenticated: Option<RateLimiter>,
}

impl PublicAccess {
    pub(crate) fn new(config: &RegistryConfig) -> PublicAccess {
        PublicAccess {
            aliases: moka::sync::Cache::builder().max_capacity(ALIASES_KEPT).time_to_live(ALIAS_TTL).build(),
            alias_of: moka::sync::Cache::builder().max_capacity(ALIASES_KEPT).time_to_idle(Duration::from_secs(600)).build(),
            repositories: moka::sync::Cache::builder().max_capacity(ALIASES_KEPT).time_to_live(ALIAS_TTL).build(),
            anonymous: config.anonymous_pulls.map(RateLimiter::new),
            authenticated: config.authenticated_pulls.map(RateLimiter::new),
        }
    }
}

/// Whether `repo` is a public repository.
pub fn is_public(repo: &Repo) -> bool {
    repo.key().region == PUBLIC_REGION
}

/// The caller of a request without credentials to a public repository.
pub fn anonymous(transport: Transport) -> Principal {
    Principal {
        arn: ANONYMOUS.into(),
        account: String::new(),
        access_key_id: String::new(),
        region: None,
        source_ip: transport.source_ip,
        secure_transport: transport.secure,
    }
}

fn host_matches(configured: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    fn bare(h: &str) -> &str {
        h.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(h, |(name, _)| name)
    }
    host.eq_ignore_ascii_case(configured) || bare(host).eq_ignore_ascii_case(bare(configured))
}

impl Registry {
    async fn alias_owner(&self, alias: &str) -> Result<Option<String>> {
        if let Some(known) = self.public_access.aliases.get(alias) {
            return Ok(known);
        }
        let owner = self.public_account_by_alias(alias).await?;
        self.public_access.aliases.insert(alias.to_string(), owner.clone());
        if let Some(account) = &owner {
            self.public_access.alias_of.insert(account.clone(), alias.to_string());
        }
        Ok(owner)
    }

    /// The alias a request just used to reach `account`'s public registry (it resolved it), for
    /// the `Location` headers of its answer; the default alias if it was forgotten meanwhile.
    pub(crate) fn public_alias_seen(&self, account: &str) -> String {
        self.public_access.alias_of.get(account).unwrap_or_else(|| crate::public::default_alias(account, 10))
    }

    /// Whether `host` (a request's Host header) is the `--public-registry-host`, where every path
    /// names a public repository and clients are offered the anonymous token flow.
    pub fn is_public_host(&self, host: Option<&str>) -> bool {
        self.config.public_registry_host.as_deref().is_some_and(|h| host_matches(h, host))
    }

    /// The public repository a `/v2/<path_name>/…` request to `host` names, if any.
    pub async fn public_repository(&self, host: Option<&str>, path_name: &RepositoryName) -> Result<Option<Repo>> {
        let on_public_host = self.is_public_host(host);
        let Some((alias, rest)) = path_name.as_str().split_once('/') else {
            return match on_public_host {
                true => Err(RegistryError::NameInvalid(format!("{path_name}: public repositories are named <alias>/<name>"))),
                false => Ok(None),
            };
        };
        let owner = self.alias_owner(alias).await?;
        let repo = match (owner, RepositoryName::parse(rest)) {
            (Some(account), Ok(name)) => Repo::new(&RegistryRef { account, region: PUBLIC_REGION.into() }, name),
            _ if on_public_host => {
                return Err(RegistryError::NameUnknown(Repo::new(
                    &RegistryRef { account: "000000000000".into(), region: PUBLIC_REGION.into() },
                    path_name.clone(),
                )))
            }
            _ => return Ok(None),
        };
        if on_public_host || self.public_access.repositories.contains_key(repo.key()) {
            return Ok(Some(repo));
        }
        if self.meta.get_repository(repo.key()).await?.is_some() {
            self.public_access.repositories.insert(repo.key().clone(), ());
            return Ok(Some(repo));
        }
        Ok(None)
    }

    /// Forgets that a public repository exists (it was deleted here; other nodes forget it
    /// within ALIAS_TTL, as they do an alias).
    pub(crate) fn forget_public_repository(&self, key: &berth_store::RepoKey) {
        self.public_access.repositories.invalidate(key);
    }

    /// Spends one image pull of the caller's quota: anonymous callers per source address,
    /// others per principal. Throttled (429 with Retry-After) when it is spent.
    pub fn take_public_pull(&self, principal: &Principal) -> Result<()> {
        let (limiter, key) = if principal.arn == ANONYMOUS {
            let ip = principal.source_ip.map(|ip| ip.to_string()).unwrap_or_default();
            (self.public_access.anonymous.as_ref(), ip)
        } else {
            (self.public_access.authenticated.as_ref(), principal.arn.clone())
        };
        let Some(limiter) = limiter else { return Ok(()) };
        limiter.take(&key, self.now()).map_err(|retry_after_secs| RegistryError::Throttled {
            message: format!(
                "You have reached your pull rate limit for public repositories ({}); retry in {retry_after_secs} s{}",
                if principal.arn == ANONYMOUS { "unauthenticated, per source address" } else { "per principal" },
                if principal.arn == ANONYMOUS { ", or log in for a higher limit" } else { "" }
            ),
            retry_after_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::host_matches;

    #[test]
    fn the_public_host_matches_with_or_without_its_port() {
        assert!(host_matches("public.example", Some("public.example:5000")));
        assert!(host_matches("public.example:5000", Some("PUBLIC.example:5000")));
        assert!(!host_matches("public.example", Some("private.example")));
        assert!(!host_matches("public.example", None));
    }
}
