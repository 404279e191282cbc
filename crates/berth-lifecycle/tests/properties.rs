//! Property tests of the evaluator's invariants, checked against an independent (naive) reference
//! for tag matching.

use std::collections::{BTreeSet, HashMap, HashSet};

use berth_lifecycle::{
    evaluate, Action, ActionKind, Count, ImageFacts, LifecyclePolicy, Rule, Selection, StorageClass, TagStatus, WildcardPattern, DAY_MS,
};
use proptest::prelude::*;
use proptest::sample::subsequence;

const NOW: i64 = 1_750_000_000_000;
const TAGS: &[&str] = &["prod", "prod-1", "prod-2", "beta-1", "beta-2", "alpha-1", "dev", "v1.2", "latest", "x"];
const PREFIXES: &[&str] = &["prod", "beta", "alpha", "v1", "d", "l"];
const PATTERNS: &[&str] = &["prod*", "*-1", "*e*", "v*.*", "latest", "*", "b*a*", "prod-?"];

/// Naive anchored `*` glob by recursion: the reference the real matcher is checked against.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((c, rest)) => text.split_first().is_some_and(|(t, text_rest)| t == c && glob(rest, text_rest)),
    }
}

/// Reference tag requirement of a selection.
fn tag_match(selection: &Selection, tags: &[String]) -> bool {
    match selection.tag_status {
        TagStatus::Any => true,
        TagStatus::Untagged => tags.is_empty(),
        TagStatus::Tagged if !selection.tag_patterns.is_empty() => {
            !tags.is_empty() && selection.tag_patterns.iter().all(|p| tags.iter().any(|t| glob(p.as_bytes(), t.as_bytes())))
        }
        TagStatus::Tagged => !tags.is_empty() && selection.tag_prefixes.iter().all(|p| tags.iter().any(|t| t.starts_with(p.as_str()))),
    }
}

/// Whether the rule identifies the image (storage class and tags).
fn identifies(rule: &Rule, image: &ImageFacts) -> bool {
    rule.selection.storage_class == image.storage_class && tag_match(&rule.selection, &image.tags)
}

fn image_strategy() -> impl Strategy<Value = (Vec<String>, i64, Option<i64>, bool, Option<i64>)> {
    (
        subsequence(TAGS.to_vec(), 0..=3).prop_map(|t| t.into_iter().map(str::to_owned).collect::<Vec<_>>()),
        0..60 * 24_i64,
        prop::option::of(0..60 * 24_i64),
        any::<bool>(),
        prop::option::of(0..400_i64),
    )
}

fn images_strategy() -> impl Strategy<Value = Vec<ImageFacts>> {
    prop::collection::vec(image_strategy(), 0..40).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (tags, pushed_hours, pulled_hours, archived, archived_days))| {
                let pushed_at = NOW - pushed_hours * 3_600_000;
                ImageFacts {
                    digest: format!("sha256:{i:04}"),
                    tags,
                    pushed_at,
                    last_pulled_at: pulled_hours.map(|h| (NOW - h * 3_600_000).max(pushed_at)),
                    storage_class: if archived { StorageClass::Archive } else { StorageClass::Standard },
                    transitioned_at: if archived { archived_days.map(|d| NOW - d * DAY_MS) } else { None },
                    last_activated_at: None,
                }
            })
            .collect()
    })
}

fn rule_strategy() -> impl Strategy<Value = (u8, Vec<&'static str>, Vec<&'static str>, u8, u32, bool)> {
    (0..4_u8, subsequence(PREFIXES.to_vec(), 1..=2), subsequence(PATTERNS.to_vec(), 1..=2), 0..4_u8, 1..30_u32, any::<bool>())
}

fn policy_strategy() -> impl Strategy<Value = LifecyclePolicy> {
    (prop::collection::btree_set(1..200_u32, 1..6), prop::collection::vec(rule_strategy(), 6)).prop_map(|(priorities, raw)| {
        let rules = priorities
            .into_iter()
            .zip(raw)
            .map(|(priority, (status, prefixes, patterns, count, number, transition))| {
                let (tag_status, tag_prefixes, tag_patterns) = match status {
                    0 => (TagStatus::Untagged, vec![], vec![]),
                    1 => (TagStatus::Any, vec![], vec![]),
                    2 => (TagStatus::Tagged, prefixes.into_iter().map(str::to_owned).collect(), vec![]),
                    _ => (TagStatus::Tagged, vec![], patterns.into_iter().map(str::to_owned).collect()),
                };
                let count = match count {
                    0 => Count::ImageCountMoreThan(number % 6),
                    1 => Count::SinceImagePushed { days: number },
                    2 => Count::SinceImagePulled { days: number },
                    _ => Count::SinceImageTransitioned { days: number * 10 },
                };
                // The pairings parse_policy enforces.
                let (storage_class, kind) = match count {
                    Count::SinceImageTransitioned { .. } => (StorageClass::Archive, ActionKind::Expire),
                    Count::SinceImagePulled { .. } => (StorageClass::Standard, ActionKind::Transition),
                    _ => (StorageClass::Standard, if transition { ActionKind::Transition } else { ActionKind::Expire }),
                };
                Rule {
                    priority,
                    description: None,
                    selection: Selection { tag_status, tag_prefixes, tag_patterns, count, storage_class },
                    action: Action { kind },
                }
            })
            .collect();
        LifecyclePolicy { rules }
    })
}

fn older(t: i64, days: u32) -> bool {
    NOW - t > i64::from(days) * DAY_MS
}

/// Reference for "the rule selects the image": identified, and past the rule's count computed over
/// everything the rule identifies.
fn selects(rule: &Rule, image: &ImageFacts, images: &[ImageFacts]) -> bool {
    identifies(rule, image)
        && match rule.selection.count {
            Count::ImageCountMoreThan(keep) => {
                let newer =
                    images.iter().filter(|o| identifies(rule, o) && (o.pushed_at, &o.digest) > (image.pushed_at, &image.digest)).count();
                newer >= keep as usize
            }
            Count::SinceImagePushed { days } => older(image.pushed_at, days),
            Count::SinceImagePulled { days } => older(image.last_pulled_at.unwrap_or(image.pushed_at), days),
            Count::SinceImageTransitioned { days } => image.transitioned_at.is_some_and(|t| older(t, days)),
        }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wildcard_matcher_agrees_with_naive_glob(pattern in "[ab*]{0,8}", text in "[ab]{0,10}") {
        prop_assert_eq!(WildcardPattern::new(&pattern).matches(&text), glob(pattern.as_bytes(), text.as_bytes()));
    }

    #[test]
    fn evaluation_invariants(policy in policy_strategy(), images in images_strategy()) {
        let decisions = evaluate(&policy, &images, NOW);
        let by_digest: HashMap<&str, &ImageFacts> = images.iter().map(|i| (i.digest.as_str(), i)).collect();
        let rules: HashMap<u32, &Rule> = policy.rules.iter().map(|r| (r.priority, r)).collect();

        // No image is decided twice.
        let mut seen = HashSet::new();
        for d in &decisions {
            prop_assert!(seen.insert(d.digest.as_str()), "{} decided twice", d.digest);
        }

        for d in &decisions {
            let image = by_digest[d.digest.as_str()];
            let rule = rules[&d.rule_priority];
            prop_assert_eq!(d.action, rule.action.kind);
            prop_assert_eq!(d.storage_class, image.storage_class);
            // Every decided image is selected by its rule: identified, and past the count.
            prop_assert!(selects(rule, image, &images), "{} not selected by rule {}", d.digest, rule.priority);
            // Transitions only ever move standard images.
            if d.action == ActionKind::Transition {
                prop_assert_eq!(image.storage_class, StorageClass::Standard);
            }
            // An image matching a higher rule's tag filter is never decided by a lower rule.
            for higher in policy.rules.iter().filter(|r| r.priority < d.rule_priority) {
                prop_assert!(!identifies(higher, image), "{} decided by rule {} though rule {} identifies it", d.digest, d.rule_priority, higher.priority);
            }
        }

        // Completeness: an image its first identifying rule selects is decided by that rule.
        for image in &images {
            let owner = policy.rules.iter().filter(|r| identifies(r, image)).min_by_key(|r| r.priority);
            let decided = decisions.iter().find(|d| d.digest == image.digest);
            if let (None, Some(d)) = (owner, decided) {
                prop_assert!(false, "{} decided by rule {} without being identified", image.digest, d.rule_priority);
            }
            if let Some(owner) = owner {
                let want = selects(owner, image, &images).then_some(owner.priority);
                prop_assert_eq!(decided.map(|d| d.rule_priority), want, "{}", image.digest);
            }
        }

        // Deterministic, ordered, and independent of the input order.
        prop_assert_eq!(&evaluate(&policy, &images, NOW), &decisions);
        let mut reversed = images.clone();
        reversed.reverse();
        prop_assert_eq!(&evaluate(&policy, &reversed, NOW), &decisions);
        let keys: Vec<_> = decisions.iter().map(|d| (d.rule_priority, by_digest[d.digest.as_str()].pushed_at, d.digest.clone())).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys, sorted);
        let unique: BTreeSet<_> = decisions.iter().map(|d| &d.digest).collect();
        prop_assert_eq!(unique.len(), decisions.len());
    }
}
