//! Repository names, tags and manifest references, validated once.

use std::fmt;
use std::sync::LazyLock;

use berth_store::{Digest, RepoKey};
use regex::Regex;

use crate::RegistryError;

// The OCI distribution-spec name grammar, narrowed to ECR's separators; anchored.
static NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$").expect("valid regex")
});
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").expect("valid regex"));

/// Whether `s` follows the repository name grammar (whatever its length): repository-name
/// prefixes (creation templates) are names of one character and up.
pub(crate) fn follows_name_grammar(s: &str) -> bool {
    NAME_RE.is_match(s)
}

/// A repository name such as `team/app/api`: 2–256 characters, safe as a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        if (2..=256).contains(&s.len()) && NAME_RE.is_match(s) {
            Ok(RepositoryName(s.to_string()))
        } else {
            Err(RegistryError::NameInvalid(s.chars().take(300).collect()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registry: an account's repositories in one region. Bound to variables called `scope`
/// (`registry` names the service, [`crate::Registry`], everywhere).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryRef {
    pub account: String,
    pub region: String,
}

impl RegistryRef {
    /// The ARN of repository `name` (or `*`) in this registry (see [`Repo::arn`]).
    pub fn repository_arn(&self, name: &str) -> String {
        if crate::public::is_public(self) {
            format!("arn:aws:ecr-public::{}:repository/{name}", self.account)
        } else {
            format!("arn:aws:ecr:{}:{}:repository/{name}", self.region, self.account)
        }
    }
}

/// A repository in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub name: RepositoryName,
    key: RepoKey,
}

impl Repo {
    pub fn new(registry: &RegistryRef, name: RepositoryName) -> Repo {
        let key = RepoKey { account: registry.account.clone(), region: registry.region.clone(), name: name.0.clone() };
        Repo { name, key }
    }
    pub fn key(&self) -> &RepoKey {
        &self.key
    }
    pub fn registry(&self) -> RegistryRef {
        RegistryRef { account: self.key.account.clone(), region: self.key.region.clone() }
    }
    /// `arn:aws:ecr:<region>:<account>:repository/<name>`; ECR Public's
    /// `arn:aws:ecr-public::<account>:repository/<name>` in an account's public registry.
    pub fn arn(&self) -> String {
        self.registry().repository_arn(&self.key.name)
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        if TAG_RE.is_match(s) {
            Ok(Tag(s.to_string()))
        } else {
            Err(RegistryError::TagInvalid(s.chars().take(200).collect()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        if s.contains(':') {
            s.parse().map(Reference::Digest).map_err(|e| RegistryError::DigestInvalid(e.to_string()))
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t.as_str()),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["ab", "team/app", "team/app/api", "a.b_c__d-e--f/g", &"a".repeat(256)] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "",
            "Team/app",
            "team//app",
            "team/app/",
            "/team",
            "..",
            "a/../b",
            "a/./b",
            "-a",
            "a-",
            "a___b",
            &"a".repeat(257),
            "a b",
            "a%2fb",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_and_references() {
        assert!(Tag::parse("v1.0_rc-1").is_ok());
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
        assert!(Tag::parse(&"a".repeat(129)).is_err());
        assert!(Tag::parse(".hidden").is_err());
        assert!(matches!(Reference::parse("sha256:abc"), Err(RegistryError::DigestInvalid(_))));
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
    }
}
