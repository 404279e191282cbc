//! The objects of a backup: which files a metadata snapshot needs, how each is copied (hashed on
//! the way, written aside, renamed: never half-written), and the list that records them.
//!
//! Objects are made durable together, not one by one: the filesystem is synced once per
//! `FLUSH_EVERY` bytes copied (`Flusher`) and once more before the list or the metadata that
//! names them is written. An fsync of each file and its directory cost two disk flushes per
//! object, which for thousands of small layers was most of a backup's time; this is as safe,
//! since nothing trusts an object before the list that records it is written.
//!
//! Resuming: each sync also appends the objects it made durable to a journal
//! (`JOURNAL_FILE`), so a run that is killed or fails keeps them, and the next run into the same
//! directory copies only the rest. The journal goes once the run's object list is written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_store::{Algorithm, BlobObject, ContentStore, Digest, DigestHasher, FsBlobStore, SqliteMetadataStore};
use sha2::Digest as _;

/// The list of a backup's objects, one per line: `<path>\t<size>\t<sha256 of the stored bytes>`.
pub const OBJECTS_FILE: &str = "objects.tsv";
/// Objects an unfinished run made durable, in the list's format.
pub const JOURNAL_FILE: &str = ".objects.journal.tsv";
const COPY_CHUNK: usize = 1 << 20;

/// One stored object a snapshot records: a clear blob (scope "") or an encrypted one.
#[derive(Debug, Clone)]
pub struct Object {
    /// Path under the data directory (and under the backup).
    pub path: PathBuf,
    pub digest: Digest,
    pub scope: String,
}

impl Object {
    fn of(record: &BlobObject) -> Object {
        let path = match record.scope.as_str() {
            "" => FsBlobStore::at("").blob_path(&record.digest),
            scope => FsBlobStore::at("sealed").blob_path(&berth_core::sealed_object_name(scope, &record.digest)),
        };
        Object { path, digest: record.digest.clone(), scope: record.scope.clone() }
    }

    /// Whether the object may be missing from a healthy registry: the bytes of objects under a
    /// deleted KMS key are removed on purpose (their records stay).
    pub fn may_be_shredded(&self) -> bool {
        self.scope.starts_with("kms:") || self.scope.starts_with("dsse:")
    }
}

/// What a backup knows of one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub sha256: String,
}

/// Every object the snapshot at `snapshot` records, read through the store's own paging.
pub async fn recorded(snapshot: &Path) -> anyhow::Result<Vec<Object>> {
    let store = SqliteMetadataStore::open_snapshot(snapshot).await.context("opening the metadata snapshot")?;
    let mut objects = Vec::new();
    let mut after: Option<(Digest, String)> = None;
    loop {
        let page = store.list_blob_objects(after.as_ref().map(|(d, s)| (d, s.as_str())), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.digest.clone(), last.scope.clone()));
        objects.extend(page.iter().map(Object::of));
    }
    store.close().await;
    Ok(objects)
}

/// Copies `from` to `to`, hashing the bytes on the way; `to` appears only complete (durable once
/// the caller's `sync_filesystem` returns).
/// When `expect` is given the bytes must match it (size and sha256), and a clear blob's bytes
/// must also match its digest; nothing is left at `to` otherwise.
pub fn copy(from: &Path, to: &Path, object: &Object, expect: Option<&Entry>, pacer: &Pacer) -> anyhow::Result<Entry> {
    let dir = to.parent().context("an object path has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(format!(".{}.partial", to.file_name().and_then(|n| n.to_str()).unwrap_or("object")));
    let mut out = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut written = 0u64;
    let (hashes, size) = read_through(from, object, |chunk| {
        out.write_all(chunk).with_context(|| format!("writing {}", partial.display()))?;
        // On the way to the disk at once, not in a burst a push's fsync would wait behind.
        berth_store::writeback::start_writeback(&out, written, chunk.len() as u64);
        written += chunk.len() as u64;
        pacer.pace_blocking(chunk.len() as u64);
        Ok(())
    })?;
    let entry = Entry { size, sha256: hashes.sha256() };
    if let Err(problem) = hashes.check(object, &entry, expect) {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!("{}: {problem}", from.display());
    }
    drop(out);
    std::fs::rename(&partial, to).with_context(|| format!("renaming {} into place", partial.display()))?;
    Ok(entry)
}

/// [`copy`] for bytes read from a store (a cluster's bucket): streamed into `to` aside, checked,
/// renamed into place. `expect_len` is the size the store announced.
pub async fn copy_stream(
    mut body: berth_store::ByteStream,
    expect_len: u64,
    to: &Path,
    object: &Object,
    pacer: &Pacer,
) -> anyhow::Result<Entry> {
    use futures::TryStreamExt;
    use tokio::io::AsyncWriteExt;
    let dir = to.parent().context("an object path has a directory")?;
    tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(format!(".{}.partial", to.file_name().and_then(|n| n.to_str()).unwrap_or("object")));
    let mut out = tokio::fs::File::create(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
    let mut check = Checker::new(object);
    let written: anyhow::Result<()> = async {
        while let Some(chunk) = body.try_next().await.with_context(|| format!("reading {}", object.path.display()))? {
            check.update(&chunk);
            out.write_all(&chunk).await.with_context(|| format!("writing {}", partial.display()))?;
            pacer.pace(chunk.len() as u64).await;
        }
        out.flush().await.with_context(|| format!("writing {}", partial.display()))
    }
    .await;
    let checked = written.and_then(|()| {
        anyhow::ensure!(check.size == expect_len, "{}: {} bytes read, the store announced {expect_len}", object.path.display(), check.size);
        check.finish(object, None).map_err(|p| anyhow::anyhow!("{}: {p}", object.path.display()))
    });
    match checked {
        Ok(entry) => {
            drop(out);
            tokio::fs::rename(&partial, to).await.with_context(|| format!("renaming {} into place", partial.display()))?;
            Ok(entry)
        }
        Err(e) => {
            drop(out);
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

/// Holds a backup's copying to a rate (`--max-rate-mib`) so that it leaves the disk to the
/// registry serving from it: every copy reports its chunks, and waits while the bytes copied so
/// far are ahead of the rate since the start. Unlimited by default.
pub struct Pacer {
    bytes_per_second: Option<u64>,
    started: Instant,
    copied: AtomicU64,
}

impl Pacer {
    pub fn new(mib_per_second: Option<u64>) -> Pacer {
        let bytes_per_second = mib_per_second.filter(|m| *m > 0).map(|m| m.saturating_mul(1 << 20));
        Pacer { bytes_per_second, started: Instant::now(), copied: AtomicU64::new(0) }
    }

    pub fn unlimited() -> Pacer {
        Pacer::new(None)
    }

    /// How long a copy that just moved `bytes` waits.
    fn wait(&self, bytes: u64) -> Option<Duration> {
        let rate = self.bytes_per_second?;
        let copied = self.copied.fetch_add(bytes, Ordering::Relaxed) + bytes;
        Duration::from_secs_f64(copied as f64 / rate as f64).checked_sub(self.started.elapsed())
    }

    /// On a blocking thread (a file copy).
    pub fn pace_blocking(&self, bytes: u64) {
        if let Some(wait) = self.wait(bytes) {
            std::thread::sleep(wait);
        }
    }

    pub async fn pace(&self, bytes: u64) {
        if let Some(wait) = self.wait(bytes) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Bytes a backup copies between two syncs of the target filesystem, so the backup never leaves
/// more than this (plus what is in flight) for the kernel to write back at once. These syncs
/// alone did not make a backup gentler on a registry serving from the same disk (push p99 rose
/// 8–9× during a 5 GB backup with them and without); starting each chunk's writeback as it is
/// written did, for a rate-held backup (push p99 at 30 MiB/s 158 → 43 ms, bench/RESULTS.md).
const FLUSH_EVERY: u64 = 64 * 1024 * 1024;

/// And at least this often while objects are being copied, so a slow (rate-held) run journals
/// its progress too.
const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// Syncs the target filesystem every `FLUSH_EVERY` bytes copied or `FLUSH_INTERVAL`, from
/// whichever copy crosses the mark (copies run on several threads), then journals the objects
/// that sync made durable.
pub struct Flusher {
    dir: PathBuf,
    unsynced: AtomicU64,
    state: std::sync::Mutex<FlushState>,
}

struct FlushState {
    last_sync: Instant,
    /// Objects in place (renamed) since the last sync began: durable once the next one returns.
    pending: Vec<(PathBuf, Entry)>,
}

impl Flusher {
    pub fn new(dir: &Path) -> Flusher {
        let state = FlushState { last_sync: Instant::now(), pending: Vec::new() };
        Flusher { dir: dir.to_path_buf(), unsynced: AtomicU64::new(0), state: std::sync::Mutex::new(state) }
    }

    /// A copy finished: `done` is the object it put in place (None when it copied nothing).
    pub fn copied(&self, done: Option<(&Object, &Entry)>, bytes: u64) -> anyhow::Result<()> {
        let unsynced = self.unsynced.fetch_add(bytes, Ordering::SeqCst) + bytes;
        let journaled = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((object, entry)) = done {
                state.pending.push((object.path.clone(), entry.clone()));
            }
            if unsynced < FLUSH_EVERY && state.last_sync.elapsed() < FLUSH_INTERVAL {
                return Ok(());
            }
            state.last_sync = Instant::now();
            self.unsynced.store(0, Ordering::SeqCst);
            // Taken before the sync: every one of them was renamed into place before it starts.
            std::mem::take(&mut state.pending)
        };
        sync_filesystem(&self.dir)?;
        append_journal(&self.dir, &journaled)
    }
}

fn append_journal(dir: &Path, entries: &[(PathBuf, Entry)]) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let path = dir.join(JOURNAL_FILE);
    let out = entries_text(entries);
    let mut file = File::options().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    file.write_all(out.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    file.sync_data().with_context(|| format!("syncing {}", path.display()))
}

/// Forgets the journal once the object list records the run.
pub fn remove_journal(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(dir.join(JOURNAL_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("removing the backup journal"),
        _ => Ok(()),
    }
}

/// Flushes every file and directory written on the filesystem holding `dir` (syncfs(2)): the
/// objects copied or linked so far become durable, in one flush.
pub fn sync_filesystem(dir: &Path) -> anyhow::Result<()> {
    let handle = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    rustix::fs::syncfs(&handle).with_context(|| format!("syncing the filesystem of {}", dir.display()))
}

/// Re-reads a stored object and checks it against its entry (and a clear blob against its digest).
pub fn check(path: &Path, object: &Object, entry: &Entry) -> anyhow::Result<()> {
    let (hashes, size) = read_through(path, object, |_| Ok(()))?;
    let found = Entry { size, sha256: hashes.sha256() };
    hashes.check(object, &found, Some(entry)).map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))
}

/// The checks of [`copy`] for bytes streamed elsewhere (a bucket): fed chunk by chunk, then
/// judged against the object (and an expected entry) at the end.
pub struct Checker {
    hashes: Hashes,
    size: u64,
}

impl Checker {
    pub fn new(object: &Object) -> Checker {
        Checker { hashes: Hashes::new(object), size: 0 }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.hashes.update(chunk);
        self.size += chunk.len() as u64;
    }

    pub fn finish(self, object: &Object, expect: Option<&Entry>) -> Result<Entry, String> {
        let entry = Entry { size: self.size, sha256: self.hashes.sha256() };
        self.hashes.check(object, &entry, expect)?;
        Ok(entry)
    }
}

/// Reads a file once, hashing it and handing each chunk to `sink`; returns the hashes and size.
fn read_through(path: &Path, object: &Object, mut sink: impl FnMut(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<(Hashes, u64)> {
    let mut source = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hashes = Hashes::new(object);
    let mut size = 0u64;
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        let n = source.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok((hashes, size));
        }
        hashes.update(&buf[..n]);
        sink(&buf[..n])?;
        size += n as u64;
    }
}

/// The sha256 of the stored bytes, and of a clear sha512 blob its own digest too.
struct Hashes {
    sha256: sha2::Sha256,
    sha512: Option<DigestHasher>,
}

impl Hashes {
    fn new(object: &Object) -> Hashes {
        let sha512 =
            (object.scope.is_empty() && object.digest.algorithm() == Algorithm::Sha512).then(|| DigestHasher::new(Algorithm::Sha512));
        Hashes { sha256: sha2::Sha256::new(), sha512 }
    }

    fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    fn sha256(&self) -> String {
        hex::encode(self.sha256.clone().finalize())
    }

    fn check(self, object: &Object, found: &Entry, expect: Option<&Entry>) -> Result<(), String> {
        if let Some(expect) = expect {
            if expect != found {
                return Err(format!(
                    "holds {} bytes with sha256 {}, the backup recorded {} bytes with sha256 {}",
                    found.size, found.sha256, expect.size, expect.sha256
                ));
            }
        }
        if object.scope.is_empty() {
            let actual = match self.sha512 {
                Some(h) => h.finish().hex().to_string(),
                None => found.sha256.clone(),
            };
            if actual != object.digest.hex() {
                return Err(format!("holds content whose digest is not {}", object.digest));
            }
        }
        Ok(())
    }
}

/// Hard-links a previous generation's object into a new one (same inode, no bytes copied).
pub fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::hard_link(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Reads a backup's object list (empty when there is none yet).
pub fn read_list(dir: &Path) -> anyhow::Result<HashMap<PathBuf, Entry>> {
    read_entries(&dir.join(OBJECTS_FILE))
}

/// The list and, when an unfinished run left one, its journal: every object the directory
/// holds durably. A journal's last line may be torn (a crash while appending): it is skipped.
pub fn read_list_and_journal(dir: &Path) -> anyhow::Result<HashMap<PathBuf, Entry>> {
    let mut entries = read_list(dir)?;
    let journal = dir.join(JOURNAL_FILE);
    match std::fs::read_to_string(&journal) {
        Ok(text) => {
            for line in text.lines() {
                if let Some((p, e)) = parse_entry(line) {
                    entries.insert(p, e);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", journal.display())),
    }
    Ok(entries)
}

fn parse_entry(line: &str) -> Option<(PathBuf, Entry)> {
    let mut fields = line.split('\t');
    let (Some(p), Some(size), Some(sha256), None) = (fields.next(), fields.next(), fields.next(), fields.next()) else { return None };
    let size = size.parse().ok()?;
    (sha256.len() == 64).then(|| (PathBuf::from(p), Entry { size, sha256: sha256.to_string() }))
}

fn read_entries(path: &Path) -> anyhow::Result<HashMap<PathBuf, Entry>> {
    let path = path.to_path_buf();
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut entries = HashMap::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let mut fields = line.split('\t');
        let (Some(p), Some(size), Some(sha256), None) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
            anyhow::bail!("{} line {}: not <path>\\t<size>\\t<sha256>", path.display(), n + 1);
        };
        let size = size.parse().with_context(|| format!("{} line {}: size", path.display(), n + 1))?;
        entries.insert(PathBuf::from(p), Entry { size, sha256: sha256.to_string() });
    }
    Ok(entries)
}

/// A list's text (objects.tsv's format, one line per object).
pub fn list_text(objects: &[(Object, Entry)]) -> String {
    let entries: Vec<(PathBuf, Entry)> = objects.iter().map(|(o, e)| (o.path.clone(), e.clone())).collect();
    entries_text(&entries)
}

fn entries_text(entries: &[(PathBuf, Entry)]) -> String {
    entries.iter().map(|(p, e)| format!("{}\t{}\t{}\n", p.display(), e.size, e.sha256)).collect()
}

/// Writes a backup's object list (aside, then renamed: a crash leaves the previous one).
pub fn write_list(dir: &Path, objects: &[(Object, Entry)]) -> anyhow::Result<()> {
    let partial = dir.join(format!(".{OBJECTS_FILE}.partial"));
    let mut out = std::io::BufWriter::new(File::create(&partial).with_context(|| format!("creating {}", partial.display()))?);
    out.write_all(list_text(objects).as_bytes()).context("writing the object list")?;
    let file = out.into_inner().map_err(|e| e.into_error()).context("writing the object list")?;
    file.sync_all().context("syncing the object list")?;
    std::fs::rename(&partial, dir.join(OBJECTS_FILE)).context("renaming the object list into place")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pacer_holds_copies_to_its_rate() {
        let unlimited = Pacer::unlimited();
        assert_eq!(unlimited.wait(u64::MAX / 2), None);
        let pacer = Pacer::new(Some(2));
        // 4 MiB at 2 MiB/s is due 2 s after the start: the copy waits for most of that.
        let wait = pacer.wait(4 << 20).expect("ahead of the rate");
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2), "{wait:?}");
        // A rate of 0 is no limit (as the flag's absence).
        assert_eq!(Pacer::new(Some(0)).wait(1 << 30), None);
    }
}
