//! Work that must run once across nodes sharing a metadata store: periodic jobs are claimed
//! through a lease, on the backends `common` selects.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{GcOptions, Registry, RegistryConfig, RegistryError, Repo, RepositoryName};
use berth_store::StoreError;

mod common;
use common::FakeClock;

/// Two nodes on one store, sharing a clock.
struct Nodes {
    _dir: tempfile::TempDir,
    clock: Arc<FakeClock>,
    a: Registry,
    b: Registry,
    blobs: Arc<dyn berth_store::BlobStore>,
}

async fn two_nodes() -> Nodes {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let (meta, blobs) = common::stores(dir.path()).await;
    let a = Registry::new(meta.clone(), blobs.clone(), clock.clone(), RegistryConfig::default()).with_key_service(common::root_key());
    let b = Registry::new(meta, blobs.clone(), clock.clone(), RegistryConfig::default()).with_key_service(common::root_key());
    Nodes { _dir: dir, clock, a, b, blobs }
}

#[tokio::test]
async fn a_periodic_job_runs_on_one_node_per_period_and_moves_when_its_holder_stops() {
    let Nodes { _dir, clock, a, b, .. } = two_nodes().await;
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
async fn a_run_longer_than_two_periods_keeps_its_lease_while_it_renews() {
    let Nodes { _dir, clock, a, b, .. } = two_nodes().await;
    // Renewals come every 100 ms of real time; the lease's length is read on the fake clock.
    let period = Duration::from_millis(300);

    let b = &b;
    let ran = a
        .run_leased("gc", period, |lease| {
            let clock = clock.clone();
            async move {
                let mut renewed = lease.renewals();
                // Three periods on the lease's clock, half a period at a time, each followed by a
                // renewal: without them the lease would have ended after two.
                for _ in 0..6 {
                    renewed.borrow_and_update();
                    clock.0.fetch_add(150, Ordering::SeqCst);
                    // The timeout only turns a missing renewal into a failure instead of a hang.
                    tokio::time::timeout(Duration::from_secs(60), renewed.changed())
                        .await
                        .expect("the renewal goes on while the job runs")
                        .expect("the lease is still held");
                    assert!(!b.claim_periodic_job("gc", period).await.unwrap(), "another node cannot take a renewed lease");
                    lease.check().expect("still this node's lease");
                }
                Ok("done")
            }
        })
        .await
        .unwrap();
    assert_eq!(ran, Some("done"));
    assert_eq!(b.run_leased("gc", period, |_| async { Ok(()) }).await.unwrap(), None, "the other node does not run it");
}

#[tokio::test]
async fn a_run_whose_lease_is_lost_stops_at_its_next_safe_point() {
    let Nodes { _dir, clock, a, b, blobs } = two_nodes().await;
    let repo = Repo::new(&RegistryConfig::default().default_registry, RepositoryName::parse("team/app").unwrap());
    let garbage = common::push_blob(&a, &repo, b"unreferenced").await;
    // Long enough that no renewal comes during the test: the loss is the lease running out.
    let period = Duration::from_secs(600);

    let b = &b;
    let (a_ref, clock_ref) = (&a, &clock);
    let err = a
        .run_leased("gc", period, |_| async move {
            // The node stalls past its lease; another node takes the job over...
            clock_ref.0.fetch_add(2 * 600_000 + 1, Ordering::SeqCst);
            assert!(b.claim_periodic_job("gc", period).await.unwrap());
            // ...and the stalled run, reaching its first blob, stops rather than collect it.
            a_ref.collect_garbage(GcOptions { dry_run: false, grace_millis: Some(0) }).await
        })
        .await
        .unwrap_err();
    match err {
        RegistryError::Store(StoreError::Unavailable { what, detail }) => {
            assert_eq!(what, berth_core::LEASE_LOST);
            assert!(detail.starts_with("gc: "), "{detail}");
        }
        other => panic!("expected the lost lease, got {other:?}"),
    }
    // (The blob store, not stat_blob: a HEAD would keep the blob alive.)
    assert!(common::stored_size(&blobs, &garbage).await.is_some(), "the stopped run collected nothing");

    // A GC outside a leased run (POST /_berth/gc, `berth gc`) has no lease to lose.
    let report = a.collect_garbage(GcOptions { dry_run: false, grace_millis: Some(0) }).await.unwrap();
    assert_eq!(report.blobs, vec![garbage.to_string()]);
}

#[tokio::test]
async fn a_rotated_signing_key_reaches_every_node_and_the_previous_one_still_verifies() {
    use berth_core::auth::{AuthFailure, Principal, Transport};
    use berth_core::RegistryError;

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicI64::new(1_700_000_000_000)));
    let (meta, blobs) = common::stores(dir.path()).await;
    let node =
        |c: Arc<FakeClock>| Registry::new(meta.clone(), blobs.clone(), c, RegistryConfig::default()).with_key_service(common::root_key());
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
