//! A stored blob whose bytes changed is never served as intact (see berth_core::integrity), on
//! every backend `common` selects.

use berth_core::{BlobCheck, Digest, Registry, RegistryConfig, RegistryError, RegistryRef, Repo, RepositoryName, ScrubOptions};
use futures::StreamExt;

mod common;
use common::{push_blob, Env};

impl Env {
    /// Integrity checks concern blobs stored in clear (written before encryption at rest, or
    /// with AES256 left to the storage); an encrypted object authenticates itself on every read
    /// (see tests/sealing.rs).
    async fn registry(&self) -> Registry {
        self.registry_with(RegistryConfig { aes256_by_storage: true, ..Default::default() }).await
    }
    /// Pushes `content()` as team/app, then replaces its stored bytes with a flipped copy.
    async fn corrupted_blob(&self) -> (Repo, Vec<u8>, Digest) {
        let name = repo("team/app");
        let data = content();
        let d = push_blob(&self.registry().await, &name, &data).await;
        common::overwrite_stored_bytes(self.dir.path(), &d, &flipped(&data)).await;
        (name, data, d)
    }
}

fn repo(s: &str) -> Repo {
    Repo::new(&RegistryRef { account: "123456789012".into(), region: "us-east-1".into() }, RepositoryName::parse(s).unwrap())
}

/// Several read chunks' worth, so that a response could be cut part-way.
fn content() -> Vec<u8> {
    (0..700_000u32).map(|i| (i % 251) as u8).collect()
}

fn flipped(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v[123_456] ^= 0x01;
    v
}

/// Reads a full download: the bytes that arrived and whether it ended in an error.
async fn download(r: &Registry, name: &Repo, d: &Digest) -> (Vec<u8>, bool) {
    let (size, _, mut reader) = r.read_blob(name, d, None).await.unwrap();
    assert_eq!(reader.len, size);
    let mut out = Vec::new();
    while let Some(c) = reader.body.next().await {
        match c {
            Ok(c) => out.extend_from_slice(&c),
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

#[tokio::test]
async fn a_corrupt_blob_is_cut_short_quarantined_reported_and_restored_by_a_push() {
    let env = Env::new();
    let (name, data, d) = env.corrupted_blob().await;

    // After a restart nothing is verified yet: the first download is hashed as it streams.
    let r = env.registry().await;
    let (got, failed) = download(&r, &name, &d).await;
    assert!(failed, "a corrupt blob's download must end in an error");
    assert!(got.len() < data.len(), "the last chunk is held back: {} of {} bytes arrived", got.len(), data.len());
    assert_eq!(r.integrity_counts().corrupt_found, 1);
    assert_eq!(r.integrity_counts().quarantined, 1);

    // From now on it is answered as quarantined, by HEAD and GET alike.
    assert!(matches!(r.stat_blob(&name, &d).await, Err(RegistryError::BlobQuarantined(x)) if x == d));
    assert!(matches!(r.read_blob(&name, &d, None).await, Err(RegistryError::BlobQuarantined(_))));
    assert_eq!(r.layer_size(&name, &d).await.unwrap(), None, "BatchCheckLayerAvailability reports it missing");
    let report = r.fsck().await.unwrap();
    assert_eq!(report.quarantined, vec![d.to_string()]);

    // A restart remembers the quarantine.
    let r = env.registry().await;
    assert_eq!(r.load_quarantine().await.unwrap(), 1);
    assert!(matches!(r.stat_blob(&name, &d).await, Err(RegistryError::BlobQuarantined(_))));

    // Pushing the blob again restores it.
    assert_eq!(push_blob(&r, &name, &data).await, d);
    assert_eq!(r.stat_blob(&name, &d).await.unwrap(), data.len() as u64);
    let (got, failed) = download(&r, &name, &d).await;
    assert!(!failed);
    assert_eq!(Digest::sha256_of(&got), d);
    assert_eq!(r.integrity_counts().quarantined, 0);
    let r = env.registry().await;
    assert_eq!(r.load_quarantine().await.unwrap(), 0, "a restored blob is not quarantined after a restart");
    assert!(r.fsck().await.unwrap().ok());
}

#[tokio::test]
async fn an_intact_blob_is_hashed_on_its_first_read_only() {
    let env = Env::new();
    let name = repo("team/app");
    let data = content();
    let d = push_blob(&env.registry().await, &name, &data).await;
    let r = env.registry().await;
    for _ in 0..3 {
        let (got, failed) = download(&r, &name, &d).await;
        assert!(!failed);
        assert_eq!(got, data);
    }
    assert_eq!(r.integrity_counts().verified_on_read, 1, "verified once, then served as stored");
    assert_eq!(r.integrity_counts().corrupt_found, 0);
}

#[tokio::test]
async fn a_range_of_an_unverified_corrupt_blob_is_refused() {
    let env = Env::new();
    let (name, _, d) = env.corrupted_blob().await;
    let r = env.registry().await;
    // Even a range that does not cover the flipped byte: the blob as a whole is not intact.
    let err = r.read_blob(&name, &d, Some((Some(0), Some(99)))).await.err().unwrap();
    assert!(matches!(err, RegistryError::BlobQuarantined(_)), "{err:?}");
}

#[tokio::test]
async fn a_range_of_an_unverified_intact_blob_is_served_after_a_full_check() {
    let env = Env::new();
    let name = repo("team/app");
    let data = content();
    let d = push_blob(&env.registry().await, &name, &data).await;
    let r = env.registry().await;
    let (_, range, mut reader) = r.read_blob(&name, &d, Some((Some(10), Some(19)))).await.unwrap();
    assert_eq!(range.map(|r| (r.start, r.end_inclusive)), Some((10, 19)));
    let mut got = Vec::new();
    while let Some(c) = reader.body.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    assert_eq!(got, &data[10..20]);
    // The range was served after a full check: the blob is verified now, so a full read is not
    // hashed again.
    let (_, _, mut reader) = r.read_blob(&name, &d, None).await.unwrap();
    while let Some(c) = reader.body.next().await {
        c.unwrap();
    }
    assert_eq!(r.integrity_counts().verified_on_read, 0, "the full read found the blob already verified");
}

#[tokio::test]
async fn a_scrub_finds_corruption_the_reads_have_not_met() {
    let env = Env::new();
    let (name, data, d) = env.corrupted_blob().await;
    let good = push_blob(&env.registry().await, &name, b"fine").await;
    let r = env.registry().await;
    let report = r.scrub(ScrubOptions::default()).await.unwrap();
    assert_eq!(report.blobs_checked, 2);
    assert_eq!(report.bytes_checked, data.len() as u64 + 4);
    assert_eq!(report.corrupt, vec![d.to_string()]);
    assert_eq!(r.integrity_counts().scrubbed_blobs, 2);
    assert!(matches!(r.read_blob(&name, &d, None).await, Err(RegistryError::BlobQuarantined(_))));
    assert_eq!(r.verify_blob(&good).await.unwrap(), BlobCheck::Intact);
    // A second pass no longer sees the quarantined blob among the stored ones.
    let again = r.scrub(ScrubOptions { bytes_per_second: Some(1 << 30) }).await.unwrap();
    assert_eq!((again.blobs_checked, again.corrupt.len()), (1, 0));
}

/// The window the verified set leaves open (bytes that change after this node verified them)
/// is what the scrub closes.
#[tokio::test]
async fn a_scrub_catches_bytes_that_changed_after_they_were_verified() {
    let env = Env::new();
    let name = repo("team/app");
    let data = content();
    let r = env.registry().await;
    let d = push_blob(&r, &name, &data).await;
    common::overwrite_stored_bytes(env.dir.path(), &d, &flipped(&data)).await;
    assert_eq!(r.scrub(ScrubOptions::default()).await.unwrap().corrupt, vec![d.to_string()]);
    assert!(matches!(r.stat_blob(&name, &d).await, Err(RegistryError::BlobQuarantined(_))));
    if common::blobs_on_disk() {
        let kept = env.dir.path().join("quarantine/sha256").join(d.hex());
        assert_eq!(std::fs::read(kept).unwrap(), flipped(&data), "the corrupt bytes are kept for inspection");
    }
}
