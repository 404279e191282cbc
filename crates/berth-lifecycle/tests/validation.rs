//! One test per validation rule, each checking the exact message.

mod common;

use berth_lifecycle::{parse_policy, ActionKind, Count, StorageClass, TagStatus};
use common::{base_rule, policy_text, reject};
use serde_json::{json, Value};

/// A rule with the given priority, selection and action.
fn rule(priority: i64, selection: Value, action: Value) -> Value {
    json!({"rulePriority": priority, "selection": selection, "action": action})
}

fn expire() -> Value {
    json!({"type": "expire"})
}

fn transition() -> Value {
    json!({"type": "transition", "targetStorageClass": "archive"})
}

fn untagged_days(days: i64) -> Value {
    json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days})
}

fn tagged_prefix(prefixes: &[&str]) -> Value {
    json!({"tagStatus": "tagged", "tagPrefixList": prefixes, "countType": "imageCountMoreThan", "countNumber": 1})
}

fn detail(rules: Vec<Value>) -> String {
    reject(rules).detail().to_owned()
}

fn detail_of_text(text: &str) -> String {
    match parse_policy(text) {
        Ok(p) => panic!("policy unexpectedly accepted: {p:?}"),
        Err(e) => e.detail().to_owned(),
    }
}

/// `text` padded with trailing spaces to exactly `len` characters.
fn padded(text: &str, len: usize) -> String {
    format!("{text:<len$}")
}

const MINIMAL: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;

#[test]
fn display_is_the_invalid_parameter_message() {
    let err = reject(vec![rule(2, json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countNumber": 7}), expire())]);
    assert_eq!(err.detail(), "rule 2: selection.countUnit is required when countType is sinceImagePushed");
    assert_eq!(
        err.to_string(),
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: \
         rule 2: selection.countUnit is required when countType is sinceImagePushed'"
    );
    assert_eq!(err.rule_priority(), Some(2));
    assert_eq!(err.field(), Some("selection.countUnit"));
}

// ---- text length ----

#[test]
fn text_shorter_than_100_characters() {
    assert_eq!(detail_of_text("{}"), "lifecyclePolicyText must have length greater than or equal to 100 (got 2)");
    assert_eq!(detail_of_text(&padded("{}", 99)), "lifecyclePolicyText must have length greater than or equal to 100 (got 99)");
    // At 100 characters the length check passes and the content is judged instead.
    assert_eq!(detail_of_text(&padded("{}", 100)), "rules is required");
}

#[test]
fn text_longer_than_30720_characters() {
    assert!(parse_policy(&padded(MINIMAL, 30_720)).is_ok());
    assert_eq!(detail_of_text(&padded(MINIMAL, 30_721)), "lifecyclePolicyText must have length less than or equal to 30720 (got 30721)");
}

#[test]
fn length_counts_characters_not_bytes() {
    // 'é' is two bytes: 30720 characters but 30721+ bytes is still accepted.
    let text = MINIMAL.replacen("\"selection\"", "\"description\":\"é\",\"selection\"", 1);
    assert!(parse_policy(&padded(&text, 30_720)).is_ok());
}

// ---- document shape ----

#[test]
fn invalid_json() {
    let d = detail_of_text(&padded("{\"rules\": [", 120));
    assert!(d.starts_with("Could not map policyString into LifecyclePolicy: invalid JSON (EOF while parsing"), "{d}");
}

#[test]
fn top_level_must_be_an_object() {
    let text = format!("[{}]", padded(MINIMAL, 120));
    assert_eq!(detail_of_text(&text), "Could not map policyString into LifecyclePolicy: the policy must be a JSON object");
}

#[test]
fn top_level_unknown_field() {
    let text = MINIMAL.replacen("{\"rules\"", "{\"version\":1,\"rules\"", 1);
    assert_eq!(detail_of_text(&text), "version is not an allowed field (allowed: rules)");
}

#[test]
fn rules_required_and_an_array() {
    assert_eq!(detail_of_text(&padded("{\"rules\": null}", 100)), "rules is required");
    assert_eq!(detail_of_text(&padded("{}", 100)), "rules is required");
    assert_eq!(detail_of_text(&padded("{\"rules\": {}}", 100)), "rules must be an array");
}

#[test]
fn rule_count_between_1_and_50() {
    assert_eq!(detail(vec![]), "rules must contain at least 1 rule");
    let rules = |n: usize| (1..=n).map(|i| rule(i as i64, tagged_prefix(&[&format!("p{i}-")]), expire())).collect::<Vec<_>>();
    assert_eq!(parse_policy(&policy_text(rules(50))).map(|p| p.rules.len()), Ok(50));
    assert_eq!(detail(rules(51)), "rules must contain at most 50 rules (got 51)");
}

#[test]
fn rule_must_be_an_object() {
    let err = reject(vec![json!("rule")]);
    assert_eq!(err.detail(), "rules[0]: must be a JSON object");
    assert_eq!(err.rule_priority(), None);
}

// ---- rulePriority ----

#[test]
fn rule_priority_required() {
    assert_eq!(detail(vec![json!({"selection": untagged_days(1), "action": expire()})]), "rules[0]: rulePriority is required");
}

#[test]
fn rule_priority_positive_integer() {
    for (bad, shown) in
        [(json!(0), "0"), (json!(-1), "-1"), (json!(1.5), "1.5"), (json!("1"), "\"1\""), (json!(2_147_483_648_i64), "2147483648")]
    {
        let mut r = base_rule(1);
        r["rulePriority"] = bad;
        assert_eq!(detail(vec![r]), format!("rules[0]: rulePriority must be a positive integer (got {shown})"));
    }
    assert!(parse_policy(&policy_text(vec![base_rule(2_147_483_647)])).is_ok());
}

#[test]
fn rule_priority_unique() {
    let err = reject(vec![rule(3, tagged_prefix(&["a"]), expire()), rule(3, tagged_prefix(&["b"]), expire())]);
    assert_eq!(err.detail(), "rule 3: rulePriority must be unique");
    assert_eq!(err.field(), Some("rulePriority"));
}

// ---- unknown fields ----

#[test]
fn unknown_rule_field() {
    let mut r = base_rule(1);
    r["priority"] = json!(1);
    assert_eq!(detail(vec![r]), "rule 1: priority is not an allowed field (allowed: rulePriority, description, selection, action)");
}

#[test]
fn unknown_selection_field() {
    let mut r = base_rule(4);
    r["selection"]["tagPrefix"] = json!("x");
    assert_eq!(
        detail(vec![r]),
        "rule 4: selection.tagPrefix is not an allowed field (allowed: tagStatus, tagPatternList, tagPrefixList, storageClass, countType, countUnit, countNumber)"
    );
}

#[test]
fn unknown_action_field() {
    let mut r = base_rule(1);
    r["action"]["days"] = json!(3);
    assert_eq!(detail(vec![r]), "rule 1: action.days is not an allowed field (allowed: type, targetStorageClass)");
}

// ---- description, selection, action presence ----

#[test]
fn description_must_be_a_string() {
    let mut r = base_rule(1);
    r["description"] = json!(7);
    assert_eq!(detail(vec![r]), "rule 1: description must be a string");
    let mut r = base_rule(1);
    r["description"] = Value::Null;
    assert_eq!(parse_policy(&policy_text(vec![r])).map(|p| p.rules[0].description.clone()), Ok(None), "null reads as absent");
}

#[test]
fn selection_and_action_required_objects() {
    assert_eq!(detail(vec![json!({"rulePriority": 1, "action": expire()})]), "rule 1: selection is required");
    assert_eq!(detail(vec![json!({"rulePriority": 1, "selection": [], "action": expire()})]), "rule 1: selection must be a JSON object");
    assert_eq!(detail(vec![json!({"rulePriority": 1, "selection": untagged_days(1)})]), "rule 1: action is required");
    assert_eq!(
        detail(vec![json!({"rulePriority": 1, "selection": untagged_days(1), "action": "expire"})]),
        "rule 1: action must be a JSON object"
    );
}

// ---- tagStatus and tag lists ----

#[test]
fn tag_status_required_and_enumerated() {
    let mut r = base_rule(1);
    r["selection"].as_object_mut().map(|s| s.remove("tagStatus"));
    assert_eq!(detail(vec![r]), "rule 1: selection.tagStatus is required");
    for (bad, msg) in [
        (json!("TAGGED"), "rule 1: selection.tagStatus must be one of tagged, untagged, any (got \"TAGGED\")"),
        (json!("all"), "rule 1: selection.tagStatus must be one of tagged, untagged, any (got \"all\")"),
        (json!(true), "rule 1: selection.tagStatus must be a string"),
    ] {
        let mut r = base_rule(1);
        r["selection"]["tagStatus"] = bad;
        assert_eq!(detail(vec![r]), msg);
    }
}

#[test]
fn tagged_needs_a_list() {
    let sel = json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(
        detail(vec![rule(1, sel, expire())]),
        "rule 1: selection.tagPrefixList or selection.tagPatternList is required when tagStatus is tagged"
    );
}

#[test]
fn tagged_lists_are_exclusive() {
    let sel = json!({"tagStatus": "tagged", "tagPrefixList": ["a"], "tagPatternList": ["a*"], "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(detail(vec![rule(1, sel, expire())]), "rule 1: selection.tagPatternList cannot be specified together with tagPrefixList");
}

#[test]
fn tagged_lists_must_not_be_empty() {
    assert_eq!(detail(vec![rule(1, tagged_prefix(&[]), expire())]), "rule 1: selection.tagPrefixList must not be empty");
    let sel = json!({"tagStatus": "tagged", "tagPatternList": [], "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(detail(vec![rule(1, sel, expire())]), "rule 1: selection.tagPatternList must not be empty");
}

#[test]
fn tag_lists_hold_strings() {
    let sel = json!({"tagStatus": "tagged", "tagPrefixList": ["a", 1], "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(detail(vec![rule(1, sel, expire())]), "rule 1: selection.tagPrefixList must be a list of strings");
    let sel = json!({"tagStatus": "tagged", "tagPatternList": "a*", "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(detail(vec![rule(1, sel, expire())]), "rule 1: selection.tagPatternList must be a list of strings");
}

#[test]
fn untagged_and_any_take_no_list() {
    let mut r = base_rule(1);
    r["selection"]["tagPrefixList"] = json!(["a"]);
    assert_eq!(detail(vec![r]), "rule 1: selection.tagPrefixList is not allowed when tagStatus is untagged");
    let sel = json!({"tagStatus": "any", "tagPatternList": ["*"], "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(detail(vec![rule(1, sel, expire())]), "rule 1: selection.tagPatternList is not allowed when tagStatus is any");
}

#[test]
fn at_most_four_wildcards_per_pattern() {
    // The docs' own example: ["*test*1*2*3", "test*1*2*3*"] is valid, ["test*1*2*3*4*5*6"] is not.
    let ok = json!({"tagStatus": "tagged", "tagPatternList": ["*test*1*2*3", "test*1*2*3*"], "countType": "imageCountMoreThan", "countNumber": 1});
    assert!(parse_policy(&policy_text(vec![rule(1, ok, expire())])).is_ok());
    let bad =
        json!({"tagStatus": "tagged", "tagPatternList": ["ok*", "test*1*2*3*4*5*6"], "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(
        detail(vec![rule(1, bad, expire())]),
        "rule 1: selection.tagPatternList entry \"test*1*2*3*4*5*6\" has more than 4 wildcards (*)"
    );
    let five = json!({"tagStatus": "tagged", "tagPatternList": ["*a*b*c*d*"], "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(detail(vec![rule(1, five, expire())]), "rule 1: selection.tagPatternList entry \"*a*b*c*d*\" has more than 4 wildcards (*)");
}

// ---- countType / countUnit / countNumber ----

#[test]
fn count_type_required_and_enumerated() {
    let mut r = base_rule(1);
    r["selection"].as_object_mut().map(|s| s.remove("countType"));
    assert_eq!(detail(vec![r]), "rule 1: selection.countType is required");
    let mut r = base_rule(1);
    r["selection"]["countType"] = json!("sinceImageCreated");
    assert_eq!(
        detail(vec![r]),
        "rule 1: selection.countType must be one of imageCountMoreThan, sinceImagePushed, sinceImagePulled, sinceImageTransitioned (got \"sinceImageCreated\")"
    );
}

#[test]
fn count_unit_required_with_since_types() {
    for (count_type, action) in [("sinceImagePushed", expire()), ("sinceImagePulled", transition())] {
        let sel = json!({"tagStatus": "untagged", "countType": count_type, "countNumber": 7});
        assert_eq!(detail(vec![rule(2, sel, action)]), format!("rule 2: selection.countUnit is required when countType is {count_type}"));
    }
    let sel = json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countNumber": 90});
    assert_eq!(detail(vec![rule(2, sel, expire())]), "rule 2: selection.countUnit is required when countType is sinceImageTransitioned");
}

#[test]
fn count_unit_forbidden_with_image_count() {
    let sel = json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countUnit": "days", "countNumber": 5});
    assert_eq!(detail(vec![rule(1, sel, expire())]), "rule 1: selection.countUnit is not allowed when countType is imageCountMoreThan");
}

#[test]
fn count_unit_only_days() {
    let mut r = base_rule(1);
    r["selection"]["countUnit"] = json!("hours");
    assert_eq!(detail(vec![r]), "rule 1: selection.countUnit must be days (got \"hours\")");
}

#[test]
fn count_number_required_positive_integer() {
    let mut r = base_rule(1);
    r["selection"].as_object_mut().map(|s| s.remove("countNumber"));
    assert_eq!(detail(vec![r]), "rule 1: selection.countNumber is required");
    for (bad, shown) in
        [(json!(0), "0"), (json!(-3), "-3"), (json!(2.5), "2.5"), (json!("7"), "\"7\""), (json!(4_294_967_296_i64), "4294967296")]
    {
        let mut r = base_rule(1);
        r["selection"]["countNumber"] = bad;
        assert_eq!(detail(vec![r]), format!("rule 1: selection.countNumber must be a positive integer (got {shown})"));
    }
}

// ---- storageClass (archive) ----

#[test]
fn storage_class_enumerated() {
    let mut r = base_rule(1);
    r["selection"]["storageClass"] = json!("glacier");
    assert_eq!(detail(vec![r]), "rule 1: selection.storageClass must be one of standard, archive (got \"glacier\")");
}

#[test]
fn storage_class_archive_only_with_since_image_transitioned() {
    let mut r = base_rule(1);
    r["selection"]["storageClass"] = json!("archive");
    assert_eq!(detail(vec![r]), "rule 1: selection.storageClass must be standard when countType is sinceImagePushed");
    let mut r = base_rule(1);
    r["selection"]["storageClass"] = json!("standard");
    assert_eq!(parse_policy(&policy_text(vec![r])).map(|p| p.rules[0].selection.storage_class), Ok(StorageClass::Standard));
}

#[test]
fn since_image_transitioned_requires_archive_storage_class() {
    let sel = json!({"tagStatus": "any", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 365});
    assert_eq!(detail(vec![rule(2, sel, expire())]), "rule 2: selection.storageClass is required when countType is sinceImageTransitioned");
    let sel = json!({"tagStatus": "any", "storageClass": "standard", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 365});
    assert_eq!(
        detail(vec![rule(2, sel, expire())]),
        "rule 2: selection.storageClass must be archive when countType is sinceImageTransitioned"
    );
}

#[test]
fn since_image_transitioned_at_least_90_days() {
    let sel = |n: i64| json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": n});
    assert_eq!(
        detail(vec![rule(1, sel(89), expire())]),
        "rule 1: selection.countNumber must be at least 90 when countType is sinceImageTransitioned \
         (archived images have a 90-day minimum storage duration; got 89)"
    );
    let policy = parse_policy(&policy_text(vec![rule(1, sel(90), expire())])).map_err(|e| e.to_string());
    assert_eq!(policy.map(|p| p.rules[0].selection.count), Ok(Count::SinceImageTransitioned { days: 90 }));
}

// ---- action ----

#[test]
fn action_type_required_and_enumerated() {
    assert_eq!(detail(vec![rule(1, untagged_days(1), json!({}))]), "rule 1: action.type is required");
    assert_eq!(
        detail(vec![rule(1, untagged_days(1), json!({"type": "delete"}))]),
        "rule 1: action.type must be one of expire, transition (got \"delete\")"
    );
    assert_eq!(
        detail(vec![rule(1, untagged_days(1), json!({"type": "archive"}))]),
        "rule 1: action.type must be one of expire, transition (got \"archive\")"
    );
}

#[test]
fn transition_requires_archive_target() {
    assert_eq!(
        detail(vec![rule(1, untagged_days(1), json!({"type": "transition"}))]),
        "rule 1: action.targetStorageClass is required when action.type is transition"
    );
    assert_eq!(
        detail(vec![rule(1, untagged_days(1), json!({"type": "transition", "targetStorageClass": "standard"}))]),
        "rule 1: action.targetStorageClass must be archive (got \"standard\")"
    );
}

#[test]
fn expire_takes_no_target() {
    assert_eq!(
        detail(vec![rule(1, untagged_days(1), json!({"type": "expire", "targetStorageClass": "archive"}))]),
        "rule 1: action.targetStorageClass is not allowed when action.type is expire"
    );
}

#[test]
fn since_image_pulled_only_transitions() {
    let sel = json!({"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90});
    assert_eq!(detail(vec![rule(1, sel, expire())]), "rule 1: action.type must be transition when selection.countType is sinceImagePulled");
}

#[test]
fn since_image_transitioned_only_expires() {
    let sel = json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90});
    assert_eq!(
        detail(vec![rule(1, sel, transition())]),
        "rule 1: action.type must be expire when selection.countType is sinceImageTransitioned"
    );
}

// ---- rules across the policy ----

#[test]
fn any_rule_must_be_last_in_its_storage_class() {
    let any = json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1});
    let err = reject(vec![rule(5, any.clone(), expire()), rule(7, tagged_prefix(&["prod"]), expire())]);
    assert_eq!(
        err.detail(),
        "rule 5: selection.tagStatus any must be on the rule with the highest rulePriority among rules selecting standard images (rule 7 comes after it)"
    );
    // Document order does not matter, priorities do.
    assert!(parse_policy(&policy_text(vec![rule(9, any.clone(), expire()), rule(7, tagged_prefix(&["prod"]), expire())])).is_ok());
    // An archive rule after a standard `any` rule is fine: the docs' "Combining archive and expire rules".
    let archive = json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 365});
    assert!(parse_policy(&policy_text(vec![rule(1, any, transition()), rule(2, archive, expire())])).is_ok());
}

#[test]
fn one_untagged_rule_per_storage_class() {
    let err = reject(vec![rule(1, untagged_days(1), expire()), rule(2, untagged_days(30), transition())]);
    assert_eq!(
        err.detail(),
        "rule 2: selection.tagStatus untagged is already selected by rule 1 (only one rule per storage class may select untagged images)"
    );
    let archive = json!({"tagStatus": "untagged", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90});
    assert!(parse_policy(&policy_text(vec![rule(1, untagged_days(1), expire()), rule(2, archive, expire())])).is_ok());
}

#[test]
fn tag_lists_unique_per_storage_class() {
    let err = reject(vec![rule(1, tagged_prefix(&["prod", "v"]), expire()), rule(2, tagged_prefix(&["v", "prod"]), transition())]);
    assert_eq!(
        err.detail(),
        "rule 2: selection.tagPrefixList repeats the tag list of rule 1 (rules selecting standard images must have unique tag lists)"
    );
    let patterns = |p: &[&str]| json!({"tagStatus": "tagged", "tagPatternList": p, "countType": "imageCountMoreThan", "countNumber": 3});
    let err = reject(vec![rule(1, patterns(&["prod*"]), expire()), rule(2, patterns(&["prod*"]), expire())]);
    assert_eq!(err.field(), Some("selection.tagPatternList"));
    // A prefix list and a pattern list are different filters even when spelled alike.
    assert!(parse_policy(&policy_text(vec![rule(1, tagged_prefix(&["prod"]), expire()), rule(2, patterns(&["prod"]), expire())])).is_ok());
    // The same list on an archive rule is a different storage class.
    let archive = json!({"tagStatus": "tagged", "tagPrefixList": ["prod"], "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90});
    assert!(parse_policy(&policy_text(vec![rule(1, tagged_prefix(&["prod"]), transition()), rule(2, archive, expire())])).is_ok());
}

// ---- the parsed form ----

#[test]
fn parsed_policy_is_typed_and_sorted() {
    let text = r#"{"rules":[
        {"rulePriority":20,"selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":365},"action":{"type":"expire"}},
        {"rulePriority":3,"description":"archive","selection":{"tagStatus":"tagged","tagPatternList":["v*"],"countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}
    ]}"#;
    let policy = parse_policy(text).map_err(|e| e.to_string());
    let Ok(policy) = policy else { panic!("{policy:?}") };
    assert_eq!(policy.rules.iter().map(|r| r.priority).collect::<Vec<_>>(), vec![3, 20]);
    let first = &policy.rules[0];
    assert_eq!(first.description.as_deref(), Some("archive"));
    assert_eq!(first.selection.tag_status, TagStatus::Tagged);
    assert_eq!(first.selection.tag_patterns, vec!["v*".to_owned()]);
    assert!(first.selection.tag_prefixes.is_empty());
    assert_eq!(first.selection.count, Count::SinceImagePulled { days: 30 });
    assert_eq!(first.selection.storage_class, StorageClass::Standard);
    assert_eq!(first.action.kind, ActionKind::Transition);
    assert_eq!(policy.rules[1].selection.storage_class, StorageClass::Archive);
    assert_eq!(policy.rules[1].action.kind, ActionKind::Expire);
}
