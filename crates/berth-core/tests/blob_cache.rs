//! The registry over a node-local blob cache (`--blob-cache-dir`, berth_s3's `LocalCache`):
//! whatever judges the stored bytes (scrub, fsck, the start-up root-key check, a quarantine's
//! second hash) reads the bucket, not the node's copy; a copy found wrong is dropped so the
//! node's disk never serves it again.
//!
//! Always SQLite + S3 with a cache (common::s3_cache), whatever BERTH_TEST_BACKEND says: the
//! S3 test server must be running (`eval "$(scripts/s3-test-server.sh start /tmp/berth-s3)"`).

use berth_core::{Digest, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, ScrubOptions};
use futures::StreamExt;

mod common;
use common::push_blob;
use common::s3_cache::{CachedNode, Place};

fn repo(s: &str) -> Repo {
    Repo::new(&RegistryRef { account: "123456789012".into(), region: "us-east-1".into() }, RepositoryName::parse(s).unwrap())
}

/// More than one of the cache's 1 MiB CRC chunks, with a ragged end.
fn content(seed: u32) -> Vec<u8> {
    (0..(3 << 19) + 777u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8).collect()
}

fn flipped(data: &[u8], at: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    v[at] ^= 0x01;
    v
}

/// A full download: its bytes, or the error that ended it (and after how many bytes).
async fn read(r: &Registry, name: &Repo, d: &Digest) -> Result<Vec<u8>, String> {
    let (_, _, mut reader) = r.read_blob(name, d, None).await.map_err(|e| format!("{e:?}"))?;
    let mut out = Vec::new();
    while let Some(c) = reader.body.next().await {
        out.extend_from_slice(&c.map_err(|e| format!("{e} (after {} bytes)", out.len()))?);
    }
    Ok(out)
}

/// Blobs stored in clear (AES256 left to the storage: the integrity checks hash them), or
/// sealed (the default).
fn config(place: Place) -> RegistryConfig {
    match place {
        Place::Plain => RegistryConfig { aes256_by_storage: true, ..Default::default() },
        Place::Sealed => RegistryConfig::default(),
    }
}

/// A blob pushed through a registry on the node (nothing read yet).
struct Pushed {
    r: Registry,
    name: Repo,
    data: Vec<u8>,
    d: Digest,
    /// The name of the blob's object in the bucket (its digest, or its sealed object's name).
    object: Digest,
    /// The bucket's bytes of it.
    stored: Vec<u8>,
}

/// Pushes `content(seed)` in clear or sealed (`place`).
async fn pushed(node: &CachedNode, place: Place, seed: u32) -> Pushed {
    let r = node.registry(config(place)).await;
    let name = repo("team/app");
    let data = content(seed);
    let d = push_blob(&r, &name, &data).await;
    let object = match place {
        Place::Plain => d.clone(),
        Place::Sealed => berth_core::sealed_object_name("aes256", &d),
    };
    let stored = node.stored_bytes(place, &object).await;
    assert_eq!(stored.len() == data.len(), place == Place::Plain, "the bucket holds the blob as its place stores it");
    Pushed { r, name, data, d, object, stored }
}

/// Pushes a blob in `place` and reads it through the registry so the node keeps a copy; then
/// alters one byte of the bucket's object. The node's copy still serves the blob whole: only
/// a check of the bucket's bytes finds the damage.
async fn blob_with_a_good_copy_and_a_damaged_bucket_object(node: &CachedNode, place: Place) -> (Registry, Repo, Vec<u8>, Digest) {
    let Pushed { r, name, data, d, object, stored, .. } = pushed(node, place, 1).await;
    assert_eq!(read(&r, &name, &d).await.unwrap(), data);
    let copies = node.copies().await;
    assert_eq!(copies.len(), 1, "the node copied the blob as it was read");
    assert!(std::fs::read(&copies[0]).unwrap().starts_with(&stored), "the copy is the bucket's bytes");
    assert_eq!(node.cache.counts().bytes, stored.len() as u64);

    node.overwrite_stored_bytes(place, &object, &flipped(&stored, stored.len() / 2)).await;
    let hits = node.cache.counts().hits;
    assert_eq!(read(&r, &name, &d).await.unwrap(), data, "the node's copy is whole");
    assert_eq!(node.cache.counts().hits, hits + 1, "and it served that read");
    (r, name, data, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrub_judges_the_buckets_clear_blob_not_the_nodes_copy() {
    let node = CachedNode::new().await;
    let (r, name, _, d) = blob_with_a_good_copy_and_a_damaged_bucket_object(&node, Place::Plain).await;
    let before = node.cache.counts();

    let report = r.scrub(ScrubOptions::default()).await.unwrap();
    assert_eq!(report.corrupt, vec![d.to_string()], "the scrub read the bucket's object, not the node's good copy");
    let after = node.cache.counts();
    assert_eq!(
        (after.hits, after.misses, after.fills),
        (before.hits, before.misses, before.fills),
        "the scrub neither read nor filled the cache"
    );

    // Quarantined: the node's copy is not served, and gone.
    assert!(matches!(r.read_blob(&name, &d, None).await, Err(RegistryError::BlobQuarantined(x)) if x == d));
    assert!(node.copies().await.is_empty(), "the quarantine dropped the node's copy");
    assert_eq!(node.cache.counts().bytes, 0);
    let r = node.registry(config(Place::Plain)).await;
    assert!(matches!(r.read_blob(&name, &d, None).await, Err(RegistryError::BlobUnknown(_))), "after a restart too");
    assert_eq!(r.load_quarantine().await.unwrap(), 1);
    assert!(matches!(r.read_blob(&name, &d, None).await, Err(RegistryError::BlobQuarantined(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_judges_the_buckets_clear_blob_not_the_nodes_copy() {
    let node = CachedNode::new().await;
    let (r, _, _, d) = blob_with_a_good_copy_and_a_damaged_bucket_object(&node, Place::Plain).await;
    let before = node.cache.counts();

    let report = r.fsck().await.unwrap();
    let found = format!("blob {d} holds content with digest");
    assert!(report.problems.iter().any(|p| p.starts_with(&found)), "fsck read the bucket's object: {:?}", report.problems);
    let after = node.cache.counts();
    assert_eq!(
        (after.hits, after.misses, after.fills),
        (before.hits, before.misses, before.fills),
        "fsck neither read nor filled the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrub_judges_the_buckets_sealed_object_not_the_nodes_copy() {
    let node = CachedNode::new().await;
    let (r, name, _, d) = blob_with_a_good_copy_and_a_damaged_bucket_object(&node, Place::Sealed).await;
    let hits = node.cache.counts().hits;

    let report = r.scrub(ScrubOptions::default()).await.unwrap();
    assert_eq!(report.corrupt, vec![d.to_string()], "the scrub read the bucket's object, not the node's good copy");
    assert_eq!(node.cache.counts().hits, hits);
    assert!(matches!(r.read_blob(&name, &d, None).await, Err(RegistryError::BlobQuarantined(x)) if x == d));
    assert!(node.copies_once_dropped().await.is_empty(), "the failed authentication dropped the node's copy");

    // After a restart (which forgets the failure) the read meets the bucket's object.
    let r = node.registry(config(Place::Sealed)).await;
    let failed = read(&r, &name, &d).await.expect_err("the bucket's object is damaged");
    assert!(failed.contains("failed authentication"), "{failed}");
    assert_eq!(node.cache.counts().hits, hits, "not from the node's disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_judges_the_buckets_sealed_object_not_the_nodes_copy() {
    let node = CachedNode::new().await;
    let (r, _, _, d) = blob_with_a_good_copy_and_a_damaged_bucket_object(&node, Place::Sealed).await;
    let hits = node.cache.counts().hits;

    let report = r.fsck().await.unwrap();
    assert!(
        report.problems.iter().any(|p| p.contains(&d.to_string()) && p.contains("authentication")),
        "fsck read the bucket's object: {:?}",
        report.problems
    );
    assert_eq!(node.cache.counts().hits, hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_key_check_reads_the_buckets_object_not_the_nodes_copy() {
    let node = CachedNode::new().await;
    let Pushed { r, name, data, d, object, stored, .. } = pushed(&node, Place::Sealed, 2).await;
    assert_eq!(read(&r, &name, &d).await.unwrap(), data);
    assert_eq!(node.copies().await.len(), 1);
    assert!(r.check_root_key().await.unwrap());

    // The bucket's object no longer has a header; the node's copy still does.
    node.overwrite_stored_bytes(Place::Sealed, &object, &vec![0u8; stored.len()]).await;
    let hits = node.cache.counts().hits;
    assert!(r.check_root_key().await.is_err(), "the check read the bucket's object, not the node's copy");
    assert_eq!(node.cache.counts().hits, hits);
}

/// A read of an unverified blob meets bytes that do not match its digest in the node's copy
/// (the copy is what went wrong; the bucket's object is whole). The quarantine drops the copy
/// before it hashes again, and its second hash reads the bucket: the blob is found intact and
/// stays readable, and the wrong copy is never served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_drops_the_nodes_copy_then_hashes_the_buckets_object() {
    let node = CachedNode::new().await;
    let Pushed { name, data, d, .. } = pushed(&node, Place::Plain, 3).await;
    node.plant_copy(Place::Plain, &d, &flipped(&data, 1_234_567)).await;

    let r = node.registry(config(Place::Plain)).await; // nothing verified: the next read is hashed
    let failed = read(&r, &name, &d).await.expect_err("the node's wrong copy fails the read's hash");
    assert!(failed.contains("failed verification"), "{failed}");
    let counts = r.integrity_counts();
    assert_eq!((counts.corrupt_found, counts.quarantined), (0, 0), "the second hash read the bucket's whole object");
    assert_eq!(node.cache.counts().hits, 1, "the read, and only the read, was served from the node's copy");
    assert!(node.copies().await.is_empty(), "the quarantine dropped the node's copy, and its second hash copied nothing");
    assert!(node.blobs.list_quarantined().await.unwrap().is_empty(), "the bucket's object was not moved aside");
    assert_eq!(r.stat_blob(&name, &d).await.unwrap(), data.len() as u64);
    assert_eq!(read(&r, &name, &d).await.unwrap(), data, "the next read gets the bucket's bytes");
    let copies = node.copies().await;
    assert_eq!(copies.len(), 1, "copied again from the bucket");
    assert!(std::fs::read(&copies[0]).unwrap().starts_with(&data));
}

/// The bucket's sealed object was damaged before the node copied it: the read that copies it
/// fails authentication, and the copy does not stay on the node's disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_read_that_fails_authentication_leaves_no_copy_on_the_node() {
    let node = CachedNode::new().await;
    let Pushed { r, name, d, object, stored, .. } = pushed(&node, Place::Sealed, 4).await;
    // The last segment's tag: every byte reaches the node's copy before the read fails.
    node.overwrite_stored_bytes(Place::Sealed, &object, &flipped(&stored, stored.len() - 1)).await;
    assert!(node.copies().await.is_empty());

    let failed = read(&r, &name, &d).await.expect_err("the damaged object fails authentication");
    assert!(failed.contains("failed authentication"), "{failed}");
    let counts = node.cache.counts();
    assert_eq!((counts.hits, counts.misses), (0, 1), "the read went to the bucket");
    assert!(node.copies_once_dropped().await.is_empty(), "the node kept no copy of an object that failed authentication");
    assert_eq!(node.cache.counts().bytes, 0);

    // After a restart (which forgets the failure) the read goes to the bucket again.
    let r = node.registry(config(Place::Sealed)).await;
    assert!(read(&r, &name, &d).await.is_err());
    assert_eq!(node.cache.counts().hits, 0, "never from the node's disk");
}

/// The node's copy of a sealed object is what went wrong (the bucket's object is whole): the
/// read that fails authentication drops it, and the next read is served from the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_copy_that_fails_authentication_is_dropped_and_the_bucket_serves_again() {
    let node = CachedNode::new().await;
    let Pushed { r, name, data, d, object, stored, .. } = pushed(&node, Place::Sealed, 5).await;
    node.plant_copy(Place::Sealed, &object, &flipped(&stored, stored.len() / 2)).await;

    let failed = read(&r, &name, &d).await.expect_err("the node's wrong copy fails authentication");
    assert!(failed.contains("failed authentication"), "{failed}");
    assert_eq!(node.cache.counts().hits, 1, "that read was served from the node's copy");
    assert!(node.copies_once_dropped().await.is_empty(), "the failed authentication dropped the node's copy");

    // After a restart (which forgets the failure) the bucket's whole object is served.
    let r = node.registry(config(Place::Sealed)).await;
    assert_eq!(read(&r, &name, &d).await.unwrap(), data);
    assert_eq!(node.cache.counts().hits, 1, "from the bucket, not the node's disk");
}
