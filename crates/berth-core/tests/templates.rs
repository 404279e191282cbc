//! Repository creation templates, on every backend `common` selects: what the actions accept
//! and refuse, paging, and the repository a push creates taking the longest matching prefix's
//! settings (mutability and exclusions, KMS encryption, tags, repository and lifecycle policies).

use berth_core::auth::Principal;
use berth_core::immutability::ExclusionFilter;
use berth_core::kms::NewKey;
use berth_core::templates::{AppliedFor, TemplateInput};
use berth_core::{Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName};
use berth_store::{EncryptionType, TagMutability};

mod common;
use common::{push_blob, Env};

const ACCOUNT: &str = "123456789012";
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"ecr:BatchGetImage"}]}"#;
const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;

fn scope() -> RegistryRef {
    RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }
}

fn repo(s: &str) -> Repo {
    Repo::new(&scope(), RepositoryName::parse(s).unwrap())
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn on_push() -> TemplateInput {
    TemplateInput { applied_for: Some(strings(&["CREATE_ON_PUSH"])), ..Default::default() }
}

async fn admin(r: &Registry) -> Principal {
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let (arn, access_key_id, _) = r.create_user(ACCOUNT, "keeper", &[("all".into(), all.into())]).await.expect("user");
    Principal { arn, account: ACCOUNT.into(), access_key_id, region: None, source_ip: None, secure_transport: false }
}

fn invalid(e: RegistryError) -> String {
    match e {
        RegistryError::InvalidParameter(i) => i.message,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_created_described_updated_and_deleted() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = scope();

    let input = TemplateInput {
        description: Some("production".into()),
        resource_tags: Some(vec![("team".into(), "a".into())]),
        tag_mutability: Some("IMMUTABLE_WITH_EXCLUSION".into()),
        exclusion_filters: Some(vec![ExclusionFilter { filter_type: "WILDCARD".into(), filter: "latest".into() }]),
        repository_policy: Some(POLICY.into()),
        lifecycle_policy: Some(LIFECYCLE.into()),
        applied_for: Some(strings(&["CREATE_ON_PUSH", "REPLICATION", "CREATE_ON_PUSH"])),
        ..Default::default()
    };
    let t = r.create_repository_creation_template(&s, "prod/", input).await.expect("create");
    assert_eq!(t.prefix, "prod", "the assumed trailing slash is not part of the key");
    assert_eq!(t.applied_for, vec![AppliedFor::CreateOnPush, AppliedFor::Replication]);
    assert_eq!((t.encryption_type, t.tag_mutability), (EncryptionType::Aes256, TagMutability::ImmutableWithExclusion));
    assert_eq!(t.created_at, t.updated_at);

    match r.create_repository_creation_template(&s, "prod", on_push()).await {
        Err(RegistryError::TemplateAlreadyExists(m)) => assert!(m.contains("'prod'"), "{m}"),
        other => panic!("{other:?}"),
    }
    r.create_repository_creation_template(&s, "ROOT", on_push()).await.expect("root");
    r.create_repository_creation_template(&s, "dev/team", on_push()).await.expect("dev/team");

    // Paging in prefix order; a filter names prefixes (missing ones are left out).
    let page = r.describe_repository_creation_templates(&s, &[], None, 2).await.expect("page 1");
    assert_eq!(page.templates.iter().map(|t| t.prefix.as_str()).collect::<Vec<_>>(), ["ROOT", "dev/team"]);
    assert!(page.more);
    let page = r.describe_repository_creation_templates(&s, &[], Some("dev/team"), 2).await.expect("page 2");
    assert_eq!(page.templates.iter().map(|t| t.prefix.as_str()).collect::<Vec<_>>(), ["prod"]);
    assert!(!page.more);
    let some = r.describe_repository_creation_templates(&s, &strings(&["prod/", "nothing", "ROOT"]), None, 10).await.expect("filtered");
    assert_eq!(some.templates.iter().map(|t| t.prefix.as_str()).collect::<Vec<_>>(), ["ROOT", "prod"]);
    assert_eq!(some.templates[1].repository_policy.as_deref(), Some(POLICY));

    // An update replaces what it names; a new mutability drops filters it does not repeat.
    env.advance(1_000);
    let update = TemplateInput { tag_mutability: Some("MUTABLE".into()), lifecycle_policy: Some(String::new()), ..Default::default() };
    let t = r.update_repository_creation_template(&s, "prod", update).await.expect("update");
    assert_eq!((t.tag_mutability, t.exclusion_filters.len()), (TagMutability::Mutable, 0));
    assert_eq!(t.lifecycle_policy, None, "an empty policy removes it");
    assert_eq!(t.repository_policy.as_deref(), Some(POLICY), "kept");
    assert_eq!(t.description.as_deref(), Some("production"), "kept");
    assert_eq!(t.updated_at, t.created_at + 1_000);
    assert!(matches!(r.update_repository_creation_template(&s, "nope", on_push()).await, Err(RegistryError::TemplateNotFound(_))));

    let gone = r.delete_repository_creation_template(&s, "dev/team/").await.expect("delete");
    assert_eq!(gone.prefix, "dev/team");
    match r.delete_repository_creation_template(&s, "dev/team").await {
        Err(RegistryError::TemplateNotFound(m)) => assert!(m.contains(ACCOUNT), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_templates_are_refused_and_nothing_is_stored() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let s = scope();
    let with = |f: fn(&mut TemplateInput)| {
        let mut i = on_push();
        f(&mut i);
        i
    };
    let cases: Vec<(&str, TemplateInput, &str)> = vec![
        ("Prod", on_push(), "prefix"),
        ("a//b", on_push(), "prefix"),
        ("ok", with(|i| i.repository_policy = Some("{not json".into())), "repository policy"),
        ("ok", with(|i| i.lifecycle_policy = Some(r#"{"rules":[]}"#.into())), ""),
        ("ok", with(|i| i.resource_tags = Some((0..51).map(|n| (format!("k{n}"), "v".into())).collect())), "resourceTags"),
        ("ok", with(|i| i.resource_tags = Some(vec![("aws:x".into(), "v".into())])), "resourceTags"),
        ("ok", with(|i| i.tag_mutability = Some("IMMUTABLE_WITH_EXCLUSION".into())), ""),
        ("ok", with(|i| i.encryption = Some(("AES256".into(), Some("arn:aws:kms:us-east-1:123456789012:key/x".into())))), "kmsKey"),
        ("ok", with(|i| i.applied_for = Some(vec![])), "appliedFor"),
        ("ok", with(|i| i.custom_role_arn = Some("arn:aws:iam::999999999999:role/x".into())), "customRoleArn"),
        ("ok", TemplateInput::default(), "appliedFor"),
    ];
    for (prefix, input, says) in cases {
        let message = invalid(r.create_repository_creation_template(&s, prefix, input).await.expect_err(prefix));
        assert!(message.contains(says), "{prefix}: {message}");
    }
    assert!(r.describe_repository_creation_templates(&s, &[], None, 10).await.expect("list").templates.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_creates_its_repository_from_the_longest_matching_template() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let me = admin(&r).await;
    let key = r.kms_create_key(&me, NewKey::default()).await.expect("key");
    let s = scope();

    let root = TemplateInput { resource_tags: Some(vec![("from".into(), "root".into())]), ..on_push() };
    r.create_repository_creation_template(&s, "ROOT", root).await.expect("root");
    let prod = TemplateInput {
        resource_tags: Some(vec![("from".into(), "prod".into())]),
        tag_mutability: Some("IMMUTABLE_WITH_EXCLUSION".into()),
        exclusion_filters: Some(vec![ExclusionFilter { filter_type: "WILDCARD".into(), filter: "dev-*".into() }]),
        encryption: Some(("KMS".into(), Some(key.doc.arn.clone()))),
        repository_policy: Some(POLICY.into()),
        lifecycle_policy: Some(LIFECYCLE.into()),
        ..on_push()
    };
    r.create_repository_creation_template(&s, "prod", prod).await.expect("prod");
    // Longer, but not for pushes: never chosen for one.
    let replication_only = TemplateInput {
        applied_for: Some(strings(&["REPLICATION"])),
        resource_tags: Some(vec![("from".into(), "replication".into())]),
        ..Default::default()
    };
    r.create_repository_creation_template(&s, "prod/team", replication_only).await.expect("prod/team");

    assert_eq!(r.template_for(&s, "prod/team/api", AppliedFor::CreateOnPush).await.unwrap().map(|t| t.prefix).as_deref(), Some("prod"));
    assert_eq!(r.template_for(&s, "prod/team/api", AppliedFor::Replication).await.unwrap().map(|t| t.prefix).as_deref(), Some("prod/team"));
    assert_eq!(r.template_for(&s, "production/api", AppliedFor::CreateOnPush).await.unwrap().map(|t| t.prefix).as_deref(), Some("ROOT"));
    assert_eq!(r.template_for(&s, "prod/api", AppliedFor::PullThroughCache).await.unwrap(), None);

    let api = repo("prod/team/api");
    push_blob(&r, &api, b"layer").await;
    let row = r.repository(&api).await.expect("created by the push");
    assert_eq!(row.settings.tag_mutability, TagMutability::ImmutableWithExclusion);
    assert!(row.settings.tag_mutability_exclusions.as_deref().is_some_and(|f| f.contains("dev-*")));
    assert_eq!((row.settings.encryption_type, row.settings.kms_key.as_deref()), (EncryptionType::Kms, Some(key.doc.arn.as_str())));
    assert_eq!(r.repository_policy(&api).await.expect("policy"), POLICY);
    assert_eq!(r.lifecycle_policy(&api).await.expect("lifecycle").text, LIFECYCLE);
    assert_eq!(r.repository_tags(&api).await.expect("tags"), vec![("from".to_string(), "prod".to_string())]);

    // `production` is no namespace of `prod`: ROOT's template.
    let other = repo("production/api");
    push_blob(&r, &other, b"layer").await;
    let row = r.repository(&other).await.expect("created");
    assert_eq!((row.settings.tag_mutability, row.settings.encryption_type), (TagMutability::Mutable, EncryptionType::Aes256));
    assert_eq!(row.policy, None);
    assert_eq!(r.repository_tags(&other).await.expect("tags"), vec![("from".to_string(), "root".to_string())]);

    // A template changed later applies to repositories created later, not to this one.
    r.update_repository_creation_template(&s, "prod", TemplateInput { tag_mutability: Some("MUTABLE".into()), ..Default::default() })
        .await
        .expect("update");
    assert_eq!(r.repository(&api).await.unwrap().settings.tag_mutability, TagMutability::ImmutableWithExclusion);

    // A disabled template key stops the push that would create the repository, and no
    // repository is left behind without its encryption.
    r.kms_set_enabled(&me, &key.key_id, false).await.expect("disable");
    let blocked = repo("prod/blocked");
    let data = b"blocked layer";
    let d = berth_core::Digest::sha256_of(data);
    let body = futures::StreamExt::boxed(futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(data))]));
    match r.upload_blob(&blocked, &d, body).await {
        Err(RegistryError::Kms { kms_error, .. }) => assert_eq!(kms_error, "DisabledException"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.repository(&blocked).await, Err(RegistryError::NameUnknown(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_template_a_push_creates_ecrs_defaults() {
    let env = Env::new();
    let r = env.registry_with(RegistryConfig::default()).await;
    let plain = repo("plain/app");
    push_blob(&r, &plain, b"layer").await;
    let row = r.repository(&plain).await.expect("created");
    assert_eq!(row.settings, berth_store::RepositorySettings::ecr_defaults());
    assert!(r.repository_tags(&plain).await.expect("tags").is_empty());
    // The same function replication and pull-through cache will call, with no template.
    let made = r.create_repository_from_template(&repo("made/here"), None).await.expect("created");
    assert_eq!(made.settings, berth_store::RepositorySettings::ecr_defaults());
    assert!(matches!(r.create_repository_from_template(&repo("made/here"), None).await, Err(RegistryError::RepositoryExists(_))));
}
