//! The record: CloudTrail's event shape (eventVersion 1.08), built from what the request
//! middleware knows of a call.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::observe::{CallError, CallFacts};

pub const EVENT_VERSION: &str = "1.08";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub event_version: String,
    pub user_identity: UserIdentity,
    pub event_time: String,
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    pub request_parameters: Option<Value>,
    pub response_elements: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<AuditResource>,
    pub event_type: String,
    pub management_event: bool,
    pub recipient_account_id: String,
    pub event_category: String,
    /// CloudTrail's mark of a call made from the console ("true"), absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_credential_from_console: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arn: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_key_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditResource {
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "accountId")]
    pub account_id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// One finished call, as the request middleware saw it.
#[derive(Debug, Clone, Default)]
pub struct CallEvent {
    pub facts: CallFacts,
    pub error: Option<CallError>,
    pub status: u16,
    pub source_ip: Option<IpAddr>,
    pub user_agent: String,
    pub request_id: Option<String>,
}

/// CloudTrail's user name for a failed console sign-in: what was typed may be a password.
pub const HIDDEN_USER: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// The reads that are data events (recorded only with `--audit-data-events`).
pub const DATA_EVENTS: &[&str] = &["BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability", "UploadLayerPart"];

/// Whether an IAM action (`ecr:BatchGetImage`) is recorded as a data event.
pub fn is_data_action(action: &str) -> bool {
    action.split_once(':').is_some_and(|(_, name)| DATA_EVENTS.contains(&name))
}

/// `ecr:PutImage` → (`ecr.amazonaws.com`, `PutImage`); None for what is not an API action.
pub fn split_action(action: &str) -> Option<(String, &str)> {
    let (service, name) = action.split_once(':')?;
    if service.is_empty() || name.is_empty() || name == "unknown" {
        return None;
    }
    Some((format!("{service}.amazonaws.com"), name))
}

/// CloudTrail's readOnly: the call changes nothing.
pub fn is_read_only(name: &str) -> bool {
    ["Get", "Describe", "List", "BatchGet", "BatchCheck", "Lookup"].iter().any(|p| name.starts_with(p))
}

/// userIdentity.type from the caller's ARN.
fn identity_type(arn: &str) -> &'static str {
    if arn == crate::public_access::ANONYMOUS {
        "Anonymous"
    } else if arn.ends_with(":root") {
        "Root"
    } else if arn.contains(":assumed-role/") {
        "AssumedRole"
    } else if arn.contains(":user/") {
        "IAMUser"
    } else {
        "AWSAccount"
    }
}

/// The user name CloudTrail's Username attribute matches: the user, the role session, root.
pub fn user_name(arn: &str) -> String {
    match identity_type(arn) {
        "Root" => "root".into(),
        "Anonymous" => crate::public_access::ANONYMOUS.into(),
        _ => arn.rsplit('/').next().unwrap_or(arn).to_string(),
    }
}

/// A resource ARN's type and account (`arn:aws:ecr:<region>:<account>:repository/<name>`).
pub fn resource_of(arn: &str) -> Option<AuditResource> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, service, _, account, rest] = parts.as_slice() else { return None };
    let kind = match (*service, rest.split('/').next().unwrap_or("")) {
        ("ecr", "repository") => "AWS::ECR::Repository",
        ("ecr-public", "repository") => "AWS::ECRPublic::Repository",
        ("kms", "key") => "AWS::KMS::Key",
        ("kms", "alias") => "AWS::KMS::Alias",
        ("ecr", _) => "AWS::ECR::Registry",
        ("secretsmanager", r) if r.starts_with("secret:") => "AWS::SecretsManager::Secret",
        _ => return None,
    };
    Some(AuditResource { arn: arn.to_string(), account_id: account.to_string(), kind: kind.into() })
}

/// The name LookupEvents' ResourceName matches: a repository's name, otherwise the ARN.
pub fn resource_name(r: &AuditResource) -> String {
    match r.kind.as_str() {
        "AWS::ECR::Repository" | "AWS::ECRPublic::Repository" => {
            r.arn.split_once(":repository/").map(|(_, n)| n.to_string()).unwrap_or_default()
        }
        _ => r.arn.clone(),
    }
}

pub fn rfc3339_seconds(millis: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap_or_default()
}

impl AuditRecord {
    /// The record of one call; None for requests that are no API action (`/v2/` ping, the
    /// token realm) and for unauthenticated `/v2/` challenges (a client's first try).
    pub fn of_call(event: &CallEvent, now: i64, default_account: &str, default_region: &str) -> Option<AuditRecord> {
        let facts = &event.facts;
        let (event_source, name) = split_action(&facts.action)?;
        let console = event_source == "signin.amazonaws.com";
        if event.status == 401 && facts.principal.is_none() && !console {
            return None;
        }
        let arn = facts.principal.clone().unwrap_or_default();
        let resources: Vec<AuditResource> = facts.resources.iter().filter_map(|a| resource_of(a)).collect();
        let caller_account = facts.account.clone().unwrap_or_default();
        let recipient = resources
            .iter()
            .map(|r| r.account_id.clone())
            .find(|a| !a.is_empty())
            .or_else(|| Some(caller_account.clone()).filter(|a| !a.is_empty()))
            .unwrap_or_else(|| default_account.to_string());
        let kind = if arn.is_empty() {
            if console {
                "IAMUser"
            } else {
                "Anonymous"
            }
        } else {
            identity_type(&arn)
        };
        let user = if arn.is_empty() {
            if console {
                HIDDEN_USER.to_string()
            } else {
                String::new()
            }
        } else {
            user_name(&arn)
        };
        let principal_id = match kind {
            "Root" => caller_account.clone(),
            "Anonymous" => String::new(),
            _ => user.clone(),
        };
        let data = DATA_EVENTS.contains(&name);
        let event_type = if console { "AwsConsoleSignIn" } else { "AwsApiCall" };
        Some(AuditRecord {
            event_version: EVENT_VERSION.into(),
            user_identity: UserIdentity {
                kind: kind.into(),
                principal_id,
                arn: if kind == "Anonymous" { String::new() } else { arn },
                account_id: if kind == "Anonymous" { String::new() } else { caller_account },
                access_key_id: facts.access_key_id.clone().unwrap_or_default(),
                user_name: if kind == "IAMUser" { user } else { String::new() },
            },
            event_time: rfc3339_seconds(now),
            event_source,
            event_name: name.to_string(),
            aws_region: facts.region.clone().unwrap_or_else(|| default_region.to_string()),
            source_ip_address: event.source_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "127.0.0.1".into()),
            user_agent: truncate(&event.user_agent, 512),
            request_parameters: facts.request_parameters.clone(),
            response_elements: facts.response_elements.clone(),
            additional_event_data: None,
            error_code: event.error.as_ref().map(|e| e.code.clone()),
            error_message: event.error.as_ref().map(|e| truncate(&e.message, 1024)),
            request_id: event.request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            event_id: uuid::Uuid::new_v4().to_string(),
            read_only: is_read_only(name),
            resources,
            event_type: event_type.into(),
            management_event: !data,
            recipient_account_id: recipient,
            event_category: if data { "Data" } else { "Management" }.into(),
            session_credential_from_console: facts.from_console.then(|| "true".to_string()),
        })
    }

    /// An operator's action (GC, a lifecycle run, key rotation) as CloudTrail records AWS's
    /// own: eventType AwsServiceEvent, by the service itself.
    pub fn service_event(source: &str, name: &str, account: &str, region: &str, now: i64, details: Value) -> AuditRecord {
        AuditRecord {
            event_version: EVENT_VERSION.into(),
            user_identity: UserIdentity {
                kind: "AWSService".into(),
                principal_id: String::new(),
                arn: String::new(),
                account_id: String::new(),
                access_key_id: String::new(),
                user_name: String::new(),
            },
            event_time: rfc3339_seconds(now),
            event_source: source.into(),
            event_name: name.into(),
            aws_region: region.into(),
            source_ip_address: source.into(),
            user_agent: source.into(),
            request_parameters: None,
            response_elements: None,
            additional_event_data: Some(details),
            error_code: None,
            error_message: None,
            request_id: uuid::Uuid::new_v4().to_string(),
            event_id: uuid::Uuid::new_v4().to_string(),
            read_only: false,
            resources: Vec::new(),
            event_type: "AwsServiceEvent".into(),
            management_event: true,
            recipient_account_id: account.into(),
            event_category: "Management".into(),
            session_credential_from_console: None,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Request fields the AWS protocol layer records for an adapter that chose none: scalars and
/// small lists and objects of them, never a field whose name says it holds a secret, a
/// token, key material or bytes, and no long text (manifests, policy documents).
pub fn redacted_parameters(body: &[u8]) -> Option<Value> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let kept = keep(&value, 0)?;
    match &kept {
        Value::Object(m) if m.is_empty() => None,
        _ => Some(kept),
    }
}

const SECRET_WORDS: &[&str] =
    &["secret", "password", "token", "plaintext", "keymaterial", "authorization", "credential", "blob", "privatekey", "signature"];

/// Fields whose name has a secret word but whose value only names something, which CloudTrail
/// records: Secrets Manager's SecretId (a name or an ARN).
const NAMES_NOT_SECRETS: &[&str] = &["secretid"];

fn keep(v: &Value, depth: usize) -> Option<Value> {
    match v {
        Value::String(s) if s.len() > 256 => None,
        Value::Array(items) if depth < 3 => Some(Value::Array(items.iter().take(20).filter_map(|i| keep(i, depth + 1)).collect())),
        Value::Object(map) if depth < 3 => Some(Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    NAMES_NOT_SECRETS.contains(&k.as_str()) || !SECRET_WORDS.iter().any(|w| k.contains(w))
                })
                .filter_map(|(k, v)| keep(v, depth + 1).map(|v| (k.clone(), v)))
                .collect(),
        )),
        Value::Array(_) | Value::Object(_) => None,
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_long_texts_are_left_out() {
        let body = br#"{"repositoryName":"r","imageManifest":"{\"x\":\"%LONG%\"}","Plaintext":"c2VjcmV0","SecretString":"s","SecretId":"ecr-pullthroughcache/hub",
            "imageIds":[{"imageTag":"v1"}],"authorizationToken":"t","layerPartBlob":"AAAA","KeyId":"alias/k"}"#;
        let body = String::from_utf8_lossy(body).replace("%LONG%", &"a".repeat(300));
        let kept = redacted_parameters(body.as_bytes()).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"repositoryName":"r","imageIds":[{"imageTag":"v1"}],"KeyId":"alias/k","SecretId":"ecr-pullthroughcache/hub"})
        );
    }

    #[test]
    fn identities_and_resources_from_arns() {
        assert_eq!(identity_type("arn:aws:iam::111111111111:root"), "Root");
        assert_eq!(identity_type("arn:aws:iam::111111111111:user/ci"), "IAMUser");
        assert_eq!(user_name("arn:aws:sts::111111111111:assumed-role/Deploy/run-7"), "run-7");
        let r = resource_of("arn:aws:ecr:us-east-1:111111111111:repository/team/app").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.account_id.as_str(), resource_name(&r).as_str()),
            ("AWS::ECR::Repository", "111111111111", "team/app")
        );
        assert_eq!(resource_of("*"), None);
        assert_eq!(split_action("v2_base"), None);
        assert_eq!(split_action("ecr-public:PutImage"), Some(("ecr-public.amazonaws.com".into(), "PutImage")));
    }
}
