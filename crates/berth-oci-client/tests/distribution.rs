//! Against a real CNCF distribution registry.

mod common;

use berth_oci_client::ClientError;
use bytes::Bytes;
use common::{blob_digest, blob_stream, sha256, Distribution};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

const LAYER_SIZE: usize = 5 * 1024 * 1024 + 123;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An OCI image manifest referencing a config and one layer.
fn manifest(config: (&str, usize), layer: (&str, usize)) -> Bytes {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.0, "size": layer.1}],
    });
    Bytes::from(serde_json::to_vec(&m).unwrap())
}

#[tokio::test]
async fn push_mount_manifest_and_pull_round_trip() {
    let registry = Distribution::start().await;
    let client = registry.client();
    client.ping().await.unwrap();

    // A layer of several MiB, streamed from a generator: never one buffer.
    let layer = blob_digest(7, LAYER_SIZE);
    assert_eq!(client.head_blob("src/app", &layer).await.unwrap(), None);
    client.push_blob("src/app", &layer, LAYER_SIZE as u64, || async { Ok(blob_stream(7, LAYER_SIZE)) }).await.unwrap();
    assert_eq!(client.head_blob("src/app", &layer).await.unwrap(), Some(LAYER_SIZE as u64));

    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
    let config_digest = sha256(&config);
    let c = config.clone();
    client
        .push_blob("src/app", &config_digest, config.len() as u64, move || {
            let c = c.clone();
            async move { Ok(futures::stream::iter([Ok(c)])) }
        })
        .await
        .unwrap();

    // Distribution links a blob across repositories (201).
    assert_eq!(client.head_blob("dst/app", &layer).await.unwrap(), None);
    assert!(client.mount_blob("dst/app", "src/app", &layer).await.unwrap());
    assert!(client.mount_blob("dst/app", "src/app", &config_digest).await.unwrap());
    assert_eq!(client.head_blob("dst/app", &layer).await.unwrap(), Some(LAYER_SIZE as u64));

    let bytes = manifest((&config_digest, config.len()), (&layer, LAYER_SIZE));
    let manifest_digest = sha256(&bytes);
    let pushed = client.put_manifest("dst/app", "v1", OCI_MANIFEST, bytes.clone()).await.unwrap();
    assert_eq!(pushed, manifest_digest);

    let info = client.head_manifest("dst/app", "v1").await.unwrap().unwrap();
    assert_eq!(info.digest, manifest_digest);
    assert_eq!(info.media_type, OCI_MANIFEST);
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(client.head_manifest("dst/app", "v2").await.unwrap(), None);

    for reference in ["v1", manifest_digest.as_str()] {
        let got = client.get_manifest("dst/app", reference).await.unwrap();
        assert_eq!(got.digest, manifest_digest);
        assert_eq!(got.media_type, OCI_MANIFEST);
        assert_eq!(got.bytes, bytes);
    }

    // The layer comes back byte for byte, streamed, its digest checked by the stream.
    let blob = client.get_blob("dst/app", &layer).await.unwrap();
    assert_eq!(blob.size, LAYER_SIZE as u64);
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    let mut chunks = 0usize;
    let mut stream = blob.stream;
    while let Some(chunk) = stream.try_next().await.unwrap() {
        total += chunk.len();
        chunks += 1;
        hasher.update(&chunk);
    }
    assert_eq!(total, LAYER_SIZE);
    assert!(chunks > 1, "the blob arrived as a stream of chunks");
    assert_eq!(format!("sha256:{}", hex::encode(hasher.finalize())), layer);
}

#[tokio::test]
async fn unknown_things_are_not_found_with_their_oci_code() {
    let registry = Distribution::start().await;
    let client = registry.client();
    let config = Bytes::from_static(b"{}");
    let digest = sha256(&config);
    let c = config.clone();
    client
        .push_blob("lib/x", &digest, 2, move || {
            let c = c.clone();
            async move { Ok(futures::stream::iter([Ok(c)])) }
        })
        .await
        .unwrap();

    let missing = blob_digest(99, 10);
    match client.get_blob("lib/x", &missing).await {
        Err(ClientError::NotFound { code }) => assert_eq!(code.as_deref(), Some("BLOB_UNKNOWN")),
        other => panic!("expected NotFound BLOB_UNKNOWN, got {other:?}"),
    }
    match client.get_manifest("lib/x", "nope").await {
        Err(ClientError::NotFound { code }) => assert_eq!(code.as_deref(), Some("MANIFEST_UNKNOWN")),
        other => panic!("expected NotFound MANIFEST_UNKNOWN, got {other:?}"),
    }
    // A mount from a repository without the blob: distribution opens an upload session
    // instead (202), which the client cancels, answering false.
    assert!(!client.mount_blob("lib/y", "lib/x", &missing).await.unwrap());
    assert_eq!(client.head_blob("lib/y", &missing).await.unwrap(), None);

    // Bytes that do not match the digest are refused by the remote (not retried).
    let err =
        client.push_blob("lib/x", &missing, 2, || async { Ok(futures::stream::iter([Ok(Bytes::from_static(b"{}"))])) }).await.unwrap_err();
    assert_eq!(err.code(), Some("DIGEST_INVALID"), "{err:?}");
    assert!(!err.is_retryable());
}
