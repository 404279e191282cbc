//! The one error type of policy parsing.

/// ECR wraps every lifecycle-policy rejection in an `InvalidParameterException` whose message reads
/// `Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy
/// validation failure: …'`. ECR's own tail is a JSON-schema message that does not say which rule is
/// at fault; ours names the rule (by `rulePriority`, or by index when the priority itself is the
/// problem) and the field, e.g. `rule 2: selection.countUnit is required when countType is
/// sinceImagePushed`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {detail}'")]
pub struct PolicyError {
    rule_priority: Option<u32>,
    field: Option<String>,
    detail: String,
}

impl PolicyError {
    /// A problem with the policy as a whole (length, JSON syntax, the `rules` array).
    pub(crate) fn policy(field: Option<&str>, detail: impl Into<String>) -> Self {
        PolicyError { rule_priority: None, field: field.map(str::to_owned), detail: detail.into() }
    }

    /// A problem with one field of one rule. `label` is `rule N` or `rules[i]`; the detail reads
    /// `{label}: {field} {predicate}`.
    pub(crate) fn rule(label: &str, priority: Option<u32>, field: &str, predicate: impl std::fmt::Display) -> Self {
        PolicyError { rule_priority: priority, field: Some(field.to_owned()), detail: format!("{label}: {field} {predicate}") }
    }

    /// The part after `Lifecycle policy validation failure: `, e.g.
    /// `rule 2: selection.countUnit is required when countType is sinceImagePushed`.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The `rulePriority` of the offending rule, when the error is about a rule whose priority is known.
    pub fn rule_priority(&self) -> Option<u32> {
        self.rule_priority
    }

    /// The offending field, as a dotted path inside the rule (`selection.countUnit`) or at the top
    /// level (`rules`, `lifecyclePolicyText`).
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}
