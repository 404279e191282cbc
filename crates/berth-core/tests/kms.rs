//! The key service over time (an injectable clock): automatic rotation when a key is next used
//! after its date, deletion completing at the end of its window (crypto-shredding), and a
//! server with another root key refusing rather than misreading. Runs on every backend.

use berth_core::auth::Principal;
use berth_core::kms::{KmsError, NewKey};
use berth_core::{Registry, RegistryConfig};

mod common;

const DAY: i64 = 86_400_000;

fn root(byte: u8) -> berth_crypto::RootKey {
    berth_crypto::RootKey::from_hex(&format!("{byte:02x}").repeat(32)).expect("root key")
}

async fn admin(r: &Registry) -> Principal {
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let (arn, access_key_id, _) = r.create_user("123456789012", "keeper", &[("all".into(), all.into())]).await.expect("user");
    Principal { arn, account: "123456789012".into(), access_key_id, region: None, source_ip: None, secure_transport: false }
}

/// The material version a ciphertext names (`bk1 | uuid | version`).
fn version_of(blob: &[u8]) -> u32 {
    u32::from_be_bytes([blob[19], blob[20], blob[21], blob[22]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_rotation_deletion_and_the_root_key() {
    let env = common::Env::new();
    let r = env.registry_without_key_service(RegistryConfig::default()).await;
    r.install_key_service(root(7));
    let me = admin(&r).await;
    let key = r.kms_create_key(&me, NewKey::default()).await.expect("key");
    let id = key.key_id.clone();
    let (_, first) = r.kms_encrypt(&me, &id, b"one", &[]).await.expect("encrypt");
    assert_eq!(version_of(&first), 1);

    r.kms_set_rotation(&me, &id, true, Some(90)).await.expect("rotation on");
    env.advance(89 * DAY);
    let (_, early) = r.kms_encrypt(&me, &id, b"early", &[]).await.expect("encrypt");
    assert_eq!(version_of(&early), 1, "not due yet");
    env.advance(2 * DAY);
    let (_, due) = r.kms_encrypt(&me, &id, b"due", &[]).await.expect("encrypt");
    assert_eq!(version_of(&due), 2, "rotated when first used after its date");
    let (_, again) = r.kms_encrypt(&me, &id, b"again", &[]).await.expect("encrypt");
    assert_eq!(version_of(&again), 2, "once per period");
    assert_eq!(r.kms_decrypt(&me, &first, &[], None).await.expect("old material").1.as_slice(), b"one");
    let status = r.kms_rotation_status(&me, &id).await.expect("status");
    assert_eq!(status.doc.materials.iter().filter(|m| m.rotation_type.as_deref() == Some("AUTOMATIC")).count(), 1);

    // Another server of the same data with another root key: refuses, never misreads.
    let other = env.registry_without_key_service(RegistryConfig::default()).await;
    other.install_key_service(root(8));
    match other.kms_decrypt(&me, &first, &[], None).await {
        Err(KmsError::Internal(m)) => assert!(m.contains("root key"), "{m}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("decrypted under another root key"),
    }

    r.kms_schedule_deletion(&me, &id, Some(7)).await.expect("scheduled");
    env.advance(6 * DAY);
    assert!(matches!(r.kms_decrypt(&me, &first, &[], None).await, Err(KmsError::InvalidState(_))), "pending: refused");
    r.kms_cancel_deletion(&me, &id).await.expect("cancelled");
    r.kms_set_enabled(&me, &id, true).await.expect("enabled");
    assert_eq!(r.kms_decrypt(&me, &due, &[], None).await.expect("back").1.as_slice(), b"due");

    r.kms_schedule_deletion(&me, &id, Some(7)).await.expect("scheduled again");
    env.advance(7 * DAY + 1);
    assert!(matches!(r.kms_describe_key(&me, &id).await, Err(KmsError::NotFound(_))), "deleted at the end of the window");
    assert!(
        matches!(r.kms_decrypt(&me, &first, &[], None).await, Err(KmsError::InvalidCiphertext(_))),
        "its ciphertexts are gone for good"
    );
    let (keys, _) = r.kms_list_keys(&me, None, 100).await.expect("list");
    assert!(keys.iter().all(|k| k.key_id != id), "not listed");
}
