//! `parse_policy`: lifecycle policy text → [`LifecyclePolicy`], enforcing ECR's documented rules.
//!
//! The text is parsed into a `serde_json::Value` and walked by hand rather than deserialized with
//! derive, because every error has to name the rule (by `rulePriority`) and the field, and the
//! cross-field rules (`countUnit` only with `since*`, `targetStorageClass` only with `transition`,
//! …) need the whole rule in view.
//!
//! Sources: "Lifecycle policy properties in Amazon ECR", "Automate the cleanup of images by using
//! lifecycle policies" (evaluation rules), "Examples of lifecycle policies" (archive examples), and
//! the `PutLifecyclePolicy` length constraint (100..=30720 characters).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::PolicyError;
use crate::pattern::wildcard_count;
use crate::policy::{Action, ActionKind, Count, LifecyclePolicy, Rule, Selection, StorageClass, TagStatus};

/// `lifecyclePolicyText` length bounds, in characters.
pub const MIN_POLICY_TEXT_CHARS: usize = 100;
pub const MAX_POLICY_TEXT_CHARS: usize = 30_720;
/// ECR service quota "Rules per lifecycle policy".
pub const MAX_RULES: usize = 50;
/// "There is a maximum limit of four wildcards (*) per string."
pub const MAX_WILDCARDS_PER_PATTERN: usize = 4;
/// "Archived images have a minimum storage duration of 90 days. You cannot configure lifecycle
/// policies that delete images that have been in archive for less than 90 days."
pub const MIN_ARCHIVE_DAYS: u32 = 90;

const RULE_FIELDS: &[&str] = &["rulePriority", "description", "selection", "action"];
const SELECTION_FIELDS: &[&str] =
    &["tagStatus", "tagPatternList", "tagPrefixList", "storageClass", "countType", "countUnit", "countNumber"];
const ACTION_FIELDS: &[&str] = &["type", "targetStorageClass"];
/// ECR's integers are Java `int`s.
const MAX_INT: u64 = i32::MAX as u64;

/// Parses and validates lifecycle policy text exactly as `PutLifecyclePolicy` /
/// `StartLifecyclePolicyPreview` do. On success the rules are sorted by priority.
pub fn parse_policy(text: &str) -> Result<LifecyclePolicy, PolicyError> {
    let chars = text.chars().count();
    if chars < MIN_POLICY_TEXT_CHARS {
        return Err(PolicyError::policy(
            Some("lifecyclePolicyText"),
            format!("lifecyclePolicyText must have length greater than or equal to {MIN_POLICY_TEXT_CHARS} (got {chars})"),
        ));
    }
    if chars > MAX_POLICY_TEXT_CHARS {
        return Err(PolicyError::policy(
            Some("lifecyclePolicyText"),
            format!("lifecyclePolicyText must have length less than or equal to {MAX_POLICY_TEXT_CHARS} (got {chars})"),
        ));
    }
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| PolicyError::policy(None, format!("Could not map policyString into LifecyclePolicy: invalid JSON ({e})")))?;
    let Value::Object(top) = doc else {
        return Err(PolicyError::policy(None, "Could not map policyString into LifecyclePolicy: the policy must be a JSON object"));
    };
    if let Some(key) = top.keys().find(|k| k.as_str() != "rules") {
        return Err(PolicyError::policy(Some(key.as_str()), format!("{key} is not an allowed field (allowed: rules)")));
    }
    let rules = match top.get("rules") {
        None | Some(Value::Null) => return Err(PolicyError::policy(Some("rules"), "rules is required")),
        Some(Value::Array(rules)) => rules,
        Some(_) => return Err(PolicyError::policy(Some("rules"), "rules must be an array")),
    };
    if rules.is_empty() {
        return Err(PolicyError::policy(Some("rules"), "rules must contain at least 1 rule"));
    }
    if rules.len() > MAX_RULES {
        return Err(PolicyError::policy(Some("rules"), format!("rules must contain at most {MAX_RULES} rules (got {})", rules.len())));
    }

    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut parsed = Vec::with_capacity(rules.len());
    for (index, raw) in rules.iter().enumerate() {
        let rule = parse_rule(index, raw)?;
        if seen.insert(rule.priority, index).is_some() {
            return Err(PolicyError::rule(&format!("rule {}", rule.priority), Some(rule.priority), "rulePriority", "must be unique"));
        }
        parsed.push(rule);
    }
    parsed.sort_by_key(|r| r.priority);
    check_across_rules(&parsed)?;
    Ok(LifecyclePolicy { rules: parsed })
}

/// Field access for one JSON object of a rule, producing errors that name the rule.
struct Ctx<'a> {
    label: String,
    priority: Option<u32>,
    obj: &'a Map<String, Value>,
    /// Path prefix for field names: "" for the rule itself, "selection." / "action." below it.
    path: &'static str,
}

impl<'a> Ctx<'a> {
    fn err(&self, field: &str, predicate: impl std::fmt::Display) -> PolicyError {
        PolicyError::rule(&self.label, self.priority, &format!("{}{field}", self.path), predicate)
    }

    /// A present, non-null value. ECR's JSON binding treats `null` like an absent field.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn reject_unknown(&self, allowed: &[&str]) -> Result<(), PolicyError> {
        match self.obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(self.err(key, format!("is not an allowed field (allowed: {})", allowed.join(", ")))),
            None => Ok(()),
        }
    }

    fn string(&self, field: &str) -> Result<Option<&'a str>, PolicyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, "must be a string")),
        }
    }

    fn required_string(&self, field: &str) -> Result<&'a str, PolicyError> {
        self.string(field)?.ok_or_else(|| self.err(field, "is required"))
    }

    fn object(&self, field: &'static str, path: &'static str) -> Result<Ctx<'a>, PolicyError> {
        match self.get(field) {
            None => Err(self.err(field, "is required")),
            Some(Value::Object(obj)) => Ok(Ctx { label: self.label.clone(), priority: self.priority, obj, path }),
            Some(_) => Err(self.err(field, "must be a JSON object")),
        }
    }

    fn string_list(&self, field: &str) -> Result<Option<Vec<String>>, PolicyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| self.err(field, "must be a list of strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.err(field, "must be a list of strings")),
        }
    }
}

/// A JSON number that is a positive whole number fitting ECR's 32-bit integers (`1`, not `1.0`).
fn positive_int(value: &Value) -> Option<u32> {
    value.as_u64().filter(|n| (1..=MAX_INT).contains(n)).and_then(|n| u32::try_from(n).ok())
}

fn parse_rule(index: usize, raw: &Value) -> Result<Rule, PolicyError> {
    let index_label = format!("rules[{index}]");
    let Value::Object(obj) = raw else {
        return Err(PolicyError::policy(Some("rules"), format!("{index_label}: must be a JSON object")));
    };
    let priority = match obj.get("rulePriority").filter(|v| !v.is_null()) {
        None => return Err(PolicyError::rule(&index_label, None, "rulePriority", "is required")),
        Some(v) => positive_int(v)
            .ok_or_else(|| PolicyError::rule(&index_label, None, "rulePriority", format!("must be a positive integer (got {v})")))?,
    };
    let rule = Ctx { label: format!("rule {priority}"), priority: Some(priority), obj, path: "" };
    rule.reject_unknown(RULE_FIELDS)?;
    let description = rule.string("description")?.map(str::to_owned);
    let selection = parse_selection(&rule.object("selection", "selection.")?)?;
    let action = parse_action(&rule.object("action", "action.")?)?;

    // Archive storage-class pairings ("Examples of lifecycle policies", Important notes): "The
    // sinceImagePulled count type must be used with the transition action. It cannot be used with
    // the expire action." / "The sinceImageTransitioned count type must be used with the expire
    // action and the archive storage class."
    match (selection.count, action.kind) {
        (Count::SinceImagePulled { .. }, ActionKind::Expire) => {
            return Err(rule.err("action.type", "must be transition when selection.countType is sinceImagePulled"));
        }
        (Count::SinceImageTransitioned { .. }, ActionKind::Transition) => {
            return Err(rule.err("action.type", "must be expire when selection.countType is sinceImageTransitioned"));
        }
        _ => {}
    }
    Ok(Rule { priority, description, selection, action })
}

fn parse_selection(sel: &Ctx<'_>) -> Result<Selection, PolicyError> {
    sel.reject_unknown(SELECTION_FIELDS)?;
    let tag_status = match sel.required_string("tagStatus")? {
        "tagged" => TagStatus::Tagged,
        "untagged" => TagStatus::Untagged,
        "any" => TagStatus::Any,
        other => return Err(sel.err("tagStatus", format!("must be one of tagged, untagged, any (got {other:?})"))),
    };

    let prefixes = sel.string_list("tagPrefixList")?;
    let patterns = sel.string_list("tagPatternList")?;
    match tag_status {
        TagStatus::Tagged => match (&prefixes, &patterns) {
            (Some(_), Some(_)) => return Err(sel.err("tagPatternList", "cannot be specified together with tagPrefixList")),
            (None, None) => return Err(sel.err("tagPrefixList", "or selection.tagPatternList is required when tagStatus is tagged")),
            (Some(list), None) if list.is_empty() => return Err(sel.err("tagPrefixList", "must not be empty")),
            (None, Some(list)) if list.is_empty() => return Err(sel.err("tagPatternList", "must not be empty")),
            _ => {}
        },
        TagStatus::Untagged | TagStatus::Any => {
            let status = tag_status.as_policy_str();
            if prefixes.is_some() {
                return Err(sel.err("tagPrefixList", format!("is not allowed when tagStatus is {status}")));
            }
            if patterns.is_some() {
                return Err(sel.err("tagPatternList", format!("is not allowed when tagStatus is {status}")));
            }
        }
    }
    let tag_prefixes = prefixes.unwrap_or_default();
    let tag_patterns = patterns.unwrap_or_default();
    if let Some(p) = tag_patterns.iter().find(|p| wildcard_count(p) > MAX_WILDCARDS_PER_PATTERN) {
        return Err(sel.err("tagPatternList", format!("entry {p:?} has more than {MAX_WILDCARDS_PER_PATTERN} wildcards (*)")));
    }

    let count_type = sel.required_string("countType")?;
    let since = matches!(count_type, "sinceImagePushed" | "sinceImagePulled" | "sinceImageTransitioned");
    if !since && count_type != "imageCountMoreThan" {
        return Err(sel.err(
            "countType",
            format!("must be one of imageCountMoreThan, sinceImagePushed, sinceImagePulled, sinceImageTransitioned (got {count_type:?})"),
        ));
    }
    match (sel.string("countUnit")?, since) {
        (None, true) => return Err(sel.err("countUnit", format!("is required when countType is {count_type}"))),
        (Some(_), false) => return Err(sel.err("countUnit", format!("is not allowed when countType is {count_type}"))),
        (Some(unit), true) if unit != "days" => return Err(sel.err("countUnit", format!("must be days (got {unit:?})"))),
        _ => {}
    }
    let number = match sel.get("countNumber") {
        None => return Err(sel.err("countNumber", "is required")),
        Some(v) => positive_int(v).ok_or_else(|| sel.err("countNumber", format!("must be a positive integer (got {v})")))?,
    };
    let count = match count_type {
        "imageCountMoreThan" => Count::ImageCountMoreThan(number),
        "sinceImagePushed" => Count::SinceImagePushed { days: number },
        "sinceImagePulled" => Count::SinceImagePulled { days: number },
        _ => Count::SinceImageTransitioned { days: number },
    };

    // "When using a countType of imageCountMoreThan, sinceImagePushed, or sinceImagePulled, the only
    // supported value is standard. When using a count type of sinceImageTransitioned, this is
    // required, and the only supported value is archive. If you omit this, the value of standard
    // will be used."
    let storage_class = match sel.string("storageClass")? {
        None => None,
        Some("standard") => Some(StorageClass::Standard),
        Some("archive") => Some(StorageClass::Archive),
        Some(other) => return Err(sel.err("storageClass", format!("must be one of standard, archive (got {other:?})"))),
    };
    let storage_class = match (count, storage_class) {
        (Count::SinceImageTransitioned { .. }, None) => {
            return Err(sel.err("storageClass", "is required when countType is sinceImageTransitioned"));
        }
        (Count::SinceImageTransitioned { .. }, Some(StorageClass::Standard)) => {
            return Err(sel.err("storageClass", "must be archive when countType is sinceImageTransitioned"));
        }
        (_, Some(StorageClass::Archive)) if !matches!(count, Count::SinceImageTransitioned { .. }) => {
            return Err(sel.err("storageClass", format!("must be standard when countType is {count_type}")));
        }
        (_, class) => class.unwrap_or_default(),
    };
    if let Count::SinceImageTransitioned { days } = count {
        if days < MIN_ARCHIVE_DAYS {
            return Err(sel.err(
                "countNumber",
                format!("must be at least {MIN_ARCHIVE_DAYS} when countType is sinceImageTransitioned (archived images have a {MIN_ARCHIVE_DAYS}-day minimum storage duration; got {days})"),
            ));
        }
    }
    Ok(Selection { tag_status, tag_prefixes, tag_patterns, count, storage_class })
}

fn parse_action(action: &Ctx<'_>) -> Result<Action, PolicyError> {
    action.reject_unknown(ACTION_FIELDS)?;
    let kind = match action.required_string("type")? {
        "expire" => ActionKind::Expire,
        "transition" => ActionKind::Transition,
        other => return Err(action.err("type", format!("must be one of expire, transition (got {other:?})"))),
    };
    match (kind, action.string("targetStorageClass")?) {
        (ActionKind::Expire, Some(_)) => Err(action.err("targetStorageClass", "is not allowed when action.type is expire")),
        (ActionKind::Transition, None) => Err(action.err("targetStorageClass", "is required when action.type is transition")),
        (ActionKind::Transition, Some(target)) if target != "archive" => {
            Err(action.err("targetStorageClass", format!("must be archive (got {target:?})")))
        }
        _ => Ok(Action { kind }),
    }
}

/// Rules that only make sense across the policy. ECR scopes them per storage class (a rule only
/// sees images of its own class), which is why the docs' "Combining archive and expire rules"
/// example may have two `tagStatus: any` rules.
fn check_across_rules(rules: &[Rule]) -> Result<(), PolicyError> {
    let err =
        |r: &Rule, field: &str, predicate: String| PolicyError::rule(&format!("rule {}", r.priority), Some(r.priority), field, predicate);
    for (i, rule) in rules.iter().enumerate() {
        let class = rule.selection.storage_class;
        let same_class = |other: &&Rule| other.selection.storage_class == class;
        let class_name = class.as_policy_str();
        // "A rule with a tagStatus value of any must have the highest value for rulePriority and be
        // evaluated last." ECR: "Rule for tagStatus=ANY must have the lowest priority per storage class".
        if rule.selection.tag_status == TagStatus::Any {
            if let Some(later) = rules[i + 1..].iter().find(same_class) {
                return Err(err(
                    rule,
                    "selection.tagStatus",
                    format!(
                        "any must be on the rule with the highest rulePriority among rules selecting {class_name} images (rule {} comes after it)",
                        later.priority
                    ),
                ));
            }
        }
        let earlier = &rules[..i];
        // "Only one rule selecting a specific storage class is allowed to select untagged images."
        if rule.selection.tag_status == TagStatus::Untagged {
            if let Some(first) = earlier.iter().filter(same_class).find(|r| r.selection.tag_status == TagStatus::Untagged) {
                return Err(err(
                    rule,
                    "selection.tagStatus",
                    format!(
                        "untagged is already selected by rule {} (only one rule per storage class may select untagged images)",
                        first.priority
                    ),
                ));
            }
        }
        // "The set of all rules selecting a specific storage class must contain a unique set of prefixes."
        if rule.selection.tag_status == TagStatus::Tagged {
            let key = tag_set_key(&rule.selection);
            if let Some(first) =
                earlier.iter().filter(same_class).find(|r| r.selection.tag_status == TagStatus::Tagged && tag_set_key(&r.selection) == key)
            {
                let field = if rule.selection.tag_patterns.is_empty() { "selection.tagPrefixList" } else { "selection.tagPatternList" };
                return Err(err(
                    rule,
                    field,
                    format!(
                        "repeats the tag list of rule {} (rules selecting {class_name} images must have unique tag lists)",
                        first.priority
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Order- and duplicate-insensitive identity of a tagged rule's list, tagged by list kind.
fn tag_set_key(selection: &Selection) -> (bool, Vec<&str>) {
    let is_pattern = !selection.tag_patterns.is_empty();
    let list = if is_pattern { &selection.tag_patterns } else { &selection.tag_prefixes };
    let mut items: Vec<&str> = list.iter().map(String::as_str).collect();
    items.sort_unstable();
    items.dedup();
    (is_pattern, items)
}
