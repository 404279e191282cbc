//! The Secrets page in-process: create, new value, delete and restore by name, values never
//! rendered back, and the page refused to a user without a secretsmanager grant.

use super::*;

#[tokio::test]
async fn secrets_are_created_changed_deleted_and_restored_without_showing_values() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/secrets", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No secrets yet") && r.body.contains("Create secret") && r.body.contains(r#"href="/console/secrets""#));
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "ecr-pullthroughcache/hub"),
        ("description", "Docker Hub"),
        ("kind", "credentials"),
        ("username", "hubuser"),
        ("access_token", "tok-never-shown"),
    ];
    let r = h.post("/console/secrets", Some(&cookie), &form).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/console/secrets?done=created"), "{}", r.body);
    let creds = h.registry.pull_through_credentials(ACCOUNT, "ecr-pullthroughcache/hub").await.expect("read").expect("credentials");
    assert_eq!((creds.username.as_str(), creds.access_token.as_str()), ("hubuser", "tok-never-shown"), "ECR's JSON");
    let r = h.get("/console/secrets", Some(&cookie)).await;
    assert!(r.body.contains("ecr-pullthroughcache/hub") && r.body.contains("Docker Hub"), "{}", r.body);
    assert!(!r.body.contains("tok-never-shown") && !r.body.contains("hubuser"), "values are write-only");

    let start = r.body.find("arn:aws:secretsmanager:").expect("the row names the ARN");
    let arn = r.body[start..].split('"').next().expect("ARN").to_string();
    let r = h.get(&format!("/console/secrets/value?id={arn}"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains("tok-never-shown"));
    let form = [("csrf", csrf.as_str()), ("id", arn.as_str()), ("kind", "raw"), ("raw", "raw-never-shown")];
    let r = h.post("/console/secrets/value", Some(&cookie), &form).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/console/secrets?done=value"), "{}", r.body);
    assert!(!h.get("/console/secrets", Some(&cookie)).await.body.contains("raw-never-shown"));

    let form = [("csrf", csrf.as_str()), ("id", arn.as_str()), ("days", "3")];
    assert_eq!(h.post("/console/secrets/delete", Some(&cookie), &form).await.status, StatusCode::BAD_REQUEST, "7 to 30 days");
    let form = [("csrf", csrf.as_str()), ("id", arn.as_str()), ("days", "7")];
    let r = h.post("/console/secrets/delete", Some(&cookie), &form).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/console/secrets?done=deleted"));
    let r = h.get("/console/secrets", Some(&cookie)).await;
    assert!(r.body.contains("Scheduled") && r.body.contains("Restore"), "{}", r.body);
    let r = h.post("/console/secrets/restore", Some(&cookie), &[("csrf", csrf.as_str()), ("id", arn.as_str())]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/console/secrets?done=restored"));
    assert!(!h.get("/console/secrets", Some(&cookie)).await.body.contains("Scheduled"));

    let (id, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (viewer, viewer_csrf) = h.sign_in(&id, &secret).await;
    assert_eq!(h.get("/console/secrets", Some(&viewer)).await.status, StatusCode::FORBIDDEN);
    assert!(!h.get("/console/repositories", Some(&viewer)).await.body.contains(r#"href="/console/secrets""#), "no nav link");
    let form = [("csrf", viewer_csrf.as_str()), ("name", "mine"), ("kind", "raw"), ("raw", "x")];
    assert_eq!(h.post("/console/secrets", Some(&viewer), &form).await.status, StatusCode::FORBIDDEN);
}
