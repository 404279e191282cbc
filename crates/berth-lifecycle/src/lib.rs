//! Amazon ECR lifecycle policies for berth: parse and validate policy text the way ECR's
//! `PutLifecyclePolicy` / `StartLifecyclePolicyPreview` do, and evaluate a policy against a
//! repository's images the way ECR's lifecycle evaluator is documented to.
//!
//! Pure library: no I/O, no clock, no async. The caller supplies the images (as [`ImageFacts`]) and
//! "now", and applies the returned [`Decision`]s (delete, or move to archive) itself.
//!
//! ```
//! use berth_lifecycle::{evaluate, parse_policy, ActionKind, ImageFacts, DAY_MS};
//!
//! let policy = parse_policy(
//!     r#"{"rules":[{"rulePriority":1,"description":"Expire untagged images older than 14 days",
//!        "selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},
//!        "action":{"type":"expire"}}]}"#,
//! )
//! .unwrap();
//! let now = 100 * DAY_MS;
//! let images = vec![
//!     ImageFacts { digest: "sha256:old".into(), pushed_at: now - 20 * DAY_MS, ..Default::default() },
//!     ImageFacts { digest: "sha256:new".into(), pushed_at: now - 2 * DAY_MS, ..Default::default() },
//! ];
//! let decisions = evaluate(&policy, &images, now);
//! assert_eq!(decisions.len(), 1);
//! assert_eq!(decisions[0].digest, "sha256:old");
//! assert_eq!(decisions[0].action, ActionKind::Expire);
//! ```

mod error;
mod evaluate;
mod pattern;
mod policy;
mod validate;

pub use error::PolicyError;
pub use evaluate::{evaluate, summarize, Decision, ImageFacts, PreviewSummary, DAY_MS};
pub use pattern::{TagFilter, WildcardPattern};
pub use policy::{Action, ActionKind, Count, LifecyclePolicy, Rule, Selection, StorageClass, TagStatus};
pub use validate::{parse_policy, MAX_POLICY_TEXT_CHARS, MAX_RULES, MAX_WILDCARDS_PER_PATTERN, MIN_ARCHIVE_DAYS, MIN_POLICY_TEXT_CHARS};
