//! Secrets Manager's subset (berth_core::secrets) on every backend: versions and labels,
//! idempotent retries, scheduled deletion, restore and the lazy purge, permissions (IAM and a
//! customer managed key's), listings, and the pull-through cache's service read.

use berth_core::auth::Principal;
use berth_core::kms::NewKey;
use berth_core::secrets::{ListSecrets, NewSecret, NewValue, SecretFilter, SecretValue, SecretsError, AWSCURRENT, AWSPREVIOUS};
use berth_core::{Registry, RegistryConfig, RegistryError};
use zeroize::Zeroizing;

mod common;

const ACCOUNT: &str = "123456789012";
const DAY: i64 = 86_400_000;
const ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const SECRETS_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]}"#;
const CREDENTIALS: &str = r#"{"username":"u","accessToken":"t0k3n-value"}"#;

async fn user(r: &Registry, name: &str, policy: Option<&str>) -> Principal {
    let policies: Vec<(String, String)> = policy.map(|p| ("p".to_string(), p.to_string())).into_iter().collect();
    let (arn, access_key_id, _) = r.create_user(ACCOUNT, name, &policies).await.expect("user");
    Principal { arn, account: ACCOUNT.into(), access_key_id, region: None, source_ip: None, secure_transport: false }
}

fn text(s: &str) -> SecretValue {
    SecretValue::String(Zeroizing::new(s.to_string()))
}

fn new_secret(name: &str, value: Option<&str>) -> NewSecret {
    NewSecret { name: name.into(), value: value.map(text), ..Default::default() }
}

fn put(value: &str, token: Option<&str>) -> NewValue {
    NewValue { value: text(value), client_request_token: token.map(str::to_string), stages: None }
}

async fn value_of(r: &Registry, p: &Principal, id: &str) -> Result<String, SecretsError> {
    match r.secrets_get_value(p, id, None, None).await?.2 {
        SecretValue::String(s) => Ok(s.to_string()),
        SecretValue::Binary(_) => panic!("a string secret"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_retries_and_the_pull_through_read() {
    let env = common::Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let admin = user(&r, "admin", Some(ALL)).await;
    let name = "ecr-pullthroughcache/hub";
    let (secret, first) = r.secrets_create(&admin, new_secret(name, Some(CREDENTIALS))).await.expect("create");
    let prefix = format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-");
    let suffix = secret.arn.strip_prefix(&prefix).expect("the ARN names the secret");
    assert!(suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()), "{}", secret.arn);
    assert_eq!(value_of(&r, &admin, name).await.unwrap(), CREDENTIALS);
    assert_eq!(value_of(&r, &admin, &secret.arn).await.unwrap(), CREDENTIALS, "by ARN");
    assert_eq!(value_of(&r, &admin, &prefix[..prefix.len() - 1]).await.unwrap(), CREDENTIALS, "by partial ARN");

    // The pull-through cache reads it as the service, by ARN, partial ARN or name.
    let creds = r.pull_through_credentials(ACCOUNT, &secret.arn).await.unwrap().expect("credentials");
    assert_eq!((creds.username.as_str(), creds.access_token.as_str()), ("u", "t0k3n-value"));
    assert!(!format!("{creds:?}").contains("t0k3n"), "Debug redacts the token");
    assert!(r.pull_through_credentials(ACCOUNT, name).await.unwrap().is_some());
    assert!(r.pull_through_credentials("210987654321", &secret.arn).await.unwrap().is_none(), "another account's ARN");
    assert!(r.pull_through_credentials(ACCOUNT, "ecr-pullthroughcache/none").await.unwrap().is_none());

    // New values move AWSCURRENT; the previous current becomes AWSPREVIOUS.
    let (_, second) = r.secrets_put_value(&admin, name, put(r#"{"username":"u","accessToken":"two"}"#, None)).await.unwrap();
    assert_eq!(second.stages, vec![AWSCURRENT.to_string()]);
    let described = r.secrets_describe(&admin, name).await.unwrap();
    let labels: Vec<(String, Vec<String>)> = described.versions.iter().map(|v| (v.version_id.clone(), v.stages.clone())).collect();
    assert_eq!(
        labels,
        vec![(first.clone().unwrap(), vec![AWSPREVIOUS.to_string()]), (second.version_id.clone(), vec![AWSCURRENT.to_string()])]
    );
    let (_, _, previous) = r.secrets_get_value(&admin, name, None, Some(AWSPREVIOUS)).await.unwrap();
    assert_eq!(previous, text(CREDENTIALS));

    // A ClientRequestToken retried with the same value changes nothing; with another, refused.
    let token = "0123456789abcdef0123456789abcdef";
    let (_, v) = r.secrets_put_value(&admin, name, put("three", Some(token))).await.unwrap();
    assert_eq!(v.version_id, token);
    let (_, again) = r.secrets_put_value(&admin, name, put("three", Some(token))).await.unwrap();
    assert_eq!(again.version_id, token);
    assert_eq!(r.secrets_describe(&admin, name).await.unwrap().versions.len(), 2, "no new version");
    let err = r.secrets_put_value(&admin, name, put("four", Some(token))).await.unwrap_err();
    assert!(matches!(&err, SecretsError::Exists(m) if !m.contains("four")), "{err:?}");
    assert_eq!(value_of(&r, &admin, name).await.unwrap(), "three");
    assert!(matches!(r.secrets_create(&admin, new_secret(name, Some("x"))).await, Err(SecretsError::Exists(_))));

    // A value that is not ECR's credentials: a clear error that never quotes it.
    r.secrets_create(&admin, new_secret("ecr-pullthroughcache/bad", Some(r#"{"username":"u","accessToken":["leak-me"]}"#))).await.unwrap();
    let err = r.pull_through_credentials(ACCOUNT, "ecr-pullthroughcache/bad").await.unwrap_err().to_string();
    assert!(err.contains("accessToken") && !err.contains("leak-me"), "{err}");

    // Binary values, and a secret without a value yet.
    let bin = NewSecret { name: "bin".into(), value: Some(SecretValue::Binary(Zeroizing::new(vec![0, 1, 2]))), ..Default::default() };
    r.secrets_create(&admin, bin).await.unwrap();
    assert_eq!(r.secrets_get_value(&admin, "bin", None, None).await.unwrap().2, SecretValue::Binary(Zeroizing::new(vec![0, 1, 2])));
    r.secrets_create(&admin, new_secret("empty", None)).await.unwrap();
    assert!(matches!(r.secrets_get_value(&admin, "empty", None, None).await, Err(SecretsError::NotFound(m)) if m.contains(AWSCURRENT)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_restore_and_purge() {
    let env = common::Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let admin = user(&r, "admin", Some(ALL)).await;
    let name = "ecr-pullthroughcache/ghcr";
    let (original, _) = r.secrets_create(&admin, new_secret(name, Some(CREDENTIALS))).await.unwrap();

    for bad in [Some(6), Some(31)] {
        assert!(matches!(r.secrets_delete(&admin, name, bad, false).await, Err(SecretsError::InvalidParameter(_))));
    }
    assert!(matches!(r.secrets_delete(&admin, name, Some(7), true).await, Err(SecretsError::InvalidParameter(_))));
    let deleted = r.secrets_delete(&admin, name, Some(7), false).await.unwrap();
    assert_eq!(deleted.deletion_date, Some(env.clock.0.load(std::sync::atomic::Ordering::SeqCst) + 7 * DAY));
    assert!(matches!(r.secrets_get_value(&admin, name, None, None).await, Err(SecretsError::InvalidRequest(_))));
    assert!(matches!(r.secrets_put_value(&admin, name, put("x", None)).await, Err(SecretsError::InvalidRequest(_))));
    assert!(matches!(r.secrets_delete(&admin, name, None, false).await, Err(SecretsError::InvalidRequest(_))));
    assert!(matches!(r.secrets_create(&admin, new_secret(name, Some("x"))).await, Err(SecretsError::InvalidRequest(_))));
    assert!(r.pull_through_credentials(ACCOUNT, name).await.unwrap().is_none(), "scheduled for deletion");
    assert!(r.secrets_describe(&admin, name).await.unwrap().deletion_date.is_some(), "still described");
    let listed = |include| ListSecrets { include_planned_deletion: include, ..Default::default() };
    assert!(r.secrets_list(&admin, listed(false)).await.unwrap().0.is_empty());
    assert_eq!(r.secrets_list(&admin, listed(true)).await.unwrap().0.len(), 1);

    r.secrets_restore(&admin, name).await.unwrap();
    assert_eq!(value_of(&r, &admin, name).await.unwrap(), CREDENTIALS);

    // Past the window the secret is gone, and its name is free under a new ARN.
    r.secrets_delete(&admin, name, Some(7), false).await.unwrap();
    env.advance(7 * DAY);
    assert!(matches!(r.secrets_describe(&admin, name).await, Err(SecretsError::NotFound(_))));
    assert!(matches!(r.secrets_restore(&admin, &original.arn).await, Err(SecretsError::NotFound(_))));
    let (again, _) = r.secrets_create(&admin, new_secret(name, Some("new"))).await.unwrap();
    assert_ne!(again.arn, original.arn);

    // Force: at once, for good.
    r.secrets_delete(&admin, name, None, true).await.unwrap();
    assert!(matches!(r.secrets_get_value(&admin, name, None, None).await, Err(SecretsError::NotFound(_))));
    assert!(matches!(r.secrets_delete(&admin, name, None, true).await, Err(SecretsError::NotFound(_))));
    assert!(matches!(r.secrets_create(&admin, new_secret("bad name", Some("x"))).await, Err(SecretsError::InvalidParameter(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_and_customer_keys() {
    let env = common::Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let admin = user(&r, "admin", Some(ALL)).await;
    let nobody = user(&r, "nobody", None).await;
    let secrets_only = user(&r, "secrets-only", Some(SECRETS_ONLY)).await;
    r.secrets_create(&admin, new_secret("managed", Some("v"))).await.unwrap();

    let denied = |e: SecretsError| matches!(e, SecretsError::Registry(RegistryError::Denied(_)));
    assert!(denied(r.secrets_get_value(&nobody, "managed", None, None).await.unwrap_err()));
    assert!(denied(r.secrets_get_value(&nobody, "no-such-secret", None, None).await.unwrap_err()), "no hint that it does not exist");
    assert!(denied(r.secrets_create(&nobody, new_secret("mine", Some("v"))).await.unwrap_err()));
    assert!(denied(r.secrets_list(&nobody, ListSecrets::default()).await.unwrap_err()));
    // The AWS managed key needs no KMS permission of the caller.
    assert_eq!(value_of(&r, &secrets_only, "managed").await.unwrap(), "v");

    // A customer managed key needs kms:GenerateDataKey / kms:Decrypt of the caller.
    let key = r.kms_create_key(&admin, NewKey::default()).await.unwrap();
    let with_key = |name: &str| NewSecret { kms_key_id: Some(key.arn().to_string()), ..new_secret(name, Some("k")) };
    assert!(denied(r.secrets_create(&secrets_only, with_key("cmk-1")).await.unwrap_err()));
    r.secrets_create(&admin, with_key("cmk-2")).await.unwrap();
    assert_eq!(value_of(&r, &admin, "cmk-2").await.unwrap(), "k");
    assert!(denied(r.secrets_get_value(&secrets_only, "cmk-2", None, None).await.unwrap_err()));
    // A disabled key: Secrets Manager's DecryptionFailure.
    r.kms_set_enabled(&admin, key.arn(), false).await.unwrap();
    assert!(matches!(r.secrets_get_value(&admin, "cmk-2", None, None).await, Err(SecretsError::Decryption(_))));
    assert!(matches!(r.secrets_put_value(&admin, "cmk-2", put("x", None)).await, Err(SecretsError::Encryption(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_and_filter() {
    let env = common::Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let admin = user(&r, "admin", Some(ALL)).await;
    for name in ["ecr-pullthroughcache/a", "ecr-pullthroughcache/b", "other/c", "ecr-pullthroughcache/d", "zeta"] {
        r.secrets_create(&admin, new_secret(name, Some("v"))).await.unwrap();
    }
    r.secrets_tag(&admin, "zeta", vec![berth_core::secrets::SecretTag { key: "team".into(), value: "ops".into() }]).await.unwrap();
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let (page, next) =
            r.secrets_list(&admin, ListSecrets { max_results: Some(2), next_token: token, ..Default::default() }).await.unwrap();
        assert!(page.len() <= 2);
        names.extend(page.into_iter().map(|s| s.name));
        match next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(names, ["ecr-pullthroughcache/a", "ecr-pullthroughcache/b", "ecr-pullthroughcache/d", "other/c", "zeta"]);
    let filtered = |key: &str, value: &str| ListSecrets {
        filters: vec![SecretFilter { key: key.into(), values: vec![value.into()] }],
        ..Default::default()
    };
    let (page, _) = r.secrets_list(&admin, filtered("name", "ecr-pullthroughcache/")).await.unwrap();
    assert_eq!(page.len(), 3);
    let (page, _) = r.secrets_list(&admin, filtered("tag-key", "te")).await.unwrap();
    assert_eq!(page.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["zeta"]);
    let (page, _) = r.secrets_list(&admin, filtered("name", "!ecr")).await.unwrap();
    assert_eq!(page.len(), 2);
    r.secrets_untag(&admin, "zeta", vec!["team".into()]).await.unwrap();
    assert!(r.secrets_list(&admin, filtered("tag-key", "te")).await.unwrap().0.is_empty());
    assert!(matches!(
        r.secrets_list(&admin, ListSecrets { next_token: Some("%%%".into()), ..Default::default() }).await,
        Err(SecretsError::InvalidNextToken(_))
    ));
}
