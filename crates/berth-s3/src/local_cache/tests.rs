use std::io;
use std::sync::Arc;

use berth_store::{BlobRange, ByteStream};
use bytes::Bytes;
use futures::StreamExt;

use berth_store::{Algorithm, Digest};
use sha2::Digest as _;

use super::LocalCache;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn stream_of(data: &[u8]) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

async fn drain(mut body: ByteStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Reads `key` through the cache as the store does: from the copy, or (a miss) from `data`
/// with a fill; waits for the fill to end. True when it was a hit.
async fn read_through(cache: &Arc<LocalCache>, key: &str, data: &[u8]) -> bool {
    if let Some(body) = cache.read(key, data.len() as u64, None).await {
        assert!(drain(body).await.expect("a hit streams whole") == data);
        return true;
    }
    let body = cache.fill(key, data.len() as u64, None, stream_of(data));
    assert!(drain(body).await.expect("the teed body streams whole") == data, "the client gets the bucket's bytes unchanged");
    cache.idle().await;
    false
}

/// Drops the cache once its fills and removals are done, and waits for the blocking-pool tasks
/// that ended them to let go of it (they hold it, and so the directory's lock, a moment longer).
async fn close(cache: Arc<LocalCache>) {
    cache.idle().await;
    let gone = Arc::downgrade(&cache);
    drop(cache);
    while gone.strong_count() > 0 {
        tokio::task::yield_now().await;
    }
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n != ".lock").collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_copy_serves_whole_reads_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let cache = LocalCache::open(dir.path(), 64 << 20).unwrap();
    let data = pattern(5 * 1024 * 1024 + 17, 1);
    assert!(!read_through(&cache, "p/data/a", &data).await, "first read misses");
    assert!(read_through(&cache, "p/data/a", &data).await, "second read hits");
    // Ranges within a chunk, across chunk boundaries, to the end.
    for (start, end) in [(3_000_000, 3_000_099), (1_048_000, 2_097_200), (0, 0), (5_242_880, data.len() - 1)] {
        let body = cache.read("p/data/a", data.len() as u64, Some(BlobRange { start: start as u64, end_inclusive: end as u64 })).await;
        assert!(drain(body.expect("range hit")).await.unwrap() == data[start..=end], "{start}-{end}");
    }
    let c = cache.counts();
    assert_eq!((c.hits, c.misses, c.fills, c.bytes), (5, 1, 1, data.len() as u64));
    // Another size under the same key is not this copy: never served, and dropped.
    assert!(cache.read("p/data/a", 10, None).await.is_none());
    cache.idle().await;
    assert_eq!(cache.counts().bytes, 0);
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_holds_and_the_least_recently_used_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let mib = 1 << 20;
    let cache = LocalCache::open(dir.path(), 2 * mib as u64 + 10).unwrap();
    let (a, b, c) = (pattern(mib, 1), pattern(mib, 2), pattern(mib, 3));
    read_through(&cache, "a", &a).await;
    read_through(&cache, "b", &b).await;
    assert!(read_through(&cache, "a", &a).await, "a is now the most recently used");
    read_through(&cache, "c", &c).await;
    let counts = cache.counts();
    assert_eq!((counts.evictions, counts.bytes), (1, 2 * mib as u64));
    assert!(read_through(&cache, "a", &a).await, "a stayed");
    assert!(read_through(&cache, "c", &c).await, "c is in");
    assert!(!read_through(&cache, "b", &b).await, "b, least recently used, went");
    assert!(cache.counts().bytes <= 2 * mib as u64 + 10);
    assert_eq!(files(dir.path()).len(), 2);
    // An object larger than the bound is never copied.
    let big = pattern(3 * mib, 4);
    assert!(!read_through(&cache, "big", &big).await);
    assert!(!read_through(&cache, "big", &big).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_cut_short_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = LocalCache::open(dir.path(), 64 << 20).unwrap();
    let data = pattern(1 << 20, 5);
    // The bucket's body fails midway.
    let mut items: Vec<io::Result<Bytes>> = data[..300_000].chunks(65536).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    items.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "bucket went away")));
    let body = cache.fill("k", data.len() as u64, None, futures::stream::iter(items).boxed());
    assert!(drain(body).await.is_err());
    cache.idle().await;
    // The client goes away after the first chunk.
    let mut body = cache.fill("k", data.len() as u64, None, stream_of(&data));
    body.next().await.unwrap().unwrap();
    drop(body);
    cache.idle().await;
    let c = cache.counts();
    assert_eq!((c.fills, c.fills_dropped, c.bytes), (0, 2, 0));
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    assert!(cache.read("k", data.len() as u64, None).await.is_none());

    // Bytes that do not hash to the digest they should are never copied.
    let wrong = Digest::from_parts(Algorithm::Sha256, &[7u8; 32]);
    let body = cache.fill("k", data.len() as u64, Some(&wrong), stream_of(&data));
    assert!(drain(body).await.unwrap() == data, "the client still gets the bytes (its own check decides)");
    cache.idle().await;
    assert!(files(dir.path()).is_empty());
    let right = Digest::from_parts(Algorithm::Sha256, &sha2::Sha256::digest(&data));
    drain(cache.fill("k", data.len() as u64, Some(&right), stream_of(&data))).await.unwrap();
    cache.idle().await;
    assert!(cache.read("k", data.len() as u64, None).await.is_some(), "a verified copy is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_copy_is_never_passed_on_whole_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = LocalCache::open(dir.path(), 64 << 20).unwrap();
    let data = pattern(3 << 20, 6);
    read_through(&cache, "k", &data).await;
    let name = files(dir.path()).pop().unwrap();
    let path = dir.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2_000_000] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let mut body = cache.read("k", data.len() as u64, None).await.expect("hit");
    let mut passed = 0usize;
    let err = loop {
        match body.next().await {
            Some(Ok(chunk)) => passed += chunk.len(),
            Some(Err(e)) => break e,
            None => panic!("a damaged copy streamed to its end"),
        }
    };
    assert_eq!(passed, 1 << 20, "only the chunk before the damaged one was passed on");
    assert_ne!(err.kind(), io::ErrorKind::InvalidData, "not taken for the bucket's object being corrupt");
    assert!(body.next().await.is_none(), "nothing after the error");
    cache.idle().await;
    assert_eq!(cache.counts().damaged, 1);
    assert!(files(dir.path()).is_empty());
    assert!(!read_through(&cache, "k", &data).await, "the next read goes to the bucket");

    // A copy cut short on disk is not served either, and goes.
    let name = files(dir.path()).pop().expect("copied again");
    std::fs::OpenOptions::new().write(true).open(dir.path().join(name)).unwrap().set_len(1000).unwrap();
    assert!(cache.read("k", data.len() as u64, None).await.is_none());
    cache.idle().await;
    assert!(files(dir.path()).is_empty());

    // A damaged chunk inside a range is never passed on either.
    read_through(&cache, "k", &data).await;
    let path = dir.path().join(files(dir.path()).pop().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let body = cache.read("k", data.len() as u64, Some(BlobRange { start: 50, end_inclusive: 150 })).await.expect("hit");
    assert!(drain(body).await.is_err());
    assert_eq!(cache.counts().bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_copies_and_clears_unfinished_fills() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pattern(1 << 20, 7), pattern(1 << 20, 8));
    {
        let cache = LocalCache::open(dir.path(), 64 << 20).unwrap();
        read_through(&cache, "a", &a).await;
        read_through(&cache, "b", &b).await;
        close(cache).await;
    }
    std::fs::write(dir.path().join(format!("{}.0123abcd.tmp", "f".repeat(64))), b"half").unwrap();
    std::fs::write(dir.path().join(format!("{}.blob", "e".repeat(64))), b"no trailer").unwrap();
    let cache = LocalCache::open(dir.path(), 64 << 20).unwrap();
    assert_eq!(cache.counts().bytes, 2 << 20);
    assert_eq!(files(dir.path()).len(), 2, "the unfinished fill and the file that is not a copy are gone");
    assert!(LocalCache::open(dir.path(), 64 << 20).is_err(), "one process per directory");
    assert!(read_through(&cache, "a", &a).await);
    cache.remove("a");
    cache.idle().await;
    assert!(!read_through(&cache, "a", &a).await, "removed copies are not served");
    // Reopened under a smaller bound: the oldest go.
    close(cache).await;
    let cache = LocalCache::open(dir.path(), (1 << 20) + 1).unwrap();
    assert_eq!(cache.counts().bytes, 1 << 20);
    assert_eq!(files(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_removed_while_its_fill_runs_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = LocalCache::open(dir.path(), 64 << 20).unwrap();
    let data = pattern(1 << 20, 9);
    let (tx, rx) = futures::channel::mpsc::unbounded::<io::Result<Bytes>>();
    let mut body = cache.fill("k", data.len() as u64, None, rx.boxed());
    tx.unbounded_send(Ok(Bytes::copy_from_slice(&data[..1000]))).unwrap();
    assert!(body.next().await.unwrap().unwrap() == data[..1000]);
    // The read that found the bytes wrong (a sealed object failing authentication) may be the
    // one whose copy is still being written.
    cache.remove("k");
    tx.unbounded_send(Ok(Bytes::copy_from_slice(&data[1000..]))).unwrap();
    drop(tx);
    assert!(drain(body).await.unwrap() == data[1000..], "the reader still gets every byte");
    cache.idle().await;
    let c = cache.counts();
    assert_eq!((c.fills, c.fills_dropped, c.bytes), (0, 1, 0), "the fill did not land");
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    assert!(cache.read("k", data.len() as u64, None).await.is_none());
    // The removal held that fill only: the next read copies again.
    assert!(!read_through(&cache, "k", &data).await);
    assert!(read_through(&cache, "k", &data).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_may_read_the_directory_and_the_copies() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let base = tempfile::tempdir().unwrap();

    // A directory the cache makes.
    let made = base.path().join("made").join("cache");
    let cache = LocalCache::open(&made, 64 << 20).unwrap();
    assert_eq!(mode(&made), 0o700, "the directory");
    assert_eq!(mode(&made.join(".lock")), 0o600, "the lock file");
    read_through(&cache, "k", &pattern(100_000, 10)).await;
    let copies = files(&made);
    assert_eq!(copies.len(), 1);
    assert_eq!(mode(&made.join(&copies[0])), 0o600, "a copy (blobs left in clear among them)");
    close(cache).await;

    // A directory someone else made, open to all: closed when the cache opens it.
    let given = base.path().join("given");
    std::fs::create_dir(&given).unwrap();
    std::fs::set_permissions(&given, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = LocalCache::open(&given, 64 << 20).unwrap();
    assert_eq!(mode(&given), 0o700);
    read_through(&cache, "k", &pattern(100_000, 11)).await;
    assert_eq!(mode(&given.join(&files(&given)[0])), 0o600);
}
