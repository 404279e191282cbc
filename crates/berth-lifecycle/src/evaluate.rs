//! `evaluate`: which images a policy expires or archives, following ECR's "Lifecycle policy
//! evaluation rules":
//!
//! - "All rules are evaluated at the same time, regardless of rule priority. After all rules are
//!   evaluated, they are then applied based on rule priority."
//! - "An image is expired or archived by exactly one or zero rules."
//! - "An image that matches the tagging requirements of a rule cannot be expired or archived by a
//!   rule with a lower priority."
//! - "Rules can never mark images that are marked by higher priority rules, but can still identify
//!   them as if they haven't been expired or archived."
//!
//! So each rule computes its marks over *every* image it identifies (tag requirement + storage
//! class), and an image is then owned by the first rule, in priority order, that identifies it:
//! it is acted on only if that owner marked it. A rule only identifies images of the storage class
//! it selects, so standard-image rules never shield archived images from archive rules (the docs'
//! "Combining archive and expire rules" example depends on that).
//!
//! Cost: per rule, one pass over the images plus one sort of the identified images for
//! `imageCountMoreThan`; O(R · n log n) overall.

use std::collections::HashSet;

use serde::Serialize;

use crate::pattern::TagFilter;
use crate::policy::{ActionKind, Count, LifecyclePolicy, StorageClass};

pub const DAY_MS: i64 = 86_400_000;

/// What the evaluator needs to know about one image. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// Identity of the image; expected unique. If a digest appears twice only its first entry is used.
    pub digest: String,
    pub tags: Vec<String>,
    /// `pushed_at_time`.
    pub pushed_at: i64,
    /// `last_recorded_pulltime`, if the image was ever pulled.
    pub last_pulled_at: Option<i64>,
    pub storage_class: StorageClass,
    /// `last_archived_at`: when the image moved to archive. Needed by `sinceImageTransitioned`.
    pub transitioned_at: Option<i64>,
    /// `last_activated_at`: when the image was last restored from archive, if ever. ECR uses it in
    /// place of `pushed_at_time` to order images, and in place of a pull time that predates it for
    /// `sinceImagePulled`.
    pub last_activated_at: Option<i64>,
}

impl ImageFacts {
    /// The time `imageCountMoreThan` orders by: "If an image was archived and then restored at any
    /// point in the past, the image's last_activated_at is used instead of pushed_at_time."
    pub fn ordering_time(&self) -> i64 {
        self.last_activated_at.map_or(self.pushed_at, |t| t.max(self.pushed_at))
    }

    /// The time `sinceImagePulled` measures from: the last pull; "If an image was never pulled, the
    /// image's pushed_at_time is used"; if restored and "never pulled since the image was restored,
    /// the image's last_activated_at is used".
    pub fn pull_reference_time(&self) -> i64 {
        match (self.last_pulled_at, self.last_activated_at) {
            (Some(pulled), Some(activated)) => pulled.max(activated),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => self.pushed_at,
        }
    }
}

/// One image the policy acts on (a `LifecyclePolicyPreviewResult` minus the image metadata the
/// caller already has).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub digest: String,
    /// `appliedRulePriority`.
    pub rule_priority: u32,
    /// `action.type`; a transition always targets `ARCHIVE`.
    pub action: ActionKind,
    /// The image's storage class at evaluation time (`storageClass` of the preview result).
    pub storage_class: StorageClass,
}

/// `LifecyclePolicyPreviewSummary`: `expiringImageTotalCount` and the `ARCHIVE` entry of
/// `transitioningImageTotalCounts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewSummary {
    pub expiring_image_total_count: usize,
    pub transitioning_image_total_count: usize,
}

/// Counts decisions by action.
pub fn summarize(decisions: &[Decision]) -> PreviewSummary {
    let expiring = decisions.iter().filter(|d| d.action == ActionKind::Expire).count();
    PreviewSummary { expiring_image_total_count: expiring, transitioning_image_total_count: decisions.len() - expiring }
}

/// Whether `t` lies more than `days` whole days before `now_ms` ("older than the specified number
/// of days"). Strictly more: an image pushed exactly N days ago is not yet older than N days.
fn older_than(now_ms: i64, t: i64, days: u32) -> bool {
    now_ms.saturating_sub(t) > i64::from(days).saturating_mul(DAY_MS)
}

/// Evaluates `policy` against a repository's images at time `now_ms`.
///
/// Returns at most one decision per image, ordered by rule priority, then push time (oldest
/// first, as ECR "always expires older images before newer ones"), then digest.
pub fn evaluate(policy: &LifecyclePolicy, images: &[ImageFacts], now_ms: i64) -> Vec<Decision> {
    let mut digests = HashSet::with_capacity(images.len());
    let live: Vec<usize> = (0..images.len()).filter(|&i| digests.insert(images[i].digest.as_str())).collect();

    // parse_policy sorts rules; a hand-built policy might not be.
    let mut order: Vec<usize> = (0..policy.rules.len()).collect();
    order.sort_by_key(|&r| policy.rules[r].priority);

    // claimed[i]: some higher-priority rule already identified image i.
    let mut claimed = vec![false; images.len()];
    let mut acted: Vec<(u32, ActionKind, usize)> = Vec::new();
    for rule in order.into_iter().map(|r| &policy.rules[r]) {
        let selection = &rule.selection;
        let filter = TagFilter::from_selection(selection);
        let identified: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| images[i].storage_class == selection.storage_class && filter.matches(images[i].tags.as_slice()))
            .collect();

        let marked: Vec<usize> = match selection.count {
            Count::ImageCountMoreThan(keep) => {
                // "images are sorted from youngest to oldest based on pushed_at_time and then all
                // images greater than the specified count are expired or archived."
                let mut by_age = identified.clone();
                by_age.sort_unstable_by(|&a, &b| {
                    let (a, b) = (&images[a], &images[b]);
                    b.ordering_time().cmp(&a.ordering_time()).then_with(|| b.digest.cmp(&a.digest))
                });
                by_age.into_iter().skip(keep as usize).collect()
            }
            Count::SinceImagePushed { days } => {
                identified.iter().copied().filter(|&i| older_than(now_ms, images[i].pushed_at, days)).collect()
            }
            Count::SinceImagePulled { days } => {
                identified.iter().copied().filter(|&i| older_than(now_ms, images[i].pull_reference_time(), days)).collect()
            }
            // An archived image without a recorded transition time has no age to measure: leave it.
            Count::SinceImageTransitioned { days } => {
                identified.iter().copied().filter(|&i| images[i].transitioned_at.is_some_and(|t| older_than(now_ms, t, days))).collect()
            }
        };

        for i in marked {
            // Archiving an already-archived image is not an action (only reachable with a policy
            // built by hand; parse_policy never lets a transition rule select archived images).
            let noop = rule.action.kind == ActionKind::Transition && images[i].storage_class == StorageClass::Archive;
            if !claimed[i] && !noop {
                acted.push((rule.priority, rule.action.kind, i));
            }
        }
        for i in identified {
            claimed[i] = true;
        }
    }

    acted.sort_unstable_by(|&(pa, _, a), &(pb, _, b)| {
        pa.cmp(&pb).then_with(|| images[a].pushed_at.cmp(&images[b].pushed_at)).then_with(|| images[a].digest.cmp(&images[b].digest))
    });
    acted
        .into_iter()
        .map(|(rule_priority, action, i)| Decision {
            digest: images[i].digest.clone(),
            rule_priority,
            action,
            storage_class: images[i].storage_class,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Rule, Selection, TagStatus};

    fn keep_newest(n: u32) -> LifecyclePolicy {
        LifecyclePolicy {
            rules: vec![Rule {
                priority: 1,
                description: None,
                selection: Selection {
                    tag_status: TagStatus::Any,
                    tag_prefixes: vec![],
                    tag_patterns: vec![],
                    count: Count::ImageCountMoreThan(n),
                    storage_class: StorageClass::Standard,
                },
                action: Action { kind: ActionKind::Expire },
            }],
        }
    }

    fn image(digest: &str, pushed_at: i64) -> ImageFacts {
        ImageFacts { digest: digest.into(), pushed_at, ..Default::default() }
    }

    #[test]
    fn restored_images_order_by_activation() {
        // "If an image was archived and then restored ... last_activated_at is used instead of
        // pushed_at_time": the old-but-just-restored image counts as the newest.
        let restored = ImageFacts { last_activated_at: Some(50 * DAY_MS), ..image("restored", DAY_MS) };
        let images = [restored, image("recent", 40 * DAY_MS)];
        let decisions = evaluate(&keep_newest(1), &images, 60 * DAY_MS);
        assert_eq!(decisions.iter().map(|d| d.digest.as_str()).collect::<Vec<_>>(), vec!["recent"]);
    }

    #[test]
    fn pull_reference_time_fallbacks() {
        let base = image("i", 10);
        assert_eq!(base.pull_reference_time(), 10, "never pulled: pushed_at");
        assert_eq!(ImageFacts { last_pulled_at: Some(20), ..base.clone() }.pull_reference_time(), 20);
        let restored = ImageFacts { last_pulled_at: Some(20), last_activated_at: Some(30), ..base.clone() };
        assert_eq!(restored.pull_reference_time(), 30, "not pulled since the restore: last_activated_at");
        let pulled_since = ImageFacts { last_pulled_at: Some(40), last_activated_at: Some(30), ..base };
        assert_eq!(pulled_since.pull_reference_time(), 40);
    }

    #[test]
    fn duplicate_digests_are_judged_once() {
        let images = [image("dup", 0), image("dup", DAY_MS), image("other", 2 * DAY_MS)];
        let decisions = evaluate(&keep_newest(0), &images, 3 * DAY_MS);
        assert_eq!(decisions.iter().map(|d| d.digest.as_str()).collect::<Vec<_>>(), vec!["dup", "other"]);
    }

    #[test]
    fn age_is_strictly_older() {
        assert!(!older_than(10 * DAY_MS, 3 * DAY_MS, 7));
        assert!(older_than(10 * DAY_MS + 1, 3 * DAY_MS, 7));
        assert!(!older_than(0, i64::MAX, 1), "future times are never old");
        assert!(older_than(i64::MAX, i64::MIN, u32::MAX), "no overflow");
    }
}
