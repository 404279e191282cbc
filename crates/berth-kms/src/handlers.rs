//! One function per KMS action: the input shape in, the key service called, the output
//! shape out. Blobs travel base64-encoded, dates as epoch seconds, as in AWS JSON 1.1.

use std::collections::BTreeMap;

use base64::Engine;
use berth_aws::error::AwsError;
use berth_aws::json::{Ctx, Handler, JsonApi, Output as Out};
use berth_aws::operation::OperationTable;
use berth_aws::validate;
use berth_core::kms::{Key, KeyState, KeyTag, NewKey};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::from_kms;

/// `op!(Encrypt => encrypt)`: the operation `Encrypt`, IAM action `kms:Encrypt`.
macro_rules! op {
    ($name:ident => $handler:ident) => {
        berth_aws::json_operation!("kms", $name => $handler)
    };
}

pub(crate) fn operations() -> &'static OperationTable<Handler> {
    static TABLE: std::sync::OnceLock<OperationTable<Handler>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        OperationTable::new([
            op!(CreateKey => create_key),
            op!(DescribeKey => describe_key),
            op!(ListKeys => list_keys),
            op!(EnableKey => enable_key),
            op!(DisableKey => disable_key),
            op!(ScheduleKeyDeletion => schedule_key_deletion),
            op!(CancelKeyDeletion => cancel_key_deletion),
            op!(UpdateKeyDescription => update_key_description),
            op!(EnableKeyRotation => enable_key_rotation),
            op!(DisableKeyRotation => disable_key_rotation),
            op!(GetKeyRotationStatus => get_key_rotation_status),
            op!(RotateKeyOnDemand => rotate_key_on_demand),
            op!(GetKeyPolicy => get_key_policy),
            op!(PutKeyPolicy => put_key_policy),
            op!(TagResource => tag_resource),
            op!(UntagResource => untag_resource),
            op!(ListResourceTags => list_resource_tags),
            op!(CreateAlias => create_alias),
            op!(UpdateAlias => update_alias),
            op!(DeleteAlias => delete_alias),
            op!(ListAliases => list_aliases),
            op!(Encrypt => encrypt),
            op!(Decrypt => decrypt),
            op!(ReEncrypt => re_encrypt),
            op!(GenerateDataKey => generate_data_key),
            op!(GenerateDataKeyWithoutPlaintext => generate_data_key_without_plaintext),
            op!(Sign => sign),
            op!(Verify => verify),
            op!(GetPublicKey => get_public_key),
        ])
    })
}

fn model() -> Option<&'static validate::Model> {
    static MODEL: std::sync::OnceLock<Option<validate::Model>> = std::sync::OnceLock::new();
    validate::Model::embedded(&MODEL, include_str!("kms-constraints.json"), "KMS")
}

/// The API on the shared JSON 1.1 steps: this table and model, these exceptions.
pub(crate) fn api() -> JsonApi {
    JsonApi {
        operations: operations(),
        model: model(),
        constraint_exception: "ValidationException",
        from_registry: crate::error::from_registry,
        unsupported: |action| {
            AwsError::new("UnsupportedOperationException", format!("berth's key service does not implement the KMS action {action} yet"))
        },
        internal: |e| AwsError::new("KMSInternalException", e).with_status(http::StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(field: &str, text: &str) -> Result<Vec<u8>, AwsError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| AwsError::new("SerializationException", format!("{field} is not valid base64")))
}

fn secs(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

/// The key service's answer, its key recorded as the call's resource.
fn recorded(ctx: &Ctx<'_>, key: Result<Key, berth_core::kms::KmsError>) -> Result<Key, AwsError> {
    let key = key.map_err(from_kms)?;
    ctx.auth.decided_by_service_on(key.arn());
    Ok(key)
}

fn context_pairs(context: Option<BTreeMap<String, String>>) -> Vec<(String, String)> {
    context.unwrap_or_default().into_iter().collect()
}

/// KMS's `KeyMetadata` shape.
fn key_metadata(key: &Key) -> Value {
    let d = &key.doc;
    let mut m = json!({
        "AWSAccountId": key.account,
        "KeyId": key.key_id,
        "Arn": d.arn,
        "CreationDate": secs(d.created),
        "Enabled": d.state == KeyState::Enabled,
        "Description": d.description,
        "KeyUsage": d.key_usage,
        "KeyState": d.state.as_str(),
        "Origin": "AWS_KMS",
        "KeyManager": d.manager.as_str(),
        "CustomerMasterKeySpec": d.key_spec,
        "KeySpec": d.key_spec,
        "MultiRegion": false,
    });
    match d.signing_spec() {
        Some(spec) => m["SigningAlgorithms"] = json!(spec.algorithms()),
        None => m["EncryptionAlgorithms"] = json!(["SYMMETRIC_DEFAULT"]),
    }
    if let Some(date) = d.deletion_date {
        m["DeletionDate"] = json!(secs(date));
    }
    if let Some(days) = d.pending_window_days {
        m["PendingDeletionWindowInDays"] = json!(days);
    }
    m
}

fn tags_out(key: &Key) -> Value {
    json!(key.doc.tags.iter().map(|t| json!({"TagKey": t.key, "TagValue": t.value})).collect::<Vec<_>>())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagIn {
    tag_key: String,
    tag_value: String,
}

fn tags_in(tags: Option<Vec<TagIn>>) -> Vec<KeyTag> {
    tags.unwrap_or_default().into_iter().map(|t| KeyTag { key: t.tag_key, value: t.tag_value }).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdIn {
    key_id: String,
}

// ---- keys ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyIn {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
    tags: Option<Vec<TagIn>>,
}

async fn create_key(ctx: &Ctx<'_>, i: CreateKeyIn) -> Out {
    let new = NewKey {
        description: i.description,
        key_usage: i.key_usage,
        key_spec: i.key_spec.or(i.customer_master_key_spec),
        policy: i.policy,
        tags: tags_in(i.tags),
    };
    let key = recorded(ctx, ctx.registry.kms_create_key(ctx.principal, new).await)?;
    Ok(json!({ "KeyMetadata": key_metadata(&key) }))
}

async fn describe_key(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    let key = recorded(ctx, ctx.registry.kms_describe_key(ctx.principal, &i.key_id).await)?;
    Ok(json!({ "KeyMetadata": key_metadata(&key) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PageIn {
    limit: Option<u32>,
    marker: Option<String>,
    key_id: Option<String>,
}

async fn list_keys(ctx: &Ctx<'_>, i: PageIn) -> Out {
    let limit = i.limit.unwrap_or(100).clamp(1, 1000);
    let (keys, more) = ctx.registry.kms_list_keys(ctx.principal, i.marker.as_deref(), limit).await.map_err(from_kms)?;
    ctx.auth.decided_by_service_on("*");
    let mut out = json!({
        "Keys": keys.iter().map(|k| json!({"KeyId": k.key_id, "KeyArn": k.arn()})).collect::<Vec<_>>(),
        "Truncated": more,
    });
    if let (true, Some(last)) = (more, keys.last()) {
        out["NextMarker"] = json!(last.key_id);
    }
    Ok(out)
}

async fn enable_key(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    recorded(ctx, ctx.registry.kms_set_enabled(ctx.principal, &i.key_id, true).await)?;
    Ok(json!({}))
}

async fn disable_key(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    recorded(ctx, ctx.registry.kms_set_enabled(ctx.principal, &i.key_id, false).await)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleIn {
    key_id: String,
    pending_window_in_days: Option<i64>,
}

async fn schedule_key_deletion(ctx: &Ctx<'_>, i: ScheduleIn) -> Out {
    let key = recorded(ctx, ctx.registry.kms_schedule_deletion(ctx.principal, &i.key_id, i.pending_window_in_days).await)?;
    Ok(json!({
        "KeyId": key.arn(),
        "DeletionDate": key.doc.deletion_date.map(secs),
        "KeyState": key.doc.state.as_str(),
        "PendingWindowInDays": key.doc.pending_window_days,
    }))
}

async fn cancel_key_deletion(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    let key = recorded(ctx, ctx.registry.kms_cancel_deletion(ctx.principal, &i.key_id).await)?;
    Ok(json!({ "KeyId": key.arn() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescriptionIn {
    key_id: String,
    description: String,
}

async fn update_key_description(ctx: &Ctx<'_>, i: DescriptionIn) -> Out {
    recorded(ctx, ctx.registry.kms_update_description(ctx.principal, &i.key_id, i.description).await)?;
    Ok(json!({}))
}

// ---- rotation ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RotationIn {
    key_id: String,
    rotation_period_in_days: Option<i64>,
}

async fn enable_key_rotation(ctx: &Ctx<'_>, i: RotationIn) -> Out {
    recorded(ctx, ctx.registry.kms_set_rotation(ctx.principal, &i.key_id, true, i.rotation_period_in_days).await)?;
    Ok(json!({}))
}

async fn disable_key_rotation(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    recorded(ctx, ctx.registry.kms_set_rotation(ctx.principal, &i.key_id, false, None).await)?;
    Ok(json!({}))
}

async fn get_key_rotation_status(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    let key = recorded(ctx, ctx.registry.kms_rotation_status(ctx.principal, &i.key_id).await)?;
    let mut out = json!({ "KeyRotationEnabled": key.doc.rotation_enabled, "KeyId": key.arn() });
    if key.doc.rotation_enabled {
        out["RotationPeriodInDays"] = json!(key.doc.rotation_period_days);
        if let Some(next) = key.doc.next_rotation {
            out["NextRotationDate"] = json!(secs(next));
        }
    }
    if let Some(on_demand) = key.doc.materials.iter().filter(|m| m.rotation_type.as_deref() == Some("ON_DEMAND")).map(|m| m.created).max() {
        out["OnDemandRotationStartDate"] = json!(secs(on_demand));
    }
    Ok(out)
}

async fn rotate_key_on_demand(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    let key = recorded(ctx, ctx.registry.kms_rotate_now(ctx.principal, &i.key_id).await)?;
    Ok(json!({ "KeyId": key.key_id }))
}

// ---- key policies and tags ----

async fn get_key_policy(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    let key = recorded(ctx, ctx.registry.kms_get_key_policy(ctx.principal, &i.key_id).await)?;
    Ok(json!({ "Policy": key.doc.policy, "PolicyName": "default" }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutPolicyIn {
    key_id: String,
    policy: String,
    policy_name: Option<String>,
}

async fn put_key_policy(ctx: &Ctx<'_>, i: PutPolicyIn) -> Out {
    if i.policy_name.as_deref().is_some_and(|n| n != "default") {
        return Err(AwsError::new("ValidationException", "PolicyName must be default"));
    }
    recorded(ctx, ctx.registry.kms_put_key_policy(ctx.principal, &i.key_id, i.policy).await)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceIn {
    key_id: String,
    tags: Vec<TagIn>,
}

async fn tag_resource(ctx: &Ctx<'_>, i: TagResourceIn) -> Out {
    recorded(ctx, ctx.registry.kms_tag(ctx.principal, &i.key_id, tags_in(Some(i.tags))).await)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagIn {
    key_id: String,
    tag_keys: Vec<String>,
}

async fn untag_resource(ctx: &Ctx<'_>, i: UntagIn) -> Out {
    recorded(ctx, ctx.registry.kms_untag(ctx.principal, &i.key_id, i.tag_keys).await)?;
    Ok(json!({}))
}

async fn list_resource_tags(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    let key = recorded(ctx, ctx.registry.kms_list_tags(ctx.principal, &i.key_id).await)?;
    Ok(json!({ "Tags": tags_out(&key), "Truncated": false }))
}

// ---- aliases ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasIn {
    alias_name: String,
    target_key_id: String,
}

async fn create_alias(ctx: &Ctx<'_>, i: AliasIn) -> Out {
    let arn = ctx.registry.kms_put_alias(ctx.principal, &i.alias_name, &i.target_key_id, false).await.map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&arn);
    Ok(json!({}))
}

async fn update_alias(ctx: &Ctx<'_>, i: AliasIn) -> Out {
    let arn = ctx.registry.kms_put_alias(ctx.principal, &i.alias_name, &i.target_key_id, true).await.map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&arn);
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteAliasIn {
    alias_name: String,
}

async fn delete_alias(ctx: &Ctx<'_>, i: DeleteAliasIn) -> Out {
    let arn = ctx.registry.kms_delete_alias(ctx.principal, &i.alias_name).await.map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&arn);
    Ok(json!({}))
}

async fn list_aliases(ctx: &Ctx<'_>, i: PageIn) -> Out {
    let (scope, aliases) = ctx.registry.kms_list_aliases(ctx.principal, i.key_id.as_deref()).await.map_err(from_kms)?;
    ctx.auth.decided_by_service_on("*");
    let limit = i.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let start = match &i.marker {
        Some(m) => aliases.iter().position(|a| &a.alias > m).unwrap_or(aliases.len()),
        None => 0,
    };
    let page: Vec<_> = aliases.iter().skip(start).take(limit).collect();
    let more = start + page.len() < aliases.len();
    let mut out = json!({
        "Aliases": page.iter().map(|a| json!({
            "AliasName": a.alias,
            "AliasArn": format!("arn:aws:kms:{}:{}:{}", scope.region, scope.account, a.alias),
            "TargetKeyId": a.key_id,
            "CreationDate": secs(a.created),
            "LastUpdatedDate": secs(a.updated),
        })).collect::<Vec<_>>(),
        "Truncated": more,
    });
    if let (true, Some(last)) = (more, page.last()) {
        out["NextMarker"] = json!(last.alias);
    }
    Ok(out)
}

// ---- cryptography ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptIn {
    key_id: String,
    plaintext: String,
    encryption_context: Option<BTreeMap<String, String>>,
    encryption_algorithm: Option<String>,
}

fn symmetric_only(algorithm: Option<&str>) -> Result<(), AwsError> {
    match algorithm {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some(other) => Err(AwsError::new("InvalidKeyUsageException", format!("{other} is not valid for a SYMMETRIC_DEFAULT key"))),
    }
}

async fn encrypt(ctx: &Ctx<'_>, i: EncryptIn) -> Out {
    symmetric_only(i.encryption_algorithm.as_deref())?;
    let plaintext = unb64("Plaintext", &i.plaintext)?;
    let (arn, blob) =
        ctx.registry.kms_encrypt(ctx.principal, &i.key_id, &plaintext, &context_pairs(i.encryption_context)).await.map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&arn);
    Ok(json!({ "CiphertextBlob": b64(&blob), "KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT" }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptIn {
    ciphertext_blob: String,
    encryption_context: Option<BTreeMap<String, String>>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
}

async fn decrypt(ctx: &Ctx<'_>, i: DecryptIn) -> Out {
    symmetric_only(i.encryption_algorithm.as_deref())?;
    let blob = unb64("CiphertextBlob", &i.ciphertext_blob)?;
    let (arn, plaintext) = ctx
        .registry
        .kms_decrypt(ctx.principal, &blob, &context_pairs(i.encryption_context), i.key_id.as_deref())
        .await
        .map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&arn);
    Ok(json!({ "KeyId": arn, "Plaintext": b64(&plaintext), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT" }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptIn {
    ciphertext_blob: String,
    source_encryption_context: Option<BTreeMap<String, String>>,
    source_key_id: Option<String>,
    destination_key_id: String,
    destination_encryption_context: Option<BTreeMap<String, String>>,
}

async fn re_encrypt(ctx: &Ctx<'_>, i: ReEncryptIn) -> Out {
    let blob = unb64("CiphertextBlob", &i.ciphertext_blob)?;
    let (source, destination, sealed) = ctx
        .registry
        .kms_reencrypt(
            ctx.principal,
            &blob,
            &context_pairs(i.source_encryption_context),
            i.source_key_id.as_deref(),
            &i.destination_key_id,
            &context_pairs(i.destination_encryption_context),
        )
        .await
        .map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&source);
    ctx.auth.decided_by_service_on(&destination);
    Ok(json!({
        "CiphertextBlob": b64(&sealed),
        "SourceKeyId": source,
        "KeyId": destination,
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyIn {
    key_id: String,
    encryption_context: Option<BTreeMap<String, String>>,
    number_of_bytes: Option<usize>,
    key_spec: Option<String>,
}

fn data_key_bytes(i: &DataKeyIn) -> Result<usize, AwsError> {
    match (i.number_of_bytes, i.key_spec.as_deref()) {
        (Some(_), Some(_)) => Err(AwsError::new("ValidationException", "Please specify either number of bytes or key spec.")),
        (Some(n), None) => Ok(n),
        (None, Some("AES_256")) => Ok(32),
        (None, Some("AES_128")) => Ok(16),
        (None, Some(other)) => Err(AwsError::new("ValidationException", format!("KeySpec {other} is not one of AES_256, AES_128"))),
        (None, None) => Err(AwsError::new("ValidationException", "Please specify either number of bytes or key spec.")),
    }
}

async fn generate(ctx: &Ctx<'_>, i: DataKeyIn, with_plaintext: bool) -> Out {
    let bytes = data_key_bytes(&i)?;
    let key = ctx
        .registry
        .kms_generate_data_key(ctx.principal, &i.key_id, bytes, &context_pairs(i.encryption_context), with_plaintext)
        .await
        .map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&key.key_arn);
    let mut out = json!({ "CiphertextBlob": b64(&key.ciphertext), "KeyId": key.key_arn });
    if with_plaintext {
        out["Plaintext"] = json!(b64(&key.plaintext));
    }
    Ok(out)
}

async fn generate_data_key(ctx: &Ctx<'_>, i: DataKeyIn) -> Out {
    generate(ctx, i, true).await
}

async fn generate_data_key_without_plaintext(ctx: &Ctx<'_>, i: DataKeyIn) -> Out {
    generate(ctx, i, false).await
}

// ---- signing ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SignIn {
    key_id: String,
    message: String,
    message_type: Option<String>,
    signing_algorithm: String,
}

async fn sign(ctx: &Ctx<'_>, i: SignIn) -> Out {
    let message = unb64("Message", &i.message)?;
    let (arn, signature) = ctx
        .registry
        .kms_sign(ctx.principal, &i.key_id, &message, i.message_type.as_deref(), &i.signing_algorithm)
        .await
        .map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&arn);
    Ok(json!({ "KeyId": arn, "Signature": b64(&signature), "SigningAlgorithm": i.signing_algorithm }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyIn {
    key_id: String,
    message: String,
    message_type: Option<String>,
    signature: String,
    signing_algorithm: String,
}

async fn verify(ctx: &Ctx<'_>, i: VerifyIn) -> Out {
    let message = unb64("Message", &i.message)?;
    let signature = unb64("Signature", &i.signature)?;
    let arn = ctx
        .registry
        .kms_verify(ctx.principal, &i.key_id, &message, i.message_type.as_deref(), &signature, &i.signing_algorithm)
        .await
        .map_err(from_kms)?;
    ctx.auth.decided_by_service_on(&arn);
    Ok(json!({ "KeyId": arn, "SignatureValid": true, "SigningAlgorithm": i.signing_algorithm }))
}

async fn get_public_key(ctx: &Ctx<'_>, i: KeyIdIn) -> Out {
    let (key, public) = ctx.registry.kms_public_key(ctx.principal, &i.key_id).await.map_err(from_kms)?;
    ctx.auth.decided_by_service_on(key.arn());
    let algorithms = key.doc.signing_spec().map(|s| s.algorithms()).unwrap_or_default();
    Ok(json!({
        "KeyId": key.arn(),
        "PublicKey": b64(&public),
        "CustomerMasterKeySpec": key.doc.key_spec,
        "KeySpec": key.doc.key_spec,
        "KeyUsage": key.doc.key_usage,
        "SigningAlgorithms": algorithms,
    }))
}
