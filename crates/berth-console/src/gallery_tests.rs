//! The gallery in-process: no session needed, only public repositories, 404s, the console's
//! security headers, the logo's type.

use std::sync::Arc;

use axum::body::Body;
use berth_core::{Registry, RegistryConfig, RegistryRef, SystemClock};
use berth_store::{
    FsBlobStore, PublicRegistryRow, PublicStore, RepoKey, RepositoryCatalogRow, RepositorySettings, RepositoryStore, SqliteMetadataStore,
};
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

const ACCOUNT: &str = "123456789012";

async fn app() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Arc::new(SqliteMetadataStore::open(&dir.path().join("berth.db")).await.expect("db"));
    let blobs = FsBlobStore::open(dir.path()).await.expect("blobs");
    let config =
        RegistryConfig { default_registry: RegistryRef { account: ACCOUNT.into(), region: "us-east-1".into() }, ..Default::default() };
    let registry = Arc::new(Registry::new(meta.clone(), Arc::new(blobs), Arc::new(SystemClock), config));
    let row = PublicRegistryRow { account: ACCOUNT.into(), alias: "team".into(), display_name: String::new(), created_at: 1 };
    meta.create_public_registry(&row).await.expect("registry");
    let key = |region: &str, name: &str| RepoKey { account: ACCOUNT.into(), region: region.into(), name: name.into() };
    let settings = RepositorySettings::ecr_defaults();
    for k in [key("@public", "web"), key("us-east-1", "web"), key("us-east-1", "secret")] {
        meta.create_repository(&k, &settings, &[], 1).await.expect("store").expect("new");
    }
    let catalog = RepositoryCatalogRow {
        catalog: r#"{"description":"Web <b>server</b>","architectures":["ARM 64"],"aboutText":"<script>alert(1)</script>"}"#.into(),
        logo: Some(b"\x89PNG\r\n\x1a\nrest".to_vec()),
        updated_at: 1,
    };
    assert!(meta.put_repository_catalog(&key("@public", "web"), &catalog).await.expect("catalog"));
    (dir, crate::gallery_router(registry))
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let req = Request::get(path).header(header::HOST, "registry.example:5000").body(Body::empty()).expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.into_body().collect().await.expect("body").to_bytes().to_vec())
}

#[tokio::test]
async fn the_gallery_shows_public_repositories_only() {
    let (_dir, app) = app().await;
    let (status, headers, body) = get(&app, "/gallery/").await;
    let page = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
    assert!(page.contains(r#"data-repository="team/web""#) && !page.contains("secret"), "{page}");
    assert!(page.contains("Web &lt;b&gt;server&lt;/b&gt;"), "the description is text: {page}");
    assert!(page.contains(r#"name="viewport""#));
    let (_, _, body) = get(&app, "/gallery/?q=SECRET").await;
    assert!(!String::from_utf8_lossy(&body).contains("data-repository="));

    let (status, _, body) = get(&app, "/gallery/team/web").await;
    let page = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script>alert"), "{page}");
    assert!(page.contains("docker pull registry.example:5000/team/web:latest"), "no tag yet: the command names latest");
    assert!(page.contains("ARM 64"));

    for missing in ["/gallery/team/secret", "/gallery/nobody/web", &format!("/gallery/{ACCOUNT}/us-east-1/secret"), "/gallery/team/"] {
        assert_eq!(get(&app, missing).await.0, StatusCode::NOT_FOUND, "{missing}");
    }

    let (status, headers, body) = get(&app, "/gallery/logo/team/web").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(body.starts_with(b"\x89PNG"));
    assert_eq!(get(&app, "/gallery/logo/team/secret").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/gallery").await.0, StatusCode::PERMANENT_REDIRECT);
}
