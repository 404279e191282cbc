//! `berth migrate`: copy an embedded install (a stopped berth's data directory: SQLite +
//! filesystem blobs) into shared storage (PostgreSQL + S3, or a shared directory).
//!
//! Order: blobs first, then metadata, so the destination's metadata never names a blob it does
//! not hold. Every step is resumable: a blob the destination already holds (right size) is
//! skipped, and rows go in with `ON CONFLICT DO NOTHING` in committed batches
//! (`berth_postgres::import`). Running the command again after an interruption finishes the
//! job. Each copied blob is hashed on the way and committed only when it matches its digest;
//! `--verify` re-reads every destination blob afterwards.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_postgres::import::{self, ImportReport, SqliteSource};
use berth_store::{BlobStore, Digest, FsBlobStore, StoreError};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sha2::Digest as _;

use crate::storage::StorageArgs;
use berth_store::DigestHasher;

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// The embedded install's data directory. It is locked while copying, so berth must be
    /// stopped (a running berth would change it under the copy).
    #[arg(long)]
    pub from_data_dir: PathBuf,
    /// The destination: --metadata postgres://… and --blobs s3://… (or file:///PATH).
    #[command(flatten)]
    pub to: StorageArgs,
    /// After copying, re-read every blob from the destination and re-hash it.
    #[arg(long)]
    pub verify: bool,
    /// Report what would be copied without writing anything (the destination schema is still
    /// created, as a node would on its first start).
    #[arg(long)]
    pub dry_run: bool,
    /// Blobs copied at the same time.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
}

/// What happened to one source blob.
enum BlobOutcome {
    Copied,
    Skipped,
    /// Would be copied (dry run).
    Missing,
    /// The source cannot provide the blob as its digest says (missing, wrong size, corrupt).
    Failed(String),
}

#[derive(Default)]
struct BlobTotals {
    copied: u64,
    copied_bytes: u64,
    skipped: u64,
    skipped_bytes: u64,
    would_copy: u64,
    would_copy_bytes: u64,
    failed: Vec<(String, String)>,
    seconds: f64,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let source_dir = args.from_data_dir.clone();
    let db_path = source_dir.join("berth.db");
    if !db_path.is_file() {
        anyhow::bail!("{} holds no berth.db: not the data directory of an embedded berth (one on SQLite)", source_dir.display());
    }
    let pg_url = check_destination(&source_dir, &args.to)?;
    // Held until the end: `berth serve` takes the same lock, so it cannot start on the source
    // mid-copy, and a running one makes this fail here rather than copy a moving target.
    let _lock = lock_data_dir(&source_dir)?;
    let (ok, summary) =
        transfer(&source_dir, &args.to, &pg_url, &Transfer { verify: args.verify, dry_run: args.dry_run, jobs: args.jobs }).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if ok {
        eprintln!(
            "berth migrate: {}. Start the nodes with the same --metadata/--blobs options.",
            if args.dry_run { "dry run finished, nothing written" } else { "done, everything matches" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("berth migrate: finished with problems (see above); running it again resumes where it stopped");
        Ok(ExitCode::from(2))
    }
}

/// How a transfer runs.
pub(crate) struct Transfer {
    /// Re-read and re-hash every destination blob afterwards.
    pub verify: bool,
    pub dry_run: bool,
    pub jobs: usize,
}

/// Copies the data directory `source_dir` (an embedded install, or a backup: the same layout)
/// into the cluster `to` names: blobs, then encrypted objects, then the metadata, then checks.
/// Returns whether everything matches, and the summary (printed by the caller). The caller
/// holds whatever lock keeps the source still.
pub(crate) async fn transfer(
    source_dir: &Path,
    to: &StorageArgs,
    pg_url: &str,
    args: &Transfer,
) -> anyhow::Result<(bool, serde_json::Value)> {
    let source_dir = source_dir.to_path_buf();
    let db_path = source_dir.join("berth.db");
    let source_meta = SqliteSource::open(&db_path).await.context("opening the source metadata")?;
    // Read only: nothing is created in the source.
    let source_blobs = FsBlobStore::at(&source_dir);
    let (_dest_meta, dest_blobs) = crate::storage::open(&source_dir, to).await.context("opening the destination")?;
    eprintln!("berth migrate: {} -> {}", source_dir.display(), to.describe());

    // 1. Blobs.
    let blobs = source_meta.blobs().await.context("listing the source blobs")?;
    let totals = copy_blobs(&source_blobs, dest_blobs.as_ref(), &blobs, args.jobs.max(1), args.dry_run).await?;
    // 1b. Encrypted objects: copied as they are stored (ciphertext; the nodes open them with the
    // same root key), checked by their stored size.
    let sealed_objects = source_meta.sealed_objects().await.context("listing the source's encrypted objects")?;
    let source_sealed = FsBlobStore::at(source_dir.join("sealed"));
    let dest_sealed = dest_blobs.namespace("sealed").context("the destination blob store has no place for encrypted objects")?;
    let sealed = copy_sealed(&source_sealed, dest_sealed.as_ref(), &sealed_objects, args.jobs.max(1), args.dry_run).await?;
    eprintln!(
        "encrypted objects: {} copied, {} already there, {} failed{}",
        sealed.copied,
        sealed.skipped,
        sealed.failed.len(),
        if sealed_objects.is_empty() {
            String::new()
        } else {
            format!(" (the nodes need this directory's root key: {}/root.key or BERTH_ROOT_KEY)", source_dir.display())
        }
    );
    for (name, why) in &sealed.failed {
        eprintln!("  FAILED {name}: {why}");
    }
    let mut ok = totals.failed.is_empty() && sealed.failed.is_empty();
    let mut summary = json!({
        "dry_run": args.dry_run,
        "blobs": {
            "source": blobs.len(),
            "copied": totals.copied,
            "copied_bytes": totals.copied_bytes,
            "skipped": totals.skipped,
            "skipped_bytes": totals.skipped_bytes,
            "would_copy": totals.would_copy,
            "would_copy_bytes": totals.would_copy_bytes,
            "failed": totals.failed.iter().map(|(d, why)| json!({"digest": d, "error": why})).collect::<Vec<_>>(),
            "seconds": (totals.seconds * 1000.0).round() / 1000.0,
        },
        "encrypted_objects": {
            "source": sealed_objects.len(),
            "copied": sealed.copied,
            "skipped": sealed.skipped,
            "failed": sealed.failed.iter().map(|(d, why)| json!({"object": d, "error": why})).collect::<Vec<_>>(),
        },
    });
    eprintln!(
        "blobs: {} copied ({}), {} already there ({}), {} failed, in {:.1} s ({}/s)",
        totals.copied,
        human(totals.copied_bytes),
        totals.skipped,
        human(totals.skipped_bytes),
        totals.failed.len(),
        totals.seconds,
        human((totals.copied_bytes as f64 / totals.seconds.max(0.001)) as u64),
    );
    for (digest, why) in &totals.failed {
        eprintln!("  FAILED {digest}: {why}");
    }
    if args.dry_run && totals.would_copy > 0 {
        eprintln!("  would copy {} blobs ({})", totals.would_copy, human(totals.would_copy_bytes));
    }
    if !ok && !args.dry_run {
        // Metadata naming those blobs would point at nothing in the destination.
        eprintln!(
            "berth migrate: {} blob(s) could not be copied, so no metadata was copied. Check the source with \
             `berth fsck --data-dir {}`, repair or delete the images concerned, and run migrate again.",
            totals.failed.len(),
            source_dir.display()
        );
        summary["ok"] = json!(false);
        return Ok((false, summary));
    }

    // 2. Metadata.
    let report = copy_metadata(&source_meta, &db_path, pg_url, args.dry_run).await?;
    ok &= report.matches() || args.dry_run;
    summary["schema_version"] = json!(report.schema_version);
    summary["tables"] = json!(report
        .tables
        .iter()
        .map(|t| json!({
            "table": t.table,
            "source_rows": t.source_rows,
            "inserted": t.inserted,
            "already_present": t.already_present,
            "destination_rows": t.destination_rows,
            "matches": t.matches(),
        }))
        .collect::<Vec<_>>());
    summary["not_copied"] =
        json!(report.not_copied.iter().map(|(t, n, why)| json!({"table": t, "source_rows": n, "why": why})).collect::<Vec<_>>());
    for t in &report.tables {
        eprintln!(
            "  {:<22} {:>8} rows in source, {:>8} inserted, {:>8} already there, {:>8} in destination{}",
            t.table,
            t.source_rows,
            t.inserted,
            t.already_present,
            t.destination_rows,
            if t.matches() || args.dry_run { "" } else { "  MISMATCH" }
        );
    }
    for (t, n, why) in &report.not_copied {
        if *n > 0 {
            eprintln!("  {t:<22} {n:>8} rows not copied: {why}");
        }
    }

    // 3. Verification: every blob the source's metadata names is in the destination, whole.
    if !args.dry_run {
        let mut problems = verify_blobs(dest_blobs.as_ref(), &blobs, args.verify, args.jobs.max(1)).await?;
        problems.extend(verify_sealed(&source_sealed, dest_sealed.as_ref(), &sealed_objects).await?);
        summary["verify"] = json!({
            "rehashed": args.verify,
            "problems": problems.iter().map(|(d, why)| json!({"digest": d, "error": why})).collect::<Vec<_>>(),
        });
        for (digest, why) in &problems {
            eprintln!("  VERIFY FAILED {digest}: {why}");
        }
        eprintln!(
            "verify: {} blobs {} in the destination, {} problem(s)",
            blobs.len(),
            if args.verify { "re-read and re-hashed" } else { "present with the right size" },
            problems.len()
        );
        ok &= problems.is_empty();
    }
    summary["ok"] = json!(ok);
    Ok((ok, summary))
}

/// The destination's PostgreSQL URL, after refusing destinations that would be the source
/// itself or that this command does not write.
pub(crate) fn check_destination(source: &Path, to: &StorageArgs) -> anyhow::Result<String> {
    let pg_url = match to.metadata.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url.to_string(),
        None | Some("sqlite") => anyhow::bail!(
            "--metadata must name the destination PostgreSQL (postgres://…): migrate copies into PostgreSQL only \
             (a `sqlite` destination would be the source's own berth.db)"
        ),
        Some(_) => anyhow::bail!("--metadata: migrate copies into PostgreSQL only (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"),
    };
    match to.blobs.as_deref() {
        None | Some("fs") => {
            anyhow::bail!("--blobs must name the destination (s3://BUCKET/PREFIX or file:///PATH); `fs` is the source itself")
        }
        Some(url) if url.starts_with("file://") => {
            let dest = Path::new(&url["file://".len()..]);
            let same = match (dest.canonicalize(), source.canonicalize()) {
                (Ok(d), Ok(s)) => d == s,
                _ => false,
            };
            if same {
                anyhow::bail!("--blobs {url} is the source data directory itself");
            }
        }
        Some(_) => {}
    }
    Ok(pg_url)
}

/// The same exclusive lock `DataDir::open` takes (`berth.lock`).
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let busy = format!("{} is in use by another berth process (a running `berth serve`?); stop it first", dir.display());
    crate::datadir::lock_dir(dir, "berth.lock", &busy)
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    // The template is a constant; should it ever be rejected the bar still counts, plainly.
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

async fn copy_blobs(
    source: &FsBlobStore,
    dest: &dyn BlobStore,
    blobs: &[(String, u64)],
    jobs: usize,
    dry_run: bool,
) -> anyhow::Result<BlobTotals> {
    let total: u64 = blobs.iter().map(|(_, s)| *s).sum();
    let pb = bar(total, "blobs {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}");
    let counts = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]; // copied, skipped, failed
    let started = Instant::now();
    let results: Vec<(String, u64, BlobOutcome)> = futures::stream::iter(blobs.iter().cloned())
        .map(|(digest, size)| {
            let pb = pb.clone();
            let counts = &counts;
            async move {
                let outcome = copy_blob(source, dest, &digest, size, dry_run, &pb).await?;
                let slot = match outcome {
                    BlobOutcome::Copied => 0,
                    BlobOutcome::Skipped | BlobOutcome::Missing => 1,
                    BlobOutcome::Failed(_) => 2,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
                pb.set_message(format!(
                    "{} copied, {} skipped, {} failed of {}",
                    counts[0].load(Ordering::Relaxed),
                    counts[1].load(Ordering::Relaxed),
                    counts[2].load(Ordering::Relaxed),
                    blobs.len()
                ));
                anyhow::Ok((digest, size, outcome))
            }
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    pb.finish_and_clear();
    let mut totals = BlobTotals { seconds: started.elapsed().as_secs_f64(), ..Default::default() };
    for (digest, size, outcome) in results {
        match outcome {
            BlobOutcome::Copied => {
                totals.copied += 1;
                totals.copied_bytes += size;
            }
            BlobOutcome::Skipped => {
                totals.skipped += 1;
                totals.skipped_bytes += size;
            }
            BlobOutcome::Missing => {
                totals.would_copy += 1;
                totals.would_copy_bytes += size;
            }
            BlobOutcome::Failed(why) => totals.failed.push((digest, why)),
        }
    }
    totals.failed.sort();
    Ok(totals)
}

/// Copies one blob, streaming: the source's chunks go to the destination's upload as they are
/// read and hashed, so memory holds a few chunks (and, for S3, one part), never the blob.
/// Source problems are an outcome (reported, the run goes on); destination errors abort the
/// run (running it again resumes).
async fn copy_blob(
    source: &FsBlobStore,
    dest: &dyn BlobStore,
    digest_text: &str,
    size: u64,
    dry_run: bool,
    pb: &ProgressBar,
) -> anyhow::Result<BlobOutcome> {
    let digest = match Digest::from_str(digest_text) {
        Ok(d) => d,
        Err(e) => return Ok(BlobOutcome::Failed(format!("not a valid digest in the source metadata: {e}"))),
    };
    match dest.stat(&digest).await.with_context(|| format!("checking {digest} in the destination"))? {
        Some(n) if n == size => {
            pb.inc(size);
            return Ok(BlobOutcome::Skipped);
        }
        Some(n) => {
            if dry_run {
                pb.inc(size);
                return Ok(BlobOutcome::Missing);
            }
            // Not this blob (a commit keeps an existing copy rather than replace it), so the
            // wrong one goes first.
            pb.println(format!("replacing {digest} in the destination: it holds {n} bytes, the source {size}"));
            dest.delete(&digest).await.with_context(|| format!("removing the wrong-size copy of {digest} from the destination"))?;
        }
        None if dry_run => {
            pb.inc(size);
            return Ok(BlobOutcome::Missing);
        }
        None => {}
    }
    let reader = match source.get(&digest, None).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            pb.inc(size);
            return Ok(BlobOutcome::Failed("the source metadata lists it but its file is missing".into()));
        }
        Err(e) => {
            pb.inc(size);
            return Ok(BlobOutcome::Failed(format!("reading the source: {e}")));
        }
    };
    if reader.len != size {
        pb.inc(size);
        return Ok(BlobOutcome::Failed(format!("the source file holds {} bytes, its metadata says {size}", reader.len)));
    }

    let id = upload_id(&digest);
    let cursor = dest.create_upload(&id).await.with_context(|| format!("starting the upload of {digest} to the destination"))?;
    let hasher = Arc::new(Mutex::new(DigestHasher::new(digest.algorithm())));
    let body = {
        let hasher = hasher.clone();
        let pb = pb.clone();
        reader
            .body
            .inspect_ok(move |chunk| {
                hasher.lock().unwrap_or_else(|p| p.into_inner()).update(chunk);
                pb.inc(chunk.len() as u64);
            })
            .boxed()
    };
    let cursor = match dest.append_upload(&id, &cursor, body).await {
        Ok(c) => c,
        Err(e) => {
            discard(dest, &id, None).await;
            return Err(e).with_context(|| format!("copying {digest} to the destination"));
        }
    };
    let hasher = match Arc::try_unwrap(hasher) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        // The stream (and its clone of the hasher) is gone once append_upload returned.
        Err(_) => anyhow::bail!("internal: the hash of {digest} is still shared after its upload"),
    };
    let got = hasher.finish();
    if got != digest || cursor.len != size {
        discard(dest, &id, Some(&cursor)).await;
        return Ok(BlobOutcome::Failed(format!("corrupt in the source: its {} bytes hash to {got}; not copied", cursor.len)));
    }
    dest.commit_upload(&id, &cursor, &digest).await.with_context(|| format!("committing {digest} in the destination"))?;
    Ok(BlobOutcome::Copied)
}

/// Best effort: a leftover session is an orphan the cluster's GC sweeps anyway.
async fn discard(dest: &dyn BlobStore, id: &str, cursor: Option<&berth_store::UploadCursor>) {
    if let Err(e) = dest.delete_upload(id, cursor).await {
        tracing::warn!(upload = id, error = %e, "could not remove an abandoned migration upload");
    }
}

/// A fresh upload session id in the UUID shape the blob stores accept (berth has no uuid
/// dependency; uniqueness comes from the digest, the process, the time and a counter).
fn upload_id(digest: &Digest) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let seed = format!("{digest}/{}/{nanos}/{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let h = hex::encode(sha2::Sha256::digest(seed.as_bytes()));
    format!("{}-{}-4{}-a{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

#[derive(Default)]
struct SealedTotals {
    copied: u64,
    skipped: u64,
    failed: Vec<(String, String)>,
}

/// The stored name of each encrypted object (digest, scope, plaintext size).
fn sealed_names(objects: &[(String, String, u64)]) -> Vec<(String, Option<Digest>)> {
    objects
        .iter()
        .map(|(digest, scope, _)| {
            let label = format!("{digest} under {scope}");
            (label, Digest::from_str(digest).ok().map(|d| berth_core::sealed_object_name(scope, &d)))
        })
        .collect()
}

/// Copies encrypted objects byte for byte: the source and destination sizes must agree (what
/// they hold is authenticated when read, by the nodes or `berth fsck`).
async fn copy_sealed(
    source: &dyn BlobStore,
    dest: &dyn BlobStore,
    objects: &[(String, String, u64)],
    jobs: usize,
    dry_run: bool,
) -> anyhow::Result<SealedTotals> {
    let pb = bar(objects.len() as u64, "encrypted {bar:40} {pos}/{len} objects");
    let outcomes: Vec<(String, Result<bool, String>)> = futures::stream::iter(sealed_names(objects))
        .map(|(label, name)| {
            let pb = pb.clone();
            async move {
                let outcome = match name {
                    None => Err("not a valid digest in the source metadata".to_string()),
                    Some(name) => copy_stored(source, dest, &name, dry_run).await,
                };
                pb.inc(1);
                (label, outcome)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    pb.finish_and_clear();
    let mut totals = SealedTotals::default();
    for (label, outcome) in outcomes {
        match outcome {
            Ok(true) => totals.copied += 1,
            Ok(false) => totals.skipped += 1,
            Err(why) => totals.failed.push((label, why)),
        }
    }
    totals.failed.sort();
    Ok(totals)
}

/// True when copied, false when the destination already holds it (or a dry run).
async fn copy_stored(source: &dyn BlobStore, dest: &dyn BlobStore, name: &Digest, dry_run: bool) -> Result<bool, String> {
    let size = source.stat(name).await.map_err(|e| e.to_string())?.ok_or("the source metadata lists it but its file is missing")?;
    if dest.stat(name).await.map_err(|e| e.to_string())? == Some(size) || dry_run {
        return Ok(false);
    }
    let reader = source.get(name, None).await.map_err(|e| e.to_string())?.ok_or("its file vanished")?;
    let id = upload_id(name);
    let cursor = dest.create_upload(&id).await.map_err(|e| e.to_string())?;
    let cursor = match dest.append_upload(&id, &cursor, reader.body).await {
        Ok(c) if c.len == size => c,
        Ok(c) => {
            discard(dest, &id, Some(&c)).await;
            return Err(format!("read {} bytes of {size}", c.len));
        }
        Err(e) => {
            discard(dest, &id, None).await;
            return Err(e.to_string());
        }
    };
    dest.commit_upload(&id, &cursor, name).await.map_err(|e| e.to_string())?;
    Ok(true)
}

async fn verify_sealed(
    source: &dyn BlobStore,
    dest: &dyn BlobStore,
    objects: &[(String, String, u64)],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut problems = Vec::new();
    for (label, name) in sealed_names(objects) {
        let Some(name) = name else { continue };
        let (want, got) = (source.stat(&name).await?, dest.stat(&name).await?);
        if want != got {
            problems.push((label, format!("the destination holds {got:?} bytes, the source {want:?}")));
        }
    }
    Ok(problems)
}

async fn copy_metadata(source: &SqliteSource, db_path: &Path, pg_url: &str, dry_run: bool) -> anyhow::Result<ImportReport> {
    let total = source.rows_to_copy().await.context("counting the source rows")?;
    let pb = bar(total, "rows  {bar:40} {pos}/{len} {msg}");
    // The callback reports rows done within a table; the bar wants rows done overall.
    let finished_tables = AtomicU64::new(0);
    let current = Mutex::new((String::new(), 0u64));
    let progress = |table: &str, done: u64| {
        let mut cur = current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.0 != table {
            finished_tables.fetch_add(cur.1, Ordering::Relaxed);
            *cur = (table.to_string(), 0);
        }
        cur.1 = done;
        pb.set_position(finished_tables.load(Ordering::Relaxed) + done);
        pb.set_message(table.to_string());
    };
    let report = import::import_sqlite(db_path, pg_url, dry_run, progress).await.map_err(|e| describe_store_error(e, pg_url))?;
    pb.finish_and_clear();
    Ok(report)
}

/// Store errors never hold the URL, but say so explicitly should a driver message ever quote it.
fn describe_store_error(e: StoreError, pg_url: &str) -> anyhow::Error {
    let text = e.to_string();
    match password_of(pg_url) {
        Some(pw) if !pw.is_empty() && text.contains(pw) => anyhow::anyhow!("{}", text.replace(pw, "***")),
        _ => anyhow::Error::new(e).context("copying the metadata"),
    }
}

fn password_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    userinfo.split_once(':').map(|(_, pw)| pw)
}

async fn verify_blobs(dest: &dyn BlobStore, blobs: &[(String, u64)], rehash: bool, jobs: usize) -> anyhow::Result<Vec<(String, String)>> {
    let total = if rehash { blobs.iter().map(|(_, s)| *s).sum() } else { blobs.len() as u64 };
    let pb = if rehash {
        bar(total, "verify {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    } else {
        bar(total, "verify {bar:40} {pos}/{len} blobs")
    };
    let problems: Vec<Option<(String, String)>> = futures::stream::iter(blobs.iter().cloned())
        .map(|(digest_text, size)| {
            let pb = pb.clone();
            async move {
                let problem = verify_blob(dest, &digest_text, size, rehash, &pb).await?;
                if !rehash {
                    pb.inc(1);
                }
                anyhow::Ok(problem.map(|why| (digest_text, why)))
            }
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    pb.finish_and_clear();
    let mut problems: Vec<_> = problems.into_iter().flatten().collect();
    problems.sort();
    Ok(problems)
}

async fn verify_blob(dest: &dyn BlobStore, digest_text: &str, size: u64, rehash: bool, pb: &ProgressBar) -> anyhow::Result<Option<String>> {
    let digest = match Digest::from_str(digest_text) {
        Ok(d) => d,
        Err(e) => return Ok(Some(format!("not a valid digest: {e}"))),
    };
    if !rehash {
        return Ok(match dest.stat(&digest).await.with_context(|| format!("checking {digest} in the destination"))? {
            Some(n) if n == size => None,
            Some(n) => Some(format!("the destination holds {n} bytes, expected {size}")),
            None => Some("missing in the destination".into()),
        });
    }
    let Some(reader) = dest.get(&digest, None).await.with_context(|| format!("reading {digest} from the destination"))? else {
        pb.inc(size);
        return Ok(Some("missing in the destination".into()));
    };
    let mut hasher = DigestHasher::new(digest.algorithm());
    let mut len = 0u64;
    let mut body = reader.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("reading {digest} from the destination"))?;
        hasher.update(&chunk);
        len += chunk.len() as u64;
        pb.inc(chunk.len() as u64);
    }
    let got = hasher.finish();
    Ok(if got != digest || len != size { Some(format!("the destination's {len} bytes hash to {got}")) } else { None })
}

/// Bytes for people: 1.5 GiB, 320.0 KiB.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_have_the_shape_blob_stores_accept() {
        let d = Digest::sha256_of(b"x");
        let a = upload_id(&d);
        let b = upload_id(&d);
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'));
    }

    #[test]
    fn destinations_that_are_the_source_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = StorageArgs { metadata: Some("sqlite".into()), blobs: Some("s3://b/p".into()), ..Default::default() };
        assert!(check_destination(dir.path(), &sqlite).is_err());
        let fs = StorageArgs { metadata: Some("postgres://u:pw@h/d".into()), blobs: Some("fs".into()), ..Default::default() };
        assert!(check_destination(dir.path(), &fs).is_err());
        let same = StorageArgs {
            metadata: Some("postgres://u:pw@h/d".into()),
            blobs: Some(format!("file://{}", dir.path().display())),
            ..Default::default()
        };
        assert!(check_destination(dir.path(), &same).is_err());
        let ok = StorageArgs { metadata: Some("postgres://u:pw@h/d".into()), blobs: Some("s3://b/p".into()), ..Default::default() };
        assert_eq!(check_destination(dir.path(), &ok).expect("accepted"), "postgres://u:pw@h/d");
    }

    #[test]
    fn password_is_found_for_redaction() {
        assert_eq!(password_of("postgres://berth:s3cret@db:5432/berth"), Some("s3cret"));
        assert_eq!(password_of("postgres://db/berth"), None);
        assert_eq!(human(1536), "1.5 KiB");
    }
}
