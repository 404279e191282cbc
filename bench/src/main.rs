//! `berth-bench`: the load generator behind `bench/compare.sh`.
//!
//! Every subcommand talks to one registry (`--url`, optional Basic credentials), prints
//! progress on stderr and one JSON object with its figures on stdout. Throughputs are in
//! MB/s (10^6 bytes per second), latencies in milliseconds.

mod registry;
mod sigv4;
mod stats;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use rand::{RngCore, SeedableRng};
use reqwest::{Body, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use registry::Target;

#[derive(Parser)]
#[command(name = "berth-bench", version, about = "Load generator for OCI registries (berth, distribution, …)")]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    /// Tokio worker threads of the load generator (it shares the machine with the server).
    #[arg(long, global = true, env = "BENCH_CLIENT_THREADS", default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Conn {
    /// Registry base URL, e.g. http://127.0.0.1:5000
    #[arg(long, global = true, env = "BENCH_URL", default_value = "http://127.0.0.1:5000")]
    url: String,
    /// Basic auth user (berth: `AWS`)
    #[arg(long, global = true, env = "BENCH_USER")]
    user: Option<String>,
    /// Basic auth password (berth: the `get-login-password` token)
    #[arg(long, global = true, env = "BENCH_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a file of random bytes; prints its digest.
    GenFile {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        size_mib: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Push a file as one blob: monolithic (POST + PUT with the body) or in --chunk-mib PATCHes.
    PushBlob {
        #[arg(long)]
        repo: String,
        #[arg(long)]
        file: PathBuf,
        /// The file's digest (computed first, untimed, when absent)
        #[arg(long)]
        digest: Option<String>,
        /// Upload in PATCH chunks of this many MiB (absent: monolithic)
        #[arg(long)]
        chunk_mib: Option<u64>,
        /// Sample this process's resident memory during the push
        #[arg(long)]
        rss_pid: Option<u32>,
    },
    /// GET a blob and discard it.
    PullBlob {
        #[arg(long)]
        repo: String,
        #[arg(long)]
        digest: String,
        /// Hash what arrives and fail unless it is the digest (costs the client a core)
        #[arg(long)]
        verify: bool,
    },
    /// GET a whole blob as consecutive `Range: bytes=` requests of --range-bytes each.
    PullRange {
        #[arg(long)]
        repo: String,
        #[arg(long)]
        digest: String,
        /// Bytes per request; the default (16 MiB + 12,345) lands every range off any power-of-two boundary
        #[arg(long, default_value_t = (16 << 20) + 12_345)]
        range_bytes: u64,
        /// Hash the concatenated ranges and fail unless they are the digest
        #[arg(long)]
        verify: bool,
    },
    /// GET one manifest by tag from C connections for D seconds.
    ManifestLoad {
        #[arg(long)]
        repo: String,
        #[arg(long, default_value = "latest")]
        reference: String,
        /// GET this blob instead of the manifest (a blob-serving hot path)
        #[arg(long)]
        blob: Option<String>,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of unrecorded load first
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
    },
    /// Push one small image (config + one layer) under a tag; prints its digests.
    PushImage {
        #[arg(long)]
        repo: String,
        #[arg(long, default_value = "latest")]
        tag: String,
        #[arg(long, default_value_t = 16384)]
        layer_bytes: usize,
    },
    /// Push K distinct small images with W concurrent workers (HEAD, POST, PUT per blob; PUT manifest).
    PushImages {
        #[arg(long)]
        repo: String,
        #[arg(long, default_value_t = 100)]
        count: u64,
        #[arg(long, default_value_t = 16)]
        workers: usize,
        #[arg(long, default_value_t = 16384)]
        layer_bytes: usize,
    },
    /// Give one image many tags: push it once, then PUT its manifest under tags t<start>..t<start+count>.
    SeedTags {
        #[arg(long)]
        repo: String,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 32)]
        workers: usize,
    },
    /// Create repositories <prefix>/r<start>..: push one image, then mount its blobs and PUT its manifest in each.
    SeedRepos {
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 32)]
        workers: usize,
    },
    /// Time tags/list pages (?n=&last=): the first page --repeat times, then a walk over every page.
    ListTags {
        #[arg(long)]
        repo: String,
        #[arg(long, default_value_t = 1000)]
        page_size: u64,
        #[arg(long, default_value_t = 20)]
        repeat: u64,
    },
    /// Time _catalog pages (?n=&last=) the same way.
    Catalog {
        #[arg(long, default_value_t = 1000)]
        page_size: u64,
        #[arg(long, default_value_t = 20)]
        repeat: u64,
    },
    /// Time ECR ListImages pages (SigV4-signed POST /, maxResults, nextToken) the same way.
    ListImages {
        #[arg(long)]
        repo: String,
        #[arg(long, default_value_t = 1000)]
        max_results: u64,
        #[arg(long, default_value_t = 20)]
        repeat: u64,
        #[arg(long, env = "AWS_ACCESS_KEY_ID")]
        access_key_id: String,
        #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: String,
        #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
        region: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build();
    let result = rt.context("starting the tokio runtime").and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("berth-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli) -> Result<Value> {
    let t = Target::new(&cli.conn.url, cli.conn.user.as_deref(), cli.conn.password.as_deref())?;
    match cli.cmd {
        Cmd::GenFile { path, size_mib, seed } => gen_file(path, size_mib, seed).await,
        Cmd::PushBlob { repo, file, digest, chunk_mib, rss_pid } => push_blob(&t, &repo, &file, digest, chunk_mib, rss_pid).await,
        Cmd::PullBlob { repo, digest, verify } => pull_blob(&t, &repo, &digest, verify).await,
        Cmd::PullRange { repo, digest, range_bytes, verify } => pull_range(&t, &repo, &digest, range_bytes, verify).await,
        Cmd::ManifestLoad { repo, reference, blob, connections, duration, warmup } => {
            let path = match &blob {
                Some(digest) => format!("/v2/{repo}/blobs/{digest}"),
                None => format!("/v2/{repo}/manifests/{reference}"),
            };
            manifest_load(&t, &path, connections, duration, warmup).await
        }
        Cmd::PushImage { repo, tag, layer_bytes } => {
            let c = t.client()?;
            let (config, layer, manifest) = registry::push_small_image(&c, &t, &repo, &tag, layer_bytes).await?;
            Ok(json!({"repo": repo, "tag": tag, "config": config, "layer": layer, "manifest": registry::sha256_digest(&manifest)}))
        }
        Cmd::PushImages { repo, count, workers, layer_bytes } => push_images(&t, &repo, count, workers, layer_bytes).await,
        Cmd::SeedTags { repo, start, count, workers } => seed_tags(&t, &repo, start, count, workers).await,
        Cmd::SeedRepos { prefix, start, count, workers } => seed_repos(&t, &prefix, start, count, workers).await,
        Cmd::ListTags { repo, page_size, repeat } => {
            let first = t.url(&format!("/v2/{repo}/tags/list?n={page_size}"));
            list_pages(&t, &first, "tags", repeat).await
        }
        Cmd::Catalog { page_size, repeat } => {
            let first = t.url(&format!("/v2/_catalog?n={page_size}"));
            list_pages(&t, &first, "repositories", repeat).await
        }
        Cmd::ListImages { repo, max_results, repeat, access_key_id, secret_access_key, region } => {
            let creds = sigv4::Credentials { access_key_id, secret_access_key, region };
            list_images(&t, &creds, &repo, max_results, repeat).await
        }
    }
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    (bytes as f64 / secs / 1e6 * 10.0).round() / 10.0
}

async fn gen_file(path: PathBuf, size_mib: u64, seed: u64) -> Result<Value> {
    tokio::task::spawn_blocking(move || -> Result<Value> {
        use std::io::Write;
        let t0 = Instant::now();
        let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::with_capacity(8 << 20, f);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            rng.fill_bytes(&mut buf);
            hasher.update(&buf);
            w.write_all(&buf).with_context(|| format!("writing {}", path.display()))?;
        }
        w.flush().with_context(|| format!("writing {}", path.display()))?;
        let digest = format!("sha256:{}", registry::hex(&hasher.finalize()));
        Ok(json!({"path": path, "bytes": size_mib << 20, "digest": digest, "secs": t0.elapsed().as_secs_f64()}))
    })
    .await
    .context("gen-file task")?
}

async fn file_digest(path: PathBuf) -> Result<String> {
    tokio::task::spawn_blocking(move || -> Result<String> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(format!("sha256:{}", registry::hex(&hasher.finalize())))
    })
    .await
    .context("digest task")?
}

async fn push_blob(
    t: &Target,
    repo: &str,
    file: &PathBuf,
    digest: Option<String>,
    chunk_mib: Option<u64>,
    rss_pid: Option<u32>,
) -> Result<Value> {
    let len = tokio::fs::metadata(file).await.with_context(|| format!("stat {}", file.display()))?.len();
    let digest = match digest {
        Some(d) => d,
        None => file_digest(file.clone()).await?,
    };
    let c = t.client()?;
    let sampler = rss_pid.map(stats::RssSampler::start).transpose()?;
    let t0 = Instant::now();
    let upload = registry::start_upload(&c, t, repo).await?;
    let mut requests = 2;
    match chunk_mib {
        None => {
            let f = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
            let stream = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20);
            registry::finish_upload(&c, &upload, &digest, Some((Body::wrap_stream(stream), len))).await?;
        }
        Some(mib) => {
            if mib == 0 {
                bail!("--chunk-mib must be at least 1");
            }
            let chunk = (mib << 20) as usize;
            let mut f = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
            let mut url = upload;
            let mut offset = 0u64;
            while offset < len {
                let n = chunk.min((len - offset) as usize);
                let mut buf = vec![0u8; n];
                f.read_exact(&mut buf).await.with_context(|| format!("reading {} at {offset}", file.display()))?;
                url = registry::patch_chunk(&c, t, &url, offset, Bytes::from(buf)).await?;
                offset += n as u64;
                requests += 1;
            }
            registry::finish_upload(&c, &url, &digest, None).await?;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let rss = sampler.map(|s| s.finish());
    Ok(json!({
        "repo": repo, "digest": digest, "bytes": len, "chunk_mib": chunk_mib, "requests": requests,
        "secs": secs, "mb_per_s": mb_per_s(len, secs), "rss": rss,
    }))
}

async fn pull_blob(t: &Target, repo: &str, digest: &str, verify: bool) -> Result<Value> {
    let c = t.client()?;
    let url = t.url(&format!("/v2/{repo}/blobs/{digest}"));
    let mut hasher = verify.then(Sha256::new);
    let t0 = Instant::now();
    let resp = c.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    let resp = registry::expect(resp, &[StatusCode::OK], &format!("GET blob {digest}")).await?;
    let bytes = drain(resp, &url, hasher.as_mut()).await?;
    let secs = t0.elapsed().as_secs_f64();
    check_digest(hasher, digest)?;
    Ok(json!({"repo": repo, "digest": digest, "bytes": bytes, "secs": secs, "mb_per_s": mb_per_s(bytes, secs), "verified": verify}))
}

/// Reads a response body to its end, hashing it when asked; returns its length.
async fn drain(resp: reqwest::Response, url: &str, mut hasher: Option<&mut Sha256>) -> Result<u64> {
    let mut stream = resp.bytes_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("reading GET {url}"))?;
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        bytes += chunk.len() as u64;
    }
    Ok(bytes)
}

fn check_digest(hasher: Option<Sha256>, digest: &str) -> Result<()> {
    if let Some(h) = hasher {
        let got = format!("sha256:{}", registry::hex(&h.finalize()));
        if got != digest {
            bail!("the bytes read are {got}, not {digest}");
        }
    }
    Ok(())
}

/// Reads a blob whole through consecutive Range GETs (one connection), checking every 206's length.
async fn pull_range(t: &Target, repo: &str, digest: &str, range_bytes: u64, verify: bool) -> Result<Value> {
    if range_bytes == 0 {
        bail!("--range-bytes must be at least 1");
    }
    let c = t.client()?;
    let url = t.url(&format!("/v2/{repo}/blobs/{digest}"));
    let head = c.head(&url).send().await.with_context(|| format!("HEAD {url}"))?;
    let head = registry::expect(head, &[StatusCode::OK], &format!("HEAD blob {digest}")).await?;
    let len = head
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .context("HEAD blob: no Content-Length")?;
    let mut hasher = verify.then(Sha256::new);
    let mut h = stats::histogram();
    let (mut offset, mut requests) = (0u64, 0u64);
    let t0 = Instant::now();
    while offset < len {
        let end = (offset + range_bytes).min(len) - 1;
        let r0 = Instant::now();
        let resp = c.get(&url).header(reqwest::header::RANGE, format!("bytes={offset}-{end}")).send().await;
        let resp = registry::expect(resp.with_context(|| format!("GET {url}"))?, &[StatusCode::PARTIAL_CONTENT], "GET range").await?;
        let got = drain(resp, &url, hasher.as_mut()).await?;
        if got != end + 1 - offset {
            bail!("GET bytes={offset}-{end} answered {got} bytes");
        }
        stats::record(&mut h, r0.elapsed());
        offset = end + 1;
        requests += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    check_digest(hasher, digest)?;
    Ok(json!({
        "repo": repo, "digest": digest, "bytes": len, "range_bytes": range_bytes, "requests": requests,
        "secs": secs, "mb_per_s": mb_per_s(len, secs), "verified": verify, "per_range": stats::summary(&h),
    }))
}

/// GETs `path` (a manifest, or a blob) from C connections for D seconds.
async fn manifest_load(t: &Target, path: &str, connections: usize, duration: f64, warmup: f64) -> Result<Value> {
    let url = t.url(path);
    // Fail early (and clearly) if the manifest is not there.
    let probe = t.client()?.get(&url).header(registry::accept_manifests().0, registry::MANIFEST_ACCEPT).send().await;
    registry::expect(probe.with_context(|| format!("GET {url}"))?, &[StatusCode::OK], &format!("GET {path}")).await?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(warmup);
    let end = measure_from + Duration::from_secs_f64(duration);
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let c = t.client()?;
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = stats::histogram();
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut last_error = None;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let res = async {
                    let resp = c.get(&url).header(reqwest::header::ACCEPT, registry::MANIFEST_ACCEPT).send().await?;
                    let status = resp.status();
                    let body = resp.bytes().await?;
                    Ok::<_, reqwest::Error>((status, body.len()))
                }
                .await;
                let done = Instant::now();
                let counted = t0 >= measure_from && done <= end;
                match res {
                    Ok((StatusCode::OK, _)) if counted => {
                        ok += 1;
                        stats::record(&mut h, done - t0);
                    }
                    Ok((StatusCode::OK, _)) => {}
                    Ok((s, _)) => {
                        errors += 1;
                        last_error = Some(format!("HTTP {s}"));
                    }
                    Err(e) => {
                        errors += 1;
                        last_error = Some(format!("{e:#}"));
                    }
                }
            }
            (h, ok, errors, last_error)
        }));
    }
    let mut h = stats::histogram();
    let (mut ok, mut errors, mut last_error) = (0u64, 0u64, None);
    for task in tasks {
        let (th, tok, terr, tlast) = task.await.context("load worker")?;
        h.add(&th).context("merging histograms")?;
        ok += tok;
        errors += terr;
        last_error = last_error.or(tlast);
    }
    Ok(json!({
        "path": path, "connections": connections, "duration_s": duration,
        "requests": ok, "errors": errors, "last_error": last_error,
        "req_per_s": (ok as f64 / duration).round(),
        "latency": stats::summary(&h),
    }))
}

/// Runs `job(i)` for i in `start..start+count` on `workers` tasks, each with its own connection.
/// Returns (per-job latency histogram, wall seconds).
async fn fan_out<F, Fut>(t: &Target, start: u64, count: u64, workers: usize, job: F) -> Result<(hdrhistogram::Histogram<u64>, f64)>
where
    F: Fn(reqwest::Client, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(start));
    let job = Arc::new(job);
    let end = start + count;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (c, next, job) = (t.client()?, next.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = stats::histogram();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    return Ok::<_, anyhow::Error>(h);
                }
                let s = Instant::now();
                job(c.clone(), i).await?;
                stats::record(&mut h, s.elapsed());
                let done = i + 1 - start;
                if done.is_multiple_of(10_000) {
                    eprintln!("  {done}/{count} in {:.1}s", t0.elapsed().as_secs_f64());
                }
            }
        }));
    }
    let mut h = stats::histogram();
    for task in tasks {
        h.add(&task.await.context("worker")??).context("merging histograms")?;
    }
    Ok((h, t0.elapsed().as_secs_f64()))
}

async fn push_images(t: &Target, repo: &str, count: u64, workers: usize, layer_bytes: usize) -> Result<Value> {
    let (tt, r) = (t.clone(), repo.to_string());
    let (h, secs) = fan_out(t, 0, count, workers, move |c, i| {
        let (t, repo) = (tt.clone(), r.clone());
        async move { registry::push_small_image(&c, &t, &repo, &format!("i{i:05}"), layer_bytes).await.map(drop) }
    })
    .await?;
    Ok(json!({
        "repo": repo, "images": count, "workers": workers, "layer_bytes": layer_bytes, "secs": secs,
        "images_per_s": (count as f64 / secs * 10.0).round() / 10.0, "per_image": stats::summary(&h),
    }))
}

async fn seed_tags(t: &Target, repo: &str, start: u64, count: u64, workers: usize) -> Result<Value> {
    let c = t.client()?;
    let (_, _, manifest) = registry::push_small_image(&c, t, repo, "seed", 1024).await?;
    let (tt, r) = (t.clone(), repo.to_string());
    let (h, secs) = fan_out(t, start, count, workers, move |c, i| {
        let (t, repo, m) = (tt.clone(), r.clone(), manifest.clone());
        async move { registry::put_manifest(&c, &t, &repo, &format!("t{i:06}"), m).await }
    })
    .await?;
    Ok(
        json!({"repo": repo, "start": start, "count": count, "secs": secs, "tags_per_s": (count as f64 / secs).round(), "put": stats::summary(&h)}),
    )
}

async fn seed_repos(t: &Target, prefix: &str, start: u64, count: u64, workers: usize) -> Result<Value> {
    let c = t.client()?;
    let src = format!("{prefix}/src");
    let (config, layer, manifest) = registry::push_small_image(&c, t, &src, "seed", 1024).await?;
    let (tt, p) = (t.clone(), prefix.to_string());
    let (h, secs) = fan_out(t, start, count, workers, move |c, i| {
        let (t, repo, src, m) = (tt.clone(), format!("{p}/r{i:05}"), src.clone(), manifest.clone());
        let (config, layer) = (config.clone(), layer.clone());
        async move {
            for d in [&config, &layer] {
                if !registry::mount(&c, &t, &repo, d, &src).await? {
                    bail!("{repo}: the registry did not mount {d} from {src}");
                }
            }
            registry::put_manifest(&c, &t, &repo, "seed", m).await
        }
    })
    .await?;
    Ok(
        json!({"prefix": prefix, "start": start, "count": count, "secs": secs, "repos_per_s": (count as f64 / secs).round(), "repo": stats::summary(&h)}),
    )
}

/// Times the first page `repeat` times, then walks every page by `Link: <…>; rel="next"`.
async fn list_pages(t: &Target, first: &str, key: &str, repeat: u64) -> Result<Value> {
    let c = t.client()?;
    let get = |url: String| {
        let c = c.clone();
        async move {
            let t0 = Instant::now();
            let resp = c.get(&url).send().await.with_context(|| format!("GET {url}"))?;
            let resp = registry::expect(resp, &[StatusCode::OK], &format!("GET {url}")).await?;
            let headers = resp.headers().clone();
            let body = resp.bytes().await.with_context(|| format!("reading GET {url}"))?;
            let elapsed = t0.elapsed();
            Ok::<_, anyhow::Error>((elapsed, headers, body))
        }
    };
    let entries = |body: &Bytes| -> Result<u64> {
        let v: Value = serde_json::from_slice(body).context("page is not JSON")?;
        Ok(v.get(key).and_then(Value::as_array).map_or(0, |a| a.len() as u64))
    };
    let mut first_h = stats::histogram();
    let mut first_entries = 0;
    for _ in 0..repeat.max(1) {
        let (d, _, body) = get(first.to_string()).await?;
        stats::record(&mut first_h, d);
        first_entries = entries(&body)?;
    }
    let mut walk_h = stats::histogram();
    let (mut pages, mut total) = (0u64, 0u64);
    let mut last_ms = 0.0;
    let t0 = Instant::now();
    let mut url = Some(first.to_string());
    while let Some(u) = url {
        let (d, headers, body) = get(u).await?;
        stats::record(&mut walk_h, d);
        pages += 1;
        total += entries(&body)?;
        last_ms = d.as_secs_f64() * 1000.0;
        url = registry::next_link(t, &headers);
        if pages > 1_000_000 {
            bail!("more than a million pages: the registry's Link loops");
        }
    }
    Ok(json!({
        "first_page": stats::summary(&first_h), "first_page_entries": first_entries,
        "walk": {"pages": pages, "entries": total, "secs": t0.elapsed().as_secs_f64(), "last_page_ms": last_ms, "page": stats::summary(&walk_h)},
    }))
}

async fn list_images(t: &Target, creds: &sigv4::Credentials, repo: &str, max_results: u64, repeat: u64) -> Result<Value> {
    let c = t.client()?;
    let host = t.base.split("://").nth(1).unwrap_or(&t.base).split('/').next().unwrap_or_default().to_string();
    let target = "AmazonEC2ContainerRegistry_V20150921.ListImages";
    let call = |token: Option<String>| {
        let (c, host) = (c.clone(), host.clone());
        async move {
            let mut body = json!({"repositoryName": repo, "maxResults": max_results});
            if let Some(tok) = token {
                body["nextToken"] = json!(tok);
            }
            let body = body.to_string().into_bytes();
            let t0 = Instant::now();
            let req = c.post(t.url("/")).body(body).build().context("building ListImages")?;
            // SigV4 replaces the /v2/ Basic credentials the client may carry by default.
            let req = sign(req, creds, &host, target)?;
            let resp = c.execute(req).await.context("ListImages")?;
            let resp = registry::expect(resp, &[StatusCode::OK], "ListImages").await?;
            let body = resp.bytes().await.context("reading ListImages")?;
            let elapsed = t0.elapsed();
            let v: Value = serde_json::from_slice(&body).context("ListImages answer is not JSON")?;
            let n = v.get("imageIds").and_then(Value::as_array).map_or(0, |a| a.len() as u64);
            let next = v.get("nextToken").and_then(Value::as_str).map(str::to_string);
            Ok::<_, anyhow::Error>((elapsed, n, next))
        }
    };
    let mut first_h = stats::histogram();
    let mut first_entries = 0;
    for _ in 0..repeat.max(1) {
        let (d, n, _) = call(None).await?;
        stats::record(&mut first_h, d);
        first_entries = n;
    }
    let mut walk_h = stats::histogram();
    let (mut pages, mut total) = (0u64, 0u64);
    let mut last_ms;
    let t0 = Instant::now();
    let mut token = None;
    loop {
        let (d, n, next) = call(token).await?;
        stats::record(&mut walk_h, d);
        pages += 1;
        total += n;
        last_ms = d.as_secs_f64() * 1000.0;
        match next {
            Some(n) if pages < 1_000_000 => token = Some(n),
            _ => break,
        }
    }
    Ok(json!({
        "first_page": stats::summary(&first_h), "first_page_entries": first_entries,
        "walk": {"pages": pages, "entries": total, "secs": t0.elapsed().as_secs_f64(), "last_page_ms": last_ms, "page": stats::summary(&walk_h)},
    }))
}

/// Adds the SigV4 headers to a built request (its `Authorization` replaces any default one).
fn sign(mut req: reqwest::Request, creds: &sigv4::Credentials, host: &str, target: &str) -> Result<reqwest::Request> {
    let body = req.body().and_then(|b| b.as_bytes()).map(<[u8]>::to_vec).unwrap_or_default();
    for (k, v) in sigv4::sign_ecr(creds, host, target, &body)? {
        req.headers_mut().insert(k, v.parse().with_context(|| format!("header {k}"))?);
    }
    Ok(req)
}
