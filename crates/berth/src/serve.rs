//! `berth serve`: wiring the registry, its adapters and its background work.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_core::supervisor::Restart;
use berth_core::{GcOptions, Registry, RegistryConfig, RegistryRef, ScrubOptions};
use serde::Deserialize;

use crate::config::ServeArgs;
use crate::connections::{ConnectionLimits, LimitedAcceptor};
use crate::datadir::DataDir;
use crate::observe::{self, Metrics};
use crate::ops::OpsState;

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    ops: Arc<OpsState>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ops_args = args.ops.clone();
    let settings = args.resolve()?;
    // What scheduled backups copy, settled before anything starts (a mixed SQLite + bucket
    // node is refused here).
    let backup_source = match ops_args.backup_dir {
        Some(_) => Some(Arc::new(crate::backup::source::Source::of_node(&settings.data_dir, &settings.storage).await?)),
        None => None,
    };
    let logging = observe::init_logging(settings.log_format, settings.log_buffer_lines)?;
    let config = RegistryConfig {
        gc_grace_millis: (settings.gc_grace_seconds as i64).saturating_mul(1000),
        create_repository_on_push: settings.create_repository_on_push,
        default_registry: RegistryRef { account: settings.account_id.clone(), region: settings.region.clone() },
        registry_host_template: settings.registry_host.clone(),
        aes256_by_storage: settings.aes256_by_storage,
        public_registry_host: settings.public_registry_host.clone(),
        anonymous_pulls: settings.anonymous_pulls,
        authenticated_pulls: settings.authenticated_pulls,
        api_calls: settings.api_calls,
        allow_insecure_upstreams: settings.allow_insecure_upstreams,
        pull_through_refresh_millis: (settings.pull_through_refresh_seconds as i64).saturating_mul(1000),
        pull_through_listing_wait: RegistryConfig::default().pull_through_listing_wait,
    };
    let data = DataDir::open(&settings.data_dir, &settings.storage, config).await?;
    data.registry.init_identity().await.context("loading token signing keys")?;
    let root_key = crate::root_key::load(&settings.root_key_file)?;
    let root_key_source = if std::env::var_os("BERTH_ROOT_KEY").is_some() {
        "BERTH_ROOT_KEY".to_string()
    } else {
        settings.root_key_file.display().to_string()
    };
    if settings.aes256_by_storage {
        tracing::warn!("--aes256-by-storage: AES256 repositories' new blobs are stored in clear; the storage underneath must encrypt them");
    }
    data.registry.install_key_service(root_key);
    // Another root key than the data's would fail every pull; refuse to start instead.
    data.registry.check_root_key().await.map_err(|e| {
        anyhow::anyhow!(
            "the root key ({root_key_source}) does not open the data this registry holds: give this node the root key the data was written with ({e})"
        )
    })?;
    if let Some((id, secret)) = data.registry.bootstrap_admin(settings.admin_key.clone()).await.context("creating the admin user")? {
        crate::datadir::announce_admin_key(&settings.data_dir, &settings.account_id, &settings.region, &id, &secret)?;
    }
    let metrics = Arc::new(Metrics::new(Some(logging.dropped.clone()))?);
    let ops = Arc::new(OpsState::new(&settings.data_dir, ops_args));
    metrics.ops.attach(ops.clone());
    let state = AppState { registry: data.registry.clone(), metrics: metrics.clone(), ops: ops.clone() };
    let app = app(state.clone(), settings.tls.is_some(), settings.connections.body_timeout);

    let listener = std::net::TcpListener::bind(settings.listen).with_context(|| format!("binding {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %local, data_dir = %settings.data_dir.display(), storage = %settings.storage.describe(), node = data.registry.node_id(), "berth listening on {scheme}://{local}");
    // Registered before anyone learns the address: a SIGTERM right after start drains too,
    // rather than killing the process with the default action.
    let signals = ShutdownSignals::register();
    // Scripts and tests read the bound address (port 0 = any free port) from this first stdout line.
    println!("listening on {local}");
    std::io::stdout().flush().ok();

    // Every background task runs under the registry's supervisor: restarted after a panic with
    // a growing delay, listed on /metrics, stopped before the shutdown's last writes.
    let tasks = data.registry.supervisor();
    if settings.gc_interval_seconds > 0 {
        let every = Duration::from_secs(settings.gc_interval_seconds);
        let state = state.clone();
        tasks.start("gc", Restart::Always, move || forever(gc_schedule(state.clone(), every)));
    }
    if settings.lifecycle_interval_seconds > 0 {
        let every = Duration::from_secs(settings.lifecycle_interval_seconds);
        let state = state.clone();
        tasks.start("lifecycle", Restart::Always, move || forever(lifecycle_schedule(state.clone(), every)));
    }
    match data.registry.load_quarantine().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(blobs = n, "quarantined blobs are not restored yet (see berth fsck)"),
        Err(e) => tracing::error!(error = %e, "listing quarantined blobs"),
    }
    if settings.scrub_interval_seconds > 0 {
        let rate = settings.scrub_rate_mib.saturating_mul(1024 * 1024);
        let every = Duration::from_secs(settings.scrub_interval_seconds);
        let registry = state.registry.clone();
        tasks.start("scrub", Restart::Always, move || forever(scrub_schedule(registry.clone(), every, rate)));
    }
    data.registry.start_audit(settings.audit.clone());
    data.registry.start_cluster_cache();
    let registry = state.registry.clone();
    tasks.start("flush_pulls", Restart::Always, move || forever(flush_pulls(registry.clone())));
    let registry = state.registry.clone();
    tasks.start("reload_signing_keys", Restart::Always, move || forever(reload_signing_keys(registry.clone())));
    data.registry.start_scanner(berth_core::scanning::ScanSettings {
        vulndb_dir: crate::vulndb::db_root(&settings.data_dir),
        workers: settings.scan_workers,
        timeout: Duration::from_secs(300),
    });
    // After the scanner: resuming requeues every job this node held, replication's too.
    data.registry.start_replication(settings.replication_workers);
    data.registry.start_webhook_delivery(
        settings.webhook_workers,
        berth_core::events::DeliverySettings { initial_backoff: settings.webhook_retry_initial, ..Default::default() },
    );
    match data.registry.resume_interrupted_scans().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(scans = n, "resumed scans interrupted by the last shutdown"),
        Err(e) => tracing::error!(error = %e, "resuming interrupted scans"),
    }
    if let Some(source) = backup_source {
        let (ops, registry) = (ops.clone(), state.registry.clone());
        tasks
            .start("backup", Restart::Always, move || forever(crate::backup::schedule::run(ops.clone(), registry.clone(), source.clone())));
    }
    if settings.vulndb_check_seconds > 0 {
        let every = Duration::from_secs(settings.vulndb_check_seconds);
        let registry = state.registry.clone();
        tasks.start("watch_vulndb", Restart::Always, move || forever(watch_vulndb(registry.clone(), every)));
    }

    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let limits = settings.connections;
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs(),
        body_timeout_s = limits.body_timeout.as_secs(),
        "connection limits"
    );
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    let draining = ops.clone();
    tasks.run_once(async move {
        signals.wait().await;
        // Health turns 503 first, so a load balancer stops sending; the listener closes after
        // the drain delay, and requests in flight get the grace period to finish.
        draining.start_draining();
        let delay = Duration::from_secs(draining.args.shutdown_drain_delay_seconds);
        if !delay.is_zero() {
            tracing::info!(seconds = delay.as_secs(), "draining: /health answers 503 before the listener closes");
            tokio::time::sleep(delay).await;
        }
        // New work is refused from here; uploads in progress carry on until they go quiet.
        let left = draining.drain.close(Duration::from_secs(draining.args.shutdown_grace_seconds)).await;
        tracing::info!("closing the listener; responses in flight get {} s more", left.as_secs());
        h.graceful_shutdown(Some(left));
    });
    // TCP_NODELAY: a streamed body (blobs) goes out after its headers in a second write, which
    // Nagle's algorithm held until the client's delayed ACK (~40 ms): 4 KiB blob GETs on one
    // connection went from ~100 to ~2,700 req/s with it.
    let admit = LimitedAcceptor::new(axum_server::accept::NoDelayAcceptor, limits.max_connections);
    match settings.tls {
        None => {
            let mut server = axum_server::from_tcp(listener).acceptor(admit);
            bound_silence(server.http_builder(), limits);
            server.handle(handle).serve(make_service).await.context("serving HTTP")?;
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))?;
            // The limit applies before the handshake, so half-open TLS clients count too.
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(admit);
            let mut server = axum_server::from_tcp(listener).acceptor(acceptor);
            bound_silence(server.http_builder(), limits);
            server.handle(handle).serve(make_service).await.context("serving HTTPS")?;
        }
    }
    // Every request has finished: what they queued for the audit trail is written before the
    // writer stops.
    if !data.registry.flush_audit(Duration::from_secs(30)).await {
        tracing::error!("the audit writer did not finish writing the queued records");
    }
    // Background work stops first, so the last flush and the lease releases below are the last
    // writes (a GC or lifecycle run is stopped, not left running past its released lease).
    data.registry.supervisor().shutdown(Duration::from_secs(10)).await;
    if let Err(e) = data.registry.flush_pulls().await {
        tracing::error!(error = %e, "recording pull times at shutdown");
    }
    // Another node takes the scheduled jobs at its next tick instead of after a whole period.
    for job in ["gc", "lifecycle", "scrub", crate::backup::schedule::LEASE] {
        if let Err(e) = data.registry.release_periodic_job(job).await {
            tracing::warn!(job, error = %e, "releasing the job's lease at shutdown");
        }
    }
    tracing::info!("berth stopped");
    Ok(ExitCode::SUCCESS)
}

/// HTTP/1 connections that send no request headers (slow, or idle between requests) are closed
/// after the header timeout. (HTTP/2 connections are bounded by the connection cap only.)
fn bound_silence(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>, limits: ConnectionLimits) {
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
}

fn app(state: AppState, tls: bool, body_timeout: Duration) -> Router {
    let admin = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/_berth/status", get(status_now))
        .route("/_berth/gc", post(gc_now))
        .route("/_berth/lifecycle", post(lifecycle_now))
        .route("/_berth/scrub", post(scrub_now))
        .route("/_berth/encrypt", post(encrypt_now))
        .with_state(state.clone());
    Router::new()
        .merge(berth_oci::router(state.registry.clone()))
        .merge(berth_aws::router(
            state.registry.clone(),
            vec![
                Arc::new(berth_ecr::EcrApi),
                Arc::new(berth_ecr_public::EcrPublicApi),
                Arc::new(berth_kms::KmsApi),
                Arc::new(berth_cloudtrail::CloudTrailApi),
                Arc::new(berth_secretsmanager::SecretsManagerApi),
                Arc::new(berth_sts::StsApi),
            ],
        ))
        .merge(admin)
        .merge(berth_console::gallery_router(state.registry.clone()))
        .nest("/console", berth_console::router(state.registry.clone(), berth_console::ConsoleSettings { tls }))
        // `nest` does not route the trailing-slash form to the nested router.
        .route("/console/", get(|| async { axum::response::Redirect::permanent("/console/repositories") }))
        // A request body that pauses longer than the body timeout fails the request (the handler
        // sees a read error, the upload stays as it was) and the connection closes.
        .layer(axum::middleware::map_request(move |req: axum::extract::Request| async move {
            // An empty body (most GETs) cannot stall: no wrapper, no allocation.
            req.map(|body| {
                if http_body::Body::is_end_stream(&body) {
                    body
                } else {
                    axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body))
                }
            })
        }))
        .layer(axum::middleware::map_request(move |mut req: axum::extract::Request| async move {
            // Adapters read the transport facts (peer address, TLS) for policy conditions.
            let source_ip = req.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            req.extensions_mut().insert(berth_core::auth::Transport { source_ip, secure: tls });
            req
        }))
        .layer(axum::middleware::from_fn_with_state(state.ops.drain.clone(), crate::drain::gate))
        .layer(axum::middleware::from_fn_with_state((state.metrics.clone(), state.registry.clone()), observe::track))
}

/// 503 while shutting down, so a load balancer stops sending before the listener closes.
async fn health(State(state): State<AppState>) -> Response {
    if state.ops.draining() {
        return (http::StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    "ok\n".into_response()
}

/// What the server is doing (`berth status`): needs a registry token of a principal allowed
/// `berth:GetStatus` on the registry.
async fn status_now(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    if let Err(denied) = authorize_operator(&state.registry, req, "berth:GetStatus").await {
        return denied;
    }
    axum::Json(crate::status::collect(&state.registry, &state.ops).await).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.render(&state.registry).await
}

#[derive(Deserialize)]
struct GcQuery {
    #[serde(default)]
    dry_run: bool,
    grace_seconds: Option<i64>,
}

/// Ops endpoints take a registry token (Basic `AWS:<token>`) of a principal allowed `action` on
/// the default registry; the refusal is an OCI error response.
async fn authorize_operator(registry: &Registry, req: axum::extract::Request, action: &str) -> Result<(), Response> {
    let caller = berth_oci::caller(&req);
    drop(req);
    let principal = berth_oci::authenticate_basic(registry, caller).await.map_err(|e| e.into_response())?;
    let scope = registry.config().default_registry.clone();
    registry
        .authorize(&principal, action, berth_core::auth::Resource::Registry(&scope))
        .await
        .map_err(|e| berth_oci::OciError::Registry(e).into_response())
}

/// Online GC, for operators: needs a registry token of a principal allowed `berth:CollectGarbage`.
async fn gc_now(State(state): State<AppState>, Query(q): Query<GcQuery>, req: axum::extract::Request) -> Response {
    let registry = state.registry.clone();
    if let Err(denied) = authorize_operator(&registry, req, "berth:CollectGarbage").await {
        return denied;
    }
    let opts = GcOptions { dry_run: q.dry_run, grace_millis: q.grace_seconds.map(|s| s.saturating_mul(1000)) };
    match registry.collect_garbage(opts).await {
        Ok(report) => {
            state.metrics.record_gc(&report);
            axum::Json(report).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "garbage collection failed");
            (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

/// Encrypts the blobs still stored in clear (`berth encrypt`, online): needs a registry token
/// of a principal allowed `berth:EncryptBlobs` on the registry. Answers the report when done.
async fn encrypt_now(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let registry = state.registry.clone();
    if let Err(denied) = authorize_operator(&registry, req, "berth:EncryptBlobs").await {
        return denied;
    }
    match registry.encrypt_existing(&|_| {}).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encrypting existing blobs failed");
            (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

#[derive(Deserialize)]
struct LifecycleQuery {
    #[serde(default)]
    dry_run: bool,
}

/// Applies every lifecycle policy now: needs a registry token of a principal allowed
/// `berth:RunLifecycle` on the registry.
async fn lifecycle_now(State(state): State<AppState>, Query(q): Query<LifecycleQuery>, req: axum::extract::Request) -> Response {
    let registry = state.registry.clone();
    if let Err(denied) = authorize_operator(&registry, req, "berth:RunLifecycle").await {
        return denied;
    }
    match registry.run_lifecycle_policies(None, q.dry_run).await {
        Ok(reports) => axum::Json(reports).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "lifecycle run failed");
            (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

/// A scrub pass now, at full speed, answering its report: needs a registry token of a principal
/// allowed `berth:Scrub` on the registry.
async fn scrub_now(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let registry = state.registry.clone();
    if let Err(denied) = authorize_operator(&registry, req, "berth:Scrub").await {
        return denied;
    }
    match registry.scrub(ScrubOptions::default()).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "scrub pass failed");
            (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

/// A task meant to run for the life of the process, as the supervisor runs it (it restarts a
/// task that ends or panics).
async fn forever(task: impl std::future::Future<Output = ()>) -> berth_core::supervisor::TaskResult {
    task.await;
    Err(Box::new("the task ended"))
}

async fn lifecycle_schedule(state: AppState, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // Claimed for this period and renewed while it runs (see berth_core::cluster).
        let registry = &state.registry;
        let run = registry.run_leased("lifecycle", every, |_| registry.run_lifecycle_policies(None, false));
        if let Err(e) = registry.supervisor().track_run("lifecycle", run).await {
            tracing::error!(error = %e, "scheduled lifecycle run failed");
        }
    }
}

/// Rescans CONTINUOUS_SCAN repositories when `berth vulndb import` swapped in a new database.
async fn watch_vulndb(registry: Arc<Registry>, every: Duration) {
    // None at start: the first tick also catches a database imported while berth was stopped
    // (rescan_continuous skips images already scanned with the current version).
    let mut seen: Option<String> = None;
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let now = registry.vulndb_version();
        if now.is_none() || now == seen {
            continue;
        }
        tracing::info!(version = ?now, "vulnerability database changed");
        match registry.rescan_continuous().await {
            Ok(n) => {
                tracing::info!(queued = n, "continuous rescans queued");
                seen = now;
            }
            Err(e) => tracing::error!(error = %e, "queueing continuous rescans; retrying at the next check"),
        }
    }
}

/// Signing keys rotated by another node (or `berth admin rotate-signing-key`) take effect here
/// within a minute; a token signed with a key this node has not seen yet triggers a re-read
/// at once (see Registry::authenticate_token).
async fn reload_signing_keys(registry: Arc<Registry>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(e) = registry.reload_signing_keys().await {
            tracing::warn!(error = %e, "re-reading token signing keys");
        }
    }
}

/// Pull times are noted in memory and written in batches (see berth_core::pulls).
async fn flush_pulls(registry: Arc<Registry>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        if let Err(e) = registry.flush_pulls().await {
            tracing::warn!(error = %e, "recording pull times");
        }
    }
}

/// Re-hashes every stored blob once per period, paced to `bytes_per_second` (see
/// berth_core::integrity). The first pass starts one period after start-up: until then blobs
/// are verified as they are first read.
async fn scrub_schedule(registry: Arc<Registry>, every: Duration, bytes_per_second: u64) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let opts = ScrubOptions { bytes_per_second: Some(bytes_per_second) };
        match registry.supervisor().track_run("scrub", registry.run_leased("scrub", every, |_| registry.scrub(opts))).await {
            Ok(None) => {}
            Ok(Some(r)) if r.corrupt.is_empty() => tracing::info!(blobs = r.blobs_checked, bytes = r.bytes_checked, "scrub pass finished"),
            Ok(Some(r)) => tracing::error!(blobs = r.blobs_checked, corrupt = ?r.corrupt, "scrub pass found corrupt blobs (quarantined)"),
            Err(e) => tracing::error!(error = %e, "scrub pass failed"),
        }
    }
}

async fn gc_schedule(state: AppState, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await; // the first tick is immediate; start collecting one period after start-up
    loop {
        ticker.tick().await;
        let registry = &state.registry;
        let opts = GcOptions { dry_run: false, grace_millis: None };
        match registry.supervisor().track_run("gc", registry.run_leased("gc", every, |_| registry.collect_garbage(opts))).await {
            Ok(Some(report)) => state.metrics.record_gc(&report),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "scheduled garbage collection failed"),
        }
    }
}

/// SIGTERM or SIGINT, listened for from start-up.
struct ShutdownSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn register() -> ShutdownSignals {
        use tokio::signal::unix::{signal, SignalKind};
        ShutdownSignals { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
    }

    async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! { _ = recv(&mut self.term) => {}, _ = recv(&mut self.int) => {} }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
