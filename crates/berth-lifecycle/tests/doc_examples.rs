//! Every example of the AWS page "Examples of lifecycle policies in Amazon ECR"
//! (docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html), run against the
//! example repository the page gives — or, where the page shows only the policy, a repository
//! built to exercise it — with the outcome the page states.
//!
//! Each test is a table: one row per image with the action the policy must take on it (or none).

mod common;

use berth_lifecycle::{ActionKind, ImageFacts, StorageClass, DAY_MS};
use common::{acted, run, HOUR_MS, NOW};

use ActionKind::{Expire, Transition};

/// One image of an example repository and what the policy must do to it.
struct Row {
    name: &'static str,
    tags: &'static [&'static str],
    /// Milliseconds before `NOW` the image was pushed.
    pushed_ago: i64,
    expect: Option<ActionKind>,
}

const fn row(name: &'static str, tags: &'static [&'static str], pushed_ago: i64, expect: Option<ActionKind>) -> Row {
    Row { name, tags, pushed_ago, expect }
}

const fn days(n: i64) -> i64 {
    n * DAY_MS
}

fn images(rows: &[Row]) -> Vec<ImageFacts> {
    rows.iter()
        .map(|r| ImageFacts {
            digest: r.name.into(),
            tags: r.tags.iter().map(|t| (*t).to_owned()).collect(),
            pushed_at: NOW - r.pushed_ago,
            ..Default::default()
        })
        .collect()
}

/// Evaluates `policy` over `images` and compares with each row's expectation.
fn check(section: &str, policy: &str, rows: &[Row], images: &[ImageFacts]) {
    let mut want: Vec<(String, ActionKind)> = rows.iter().filter_map(|r| r.expect.map(|a| (r.name.to_owned(), a))).collect();
    want.sort();
    assert_eq!(acted(&run(policy, images)), want, "{section}");
}

fn check_rows(section: &str, policy: &str, rows: &[Row]) {
    check(section, policy, rows, &images(rows));
}

// ---- "Filtering on image age" ----

#[test]
fn filtering_on_image_age() {
    // The page gives only the policy; the repository exercises `prod*` and the 14-day cut.
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
        "selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14},
        "action":{"type":"expire"}}]}"#;
    let rows = [
        row("old-prod", &["prod"], days(20), Some(Expire)),
        row("old-production", &["production-team1", "latest"], days(15), Some(Expire)),
        row("exactly-14", &["prod1"], days(14), None),
        row("young-prod", &["prod2"], days(3), None),
        row("old-dev", &["dev"], days(30), None),
        row("old-preprod", &["preprod"], days(30), None),
        row("old-untagged", &[], days(30), None),
    ];
    check_rows("Filtering on image age", policy, &rows);
}

// ---- "Filtering on last pulled time" ----

#[test]
fn filtering_on_last_pulled_time() {
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Archive images not pulled in 90 days",
        "selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90},
        "action":{"type":"transition","targetStorageClass":"archive"}}]}"#;
    let at = |d: i64| Some(NOW - days(d));
    let facts = |name: &str, pushed: i64, pulled: Option<i64>, activated: Option<i64>| ImageFacts {
        digest: name.into(),
        tags: vec![format!("{name}-tag")],
        pushed_at: NOW - days(pushed),
        last_pulled_at: pulled,
        last_activated_at: activated,
        ..Default::default()
    };
    let repo = vec![
        facts("pulled-long-ago", 400, at(100), None),
        facts("pulled-recently", 400, at(10), None),
        // "If an image was never pulled, the image's pushed_at_time is used instead".
        facts("never-pulled-old", 120, None, None),
        facts("never-pulled-new", 30, None, None),
        // "If an image was archived and then restored ... but never pulled since the image was
        // restored, the image's last_activated_at is used instead of the last_recorded_pulltime."
        facts("restored-not-pulled", 400, at(200), at(10)),
        facts("restored-long-ago", 400, at(200), at(95)),
        ImageFacts { storage_class: StorageClass::Archive, transitioned_at: at(300), ..facts("already-archived", 900, None, None) },
    ];
    let got = acted(&run(policy, &repo));
    let want = common::transitioned(&["never-pulled-old", "pulled-long-ago", "restored-long-ago"]);
    assert_eq!(got, want, "Filtering on last pulled time");
}

// ---- "Filtering on archive transition time" ----

#[test]
fn filtering_on_archive_transition_time() {
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Expire images archived for more than 365 days",
        "selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":365},
        "action":{"type":"expire"}}]}"#;
    let repo = vec![
        common::archived("archived-400d", &["v1"], 800, 400),
        common::archived("archived-100d", &[], 800, 100),
        common::image("standard-ancient", &["v0"], 2000),
        // An archived image with no recorded transition time has no age to measure.
        ImageFacts { transitioned_at: None, ..common::archived("archived-unknown", &["v2"], 2000, 0) },
    ];
    assert_eq!(acted(&run(policy, &repo)), common::expired(&["archived-400d"]), "Filtering on archive transition time");
}

// ---- "Filtering on image count" ----

#[test]
fn filtering_on_image_count() {
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Keep only one untagged image, expire all others",
        "selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},
        "action":{"type":"expire"}}]}"#;
    let rows = [
        row("untagged-old", &[], days(5), Some(Expire)),
        row("untagged-mid", &[], days(3), Some(Expire)),
        row("untagged-new", &[], days(1), None),
        row("tagged-old", &["v1"], days(9), None),
    ];
    check_rows("Filtering on image count", policy, &rows);
}

// ---- "Filtering on multiple rules" ----

const MULTI_REPO: [(&str, &[&str], i64); 3] =
    [("A", &["beta-1", "prod-1"], days(10)), ("B", &["beta-2", "prod-2"], days(9)), ("C", &["beta-3"], days(8))];

fn multi_rows(expect: [Option<ActionKind>; 3]) -> Vec<Row> {
    MULTI_REPO.iter().zip(expect).map(|(&(name, tags, pushed), e)| row(name, tags, pushed, e)).collect()
}

fn two_keep_one_rules(list: &str, first: &str, second: &str) -> String {
    format!(
        r#"{{"rules":[
        {{"rulePriority":1,"description":"Rule 1","selection":{{"tagStatus":"tagged","{list}":["{first}"],"countType":"imageCountMoreThan","countNumber":1}},"action":{{"type":"expire"}}}},
        {{"rulePriority":2,"description":"Rule 2","selection":{{"tagStatus":"tagged","{list}":["{second}"],"countType":"imageCountMoreThan","countNumber":1}},"action":{{"type":"expire"}}}}]}}"#
    )
}

#[test]
fn multiple_rules_example_a() {
    // Rule 1 (prod) marks A. Rule 2 (beta) would mark A and B, but both carry prod tags, so Rule 1
    // shields them: "Result: Image A is expired."
    let rows = multi_rows([Some(Expire), None, None]);
    check_rows("Filtering on multiple rules, Example A", &two_keep_one_rules("tagPatternList", "prod*", "beta*"), &rows);
    // The same example as the page first published it, with tagPrefixList.
    check_rows("Filtering on multiple rules, Example A (prefixes)", &two_keep_one_rules("tagPrefixList", "prod", "beta"), &rows);
    let decisions = run(&two_keep_one_rules("tagPatternList", "prod*", "beta*"), &images(&rows));
    assert_eq!(decisions[0].rule_priority, 1);
}

#[test]
fn multiple_rules_example_b() {
    // Rule 1 (beta) sees all three and marks A and B; Rule 2 (prod) sees only images Rule 1
    // already identified. "Result: Images A and B are expired."
    let rows = multi_rows([Some(Expire), Some(Expire), None]);
    check_rows("Filtering on multiple rules, Example B", &two_keep_one_rules("tagPatternList", "beta*", "prod*"), &rows);
    check_rows("Filtering on multiple rules, Example B (prefixes)", &two_keep_one_rules("tagPrefixList", "beta", "prod"), &rows);
}

// ---- "Filtering on multiple tags in a single rule" ----

#[test]
fn multiple_tags_example_a() {
    // "When multiple tag patterns are specified on a single rule, images must match all listed tag
    // patterns." Rule 1 sees C and F and expires the one older than five days: "Image C is expired."
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Rule 1",
        "selection":{"tagStatus":"tagged","tagPatternList":["alpha*","beta*"],"countType":"sinceImagePushed","countNumber":5,"countUnit":"days"},
        "action":{"type":"expire"}}]}"#;
    let rows = [
        row("A", &["alpha-1"], days(12), None),
        row("B", &["beta-1"], days(11), None),
        row("C", &["alpha-2", "beta-2"], days(10), Some(Expire)),
        row("D", &["alpha-3"], days(4), None),
        row("E", &["beta-3"], days(3), None),
        row("F", &["alpha-4", "beta-4"], days(2), None),
    ];
    check_rows("Filtering on multiple tags in a single rule, Example A", policy, &rows);
    check_rows(
        "Filtering on multiple tags in a single rule, Example A (prefixes)",
        &policy.replace(r#""tagPatternList":["alpha*","beta*"]"#, r#""tagPrefixList":["alpha","beta"]"#),
        &rows,
    );
}

#[test]
fn multiple_tags_example_b() {
    // "tags are not exclusive": all three images carry alpha and beta tags; keep one, expire A and B.
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Rule 1",
        "selection":{"tagStatus":"tagged","tagPatternList":["alpha*","beta*"],"countType":"imageCountMoreThan","countNumber":1},
        "action":{"type":"expire"}}]}"#;
    let rows = [
        row("A", &["alpha-1", "beta-1", "gamma-1"], days(10), Some(Expire)),
        row("B", &["alpha-2", "beta-2"], days(9), Some(Expire)),
        row("C", &["alpha-3", "beta-3", "gamma-2"], days(8), None),
    ];
    check_rows("Filtering on multiple tags in a single rule, Example B", policy, &rows);
}

// ---- "Filtering on all images" ----

#[test]
fn all_images_example_a() {
    // tagStatus any, keep one: "Images A, B, and C are expired." (C is untagged.)
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Rule 1",
        "selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},
        "action":{"type":"expire"}}]}"#;
    let rows = [
        row("A", &["alpha-1"], days(4), Some(Expire)),
        row("B", &["beta-1"], days(3), Some(Expire)),
        row("C", &[], days(2), Some(Expire)),
        row("D", &["alpha-2"], days(1), None),
    ];
    check_rows("Filtering on all images, Example A", policy, &rows);
}

#[test]
fn all_images_example_b() {
    // Rule 1 (alpha*, keep 1) marks A. Rule 2 (untagged, older than 1 day) marks B but not E.
    // Rule 3 (any, keep 1) keeps E, the newest, and would mark A-D, but A, B, C and E were
    // identified by higher rules: it marks only D. "Result: Images A, B, and D are expired."
    // D and E are both "1 day ago"; E is the newer of the two (as the outcome requires) and is
    // not yet older than one day.
    let policy = r#"{"rules":[
        {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged","tagPatternList":["alpha*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
        {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}},
        {"rulePriority":3,"description":"Rule 3","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    let rows = [
        row("A", &["alpha-1", "beta-1"], days(4), Some(Expire)),
        row("B", &[], days(3), Some(Expire)),
        row("C", &["alpha-2"], days(2), None),
        row("D", &["git hash"], days(1) + HOUR_MS, Some(Expire)),
        row("E", &[], days(1), None),
    ];
    check_rows("Filtering on all images, Example B", policy, &rows);
    let by_rule: Vec<(String, u32)> = run(policy, &images(&rows)).into_iter().map(|d| (d.digest, d.rule_priority)).collect();
    assert_eq!(by_rule, vec![("A".to_owned(), 1), ("B".to_owned(), 2), ("D".to_owned(), 3)]);
}

// ---- "Archive examples" ----

#[test]
fn archive_images_older_than_30_days() {
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Archive production images older than 30 days",
        "selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":30},
        "action":{"type":"transition","targetStorageClass":"archive"}}]}"#;
    let rows = [
        row("prod-old", &["prod-1"], days(45), Some(Transition)),
        row("prod-new", &["prod-2"], days(10), None),
        row("dev-old", &["dev-1"], days(45), None),
    ];
    let mut repo = images(&rows);
    // Already archived: nothing to do even though it is old and tagged prod.
    repo.push(common::archived("prod-archived", &["prod-0"], 400, 300));
    check("Archiving images older than a specified number of days", policy, &rows, &repo);
}

#[test]
fn archive_images_not_pulled() {
    let policy = r#"{"rules":[{"rulePriority":1,"description":"Archive images not pulled in 90 days",
        "selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90},
        "action":{"type":"transition","targetStorageClass":"archive"}}]}"#;
    let rows = [row("never-pulled-old", &[], days(200), Some(Transition)), row("never-pulled-new", &["v9"], days(20), None)];
    let mut repo = images(&rows);
    repo.push(ImageFacts { last_pulled_at: Some(NOW - days(5)), ..common::image("pulled-recently", &["v1"], 300) });
    check("Archiving images not pulled in a specified number of days", policy, &rows, &repo);
}

#[test]
fn combining_archive_and_expire_rules() {
    // Rule 1 archives standard images older than 30 days; rule 2 expires images archived more
    // than 365 days ago. Rule 1's `any` does not shield archived images from rule 2: each rule only
    // identifies images of the storage class it selects.
    let policy = r#"{"rules":[
        {"rulePriority":1,"description":"Archive images older than 30 days","selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}},
        {"rulePriority":2,"description":"Expire images archived for more than 365 days","selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":365},"action":{"type":"expire"}}]}"#;
    let repo = vec![
        common::image("standard-old", &["v1"], 40),
        common::image("standard-new", &[], 5),
        common::archived("archived-long", &["v0"], 900, 500),
        common::archived("archived-recent", &[], 900, 200),
    ];
    let decisions = run(policy, &repo);
    let got: Vec<(&str, u32, ActionKind, StorageClass)> =
        decisions.iter().map(|d| (d.digest.as_str(), d.rule_priority, d.action, d.storage_class)).collect();
    assert_eq!(got, vec![("standard-old", 1, Transition, StorageClass::Standard), ("archived-long", 2, Expire, StorageClass::Archive)]);
}
