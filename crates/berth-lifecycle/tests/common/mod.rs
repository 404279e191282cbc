//! Shared helpers for the integration tests.
#![allow(dead_code)]

use berth_lifecycle::{evaluate, parse_policy, ActionKind, Decision, ImageFacts, PolicyError, StorageClass, DAY_MS};
use serde_json::{json, Value};

/// A fixed "now" (2025-06-15T15:06:40Z) so the tests do not depend on the clock.
pub const NOW: i64 = 1_750_000_000_000;
pub const HOUR_MS: i64 = 3_600_000;

/// `days` days before [`NOW`].
pub fn ago(days: i64) -> i64 {
    NOW - days * DAY_MS
}

/// A standard-class image pushed `days` days before [`NOW`], never pulled.
pub fn image(digest: &str, tags: &[&str], pushed_days_ago: i64) -> ImageFacts {
    ImageFacts {
        digest: digest.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        pushed_at: ago(pushed_days_ago),
        ..Default::default()
    }
}

/// An archived image, transitioned `archived_days_ago` days before [`NOW`].
pub fn archived(digest: &str, tags: &[&str], pushed_days_ago: i64, archived_days_ago: i64) -> ImageFacts {
    ImageFacts {
        storage_class: StorageClass::Archive,
        transitioned_at: Some(ago(archived_days_ago)),
        ..image(digest, tags, pushed_days_ago)
    }
}

/// Parses the policy (panicking on rejection) and evaluates it at [`NOW`].
pub fn run(policy: &str, images: &[ImageFacts]) -> Vec<Decision> {
    let policy = parse_policy(policy).unwrap_or_else(|e| panic!("policy rejected: {e}"));
    evaluate(&policy, images, NOW)
}

/// The decided digests with their action, sorted by digest for order-free comparisons.
pub fn acted(decisions: &[Decision]) -> Vec<(String, ActionKind)> {
    let mut out: Vec<_> = decisions.iter().map(|d| (d.digest.clone(), d.action)).collect();
    out.sort();
    out
}

/// `(digest, Expire)` pairs, sorted, for comparing against [`acted`].
pub fn expired(digests: &[&str]) -> Vec<(String, ActionKind)> {
    with_action(digests, ActionKind::Expire)
}

/// `(digest, Transition)` pairs, sorted, for comparing against [`acted`].
pub fn transitioned(digests: &[&str]) -> Vec<(String, ActionKind)> {
    with_action(digests, ActionKind::Transition)
}

fn with_action(digests: &[&str], action: ActionKind) -> Vec<(String, ActionKind)> {
    let mut out: Vec<_> = digests.iter().map(|d| ((*d).to_owned(), action)).collect();
    out.sort();
    out
}

/// A minimal valid rule: untagged, older than 14 days, expire.
pub fn base_rule(priority: i64) -> Value {
    json!({
        "rulePriority": priority,
        "description": "test rule",
        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
        "action": {"type": "expire"}
    })
}

/// Pretty-printed policy text around `rules`, padded with trailing spaces to the 100-character
/// minimum so tests of other rules are not tripped by the length check.
pub fn policy_text(rules: Vec<Value>) -> String {
    let text = serde_json::to_string_pretty(&json!({ "rules": rules })).unwrap_or_default();
    format!("{text:<100}")
}

/// Parses a policy made of `rules` and returns the rejection.
pub fn reject(rules: Vec<Value>) -> PolicyError {
    match parse_policy(&policy_text(rules)) {
        Ok(p) => panic!("policy unexpectedly accepted: {p:?}"),
        Err(e) => e,
    }
}
