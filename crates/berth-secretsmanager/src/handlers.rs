//! One function per Secrets Manager action: the input shape in, the secrets service called,
//! the output shape out. SecretBinary travels base64-encoded, dates as epoch seconds, as in
//! AWS JSON 1.1.

use base64::Engine;
use berth_aws::error::AwsError;
use berth_aws::json::{Ctx, Handler, JsonApi, Output as Out};
use berth_aws::operation::OperationTable;
use berth_aws::validate;
use berth_core::secrets::{ListSecrets, NewSecret, NewValue, Secret, SecretFilter, SecretTag, SecretValue, SecretsError};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::error::from_secrets;

/// `op!(GetSecretValue => get_secret_value)`: IAM action `secretsmanager:GetSecretValue`.
macro_rules! op {
    ($name:ident => $handler:ident) => {
        berth_aws::json_operation!("secretsmanager", $name => $handler)
    };
}

pub(crate) fn operations() -> &'static OperationTable<Handler> {
    static TABLE: std::sync::OnceLock<OperationTable<Handler>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        OperationTable::new([
            op!(CreateSecret => create_secret),
            op!(PutSecretValue => put_secret_value),
            op!(GetSecretValue => get_secret_value),
            op!(DescribeSecret => describe_secret),
            op!(ListSecrets => list_secrets),
            op!(DeleteSecret => delete_secret),
            op!(RestoreSecret => restore_secret),
            op!(TagResource => tag_resource),
            op!(UntagResource => untag_resource),
        ])
    })
}

fn model() -> Option<&'static validate::Model> {
    static MODEL: std::sync::OnceLock<Option<validate::Model>> = std::sync::OnceLock::new();
    validate::Model::embedded(&MODEL, include_str!("secretsmanager-constraints.json"), "Secrets Manager")
}

/// The API on the shared JSON 1.1 steps: this table and model, these exceptions.
pub(crate) fn api() -> JsonApi {
    JsonApi {
        operations: operations(),
        model: model(),
        constraint_exception: "ValidationException",
        from_registry: crate::error::from_registry,
        unsupported: |action| {
            AwsError::new("UnsupportedOperationException", format!("berth's Secrets Manager does not implement the action {action} yet"))
        },
        internal: |e| AwsError::new("InternalServiceError", e).with_status(http::StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn secs(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// The service's answer, the secret recorded as the call's resource.
fn recorded<T>(ctx: &Ctx<'_>, result: Result<T, SecretsError>, arn: impl Fn(&T) -> &str) -> Result<T, AwsError> {
    let value = result.map_err(from_secrets)?;
    ctx.auth.decided_by_service_on(arn(&value));
    Ok(value)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagIn {
    key: String,
    value: String,
}

fn tags_in(tags: Option<Vec<TagIn>>) -> Vec<SecretTag> {
    tags.unwrap_or_default().into_iter().map(|t| SecretTag { key: t.key, value: t.value }).collect()
}

fn tags_out(s: &Secret) -> Value {
    json!(s.tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect::<Vec<_>>())
}

/// SecretString or SecretBinary (exactly one, or neither where a value is optional).
fn value_in(string: Option<String>, binary: Option<String>) -> Result<Option<SecretValue>, AwsError> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(AwsError::new(
            "InvalidParameterException",
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        )),
        (Some(s), None) => Ok(Some(SecretValue::String(Zeroizing::new(s)))),
        (None, Some(b)) => {
            let b = Zeroizing::new(b);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|_| AwsError::new("SerializationException", "SecretBinary is not valid base64"))?;
            Ok(Some(SecretValue::Binary(Zeroizing::new(bytes))))
        }
        (None, None) => Ok(None),
    }
}

/// The members DescribeSecret and ListSecrets' entries share.
fn secret_entry(s: &Secret) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ARN".into(), json!(s.arn));
    m.insert("Name".into(), json!(s.name));
    if let Some(d) = &s.description {
        m.insert("Description".into(), json!(d));
    }
    if let Some(k) = &s.kms_key_id {
        m.insert("KmsKeyId".into(), json!(k));
    }
    m.insert("RotationEnabled".into(), json!(false));
    m.insert("LastChangedDate".into(), json!(secs(s.last_changed)));
    m.insert("CreatedDate".into(), json!(secs(s.created)));
    if let Some(d) = s.deleted {
        m.insert("DeletedDate".into(), json!(secs(d)));
    }
    if !s.tags.is_empty() {
        m.insert("Tags".into(), tags_out(s));
    }
    m
}

fn versions_to_stages(s: &Secret) -> Value {
    Value::Object(s.versions.iter().map(|v| (v.version_id.clone(), json!(v.stages))).collect())
}

// ---- actions ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSecretIn {
    name: String,
    client_request_token: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    secret_string: Option<String>,
    secret_binary: Option<String>,
    tags: Option<Vec<TagIn>>,
}

async fn create_secret(ctx: &Ctx<'_>, i: CreateSecretIn) -> Out {
    let new = NewSecret {
        value: value_in(i.secret_string, i.secret_binary)?,
        name: i.name,
        description: i.description,
        kms_key_id: i.kms_key_id.filter(|k| !k.is_empty()),
        tags: tags_in(i.tags),
        client_request_token: i.client_request_token,
    };
    let (secret, version) = recorded(ctx, ctx.registry.secrets_create(ctx.principal, new).await, |(s, _)| &s.arn)?;
    let mut out = json!({"ARN": secret.arn, "Name": secret.name});
    if let Some(v) = version {
        out["VersionId"] = json!(v);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutSecretValueIn {
    secret_id: String,
    client_request_token: Option<String>,
    secret_string: Option<String>,
    secret_binary: Option<String>,
    version_stages: Option<Vec<String>>,
}

async fn put_secret_value(ctx: &Ctx<'_>, i: PutSecretValueIn) -> Out {
    let value = value_in(i.secret_string, i.secret_binary)?
        .ok_or_else(|| AwsError::new("InvalidParameterException", "You must provide either SecretString or SecretBinary."))?;
    let new = NewValue { value, client_request_token: i.client_request_token, stages: i.version_stages };
    let (secret, version) = recorded(ctx, ctx.registry.secrets_put_value(ctx.principal, &i.secret_id, new).await, |(s, _)| &s.arn)?;
    Ok(json!({"ARN": secret.arn, "Name": secret.name, "VersionId": version.version_id, "VersionStages": version.stages}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValueIn {
    secret_id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
}

async fn get_secret_value(ctx: &Ctx<'_>, i: GetSecretValueIn) -> Out {
    let result = ctx.registry.secrets_get_value(ctx.principal, &i.secret_id, i.version_id.as_deref(), i.version_stage.as_deref()).await;
    let (secret, version, value) = recorded(ctx, result, |(s, _, _)| &s.arn)?;
    let mut out = json!({
        "ARN": secret.arn,
        "Name": secret.name,
        "VersionId": version.version_id,
        "VersionStages": version.stages,
        "CreatedDate": secs(version.created),
    });
    match &value {
        SecretValue::String(s) => out["SecretString"] = json!(s.as_str()),
        SecretValue::Binary(b) => out["SecretBinary"] = json!(base64::engine::general_purpose::STANDARD.encode(b.as_slice())),
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretIdIn {
    secret_id: String,
}

async fn describe_secret(ctx: &Ctx<'_>, i: SecretIdIn) -> Out {
    let secret = recorded(ctx, ctx.registry.secrets_describe(ctx.principal, &i.secret_id).await, |s| &s.arn)?;
    let mut out = secret_entry(&secret);
    out.insert("VersionIdsToStages".into(), versions_to_stages(&secret));
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterIn {
    key: Option<String>,
    values: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListSecretsIn {
    include_planned_deletion: Option<bool>,
    max_results: Option<u32>,
    next_token: Option<String>,
    filters: Option<Vec<FilterIn>>,
}

async fn list_secrets(ctx: &Ctx<'_>, i: ListSecretsIn) -> Out {
    let filters = i
        .filters
        .unwrap_or_default()
        .into_iter()
        .map(|f| SecretFilter { key: f.key.unwrap_or_else(|| "all".into()), values: f.values.unwrap_or_default() })
        .collect();
    let req = ListSecrets {
        max_results: i.max_results,
        next_token: i.next_token,
        filters,
        include_planned_deletion: i.include_planned_deletion.unwrap_or(false),
    };
    let (secrets, next) = ctx.registry.secrets_list(ctx.principal, req).await.map_err(from_secrets)?;
    ctx.auth.decided_by_service_on("*");
    let list: Vec<Value> = secrets
        .iter()
        .map(|s| {
            let mut entry = secret_entry(s);
            entry.insert("SecretVersionsToStages".into(), versions_to_stages(s));
            Value::Object(entry)
        })
        .collect();
    let mut out = json!({ "SecretList": list });
    if let Some(t) = next {
        out["NextToken"] = json!(t);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteSecretIn {
    secret_id: String,
    recovery_window_in_days: Option<i64>,
    force_delete_without_recovery: Option<bool>,
}

async fn delete_secret(ctx: &Ctx<'_>, i: DeleteSecretIn) -> Out {
    let force = i.force_delete_without_recovery.unwrap_or(false);
    let result = ctx.registry.secrets_delete(ctx.principal, &i.secret_id, i.recovery_window_in_days, force).await;
    let secret = recorded(ctx, result, |s| &s.arn)?;
    let mut out = json!({"ARN": secret.arn, "Name": secret.name});
    if let Some(d) = secret.deletion_date {
        out["DeletionDate"] = json!(secs(d));
    }
    Ok(out)
}

async fn restore_secret(ctx: &Ctx<'_>, i: SecretIdIn) -> Out {
    let secret = recorded(ctx, ctx.registry.secrets_restore(ctx.principal, &i.secret_id).await, |s| &s.arn)?;
    Ok(json!({"ARN": secret.arn, "Name": secret.name}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceIn {
    secret_id: String,
    tags: Vec<TagIn>,
}

async fn tag_resource(ctx: &Ctx<'_>, i: TagResourceIn) -> Out {
    recorded(ctx, ctx.registry.secrets_tag(ctx.principal, &i.secret_id, tags_in(Some(i.tags))).await, |s| &s.arn)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceIn {
    secret_id: String,
    tag_keys: Vec<String>,
}

async fn untag_resource(ctx: &Ctx<'_>, i: UntagResourceIn) -> Out {
    recorded(ctx, ctx.registry.secrets_untag(ctx.principal, &i.secret_id, i.tag_keys).await, |s| &s.arn)?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_in_botocores_model() {
        let model: Value = serde_json::from_str(include_str!("secretsmanager-constraints.json")).expect("model");
        for name in operations().names() {
            assert!(model["operations"].get(name).is_some(), "{name} is not a Secrets Manager operation");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_not_quoted() {
        let err = berth_aws::json::typed::<CreateSecretIn>(json!({"Name": "n", "SecretString": 12345})).err().expect("refused");
        assert!(!err.message.contains("12345"), "{}", err.message);
        let err = value_in(None, Some("not base64 hunter2!".into())).expect_err("refused");
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }
}
