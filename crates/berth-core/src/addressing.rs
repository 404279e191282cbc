//! How clients on one host reach every registry (account × region) berth serves: the rule
//! behind each `repositoryUri` berth hands out and each `/v2/` path it accepts.
//!
//! ECR puts the account and region in the host name (`<account>.dkr.ecr.<region>.amazonaws.com`).
//! A single host without DNS changes cannot do that, so berth carries them in the path:
//!
//! ```text
//! 127.0.0.1:5000/team/app                         the default registry (--account-id, --region)
//! 127.0.0.1:5000/123456789012/us-west-2/team/app  account 123456789012, region us-west-2
//! ```
//!
//! A path whose first component is a 12-digit account and whose second is a region name
//! always addresses that registry (on every host, template or not); any other path addresses
//! the registry named by the host template (`--registry-host`) when the host matches it, else
//! the default registry. A repository whose own name starts like an address (`123456789012/
//! us-west-2/x`) is therefore always given the long form, so every URI berth returns reaches
//! its repository and a push never lands in another registry than the one addressed.
//! Registry tokens are not bound to a region: one `docker login` per host serves every
//! registry the principal may use, and authorization decides per repository ARN.

use berth_store::RepoKey;

use crate::{Registry, RegistryError, RegistryRef, Repo, RepositoryName};

/// Regions are path components: lowercase letters and digits in dash-separated words
/// (`us-east-1`, `eu-central-2`, `local`), at most 32 characters, not all digits.
pub fn is_region_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && !s.bytes().all(|b| b.is_ascii_digit())
        && s.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `<account>/<region>/<name>` → the registry and the name within it.
fn split_address(path_name: &str) -> Option<(RegistryRef, &str)> {
    let mut parts = path_name.splitn(3, '/');
    let (account, region, rest) = (parts.next()?, parts.next()?, parts.next()?);
    (is_account_id(account) && is_region_name(region) && !rest.is_empty())
        .then(|| (RegistryRef { account: account.to_string(), region: region.to_string() }, rest))
}

impl Registry {
    /// The registry a request to `host` addresses: the account and region named by the host
    /// template when it matches, else the default registry.
    pub fn registry_for_host(&self, host: Option<&str>) -> RegistryRef {
        if let (Some(template), Some(host)) = (&self.config.registry_host_template, host) {
            if let Some(r) = match_host_template(template, host) {
                return r;
            }
        }
        self.config.default_registry.clone()
    }

    /// The repository a `/v2/<path_name>/…` request to `host` addresses.
    pub fn addressed_repository(&self, host: Option<&str>, path_name: RepositoryName) -> Result<Repo, RegistryError> {
        match split_address(path_name.as_str()) {
            Some((registry, name)) => Ok(Repo::new(&registry, RepositoryName::parse(name)?)),
            None => Ok(Repo::new(&self.registry_for_host(host), path_name)),
        }
    }

    /// The host clients use for a registry (`proxyEndpoint`, the host of `repositoryUri`).
    pub fn registry_host(&self, scope: &RegistryRef, client_host: &str) -> String {
        match &self.config.registry_host_template {
            Some(t) => t.replace("{account}", &scope.account).replace("{region}", &scope.region),
            None => client_host.to_string(),
        }
    }

    /// The repository's path under `/v2/` that reaches it on any host berth answers on: the bare
    /// name for the default registry, `<account>/<region>/<name>` otherwise. `Location` headers
    /// use it, so a client that addressed the long form stays in that registry.
    pub fn repository_path(&self, repo: &RepoKey) -> String {
        if repo.region == crate::public::PUBLIC_REGION {
            return format!("{}/{}", self.public_alias_seen(&repo.account), repo.name);
        }
        let default = &self.config.default_registry;
        let is_default = repo.account == default.account && repo.region == default.region;
        if is_default && split_address(&repo.name).is_none() {
            repo.name.clone()
        } else {
            format!("{}/{}/{}", repo.account, repo.region, repo.name)
        }
    }

    /// ECR's `repositoryUri`: a name a client can push to and pull from as it is.
    pub fn repository_uri(&self, repo: &RepoKey, client_host: &str) -> String {
        let registry = RegistryRef { account: repo.account.clone(), region: repo.region.clone() };
        if split_address(&repo.name).is_some() {
            let host = self.registry_host(&registry, client_host);
            return format!("{host}/{}/{}/{}", repo.account, repo.region, repo.name);
        }
        format!("{}{}", self.repository_uri_prefix(&registry, client_host), repo.name)
    }

    /// What every `repositoryUri` of `registry` starts with: `host/`, or `host/<account>/<region>/`
    /// when neither the host template nor the default registry names it.
    pub fn repository_uri_prefix(&self, scope: &RegistryRef, client_host: &str) -> String {
        let host = self.registry_host(scope, client_host);
        if self.config.registry_host_template.is_some() || *scope == self.config.default_registry {
            format!("{host}/")
        } else {
            format!("{host}/{}/{}/", scope.account, scope.region)
        }
    }
}

/// Matches `host` (port ignored) against a template with `{account}` and `{region}` placeholders.
fn match_host_template(template: &str, host: &str) -> Option<RegistryRef> {
    let host = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map(|(h, _)| h).unwrap_or(host);
    let template = template.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map(|(h, _)| h).unwrap_or(template);
    let (t_parts, h_parts): (Vec<&str>, Vec<&str>) = (template.split('.').collect(), host.split('.').collect());
    if t_parts.len() != h_parts.len() {
        return None;
    }
    let (mut account, mut region) = (None, None);
    for (t, h) in t_parts.iter().zip(&h_parts) {
        match *t {
            "{account}" if is_account_id(h) => account = Some(h.to_string()),
            "{region}" if is_region_name(h) => region = Some(h.to_string()),
            lit if lit.eq_ignore_ascii_case(h) => {}
            _ => return None,
        }
    }
    Some(RegistryRef { account: account?, region: region? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_templates() {
        let t = "{account}.dkr.ecr.{region}.example.com";
        let r = match_host_template(t, "123456789012.dkr.ecr.eu-west-1.example.com:5000").unwrap();
        assert_eq!((r.account.as_str(), r.region.as_str()), ("123456789012", "eu-west-1"));
        assert!(match_host_template(t, "12345.dkr.ecr.eu-west-1.example.com").is_none());
        assert!(match_host_template(t, "127.0.0.1:5000").is_none());
    }

    #[test]
    fn addresses() {
        let (r, name) = split_address("123456789012/us-west-2/team/app").unwrap();
        assert_eq!((r.account.as_str(), r.region.as_str(), name), ("123456789012", "us-west-2", "team/app"));
        assert!(split_address("123456789012/us-west-2").is_none(), "an address needs a name after it");
        assert!(split_address("team/us-west-2/app").is_none());
        assert!(split_address("12345678901/us-west-2/app").is_none());
        assert!(split_address("123456789012/2024/app").is_none(), "an all-digit component is not a region");
        assert!(is_region_name("us-gov-west-1") && is_region_name("local"));
        assert!(!is_region_name("US-EAST-1") && !is_region_name("us--east") && !is_region_name("-us"));
    }
}
