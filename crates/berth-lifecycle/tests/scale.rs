//! Evaluation cost at repository scale: 100,000 images, 3 rules. No timing assertion (CI machines
//! vary); the elapsed time is printed for `cargo test -- --nocapture`.

use std::time::Instant;

use berth_lifecycle::{evaluate, parse_policy, summarize, ImageFacts, PreviewSummary, StorageClass};

const NOW: i64 = 1_750_000_000_000;

#[test]
fn one_hundred_thousand_images_three_rules() {
    let policy = parse_policy(
        r#"{"rules":[
        {"rulePriority":1,"description":"Keep last 1000 release images","selection":{"tagStatus":"tagged","tagPatternList":["v*.*.*"],"countType":"imageCountMoreThan","countNumber":1000},"action":{"type":"expire"}},
        {"rulePriority":2,"description":"Archive commit images after 30 days","selection":{"tagStatus":"tagged","tagPrefixList":["sha-"],"countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}},
        {"rulePriority":3,"description":"Expire untagged images after 7 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Image i was pushed i minutes ago (i < 100_000, so up to ~69 days). Every third image is a
    // release, every third a commit build, every third untagged.
    let images: Vec<ImageFacts> = (0..100_000_i64)
        .map(|i| {
            let tags = match i % 3 {
                0 => vec![format!("v{}.{}.{}", i / 10_000, (i / 100) % 100, i % 100), "latest-ish".to_owned()],
                1 => vec![format!("sha-{i:08x}")],
                _ => vec![],
            };
            ImageFacts {
                digest: format!("sha256:{i:064x}"),
                tags,
                pushed_at: NOW - i * 60_000,
                storage_class: StorageClass::Standard,
                ..Default::default()
            }
        })
        .collect();

    let start = Instant::now();
    let decisions = evaluate(&policy, &images, NOW);
    let elapsed = start.elapsed();
    println!("evaluate: {} images, {} rules, {} decisions in {elapsed:?}", images.len(), policy.rules.len(), decisions.len());

    // Rule 1: 33,334 releases, keep 1000. Rule 2: commit builds older than 30 days (pushed more
    // than 43,200 minutes ago): i in 43,201..100,000 with i % 3 == 1. Rule 3: untagged older than
    // 7 days (10,080 minutes): i in 10,081..100,000 with i % 3 == 2.
    let releases = (0..100_000).filter(|i| i % 3 == 0).count();
    let commits = (43_201..100_000).filter(|i| i % 3 == 1).count();
    let untagged = (10_081..100_000).filter(|i| i % 3 == 2).count();
    assert_eq!(
        summarize(&decisions),
        PreviewSummary { expiring_image_total_count: releases - 1000 + untagged, transitioning_image_total_count: commits }
    );
    assert_eq!(decisions.len(), releases - 1000 + commits + untagged);
}
