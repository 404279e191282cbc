//! Graceful shutdown in three phases, so a rolling restart fails no request:
//! 1. *Draining* (SIGTERM, for `--shutdown-drain-delay-seconds`): `/health` answers 503 so a load
//!    balancer stops sending, and everything still arriving is served (the balancer has not
//!    noticed yet).
//! 2. *Closing*: new work is refused with 503 (in the caller's protocol shape, `Connection:
//!    close`), except requests that continue an upload already started (a layer's PATCH, its
//!    final PUT, ECR's UploadLayerPart/CompleteLayerUpload), so a push in progress finishes the
//!    blob it was sending. It ends once nothing is in flight and no upload has moved for
//!    [`UPLOAD_QUIET`], or when the grace period is over.
//! 3. The listener closes; responses still streaming (a pull) get what is left of the grace period.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};
// The runtime's clock, so the unit test below can run it paused.
use tokio::time::Instant;

/// How long after an upload request ends the node still waits for the same client's next one
/// (a PATCH is followed by its PUT at once; docker sends the next layer's POST right after).
pub const UPLOAD_QUIET: Duration = Duration::from_secs(1);

const SERVING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSING: u8 = 2;

pub struct Drain {
    phase: AtomicU8,
    in_flight: AtomicUsize,
    last_upload: Mutex<Option<Instant>>,
    changed: tokio::sync::Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { phase: AtomicU8::new(SERVING), in_flight: AtomicUsize::new(0), last_upload: Mutex::new(None), changed: Default::default() }
    }
}

impl Drain {
    pub fn start_draining(&self) {
        let _ = self.phase.compare_exchange(SERVING, DRAINING, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Health answers 503 from the first phase on.
    pub fn draining(&self) -> bool {
        self.phase.load(Ordering::SeqCst) != SERVING
    }

    fn closing(&self) -> bool {
        self.phase.load(Ordering::SeqCst) == CLOSING
    }

    /// Refuses new work and waits, at most `grace`, until the requests in flight have ended and
    /// no upload has moved for [`UPLOAD_QUIET`]. Returns what is left of `grace`.
    pub async fn close(&self, grace: Duration) -> Duration {
        let start = Instant::now();
        self.phase.store(CLOSING, Ordering::SeqCst);
        loop {
            let changed = self.changed.notified();
            let waited = start.elapsed();
            if waited >= grace {
                return Duration::ZERO;
            }
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            let quiet_for = self.last_upload.lock().unwrap_or_else(|p| p.into_inner()).map(|t| t.elapsed());
            let wait = match (busy, quiet_for) {
                (true, _) => grace - waited,
                (false, Some(q)) if q < UPLOAD_QUIET => UPLOAD_QUIET - q,
                (false, _) => return grace - waited,
            };
            let _ = tokio::time::timeout(wait.min(grace - waited), changed).await;
        }
    }

    fn enter(self: &Arc<Self>, upload: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight { drain: self.clone(), upload }
    }
}

struct InFlight {
    drain: Arc<Drain>,
    upload: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.upload {
            *self.drain.last_upload.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        self.drain.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.drain.changed.notify_waiters();
    }
}

/// The middleware: counts requests in flight and refuses new work while closing.
pub async fn gate(State(drain): State<Arc<Drain>>, req: Request, next: Next) -> Response {
    let upload = continues_upload(&req);
    if drain.closing() && !upload && !operator_path(req.uri().path()) {
        return refused(&req);
    }
    let _in_flight = drain.enter(upload);
    next.run(req).await
}

/// Health and metrics stay answered to the end (the balancer and Prometheus watch the drain).
fn operator_path(path: &str) -> bool {
    matches!(path, "/health" | "/metrics")
}

/// A request that carries on an upload session a client has already opened.
fn continues_upload(req: &Request) -> bool {
    let path = req.uri().path();
    if path.starts_with("/v2/") {
        let session = path.rsplit_once("/blobs/uploads/").is_some_and(|(_, id)| !id.is_empty() && !id.contains('/'));
        return session && matches!(*req.method(), Method::PATCH | Method::PUT | Method::GET);
    }
    req.method() == Method::POST
        && req
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.ends_with(".UploadLayerPart") || t.ends_with(".CompleteLayerUpload"))
}

/// 503 in the shape the caller's protocol expects, with `Connection: close` so the client's
/// next attempt opens a connection the load balancer sends elsewhere.
fn refused(req: &Request) -> Response {
    let message = "berth is shutting down; retry (another node will answer)";
    let mut resp = if req.uri().path().starts_with("/v2") {
        let body = serde_json::json!({"errors": [{"code": "UNAVAILABLE", "message": message, "detail": null}]});
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    } else if req.headers().contains_key("x-amz-target") {
        let body = serde_json::json!({"__type": "ServiceUnavailableException", "message": message});
        let mut r = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.1"));
        r
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n")).into_response()
    };
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str, target: Option<&str>) -> Request {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(t) = target {
            b = b.header("x-amz-target", t);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn upload_continuations_are_told_apart_from_new_work() {
        assert!(continues_upload(&req(Method::PATCH, "/v2/team/app/blobs/uploads/3f2a", None)));
        assert!(continues_upload(&req(Method::PUT, "/v2/a/b/c/blobs/uploads/3f2a", None)));
        assert!(!continues_upload(&req(Method::POST, "/v2/team/app/blobs/uploads/", None)));
        assert!(!continues_upload(&req(Method::PUT, "/v2/team/app/manifests/v1", None)));
        assert!(!continues_upload(&req(Method::GET, "/v2/team/app/blobs/sha256:ab", None)));
        assert!(continues_upload(&req(Method::POST, "/", Some("AmazonEC2ContainerRegistry_V20150921.UploadLayerPart"))));
        assert!(!continues_upload(&req(Method::POST, "/", Some("AmazonEC2ContainerRegistry_V20150921.InitiateLayerUpload"))));
    }

    #[tokio::test]
    async fn close_waits_for_requests_in_flight_then_a_quiet_upload_bounded_by_grace() {
        let grace = Duration::from_secs(30);
        let d = Arc::new(Drain::default());
        assert!(d.close(grace).await > grace - UPLOAD_QUIET, "nothing in flight: at once");

        let d = Arc::new(Drain::default());
        let upload = d.enter(true);
        let start = Instant::now();
        let closer = tokio::spawn({
            let d = d.clone();
            async move { d.close(grace).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!closer.is_finished(), "an upload is in flight");
        drop(upload);
        let left = closer.await.unwrap();
        // The upload's end, then the quiet second for the same client's next request.
        assert!(start.elapsed() >= Duration::from_millis(200) + UPLOAD_QUIET);
        assert!(left <= grace - UPLOAD_QUIET - Duration::from_millis(200));

        let d = Arc::new(Drain::default());
        let _stuck = d.enter(false);
        assert_eq!(d.close(Duration::from_millis(300)).await, Duration::ZERO, "bounded by the grace period");
    }
}
