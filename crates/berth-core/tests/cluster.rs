//! Work that must run once across nodes sharing a metadata store: periodic jobs are claimed
//! through a lease, on the backends `common` selects.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{Registry, RegistryConfig};

mod common;
use common::FakeClock;

#[tokio::test]
async fn a_periodic_job_runs_on_one_node_per_period_and_moves_when_its_holder_stops() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let (meta, blobs) = common::stores(dir.path()).await;
    let a = Registry::new(meta.clone(), blobs.clone(), clock.clone(), RegistryConfig::default());
    let b = Registry::new(meta, blobs, clock.clone(), RegistryConfig::default());
    assert_ne!(a.node_id(), b.node_id());
    let period = Duration::from_secs(60);

    assert!(a.claim_periodic_job("gc", period).await.unwrap());
    assert!(!b.claim_periodic_job("gc", period).await.unwrap(), "one node per period");
    assert!(b.claim_periodic_job("lifecycle", period).await.unwrap(), "jobs are claimed independently");

    // The holder renews at its next tick, even a late one; the other node still finds it held.
    clock.0.fetch_add(90_000, Ordering::SeqCst);
    assert!(!b.claim_periodic_job("gc", period).await.unwrap(), "a late holder keeps its job");
    assert!(a.claim_periodic_job("gc", period).await.unwrap());
    clock.0.fetch_add(60_000, Ordering::SeqCst);
    assert!(!b.claim_periodic_job("gc", period).await.unwrap());

    // The holder stops ticking (a dead node): after two periods the other node takes over.
    clock.0.fetch_add(61_000, Ordering::SeqCst);
    assert!(b.claim_periodic_job("gc", period).await.unwrap());
    assert!(!a.claim_periodic_job("gc", period).await.unwrap());

    // Released at shutdown: the other node need not wait out the period.
    b.release_periodic_job("gc").await.unwrap();
    assert!(a.claim_periodic_job("gc", period).await.unwrap());
}

#[tokio::test]
async fn a_rotated_signing_key_reaches_every_node_and_the_previous_one_still_verifies() {
    use berth_core::auth::{AuthFailure, Principal, Transport};
    use berth_core::RegistryError;

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let (meta, blobs) = common::stores(dir.path()).await;
    let node = |c: Arc<FakeClock>| Registry::new(meta.clone(), blobs.clone(), c, RegistryConfig::default());
    let (a, b, admin) = (node(clock.clone()), node(clock.clone()), node(clock.clone()));
    for r in [&a, &b, &admin] {
        r.init_identity().await.unwrap();
    }
    let (_, key_id, _) = a.create_user("123456789012", "ci", &[]).await.unwrap();
    let principal = Principal {
        arn: "arn:aws:iam::123456789012:user/ci".into(),
        account: "123456789012".into(),
        access_key_id: key_id,
        region: None,
        source_ip: None,
        secure_transport: false,
    };
    let (first, _) = a.issue_token(&principal).unwrap();

    assert_eq!(admin.rotate_signing_key().await.unwrap(), 2);
    clock.0.fetch_add(10_000, Ordering::SeqCst);
    a.reload_signing_keys().await.unwrap();
    let (second, _) = a.issue_token(&principal).unwrap();
    // B has not reloaded: the unknown key makes it re-read the keys once, then it verifies.
    b.authenticate_token("AWS", &second, Transport::default()).await.unwrap();
    b.authenticate_token("AWS", &first, Transport::default()).await.unwrap();

    // A second rotation retires the first key everywhere, once each node re-reads its keys
    // (`berth serve` does every minute).
    assert_eq!(admin.rotate_signing_key().await.unwrap(), 2);
    b.reload_signing_keys().await.unwrap();
    let err = b.authenticate_token("AWS", &first, Transport::default()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthenticated(AuthFailure::TokenInvalid)), "{err:?}");
    b.authenticate_token("AWS", &second, Transport::default()).await.unwrap();
}
