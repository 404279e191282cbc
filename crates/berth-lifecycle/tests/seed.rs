//! The seed policy from the lifecycle-policy task: keep the last 10 `prod` images, delete untagged
//! images older than 7 days.

mod common;

use berth_lifecycle::{parse_policy, summarize, ActionKind, Count, PreviewSummary, TagStatus};
use common::{acted, expired, image, run};

const SEED: &str = r#"{"rules":[{"rulePriority":1,"description":"Keep last 10 'prod' images","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}},{"rulePriority":2,"description":"Delete untagged images older than 7 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#;

#[test]
fn seed_policy_parses() {
    let policy = parse_policy(SEED).map_err(|e| e.to_string());
    let Ok(policy) = policy else { panic!("{policy:?}") };
    assert_eq!(policy.rules.len(), 2);
    assert_eq!(policy.rules[0].selection.tag_status, TagStatus::Tagged);
    assert_eq!(policy.rules[0].selection.tag_prefixes, vec!["prod".to_owned()]);
    assert_eq!(policy.rules[0].selection.count, Count::ImageCountMoreThan(10));
    assert_eq!(policy.rules[1].selection.count, Count::SinceImagePushed { days: 7 });
}

#[test]
fn seed_policy_expires_oldest_five_prod_and_old_untagged() {
    // prod-1 … prod-15, pushed 1 … 15 days ago; untagged images pushed 3 and 10 days ago; plus a
    // non-prod tagged image, which no rule selects.
    let mut repo: Vec<_> = (1..=15).map(|d| image(&format!("prod-{d:02}"), &[&format!("prod-{d}")], d)).collect();
    repo.push(image("untagged-3d", &[], 3));
    repo.push(image("untagged-10d", &[], 10));
    repo.push(image("dev-30d", &["dev"], 30));

    let decisions = run(SEED, &repo);
    assert_eq!(acted(&decisions), expired(&["prod-11", "prod-12", "prod-13", "prod-14", "prod-15", "untagged-10d"]));
    // Ordered by rule priority, then oldest push first.
    let order: Vec<(&str, u32)> = decisions.iter().map(|d| (d.digest.as_str(), d.rule_priority)).collect();
    assert_eq!(order, vec![("prod-15", 1), ("prod-14", 1), ("prod-13", 1), ("prod-12", 1), ("prod-11", 1), ("untagged-10d", 2)]);
    assert!(decisions.iter().all(|d| d.action == ActionKind::Expire));
    assert_eq!(summarize(&decisions), PreviewSummary { expiring_image_total_count: 6, transitioning_image_total_count: 0 });
}
