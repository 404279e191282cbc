//! Pull-through cache rules and tag check times, per registry.

use super::*;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn rule(prefix: &str, at: Millis) -> PullThroughRuleRow {
    PullThroughRuleRow {
        prefix: prefix.to_string(),
        upstream_url: "registry-1.docker.io".to_string(),
        upstream_registry: "docker-hub".to_string(),
        upstream_prefix: "ROOT".to_string(),
        credential_arn: None,
        custom_role_arn: None,
        created_at: at,
        updated_at: at,
    }
}

pub async fn pull_through_rules_and_tag_checks(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.create_pull_through_rule(ACCOUNT, REGION, &rule("hub", NOW), 2).await.unwrap(), CreateRuleOutcome::Created);
    assert_eq!(s.create_pull_through_rule(ACCOUNT, REGION, &rule("hub", NOW), 2).await.unwrap(), CreateRuleOutcome::Exists);
    assert_eq!(s.create_pull_through_rule(ACCOUNT, REGION, &rule("ROOT", NOW), 2).await.unwrap(), CreateRuleOutcome::Created);
    assert_eq!(s.create_pull_through_rule(ACCOUNT, REGION, &rule("quay", NOW), 2).await.unwrap(), CreateRuleOutcome::LimitReached);
    assert_eq!(
        s.create_pull_through_rule(ACCOUNT, "eu-west-1", &rule("quay", NOW), 2).await.unwrap(),
        CreateRuleOutcome::Created,
        "the limit is per registry"
    );
    let mut changed = rule("hub", NOW);
    changed.credential_arn = Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub".into());
    changed.updated_at = NOW + 5;
    assert!(s.update_pull_through_rule(ACCOUNT, REGION, &changed).await.unwrap());
    assert!(!s.update_pull_through_rule(ACCOUNT, REGION, &rule("nope", NOW)).await.unwrap());
    let restarted = f.reopen().await;
    assert_eq!(restarted.pull_through_rules(ACCOUNT, REGION).await.unwrap(), vec![rule("ROOT", NOW), changed.clone()]);
    assert_eq!(restarted.delete_pull_through_rule(ACCOUNT, REGION, "hub").await.unwrap(), Some(changed));
    assert_eq!(restarted.delete_pull_through_rule(ACCOUNT, REGION, "hub").await.unwrap(), None);
    assert_eq!(restarted.pull_through_rules(ACCOUNT, "eu-west-1").await.unwrap(), vec![rule("quay", NOW)]);

    let key = RepoKey { account: ACCOUNT.into(), region: REGION.into(), name: "hub/library/alpine".into() };
    assert_eq!(s.pull_through_tag_checked(&key, "3").await.unwrap(), None);
    s.set_pull_through_tag_checked(&key, "3", NOW).await.unwrap();
    s.set_pull_through_tag_checked(&key, "3", NOW + 10).await.unwrap();
    assert_eq!(restarted.pull_through_tag_checked(&key, "3").await.unwrap(), Some(NOW + 10));
    assert_eq!(restarted.pull_through_tag_checked(&key, "4").await.unwrap(), None);
}
