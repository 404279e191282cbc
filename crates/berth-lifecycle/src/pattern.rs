//! Tag matching: `tagPrefixList` prefixes and `tagPatternList` wildcard patterns.
//!
//! ECR's documented semantics: a pattern is matched against the whole tag, `*` matches any run of
//! characters (including none), every other character matches itself (case-sensitively). A rule's
//! list is an AND: the image matches when *every* listed prefix/pattern matches at least one of its
//! tags ("If you specify multiple tags, only the images with all specified tags are selected").

use crate::policy::{Selection, TagStatus};

/// A compiled `tagPatternList` entry.
///
/// Stored as the literal pieces between the `*`s, which lets matching run as "prefix, then each
/// middle piece leftmost, then suffix" — correct for `*`-only globs and linear in the tag length
/// per piece, so no backtracking blow-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WildcardPattern {
    /// `parts.len() == number of '*' + 1`; a pattern without `*` has one part and is an exact match.
    parts: Vec<String>,
}

impl WildcardPattern {
    pub fn new(pattern: &str) -> Self {
        WildcardPattern { parts: pattern.split('*').map(str::to_owned).collect() }
    }

    /// Number of `*` wildcards in the pattern.
    pub fn wildcards(&self) -> usize {
        self.parts.len() - 1
    }

    /// Whether `tag` matches the whole pattern.
    pub fn matches(&self, tag: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(split) => split,
            None => return false,
        };
        let Some((last, middle)) = rest.split_last() else {
            return tag == first;
        };
        // The anchored ends must not overlap, hence the length check before slicing.
        if tag.len() < first.len() + last.len() || !tag.starts_with(first.as_str()) || !tag.ends_with(last.as_str()) {
            return false;
        }
        let mut window = &tag[first.len()..tag.len() - last.len()];
        for piece in middle {
            // Leftmost match leaves the most room for the pieces after it.
            match window.find(piece.as_str()) {
                Some(at) => window = &window[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Counts the `*` wildcards in a pattern (ECR allows at most four per string).
pub fn wildcard_count(pattern: &str) -> usize {
    pattern.bytes().filter(|&b| b == b'*').count()
}

/// The tag requirement of one rule, compiled once per evaluation.
#[derive(Clone, Debug)]
pub enum TagFilter {
    Any,
    Untagged,
    Prefixes(Vec<String>),
    Patterns(Vec<WildcardPattern>),
}

impl TagFilter {
    pub fn from_selection(selection: &Selection) -> Self {
        match selection.tag_status {
            TagStatus::Any => TagFilter::Any,
            TagStatus::Untagged => TagFilter::Untagged,
            TagStatus::Tagged if !selection.tag_patterns.is_empty() => {
                TagFilter::Patterns(selection.tag_patterns.iter().map(|p| WildcardPattern::new(p)).collect())
            }
            TagStatus::Tagged => TagFilter::Prefixes(selection.tag_prefixes.clone()),
        }
    }

    /// Whether an image with these tags meets the rule's tagging requirement.
    ///
    /// A `tagged` rule never matches an untagged image, even with an empty list (which the
    /// validator rejects anyway).
    pub fn matches<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        match self {
            TagFilter::Any => true,
            TagFilter::Untagged => tags.is_empty(),
            TagFilter::Prefixes(prefixes) => {
                !tags.is_empty() && prefixes.iter().all(|p| tags.iter().any(|t| t.as_ref().starts_with(p.as_str())))
            }
            TagFilter::Patterns(patterns) => !tags.is_empty() && patterns.iter().all(|p| tags.iter().any(|t| p.matches(t.as_ref()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, tag: &str) -> bool {
        WildcardPattern::new(pattern).matches(tag)
    }

    #[test]
    fn literal_patterns_match_exactly() {
        assert!(m("prod", "prod"));
        assert!(!m("prod", "prod1"));
        assert!(!m("prod", "Prod"));
        assert!(!m("prod", ""));
    }

    #[test]
    fn doc_wildcard_examples() {
        // "if a filter of prod* is applied, it would match image-tags whose name begins with prod
        // such as prod, prod1, or production-team1"
        for tag in ["prod", "prod1", "production-team1"] {
            assert!(m("prod*", tag), "{tag}");
        }
        assert!(!m("prod*", "preprod"));
        // "if a filter of *prod* is applied, it would match image-tags whose name contains prod
        // such as repo-production or prod-team"
        for tag in ["repo-production", "prod-team", "prod"] {
            assert!(m("*prod*", tag), "{tag}");
        }
        assert!(!m("*prod*", "pro-d"));
    }

    #[test]
    fn wildcards_are_anchored_and_ordered() {
        assert!(m("*-sha-*", "v1-sha-abc"));
        assert!(!m("*-sha-*", "v1-sha"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "acb"));
        assert!(!m("ab*ba", "aba"), "anchored ends must not overlap");
        assert!(m("ab*ba", "abba"));
        assert!(m("*", ""));
        assert!(m("**", "anything"));
        assert!(m("test*1*2*3*", "test-1-2-3-end"));
    }

    #[test]
    fn wildcard_counting() {
        assert_eq!(wildcard_count("*test*1*2*3"), 4);
        assert_eq!(wildcard_count("test*1*2*3*4*5*6"), 6);
        assert_eq!(WildcardPattern::new("a*b").wildcards(), 1);
    }

    #[test]
    fn lists_are_and_across_entries() {
        let filter = TagFilter::Prefixes(vec!["alpha".into(), "beta".into()]);
        assert!(filter.matches(&["alpha-2", "beta-2"]));
        assert!(!filter.matches(&["alpha-1"]));
        // One tag may satisfy several entries.
        let filter = TagFilter::Patterns(vec![WildcardPattern::new("a*"), WildcardPattern::new("*z")]);
        assert!(filter.matches(&["az"]));
        let none: [&str; 0] = [];
        assert!(!TagFilter::Prefixes(vec![]).matches(&none));
        assert!(TagFilter::Untagged.matches(&none));
        assert!(!TagFilter::Untagged.matches(&["x"]));
        assert!(TagFilter::Any.matches(&none));
    }
}
