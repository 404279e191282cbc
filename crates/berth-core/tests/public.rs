//! ECR Public on every backend: the registry alias, catalog data and its limits, public
//! repositories beside private namesakes, DescribeImageTags, and `ecr-public:` authorization
//! with the AWS managed policies.

use berth_core::auth::{Principal, Resource};
use berth_core::public::{self, CatalogInput, RepositoryCatalog, MAX_LOGO_BYTES, PUBLIC_REGION};
use berth_core::{Reference, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName};
use bytes::Bytes;

mod common;
use common::{push_blob, Env};

const ACCOUNT: &str = "123456789012";
const OTHER: &str = "210987654321";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

async fn registry(env: &Env) -> Registry {
    env.registry_with(RegistryConfig::default()).await
}

async fn user(r: &Registry, account: &str, name: &str, policy: &str) -> Principal {
    let doc = berth_iam::policy::managed_policy(policy).unwrap().to_string();
    let (arn, key, _) = r.create_user(account, name, &[(policy.into(), doc)]).await.unwrap();
    Principal { arn, account: account.into(), access_key_id: key, region: None, source_ip: None, secure_transport: false }
}

fn public_repo(account: &str, name: &str) -> Repo {
    Repo::new(&public::public_scope(account), RepositoryName::parse(name).unwrap())
}

fn catalog(description: &str) -> CatalogInput {
    CatalogInput {
        catalog: RepositoryCatalog { description: Some(description.into()), architectures: vec!["x86-64".into()], ..Default::default() },
        logo: Some(PNG.to_vec()),
    }
}

fn invalid(r: Result<impl std::fmt::Debug, RegistryError>) -> bool {
    matches!(r, Err(RegistryError::InvalidParameter(_)))
}

#[tokio::test]
async fn the_alias_defaults_per_account_and_is_unique() {
    let env = Env::new();
    let r = registry(&env).await;
    assert_eq!(r.public_account_by_alias(&public::default_alias(ACCOUNT, 10)).await.unwrap(), None, "no registry yet");
    let alias = r.public_alias(ACCOUNT).await.unwrap();
    assert_eq!(alias, public::default_alias(ACCOUNT, 10));
    assert!(public::validate_alias(&alias).is_ok());
    assert_eq!(r.public_alias(ACCOUNT).await.unwrap(), alias, "stable");
    assert_eq!(r.public_account_by_alias(&alias).await.unwrap().as_deref(), Some(ACCOUNT));
    assert_ne!(r.public_alias(OTHER).await.unwrap(), alias);

    for bad in ["A", "Team", "-team", "team-", "te__am", "1team", &"a".repeat(51)] {
        assert!(invalid(r.set_public_alias(ACCOUNT, bad).await), "{bad}");
    }
    r.set_public_alias(ACCOUNT, "team-a").await.unwrap();
    assert!(invalid(r.set_public_alias(OTHER, "team-a").await), "another account's alias");
    assert_eq!(r.public_account_by_alias("team-a").await.unwrap().as_deref(), Some(ACCOUNT));
    assert_eq!(r.public_account_by_alias(&alias).await.unwrap(), None, "the old alias no longer resolves");
    assert_eq!(r.public_account_by_alias("Not An Alias").await.unwrap(), None);

    // The default of an account whose first choice is taken is longer, never someone else's.
    let third = "333333333333";
    r.set_public_alias(OTHER, &public::default_alias(third, 10)).await.unwrap();
    assert_eq!(r.public_alias(third).await.unwrap(), public::default_alias(third, 14));

    assert!(invalid(r.set_public_display_name(ACCOUNT, &"x".repeat(101)).await));
    r.set_public_display_name(ACCOUNT, "Team A").await.unwrap();
    let reopened = registry(&env).await;
    let row = reopened.public_registry(ACCOUNT).await.unwrap();
    assert_eq!((row.alias.as_str(), row.display_name.as_str()), ("team-a", "Team A"));
}

#[tokio::test]
async fn catalog_data_is_checked_replaced_and_goes_with_its_repository() {
    let env = Env::new();
    let r = registry(&env).await;
    let admin = user(&r, ACCOUNT, "admin", "AmazonElasticContainerRegistryPublicFullAccess").await;
    let repo = public_repo(ACCOUNT, "demorepo");
    assert_eq!(repo.arn(), "arn:aws:ecr-public::123456789012:repository/demorepo");

    let mut jpeg = catalog("d");
    jpeg.logo = Some(b"\xff\xd8\xff\xe0JFIF".to_vec());
    assert!(invalid(r.create_public_repository_as(&admin, &repo, Some(jpeg), vec![]).await));
    assert!(matches!(r.repository(&repo).await, Err(RegistryError::NameUnknown(_))), "nothing was created");

    let row = r.create_public_repository_as(&admin, &repo, Some(catalog("first")), vec![("team".into(), "a".into())]).await.unwrap();
    assert_eq!(row.key.region, PUBLIC_REGION);
    let stored = r.repository_catalog(&repo).await.unwrap().expect("catalog data");
    assert_eq!(stored.catalog.description.as_deref(), Some("first"));
    assert_eq!(stored.logo.as_deref(), Some(PNG));
    assert_eq!(r.repository_tags(&repo).await.unwrap(), vec![("team".to_string(), "a".to_string())]);

    let too_long = |f: fn(&mut RepositoryCatalog)| {
        let mut c = catalog("x");
        f(&mut c.catalog);
        c
    };
    let bad = [
        too_long(|c| c.description = Some("x".repeat(1025))),
        too_long(|c| c.about_text = Some("x".repeat(25_601))),
        too_long(|c| c.usage_text = Some("x".repeat(25_601))),
        too_long(|c| c.architectures = vec!["a".into(); 51]),
        too_long(|c| c.operating_systems = vec!["x".repeat(51)]),
        too_long(|c| c.architectures = vec![String::new()]),
        CatalogInput { logo: Some([PNG, &vec![0; MAX_LOGO_BYTES]].concat()), ..catalog("x") },
    ];
    for input in bad {
        assert!(invalid(r.put_repository_catalog(&repo, input).await));
    }
    assert_eq!(r.repository_catalog(&repo).await.unwrap().unwrap().catalog.description.as_deref(), Some("first"), "unchanged");

    let plain = CatalogInput { catalog: RepositoryCatalog { about_text: Some("# About".into()), ..Default::default() }, logo: None };
    r.put_repository_catalog(&repo, plain.clone()).await.unwrap();
    let stored = r.repository_catalog(&repo).await.unwrap().unwrap();
    assert_eq!((stored.catalog, stored.logo), (plain.catalog, None), "a put replaces everything");

    let missing = public_repo(ACCOUNT, "missing");
    assert!(matches!(r.put_repository_catalog(&missing, catalog("x")).await, Err(RegistryError::NameUnknown(_))));
    assert!(matches!(r.repository_catalog(&missing).await, Err(RegistryError::NameUnknown(_))));

    r.delete_repository(&repo, true).await.unwrap();
    r.create_public_repository_as(&admin, &repo, None, vec![]).await.unwrap();
    assert_eq!(r.repository_catalog(&repo).await.unwrap(), None, "the catalog went with the deleted repository");
}

#[tokio::test]
async fn public_and_private_namesakes_are_separate_repositories() {
    let env = Env::new();
    let r = registry(&env).await;
    let admin = user(&r, ACCOUNT, "admin", "AmazonElasticContainerRegistryPublicFullAccess").await;
    let pub_repo = public_repo(ACCOUNT, "app");
    let priv_repo = Repo::new(&RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }, RepositoryName::parse("app").unwrap());
    r.create_public_repository_as(&admin, &pub_repo, None, vec![]).await.unwrap();
    r.create_repository(&priv_repo, Default::default()).await.unwrap();

    let layer = push_blob(&r, &pub_repo, b"public layer").await;
    let config = push_blob(&r, &pub_repo, b"{}").await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":12}}]}}"#
    );
    r.put_image(&pub_repo, Bytes::from(manifest.clone()), None, Some("v1"), None).await.unwrap();
    r.put_image(&pub_repo, Bytes::from(manifest), None, Some("latest"), None).await.unwrap();
    assert!(r.layer_size(&priv_repo, &layer).await.unwrap().is_none(), "the private namesake links nothing");
    assert!(r.images(&priv_repo, berth_store::TagStatus::Any, None, None, 10).await.unwrap().is_empty());
    let private_get = r.get_manifest(&priv_repo, &Reference::parse("v1").unwrap(), false).await;
    assert!(private_get.is_err(), "a public tag is no private tag");

    let (tags, more) = r.describe_image_tags(&pub_repo, None, 1).await.unwrap();
    assert_eq!((tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(), more), (vec!["latest"], true));
    let (tags, more) = r.describe_image_tags(&pub_repo, Some("latest"), 10).await.unwrap();
    assert_eq!((tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(), more), (vec!["v1"], false));
    assert_eq!(tags[0].image.tags, vec!["latest".to_string(), "v1".to_string()], "with its image");

    r.delete_repository(&priv_repo, true).await.unwrap();
    assert_eq!(r.images(&pub_repo, berth_store::TagStatus::Any, None, None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn ecr_public_actions_follow_the_managed_policies() {
    let env = Env::new();
    let r = registry(&env).await;
    let full = user(&r, ACCOUNT, "full", "AmazonElasticContainerRegistryPublicFullAccess").await;
    let power = user(&r, ACCOUNT, "power", "AmazonElasticContainerRegistryPublicPowerUser").await;
    let read = user(&r, ACCOUNT, "read", "AmazonElasticContainerRegistryPublicReadOnly").await;
    let private_admin = user(&r, ACCOUNT, "ecr", "AmazonEC2ContainerRegistryFullAccess").await;
    let repo = public_repo(ACCOUNT, "demo");

    assert!(matches!(r.create_public_repository_as(&power, &repo, None, vec![]).await, Err(RegistryError::Denied(_))));
    assert!(
        matches!(r.create_public_repository_as(&private_admin, &repo, None, vec![]).await, Err(RegistryError::Denied(_))),
        "ecr:* grants nothing in a public registry"
    );
    r.create_public_repository_as(&full, &repo, None, vec![]).await.unwrap();
    let allowed = |p: &Principal, action: &str| {
        let (r, p, action, repo) = (&r, p.clone(), action.to_string(), repo.clone());
        async move { r.permits(&p, &action, Resource::Repository(&repo)).await.unwrap() }
    };
    assert!(allowed(&power, "ecr-public:PutImage").await);
    assert!(!allowed(&power, "ecr-public:DeleteRepository").await);
    assert!(allowed(&read, "ecr-public:DescribeImageTags").await);
    assert!(!allowed(&read, "ecr-public:PutImage").await);
    assert!(!allowed(&private_admin, "ecr-public:DescribeImages").await);

    let page = r.describable_repositories(&read, &public::public_scope(ACCOUNT), None, 10).await.unwrap();
    assert_eq!(page.rows.iter().map(|row| row.key.name.as_str()).collect::<Vec<_>>(), vec!["demo"]);
    assert!(matches!(
        r.describable_repositories(&private_admin, &public::public_scope(ACCOUNT), None, 10).await,
        Err(RegistryError::Denied(_))
    ));
}
