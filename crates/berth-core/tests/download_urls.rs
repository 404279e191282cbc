//! Download URL capabilities: one blob, one repository, a few minutes; never a registry token.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use berth_core::auth::{AuthFailure, Principal, Transport};
use berth_core::download_urls::DOWNLOAD_URL_TTL_SECS;
use berth_core::{Digest, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName};

mod common;
use common::FakeClock;

const ACCOUNT: &str = "123456789012";

fn repo_in(region: &str, name: &str) -> Repo {
    Repo::new(&RegistryRef { account: ACCOUNT.into(), region: region.into() }, RepositoryName::parse(name).unwrap())
}

async fn registry(dir: &std::path::Path, clock: Arc<FakeClock>) -> Registry {
    let (meta, blobs) = common::stores(dir).await;
    let r = Registry::new(meta, blobs, clock, RegistryConfig::default()).with_key_service(common::root_key());
    r.init_identity().await.unwrap();
    r
}

fn refused(r: Result<String, RegistryError>) -> String {
    match r {
        Err(RegistryError::Unauthenticated(AuthFailure::DownloadUrl(why))) => why,
        other => panic!("expected a refused download URL, got {other:?}"),
    }
}

#[tokio::test]
async fn a_capability_reads_its_blob_in_its_repository_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let r = registry(dir.path(), clock.clone()).await;
    let app = repo_in("us-east-1", "team/app");
    let layer = Digest::sha256_of(b"layer");
    let (cap, expires_at) = r.issue_download_capability(&app, &layer, "arn:aws:iam::123456789012:user/alice").unwrap();
    assert_eq!(expires_at, 1_700_000_000 + DOWNLOAD_URL_TTL_SECS);
    assert!(cap.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe: {cap}");
    assert_eq!(r.verify_download_capability(&cap, &app, &layer).await.unwrap(), "arn:aws:iam::123456789012:user/alice");

    // Exactly that blob in exactly that repository (account, region, name).
    assert!(refused(r.verify_download_capability(&cap, &app, &Digest::sha256_of(b"other")).await).contains("another blob"));
    refused(r.verify_download_capability(&cap, &repo_in("us-east-1", "team/other"), &layer).await);
    refused(r.verify_download_capability(&cap, &repo_in("eu-west-1", "team/app"), &layer).await);
    let other_account = Repo::new(&RegistryRef { account: "210987654321".into(), region: "us-east-1".into() }, app.name.clone());
    refused(r.verify_download_capability(&cap, &other_account, &layer).await);

    // Tampering with the claims or the MAC is refused.
    let (head, sig) = cap.rsplit_once('.').unwrap();
    // (The first character: all six of its bits are MAC bits.)
    let flipped = format!("{head}.{}{}", if sig.starts_with('A') { 'B' } else { 'A' }, &sig[1..]);
    refused(r.verify_download_capability(&flipped, &app, &layer).await);
    let other_cap = r.issue_download_capability(&app, &Digest::sha256_of(b"other"), "x").unwrap().0;
    let spliced = format!("{}.{}", other_cap.rsplit_once('.').unwrap().0, sig);
    refused(r.verify_download_capability(&spliced, &app, &layer).await);
    refused(r.verify_download_capability("", &app, &layer).await);

    // Valid up to the last second, refused from the expiry on.
    clock.0.store((expires_at - 1) * 1000, Ordering::SeqCst);
    assert!(r.verify_download_capability(&cap, &app, &layer).await.is_ok());
    clock.0.store(expires_at * 1000, Ordering::SeqCst);
    assert!(refused(r.verify_download_capability(&cap, &app, &layer).await).contains("expired"));
}

#[tokio::test]
async fn a_capability_is_no_registry_token_and_a_token_is_no_capability() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let r = registry(dir.path(), clock).await;
    let (arn, key, _) = r.create_user(ACCOUNT, "alice", &[]).await.unwrap();
    let app = repo_in("us-east-1", "team/app");
    let layer = Digest::sha256_of(b"layer");
    let (cap, _) = r.issue_download_capability(&app, &layer, &arn).unwrap();
    let err = r.authenticate_token("AWS", &cap, Transport::default()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthenticated(AuthFailure::TokenInvalid)), "{err:?}");
    assert!(r.authenticate_console_session(&cap, Transport::default()).await.is_err());

    let alice = Principal { arn, account: ACCOUNT.into(), access_key_id: key, region: None, source_ip: None, secure_transport: false };
    let (token, _) = r.issue_token(&alice).unwrap();
    refused(r.verify_download_capability(&token, &app, &layer).await);
    let token_as_d1 = token.replacen("b1.", "d1.", 1);
    refused(r.verify_download_capability(&token_as_d1, &app, &layer).await);
}

#[tokio::test]
async fn a_capability_outlives_one_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let r = registry(dir.path(), clock).await;
    let app = repo_in("us-east-1", "team/app");
    let layer = Digest::sha256_of(b"layer");
    let (cap, _) = r.issue_download_capability(&app, &layer, "x").unwrap();
    r.rotate_signing_key().await.unwrap();
    assert!(r.verify_download_capability(&cap, &app, &layer).await.is_ok());
    r.rotate_signing_key().await.unwrap();
    refused(r.verify_download_capability(&cap, &app, &layer).await);
}
