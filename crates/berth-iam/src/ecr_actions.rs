//! The ECR actions a policy can name, for warning about one that names none (`ecr:Nope`): the
//! operations of botocore's ECR model, read from the extract the ECR adapter validates requests
//! with (`scripts/gen-ecr-constraints.py` writes it), so there is no second list to keep.

use std::sync::OnceLock;

use serde_json::Value;

use crate::policy::wildcard_matches;

const MODEL: &str = include_str!("../../berth-ecr/src/ecr-constraints.json");

/// IAM permissions of ECR that are no API operation (ECR's "Actions defined by Amazon ECR"):
/// replication and pull-through cache imports are authorized as these.
const PERMISSION_ONLY: [&str; 2] = ["ReplicateImage", "BatchImportUpstreamImage"];

/// Every ECR action name (without the `ecr:` prefix).
pub fn names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let model: Value = serde_json::from_str(MODEL).unwrap_or(Value::Null);
        let mut names: Vec<String> =
            model.get("operations").and_then(Value::as_object).map(|ops| ops.keys().cloned().collect()).unwrap_or_default();
        names.extend(PERMISSION_ONLY.iter().map(|s| s.to_string()));
        names.sort();
        names
    })
}

/// The `ecr:` actions (in Action or NotAction) of a policy document that match no ECR action,
/// as written, each once. Wildcards count when they match at least one; names compare without
/// regard to case, as IAM compares them. A document that is no JSON names none.
pub fn unknown_in(policy: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else { return Vec::new() };
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    let mut unknown: Vec<String> = Vec::new();
    for st in statements {
        for key in ["Action", "NotAction"] {
            let actions: Vec<&str> = match st.get(key) {
                Some(Value::String(a)) => vec![a.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for action in actions {
                if is_unknown(action) && !unknown.iter().any(|u| u == action) {
                    unknown.push(action.to_string());
                }
            }
        }
    }
    unknown
}

fn is_unknown(action: &str) -> bool {
    let Some((service, name)) = action.split_once(':') else { return false };
    if !service.eq_ignore_ascii_case("ecr") {
        return false;
    }
    let pattern = name.to_ascii_lowercase();
    !names().iter().any(|n| wildcard_matches(&pattern, &n.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_model() {
        assert!(names().iter().any(|n| n == "BatchGetImage") && names().iter().any(|n| n == "SetRepositoryPolicy"));
        assert!(names().len() > 50, "{:?}", names());
    }

    #[test]
    fn unknown_ecr_actions_are_named_once() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":"*","Action":["ecr:Nope","ecr:batchgetimage","ecr:Get*","ecr:Zz*","s3:Whatever","ecr:Nope"]},
            {"Effect":"Deny","Principal":"*","NotAction":"ecr:AlsoNope"}]}"#;
        assert_eq!(unknown_in(doc), vec!["ecr:Nope", "ecr:Zz*", "ecr:AlsoNope"]);
        assert!(unknown_in(r#"{"Statement":{"Effect":"Allow","Action":"ecr:*"}}"#).is_empty());
        assert!(unknown_in("not json").is_empty());
    }
}
