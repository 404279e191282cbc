//! Console sessions end server-side: sign-out and a console password change end every session
//! of the user (the user's session epoch moves on), on every backend and across restarts.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use berth_core::auth::{AuthFailure, Principal, Transport};
use berth_core::console_auth::{ConsoleCredentials, CONSOLE_SESSION_SECS};
use berth_core::{Registry, RegistryConfig, RegistryError};

mod common;
use common::FakeClock;

const ACCOUNT: &str = "123456789012";
const PASSWORD: &str = "correct horse battery";

async fn registry(dir: &std::path::Path, clock: Arc<FakeClock>) -> Registry {
    let (meta, blobs) = common::stores(dir).await;
    let r = Registry::new(meta, blobs, clock, RegistryConfig::default()).with_key_service(common::root_key());
    r.init_identity().await.unwrap();
    r
}

async fn valid(r: &Registry, session: &str) -> bool {
    match r.authenticate_console_session(session, Transport::default()).await {
        Ok(_) => true,
        Err(RegistryError::Unauthenticated(AuthFailure::SessionInvalid)) => false,
        Err(other) => panic!("{other:?}"),
    }
}

async fn by_password(r: &Registry, user: &str, password: &str) -> Result<String, RegistryError> {
    let creds = ConsoleCredentials::Password { account: ACCOUNT, user, password };
    r.console_sign_in(creds, Transport::default()).await.map(|(v, _)| v)
}

async fn by_key(r: &Registry, access_key_id: &str, secret: &str) -> String {
    let creds = ConsoleCredentials::AccessKey { access_key_id, secret };
    r.console_sign_in(creds, Transport::default()).await.unwrap().0
}

fn principal(arn: &str) -> Principal {
    Principal {
        arn: arn.into(),
        account: ACCOUNT.into(),
        access_key_id: String::new(),
        region: None,
        source_ip: None,
        secure_transport: false,
    }
}

#[tokio::test]
async fn sign_out_and_password_changes_end_every_session_of_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let r = registry(dir.path(), clock.clone()).await;
    let (alice, alice_key, alice_secret) = r.create_user(ACCOUNT, "alice", &[]).await.unwrap();
    let (_, bob_key, bob_secret) = r.create_user(ACCOUNT, "bob", &[]).await.unwrap();
    r.set_console_password(ACCOUNT, "alice", Some(PASSWORD)).await.unwrap();

    let pw = by_password(&r, "alice", PASSWORD).await.unwrap();
    let key = by_key(&r, &alice_key, &alice_secret).await;
    let bob = by_key(&r, &bob_key, &bob_secret).await;
    assert!(valid(&r, &pw).await && valid(&r, &key).await && valid(&r, &bob).await);

    // Sign-out: every session of alice ends, bob's does not.
    r.end_console_sessions(&principal(&alice)).await.unwrap();
    assert!(!valid(&r, &pw).await && !valid(&r, &key).await);
    assert!(valid(&r, &bob).await);

    // A password change ends the sessions signed in after the sign-out as well.
    let pw = by_password(&r, "alice", PASSWORD).await.unwrap();
    let key = by_key(&r, &alice_key, &alice_secret).await;
    assert!(valid(&r, &pw).await && valid(&r, &key).await);
    r.set_console_password(ACCOUNT, "alice", Some("another long password")).await.unwrap();
    assert!(!valid(&r, &pw).await && !valid(&r, &key).await);
    assert!(valid(&r, &bob).await);
    assert!(matches!(by_password(&r, "alice", PASSWORD).await, Err(RegistryError::Unauthenticated(_))));
    assert!(matches!(by_password(&r, "nobody", PASSWORD).await, Err(RegistryError::Unauthenticated(_))));

    // The epoch is stored: after a restart, ended sessions stay ended and live ones live.
    let live = by_password(&r, "alice", "another long password").await.unwrap();
    drop(r);
    let r = registry(dir.path(), clock.clone()).await;
    assert!(valid(&r, &live).await && valid(&r, &bob).await);
    assert!(!valid(&r, &pw).await && !valid(&r, &key).await);

    // Removing the password ends sessions too; sessions still expire on their own.
    let key = by_key(&r, &alice_key, &alice_secret).await;
    r.set_console_password(ACCOUNT, "alice", None).await.unwrap();
    assert!(!valid(&r, &live).await && !valid(&r, &key).await);
    let key = by_key(&r, &alice_key, &alice_secret).await;
    clock.0.fetch_add((CONSOLE_SESSION_SECS - 1) * 1000, Ordering::SeqCst);
    assert!(valid(&r, &key).await);
    clock.0.fetch_add(1000, Ordering::SeqCst);
    assert!(!valid(&r, &key).await);
}
