//! ECR Public: registries (aliases unique across accounts) and repository catalog data.

use super::*;

fn registry(account: &str, alias: &str) -> PublicRegistryRow {
    PublicRegistryRow { account: account.into(), alias: alias.into(), display_name: String::new(), created_at: NOW }
}

pub async fn public_registries_and_catalog(f: Fixture) {
    let s = &f.store;
    let (a, b) = ("111111111111", "222222222222");
    assert_eq!(s.public_registry(a).await.unwrap(), None);
    assert_eq!(s.create_public_registry(&registry(a, "alpha")).await.unwrap(), PublicAliasOutcome::Written);
    assert_eq!(s.create_public_registry(&registry(a, "other")).await.unwrap(), PublicAliasOutcome::Exists);
    assert_eq!(s.create_public_registry(&registry(b, "alpha")).await.unwrap(), PublicAliasOutcome::AliasTaken);
    assert_eq!(s.set_public_alias(&registry(b, "alpha")).await.unwrap(), PublicAliasOutcome::AliasTaken);
    assert_eq!(s.public_registry(b).await.unwrap(), None, "a refused alias creates nothing");
    assert_eq!(s.set_public_alias(&registry(b, "beta")).await.unwrap(), PublicAliasOutcome::Written);
    assert_eq!(s.set_public_alias(&registry(a, "gamma")).await.unwrap(), PublicAliasOutcome::Written);
    assert!(s.set_public_display_name(a, "Team A").await.unwrap());
    assert!(!s.set_public_display_name("333333333333", "nobody").await.unwrap());
    let restarted = f.reopen().await;
    let row = restarted.public_registry_by_alias("gamma").await.unwrap().expect("renamed");
    assert_eq!((row.account.as_str(), row.display_name.as_str(), row.created_at), (a, "Team A", NOW));
    assert_eq!(restarted.public_registry_by_alias("alpha").await.unwrap(), None, "the old alias is free");
    assert_eq!(restarted.public_registry_by_alias("beta").await.unwrap().map(|r| r.account), Some(b.to_string()));

    // Catalog data lives with a repository of the public scope and goes with it.
    let k = RepoKey { account: a.into(), region: "@public".into(), name: "demo".into() };
    let missing = RepositoryCatalogRow { catalog: "{}".into(), logo: None, updated_at: NOW };
    assert!(!s.put_repository_catalog(&k, &missing).await.unwrap(), "no repository, no catalog");
    s.create_repository(&k, &settings(), &[], NOW).await.unwrap().expect("new");
    assert_eq!(s.repository_catalog(&k).await.unwrap(), None);
    let logo = vec![0x89, b'P', b'N', b'G', 0, 1, 2];
    let first = RepositoryCatalogRow { catalog: r#"{"description":"d"}"#.into(), logo: Some(logo.clone()), updated_at: NOW };
    assert!(s.put_repository_catalog(&k, &first).await.unwrap());
    assert_eq!(s.repository_catalog(&k).await.unwrap(), Some(first));
    let second = RepositoryCatalogRow { catalog: r#"{"aboutText":"a"}"#.into(), logo: None, updated_at: NOW + 1 };
    assert!(s.put_repository_catalog(&k, &second).await.unwrap());
    assert_eq!(f.reopen().await.repository_catalog(&k).await.unwrap(), Some(second), "replaced, logo included");
    let private = RepoKey { region: "us-east-1".into(), ..k.clone() };
    s.create_repository(&private, &settings(), &[], NOW).await.unwrap().expect("a private namesake is another repository");
    assert_eq!(s.repository_catalog(&private).await.unwrap(), None);
    assert!(matches!(s.delete_repository(&k, true).await.unwrap(), DeleteRepositoryOutcome::Deleted(_)));
    s.create_repository(&k, &settings(), &[], NOW + 2).await.unwrap().expect("created again");
    assert_eq!(s.repository_catalog(&k).await.unwrap(), None, "the catalog went with its repository");
}
