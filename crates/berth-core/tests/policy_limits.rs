//! Every policy document the service accepts is bounded as AWS bounds it (repository and
//! registry policies 10,240 characters, identity policies IAM's 6,144 non-whitespace
//! characters, lifecycle policies 30,720), with at most `MAX_STATEMENTS` statements, whatever
//! adapter calls; a refused document changes nothing. On the backends `common` selects.

use std::sync::Arc;

use berth_core::auth::{Principal, Resource};
use berth_core::repositories::NewRepository;
use berth_core::{Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, SystemClock};
use berth_iam::policy::{MAX_IDENTITY_POLICY_SIZE, MAX_RESOURCE_POLICY_CHARS, MAX_STATEMENTS};

mod common;

const A: &str = "111111111111";
const B: &str = "222222222222";
const TOO_LONG: &str =
    "Invalid parameter at 'policyText' failed to satisfy constraint: 'Member must have length less than or equal to 10240'";

async fn registry(dir: &std::path::Path) -> Registry {
    let (meta, blobs) = common::stores(dir).await;
    let config = RegistryConfig { default_registry: RegistryRef { account: A.into(), region: "us-east-1".into() }, ..Default::default() };
    let r = Registry::new(meta, blobs, Arc::new(SystemClock), config).with_key_service(common::root_key());
    r.init_identity().await.unwrap();
    r
}

fn registry_ref() -> RegistryRef {
    RegistryRef { account: A.into(), region: "us-east-1".into() }
}

fn repo(name: &str) -> Repo {
    Repo::new(&registry_ref(), RepositoryName::parse(name).unwrap())
}

/// A resource policy letting account B pull, padded (in `Id`) to exactly `len` characters.
fn resource_policy(len: usize) -> String {
    let base = format!(
        r#"{{"Version":"2012-10-17","Id":"","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B}:root"}},"Action":["ecr:BatchGetImage","ecr:DescribeRepositories"]}}]}}"#
    );
    base.replacen(r#""Id":"""#, &format!(r#""Id":"{}""#, "x".repeat(len - base.chars().count())), 1)
}

fn statements(n: usize) -> String {
    let one = r#"{"Effect":"Deny","Principal":"*","Action":"ecr:DeleteRepository"}"#;
    format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, vec![one; n].join(","))
}

fn invalid_message(e: RegistryError) -> String {
    match e {
        RegistryError::InvalidParameter(m) => m.message,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[tokio::test]
async fn repository_policies_are_bounded_and_a_refusal_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let app = repo("team/app");
    r.create_repository(&app, NewRepository::default()).await.unwrap();
    let exact = resource_policy(MAX_RESOURCE_POLICY_CHARS);
    r.set_repository_policy(&app, &exact).await.unwrap();

    let err = r.set_repository_policy(&app, &resource_policy(MAX_RESOURCE_POLICY_CHARS + 1)).await.unwrap_err();
    assert_eq!(invalid_message(err), TOO_LONG);
    let err = r.set_repository_policy(&app, &"x".repeat(4 << 20)).await.unwrap_err();
    assert_eq!(invalid_message(err), TOO_LONG, "a 4 MB document is refused by its length alone");
    let err = r.set_repository_policy(&app, &statements(MAX_STATEMENTS + 1)).await.unwrap_err();
    assert!(invalid_message(err).starts_with("Invalid repository policy provided: policy has 101 statements"));
    assert_eq!(r.repository_policy(&app).await.unwrap(), exact);

    // Characters count, not bytes: a policy of 10,240 two-byte characters is accepted.
    let wide = exact.replace('x', "é");
    r.set_repository_policy(&app, &wide).await.unwrap();
    assert_eq!(r.repository_policy(&app).await.unwrap(), wide);
}

#[tokio::test]
async fn registry_policies_are_bounded_and_a_refusal_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let reg = registry_ref();
    let before = resource_policy(500);
    r.set_registry_policy(&reg, &before).await.unwrap();

    let err = r.set_registry_policy(&reg, &resource_policy(MAX_RESOURCE_POLICY_CHARS + 1)).await.unwrap_err();
    assert_eq!(invalid_message(err), TOO_LONG);
    let err = r.set_registry_policy(&reg, &statements(MAX_STATEMENTS + 1)).await.unwrap_err();
    assert!(invalid_message(err).starts_with("Invalid registry policy provided: policy has 101 statements"));
    assert_eq!(r.registry_policy(&reg).await.unwrap(), before);

    r.set_registry_policy(&reg, &statements(MAX_STATEMENTS)).await.unwrap();
}

fn identity_policy(statements: usize) -> String {
    let one = r#"{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*"}"#;
    format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, vec![one; statements].join(","))
}

fn principal(arn: &str, key: &str) -> Principal {
    Principal { arn: arn.into(), account: A.into(), access_key_id: key.into(), region: None, source_ip: None, secure_transport: false }
}

#[tokio::test]
async fn identity_policies_are_bounded_by_iams_size_quota() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let app = repo("team/app");
    r.create_repository(&app, NewRepository::default()).await.unwrap();
    let big = identity_policy(99);
    assert!(big.chars().filter(|c| !c.is_whitespace()).count() > MAX_IDENTITY_POLICY_SIZE);

    let err = r.create_user(A, "bob", &[("big".into(), big.clone())]).await.unwrap_err();
    let msg = invalid_message(err);
    assert!(msg.starts_with("policy big: Cannot exceed quota for PolicySize: 6144"), "{msg}");
    let err = r.attach_policies("arn:aws:iam::111111111111:user/bob", &[("small".into(), identity_policy(1))]).await.unwrap_err();
    assert!(invalid_message(err).contains("no user"), "the refused create made no user");

    // A user with a policy keeps it when a larger one is refused.
    let (arn, key, _) = r.create_user(A, "carol", &[("reader".into(), identity_policy(1))]).await.unwrap();
    let err = r.attach_policies(&arn, &[("reader".into(), identity_policy(MAX_STATEMENTS + 1))]).await.unwrap_err();
    assert!(invalid_message(err).starts_with("policy reader: "));
    let carol = principal(&arn, &key);
    r.authorize(&carol, "ecr:BatchGetImage", Resource::Repository(&app)).await.unwrap();

    // Whitespace does not count toward the quota.
    let airy = identity_policy(80).replace(',', ",        ");
    assert!(airy.len() > MAX_IDENTITY_POLICY_SIZE);
    r.attach_policies(&arn, &[("airy".into(), airy)]).await.unwrap();
}

#[tokio::test]
async fn lifecycle_policies_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    let app = repo("team/app");
    r.create_repository(&app, NewRepository::default()).await.unwrap();
    let rule = |p: usize| {
        format!(
            r#"{{"rulePriority":{p},"description":"{}","selection":{{"tagStatus":"tagged","tagPrefixList":["p{p}-"],"countType":"imageCountMoreThan","countNumber":{p}}},"action":{{"type":"expire"}}}}"#,
            "d".repeat(200)
        )
    };
    let policy = |n: usize| format!(r#"{{"rules":[{}]}}"#, (1..=n).map(rule).collect::<Vec<_>>().join(","));
    let before = policy(2);
    r.put_lifecycle_policy(&app, &before).await.unwrap();
    let long = format!("{}{}", policy(2), " ".repeat(30_720));
    assert!(matches!(r.put_lifecycle_policy(&app, &long).await, Err(RegistryError::InvalidParameter(_))));
    assert!(matches!(r.put_lifecycle_policy(&app, &policy(51)).await, Err(RegistryError::InvalidParameter(_))));
    assert_eq!(r.lifecycle_policy(&app).await.unwrap().text, before);
}
