//! Secrets Manager secrets: names unique per account and region, ARNs everywhere, updates and
//! deletes only against the revision read, listings in name order.

use super::*;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn secret(region: &str, name: &str) -> SecretRow {
    SecretRow {
        account: ACCOUNT.into(),
        region: region.into(),
        name: name.into(),
        arn: format!("arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-AbCdEf"),
        doc: format!(r#"{{"name":"{name}"}}"#),
        deletion_date: None,
        created_at: NOW,
        updated_at: NOW,
        revision: 0,
    }
}

pub async fn secrets_rows(f: Fixture) {
    let s = &f.store;
    let hub = secret(REGION, "ecr-pullthroughcache/hub");
    assert!(s.create_secret(&hub).await.unwrap());
    let mut again = secret(REGION, "ecr-pullthroughcache/hub");
    again.arn.push('x');
    assert!(!s.create_secret(&again).await.unwrap(), "the name is taken in the account and region");
    assert!(s.create_secret(&secret("eu-west-1", "ecr-pullthroughcache/hub")).await.unwrap(), "another region has its own names");
    for name in ["b", "a", "c/d"] {
        assert!(s.create_secret(&secret(REGION, name)).await.unwrap());
    }

    assert_eq!(s.secret_by_name(ACCOUNT, REGION, "ecr-pullthroughcache/hub").await.unwrap(), Some(hub.clone()), "reads back as written");
    assert_eq!(s.secret_by_arn(&hub.arn).await.unwrap(), Some(hub.clone()));
    assert_eq!(s.secret_by_name(ACCOUNT, REGION, "missing").await.unwrap(), None);
    assert_eq!(s.secret_by_arn(&again.arn).await.unwrap(), None);

    // Optimistic updates: the revision read, once.
    let mut changed = hub.clone();
    changed.doc = r#"{"v":2}"#.into();
    changed.deletion_date = Some(NOW + 7);
    changed.updated_at = NOW + 1;
    assert!(s.update_secret(&changed).await.unwrap());
    assert!(!s.update_secret(&changed).await.unwrap(), "a second writer of revision 0 loses");
    let read = s.secret_by_arn(&hub.arn).await.unwrap().unwrap();
    assert_eq!((read.doc.as_str(), read.deletion_date, read.updated_at, read.revision), (r#"{"v":2}"#, Some(NOW + 7), NOW + 1, 1));
    assert_eq!(read.created_at, NOW);

    // Paged in byte order, per account and region.
    let names = |rows: Vec<SecretRow>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(names(s.list_secrets(ACCOUNT, REGION, None, 10).await.unwrap()), strings(&["a", "b", "c/d", "ecr-pullthroughcache/hub"]));
    assert_eq!(names(s.list_secrets(ACCOUNT, REGION, None, 2).await.unwrap()), strings(&["a", "b"]));
    assert_eq!(names(s.list_secrets(ACCOUNT, REGION, Some("b"), 2).await.unwrap()), strings(&["c/d", "ecr-pullthroughcache/hub"]));
    assert_eq!(names(s.list_secrets(ACCOUNT, "eu-west-1", None, 10).await.unwrap()), strings(&["ecr-pullthroughcache/hub"]));

    // A delete against a stale revision (a restore happened meanwhile) keeps the secret.
    assert!(!s.delete_secret(&hub.arn, 0).await.unwrap());
    assert!(s.delete_secret(&hub.arn, 1).await.unwrap());
    assert_eq!(s.secret_by_arn(&hub.arn).await.unwrap(), None);
    assert!(s.create_secret(&again).await.unwrap(), "the name is free again, under a new ARN");
    let reopened = f.reopen().await;
    assert_eq!(reopened.secret_by_arn(&again.arn).await.unwrap().map(|r| r.name), Some("ecr-pullthroughcache/hub".to_string()));
}
