//! The console driven in-process: sign-in, sessions, CSRF, authorization, forms.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use berth_core::{Registry, RegistryConfig, RegistryRef, Repo, RepositoryName, SystemClock};
use berth_store::{FsBlobStore, SqliteMetadataStore};
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{router, ConsoleSettings};

const ACCOUNT: &str = "123456789012";
const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

struct Harness {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    /// The registry's store, to record what a scanner would (scan results with findings).
    meta: Arc<SqliteMetadataStore>,
    app: Router,
}

async fn harness() -> Harness {
    let dir =
        if std::path::Path::new("/dev/shm").is_dir() { tempfile::tempdir_in("/dev/shm") } else { tempfile::tempdir() }.expect("tempdir");
    let meta = Arc::new(SqliteMetadataStore::open(&dir.path().join("berth.db")).await.expect("db"));
    let blobs = FsBlobStore::open(dir.path()).await.expect("blobs");
    let config =
        RegistryConfig { default_registry: RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }, ..Default::default() };
    let registry = Arc::new(Registry::new(meta.clone(), Arc::new(blobs), Arc::new(SystemClock), config));
    registry.init_identity().await.expect("identity");
    registry.bootstrap_admin(Some((KEY.into(), SECRET.into()))).await.expect("admin");
    registry.install_key_service(berth_crypto::RootKey::from_hex(&"ab".repeat(32)).expect("root key"));
    registry.start_scanner(berth_core::scanning::ScanSettings {
        vulndb_dir: dir.path().join("vulndb"),
        workers: 1,
        timeout: std::time::Duration::from_secs(30),
    });
    let app = Router::new().nest("/console", router(registry.clone(), ConsoleSettings { tls: false }));
    Harness { _dir: dir, registry, meta, app }
}

struct Resp {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
    /// What the audit trail will record of the call (the request middleware reads these).
    facts: Option<berth_core::observe::CallFacts>,
    error: Option<berth_core::observe::CallError>,
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let facts = resp.extensions().get::<berth_core::observe::CallFacts>().cloned();
        let error = resp.extensions().get::<berth_core::observe::CallError>().cloned();
        let body = String::from_utf8_lossy(&resp.into_body().collect().await.expect("body").to_bytes()).into_owned();
        Resp { status, headers, body, facts, error }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Resp {
        let mut req = Request::get(path).header(header::HOST, "127.0.0.1:5000");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, format!("berth_console={c}"));
        }
        self.send(req.body(Body::empty()).expect("request")).await
    }

    /// A POST as a browser on the console's own page sends it (with `Origin`).
    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Resp {
        self.post_with(path, cookie, form, &[(header::ORIGIN, "http://127.0.0.1:5000")]).await
    }

    async fn post_with(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)], headers: &[(header::HeaderName, &str)]) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut req =
            Request::post(path).header(header::HOST, "127.0.0.1:5000").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, format!("berth_console={c}"));
        }
        self.send(req.body(Body::from(body)).expect("request")).await
    }

    /// Signs in with an access key; returns (cookie value, csrf token).
    async fn sign_in(&self, key: &str, secret: &str) -> (String, String) {
        let r = self.post("/console/signin", None, &[("method", "key"), ("access_key_id", key), ("secret_access_key", secret)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let set = r.headers.get(header::SET_COOKIE).expect("cookie").to_str().expect("ascii").to_string();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: no Secure attribute: {set}");
        let value = set.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_string()).expect("value");
        let csrf = self.registry.console_csrf_token(&value).expect("csrf");
        (value, csrf)
    }

    async fn user(&self, name: &str, policy: &str) -> (String, String) {
        let doc = berth_iam::policy::managed_policy(policy).expect("managed policy").to_string();
        let (_, id, secret) = self.registry.create_user(ACCOUNT, name, &[(policy.to_string(), doc)]).await.expect("user");
        (id, secret)
    }

    fn repo(name: &str) -> Repo {
        Repo::new(&RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }, RepositoryName::parse(name).expect("name"))
    }
}

fn location(r: &Resp) -> &str {
    r.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn pages_need_a_session() {
    let h = harness().await;
    let r = h.get("/console/repositories?q=app", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/console/signin?next=%2Fconsole%2Frepositories%3Fq%3Dapp");
    let r = h.get("/console/repositories", Some("b1.forged.value")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).contains("expired=1"));
    let r = h.get("/console/signin", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Access key ID") && r.body.contains("Console password"));
    assert!(r.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
}

#[tokio::test]
async fn sign_in_with_key_or_password_and_sign_out() {
    let h = harness().await;
    let r = h.post("/console/signin", None, &[("method", "key"), ("access_key_id", KEY), ("secret_access_key", "wrong")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("wrong"), "{}", r.body);
    assert!(!r.body.contains("value=\"wrong\""), "the secret is never echoed");

    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/repositories", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No repositories yet") && r.body.contains("Create repository"));

    h.registry.set_console_password(ACCOUNT, "admin", Some("correct horse battery")).await.expect("password");
    let form = [
        ("method", "password"),
        ("account", ACCOUNT),
        ("user", "admin"),
        ("password", "correct horse battery"),
        ("next", "/console/registry"),
    ];
    let r = h.post("/console/signin", None, &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/console/registry");
    let r = h.post("/console/signin", None, &[("method", "password"), ("account", ACCOUNT), ("user", "admin"), ("password", "nope")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Setting the password ended the key session (every session of the user); a new one signs out.
    assert!(!session_works(&h, &cookie).await);
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    // Sign-out needs the CSRF token too, and clears the cookie.
    assert_eq!(h.post("/console/signout", Some(&cookie), &[]).await.status, StatusCode::FORBIDDEN);
    let r = h.post("/console/signout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("Max-Age=0")));
}

/// Whether a console page answers with the session (200) or sends it to sign in again.
async fn session_works(h: &Harness, cookie: &str) -> bool {
    let r = h.get("/console/repositories", Some(cookie)).await;
    match r.status {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert!(location(&r).starts_with("/console/signin") && location(&r).contains("expired=1"), "{}", location(&r));
            false
        }
        other => panic!("{other}: {}", r.body),
    }
}

async fn sign_in_with_password(h: &Harness, user: &str, password: &str) -> Resp {
    h.post("/console/signin", None, &[("method", "password"), ("account", ACCOUNT), ("user", user), ("password", password)]).await
}

fn cookie_of(r: &Resp) -> String {
    let set = r.headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()).expect("cookie");
    set.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_string()).expect("value")
}

#[tokio::test]
async fn sign_out_ends_the_session_server_side() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let (other_browser, _) = h.sign_in(KEY, SECRET).await;
    let (id, secret) = h.user("reader", "AmazonEC2ContainerRegistryReadOnly").await;
    let (someone_else, _) = h.sign_in(&id, &secret).await;
    let copied = cookie.clone();
    assert!(session_works(&h, &copied).await);

    let r = h.post("/console/signout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!session_works(&h, &copied).await, "a copied cookie dies with sign-out");
    assert!(!session_works(&h, &other_browser).await, "sign-out ends every session of the user");
    assert!(session_works(&h, &someone_else).await, "other users stay signed in");
    let r = h.post("/console/repositories", Some(&copied), &[("csrf", &csrf), ("name", "after/signout")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/console/signin"), "{}", location(&r));
    assert!(!h.registry.repository_exists(&Harness::repo("after/signout")).await.expect("exists"));

    // Signing in again works, with a new session.
    let (again, _) = h.sign_in(KEY, SECRET).await;
    assert_ne!(again, cookie);
    assert!(session_works(&h, &again).await);
    assert!(!session_works(&h, &copied).await);
}

#[tokio::test]
async fn a_console_password_change_ends_every_session_of_the_user() {
    let h = harness().await;
    h.registry.set_console_password(ACCOUNT, "admin", Some("correct horse battery")).await.expect("password");
    let r = sign_in_with_password(&h, "admin", "correct horse battery").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let by_password = cookie_of(&r);
    let (by_key, _) = h.sign_in(KEY, SECRET).await;
    let (id, secret) = h.user("reader", "AmazonEC2ContainerRegistryReadOnly").await;
    let (someone_else, _) = h.sign_in(&id, &secret).await;
    assert!(session_works(&h, &by_password).await && session_works(&h, &by_key).await);

    h.registry.set_console_password(ACCOUNT, "admin", Some("a new password, longer")).await.expect("change");
    assert!(!session_works(&h, &by_password).await, "the old password's session ended");
    assert!(!session_works(&h, &by_key).await, "every session of the user ended");
    assert!(session_works(&h, &someone_else).await, "other users stay signed in");
    assert_eq!(sign_in_with_password(&h, "admin", "correct horse battery").await.status, StatusCode::UNAUTHORIZED);
    let r = sign_in_with_password(&h, "admin", "a new password, longer").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let fresh = cookie_of(&r);
    assert!(session_works(&h, &fresh).await);

    // Removing the password ends sessions too.
    h.registry.set_console_password(ACCOUNT, "admin", None).await.expect("remove");
    assert!(!session_works(&h, &fresh).await);
}

#[tokio::test]
async fn a_session_cannot_name_another_epoch() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let (epoch, token) = cookie.split_once('.').expect("e<epoch>.<token>");
    assert_eq!(epoch, "e0");
    h.post("/console/signout", Some(&cookie), &[("csrf", &csrf)]).await;
    // The MAC is bound to the epoch: the old token under the current epoch is not a session.
    for forged in [format!("e1.{token}"), format!("e01.{token}"), token.to_string(), format!("e-1.{token}")] {
        assert!(!session_works(&h, &forged).await, "{forged}");
    }
}

#[tokio::test]
async fn sign_in_from_another_origin_is_refused() {
    let h = harness().await;
    let form = [("method", "key"), ("access_key_id", KEY), ("secret_access_key", SECRET)];
    for (name, value) in [
        (header::ORIGIN, "http://evil.example"),
        (header::ORIGIN, "http://127.0.0.1:5001"),
        (header::ORIGIN, "null"),
        (header::REFERER, "https://evil.example/console/signin"),
        (header::REFERER, "http://127.0.0.1:5000@evil.example/"),
    ] {
        let r = h.post_with("/console/signin", None, &form, &[(name.clone(), value)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(r.headers.get(header::SET_COOKIE).is_none(), "{name}: {value}");
    }
    // A foreign Origin wins over a matching Referer.
    let both = [(header::ORIGIN, "http://evil.example"), (header::REFERER, "http://127.0.0.1:5000/console/signin")];
    assert_eq!(h.post_with("/console/signin", None, &form, &both).await.status, StatusCode::FORBIDDEN);
    for (name, value) in [(header::ORIGIN, "http://127.0.0.1:5000"), (header::REFERER, "http://127.0.0.1:5000/console/signin?next=x")] {
        let r = h.post_with("/console/signin", None, &form, &[(name.clone(), value)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{name}: {value}: {}", r.body);
    }
    // Scripts (no Origin, no Referer) may sign in.
    assert_eq!(h.post_with("/console/signin", None, &form, &[]).await.status, StatusCode::SEE_OTHER);
}

#[test]
fn same_origin_compares_host_and_port() {
    use crate::web::same_origin;
    let with = |v: &str| {
        let mut m = http::HeaderMap::new();
        m.insert(header::ORIGIN, v.parse().expect("header"));
        m
    };
    assert!(same_origin(&with("https://Registry.example"), "registry.example"));
    assert!(same_origin(&with("https://registry.example"), "registry.example:443"));
    assert!(same_origin(&with("http://registry.example:80"), "registry.example"));
    assert!(same_origin(&with("https://registry.example"), "registry.example"), "TLS ended at a proxy");
    assert!(!same_origin(&with("https://registry.example"), "registry.example:5000"));
    assert!(!same_origin(&with("https://registry.example.evil"), "registry.example"));
    assert!(!same_origin(&with("file://"), "registry.example"));
    assert!(same_origin(&http::HeaderMap::new(), "registry.example"));
}

#[tokio::test]
async fn create_repository_checks_csrf_and_shows_service_messages() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let form = [("name", "team/app"), ("mutability", "IMMUTABLE"), ("scan_on_push", "on"), ("encryption", "AES256")];
    let r = h.post("/console/repositories", Some(&cookie), &form).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF token: refused");
    let r = h.post("/console/repositories", Some(&cookie), &[("csrf", "0000"), form[0], form[1]]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "wrong CSRF token: refused");
    assert!(!h.registry.repository_exists(&Harness::repo("team/app")).await.expect("exists"));

    let mut with = vec![("csrf", csrf.as_str())];
    with.extend_from_slice(&form);
    with.extend_from_slice(&[("tag_key", "team"), ("tag_value", "platform"), ("filter", "")]);
    let r = h.post("/console/repositories", Some(&cookie), &with).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/console/repo/team/app/-/push?done=created");
    let row = h.registry.repository(&Harness::repo("team/app")).await.expect("created");
    assert_eq!(row.settings.tag_mutability.as_str(), "IMMUTABLE");
    assert!(row.settings.scan_on_push);
    assert_eq!(h.registry.repository_tags(&Harness::repo("team/app")).await.expect("tags"), vec![("team".into(), "platform".into())]);

    // The same messages as the API, on the form.
    let r = h.post("/console/repositories", Some(&cookie), &with).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body.contains("The repository with name &#39;team/app&#39; already exists") || r.body.contains("already exists"),
        "{}",
        r.body
    );
    let r = h.post("/console/repositories", Some(&cookie), &[("csrf", &csrf), ("name", "Team/App")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("must be 2-256 characters"), "{}", r.body);
    let bad = [("csrf", csrf.as_str()), ("name", "team/other"), ("mutability", "IMMUTABLE"), ("filter", "latest")];
    let r = h.post("/console/repositories", Some(&cookie), &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Exclusion filters apply only to the &quot;with exclusions&quot; settings"), "{}", r.body);
    assert!(!r.body.contains("imageTagMutabilityExclusionFilters"), "no API member names: {}", r.body);
    let bad = [("csrf", csrf.as_str()), ("name", "team/other"), ("encryption", "AES256"), ("kms_key", "arn:aws:kms:x")];
    let r = h.post("/console/repositories", Some(&cookie), &bad).await;
    assert!(r.body.contains("kmsKey can only be given"), "{}", r.body);

    // Pages of the new repository.
    for page in ["", "/-/push", "/-/permissions", "/-/settings", "/-/lifecycle"] {
        let r = h.get(&format!("/console/repo/team/app{page}"), Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{page}: {}", r.body);
    }
    let r = h.get("/console/repo/team/app/-/push", Some(&cookie)).await;
    assert!(r.body.contains(
        "aws ecr get-login-password --region us-east-1 --endpoint-url http://127.0.0.1:5000 | docker login --username AWS --password-stdin 127.0.0.1:5000"
    ));
    assert!(r.body.contains("docker push 127.0.0.1:5000/team/app:latest"));
    let r = h.get("/console/repositories?q=app", Some(&cookie)).await;
    assert!(r.body.contains("127.0.0.1:5000/team/app"), "{}", r.body);
    let r = h.get("/console/repositories?q=zzz", Some(&cookie)).await;
    assert!(r.body.contains("No repositories match"), "{}", r.body);
    assert_eq!(h.get("/console/repo/team/nope", Some(&cookie)).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn read_only_users_see_no_controls_and_are_refused() {
    let h = harness().await;
    let (admin, admin_csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.post("/console/repositories", Some(&admin), &[("csrf", &admin_csrf), ("name", "team/app")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (id, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (cookie, csrf) = h.sign_in(&id, &secret).await;

    let r = h.get("/console/repositories", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("team/app"));
    assert!(!r.body.contains("/console/repositories/new"), "no create control");
    let r = h.get("/console/repo/team/app/-/settings", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("Delete repository") && !r.body.contains("Save tag immutability"));
    let r = h.get("/console/repo/team/app/-/permissions", Some(&cookie)).await;
    assert!(!r.body.contains("Save policy"));

    // Forged requests with the user's own valid CSRF token: the service refuses them.
    let r = h.post("/console/repositories", Some(&cookie), &[("csrf", &csrf), ("name", "team/forged")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("You do not have permission for this (ecr:CreateRepository on the repository team/forged)"), "{}", r.body);
    assert!(!r.body.contains("not authorized to perform") && r.body.contains("Ask an administrator"), "plain words: {}", r.body);
    // Error pages keep the navigation and Sign out.
    let r = h.get("/console/repositories/new", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("Sign out") && r.body.contains("aria-label=\"Main\"") && r.body.contains("id=\"error\""), "{}", r.body);
    assert!(!r.body.contains("not authorized to perform") && !r.body.contains("denied:"), "{}", r.body);
    let r = h.get("/console/no-such-page", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("Sign out") && r.body.contains("There is no console page at this address."), "{}", r.body);
    assert!(!h.registry.repository_exists(&Harness::repo("team/forged")).await.expect("exists"));
    let r =
        h.post("/console/repo/team/app/-/delete", Some(&cookie), &[("csrf", &csrf), ("confirm_name", "team/app"), ("force", "on")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.registry.repository_exists(&Harness::repo("team/app")).await.expect("exists"));
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*"}]}"#;
    let r = h.post("/console/repo/team/app/-/permissions", Some(&cookie), &[("csrf", &csrf), ("policy", policy)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Another session's token is not this session's.
    let r = h.post("/console/repositories", Some(&cookie), &[("csrf", &admin_csrf), ("name", "team/forged")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("This form has expired or did not come from this console"), "{}", r.body);
    // No registry policy page for a read-only user.
    assert_eq!(h.get("/console/registry", Some(&cookie)).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn repository_policy_is_validated_by_the_service() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    h.post("/console/repositories", Some(&cookie), &[("csrf", &csrf), ("name", "team/app")]).await;
    let r = h.get("/console/repo/team/app/-/permissions?template=read-only-account", Some(&cookie)).await;
    assert!(r.body.contains("aws:PrincipalAccount") && r.body.contains(ACCOUNT), "{}", r.body);
    let bad = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Principal":"*","Action":"ecr:BatchGetImage"}]}"#;
    let r = h.post("/console/repo/team/app/-/permissions", Some(&cookie), &[("csrf", &csrf), ("policy", bad)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Invalid repository policy provided"), "{}", r.body);
    assert!(r.body.contains("Maybe"), "the rejected text stays in the editor");
    let good = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:root"},"Action":"ecr:BatchGetImage"}]}"#;
    let r = h.post("/console/repo/team/app/-/permissions", Some(&cookie), &[("csrf", &csrf), ("policy", good)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(h.registry.repository_policy(&Harness::repo("team/app")).await.expect("policy"), good);
    // Deleting asks first, showing the policy that would go; only the confirmed POST deletes.
    let r = h.post("/console/repo/team/app/-/permissions/delete", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Delete the repository policy?") && r.body.contains("210987654321"), "{}", r.body);
    assert!(r.body.contains("name=\"confirm\" value=\"yes\"") && r.body.contains("Cancel"), "{}", r.body);
    assert!(h.registry.repository_policy(&Harness::repo("team/app")).await.is_ok(), "nothing deleted yet");
    let r = h.post("/console/repo/team/app/-/permissions/delete", Some(&cookie), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h.registry.repository_policy(&Harness::repo("team/app")).await.is_err());
    let r = h.post("/console/repo/team/app/-/permissions/delete", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no policy: nothing to confirm");

    // Removing a resource tag asks first, naming its value.
    let r =
        h.post("/console/repo/team/app/-/settings/tags", Some(&cookie), &[("csrf", &csrf), ("key", "team"), ("value", "payments")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = h.post("/console/repo/team/app/-/settings/untag", Some(&cookie), &[("csrf", &csrf), ("key", "team")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Remove the tag team?") && r.body.contains("payments"), "{}", r.body);
    assert_eq!(h.registry.repository_tags(&Harness::repo("team/app")).await.expect("tags").len(), 1);
    let r = h.post("/console/repo/team/app/-/settings/untag", Some(&cookie), &[("csrf", &csrf), ("key", "team"), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h.registry.repository_tags(&Harness::repo("team/app")).await.expect("tags").is_empty());

    // The registry policy too.
    let registry = RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() };
    h.registry.set_registry_policy(&registry, good).await.expect("registry policy");
    let r = h.post("/console/registry/policy/delete", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Delete the registry policy?") && r.body.contains("210987654321"), "{}", r.body);
    assert!(h.registry.registry_policy(&registry).await.is_ok());
    let r = h.post("/console/registry/policy/delete", Some(&cookie), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h.registry.registry_policy(&registry).await.is_err());

    // Settings: tag immutability with exclusions, scanning, tags, delete.
    let r = h
        .post(
            "/console/repo/team/app/-/settings/mutability",
            Some(&cookie),
            &[("csrf", &csrf), ("mutability", "IMMUTABLE_WITH_EXCLUSION"), ("filter", "latest"), ("filter", "dev-*"), ("filter", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let row = h.registry.repository(&Harness::repo("team/app")).await.expect("row");
    assert_eq!(row.settings.tag_mutability.as_str(), "IMMUTABLE_WITH_EXCLUSION");
    let r = h
        .post("/console/repo/team/app/-/settings/mutability", Some(&cookie), &[("csrf", &csrf), ("mutability", "IMMUTABLE_WITH_EXCLUSION")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("need 1 to 5 exclusion filters: add a tag pattern"), "{}", r.body);
    let r = h.post("/console/repo/team/app/-/settings/tags", Some(&cookie), &[("csrf", &csrf), ("key", "aws:bad"), ("value", "x")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.post("/console/repo/team/app/-/delete", Some(&cookie), &[("csrf", &csrf), ("confirm_name", "team/ap")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.post("/console/repo/team/app/-/delete", Some(&cookie), &[("csrf", &csrf), ("confirm_name", "team/app")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!h.registry.repository_exists(&Harness::repo("team/app")).await.expect("exists"));
}

#[tokio::test]
async fn listing_pages_through_the_store() {
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    for i in 0..60 {
        let repo = Harness::repo(&format!("svc/r{i:03}"));
        h.registry.create_repository(&repo, Default::default()).await.expect("create");
    }
    h.registry.create_repository(&Harness::repo("zeta/app"), Default::default()).await.expect("create");
    let r = h.get("/console/repositories", Some(&cookie)).await;
    assert!(r.body.contains("svc/r000") && r.body.contains("svc/r024") && !r.body.contains("svc/r025"));
    assert!(r.body.contains("Page 1 of 3") && r.body.contains("page=2"), "next page link: {}", r.body);
    let r = h.get("/console/repositories?page=2", Some(&cookie)).await;
    assert!(r.body.contains("svc/r025") && !r.body.contains("svc/r024\"") && r.body.contains("Page 2 of 3"));
    let r = h.get("/console/repositories?q=zeta&mode=prefix", Some(&cookie)).await;
    assert!(r.body.contains("zeta/app") && !r.body.contains("svc/r0"));
    let r = h.get("/console/repositories?q=r05&per=50", Some(&cookie)).await;
    assert!(r.body.contains("svc/r059") && !r.body.contains("svc/r049"));
    let r = h.get("/console/repositories?sort=created", Some(&cookie)).await;
    assert!(r.body.contains("Page 1 of 3"), "{}", r.body);
}

/// Previous page and a page count in every order; no timing line.
#[tokio::test]
async fn repository_list_pages_back_in_every_order() {
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    for i in 0..60 {
        h.registry.create_repository(&Harness::repo(&format!("svc/r{i:03}")), Default::default()).await.expect("create");
    }
    let prev_link = |body: &str| -> Option<String> {
        let at = body.find("rel=\"prev\" href=\"")? + "rel=\"prev\" href=\"".len();
        Some(body[at..].split('"').next()?.replace("&amp;", "&"))
    };
    let first = h.get("/console/repositories", Some(&cookie)).await;
    assert!(prev_link(&first.body).is_none() && !first.body.contains("Listed in"), "{}", first.body);
    let second = h.get(&next_link(&first.body).expect("next"), Some(&cookie)).await;
    assert!(second.body.contains("svc/r025") && !second.body.contains("svc/r024\""), "{}", second.body);
    let third = h.get(&next_link(&second.body).expect("next"), Some(&cookie)).await;
    assert!(third.body.contains("svc/r050") && next_link(&third.body).is_none(), "{}", third.body);
    let back = h.get(&prev_link(&third.body).expect("previous"), Some(&cookie)).await;
    assert!(back.body.contains("svc/r025") && back.body.contains("svc/r049") && !back.body.contains("svc/r050"), "{}", back.body);
    let back = h.get(&prev_link(&back.body).expect("previous"), Some(&cookie)).await;
    assert!(back.body.contains("svc/r000") && prev_link(&back.body).is_none(), "{}", back.body);
    assert!(third.body.contains("Page 3 of 3 · 60 repositories"), "{}", third.body);

    let p2 = h.get("/console/repositories?sort=created&page=2", Some(&cookie)).await;
    assert!(p2.body.contains("Page 2 of 3"), "{}", p2.body);
    assert_eq!(prev_link(&p2.body).as_deref(), Some("/console/repositories?sort=created"));
    let p3 = h.get("/console/repositories?sort=created-asc&page=3", Some(&cookie)).await;
    assert_eq!(prev_link(&p3.body).as_deref(), Some("/console/repositories?sort=created-asc&page=2"));
}

#[test]
fn counts_use_plural_rules() {
    assert_eq!(crate::view::count(1, "day", "days"), "1 day");
    assert_eq!(crate::view::count(0, "image", "images"), "0 images");
    assert_eq!(crate::view::count(7, "day", "days"), "7 days");
}

/// A one-day rule reads "1 day", not "1 days".
#[tokio::test]
async fn lifecycle_rules_read_in_the_singular() {
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/one");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;
    h.registry.put_lifecycle_policy(&repo, policy).await.expect("policy");
    let r = h.get("/console/repo/team/one/-/lifecycle", Some(&cookie)).await;
    assert!(r.body.contains("pushed more than 1 day ago") && !r.body.contains("1 days"), "{}", r.body);
}

/// Nothing on the create form is cut off: the registry host is shown whole (it wraps, never an ellipsis).
#[tokio::test]
async fn create_form_shows_the_whole_registry_host() {
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/repositories/new", Some(&cookie)).await;
    assert!(r.body.contains("<span class=\"prefix\" aria-hidden=\"true\">127.0.0.1:5000/</span>"), "{}", r.body);
    let css = crate::assets::CSS;
    let prefix_rule = css.lines().find(|l| l.starts_with(".prefix {")).expect(".prefix rule");
    assert!(!prefix_rule.contains("ellipsis") && !prefix_rule.contains("nowrap") && prefix_rule.contains("break-all"), "{prefix_rule}");
}

/// Findings read in plain words (no `package_name` or `CVSS3_VECTOR`), and filter by severity.
#[tokio::test]
async fn findings_in_plain_words_with_a_severity_filter() {
    use berth_core::scanning::{ScanResult, StoredFinding};
    use berth_store::ScanStore;
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/scanned");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    let digest = push_image(&h.registry, &repo, "v1").await;
    let finding = |name: &str, severity: &str, package: &str, version: &str| StoredFinding {
        name: name.into(),
        description: format!("{name} in {package}"),
        uri: format!("https://example.test/{name}"),
        severity: severity.into(),
        attributes: vec![
            ("package_name".into(), package.into()),
            ("package_version".into(), version.into()),
            ("CVSS3_VECTOR".into(), "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into()),
        ],
        fixed_in: (severity == "HIGH").then(|| "3.0.7-r0".to_string()),
    };
    let result = ScanResult {
        findings: vec![finding("CVE-2024-0001", "HIGH", "openssl", "3.0.1-r0"), finding("CVE-2024-0002", "LOW", "zlib", "1.2.13-r0")],
        packages: 2,
        ..Default::default()
    };
    let row = berth_store::ImageScanRow {
        status: "COMPLETE".into(),
        description: Some("The scan was completed successfully.".into()),
        started_at: 1,
        completed_at: Some(2),
        vulndb_version: None,
        findings: Some(serde_json::to_string(&result).expect("json")),
    };
    h.meta.put_image_scan(repo.key(), &digest.parse().expect("digest"), &row).await.expect("scan");
    let page = format!("/console/repo/team/scanned/-/image/{digest}");
    let r = h.get(&page, Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for words in [
        "Installed version",
        "Fixed in",
        "<code>3.0.7-r0</code>",
        "No fix yet",
        "CVSS v3 vector",
        "openssl",
        "3.0.1-r0",
        "All (2)",
        "High (1)",
        "Low (1)",
    ] {
        assert!(r.body.contains(words), "{words}: {}", r.body);
    }
    assert!(!r.body.contains("package_name") && !r.body.contains("CVSS3_VECTOR"), "{}", r.body);
    let low = h.get(&format!("{page}?severity=low"), Some(&cookie)).await;
    assert!(low.body.contains("data-severity=\"LOW\"") && !low.body.contains("data-severity=\"HIGH\""), "{}", low.body);
    assert!(low.body.contains("aria-current=\"true\">Low (1)"), "{}", low.body);
    assert_eq!(crate::image::attribute_label("some_new_key"), "Some new key");
}

/// At phone width the tables keep their key columns: the others are marked secondary, which the
/// stylesheet hides under 640 px, and the tabs wrap.
#[tokio::test]
async fn phone_width_keeps_key_columns() {
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/phone");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    push_image(&h.registry, &repo, "v1").await;
    let r = h.get("/console/repositories", Some(&cookie)).await;
    assert!(r.body.contains("<th scope=\"col\" class=\"secondary\">Encryption</th>"), "{}", r.body);
    assert!(
        r.body.contains("<th scope=\"col\" aria-sort=\"ascending\" data-sort=\"name\">") && r.body.contains("<th scope=\"col\">URI</th>")
    );
    // The URI may break only at its slashes (the stylesheet gives it room for one line), beside its copy button.
    assert!(r.body.contains("<td class=\"uri\"><code>127.0.0.1:5000/<wbr>team/<wbr>phone</code> <button class=\"copy\""), "{}", r.body);
    let r = h.get("/console/repo/team/phone", Some(&cookie)).await;
    assert!(
        r.body.contains("<th scope=\"col\" class=\"secondary\">Last pulled</th>") && r.body.contains("<th scope=\"col\">Scan status</th>")
    );
    let css = crate::assets::CSS;
    let phone = &css[css.find("@media (max-width: 640px)").expect("phone rules")..];
    assert!(phone.contains("table.data .secondary { display: none; }") && phone.contains(".tabs { flex-wrap: wrap;"), "{phone}");
}

#[tokio::test]
async fn console_root_redirects() {
    let h = harness().await;
    let r = h.get("/console", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/console/repositories");
}

async fn put_blob(registry: &Registry, repo: &Repo, data: Vec<u8>) -> berth_core::Digest {
    let digest = berth_core::Digest::sha256_of(&data);
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(data)) });
    registry.upload_blob(repo, &digest, Box::pin(body)).await.expect("blob");
    digest
}

/// Pushes a one-layer image tagged `tag` (a distinct config per call); returns its digest.
async fn push_image(registry: &Registry, repo: &Repo, tag: &str) -> String {
    push_image_as(registry, repo, tag, true).await
}

/// [`push_image`], tagged or pushed by digest only (`seed` then only makes it distinct).
async fn push_image_as(registry: &Registry, repo: &Repo, tag: &str, tagged: bool) -> String {
    use berth_core::{Reference, Tag};
    let put = |data: Vec<u8>| put_blob(registry, repo, data);
    let layer = b"layer bytes".to_vec();
    let (layer_len, layer) = (layer.len(), put(layer).await);
    let config = format!(r#"{{"architecture":"amd64","os":"linux","tag":"{tag}"}}"#).into_bytes();
    let (config_len, config) = (config.len(), put(config).await);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":{layer_len}}}]}}"#
    );
    let reference = if tagged {
        Reference::Tag(Tag::parse(tag).expect("tag"))
    } else {
        Reference::Digest(berth_core::Digest::sha256_of(manifest.as_bytes()))
    };
    let stored =
        registry.put_manifest(repo, &reference, "application/vnd.oci.image.manifest.v1+json", manifest.into()).await.expect("manifest");
    stored.digest.to_string()
}

/// An index tagged `tag` listing `children` (digest, os/arch), pushed by tag; returns its digest.
async fn push_index(registry: &Registry, repo: &Repo, tag: &str, children: &[(&str, &str)]) -> String {
    use berth_core::{Digest, Reference, Tag};
    let mut entries = Vec::new();
    for (child, arch) in children {
        let d: Digest = child.parse().expect("digest");
        let size = registry.get_manifest(repo, &Reference::Digest(d), false).await.expect("child").content.len();
        entries.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":{size},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
        ));
    }
    let index =
        format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#, entries.join(","));
    let reference = Reference::Tag(Tag::parse(tag).expect("tag"));
    registry
        .put_manifest(repo, &reference, "application/vnd.oci.image.index.v1+json", index.into())
        .await
        .expect("index")
        .digest
        .to_string()
}

/// The `href` of the page's "Next page" link, unescaped.
fn next_link(body: &str) -> Option<String> {
    let at = body.find("rel=\"next\" href=\"")? + "rel=\"next\" href=\"".len();
    Some(body[at..].split('"').next()?.replace("&amp;", "&"))
}

/// The images table pages newest first across pages (not by digest), searches tags and
/// digests, and keeps an index's platform images under the index instead of as loose rows.
#[tokio::test]
async fn images_page_in_push_order_search_and_nested_platforms() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/many");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    for i in 0..105 {
        push_image(&h.registry, &repo, &format!("build-{i:03}")).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let first = h.get("/console/repo/team/many", Some(&cookie)).await;
    assert_eq!(first.status, StatusCode::OK);
    let pos = |body: &str, t: &str| body.find(&format!("<span class=\"tag\">{t}</span>"));
    assert!(pos(&first.body, "build-104") < pos(&first.body, "build-050") && pos(&first.body, "build-005").is_some(), "{}", first.body);
    assert!(pos(&first.body, "build-004").is_none(), "the oldest five are on page 2");
    let next = next_link(&first.body).expect("a next page");
    let second = h.get(&next, Some(&cookie)).await;
    assert_eq!(second.status, StatusCode::OK, "{next}: {}", second.body);
    for i in 0..5 {
        assert!(pos(&second.body, &format!("build-{i:03}")).is_some(), "{}", second.body);
    }
    assert!(pos(&second.body, "build-005").is_none() && next_link(&second.body).is_none());
    let found = h.get("/console/repo/team/many?q=BUILD-10", Some(&cookie)).await;
    assert!((100..105).all(|i| pos(&found.body, &format!("build-{i}")).is_some()) && pos(&found.body, "build-099").is_none());
    assert!(found.body.contains("Clear search"));

    let multi = Harness::repo("team/multi");
    h.registry.create_repository(&multi, Default::default()).await.expect("create");
    let amd = push_image_as(&h.registry, &multi, "amd", false).await;
    let arm = push_image_as(&h.registry, &multi, "arm", false).await;
    let index = push_index(&h.registry, &multi, "bookworm", &[(&amd, "amd64"), (&arm, "arm64")]).await;
    let r = h.get("/console/repo/team/multi", Some(&cookie)).await;
    assert!(r.body.contains(&format!("<tr data-digest=\"{index}\"")), "{}", r.body);
    assert!(!r.body.contains(&format!("<tr data-digest=\"{arm}\"")), "no loose row for a platform image: {}", r.body);
    assert!(r.body.contains(&format!("data-parent=\"{index}\"")) && r.body.contains("2 platform images"), "{}", r.body);
    assert!(r.body.contains(&format!("<li data-digest=\"{arm}\" data-relation=\"platform\"")) && r.body.contains("Platform linux/arm64"));
    let r = h.get("/console/repo/team/multi?status=untagged", Some(&cookie)).await;
    assert!(r.body.contains("No images match"), "{}", r.body);
    // The confirm page says what deleting a platform image would break.
    let r = h.post("/console/repo/team/multi/-/images/delete", Some(&cookie), &[("csrf", &csrf), ("image", &arm)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("Deleting it would break <strong>team/multi:bookworm</strong>") && r.body.contains("for linux/arm64"),
        "{}",
        r.body
    );
    // Deleting the index says what it leaves behind.
    let r = h.post("/console/repo/team/multi/-/images/delete", Some(&cookie), &[("csrf", &csrf), ("image", &index)]).await;
    assert!(r.body.contains("as they are not selected: 2 platform images of this index."), "{}", r.body);
    let both = [("csrf", csrf.as_str()), ("image", &index), ("image", &amd)];
    let r = h.post("/console/repo/team/multi/-/images/delete", Some(&cookie), &both).await;
    assert!(r.body.contains("as they are not selected: 1 platform image of this index."), "{}", r.body);
}

#[tokio::test]
async fn images_and_lifecycle_preview() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/app");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    let mut digests = Vec::new();
    for i in 0..12 {
        digests.push(push_image(&h.registry, &repo, &format!("prod-{i:02}")).await);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let r = h.get("/console/repo/team/app", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(digests.iter().all(|d| r.body.contains(&format!("data-digest=\"{d}\""))));
    let r = h.get(&format!("/console/repo/team/app/-/image/{}", digests[0]), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("prod-00") && r.body.contains("&quot;schemaVersion&quot;: 2"), "{}", r.body);
    // The manifest view keeps the pushed key order (a re-serialization would sort "config" first),
    // and the download is the stored bytes, unchanged.
    let (media, config) =
        (r.body.find("&quot;mediaType&quot;: &quot;application/vnd.oci.image.manifest"), r.body.find("&quot;config&quot;: {"));
    assert!(media.is_some() && media < config, "{}", r.body);
    let raw = h.get(&format!("/console/repo/team/app/-/image/{}/manifest", digests[0]), Some(&cookie)).await;
    assert_eq!(raw.status, StatusCode::OK);
    let stored =
        h.registry.get_manifest(&repo, &berth_core::Reference::Digest(digests[0].parse().expect("digest")), false).await.expect("m");
    assert_eq!(raw.body.as_bytes(), &stored.content[..]);
    assert_eq!(berth_core::Digest::sha256_of(raw.body.as_bytes()).to_string(), digests[0]);
    assert!(raw.headers[header::CONTENT_DISPOSITION].to_str().expect("ascii").starts_with("attachment"));
    assert_eq!(raw.headers[header::CONTENT_TYPE], "application/vnd.oci.image.manifest.v1+json");
    let r = h.get("/console/repositories", Some(&cookie)).await;
    assert!(r.body.contains("data-images=\"12\""), "{}", r.body);

    // Delete: a confirmation step first, then the deletion.
    let r = h.post("/console/repo/team/app/-/images/delete", Some(&cookie), &[("csrf", &csrf), ("image", &digests[11])]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Delete 1 image?") && r.body.contains(&digests[11]));
    assert!(h.registry.repository_exists(&repo).await.expect("exists"));
    let form = [("csrf", csrf.as_str()), ("image", &digests[11]), ("confirm", "yes")];
    let r = h.post("/console/repo/team/app/-/images/delete", Some(&cookie), &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = h.get("/console/repo/team/app", Some(&cookie)).await;
    assert!(!r.body.contains(&digests[11]) && r.body.contains(&digests[10]));

    // Scans: none yet; StartImageScan from the image page; a second one within 24 hours is refused.
    let image_page = format!("/console/repo/team/app/-/image/{}", digests[2]);
    let r = h.get(&image_page, Some(&cookie)).await;
    assert!(r.body.contains("This image has not been scanned") && r.body.contains("Scan now"), "{}", r.body);
    let r = h.post(&format!("{image_page}/scan"), Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = h.get(&image_page, Some(&cookie)).await;
    assert!(!r.body.contains("This image has not been scanned"), "{}", r.body);
    // The limit is said on the page, and no button offers what would be refused.
    assert!(r.body.contains("can be scanned once a day: the next scan can start after") && !r.body.contains("Scan now"), "{}", r.body);
    let r = h.post(&format!("{image_page}/scan"), Some(&cookie), &[("csrf", &csrf)]).await;
    assert!(r.status.is_client_error() && r.body.contains("scan quota"), "{}", r.body);

    // Archive and restore (UpdateImageStorageClass); the Archived filter lists archived images only.
    let archive = format!("/console/repo/team/app/-/image/{}/storage-class", digests[1]);
    let r = h.post(&archive, Some(&cookie), &[("csrf", &csrf), ("class", "ARCHIVE")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = h.get("/console/repo/team/app?status=archived", Some(&cookie)).await;
    assert!(r.body.contains(&digests[1]) && !r.body.contains(&digests[2]), "{}", r.body);
    let r = h.get(&format!("/console/repo/team/app/-/image/{}", digests[1]), Some(&cookie)).await;
    assert!(r.body.contains("Restore to standard") && r.body.contains("is archived"), "{}", r.body);
    let r = h.post(&archive, Some(&cookie), &[("csrf", &csrf), ("class", "STANDARD")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!h.get("/console/repo/team/app?status=archived", Some(&cookie)).await.body.contains(&digests[1]));

    // Lifecycle: seed 004's policy keeps the newest 10 prod images; the preview names the oldest.
    let policy = r#"{"rules":[
 {"rulePriority":1,"description":"Keep last 10 'prod' images","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}},
 {"rulePriority":2,"description":"Delete untagged images older than 7 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#;
    // The preview POST redirects to a GET of its result, so a reload does not post again.
    let r = h.post("/console/repo/team/app/-/lifecycle/preview", Some(&cookie), &[("csrf", &csrf), ("policy", policy)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/console/repo/team/app/-/lifecycle?preview=shown#lifecycle-preview");
    let r = h.get("/console/repo/team/app/-/lifecycle?preview=shown", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("1</strong> image would expire") && r.body.contains(">Preview</h2>"), "{}", r.body);
    assert!(
        r.body.contains("Keep last 10 &#39;prod&#39; images") || r.body.contains("Keep last 10 'prod' images"),
        "the previewed text is back in the editor"
    );
    assert!(r.body.contains(&format!("data-digest=\"{}\"", digests[0])), "{}", r.body);
    assert!(h.registry.lifecycle_policy(&repo).await.is_err(), "a preview saves nothing");
    let bad = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    let r = h.post("/console/repo/team/app/-/lifecycle", Some(&cookie), &[("csrf", &csrf), ("policy", bad)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("tagPrefixList") || r.body.contains("tagPatternList"), "{}", r.body);
    let r = h.post("/console/repo/team/app/-/lifecycle", Some(&cookie), &[("csrf", &csrf), ("policy", policy)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(h.registry.lifecycle_policy(&repo).await.expect("saved").text, policy);
    let r = h.get("/console/repo/team/app/-/lifecycle", Some(&cookie)).await;
    assert!(r.body.contains("Keep last 10") && r.body.contains("beyond the newest 10"), "{}", r.body);
    assert!(r.body.contains("pushed more than 7 days ago"), "{}", r.body);
    let r = h.post("/console/repo/team/app/-/lifecycle/delete", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Delete the lifecycle policy?") && r.body.contains("Keep last 10"), "{}", r.body);
    assert!(h.registry.lifecycle_policy(&repo).await.is_ok(), "nothing deleted yet");
    let r = h.post("/console/repo/team/app/-/lifecycle/delete", Some(&cookie), &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h.registry.lifecycle_policy(&repo).await.is_err());
}

/// Listing many repositories: paging, prefix and substring search, creation order. (The figures
/// for 10,000 repositories in the closing note came from this flow at that size.)
#[tokio::test]
async fn many_repositories_page_and_search() {
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    for i in 0..300 {
        let repo = Harness::repo(&format!("team{}/service-{i:05}", i % 5));
        h.registry.create_repository(&repo, Default::default()).await.expect("create");
    }
    let get = |path: &'static str| {
        let h = &h;
        let cookie = cookie.clone();
        async move {
            let r = h.get(path, Some(&cookie)).await;
            assert_eq!(r.status, StatusCode::OK, "{path}");
            r.body
        }
    };
    // Name order: the first page starts with team0's repositories and stops before team4's.
    let first = get("/console/repositories").await;
    assert!(first.contains("team0/service-00000") && !first.contains("team4/"), "{first}");
    let p11 = get("/console/repositories?page=11").await;
    assert!(p11.contains("team4/service-00054") && !p11.contains("team3/") && p11.contains("Page 11 of 12"), "page 11");
    let prefix = get("/console/repositories?q=team4%2F&mode=prefix").await;
    assert!(prefix.contains("team4/service-00004") && !prefix.contains("team3/"), "{prefix}");
    let contains = get("/console/repositories?q=service-0029").await;
    assert!(contains.contains("service-00295") && !contains.contains("service-00300") && !contains.contains("service-00280"));
    let none = get("/console/repositories?q=nomatch").await;
    assert!(!none.contains("/service-"), "{none}");
    let created = get("/console/repositories?sort=created").await;
    assert!(created.contains("/service-"), "{created}");
    let prefix_pages = get("/console/repositories?q=team4%2F&mode=prefix&sort=name-desc").await;
    assert!(prefix_pages.contains("Page 1 of 3 · 60 repositories") && prefix_pages.contains("team4/service-00299"), "{prefix_pages}");
}

/// Column headers sort (a click on the current one reverses it, `aria-sort` says which) and the
/// page count holds in each order.
#[tokio::test]
async fn repository_headers_sort_with_a_page_count() {
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    for i in 0..30 {
        h.registry.create_repository(&Harness::repo(&format!("svc/r{i:03}")), Default::default()).await.expect("create");
    }
    let header_link = |body: &str, column: &str| -> String {
        let at = body.find(&format!("data-sort=\"{column}\"")).expect("sortable header");
        let href = body[at..].find("href=\"").expect("header link") + at + 6;
        body[href..].split('"').next().expect("href").replace("&amp;", "&")
    };
    let first = h.get("/console/repositories", Some(&cookie)).await;
    assert!(first.body.contains(r#"aria-sort="ascending" data-sort="name""#), "{}", first.body);
    assert!(first.body.contains("Page 1 of 2 · 30 repositories"), "{}", first.body);
    let desc = header_link(&first.body, "name");
    assert_eq!(desc, "/console/repositories?sort=name-desc");
    let desc = h.get(&desc, Some(&cookie)).await;
    assert!(desc.body.contains(r#"aria-sort="descending" data-sort="name""#), "{}", desc.body);
    assert!(desc.body.contains("svc/r029") && !desc.body.contains("svc/r004\""), "{}", desc.body);
    let p2 = h.get(&next_link(&desc.body).expect("next"), Some(&cookie)).await;
    assert!(p2.body.contains("Page 2 of 2") && p2.body.contains("svc/r000") && !p2.body.contains("svc/r029\""), "{}", p2.body);
    assert_eq!(header_link(&first.body, "created"), "/console/repositories?sort=created");
    let created = h.get(&header_link(&first.body, "created"), Some(&cookie)).await;
    assert!(created.body.contains(r#"aria-sort="descending" data-sort="created""#) && created.body.contains("Page 1 of 2"));
    assert_eq!(header_link(&created.body, "created"), "/console/repositories?sort=created-asc");
}

/// The list's selection: View push commands goes to the page; Delete asks for the name and
/// posts to the repository's delete, which refuses a wrong name; ReadOnly users get no Delete.
#[tokio::test]
async fn repository_list_selection_pushes_and_deletes_with_confirmation() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    for name in ["team/app", "team/web"] {
        h.registry.create_repository(&Harness::repo(name), Default::default()).await.expect("create");
    }
    let list = h.get("/console/repositories", Some(&cookie)).await;
    assert!(list.body.contains(r#"name="repository" value="team/app" data-deletable"#), "{}", list.body);
    assert!(list.body.contains("View push commands") && list.body.contains(r#"value="delete""#));
    let push =
        h.post("/console/repositories/selected", Some(&cookie), &[("csrf", &csrf), ("repository", "team/app"), ("action", "push")]).await;
    assert_eq!(push.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&push), "/console/repo/team/app/-/push");
    let two = h
        .post(
            "/console/repositories/selected",
            Some(&cookie),
            &[("csrf", &csrf), ("repository", "team/app"), ("repository", "team/web"), ("action", "push")],
        )
        .await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
    assert!(two.body.contains("Select one repository"), "{}", two.body);
    let confirm =
        h.post("/console/repositories/selected", Some(&cookie), &[("csrf", &csrf), ("repository", "team/web"), ("action", "delete")]).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Delete the repository team/web?") && confirm.body.contains("confirm_name"), "{}", confirm.body);
    assert!(confirm.body.contains(r#"action="/console/repo/team/web/-/delete""#), "{}", confirm.body);
    assert!(h.registry.repository_exists(&Harness::repo("team/web")).await.expect("exists"), "the first POST deletes nothing");
    let wrong = h.post("/console/repo/team/web/-/delete", Some(&cookie), &[("csrf", &csrf), ("confirm_name", "team/app")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(h.registry.repository_exists(&Harness::repo("team/web")).await.expect("exists"));
    let done = h.post("/console/repo/team/web/-/delete", Some(&cookie), &[("csrf", &csrf), ("confirm_name", "team/web")]).await;
    assert_eq!(location(&done), "/console/repositories?done=repository-deleted");
    assert!(!h.registry.repository_exists(&Harness::repo("team/web")).await.expect("exists"));

    let (key, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (ro, ro_csrf) = h.sign_in(&key, &secret).await;
    let list = h.get("/console/repositories", Some(&ro)).await;
    assert!(list.body.contains("View push commands") && !list.body.contains(r#"value="delete""#), "{}", list.body);
    assert!(!list.body.contains("data-deletable"), "{}", list.body);
    let forged =
        h.post("/console/repositories/selected", Some(&ro), &[("csrf", &ro_csrf), ("repository", "team/app"), ("action", "delete")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

/// Deleting an image a multi-arch index lists: the confirm page warns and names the index, the
/// delete is refused naming it, and the image and index stay; with the index selected too, both go.
#[tokio::test]
async fn deleting_an_index_child_is_refused_and_named() {
    use berth_core::{Digest, Reference};
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/multi");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    let child = push_image(&h.registry, &repo, "amd64").await;
    let child_digest: Digest = child.parse().expect("digest");
    let child_size = h.registry.get_manifest(&repo, &Reference::Digest(child_digest), false).await.expect("child").content.len();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{child}","size":{child_size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
    );
    let index_digest = Digest::sha256_of(index.as_bytes());
    let reference = Reference::Digest(index_digest.clone());
    h.registry.put_manifest(&repo, &reference, "application/vnd.oci.image.index.v1+json", index.into()).await.expect("index");
    let index_digest = index_digest.to_string();

    let path = "/console/repo/team/multi/-/images/delete";
    let r = h.post(path, Some(&cookie), &[("csrf", &csrf), ("image", &child)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("class=\"error-text listed-by\"") && r.body.contains(&index_digest), "{}", r.body);
    assert!(r.body.contains("for linux/amd64") && r.body.contains("refuses to delete an image an index still lists"), "{}", r.body);

    let r = h.post(path, Some(&cookie), &[("csrf", &csrf), ("image", &child), ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("ImageReferencedByManifestList") && r.body.contains(&index_digest), "{}", r.body);
    let child_ref = Reference::Digest(child.parse().expect("digest"));
    assert!(h.registry.get_manifest(&repo, &child_ref, false).await.is_ok(), "the child stays");

    // Selected together: no warning, and the delete takes both.
    let both = [("csrf", csrf.as_str()), ("image", &child), ("image", &index_digest)];
    let r = h.post(path, Some(&cookie), &both).await;
    assert!(!r.body.contains("listed-by"), "{}", r.body);
    let r = h.post(path, Some(&cookie), &[both[0], both[1], both[2], ("confirm", "yes")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(h.registry.get_manifest(&repo, &child_ref, false).await.is_err());
}

#[test]
fn indent_json_keeps_the_text_and_its_key_order() {
    let raw = r#"{"z":1,"a":{"s":"a \"quoted\" {brace}, [x]: y","e":[],"o":{}},"n":[1.50,-2e3]}"#;
    let pretty = crate::view::indent_json(raw).expect("json");
    assert_eq!(
        pretty,
        "{\n  \"z\": 1,\n  \"a\": {\n    \"s\": \"a \\\"quoted\\\" {brace}, [x]: y\",\n    \"e\": [],\n    \"o\": {}\n  },\n  \"n\": [\n    1.50,\n    -2e3\n  ]\n}"
    );
    assert!(crate::view::indent_json("not json {").is_none());
}

/// A storage outage is shown as one (503, saying what to do), never as the caller's mistake.
#[test]
fn outages_are_503_with_a_plain_sentence() {
    use berth_core::RegistryError;
    use berth_store::StoreError;
    let full = RegistryError::Store(StoreError::io("writing", std::io::Error::from_raw_os_error(28)));
    assert_eq!(crate::web::status_of(&full), StatusCode::SERVICE_UNAVAILABLE);
    assert!(crate::web::message_of(&full).contains("disk is full"), "{}", crate::web::message_of(&full));
    let away = RegistryError::Store(StoreError::Unavailable { what: "the metadata database", detail: "no answer".into() });
    assert_eq!(crate::web::status_of(&away), StatusCode::SERVICE_UNAVAILABLE);
    assert!(crate::web::message_of(&away).contains("unreachable"));
    let broken = RegistryError::Store(StoreError::io("reading", std::io::Error::other("bad sector")));
    assert_eq!(crate::web::status_of(&broken), StatusCode::INTERNAL_SERVER_ERROR);
}

/// An SBOM artifact as the scanner pushes it: CycloneDX JSON as its one layer, `subject` the image.
async fn push_sbom(registry: &Registry, repo: &Repo, subject: &str) -> String {
    use berth_core::{Digest, Reference};
    let put = |data: Vec<u8>| put_blob(registry, repo, data);
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#.to_vec();
    let (sbom_len, sbom) = (sbom.len(), put(sbom).await);
    let config = put(b"{}".to_vec()).await;
    let subject_digest: Digest = subject.parse().expect("digest");
    let subject_len = registry.get_manifest(repo, &Reference::Digest(subject_digest), false).await.expect("subject").content.len();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cyclonedx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.cyclonedx+json","digest":"{sbom}","size":{sbom_len}}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":{subject_len}}}}}"#
    );
    let digest = Digest::sha256_of(manifest.as_bytes());
    registry
        .put_manifest(repo, &Reference::Digest(digest), "application/vnd.oci.image.manifest.v1+json", manifest.into())
        .await
        .expect("sbom manifest")
        .digest
        .to_string()
}

/// A scan row with the given HIGH/LOW finding counts.
fn scan_row(high: usize, low: usize) -> berth_store::ImageScanRow {
    use berth_core::scanning::{ScanResult, StoredFinding};
    let finding = |i: usize, severity: &str| StoredFinding {
        name: format!("CVE-2024-{i:04}"),
        description: String::new(),
        uri: String::new(),
        severity: severity.into(),
        attributes: vec![],
        fixed_in: None,
    };
    let findings = (0..high).map(|i| finding(i, "HIGH")).chain((0..low).map(|i| finding(100 + i, "LOW"))).collect();
    let result = ScanResult { findings, packages: 3, ..Default::default() };
    berth_store::ImageScanRow {
        status: "COMPLETE".into(),
        description: None,
        started_at: 1,
        completed_at: Some(2),
        vulndb_version: None,
        findings: Some(serde_json::to_string(&result).expect("json")),
    }
}

/// An index's page lists each platform's scan with a link to it and offers no scan of its own;
/// an SBOM's page offers its document and its subject, not `docker pull` or "Scan now".
#[tokio::test]
async fn index_page_scans_per_platform_and_sbom_page_suits_an_sbom() {
    use berth_store::ScanStore;
    let h = harness().await;
    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/multi");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    let amd = push_image_as(&h.registry, &repo, "amd", false).await;
    let arm = push_image_as(&h.registry, &repo, "arm", false).await;
    let index = push_index(&h.registry, &repo, "bookworm", &[(&amd, "amd64"), (&arm, "arm64")]).await;
    h.meta.put_image_scan(repo.key(), &amd.parse().expect("digest"), &scan_row(2, 1)).await.expect("scan");
    let r = h.get(&format!("/console/repo/team/multi/-/image/{index}"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let row_of = |d: &str| {
        let at = r.body.find(&format!("<tr data-digest=\"{d}\">")).unwrap_or_else(|| panic!("platform row {d}: {}", r.body));
        r.body[at..at + r.body[at..].find("</tr>").expect("row end")].to_string()
    };
    let amd_row = row_of(&amd);
    assert!(amd_row.contains("linux/amd64") && amd_row.contains("2 high") && amd_row.contains("1 low"), "{amd_row}");
    assert!(amd_row.contains(&format!("/console/repo/team/multi/-/image/{amd}#scan-findings")), "{amd_row}");
    assert!(row_of(&arm).contains("data-scan-status=\"NONE\""), "the arm64 image is not scanned");
    assert!(!r.body.contains("Scan now") && !r.body.contains("id=\"scan-findings\""), "an index offers no scan: {}", r.body);

    let subject = push_image(&h.registry, &repo, "app").await;
    let sbom = push_sbom(&h.registry, &repo, &subject).await;
    let r = h.get(&format!("/console/repo/team/multi/-/image/{sbom}"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains("docker pull") && !r.body.contains("Scan now"), "{}", r.body);
    assert!(
        r.body.contains("Download SBOM") && r.body.contains(&format!("href=\"/console/repo/team/multi/-/image/{subject}\"")),
        "{}",
        r.body
    );
    let doc = h.get(&format!("/console/repo/team/multi/-/image/{sbom}/sbom"), Some(&cookie)).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body, r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#);
    // An ordinary image keeps its pull commands and scanning.
    let r = h.get(&format!("/console/repo/team/multi/-/image/{subject}"), Some(&cookie)).await;
    assert!(r.body.contains("docker pull") && r.body.contains("id=\"scan-findings\"") && !r.body.contains("Download SBOM"));
    let none = h.get(&format!("/console/repo/team/multi/-/image/{subject}/sbom"), Some(&cookie)).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
}

/// The stored policy reads as a table of statements with the JSON editor on request; a policy
/// naming an action ECR does not have is saved only after the warning is confirmed; a ReadOnly
/// user gets the table and no editor.
#[tokio::test]
async fn policy_table_and_unknown_actions_need_a_confirm() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    h.post("/console/repositories", Some(&cookie), &[("csrf", &csrf), ("name", "team/app")]).await;
    let repo = Harness::repo("team/app");
    let nope = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:root"},"Action":["ecr:BatchGetImage","ecr:Nope"],"Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
    let r = h.post("/console/repo/team/app/-/permissions", Some(&cookie), &[("csrf", &csrf), ("policy", nope)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("id=\"unknown-actions\"") && r.body.contains("<code>ecr:Nope</code>") && r.body.contains("Save anyway"),
        "{}",
        r.body
    );
    assert!(r.body.contains(r#"name="acknowledged" value="ecr:Nope""#), "{}", r.body);
    assert!(h.registry.repository_policy(&repo).await.is_err(), "nothing saved before the confirm");
    // Confirming another unknown action than the one shown does not count.
    let r = h
        .post("/console/repo/team/app/-/permissions", Some(&cookie), &[("csrf", &csrf), ("policy", nope), ("acknowledged", "ecr:Other")])
        .await;
    assert!(r.body.contains("Save anyway") && h.registry.repository_policy(&repo).await.is_err());
    let r = h
        .post("/console/repo/team/app/-/permissions", Some(&cookie), &[("csrf", &csrf), ("policy", nope), ("acknowledged", "ecr:Nope")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(h.registry.repository_policy(&repo).await.expect("saved"), nope);

    let page = h.get("/console/repo/team/app/-/permissions", Some(&cookie)).await;
    let table = &page.body[page.body.find("id=\"policy-statements\"").expect("statements table")..];
    let row = &table[..table.find("</tr></tbody>").expect("row")];
    for words in [
        "<th scope=\"row\">Pull</th>",
        "<td>Allow</td>",
        "arn:aws:iam::210987654321:root",
        "<code>ecr:BatchGetImage</code>",
        "data-conditions=\"true\">Yes",
    ] {
        assert!(row.contains(words), "{words}: {row}");
    }
    assert!(
        page.body.contains("<details class=\"policy-edit\" id=\"policy-edit\"><summary class=\"btn\">Edit policy JSON"),
        "editing on request: {}",
        page.body
    );

    let (key, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (ro, _) = h.sign_in(&key, &secret).await;
    let page = h.get("/console/repo/team/app/-/permissions", Some(&ro)).await;
    assert!(
        page.body.contains("id=\"policy-statements\"") && !page.body.contains("Edit policy JSON") && !page.body.contains("Save policy"),
        "{}",
        page.body
    );
}

/// The lifecycle rule form adds its rule to the policy text in the editor (the rules there stay
/// as written), saves nothing, and the composed text test-runs; a ReadOnly user gets no form.
#[tokio::test]
async fn lifecycle_rule_form_adds_to_the_policy_then_test_runs() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let repo = Harness::repo("team/lc");
    h.registry.create_repository(&repo, Default::default()).await.expect("create");
    push_image(&h.registry, &repo, "prod-1").await;
    let existing = r#"{"rules":[{"rulePriority":1,"description":"keep 5","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;
    let page = h.get("/console/repo/team/lc/-/lifecycle", Some(&cookie)).await;
    assert!(page.body.contains("id=\"rule-form\"") && page.body.contains("Add rule to the policy"), "{}", page.body);
    let rule = |priority: &'static str| {
        [
            ("r_priority", priority),
            ("r_description", "old prod"),
            ("r_tag_status", "tagged"),
            ("r_tag_match", "prefix"),
            ("r_tags", "prod"),
            ("r_count_type", "sinceImagePushed"),
            ("r_count_number", "30"),
        ]
    };
    let mut form = vec![("csrf", csrf.as_str()), ("policy", existing)];
    form.extend(rule("2"));
    let r = h.post("/console/repo/team/lc/-/lifecycle/rule", Some(&cookie), &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Rule 2 was added below"), "{}", r.body);
    let at = r.body.find("id=\"lifecycle-policy\"").expect("editor");
    let text = &r.body[r.body[at..].find('>').expect("tag") + at + 1..];
    let text = text[..text.find("</textarea>").expect("end")].replace("&quot;", "\"");
    let first_rule = &existing[10..existing.len() - 2];
    assert!(text.contains(first_rule), "the existing rule stays as written: {text}");
    let composed: serde_json::Value = serde_json::from_str(&text).expect("composed JSON");
    assert_eq!(composed["rules"][1]["selection"]["tagPrefixList"], serde_json::json!(["prod"]));
    assert_eq!(composed["rules"][1]["description"], "old prod");
    assert!(
        r.body.contains("id=\"r_priority\" name=\"r_priority\" type=\"number\" min=\"1\" value=\"3\""),
        "next priority offered: {}",
        r.body
    );
    assert!(h.registry.lifecycle_policy(&repo).await.is_err(), "adding a rule saves nothing");
    // A rule the form cannot make is said next to the form, with the text kept.
    let mut bad = vec![("csrf", csrf.as_str()), ("policy", existing)];
    bad.extend(rule("0"));
    let r = h.post("/console/repo/team/lc/-/lifecycle/rule", Some(&cookie), &bad).await;
    assert!(r.body.contains("The rule priority must be a whole number"), "{}", r.body);
    // The composed text test-runs.
    let r = h.post("/console/repo/team/lc/-/lifecycle/preview", Some(&cookie), &[("csrf", &csrf), ("policy", &text)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = h.get("/console/repo/team/lc/-/lifecycle?preview=shown", Some(&cookie)).await;
    assert!(r.body.contains("id=\"preview-summary\"") && r.body.contains("0</strong> images would expire"), "{}", r.body);
    assert!(h.registry.lifecycle_policy(&repo).await.is_err(), "a test run saves nothing");

    let (key, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (ro, _) = h.sign_in(&key, &secret).await;
    let page = h.get("/console/repo/team/lc/-/lifecycle", Some(&ro)).await;
    assert!(!page.body.contains("id=\"rule-form\"") && !page.body.contains("Save lifecycle policy"), "{}", page.body);
}

/// Keys: the admin creates, disables, enables and schedules a key's deletion (confirmed first,
/// with its waiting period), then cancels it; a ReadOnly ECR user is offered no Keys page and
/// a forged create is refused.
#[tokio::test]
async fn keys_page_manages_kms_keys_for_those_allowed() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/keys", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("No keys yet"), "{}", r.body);
    assert!(r.body.contains(r#"href="/console/keys""#), "the nav offers Keys");
    let r = h.post("/console/keys", Some(&cookie), &[("csrf", &csrf), ("description", "ci"), ("spec", "SYMMETRIC_DEFAULT")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let admin = berth_core::auth::Principal {
        arn: format!("arn:aws:iam::{ACCOUNT}:user/admin"),
        account: ACCOUNT.into(),
        access_key_id: KEY.into(),
        region: None,
        source_ip: None,
        secure_transport: false,
    };
    let (keys, _) = h.registry.kms_list_keys(&admin, None, 10).await.expect("list");
    assert_eq!(keys.len(), 1);
    let id = keys[0].key_id.clone();
    assert_eq!(keys[0].doc.description, "ci");
    let new_repo = h.get("/console/repositories/new", Some(&cookie)).await;
    assert!(new_repo.body.contains("AWS managed key (alias/aws/ecr)"), "the create form picks keys");
    assert!(new_repo.body.contains(&format!("ci ({})", keys[0].key_id)), "{}", new_repo.body);

    let act = |op: &'static str| [("csrf", csrf.clone()), ("key_id", id.clone()), ("op", op.to_string())];
    let form = |a: &[(&'static str, String); 3]| a.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let post = |f: Vec<(&'static str, String)>| {
        let h = &h;
        let cookie = cookie.clone();
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.post("/console/keys/action", Some(&cookie), &pairs).await
        }
    };
    assert_eq!(post(form(&act("disable"))).await.status, StatusCode::SEE_OTHER);
    assert_eq!(h.registry.kms_describe_key(&admin, &id).await.expect("key").doc.state, berth_core::kms::KeyState::Disabled);
    assert_eq!(post(form(&act("enable"))).await.status, StatusCode::SEE_OTHER);
    let confirm = post(form(&act("schedule"))).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("can never be decrypted again"), "{}", confirm.body);
    assert_eq!(
        h.registry.kms_describe_key(&admin, &id).await.expect("key").doc.state,
        berth_core::kms::KeyState::Enabled,
        "not before confirming"
    );
    let mut confirmed = form(&act("schedule"));
    confirmed.push(("confirm", "yes".into()));
    confirmed.push(("days", "7".into()));
    assert_eq!(post(confirmed).await.status, StatusCode::SEE_OTHER);
    let key = h.registry.kms_describe_key(&admin, &id).await.expect("key");
    assert_eq!((key.doc.state, key.doc.pending_window_days), (berth_core::kms::KeyState::PendingDeletion, Some(7)));
    assert!(h.get("/console/keys", Some(&cookie)).await.body.contains("Cancel deletion"));
    assert_eq!(post(form(&act("cancel"))).await.status, StatusCode::SEE_OTHER);

    let (rid, rsecret) = h.user("keyless", "AmazonEC2ContainerRegistryReadOnly").await;
    let (rcookie, rcsrf) = h.sign_in(&rid, &rsecret).await;
    let page = h.get("/console/repositories", Some(&rcookie)).await;
    assert!(!page.body.contains(r#"href="/console/keys""#), "no Keys link without kms:ListKeys");
    let forged = h.post("/console/keys", Some(&rcookie), &[("csrf", &rcsrf), ("spec", "SYMMETRIC_DEFAULT")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

// ---- registry settings ----

fn scope() -> RegistryRef {
    RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }
}

/// A user whose only permissions are `actions` on every resource.
async fn user_allowed(h: &Harness, name: &str, actions: &[&str]) -> (String, String) {
    let doc =
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}).to_string();
    let (_, id, secret) = h.registry.create_user(ACCOUNT, name, &[(format!("{name}-policy"), doc)]).await.expect("user");
    (id, secret)
}

async fn templates_of(h: &Harness) -> Vec<berth_core::templates::Template> {
    h.registry.describe_repository_creation_templates(&scope(), &[], None, 100).await.expect("templates").templates
}

const TEMPLATE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":["ecr:BatchGetImage"]}]}"#;
const TEMPLATE_LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;

#[tokio::test]
async fn creation_templates_are_listed_created_edited_and_deleted() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/registry/settings", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(r#"href="/console/registry/settings" aria-current="page""#), "the navigation links the page");
    assert!(r.body.contains("Repository creation templates") && r.body.contains("No repository creation templates"), "{}", r.body);
    assert!(r.body.contains(r#"href="/console/registry/templates/new""#));
    let r = h.get("/console/registry/templates/new", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    for text in ["Applied for", "CREATE_ON_PUSH", "REPLICATION", "PULL_THROUGH_CACHE", "Image tag mutability", "Encryption type"] {
        assert!(r.body.contains(text), "{text}: {}", r.body);
    }

    let form = [
        ("prefix", "prod"),
        ("applied_for", "CREATE_ON_PUSH"),
        ("applied_for", "REPLICATION"),
        ("description", "production repositories"),
        ("mutability", "IMMUTABLE_WITH_EXCLUSION"),
        ("filter", "latest"),
        ("encryption", "AES256"),
        ("kms_key", ""),
        ("tag_key", "team"),
        ("tag_value", "platform"),
        ("tag_key", ""),
        ("tag_value", ""),
        ("repository_policy", TEMPLATE_POLICY),
        ("lifecycle_policy", TEMPLATE_LIFECYCLE),
        ("custom_role_arn", ""),
    ];
    assert_eq!(h.post("/console/registry/templates", Some(&cookie), &form).await.status, StatusCode::FORBIDDEN, "no CSRF token");
    assert!(templates_of(&h).await.is_empty());
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut v = vec![("csrf", csrf.as_str())];
        v.extend_from_slice(extra);
        v
    };
    let r = h.post("/console/registry/templates", Some(&cookie), &with(&form)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/console/registry/settings?done=template-created#templates");
    let t = templates_of(&h).await.pop().expect("created");
    assert_eq!(t.prefix, "prod");
    assert_eq!(t.applied_for.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["CREATE_ON_PUSH", "REPLICATION"]);
    assert_eq!(t.description.as_deref(), Some("production repositories"));
    assert_eq!(t.tag_mutability.as_str(), "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(t.exclusion_filters.iter().map(|f| f.filter.as_str()).collect::<Vec<_>>(), ["latest"]);
    assert_eq!(t.resource_tags, vec![("team".to_string(), "platform".to_string())]);
    assert_eq!(t.repository_policy.as_deref(), Some(TEMPLATE_POLICY));
    assert_eq!(t.lifecycle_policy.as_deref(), Some(TEMPLATE_LIFECYCLE));
    assert_eq!(t.custom_role_arn, None);

    let r = h.get("/console/registry/settings?done=template-created", Some(&cookie)).await;
    assert!(r.body.contains("Repository creation template created."), "{}", r.body);
    assert!(r.body.contains(r#"data-prefix="prod""#) && r.body.contains("prod/") && r.body.contains("production repositories"));
    assert!(r.body.contains(r#"href="/console/registry/templates/edit?prefix=prod""#), "{}", r.body);

    // Refusals in ECR's words, the form kept, nothing stored.
    let bad_prefix = [("prefix", "Prod Apps"), ("applied_for", "CREATE_ON_PUSH"), ("description", "kept")];
    let r = h.post("/console/registry/templates", Some(&cookie), &with(&bad_prefix)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Invalid parameter at 'prefix' failed to satisfy constraint"), "{}", r.body);
    assert!(r.body.contains(r#"value="Prod Apps""#) && r.body.contains(r#"value="kept""#), "the form is shown again: {}", r.body);
    let r = h.post("/console/registry/templates", Some(&cookie), &with(&[("prefix", "dev")])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Invalid parameter at 'appliedFor'"), "{}", r.body);
    let bad_lifecycle = [("prefix", "dev"), ("applied_for", "CREATE_ON_PUSH"), ("lifecycle_policy", r#"{"rules":[]}"#)];
    assert_eq!(h.post("/console/registry/templates", Some(&cookie), &with(&bad_lifecycle)).await.status, StatusCode::BAD_REQUEST);
    let r = h.post("/console/registry/templates", Some(&cookie), &with(&form)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("The repository creation template with prefix 'prod' already exists"), "{}", r.body);
    assert_eq!(templates_of(&h).await.len(), 1);

    // Edit: the stored values in the form; a save replaces them (an emptied policy is removed).
    let r = h.get("/console/registry/templates/edit?prefix=prod", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(r#"value="production repositories""#) && r.body.contains("pull") && r.body.contains(r#"value="latest""#));
    assert!(r.body.contains(r#"value="IMMUTABLE_WITH_EXCLUSION" checked"#), "{}", r.body);
    let edit = [("prefix", "prod"), ("applied_for", "PULL_THROUGH_CACHE"), ("description", "prod"), ("mutability", "MUTABLE")];
    let r = h.post("/console/registry/templates/update", Some(&cookie), &with(&edit)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let t = templates_of(&h).await.pop().expect("kept");
    assert_eq!((t.description.as_deref(), t.tag_mutability.as_str()), (Some("prod"), "MUTABLE"));
    assert_eq!(t.applied_for.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["PULL_THROUGH_CACHE"]);
    assert!(t.repository_policy.is_none() && t.lifecycle_policy.is_none() && t.resource_tags.is_empty());
    let bad = [("prefix", "prod"), ("applied_for", "PULL_THROUGH_CACHE"), ("mutability", "MUTABLE"), ("filter", "latest")];
    let r = h.post("/console/registry/templates/update", Some(&cookie), &with(&bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Exclusion filters apply only to the &quot;with exclusions&quot; settings"), "{}", r.body);
    assert_eq!(templates_of(&h).await.pop().expect("kept").tag_mutability.as_str(), "MUTABLE");
    assert_eq!(h.get("/console/registry/templates/edit?prefix=nothing", Some(&cookie)).await.status, StatusCode::NOT_FOUND);

    // Delete confirms first.
    let r = h.post("/console/registry/templates/delete", Some(&cookie), &with(&[("prefix", "prod")])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Delete the repository creation template prod/?") && r.body.contains(r#"name="confirm" value="yes""#));
    assert_eq!(templates_of(&h).await.len(), 1, "not before confirming");
    let r = h.post("/console/registry/templates/delete", Some(&cookie), &with(&[("prefix", "prod"), ("confirm", "yes")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(templates_of(&h).await.is_empty());
    let r = h.post("/console/registry/templates/delete", Some(&cookie), &with(&[("prefix", "prod"), ("confirm", "yes")])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("The repository creation template with prefix 'prod' does not exist"), "{}", r.body);
}

#[tokio::test]
async fn account_settings_and_exclusions_are_edited_on_the_settings_page() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/registry/settings", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    for (name, value) in [("BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE"), ("REGISTRY_POLICY_SCOPE", "V2"), ("BLOB_MOUNTING", "ENABLED")] {
        assert!(r.body.contains(&format!(r#"data-setting="{name}" data-value="{value}""#)), "{name}: {}", r.body);
    }
    assert!(r.body.contains("No exclusions"));

    let put = [("name", "BLOB_MOUNTING"), ("value", "DISABLED")];
    assert_eq!(h.post("/console/registry/settings/account", Some(&cookie), &put).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.registry.account_setting(&scope(), "BLOB_MOUNTING").await.expect("get"), "ENABLED");
    let r = h.post("/console/registry/settings/account", Some(&cookie), &[("csrf", &csrf), put[0], put[1]]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(h.registry.account_setting(&scope(), "BLOB_MOUNTING").await.expect("get"), "DISABLED");
    let r = h.get("/console/registry/settings?done=setting-saved", Some(&cookie)).await;
    assert!(r.body.contains(r#"data-setting="BLOB_MOUNTING" data-value="DISABLED""#) && r.body.contains("Account setting saved."));

    let r = h
        .post("/console/registry/settings/account", Some(&cookie), &[("csrf", &csrf), ("name", "REGISTRY_POLICY_SCOPE"), ("value", "V3")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Member must be one of [V1, V2] for REGISTRY_POLICY_SCOPE"), "{}", r.body);
    assert_eq!(h.registry.account_setting(&scope(), "REGISTRY_POLICY_SCOPE").await.expect("get"), "V2");
    let r = h.post("/console/registry/settings/account", Some(&cookie), &[("csrf", &csrf), ("name", "NO_SUCH"), ("value", "V2")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Member must satisfy enum value set"), "{}", r.body);

    // Every value the page offers is one the service takes.
    for setting in crate::registry_settings::ACCOUNT_SETTINGS {
        for (value, _) in setting.values {
            h.registry.put_account_setting(&scope(), setting.name, value).await.expect("an offered value is accepted");
        }
    }

    let scanner = format!("arn:aws:iam::{ACCOUNT}:role/scanner");
    let r = h.post("/console/registry/settings/exclusions", Some(&cookie), &[("csrf", &csrf), ("principal_arn", &scanner)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let listed = || async { h.registry.pull_time_exclusions(&scope(), None, 100).await.expect("list").principal_arns };
    assert_eq!(listed().await, vec![scanner.clone()]);
    let r = h.get("/console/registry/settings", Some(&cookie)).await;
    assert!(r.body.contains(&format!(r#"data-principal="{scanner}""#)), "{}", r.body);
    let r = h.post("/console/registry/settings/exclusions", Some(&cookie), &[("csrf", &csrf), ("principal_arn", "scanner")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Invalid parameter at 'principalArn' failed to satisfy constraint"), "{}", r.body);
    assert!(r.body.contains(r#"value="scanner""#), "what was typed stays: {}", r.body);
    let r = h.post("/console/registry/settings/exclusions", Some(&cookie), &[("csrf", &csrf), ("principal_arn", &scanner)]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("is already excluded from pull time updates"), "{}", r.body);
    assert_eq!(listed().await, vec![scanner.clone()]);

    let r = h.post("/console/registry/settings/exclusions/delete", Some(&cookie), &[("csrf", &csrf), ("principal_arn", &scanner)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Remove the pull time update exclusion?"), "{}", r.body);
    assert_eq!(listed().await.len(), 1, "not before confirming");
    let form = [("csrf", csrf.as_str()), ("principal_arn", scanner.as_str()), ("confirm", "yes")];
    assert_eq!(h.post("/console/registry/settings/exclusions/delete", Some(&cookie), &form).await.status, StatusCode::SEE_OTHER);
    assert!(listed().await.is_empty());
    let r = h.post("/console/registry/settings/exclusions/delete", Some(&cookie), &form).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn registry_settings_need_the_ecr_actions() {
    let h = harness().await;
    let (id, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (cookie, csrf) = h.sign_in(&id, &secret).await;
    let r = h.get("/console/repositories", Some(&cookie)).await;
    assert!(!r.body.contains(r#"href="/console/registry/settings""#), "no link without the actions");
    let r = h.get("/console/registry/settings", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("You do not have permission for this (ecr:DescribeRepositoryCreationTemplates)"), "{}", r.body);
    let posts: [(&str, &[(&str, &str)]); 4] = [
        ("/console/registry/templates", &[("prefix", "prod"), ("applied_for", "CREATE_ON_PUSH")]),
        ("/console/registry/settings/account", &[("name", "BLOB_MOUNTING"), ("value", "DISABLED")]),
        ("/console/registry/settings/exclusions", &[("principal_arn", "arn:aws:iam::123456789012:role/x")]),
        ("/console/registry/templates/delete", &[("prefix", "prod"), ("confirm", "yes")]),
    ];
    for (path, fields) in posts {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let r = h.post(path, Some(&cookie), &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
    }
    assert!(templates_of(&h).await.is_empty());
    assert_eq!(h.registry.account_setting(&scope(), "BLOB_MOUNTING").await.expect("get"), "ENABLED");
    assert!(h.registry.pull_time_exclusions(&scope(), None, 10).await.expect("list").principal_arns.is_empty());

    // Reading without changing: values shown, no controls, and the server refuses changes anyway.
    let readers = ["ecr:DescribeRepositoryCreationTemplates", "ecr:GetAccountSetting", "ecr:ListPullTimeUpdateExclusions"];
    let (id, secret) = user_allowed(&h, "auditor", &readers).await;
    let (cookie, csrf) = h.sign_in(&id, &secret).await;
    h.registry
        .create_repository_creation_template(
            &scope(),
            "ROOT",
            berth_core::templates::TemplateInput { applied_for: Some(vec!["CREATE_ON_PUSH".into()]), ..Default::default() },
        )
        .await
        .expect("template");
    let r = h.get("/console/registry/settings", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(r#"href="/console/registry/settings""#));
    assert!(r.body.contains(r#"data-prefix="ROOT""#) && r.body.contains(r#"data-setting="BLOB_MOUNTING" data-value="ENABLED""#));
    for control in ["Create template", "/console/registry/templates/edit", "Delete", "<select", "Add exclusion"] {
        assert!(!r.body.contains(control), "{control} offered: {}", r.body);
    }
    let r = h
        .post("/console/registry/settings/account", Some(&cookie), &[("csrf", &csrf), ("name", "BLOB_MOUNTING"), ("value", "DISABLED")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("(ecr:PutAccountSetting)"), "{}", r.body);
    assert_eq!(h.get("/console/registry/templates/new", Some(&cookie)).await.status, StatusCode::FORBIDDEN);
}

async fn replication_of(h: &Harness) -> berth_core::replication::ReplicationConfiguration {
    h.registry.replication_configuration(&scope()).await.expect("configuration")
}

/// The `version` field of the page's replication forms.
fn replication_version(body: &str) -> String {
    let at = body.find(r#"name="version" value=""#).expect("a replication form") + r#"name="version" value=""#.len();
    body[at..].split('"').next().expect("value").to_string()
}

#[tokio::test]
async fn replication_rules_are_added_and_removed_step_by_step() {
    use berth_core::replication::{ReplicationDestination, RepositoryFilter};
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/registry/settings", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Replication rules") && r.body.contains("No replication rules"), "{}", r.body);
    let v = replication_version(&r.body);
    let west = || ReplicationDestination { region: "us-west-2".into(), registry_id: ACCOUNT.into() };

    let rule = [("version", v.as_str()), ("rule", "0"), ("region", "us-west-2"), ("registry_id", ACCOUNT), ("filter", "prod/")];
    assert_eq!(h.post("/console/registry/replication/rule", Some(&cookie), &rule).await.status, StatusCode::FORBIDDEN, "no CSRF token");
    assert!(replication_of(&h).await.rules.is_empty());
    let with = |fields: &[(&'static str, &str)]| {
        let mut f: Vec<(&str, String)> = vec![("csrf", csrf.clone())];
        f.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    let post = |path: &'static str, f: Vec<(&'static str, String)>| {
        let (h, cookie) = (&h, cookie.clone());
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.post(path, Some(&cookie), &pairs).await
        }
    };
    let r = post("/console/registry/replication/rule", with(&rule)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(location(&r), "/console/registry/settings?done=replication-rule-added#replication");
    let config = replication_of(&h).await;
    assert_eq!(config.rules.len(), 1);
    assert_eq!(config.rules[0].destinations, vec![west()]);
    assert_eq!(config.rules[0].repository_filters, vec![RepositoryFilter { filter: "prod/".into(), filter_type: "PREFIX_MATCH".into() }]);

    // The form drawn from the old configuration is refused: its positions may name other entries.
    let r = post("/console/registry/replication/rule", with(&rule)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("The replication configuration changed since this page was loaded"), "{}", r.body);
    assert_eq!(replication_of(&h).await.rules.len(), 1);

    let r = h.get("/console/registry/settings", Some(&cookie)).await;
    assert!(r.body.contains(r#"data-rule="1""#) && r.body.contains(&format!(r#"data-destination="us-west-2/{ACCOUNT}""#)));
    assert!(r.body.contains(r#"data-filter="prod/""#) && r.body.contains("PREFIX_MATCH"));
    let v = replication_version(&r.body);
    let dest = [("version", v.as_str()), ("rule", "0"), ("region", "eu-west-1"), ("registry_id", ACCOUNT)];
    assert_eq!(post("/console/registry/replication/destination", with(&dest)).await.status, StatusCode::SEE_OTHER);
    let v = replication_version(&h.get("/console/registry/settings", Some(&cookie)).await.body);
    let filter = [("version", v.as_str()), ("rule", "0"), ("filter", "team-a")];
    assert_eq!(post("/console/registry/replication/filter", with(&filter)).await.status, StatusCode::SEE_OTHER);
    let config = replication_of(&h).await;
    assert_eq!(config.rules[0].destinations.len(), 2);
    assert_eq!(config.rules[0].repository_filters.iter().map(|f| f.filter.as_str()).collect::<Vec<_>>(), ["prod/", "team-a"]);

    // The service's refusals, in its words, and nothing stored.
    let v = replication_version(&h.get("/console/registry/settings", Some(&cookie)).await.body);
    let same = [("version", v.as_str()), ("rule", "0"), ("region", "us-east-1"), ("registry_id", ACCOUNT)];
    let r = post("/console/registry/replication/destination", with(&same)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Replication destination cannot be the same as the source registry"), "{}", r.body);
    assert!(r.body.contains(r#"value="us-east-1""#), "what was typed stays: {}", r.body);
    let bad = [("version", v.as_str()), ("rule", "0"), ("filter", "Prod")];
    let r = post("/console/registry/replication/filter", with(&bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Invalid parameter at 'replicationConfiguration.rules.1.repositoryFilters'"), "{}", r.body);
    assert_eq!(replication_of(&h).await, config);

    // Removals confirm first; removing the rule's last destination is the service's refusal.
    let remove =
        |kind: &'static str, index: &'static str, v: &str| with(&[("version", v), ("kind", kind), ("rule", "0"), ("index", index)]);
    let r = post("/console/registry/replication/remove", remove("destination", "1", &v)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("will no longer copy images to") && r.body.contains("eu-west-1"), "{}", r.body);
    assert_eq!(replication_of(&h).await, config, "not before confirming");
    let mut confirmed = remove("destination", "1", &v);
    confirmed.push(("confirm", "yes".into()));
    assert_eq!(post("/console/registry/replication/remove", confirmed).await.status, StatusCode::SEE_OTHER);
    assert_eq!(replication_of(&h).await.rules[0].destinations, vec![west()]);
    let v = replication_version(&h.get("/console/registry/settings", Some(&cookie)).await.body);
    let mut last = remove("destination", "0", &v);
    last.push(("confirm", "yes".into()));
    let r = post("/console/registry/replication/remove", last).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("a rule needs at least one destination"), "{}", r.body);
    let mut rule_gone = remove("rule", "0", &v);
    rule_gone.push(("confirm", "yes".into()));
    assert_eq!(post("/console/registry/replication/remove", rule_gone).await.status, StatusCode::SEE_OTHER);
    assert!(replication_of(&h).await.rules.is_empty());
}

#[tokio::test]
async fn replication_needs_its_actions_and_the_image_page_shows_statuses() {
    use berth_store::ReplicationStore;
    let h = harness().await;
    let put = berth_core::replication::ReplicationConfiguration {
        rules: vec![berth_core::replication::ReplicationRule {
            destinations: vec![berth_core::replication::ReplicationDestination { region: "us-west-2".into(), registry_id: ACCOUNT.into() }],
            repository_filters: Vec::new(),
        }],
    };
    h.registry.put_replication_configuration(&scope(), put.clone()).await.expect("put");
    let repo = Harness::repo("team/app");
    h.registry.create_repository(&repo, Default::default()).await.expect("repo");
    let digest = push_image(&h.registry, &repo, "v1").await;

    let (cookie, _) = h.sign_in(KEY, SECRET).await;
    let r = h.get(&format!("/console/repo/team/app/-/image/{digest}"), Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Replication status"), "{}", r.body);
    let statuses = h.registry.image_replication_statuses(&repo, &digest.parse().expect("digest")).await.expect("statuses");
    assert_eq!(statuses.len(), 1, "the push queued the destination");
    assert!(r.body.contains(&format!(r#"data-destination="us-west-2/{ACCOUNT}" data-status="{}""#, statuses[0].status)), "{}", r.body);
    let row = berth_store::ReplicationStatusRow {
        destination: berth_store::DestinationKey { region: "us-west-2".into(), registry_id: ACCOUNT.into() },
        status: "FAILED".into(),
        failure_code: Some("DESTINATION_UNREACHABLE".into()),
        origin: None,
        queued_at: 1,
        updated_at: 2,
    };
    h.meta.set_replication_status(repo.key(), &digest.parse().expect("digest"), &row).await.expect("status");
    let r = h.get(&format!("/console/repo/team/app/-/image/{digest}"), Some(&cookie)).await;
    assert!(r.body.contains(r#"data-status="FAILED""#) && r.body.contains("DESTINATION_UNREACHABLE"), "{}", r.body);

    // Without ecr:PutReplicationConfiguration: the rules, no controls, and changes refused.
    let (id, secret) =
        user_allowed(&h, "replication-reader", &["ecr:DescribeRegistry", "ecr:DescribeImages", "ecr:DescribeRepositories"]).await;
    let (rcookie, rcsrf) = h.sign_in(&id, &secret).await;
    let r = h.get("/console/registry/settings", Some(&rcookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(&format!(r#"data-destination="us-west-2/{ACCOUNT}""#)));
    assert!(!r.body.contains("Add rule") && !r.body.contains("/console/registry/replication/remove"), "{}", r.body);
    let version = crate::replication::version(&put);
    let form =
        [("csrf", rcsrf.as_str()), ("version", version.as_str()), ("kind", "rule"), ("rule", "0"), ("index", "0"), ("confirm", "yes")];
    let r = h.post("/console/registry/replication/remove", Some(&rcookie), &form).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("(ecr:PutReplicationConfiguration)"), "{}", r.body);
    assert_eq!(h.registry.replication_configuration(&scope()).await.expect("config"), put);
    // No ecr:DescribeImageReplicationStatus: no section on the image page.
    let r = h.get(&format!("/console/repo/team/app/-/image/{digest}"), Some(&rcookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains("Replication status"));
}

#[tokio::test]
async fn webhooks_are_added_listed_and_removed_by_those_allowed() {
    let h = harness().await;
    let (cookie, csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/webhooks", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No webhooks yet") && r.body.contains("Add webhook"), "{}", r.body);
    let form = [("csrf", csrf.as_str()), ("url", "http://127.0.0.1:9/hook"), ("detail_type", "ECR Image Scan")];
    let r = h.post("/console/webhooks", Some(&cookie), &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("whsec_") && r.body.contains("not shown again"), "the secret, once: {}", r.body);
    let r = h.get("/console/webhooks", Some(&cookie)).await;
    assert!(r.body.contains("http://127.0.0.1:9/hook") && r.body.contains("ECR Image Scan") && r.body.contains("Nothing delivered yet"));
    assert!(!r.body.contains("whsec_"), "never listed");
    let r = h.post("/console/webhooks", Some(&cookie), &[("csrf", &csrf), ("url", "ftp://example/x")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    let (id, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (viewer, viewer_csrf) = h.sign_in(&id, &secret).await;
    assert_eq!(h.get("/console/webhooks", Some(&viewer)).await.status, StatusCode::FORBIDDEN);
    let hook = h.registry.list_webhooks(ACCOUNT).await.expect("list").remove(0);
    let r = h.post("/console/webhooks/remove", Some(&viewer), &[("csrf", &viewer_csrf), ("id", &hook.id)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = h.post("/console/webhooks/remove", Some(&cookie), &[("csrf", &csrf), ("id", &hook.id)]).await;
    assert_eq!((r.status, location(&r)), (StatusCode::SEE_OTHER, "/console/webhooks?done=removed"));
    assert!(h.registry.list_webhooks(ACCOUNT).await.expect("list").is_empty());
}

/// Console actions reach the audit trail as the API calls they mirror: the action, the
/// signed-in user, the resource, the request's small parameters, marked as the console's; a
/// refusal with the API's exception name; a confirmation page and a plain page view are no call.
#[tokio::test]
async fn console_actions_are_audited_like_the_api_calls_they_mirror() {
    let h = harness().await;
    let (admin, csrf) = h.sign_in(KEY, SECRET).await;
    let r = h.post("/console/repositories", Some(&admin), &[("csrf", &csrf), ("name", "team/app"), ("scan_on_push", "on")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let facts = r.facts.expect("an audited call");
    assert_eq!(facts.action, "ecr:CreateRepository");
    assert!(facts.from_console);
    assert_eq!(facts.principal.as_deref(), Some(format!("arn:aws:iam::{ACCOUNT}:user/admin").as_str()));
    assert_eq!((facts.account.as_deref(), facts.region.as_deref()), (Some(ACCOUNT), Some("us-east-1")));
    assert_eq!(facts.resources, vec![Harness::repo("team/app").arn()]);
    let params = facts.request_parameters.expect("parameters");
    assert_eq!(params["repositoryName"], "team/app");
    assert_eq!(params["imageScanningConfiguration"]["scanOnPush"], true);
    assert!(r.error.is_none());

    // Again: refused as the API refuses it.
    let r = h.post("/console/repositories", Some(&admin), &[("csrf", &csrf), ("name", "team/app")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.facts.map(|f| f.action).as_deref(), Some("ecr:CreateRepository"));
    assert_eq!(r.error.map(|e| e.code).as_deref(), Some("RepositoryAlreadyExistsException"));

    // Viewing is no call; asking to delete shows a confirmation (no call); confirming is one.
    assert!(h.get("/console/repositories", Some(&admin)).await.facts.is_none());
    let r = h.post("/console/repo/team/app/-/lifecycle/delete", Some(&admin), &[("csrf", &csrf)]).await;
    assert!(r.facts.is_none() || r.status.is_client_error(), "no change without confirmation");
    let r = h.post("/console/repo/team/app/-/delete", Some(&admin), &[("csrf", &csrf), ("confirm_name", "team/app")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let facts = r.facts.expect("an audited call");
    assert_eq!((facts.action.as_str(), facts.request_parameters.map(|p| p["force"].clone())), ("ecr:DeleteRepository", Some(false.into())));

    // A read-only user's forged change: recorded, refused as AccessDeniedException.
    let (id, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (viewer, viewer_csrf) = h.sign_in(&id, &secret).await;
    let r = h.post("/console/repositories", Some(&viewer), &[("csrf", &viewer_csrf), ("name", "team/other")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let facts = r.facts.expect("an audited refusal");
    assert_eq!(facts.principal.as_deref(), Some(format!("arn:aws:iam::{ACCOUNT}:user/viewer").as_str()));
    assert_eq!(r.error.map(|e| e.code).as_deref(), Some("AccessDeniedException"));
    let r = h
        .post(
            "/console/registry/settings/account",
            Some(&viewer),
            &[("csrf", &viewer_csrf), ("name", "BASIC_SCAN_TYPE_VERSION"), ("value", "CLAIR")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.facts.map(|f| f.action).as_deref(), Some("ecr:PutAccountSetting"));
    assert_eq!(r.error.map(|e| e.code).as_deref(), Some("AccessDeniedException"));
}

/// The nav links to Webhooks for whoever may list them, and the page opens from it.
#[tokio::test]
async fn the_nav_links_to_webhooks() {
    let h = harness().await;
    let (admin, _) = h.sign_in(KEY, SECRET).await;
    let r = h.get("/console/repositories", Some(&admin)).await;
    assert!(r.body.contains(r#"href="/console/webhooks""#), "{}", r.body);
    let r = h.get("/console/webhooks", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"<a href="/console/webhooks" aria-current="page">Webhooks</a>"#), "{}", r.body);
    let (id, secret) = h.user("viewer", "AmazonEC2ContainerRegistryReadOnly").await;
    let (viewer, _) = h.sign_in(&id, &secret).await;
    let r = h.get("/console/repositories", Some(&viewer)).await;
    assert!(!r.body.contains(r#"href="/console/webhooks""#), "no Webhooks link without events:ListTargetsByRule");
}
#[path = "secrets_tests.rs"]
mod secrets_tests;
