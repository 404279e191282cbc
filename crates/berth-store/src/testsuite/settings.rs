//! Account settings and pull-time update exclusions, per registry.

use super::*;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn exclusion(arn: &str, at: Millis) -> PullTimeExclusionRow {
    PullTimeExclusionRow { principal_arn: arn.to_string(), created_at: at }
}

pub async fn account_settings_and_exclusions(f: Fixture) {
    let s = &f.store;
    assert!(s.account_settings(ACCOUNT, REGION).await.expect("settings").is_empty(), "nothing set yet");
    s.put_account_setting(ACCOUNT, REGION, "REGISTRY_POLICY_SCOPE", "V1").await.expect("put");
    s.put_account_setting(ACCOUNT, REGION, "REGISTRY_POLICY_SCOPE", "V2").await.expect("put again");
    s.put_account_setting(ACCOUNT, REGION, "BLOB_MOUNTING", "DISABLED").await.expect("put");
    s.put_account_setting(ACCOUNT, "eu-west-1", "BLOB_MOUNTING", "ENABLED").await.expect("another region");
    assert_eq!(
        s.account_settings(ACCOUNT, REGION).await.expect("settings"),
        vec![("BLOB_MOUNTING".to_string(), "DISABLED".to_string()), ("REGISTRY_POLICY_SCOPE".to_string(), "V2".to_string())]
    );

    let (a, b, c) = ("arn:aws:iam::123456789012:user/b", "arn:aws:iam::123456789012:user/a", "arn:aws:iam::123456789012:role/c");
    assert_eq!(s.register_pull_time_exclusion(ACCOUNT, REGION, &exclusion(a, NOW), 2).await.unwrap(), RegisterExclusionOutcome::Registered);
    assert_eq!(s.register_pull_time_exclusion(ACCOUNT, REGION, &exclusion(a, NOW + 1), 2).await.unwrap(), RegisterExclusionOutcome::Exists);
    assert_eq!(
        s.register_pull_time_exclusion(ACCOUNT, REGION, &exclusion(b, NOW + 2), 2).await.unwrap(),
        RegisterExclusionOutcome::Registered
    );
    assert_eq!(
        s.register_pull_time_exclusion(ACCOUNT, REGION, &exclusion(c, NOW + 3), 2).await.unwrap(),
        RegisterExclusionOutcome::LimitReached
    );
    assert_eq!(
        s.register_pull_time_exclusion(ACCOUNT, "eu-west-1", &exclusion(c, NOW + 3), 2).await.unwrap(),
        RegisterExclusionOutcome::Registered,
        "the limit is per registry"
    );
    let restarted = f.reopen().await;
    assert_eq!(restarted.pull_time_exclusions(ACCOUNT, REGION).await.unwrap(), vec![exclusion(b, NOW + 2), exclusion(a, NOW)]);
    assert!(restarted.deregister_pull_time_exclusion(ACCOUNT, REGION, a).await.unwrap());
    assert!(!restarted.deregister_pull_time_exclusion(ACCOUNT, REGION, a).await.unwrap(), "already gone");
    assert_eq!(restarted.pull_time_exclusions(ACCOUNT, REGION).await.unwrap(), vec![exclusion(b, NOW + 2)]);
    assert_eq!(restarted.pull_time_exclusions(ACCOUNT, "eu-west-1").await.unwrap(), vec![exclusion(c, NOW + 3)]);
}

/// Two nodes registering at once never pass the limit together.
pub async fn racing_exclusions_keep_the_limit(f: Fixture) {
    let other = f.second_node().await;
    let arns: Vec<String> = (0..8).map(|i| format!("arn:aws:iam::123456789012:user/u{i}")).collect();
    let registered = futures::future::join_all(arns.iter().enumerate().map(|(i, arn)| {
        let s = if i % 2 == 0 { f.store.clone() } else { other.clone() };
        let row = exclusion(arn, NOW);
        async move { s.register_pull_time_exclusion(ACCOUNT, REGION, &row, 5).await.expect("register") }
    }))
    .await;
    assert_eq!(registered.iter().filter(|o| **o == RegisterExclusionOutcome::Registered).count(), 5);
    assert_eq!(f.store.pull_time_exclusions(ACCOUNT, REGION).await.unwrap().len(), 5);
}
