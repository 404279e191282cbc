//! The validated, typed form of an ECR lifecycle policy.
//!
//! Values of these types come out of [`crate::parse_policy`], which has already enforced every
//! constraint ECR documents, so the evaluator can trust them (e.g. a `Transition` rule always
//! selects standard images, a `SinceImageTransitioned` rule always selects archived ones).

use serde::Serialize;

/// A parsed lifecycle policy. `rules` are sorted by `priority`, ascending, which is the order ECR
/// applies them in (priority 1 first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecyclePolicy {
    pub rules: Vec<Rule>,
}

/// One rule of a lifecycle policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `rulePriority`: unique within the policy; lower numbers are applied first.
    pub priority: u32,
    pub description: Option<String>,
    pub selection: Selection,
    pub action: Action,
}

/// `selection.tagStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagStatus {
    /// Images with at least one tag that satisfies the rule's prefix or pattern list.
    Tagged,
    /// Images with no tags at all.
    Untagged,
    /// Every image of the rule's storage class.
    Any,
}

impl TagStatus {
    /// The spelling used in policy text.
    pub fn as_policy_str(self) -> &'static str {
        match self {
            TagStatus::Tagged => "tagged",
            TagStatus::Untagged => "untagged",
            TagStatus::Any => "any",
        }
    }
}

/// `selection`: which images a rule looks at and how it picks the ones to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub tag_status: TagStatus,
    /// `tagPrefixList`; non-empty only when `tag_status` is `Tagged` (and then `tag_patterns` is empty).
    pub tag_prefixes: Vec<String>,
    /// `tagPatternList`; non-empty only when `tag_status` is `Tagged` (and then `tag_prefixes` is empty).
    pub tag_patterns: Vec<String>,
    pub count: Count,
    /// `selection.storageClass`: the rule only sees images of this storage class. ECR defaults it to
    /// `standard`; it must be `archive` exactly when the count type is `sinceImageTransitioned`.
    pub storage_class: StorageClass,
}

/// `countType` together with `countNumber` (and the implied `countUnit: days`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Count {
    /// Keep the newest N selected images; the rest are selected for the action.
    ImageCountMoreThan(u32),
    /// Images pushed more than `days` days ago.
    SinceImagePushed { days: u32 },
    /// Images last pulled (or, never pulled, pushed) more than `days` days ago. Transition only.
    SinceImagePulled { days: u32 },
    /// Archived images transitioned to archive more than `days` days ago. Expire only.
    SinceImageTransitioned { days: u32 },
}

impl Count {
    /// The `countType` spelling used in policy text.
    pub fn count_type(self) -> &'static str {
        match self {
            Count::ImageCountMoreThan(_) => "imageCountMoreThan",
            Count::SinceImagePushed { .. } => "sinceImagePushed",
            Count::SinceImagePulled { .. } => "sinceImagePulled",
            Count::SinceImageTransitioned { .. } => "sinceImageTransitioned",
        }
    }

    /// The `countNumber`.
    pub fn number(self) -> u32 {
        match self {
            Count::ImageCountMoreThan(n)
            | Count::SinceImagePushed { days: n }
            | Count::SinceImagePulled { days: n }
            | Count::SinceImageTransitioned { days: n } => n,
        }
    }
}

/// `action.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionKind {
    /// Delete the image.
    Expire,
    /// Move the image to the archive storage class (`targetStorageClass: "archive"`, the only
    /// target ECR supports).
    Transition,
}

impl ActionKind {
    /// The API spelling (`ImageActionType` in the ECR model): `EXPIRE` / `TRANSITION`.
    pub fn as_api_str(self) -> &'static str {
        match self {
            ActionKind::Expire => "EXPIRE",
            ActionKind::Transition => "TRANSITION",
        }
    }

    /// The storage class a transition moves the image to (`LifecyclePolicyRuleAction.targetStorageClass`).
    pub fn target_storage_class(self) -> Option<StorageClass> {
        match self {
            ActionKind::Expire => None,
            ActionKind::Transition => Some(StorageClass::Archive),
        }
    }
}

/// `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Action {
    pub kind: ActionKind,
}

/// An image storage class (`LifecyclePolicyStorageClass` in the ECR model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageClass {
    #[default]
    Standard,
    Archive,
}

impl StorageClass {
    /// The spelling used in policy text: `standard` / `archive`.
    pub fn as_policy_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "standard",
            StorageClass::Archive => "archive",
        }
    }

    /// The API spelling: `STANDARD` / `ARCHIVE`.
    pub fn as_api_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "STANDARD",
            StorageClass::Archive => "ARCHIVE",
        }
    }
}
