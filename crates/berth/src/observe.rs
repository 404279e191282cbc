//! Logs (one line per request) and Prometheus metrics.

use anyhow::Context as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_core::observe::{CallError, CallFacts, RouteLabel};
use berth_core::{GcReport, Registry};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry as PromRegistry, TextEncoder,
};

use crate::config::LogFormat;

/// Log lines held for the writer thread by default (about 250 bytes each as text, so ~4 MiB).
pub const DEFAULT_LOG_BUFFER_LINES: usize = 16_384;

/// The process's log writer: keep it alive to flush at exit; `dropped` counts lines let go.
pub struct Logging {
    _guard: crate::log_writer::LogGuard,
    pub dropped: crate::log_writer::DroppedLines,
}

/// Logs go to stderr through a background writer thread behind a bounded queue of
/// `buffer_lines` lines. A request never waits for the log: when stderr cannot keep up (a slow
/// disk, a stalled pipe, a terminal) lines beyond the queue are dropped and counted
/// (`berth_log_lines_dropped_total`), since a registry that stops answering because its log
/// is slow fails every user to keep a record of their requests. The thread writes in batches
/// (crate::log_writer: every 10 ms, or at 64 KiB).
pub fn init_logging(format: LogFormat, buffer_lines: usize) -> anyhow::Result<Logging> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, dropped, guard) =
        crate::log_writer::batch_writer(std::io::stderr(), buffer_lines).context("starting the log writer thread")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(Logging { _guard: guard, dropped })
}

pub struct Metrics {
    registry: PromRegistry,
    requests: IntCounterVec,
    latency: HistogramVec,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    upload_sessions: IntGauge,
    log_dropped: IntCounter,
    /// The log writer's own count, copied into `log_dropped` at each scrape.
    log_dropped_source: Option<crate::log_writer::DroppedLines>,
    /// Two scrapes at once would both add the same difference.
    log_dropped_updating: std::sync::Mutex<()>,
    store_errors: IntCounterVec,
    gc_runs: IntCounter,
    gc_bytes: IntCounter,
    gc_blobs: IntCounter,
    integrity: IntegrityMetrics,
    tasks: TaskMetrics,
    replication: crate::replication_metrics::ReplicationMetrics,
    blob_cache: crate::blob_cache_metrics::BlobCacheMetrics,
    webhooks: crate::webhook_metrics::WebhookMetrics,
    pub(crate) ops: crate::ops_metrics::OpsMetrics,
}

/// The supervisor's tasks and the job outbox, read at each scrape. Task names are the fixed
/// names `serve` and the scanner start them under; job kinds are the ones berth enqueues.
struct TaskMetrics {
    restarts: IntCounterVec,
    up: IntGaugeVec,
    jobs: IntGaugeVec,
    /// Two scrapes at once would both add the same difference.
    updating: tokio::sync::Mutex<()>,
}

impl TaskMetrics {
    fn new(registry: &PromRegistry) -> prometheus::Result<Self> {
        let m = TaskMetrics {
            restarts: IntCounterVec::new(
                Opts::new("berth_task_restarts_total", "Restarts of a background task after it failed or panicked"),
                &["task"],
            )?,
            up: IntGaugeVec::new(
                Opts::new("berth_task_up", "Background tasks of that name running now (not backing off or stopped)"),
                &["task"],
            )?,
            jobs: IntGaugeVec::new(Opts::new("berth_jobs", "Jobs in the durable outbox by kind and status"), &["kind", "status"])?,
            updating: tokio::sync::Mutex::new(()),
        };
        registry.register(Box::new(m.restarts.clone()))?;
        registry.register(Box::new(m.up.clone()))?;
        registry.register(Box::new(m.jobs.clone()))?;
        Ok(m)
    }

    async fn update(&self, registry: &Registry) {
        let _one_at_a_time = self.updating.lock().await;
        let mut by_name: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
        for t in registry.supervisor().status() {
            let entry = by_name.entry(t.name).or_default();
            entry.0 += t.restarts;
            entry.1 += i64::from(t.state == berth_core::supervisor::TaskState::Running);
        }
        for (name, (restarts, up)) in by_name {
            let counter = self.restarts.with_label_values(&[&name]);
            counter.inc_by(restarts.saturating_sub(counter.get()));
            self.up.with_label_values(&[&name]).set(up);
        }
        // A store outage leaves the last counts in place rather than failing the scrape.
        if let Ok(counts) = registry.job_counts().await {
            self.jobs.reset();
            for (kind, status, n) in counts {
                self.jobs.with_label_values(&[&kind, status.as_str()]).set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

/// The service's integrity totals (berth_core::integrity), copied in at each scrape.
struct IntegrityMetrics {
    verified_on_read: IntCounter,
    corrupt_found: IntCounter,
    scrubbed_blobs: IntCounter,
    scrubbed_bytes: IntCounter,
    quarantined: IntGauge,
    /// Two scrapes at once would both add the same difference.
    updating: std::sync::Mutex<()>,
}

impl IntegrityMetrics {
    fn new(registry: &PromRegistry) -> prometheus::Result<Self> {
        let m = IntegrityMetrics {
            verified_on_read: IntCounter::new("berth_blobs_verified_on_read_total", "Blobs hashed while their first download streamed")?,
            corrupt_found: IntCounter::new("berth_blobs_corrupt_total", "Stored blobs found not to match their digest (quarantined)")?,
            scrubbed_blobs: IntCounter::new("berth_scrub_blobs_total", "Blobs re-hashed by scrub passes")?,
            scrubbed_bytes: IntCounter::new("berth_scrub_bytes_total", "Bytes re-hashed by scrub passes")?,
            quarantined: IntGauge::new("berth_blobs_quarantined", "Quarantined blobs not restored by a push since")?,
            updating: std::sync::Mutex::new(()),
        };
        for c in [&m.verified_on_read, &m.corrupt_found, &m.scrubbed_blobs, &m.scrubbed_bytes] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(m.quarantined.clone()))?;
        Ok(m)
    }

    fn update(&self, now: berth_core::IntegrityCounts) {
        let _one_at_a_time = self.updating.lock().unwrap_or_else(|p| p.into_inner());
        // The service's totals only grow; the counters catch up by the difference.
        for (counter, total) in [
            (&self.verified_on_read, now.verified_on_read),
            (&self.corrupt_found, now.corrupt_found),
            (&self.scrubbed_blobs, now.scrubbed_blobs),
            (&self.scrubbed_bytes, now.scrubbed_bytes),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.quarantined.set(i64::try_from(now.quarantined).unwrap_or(i64::MAX));
    }
}

impl Metrics {
    /// `log_drops`: the log writer's count of dropped lines (None when logging is not set up).
    pub fn new(log_drops: Option<crate::log_writer::DroppedLines>) -> anyhow::Result<Metrics> {
        let registry = PromRegistry::new();
        let requests = IntCounterVec::new(
            Opts::new("berth_http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("berth_http_request_duration_seconds", "Time to response headers, by route and method")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["route", "method"],
        )?;
        let bytes_in = IntCounter::new("berth_http_request_bytes_total", "Request body bytes read")?;
        let bytes_out = IntCounter::new("berth_http_response_bytes_total", "Response body bytes sent")?;
        let upload_sessions = IntGauge::new("berth_upload_sessions_open", "Open blob upload sessions")?;
        let log_dropped = IntCounter::new("berth_log_lines_dropped_total", "Log lines dropped because the log writer's queue was full")?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "berth_store_errors_total",
                "Requests failed by a storage error, by backend (metadata: the database; blobs: the blob store or bucket; disk: a full disk; other: an internal storage error) and operation (read: GET/HEAD; write: the rest)",
            ),
            &["backend", "operation"],
        )?;
        // Zero from the start, so rate() and the alert see the series before the first error.
        for backend in ["metadata", "blobs"] {
            for operation in ["read", "write"] {
                store_errors.with_label_values(&[backend, operation]);
            }
        }
        let gc_runs = IntCounter::new("berth_gc_runs_total", "Garbage collection runs")?;
        let gc_bytes = IntCounter::new("berth_gc_bytes_reclaimed_total", "Bytes reclaimed by garbage collection")?;
        let gc_blobs = IntCounter::new("berth_gc_blobs_deleted_total", "Blobs deleted by garbage collection")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(bytes_in.clone()))?;
        registry.register(Box::new(bytes_out.clone()))?;
        registry.register(Box::new(upload_sessions.clone()))?;
        registry.register(Box::new(log_dropped.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(gc_runs.clone()))?;
        registry.register(Box::new(gc_bytes.clone()))?;
        registry.register(Box::new(gc_blobs.clone()))?;
        let integrity = IntegrityMetrics::new(&registry)?;
        let tasks = TaskMetrics::new(&registry)?;
        let replication = crate::replication_metrics::ReplicationMetrics::new(&registry)?;
        let blob_cache = crate::blob_cache_metrics::BlobCacheMetrics::new(&registry)?;
        let webhooks = crate::webhook_metrics::WebhookMetrics::new(&registry)?;
        let ops = crate::ops_metrics::OpsMetrics::new(&registry)?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            upload_sessions,
            log_dropped,
            log_dropped_source: log_drops,
            log_dropped_updating: std::sync::Mutex::new(()),
            store_errors,
            gc_runs,
            gc_bytes,
            gc_blobs,
            integrity,
            tasks,
            replication,
            blob_cache,
            webhooks,
            ops,
        })
    }

    pub fn record_gc(&self, report: &GcReport) {
        if !report.dry_run {
            self.gc_runs.inc();
            self.gc_bytes.inc_by(report.bytes_reclaimed);
            self.gc_blobs.inc_by(report.blobs_deleted);
        }
    }

    pub async fn render(&self, registry: &Registry) -> Response {
        if let Ok(n) = registry.open_upload_sessions().await {
            self.upload_sessions.set(n as i64);
        }
        if let Some(source) = &self.log_dropped_source {
            let _one_at_a_time = self.log_dropped_updating.lock().unwrap_or_else(|p| p.into_inner());
            // The writer's count only grows (saturating); the counter catches up by the difference.
            let total = source.count();
            self.log_dropped.inc_by(total.saturating_sub(self.log_dropped.get()));
        }
        self.integrity.update(registry.integrity_counts());
        self.tasks.update(registry).await;
        self.replication.update(registry.replication_stats());
        self.blob_cache.update(crate::storage::local_blob_cache().map(|c| c.counts()).unwrap_or_default());
        self.webhooks.update(registry).await;
        self.ops.update(registry).await;
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
        ([(http::header::CONTENT_TYPE, encoder.format_type().to_string())], buf).into_response()
    }
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Route labels the adapters set (`RouteLabel`); any other folds to "other", so a new or
/// unexpected label can never add series unnoticed.
const ROUTES: &[&str] = &[
    "v2_token",
    "v2_base",
    "v2_catalog",
    "v2_tags",
    "v2_manifest",
    "v2_blob",
    "v2_upload_start",
    "v2_upload",
    "v2_referrers",
    "v2_unknown",
    "ecr",
    "ecr-public",
    "kms",
    "cloudtrail",
    "secretsmanager",
    "sts",
    "aws_unknown",
];

/// Metric labels come from closed sets: a client choosing methods, paths or statuses must
/// not be able to create series (each one is memory held for the life of the process).
fn route_label(route: Option<&RouteLabel>) -> &'static str {
    route.and_then(|r| ROUTES.iter().find(|known| **known == r.0)).copied().unwrap_or("other")
}

fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Registered status codes (about 60) keep their number; anything else is "other".
/// (Three digits each, so the table's text order is numeric order.)
fn status_label(status: http::StatusCode) -> &'static str {
    if status.canonical_reason().is_none() {
        return "other";
    }
    // `as_str` borrows from a static table in `http`; the match keeps the label 'static.
    STATUS_LABELS.binary_search(&status.as_str()).map(|i| STATUS_LABELS[i]).unwrap_or("other")
}

const STATUS_LABELS: &[&str] = &[
    "100", "101", "102", "103", "200", "201", "202", "203", "204", "205", "206", "207", "208", "226", "300", "301", "302", "303", "304",
    "305", "307", "308", "400", "401", "402", "403", "404", "405", "406", "407", "408", "409", "410", "411", "412", "413", "414", "415",
    "416", "417", "418", "421", "422", "423", "424", "425", "426", "428", "429", "431", "451", "500", "501", "502", "503", "504", "505",
    "506", "507", "508", "510", "511",
];

/// The method as the request log shows it: extension methods are arbitrary tokens of any
/// length, so the line keeps at most 16 characters and no control characters.
fn method_for_log(method: &http::Method) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 16;
    let s = method.as_str();
    // Every standard method: borrowed, no allocation per request.
    if s.len() <= MAX && !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out: String = s.chars().take(MAX).map(|c| if c.is_control() { '?' } else { c }).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    std::borrow::Cow::Owned(out)
}

/// Counts the data bytes of a body as its frames pass, into a process-wide counter (one
/// atomic add per frame) and a plain per-body total that `slot` receives when the body is
/// dropped (for the request log line).
struct CountingBody {
    inner: Body,
    counter: IntCounter,
    seen: u64,
    slot: Option<Arc<AtomicU64>>,
}

impl http_body::Body for CountingBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                self.counter.inc_by(n);
                self.seen += n;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountingBody {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            slot.store(self.seen, Ordering::Relaxed);
        }
    }
}

fn counted(inner: Body, counter: &IntCounter, slot: Option<Arc<AtomicU64>>) -> Body {
    // Nothing to count in an empty body (most GETs and HEADs): no wrapper, no allocation.
    if inner.is_end_stream() {
        return inner;
    }
    Body::new(CountingBody { inner, counter: counter.clone(), seen: 0, slot })
}

/// One log line and the metrics for every request.
///
/// Byte counters count what actually crosses the socket, never a declared Content-Length
/// (a client may declare anything). The log line's `bytes_in` is what the handler read of
/// the request body; `bytes_out` is the response's exact size when the body declares one
/// (hyper sends exactly that or fails the connection), else its Content-Length header set by
/// berth, else 0 for a body of unknown length: the line is written when the headers are
/// ready, before a streamed body has been sent (the metric still counts its bytes).
/// Every call that is an API action also becomes one audit record (berth_core::audit), queued
/// before the response goes out.
pub async fn track(State((metrics, registry)): State<(Arc<Metrics>, Arc<Registry>)>, req: Request<Body>, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let source_ip = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    // Both kept as shared handles on the request's bytes (no copy per request); the user agent
    // becomes a string only for an audited call.
    let user_agent = req.headers().get(http::header::USER_AGENT).cloned();
    let uri = req.uri().clone();
    let read = Arc::new(AtomicU64::new(0));
    let req = req.map(|b| counted(b, &metrics.bytes_in, Some(read.clone())));
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let route = route_label(response.extensions().get::<RouteLabel>());
    let facts = response.extensions().get::<CallFacts>().cloned().unwrap_or_default();
    let status = response.status();
    // Bodies of known size (JSON answers, blobs) say so before hyper adds Content-Length.
    let bytes_out = response.body().size_hint().exact().or_else(|| content_length(response.headers())).unwrap_or(0);
    let method_label = method_label(&method);
    metrics.requests.with_label_values(&[route, method_label, status_label(status)]).inc();
    metrics.latency.with_label_values(&[route, method_label]).observe(elapsed.as_secs_f64());
    // The adapters' error mappings name the failed backend (`StoreError::backend`).
    if let Some(backend) = response.extensions().get::<CallError>().and_then(|e| e.store) {
        let operation = if matches!(method, http::Method::GET | http::Method::HEAD) { "read" } else { "write" };
        metrics.store_errors.with_label_values(&[backend, operation]).inc();
    }
    let response = response.map(|b| counted(b, &metrics.bytes_out, None));
    // The handler has dropped the request body by now (unless it kept it past its answer,
    // when this is 0): its total is in `read`.
    let bytes_in = read.load(Ordering::Relaxed);
    tracing::info!(
        target: "berth::request",
        method = %method_for_log(&method),
        route,
        action = %facts.action,
        principal = facts.principal.as_deref().unwrap_or("-"),
        // The path only, never the query: presigned or token parameters must not reach the log.
        path = %uri.path(),
        status = status.as_u16(),
        bytes_in,
        bytes_out,
        // Microsecond precision: the full f64 printed 18 digits of noise into every line.
        duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1000.0,
        "request"
    );
    if facts.action.contains(':') {
        let error = response.extensions().get::<CallError>().cloned();
        let user_agent = user_agent.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let request_id = response.headers().get("x-amzn-requestid").and_then(|v| v.to_str().ok()).map(str::to_string);
        let event = berth_core::audit::CallEvent { facts, error, status: status.as_u16(), source_ip, user_agent, request_id };
        registry.record_call(event).await;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        let made_up = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        assert_eq!(route_label(Some(&RouteLabel("v2_blob"))), "v2_blob");
        assert_eq!(route_label(Some(&RouteLabel("something_new"))), "other");
        assert_eq!(route_label(None), "other");
        assert_eq!(status_label(http::StatusCode::NOT_FOUND), "404");
        assert_eq!(status_label(http::StatusCode::from_u16(599).unwrap()), "other");
        assert_eq!(status_label(http::StatusCode::from_u16(999).unwrap()), "other");
    }

    #[test]
    fn every_registered_status_has_its_label() {
        for code in 100..1000u16 {
            let status = http::StatusCode::from_u16(code).unwrap();
            if status.canonical_reason().is_some() {
                assert_eq!(status_label(status), status.as_str(), "{code}");
            }
        }
    }

    #[test]
    fn the_log_keeps_a_short_clean_method() {
        let long = http::Method::from_bytes(&[b'X'; 200]).unwrap();
        assert_eq!(method_for_log(&long).chars().count(), 17);
        assert_eq!(method_for_log(&http::Method::GET), "GET");
    }

    #[tokio::test]
    async fn bodies_count_the_bytes_that_pass() {
        use http_body_util::BodyExt as _;
        let counter = IntCounter::new("t", "t").unwrap();
        let slot = Arc::new(AtomicU64::new(0));
        let body = counted(Body::from("hello world"), &counter, Some(slot.clone()));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 11);
        assert_eq!(counter.get(), 11);
        assert_eq!(slot.load(Ordering::Relaxed), 11);
    }
}
