//! The ECR API driven by the Rust AWS SDK (aws-sdk-ecr) against a real berth process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use aws_credential_types::Credentials;
use aws_sdk_ecr::config::{BehaviorVersion, Region};
use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability};

const KEY: &str = "AKIASDKTESTKEY000001";
const SECRET: &str = "sdk-test-secret-0000000000000000000000000";

struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("BERTH_ACCOUNT_ID", "123456789012")
        .env("BERTH_ADMIN_ACCESS_KEY_ID", KEY)
        .env("BERTH_ADMIN_SECRET_ACCESS_KEY", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("berth prints its address").to_string();
    Server { child, addr, _dir: dir }
}

fn client(addr: &str, secret: &str) -> aws_sdk_ecr::Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(Credentials::new(KEY, secret, None, None, "test"))
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

#[tokio::test]
async fn create_describe_paginate_and_delete_with_the_rust_sdk() {
    let server = start();
    let ecr = client(&server.addr, SECRET);
    for i in 0..5 {
        let out = ecr
            .create_repository()
            .repository_name(format!("sdk/repo{i}"))
            .image_tag_mutability(ImageTagMutability::Immutable)
            .send()
            .await
            .unwrap();
        let repo = out.repository().unwrap();
        assert_eq!(repo.registry_id(), Some("123456789012"));
        assert_eq!(repo.repository_uri(), Some(format!("{}/sdk/repo{i}", server.addr).as_str()));
        assert_eq!(repo.image_tag_mutability(), Some(&ImageTagMutability::Immutable));
    }
    // Pagination across pages with the SDK's own paginator.
    let pages: Vec<_> = ecr.describe_repositories().max_results(2).into_paginator().send().collect::<Vec<_>>().await;
    assert_eq!(pages.len(), 3);
    let names: Vec<String> =
        pages.into_iter().flat_map(|p| p.unwrap().repositories.unwrap_or_default()).filter_map(|r| r.repository_name).collect();
    assert_eq!(names, (0..5).map(|i| format!("sdk/repo{i}")).collect::<Vec<_>>());

    let dup = ecr.create_repository().repository_name("sdk/repo0").send().await.unwrap_err();
    assert!(dup.into_service_error().is_repository_already_exists_exception());
    let missing = ecr
        .batch_get_image()
        .repository_name("sdk/nope")
        .image_ids(ImageIdentifier::builder().image_tag("v1").build())
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_repository_not_found_exception());

    let token = ecr.get_authorization_token().send().await.unwrap();
    let data = &token.authorization_data()[0];
    assert!(data.authorization_token().unwrap().len() > 40);
    assert_eq!(data.proxy_endpoint(), Some(format!("http://{}", server.addr).as_str()));

    let deleted = ecr.delete_repository().repository_name("sdk/repo4").send().await.unwrap();
    assert_eq!(deleted.repository().unwrap().repository_name(), Some("sdk/repo4"));
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let server = start();
    let ecr = client(&server.addr, "not-the-secret");
    let err = ecr.describe_repositories().send().await.unwrap_err();
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(403));
    assert_eq!(aws_sdk_ecr::error::ProvideErrorMetadata::code(&err), Some("InvalidSignatureException"));
}
