//! Repository creation templates, and repositories created with their policies in place.

use super::*;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn template(prefix: &str, at: Millis) -> TemplateRow {
    TemplateRow {
        prefix: prefix.to_string(),
        description: Some(format!("for {prefix}")),
        encryption_type: EncryptionType::Kms,
        kms_key: Some("arn:aws:kms:us-east-1:123456789012:key/abcd".into()),
        resource_tags: r#"[{"Key":"team","Value":"a"}]"#.into(),
        tag_mutability: TagMutability::ImmutableWithExclusion,
        tag_mutability_exclusions: Some(r#"[{"filterType":"WILDCARD","filter":"dev-*"}]"#.into()),
        repository_policy: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
        lifecycle_policy: Some(r#"{"rules":[]}"#.into()),
        applied_for: vec!["CREATE_ON_PUSH".into(), "REPLICATION".into()],
        custom_role_arn: None,
        created_at: at,
        updated_at: at,
    }
}

fn prefixes(rows: &[TemplateRow]) -> Vec<String> {
    rows.iter().map(|r| r.prefix.clone()).collect()
}

pub async fn creation_templates(f: Fixture) {
    let s = &f.store;
    let root = template("ROOT", NOW);
    assert_eq!(s.create_template(ACCOUNT, REGION, &root, 3).await.unwrap(), CreateTemplateOutcome::Created);
    assert_eq!(s.create_template(ACCOUNT, REGION, &template("ROOT", NOW + 5), 3).await.unwrap(), CreateTemplateOutcome::Exists);
    let mut plain = template("prod/team", NOW);
    plain.description = None;
    plain.kms_key = None;
    plain.encryption_type = EncryptionType::Aes256;
    plain.tag_mutability_exclusions = None;
    plain.repository_policy = None;
    plain.lifecycle_policy = None;
    plain.applied_for = vec!["PULL_THROUGH_CACHE".into()];
    assert_eq!(s.create_template(ACCOUNT, REGION, &plain, 3).await.unwrap(), CreateTemplateOutcome::Created);
    assert_eq!(s.create_template(ACCOUNT, REGION, &template("prod", NOW), 3).await.unwrap(), CreateTemplateOutcome::Created);
    assert_eq!(s.create_template(ACCOUNT, REGION, &template("zeta", NOW), 3).await.unwrap(), CreateTemplateOutcome::LimitReached);
    // Another registry has its own templates (and its own count).
    assert_eq!(s.create_template(ACCOUNT, "eu-west-1", &template("ROOT", NOW), 3).await.unwrap(), CreateTemplateOutcome::Created);

    // Byte order, paged.
    let all = s.list_templates(ACCOUNT, REGION, None, 10).await.unwrap();
    assert_eq!(prefixes(&all), strings(&["ROOT", "prod", "prod/team"]));
    assert_eq!(all[0], root, "every column reads back as written");
    assert_eq!(all[2], plain);
    assert_eq!(prefixes(&s.list_templates(ACCOUNT, REGION, None, 2).await.unwrap()), strings(&["ROOT", "prod"]));
    assert_eq!(prefixes(&s.list_templates(ACCOUNT, REGION, Some("prod"), 2).await.unwrap()), strings(&["prod/team"]));
    assert!(s.list_templates(ACCOUNT, "ap-south-1", None, 2).await.unwrap().is_empty());

    let wanted = strings(&["prod/team/x", "prod/team", "ROOT", "missing"]);
    assert_eq!(prefixes(&s.templates_with_prefixes(ACCOUNT, REGION, &wanted).await.unwrap()), strings(&["ROOT", "prod/team"]));
    assert!(s.templates_with_prefixes(ACCOUNT, REGION, &[]).await.unwrap().is_empty());

    let mut changed = template("prod", NOW + 10);
    changed.created_at = NOW + 999; // not written: an update keeps the creation time
    changed.description = None;
    changed.applied_for = vec!["REPLICATION".into()];
    assert!(s.update_template(ACCOUNT, REGION, &changed).await.unwrap());
    assert!(!s.update_template(ACCOUNT, REGION, &template("nope", NOW)).await.unwrap());
    let got = s.templates_with_prefixes(ACCOUNT, REGION, &strings(&["prod"])).await.unwrap();
    assert_eq!(got, vec![TemplateRow { created_at: NOW, ..changed.clone() }]);

    let deleted = s.delete_template(ACCOUNT, REGION, "prod").await.unwrap().expect("deleted");
    assert_eq!(deleted.prefix, "prod");
    assert_eq!(deleted.updated_at, NOW + 10);
    assert!(s.delete_template(ACCOUNT, REGION, "prod").await.unwrap().is_none());
    assert_eq!(s.create_template(ACCOUNT, REGION, &template("zeta", NOW), 3).await.unwrap(), CreateTemplateOutcome::Created);

    // A survivor of a restart.
    let reopened = f.reopen().await;
    assert_eq!(prefixes(&reopened.list_templates(ACCOUNT, REGION, None, 10).await.unwrap()), strings(&["ROOT", "prod/team", "zeta"]));
}

pub async fn repository_with_policies(f: Fixture) {
    let s = &f.store;
    let k = key("made/by/template");
    let tags = vec![("team".to_string(), "a".to_string())];
    let policies = InitialPolicies { repository_policy: Some(r#"{"Statement":[]}"#), lifecycle_policy: Some(r#"{"rules":[]}"#) };
    let row = s.create_repository_with_policies(&k, &settings(), &tags, policies, NOW).await.unwrap().expect("new");
    assert_eq!(row.policy.as_deref(), Some(r#"{"Statement":[]}"#));
    let lifecycle = s.lifecycle_policy(&k).await.unwrap().expect("lifecycle policy");
    assert_eq!(lifecycle.policy, r#"{"rules":[]}"#);
    assert_eq!(lifecycle.updated_at, NOW);
    assert_eq!(s.list_resource_tags(&k).await.unwrap(), tags);
    assert!(s.create_repository_with_policies(&k, &settings(), &[], InitialPolicies::default(), NOW).await.unwrap().is_none());
    assert_eq!(s.get_repository(&k).await.unwrap().expect("kept").policy.as_deref(), Some(r#"{"Statement":[]}"#));

    let bare =
        s.create_repository_with_policies(&key("bare"), &settings(), &[], InitialPolicies::default(), NOW).await.unwrap().expect("new");
    assert_eq!(bare.policy, None);
    assert!(s.lifecycle_policy(&key("bare")).await.unwrap().is_none());
}
