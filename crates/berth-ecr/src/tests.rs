//! The operation table and the call's authorization, against a real service on SQLite.

use std::sync::Arc;

use berth_aws::operation::{Authorizer, CallRecord, Operation};
use berth_core::auth::Principal;
use berth_core::{Registry, RegistryConfig, SystemClock};
use berth_store::{FsBlobStore, SqliteMetadataStore};
use serde_json::json;

use crate::actions::{self, Ctx, Handler};

const ACCOUNT: &str = "123456789012";

async fn registry(dir: &std::path::Path) -> Arc<Registry> {
    let meta = SqliteMetadataStore::open(&dir.join("meta.db")).await.expect("metadata store");
    let blobs = FsBlobStore::open(dir.join("blobs")).await.expect("blob store");
    Arc::new(
        Registry::new(Arc::new(meta), Arc::new(blobs), Arc::new(SystemClock), RegistryConfig::default())
            .with_key_service(berth_crypto::RootKey::from_hex(&"ab".repeat(32)).expect("root key")),
    )
}

async fn user(registry: &Registry, name: &str, policy: Option<&str>) -> Principal {
    let policies: Vec<(String, String)> = policy.map(|p| ("inline".to_string(), p.to_string())).into_iter().collect();
    let (arn, access_key_id, _) = registry.create_user(ACCOUNT, name, &policies).await.expect("user");
    Principal { arn, account: ACCOUNT.into(), access_key_id, region: None, source_ip: None, secure_transport: false }
}

async fn call(
    registry: &Arc<Registry>,
    principal: &Principal,
    op: &Operation<Handler>,
) -> (Result<serde_json::Value, crate::EcrError>, Vec<String>) {
    call_with(registry, principal, op, b"{}").await
}

async fn call_with(
    registry: &Arc<Registry>,
    principal: &Principal,
    op: &Operation<Handler>,
    body: &[u8],
) -> (Result<serde_json::Value, crate::EcrError>, Vec<String>) {
    let record = Arc::new(CallRecord::default());
    let auth = Authorizer::new(registry, principal, op.iam_action, record.clone());
    let ctx = Ctx { registry, principal, host: "localhost", auth };
    let out = actions::run(&ctx, op, body).await;
    (out, record.resources())
}

#[test]
fn every_operation_is_in_ecrs_model_and_needs_its_own_iam_action() {
    let model: serde_json::Value = serde_json::from_str(include_str!("ecr-constraints.json")).expect("model");
    let table = actions::operations();
    assert_eq!(table.names().len(), 58);
    // The backfill actions are not in the installed botocore model: their shapes are berth's.
    let not_in_model =
        ["StartReplicationBackfill", "StopReplicationBackfill", "ListReplicationBackfills", "DescribeReplicationBackfillResults"];
    for name in table.names() {
        assert!(model["operations"].get(name).is_some() || not_in_model.contains(&name), "{name} is not an operation of ECR's model");
        assert_eq!(table.get(name).and_then(|op| op.iam_action).map(str::to_string), Some(format!("ecr:{name}")));
    }
}

#[tokio::test]
async fn the_table_action_is_authorized_against_the_resource_the_handler_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = registry(dir.path()).await;
    let allowed = user(
        &registry,
        "describer",
        Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:DescribeRegistry","Resource":"*"}]}"#),
    )
    .await;
    let nobody = user(&registry, "nobody", None).await;
    let op = actions::operations().get("DescribeRegistry").expect("DescribeRegistry");

    let (out, resources) = call(&registry, &allowed, op).await;
    assert_eq!(out.expect("allowed")["registryId"], json!(ACCOUNT));
    assert_eq!(resources, vec!["*".to_string()]);

    let (out, resources) = call(&registry, &nobody, op).await;
    let err = out.expect_err("a user without a policy is denied");
    assert_eq!(err.type_name, "AccessDeniedException");
    assert_eq!(resources, vec!["*".to_string()], "a denied call is recorded against what it asked for");
}

#[tokio::test]
async fn a_handler_that_authorizes_nothing_is_denied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = registry(dir.path()).await;
    let admin =
        user(&registry, "admin2", Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)).await;
    let careless = Operation::<Handler> {
        name: "DescribeRegistry",
        iam_action: Some("ecr:DescribeRegistry"),
        handler: |_, _| Box::pin(async { Ok(json!({ "secret": "served without asking" })) }),
    };
    let (out, resources) = call(&registry, &admin, &careless).await;
    let err = out.expect_err("fails closed");
    assert_eq!(err.type_name, "AccessDeniedException");
    assert!(resources.is_empty());
}

#[tokio::test]
async fn creation_templates_are_registry_actions_and_answer_ecrs_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = registry(dir.path()).await;
    let reader = user(
        &registry,
        "reader",
        Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:DescribeRepositoryCreationTemplates","Resource":"*"}]}"#),
    )
    .await;
    let admin =
        user(&registry, "admin3", Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)).await;
    let op = |name| actions::operations().get(name).expect("operation");
    let create = br#"{"prefix":"prod/","appliedFor":["CREATE_ON_PUSH"],"resourceTags":[{"Key":"team","Value":"a"}],
        "imageTagMutability":"IMMUTABLE_WITH_EXCLUSION","imageTagMutabilityExclusionFilters":[{"filterType":"WILDCARD","filter":"dev-*"}]}"#;

    let (out, resources) = call_with(&registry, &reader, op("CreateRepositoryCreationTemplate"), create).await;
    assert_eq!(out.expect_err("only describe is allowed").type_name, "AccessDeniedException");
    assert_eq!(resources, vec!["*".to_string()], "authorized on the registry, as the registry actions are");

    let (out, _) = call_with(&registry, &admin, op("CreateRepositoryCreationTemplate"), create).await;
    let out = out.expect("created");
    assert_eq!(out["registryId"], json!(ACCOUNT));
    let t = &out["repositoryCreationTemplate"];
    assert_eq!(t["prefix"], json!("prod"));
    assert_eq!(t["appliedFor"], json!(["CREATE_ON_PUSH"]));
    assert_eq!(t["resourceTags"], json!([{ "Key": "team", "Value": "a" }]));
    assert_eq!(t["encryptionConfiguration"], json!({ "encryptionType": "AES256" }));
    assert_eq!(t["imageTagMutabilityExclusionFilters"], json!([{ "filterType": "WILDCARD", "filter": "dev-*" }]));
    assert!(t["createdAt"].is_number() && t["updatedAt"] == t["createdAt"]);

    let (out, _) = call_with(&registry, &admin, op("CreateRepositoryCreationTemplate"), create).await;
    assert_eq!(out.expect_err("duplicate").type_name, "TemplateAlreadyExistsException");
    let (out, _) =
        call_with(&registry, &admin, op("CreateRepositoryCreationTemplate"), br#"{"prefix":"Bad","appliedFor":["REPLICATION"]}"#).await;
    assert_eq!(out.expect_err("bad prefix").type_name, "InvalidParameterException");
    let (out, _) = call_with(&registry, &admin, op("CreateRepositoryCreationTemplate"), br#"{"prefix":"x"}"#).await;
    assert_eq!(out.expect_err("appliedFor is required").type_name, "ValidationException");

    let (out, resources) = call_with(&registry, &reader, op("DescribeRepositoryCreationTemplates"), br#"{"prefixes":["prod"]}"#).await;
    assert_eq!(out.expect("described")["repositoryCreationTemplates"][0]["prefix"], json!("prod"));
    assert_eq!(resources, vec!["*".to_string()]);

    let (out, _) = call_with(&registry, &admin, op("UpdateRepositoryCreationTemplate"), br#"{"prefix":"nope","description":"x"}"#).await;
    assert_eq!(out.expect_err("unknown").type_name, "TemplateNotFoundException");
    let (out, _) = call_with(&registry, &admin, op("DeleteRepositoryCreationTemplate"), br#"{"prefix":"prod"}"#).await;
    assert_eq!(out.expect("deleted")["repositoryCreationTemplate"]["prefix"], json!("prod"));
    let (out, _) = call_with(&registry, &admin, op("DeleteRepositoryCreationTemplate"), br#"{"prefix":"prod"}"#).await;
    assert_eq!(out.expect_err("gone").type_name, "TemplateNotFoundException");
}
