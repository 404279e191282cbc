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

/// The gallery's search: every account's public repositories with an alias, matched on
/// name, alias or description (ASCII case-insensitive), in (alias, name) order, paged by the
/// last (alias, name), never a private repository.
pub async fn public_repository_search(f: Fixture) {
    let s = &f.store;
    let (a, b, c) = ("111111111111", "222222222222", "333333333333");
    s.create_public_registry(&registry(a, "zeta")).await.unwrap();
    s.create_public_registry(&registry(b, "acme")).await.unwrap();
    let key = |account: &str, region: &str, name: &str| RepoKey { account: account.into(), region: region.into(), name: name.into() };
    let catalog = |json: &str| RepositoryCatalogRow { catalog: json.into(), logo: None, updated_at: NOW };
    for (account, name) in [(a, "web/nginx"), (a, "tools"), (b, "db"), (b, "cache"), (c, "no-alias")] {
        s.create_repository(&key(account, "@public", name), &settings(), &[], NOW).await.unwrap().expect("new");
    }
    // A private namesake, with a description-like name, never shows.
    s.create_repository(&key(a, "us-east-1", "web/nginx"), &settings(), &[], NOW).await.unwrap().expect("new");
    s.create_repository(&key(a, "us-east-1", "secret-database"), &settings(), &[], NOW).await.unwrap().expect("new");
    assert!(s.put_repository_catalog(&key(b, "@public", "db"), &catalog(r#"{"description":"A fast DATABASE"}"#)).await.unwrap());
    let logo = RepositoryCatalogRow { logo: Some(b"\x89PNG".to_vec()), ..catalog(r#"{"aboutText":"database inside"}"#) };
    assert!(s.put_repository_catalog(&key(a, "@public", "tools"), &logo).await.unwrap());

    let names = |hits: &[PublicRepositoryHit]| hits.iter().map(|h| format!("{}/{}", h.alias, h.key.name)).collect::<Vec<_>>();
    let all = s.search_public_repositories("@public", "", None, 100).await.unwrap();
    assert_eq!(names(&all), ["acme/cache", "acme/db", "zeta/tools", "zeta/web/nginx"], "no private repository, none without an alias");
    assert!(all.iter().all(|h| h.key.region == "@public" && h.created_at == NOW));
    let tools = &all[2];
    assert!(tools.has_logo);
    assert_eq!(tools.catalog.as_deref(), Some(r#"{"aboutText":"database inside"}"#));
    assert!(!all[0].has_logo && all[0].catalog.is_none());

    assert_eq!(
        names(&s.search_public_repositories("@public", "database", None, 100).await.unwrap()),
        ["acme/db"],
        "the description, not the about text"
    );
    assert_eq!(names(&s.search_public_repositories("@public", "nginx", None, 100).await.unwrap()), ["zeta/web/nginx"]);
    assert_eq!(names(&s.search_public_repositories("@public", "acme", None, 100).await.unwrap()), ["acme/cache", "acme/db"], "the alias");
    assert!(s.search_public_repositories("@public", "secret", None, 100).await.unwrap().is_empty());
    assert!(s.search_public_repositories("@public", "%", None, 100).await.unwrap().is_empty(), "no LIKE wildcards");

    // Pages: the limit, then after the last (alias, name).
    let first = s.search_public_repositories("@public", "", None, 3).await.unwrap();
    assert_eq!(names(&first), ["acme/cache", "acme/db", "zeta/tools"]);
    let last = first.last().unwrap();
    let rest = s.search_public_repositories("@public", "", Some((&last.alias, &last.key.name)), 3).await.unwrap();
    assert_eq!(names(&rest), ["zeta/web/nginx"]);
    let after_acme = s.search_public_repositories("@public", "", Some(("acme", "zzz")), 10).await.unwrap();
    assert_eq!(names(&after_acme), ["zeta/tools", "zeta/web/nginx"]);
}
