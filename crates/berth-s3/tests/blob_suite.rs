//! One blob-store suite, each case written once against `Arc<dyn BlobStore>` and run against
//! `FsBlobStore` (a temp dir) and `S3BlobStore` (a fresh prefix in the test bucket).
//!
//! The S3 cases need a server: `eval "$(scripts/s3-test-server.sh start /tmp/berth-s3)"`.
//! Without the BERTH_TEST_S3_* variables they fail (they never skip).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_s3::{LocalCache, S3BlobStore, S3Config};
use berth_store::{Algorithm, BlobRange, BlobStore, ByteStream, Digest, FsBlobStore, StoreError, UploadCursor};
use bytes::Bytes;
use futures::StreamExt;
use sha2::Digest as _;

const MIB: usize = 1024 * 1024;
/// The S3 cases use the default part size; sizes below are chosen to cross its boundaries.
const PART: usize = berth_s3::DEFAULT_PART_SIZE;

struct Backend {
    store: Arc<dyn BlobStore>,
    /// A second, independent instance over the same storage: another node.
    other: Arc<dyn BlobStore>,
    s3: bool,
    /// The filesystem's directory, or the node-local caches' (one per node).
    _dirs: Vec<tempfile::TempDir>,
}

async fn fs_backend() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FsBlobStore::open(dir.path()).await.expect("open fs store");
    let other = FsBlobStore::open(dir.path()).await.expect("open second fs store");
    Backend { store: Arc::new(store), other: Arc::new(other), s3: false, _dirs: vec![dir] }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the S3 cases need a test server. Start one with \
             `eval \"$(scripts/s3-test-server.sh start /tmp/berth-s3)\"` and run the tests in that shell."
        )
    })
}

fn s3_config(prefix: &str) -> S3Config {
    let mut cfg = S3Config::new(env("BERTH_TEST_S3_BUCKET"));
    cfg.prefix = prefix.to_string();
    cfg.endpoint = Some(env("BERTH_TEST_S3_ENDPOINT"));
    cfg.access_key_id = Some(env("BERTH_TEST_S3_ACCESS_KEY"));
    cfg.secret_access_key = Some(env("BERTH_TEST_S3_SECRET_KEY"));
    cfg.region = "us-east-1".into();
    cfg.path_style = true;
    cfg.allow_http = true;
    cfg.presign_expiry = Some(Duration::from_secs(600));
    cfg
}

async fn s3_backend() -> Backend {
    let prefix = format!("suite/{}", uuid::Uuid::new_v4().simple());
    let store = S3BlobStore::open(s3_config(&prefix)).expect("open s3 store");
    store.check().await.expect("test bucket answers");
    let other = S3BlobStore::open(s3_config(&prefix)).expect("open second s3 store");
    Backend { store: Arc::new(store), other: Arc::new(other), s3: true, _dirs: Vec::new() }
}

/// Two nodes on the bucket, each with its own node-local cache (`--blob-cache-dir`): every
/// case must hold exactly as without one.
async fn s3_cached_backend() -> Backend {
    let prefix = format!("suite/{}", uuid::Uuid::new_v4().simple());
    let (a, b) = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let cache = |dir: &tempfile::TempDir| LocalCache::open(dir.path(), 256 << 20).expect("open the local cache");
    let store = S3BlobStore::open(s3_config(&prefix)).expect("open s3 store").with_local_cache(cache(&a));
    store.check().await.expect("test bucket answers");
    let other = S3BlobStore::open(s3_config(&prefix)).expect("open second s3 store").with_local_cache(cache(&b));
    Backend { store: Arc::new(store), other: Arc::new(other), s3: true, _dirs: vec![a, b] }
}

// ---- helpers ----

/// Deterministic bytes that differ everywhere, so a misplaced or repeated range shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(data: &[u8]) -> Digest {
    Digest::from_parts(Algorithm::Sha256, &sha2::Sha256::digest(data))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn stream_of(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

/// Yields `data` in chunks, then fails as a dropped client connection would.
fn failing_stream(data: &[u8], chunk: usize) -> ByteStream {
    let mut items: Vec<io::Result<Bytes>> = data.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    items.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "client went away")));
    futures::stream::iter(items).boxed()
}

async fn read_all(store: &dyn BlobStore, digest: &Digest, range: Option<BlobRange>) -> Option<Vec<u8>> {
    let reader = store.get(digest, range).await.expect("get")?;
    let mut out = Vec::with_capacity(reader.len as usize);
    let mut body = reader.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.expect("blob body chunk"));
    }
    assert_eq!(out.len() as u64, reader.len, "reader length matches the bytes streamed");
    Some(out)
}

/// Uploads `data` in appends of `append` bytes, each streamed in 64 KiB chunks.
async fn upload(store: &dyn BlobStore, data: &[u8], append: usize) -> (String, UploadCursor) {
    let id = new_id();
    let mut cursor = store.create_upload(&id).await.expect("create upload");
    for piece in data.chunks(append.max(1)) {
        cursor = store.append_upload(&id, &cursor, stream_of(piece, 64 * 1024)).await.expect("append");
    }
    assert_eq!(cursor.len, data.len() as u64);
    (id, cursor)
}

async fn push(store: &dyn BlobStore, data: &[u8], append: usize) -> Digest {
    let (id, cursor) = upload(store, data, append).await;
    let digest = sha256(data);
    store.commit_upload(&id, &cursor, &digest).await.expect("commit");
    digest
}

fn range(start: usize, end_inclusive: usize) -> Option<BlobRange> {
    Some(BlobRange { start: start as u64, end_inclusive: end_inclusive as u64 })
}

// ---- the cases ----

async fn create_append_len(b: Backend) {
    let s = &*b.store;
    let id = new_id();
    let c0 = s.create_upload(&id).await.unwrap();
    assert_eq!(c0.len, 0);
    assert_eq!(s.upload_len(&id, &c0).await.unwrap(), Some(0));
    let c1 = s.append_upload(&id, &c0, stream_of(b"hello", 2)).await.unwrap();
    assert_eq!(c1.len, 5);
    assert_eq!(s.upload_len(&id, &c1).await.unwrap(), Some(5));
    // An empty append changes nothing.
    let c2 = s.append_upload(&id, &c1, stream_of(b"", 1)).await.unwrap();
    assert_eq!(c2.len, 5);
    let c3 = s.append_upload(&id, &c2, stream_of(b" world", 4)).await.unwrap();
    assert_eq!(c3.len, 11);
    assert_eq!(s.upload_len(&id, &c3).await.unwrap(), Some(11));
    let digest = sha256(b"hello world");
    s.commit_upload(&id, &c3, &digest).await.unwrap();
    assert_eq!(read_all(s, &digest, None).await.unwrap(), b"hello world");
    assert_eq!(s.upload_len(&id, &c3).await.unwrap(), None, "a committed session is gone");
    assert!(matches!(s.upload_len("not-a-session", &c0).await, Err(StoreError::UploadNotFound(_)) | Ok(None)));
}

async fn many_small_appends(b: Backend) {
    // 1 MiB + 1 byte per append: part boundaries fall inside appends, and at a different
    // offset in each part.
    let data = pattern(2 * PART + 3 * MIB + 17, 1);
    let digest = push(&*b.store, &data, MIB + 1).await;
    assert_eq!(b.store.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert!(read_all(&*b.store, &digest, None).await.unwrap() == data, "exact bytes back");
}

async fn one_big_append(b: Backend) {
    let data = pattern(21 * MIB + 7, 2);
    let digest = push(&*b.store, &data, data.len()).await;
    assert!(read_all(&*b.store, &digest, None).await.unwrap() == data, "exact bytes back");
    // The other node reads it too.
    assert!(read_all(&*b.other, &digest, None).await.unwrap() == data);
}

async fn empty_blob(b: Backend) {
    let s = &*b.store;
    let id = new_id();
    let c = s.create_upload(&id).await.unwrap();
    let digest = sha256(b"");
    s.commit_upload(&id, &c, &digest).await.unwrap();
    assert_eq!(s.stat(&digest).await.unwrap(), Some(0));
    assert_eq!(read_all(s, &digest, None).await.unwrap(), Vec::<u8>::new());
    assert!(s.list_blobs().await.unwrap().contains(&digest));
}

async fn continue_on_another_node(b: Backend) {
    let data = pattern(PART + 5 * MIB + 3, 3);
    let (a, o) = (&*b.store, &*b.other);
    let id = new_id();
    let mut cursor = a.create_upload(&id).await.unwrap();
    // Alternate nodes on every append, as a load balancer might; each starts from the cursor
    // the previous one recorded.
    let mut nodes = [a, o].into_iter().cycle();
    for piece in data.chunks(3 * MIB) {
        let node = nodes.next().unwrap();
        assert_eq!(node.upload_len(&id, &cursor).await.unwrap(), Some(cursor.len));
        cursor = node.append_upload(&id, &cursor, stream_of(piece, 256 * 1024)).await.unwrap();
    }
    let digest = sha256(&data);
    o.commit_upload(&id, &cursor, &digest).await.unwrap();
    assert!(read_all(a, &digest, None).await.unwrap() == data);
    assert!(read_all(o, &digest, None).await.unwrap() == data);
}

async fn failed_append_keeps_cursor(b: Backend) {
    let s = &*b.store;
    let data = pattern(2 * PART + MIB, 4);
    let id = new_id();
    let c0 = s.create_upload(&id).await.unwrap();
    let c1 = s.append_upload(&id, &c0, stream_of(&data[..3 * MIB], 64 * 1024)).await.unwrap();
    // Fails after enough bytes that a full part went out before the failure.
    let err = s.append_upload(&id, &c1, failing_stream(&data[3 * MIB..3 * MIB + PART], 512 * 1024)).await;
    assert!(err.is_err(), "a broken stream fails the append");
    // The service asks the store where the session stands, then continues from there.
    let len = s.upload_len(&id, &c1).await.unwrap().expect("session survives") as usize;
    if b.s3 {
        assert_eq!(len as u64, c1.len, "S3: the previous cursor is still the truth");
    } else {
        assert!(len as u64 >= c1.len, "filesystem keeps a prefix of the failed append");
    }
    let resume = UploadCursor { len: len as u64, state: c1.state.clone() };
    // Continue on the other node, in two appends.
    let mid = (len + data.len()) / 2;
    let c2 = b.other.append_upload(&id, &resume, stream_of(&data[len..mid], MIB)).await.unwrap();
    let c3 = b.other.append_upload(&id, &c2, stream_of(&data[mid..], MIB)).await.unwrap();
    assert_eq!(c3.len, data.len() as u64);
    let digest = sha256(&data);
    s.commit_upload(&id, &c3, &digest).await.unwrap();
    assert!(read_all(s, &digest, None).await.unwrap() == data, "exact bytes after a failed append");

    // A failure in the very first append of a session (nothing stored yet) too.
    let id = new_id();
    let c0 = s.create_upload(&id).await.unwrap();
    assert!(s.append_upload(&id, &c0, failing_stream(&data[..PART + MIB], MIB)).await.is_err());
    let len = s.upload_len(&id, &c0).await.unwrap().expect("session survives") as usize;
    let resume = UploadCursor { len: len as u64, state: c0.state.clone() };
    let c1 = s.append_upload(&id, &resume, stream_of(&data[len..], MIB)).await.unwrap();
    s.commit_upload(&id, &c1, &digest).await.unwrap();
    assert!(read_all(s, &digest, None).await.unwrap() == data);
}

async fn commit_then_ranged_reads(b: Backend) {
    let data = pattern(PART + 2 * MIB + 5, 5);
    let digest = push(&*b.store, &data, 4 * MIB).await;
    let s = &*b.store;
    assert_eq!(s.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert_eq!(b.other.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert!(read_all(s, &digest, None).await.unwrap() == data);
    let last = data.len() - 1;
    for (start, end) in [(0, 0), (100, 200), (PART - 10, PART + 10), (last, last), (0, last), (MIB, last)] {
        let got = read_all(s, &digest, range(start, end)).await.unwrap();
        assert!(got == data[start..=end], "range {start}-{end}");
    }
}

async fn invisible_before_commit(b: Backend) {
    let s = &*b.store;
    let data = pattern(PART + 100, 6);
    let digest = sha256(&data);
    let (id, cursor) = upload(s, &data, 2 * MIB).await;
    for node in [s, &*b.other] {
        assert_eq!(node.stat(&digest).await.unwrap(), None);
        assert!(node.get(&digest, None).await.unwrap().is_none());
        assert!(!node.list_blobs().await.unwrap().contains(&digest));
        assert_eq!(node.download_url(&digest, Duration::from_secs(60)).await.unwrap(), None);
    }
    assert!(s.read_upload(&id, &cursor).await.is_ok());
    s.commit_upload(&id, &cursor, &digest).await.unwrap();
    assert_eq!(b.other.stat(&digest).await.unwrap(), Some(data.len() as u64));
}

async fn delete_blob(b: Backend) {
    let s = &*b.store;
    let data = pattern(3 * MIB, 7);
    let digest = push(s, &data, MIB).await;
    // The other node reads (and, on S3, caches the pointer) before the delete.
    assert!(read_all(&*b.other, &digest, None).await.unwrap() == data);
    assert!(s.delete(&digest).await.unwrap());
    assert!(!s.delete(&digest).await.unwrap(), "second delete finds nothing");
    for node in [s, &*b.other] {
        assert_eq!(node.stat(&digest).await.unwrap(), None);
        assert!(node.get(&digest, None).await.unwrap().is_none(), "deleted on another node is gone here too");
        assert!(!node.list_blobs().await.unwrap().contains(&digest));
    }
}

async fn repush_after_delete_on_another_node(b: Backend) {
    let data = pattern(2 * MIB + 1, 8);
    let digest = push(&*b.store, &data, MIB).await;
    assert!(read_all(&*b.other, &digest, None).await.unwrap() == data);
    assert!(b.store.delete(&digest).await.unwrap());
    push(&*b.store, &data, 2 * MIB + 1).await;
    // A stale cached pointer on the other node must lead to the new data.
    assert!(read_all(&*b.other, &digest, None).await.unwrap() == data);
    assert!(read_all(&*b.other, &digest, range(MIB, 2 * MIB)).await.unwrap() == data[MIB..=2 * MIB]);
}

async fn same_digest_twice(b: Backend) {
    let data = pattern(PART + 1, 9);
    let d1 = push(&*b.store, &data, PART + 1).await;
    let d2 = push(&*b.other, &data, MIB).await;
    assert_eq!(d1, d2);
    assert!(read_all(&*b.store, &d1, None).await.unwrap() == data);
    assert!(read_all(&*b.other, &d1, None).await.unwrap() == data);
    assert_eq!(b.store.list_blobs().await.unwrap().iter().filter(|d| **d == d1).count(), 1);
    assert!(b.store.delete(&d1).await.unwrap());
    assert_eq!(b.other.stat(&d1).await.unwrap(), None);
}

async fn delete_upload_aborts(b: Backend) {
    let s = &*b.store;
    let data = pattern(PART + 3 * MIB, 10);
    let (id, cursor) = upload(s, &data, 2 * MIB).await;
    assert!(s.list_uploads().await.unwrap().contains(&id));
    s.delete_upload(&id, Some(&cursor)).await.unwrap();
    assert_eq!(s.upload_len(&id, &cursor).await.unwrap(), None);
    assert!(!s.list_uploads().await.unwrap().contains(&id));
    let more = s.append_upload(&id, &cursor, stream_of(b"more", 4)).await;
    assert!(matches!(more, Err(StoreError::UploadNotFound(_))), "append to a deleted session: {more:?}");
    let digest = sha256(&data);
    assert!(b.other.commit_upload(&id, &cursor, &digest).await.is_err(), "a deleted session cannot be committed");
    assert_eq!(s.stat(&digest).await.unwrap(), None);
    // Deleting twice is fine.
    s.delete_upload(&id, Some(&cursor)).await.unwrap();

    // An orphan (no cursor known), swept by another node.
    let (orphan, orphan_cursor) = upload(s, &data, PART + MIB).await;
    assert!(b.other.list_uploads().await.unwrap().contains(&orphan));
    b.other.delete_upload(&orphan, None).await.unwrap();
    assert!(!s.list_uploads().await.unwrap().contains(&orphan));
    assert_eq!(s.upload_len(&orphan, &orphan_cursor).await.unwrap(), None);
    assert!(s.commit_upload(&orphan, &orphan_cursor, &digest).await.is_err());
}

async fn listings(b: Backend) {
    let s = &*b.store;
    let (u1, c1) = upload(s, &pattern(1000, 11), 300).await;
    let (u2, _) = upload(s, b"", 1).await;
    let before = s.list_blobs().await.unwrap();
    let mut uploads = b.other.list_uploads().await.unwrap();
    uploads.sort();
    let mut expected = vec![u1.clone(), u2.clone()];
    expected.sort();
    assert_eq!(uploads, expected);
    let d1 = sha256(&pattern(1000, 11));
    s.commit_upload(&u1, &c1, &d1).await.unwrap();
    assert_eq!(b.other.list_uploads().await.unwrap(), vec![u2]);
    let d2 = push(s, b"second", 2).await;
    let mut blobs = b.other.list_blobs().await.unwrap();
    blobs.sort();
    let mut expected: Vec<Digest> = before.into_iter().chain([d1, d2]).collect();
    expected.sort();
    assert_eq!(blobs, expected);
}

async fn large_blob_throughput(b: Backend) {
    let data = pattern(100 * MIB, 12);
    let digest = sha256(&data);
    let started = Instant::now();
    let id = new_id();
    let cursor = b.store.create_upload(&id).await.unwrap();
    let cursor = b.store.append_upload(&id, &cursor, stream_of(&data, 256 * 1024)).await.unwrap();
    b.store.commit_upload(&id, &cursor, &digest).await.unwrap();
    let up = started.elapsed();
    let started = Instant::now();
    let reader = b.other.get(&digest, None).await.unwrap().expect("blob");
    let mut body = reader.body;
    // Kept as received and compared afterwards: hashing in a debug build would be the bottleneck.
    let mut chunks = Vec::new();
    while let Some(chunk) = body.next().await {
        chunks.push(chunk.unwrap());
    }
    let down = started.elapsed();
    assert!(chunks.concat() == data, "exact bytes back");
    let mbps = |d: Duration| 100.0 / d.as_secs_f64();
    eprintln!(
        "[{}] 100 MiB: upload+commit {:.2?} ({:.0} MiB/s), download {:.2?} ({:.0} MiB/s)",
        if b.s3 { "s3" } else { "fs" },
        up,
        mbps(up),
        down,
        mbps(down)
    );
}

async fn download_url(b: Backend) {
    let data = pattern(PART + 12345, 13);
    let digest = push(&*b.store, &data, 4 * MIB).await;
    let url = b.other.download_url(&digest, Duration::from_secs(120)).await.unwrap();
    if !b.s3 {
        assert_eq!(url, None, "the filesystem has no URLs to hand out");
        return;
    }
    let url = url.expect("presigned URL when presign_expiry is set");
    assert!(!url.contains(&env("BERTH_TEST_S3_SECRET_KEY")), "the URL carries a signature, never the secret");
    let (status, body) = http_get(&url).await;
    assert_eq!(status, 200, "GET {url}");
    assert!(body == data, "presigned GET yields exactly the blob");
    assert_eq!(b.store.download_url(&sha256(b"absent"), Duration::from_secs(60)).await.unwrap(), None);

    // Presigning is off unless configured.
    let prefix = format!("suite/{}", uuid::Uuid::new_v4().simple());
    let mut cfg = s3_config(&prefix);
    cfg.presign_expiry = None;
    let plain = S3BlobStore::open(cfg).unwrap();
    let d = push(&plain, b"x", 1).await;
    assert_eq!(plain.download_url(&d, Duration::from_secs(60)).await.unwrap(), None);
}

/// A plain HTTP/1.1 GET (the test server is http on loopback), so the suite needs no client crate.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn = tokio::net::TcpStream::connect(host).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = out;
    }
    (status, body)
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::fs_backend().await).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::s3_backend().await).await;
                }
            )*
        }
        mod s3_cached {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::s3_cached_backend().await).await;
                }
            )*
        }
    };
}

suite!(
    create_append_len,
    many_small_appends,
    one_big_append,
    empty_blob,
    continue_on_another_node,
    failed_append_keeps_cursor,
    commit_then_ranged_reads,
    invisible_before_commit,
    delete_blob,
    repush_after_delete_on_another_node,
    same_digest_twice,
    delete_upload_aborts,
    listings,
    large_blob_throughput,
    download_url,
);

// ---- the node-local cache (`S3BlobStore::with_local_cache`): what a node serves from its
// disk, and what never comes from there ----

/// The whole blob, or the error that cut its body short.
async fn read_through(store: &dyn BlobStore, digest: &Digest) -> io::Result<Vec<u8>> {
    let mut body = store.get(digest, None).await.unwrap().expect("stored").body;
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

struct Node {
    store: S3BlobStore,
    cache: Arc<LocalCache>,
    dir: tempfile::TempDir,
}

fn node(prefix: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let cache = LocalCache::open(dir.path(), 1 << 30).unwrap();
    Node { store: S3BlobStore::open(s3_config(prefix)).unwrap().with_local_cache(cache.clone()), cache, dir }
}

fn cached_files(node: &Node) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(node.dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| !p.ends_with(".lock")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_second_read_from_its_disk() {
    let prefix = format!("cache/{}", uuid::Uuid::new_v4().simple());
    let writer = S3BlobStore::open(s3_config(&prefix)).unwrap();
    let data = pattern(9 << 20, 21);
    let digest = push(&writer, &data, 4 * MIB).await;
    let b = node(&prefix);

    assert!(read_through(&b.store, &digest).await.unwrap() == data);
    b.cache.idle().await;
    let c = b.cache.counts();
    assert_eq!((c.misses, c.hits, c.fills, c.bytes), (1, 0, 1, data.len() as u64));
    // The copy is the object as stored, byte for byte (then a CRC per MiB).
    let files = cached_files(&b);
    assert_eq!(files.len(), 1);
    assert!(std::fs::read(&files[0]).unwrap()[..data.len()] == data[..]);

    assert!(read_through(&b.store, &digest).await.unwrap() == data);
    let range = b.store.get(&digest, Some(berth_store::BlobRange { start: 5, end_inclusive: 4_000_004 })).await.unwrap().unwrap();
    assert_eq!(range.len, 4_000_000);
    assert_eq!(b.cache.counts().hits, 2);

    // A walk over the store (scrub, fsck, backup) reads the bucket and copies nothing.
    let walked = berth_store::store_walk(async { read_through(&b.store, &digest).await.unwrap() }).await;
    assert!(walked == data);
    let c = b.cache.counts();
    assert_eq!((c.hits, c.misses, c.fills), (2, 1, 1), "the walk neither hit nor counted");

    // Deleting through this node drops its copy with the blob.
    assert!(b.store.delete(&digest).await.unwrap());
    assert_eq!(b.cache.counts().bytes, 0);
    b.cache.idle().await;
    assert!(cached_files(&b).is_empty());
    assert!(b.store.get(&digest, None).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_damaged_on_the_node_is_never_served_whole_and_the_bucket_is_untouched() {
    let prefix = format!("cache/{}", uuid::Uuid::new_v4().simple());
    let b = node(&prefix);
    let data = pattern(6 << 20, 22);
    let digest = push(&b.store, &data, 4 * MIB).await;
    read_through(&b.store, &digest).await.unwrap();
    b.cache.idle().await;
    let file = cached_files(&b).pop().expect("a copy");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();

    let err = read_through(&b.store, &digest).await.expect_err("the damaged copy ends short");
    assert_ne!(err.kind(), io::ErrorKind::InvalidData);
    assert_eq!(b.cache.counts().damaged, 1);
    // The bucket's object is whole and is what the next read serves (and copies again).
    assert!(read_through(&b.store, &digest).await.unwrap() == data);
    assert_eq!(b.store.stat(&digest).await.unwrap(), Some(data.len() as u64));
    assert!(b.store.list_quarantined().await.unwrap().is_empty());

    // A quarantine drops the node's copy too.
    b.cache.idle().await;
    assert_eq!(b.cache.counts().bytes, data.len() as u64);
    assert!(b.store.quarantine(&digest).await.unwrap());
    assert_eq!(b.cache.counts().bytes, 0);
    assert!(b.store.get(&digest, None).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_blobs_deleted_through_another_node_are_swept() {
    let prefix = format!("cache/{}", uuid::Uuid::new_v4().simple());
    let a = S3BlobStore::open(s3_config(&prefix)).unwrap();
    let b = node(&prefix);
    let (kept, gone, sealed) = (pattern(3 << 20, 31), pattern(2 << 20, 32), pattern(1 << 20, 33));
    let kept_digest = push(&a, &kept, 4 * MIB).await;
    let gone_digest = push(&a, &gone, 4 * MIB).await;
    // A namespace's objects (sealed blobs) share the node's cache and the sweep's listing.
    let sealed_digest = push(&*a.namespace("sealed").unwrap(), &sealed, 4 * MIB).await;
    assert!(read_through(&b.store, &kept_digest).await.unwrap() == kept);
    assert!(read_through(&b.store, &gone_digest).await.unwrap() == gone);
    assert!(read_through(&*b.store.namespace("sealed").unwrap(), &sealed_digest).await.unwrap() == sealed);
    b.cache.idle().await;
    assert_eq!(b.cache.counts().bytes, (kept.len() + gone.len() + sealed.len()) as u64);

    // While every object is in the bucket, a sweep removes nothing.
    assert_eq!(b.store.sweep_local_cache().await.unwrap(), 0);
    assert_eq!(cached_files(&b).len(), 3);

    // Deleted through node A: B's copy goes at B's next sweep, the others stay and are served.
    assert!(a.delete(&gone_digest).await.unwrap());
    assert_eq!(b.store.sweep_local_cache().await.unwrap(), 1);
    b.cache.idle().await;
    let c = b.cache.counts();
    assert_eq!((c.swept, c.bytes), (1, (kept.len() + sealed.len()) as u64));
    assert_eq!(cached_files(&b).len(), 2);
    let hits = c.hits;
    assert!(read_through(&b.store, &kept_digest).await.unwrap() == kept);
    assert_eq!(b.cache.counts().hits, hits + 1, "a copy whose object is listed is still served from the disk");
    assert!(b.store.get(&gone_digest, None).await.unwrap().is_none());

    // A copy made after the sweep's snapshot is never judged by its listing.
    let held = b.cache.held();
    let late = pattern(1 << 20, 34);
    let late_digest = push(&a, &late, 4 * MIB).await;
    assert!(read_through(&b.store, &late_digest).await.unwrap() == late);
    b.cache.idle().await;
    assert_eq!(b.cache.drop_absent(held), 2, "nothing seen: the two copies held before go");
    b.cache.idle().await;
    assert_eq!(b.cache.counts().bytes, late.len() as u64);
    assert_eq!(cached_files(&b).len(), 1);
}
