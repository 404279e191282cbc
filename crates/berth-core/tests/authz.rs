//! Authorization through the service: identity policies, repository policies,
//! cross-account access and tokens, on the embedded backends.

use std::sync::Arc;

use berth_core::auth::{AuthFailure, Principal, Resource, Transport};
use berth_core::repositories::NewRepository;
use berth_core::{Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, SystemClock};

mod common;

const A: &str = "111111111111";
const B: &str = "222222222222";

async fn registry(dir: &std::path::Path) -> Registry {
    let (meta, blobs) = common::stores(dir).await;
    let config = RegistryConfig { default_registry: RegistryRef { account: A.into(), region: "us-east-1".into() }, ..Default::default() };
    let r = Registry::new(meta, blobs, Arc::new(SystemClock), config).with_key_service(common::root_key());
    r.init_identity().await.unwrap();
    r
}

fn principal(arn: &str, account: &str, key: &str) -> Principal {
    Principal {
        arn: arn.into(),
        account: account.into(),
        access_key_id: key.into(),
        region: None,
        source_ip: None,
        secure_transport: false,
    }
}

async fn user(r: &Registry, account: &str, name: &str, policy: &str) -> Principal {
    let doc = berth_iam::policy::managed_policy(policy).unwrap().to_string();
    let (arn, key, _) = r.create_user(account, name, &[(policy.into(), doc)]).await.unwrap();
    principal(&arn, account, &key)
}

fn repo(account: &str, name: &str) -> Repo {
    Repo::new(&RegistryRef { account: account.into(), region: "us-east-1".into() }, RepositoryName::parse(name).unwrap())
}

fn denied(r: Result<(), RegistryError>) -> bool {
    matches!(r, Err(RegistryError::Denied(_)))
}

#[tokio::test]
async fn read_only_users_read_and_cannot_push() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let app = repo(A, "team/app");
    r.create_repository(&app, NewRepository::default()).await.unwrap();
    let reader = user(&r, A, "reader", "AmazonEC2ContainerRegistryReadOnly").await;
    assert!(r.authorize(&reader, "ecr:BatchGetImage", Resource::Repository(&app)).await.is_ok());
    assert!(denied(r.authorize(&reader, "ecr:PutImage", Resource::Repository(&app)).await));
    assert!(denied(r.authorize(&reader, "ecr:InitiateLayerUpload", Resource::Repository(&app)).await));
}

#[tokio::test]
async fn cross_account_pull_needs_a_repository_policy_and_deny_wins() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let app = repo(A, "team/app");
    r.create_repository(&app, NewRepository::default()).await.unwrap();
    let other = user(&r, B, "puller", "AmazonEC2ContainerRegistryFullAccess").await;
    assert!(
        denied(r.authorize(&other, "ecr:BatchGetImage", Resource::Repository(&app)).await),
        "identity policy alone is not enough across accounts"
    );
    let allow = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"pull","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B}:root"}},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}}]}}"#
    );
    r.set_repository_policy(&app, &allow).await.unwrap();
    assert!(r.authorize(&other, "ecr:BatchGetImage", Resource::Repository(&app)).await.is_ok());
    assert!(denied(r.authorize(&other, "ecr:PutImage", Resource::Repository(&app)).await));
    let with_deny = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{B}"}},"Action":"ecr:*"}},{{"Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage"}}]}}"#
    );
    r.set_repository_policy(&app, &with_deny).await.unwrap();
    assert!(denied(r.authorize(&other, "ecr:BatchGetImage", Resource::Repository(&app)).await));
    let admin_of_a = user(&r, A, "admin2", "AmazonEC2ContainerRegistryFullAccess").await;
    assert!(
        denied(r.authorize(&admin_of_a, "ecr:BatchGetImage", Resource::Repository(&app)).await),
        "an explicit Deny binds the owner too"
    );
    assert!(matches!(
        r.set_repository_policy(&app, r#"{"Statement":[{"Effect":"Maybe"}]}"#).await,
        Err(RegistryError::InvalidParameter(_))
    ));
}

#[tokio::test]
async fn tokens_carry_the_principal_and_die_with_forgery() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let reader = user(&r, A, "reader", "AmazonEC2ContainerRegistryReadOnly").await;
    let (password, expires) = r.issue_token(&reader).unwrap();
    assert!(expires > 0);
    let p = r.authenticate_token("AWS", &password, Transport::default()).await.unwrap();
    assert_eq!(p.arn, reader.arn);
    let mut forged = password.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(matches!(
        r.authenticate_token("AWS", &forged, Transport::default()).await,
        Err(RegistryError::Unauthenticated(AuthFailure::TokenInvalid))
    ));
    assert!(matches!(r.authenticate_token("admin", &password, Transport::default()).await, Err(RegistryError::Unauthenticated(_))));
    // Tokens from another data directory (another signing key) are not accepted.
    let other_dir = tempfile::tempdir().unwrap();
    let other = registry(other_dir.path()).await;
    assert!(other.authenticate_token("AWS", &password, Transport::default()).await.is_err());
}

#[tokio::test]
async fn bootstrap_admin_has_full_access() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let generated = r.bootstrap_admin(None).await.unwrap().expect("first start generates a key");
    assert!(generated.0.starts_with("AKIA") && generated.0.len() == 20 && generated.1.len() == 40);
    assert!(r.bootstrap_admin(None).await.unwrap().is_none(), "only once");
    let admin = principal(&format!("arn:aws:iam::{A}:user/admin"), A, &generated.0);
    assert!(r.authorize(&admin, "ecr:DeleteRepository", Resource::Repository(&repo(A, "x/y"))).await.is_ok());
}
