//! Tag immutability, one rule for every way a tag can be pushed
//! (`/v2/` manifest PUT and ECR PutImage alike).

use berth_store::{RepositorySettings, TagMutability};
use serde::{Deserialize, Serialize};

use crate::error::{Invalid, Param};
use crate::RegistryError;

/// ECR's `ImageTagMutabilityExclusionFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExclusionFilter {
    pub filter_type: String,
    pub filter: String,
}

/// The API's spelling of a mutability setting, read.
pub fn parse(mutability: &str) -> Result<TagMutability, RegistryError> {
    TagMutability::parse(mutability).ok_or_else(|| {
        RegistryError::InvalidParameter(Invalid::of(
            Param::ImageTagMutability,
            format!("imageTagMutability {mutability:?} is not one of MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION"),
        ))
    })
}

/// Validates a mutability setting with its filters, as CreateRepository and
/// PutImageTagMutability do, and returns the setting and the filters serialized for storage.
pub fn validate(mutability: &str, filters: &[ExclusionFilter]) -> Result<(TagMutability, Option<String>), RegistryError> {
    let setting = parse(mutability)?;
    if !setting.has_exclusions() {
        if !filters.is_empty() {
            return Err(RegistryError::InvalidParameter(Invalid::of(
                Param::ExclusionFiltersUnexpected,
                format!("imageTagMutabilityExclusionFilters are only allowed with {mutability}_WITH_EXCLUSION"),
            )));
        }
        return Ok((setting, None));
    }
    if filters.is_empty() || filters.len() > 5 {
        return Err(RegistryError::InvalidParameter(Invalid::of(
            Param::ExclusionFilterCount,
            format!("{mutability} needs 1 to 5 imageTagMutabilityExclusionFilters"),
        )));
    }
    for f in filters {
        if f.filter_type != "WILDCARD" {
            return Err(RegistryError::InvalidParameter(Invalid::of(
                Param::ExclusionFilterType,
                format!("exclusion filterType {:?} is not WILDCARD", f.filter_type),
            )));
        }
        let ok_chars = f.filter.chars().all(|c| c.is_ascii_alphanumeric() || "._*-".contains(c));
        if f.filter.is_empty() || f.filter.len() > 128 || !ok_chars || f.filter.matches('*').count() > 2 {
            return Err(RegistryError::InvalidParameter(Invalid::of(
                Param::ExclusionFilter(f.filter.clone()),
                format!("exclusion filter {:?} must be 1-128 characters of [a-zA-Z0-9._*-] with at most two wildcards", f.filter),
            )));
        }
    }
    serde_json::to_string(filters).map(|f| (setting, Some(f))).map_err(|e| RegistryError::invalid(e.to_string()))
}

pub fn filters(settings: &RepositorySettings) -> Vec<ExclusionFilter> {
    settings.tag_mutability_exclusions.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default()
}

/// Whether a push may not move `tag` once it exists.
pub fn tag_is_immutable(settings: &RepositorySettings, tag: &str) -> Result<bool, RegistryError> {
    let excluded = || filters(settings).iter().any(|f| wildcard_match(&f.filter, tag));
    Ok(match settings.tag_mutability {
        TagMutability::Immutable => true,
        TagMutability::ImmutableWithExclusion => !excluded(),
        TagMutability::MutableWithExclusion => excluded(),
        TagMutability::Mutable => false,
    })
}

/// `*` matches any run of characters; everything else literally.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(m: &str, filters: &[&str]) -> RepositorySettings {
        let f: Vec<ExclusionFilter> =
            filters.iter().map(|f| ExclusionFilter { filter_type: "WILDCARD".into(), filter: f.to_string() }).collect();
        let (tag_mutability, tag_mutability_exclusions) = validate(m, &f).unwrap();
        RepositorySettings { tag_mutability, tag_mutability_exclusions, ..RepositorySettings::ecr_defaults() }
    }

    #[test]
    fn rules() {
        assert!(!tag_is_immutable(&settings("MUTABLE", &[]), "v1").unwrap());
        assert!(tag_is_immutable(&settings("IMMUTABLE", &[]), "v1").unwrap());
        let s = settings("IMMUTABLE_WITH_EXCLUSION", &["latest", "dev-*"]);
        assert!(!tag_is_immutable(&s, "latest").unwrap());
        assert!(!tag_is_immutable(&s, "dev-123").unwrap());
        assert!(tag_is_immutable(&s, "v1").unwrap());
        let s = settings("MUTABLE_WITH_EXCLUSION", &["release-*"]);
        assert!(tag_is_immutable(&s, "release-1").unwrap());
        assert!(!tag_is_immutable(&s, "latest").unwrap());
        assert!(validate("BOGUS", &[]).is_err());
        assert!(validate("IMMUTABLE_WITH_EXCLUSION", &[]).is_err());
        assert!(validate("MUTABLE", &[ExclusionFilter { filter_type: "WILDCARD".into(), filter: "x".into() }]).is_err());
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b", "ab-c"));
    }

    /// Each refusal names its parameter; the message stays ECR's wording.
    #[test]
    fn refusals_name_their_parameter() {
        let param = |r: Result<(TagMutability, Option<String>), RegistryError>| match r {
            Err(RegistryError::InvalidParameter(i)) => (i.param, i.message),
            other => panic!("{other:?}"),
        };
        let f = |filter: &str| ExclusionFilter { filter_type: "WILDCARD".into(), filter: filter.into() };
        assert_eq!(param(validate("BOGUS", &[])).0, Some(Param::ImageTagMutability));
        assert_eq!(
            param(validate("IMMUTABLE_WITH_EXCLUSION", &[])),
            (Some(Param::ExclusionFilterCount), "IMMUTABLE_WITH_EXCLUSION needs 1 to 5 imageTagMutabilityExclusionFilters".into())
        );
        assert_eq!(param(validate("MUTABLE", &[f("x")])).0, Some(Param::ExclusionFiltersUnexpected));
        assert_eq!(param(validate("MUTABLE_WITH_EXCLUSION", &[f("a**b*")])).0, Some(Param::ExclusionFilter("a**b*".into())));
        let typed = ExclusionFilter { filter_type: "REGEX".into(), filter: "x".into() };
        assert_eq!(param(validate("MUTABLE_WITH_EXCLUSION", &[typed])).0, Some(Param::ExclusionFilterType));
    }
}
