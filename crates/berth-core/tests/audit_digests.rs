//! The audit trail's hourly signed digests on every backend: a finished hour is signed once
//! with a key derived from the root key; `verify` checks each digest against the records and
//! its signature, reports a digest another root key signed, and says when it cannot check.

use std::sync::Arc;
use std::time::Duration;

use berth_core::audit::{AuditSettings, Finding};
use berth_core::RegistryConfig;

mod common;
use common::Env;

const HOUR: i64 = 3_600_000;

#[tokio::test]
async fn finished_hours_are_signed_once_and_verified() {
    let env = Env::new();
    let r = Arc::new(env.registry_with(RegistryConfig::default()).await);
    r.start_audit(AuditSettings::default());
    for n in 0..5 {
        r.record_service_event("berth.amazonaws.com", "GarbageCollection", None, serde_json::json!({ "run": n })).await;
    }
    assert!(r.flush_audit(Duration::from_secs(30)).await);
    assert_eq!(r.sign_audit_digests().await.unwrap(), 0, "the hour is not over yet");

    env.advance(2 * HOUR);
    assert_eq!(r.sign_audit_digests().await.unwrap(), 1);
    assert_eq!(r.sign_audit_digests().await.unwrap(), 0, "an hour is signed once");
    let report = r.verify_audit_trail().await.unwrap();
    assert_eq!((report.records, report.digests_checked, report.digests_unchecked.clone()), (5, 1, None));
    assert!(report.findings.is_empty(), "{:?}", report.findings);

    // A berth with another root key did not sign it (forged, or the wrong key).
    let other = env
        .registry_without_key_service(RegistryConfig::default())
        .await
        .with_key_service(berth_crypto::RootKey::from_hex(&"cd".repeat(32)).expect("root key"));
    let report = other.verify_audit_trail().await.unwrap();
    assert_eq!(report.findings.len(), 1);
    assert!(matches!(report.findings[0], Finding::DigestUnsigned { .. }), "{:?}", report.findings);

    // Without a root key the chain is still checked and the report says the digests were not.
    let keyless = env.registry_without_key_service(RegistryConfig::default()).await;
    let report = keyless.verify_audit_trail().await.unwrap();
    assert!(report.findings.is_empty() && report.digests_checked == 0);
    assert!(report.digests_unchecked.is_some());
    assert_eq!(keyless.sign_audit_digests().await.unwrap(), 0);
}
