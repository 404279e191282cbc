//! Logs (one line per request) and Prometheus metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_core::observe::{CallFacts, RouteLabel};
use berth_core::{GcReport, Registry};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry as PromRegistry, TextEncoder};

use crate::config::LogFormat;

/// Logs go to stderr through a background writer thread, so a request never waits on the
/// terminal or file behind stderr; keep the returned guard alive to flush at exit.
pub fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Not lossy: under overload, requests wait for the log rather than lines going missing.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}

pub struct Metrics {
    registry: PromRegistry,
    requests: IntCounterVec,
    latency: HistogramVec,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
    upload_sessions: IntGauge,
    gc_runs: IntCounter,
    gc_bytes: IntCounter,
    gc_blobs: IntCounter,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Metrics> {
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
        let bytes_in = IntCounter::new("berth_http_request_bytes_total", "Request body bytes (by Content-Length)")?;
        let bytes_out = IntCounter::new("berth_http_response_bytes_total", "Response body bytes (by Content-Length)")?;
        let upload_sessions = IntGauge::new("berth_upload_sessions_open", "Open blob upload sessions")?;
        let gc_runs = IntCounter::new("berth_gc_runs_total", "Garbage collection runs")?;
        let gc_bytes = IntCounter::new("berth_gc_bytes_reclaimed_total", "Bytes reclaimed by garbage collection")?;
        let gc_blobs = IntCounter::new("berth_gc_blobs_deleted_total", "Blobs deleted by garbage collection")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(bytes_in.clone()))?;
        registry.register(Box::new(bytes_out.clone()))?;
        registry.register(Box::new(upload_sessions.clone()))?;
        registry.register(Box::new(gc_runs.clone()))?;
        registry.register(Box::new(gc_bytes.clone()))?;
        registry.register(Box::new(gc_blobs.clone()))?;
        Ok(Metrics { registry, requests, latency, bytes_in, bytes_out, upload_sessions, gc_runs, gc_bytes, gc_blobs })
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
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
        ([(http::header::CONTENT_TYPE, encoder.format_type().to_string())], buf).into_response()
    }
}

fn content_length(h: &http::HeaderMap) -> u64 {
    h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// One log line and the metrics for every request.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request<Body>, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // The path only, never the query: presigned or token parameters must not reach the log.
    let path = req.uri().path().to_string();
    let bytes_in = content_length(req.headers());
    let response = next.run(req).await;
    let elapsed = start.elapsed();
    let route = response.extensions().get::<RouteLabel>().map(|r| r.0).unwrap_or("other");
    let facts = response.extensions().get::<CallFacts>().cloned().unwrap_or_default();
    let status = response.status().as_u16();
    // Bodies of known size (JSON answers, blobs) say so before hyper adds Content-Length.
    let bytes_out = response.body().size_hint().exact().unwrap_or_else(|| content_length(response.headers()));
    metrics.requests.with_label_values(&[route, method.as_str(), &status.to_string()]).inc();
    metrics.latency.with_label_values(&[route, method.as_str()]).observe(elapsed.as_secs_f64());
    metrics.bytes_in.inc_by(bytes_in);
    metrics.bytes_out.inc_by(bytes_out);
    tracing::info!(
        target: "berth::request",
        method = %method,
        route,
        action = %facts.action,
        principal = facts.principal.as_deref().unwrap_or("-"),
        path = %path,
        status,
        bytes_in,
        bytes_out,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}
