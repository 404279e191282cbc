//! Delivering queued events to webhooks: supervised workers claim `webhook_delivery` jobs under
//! a lease (one delivery per cluster at a time), POST the event signed, and retry anything but a
//! 2xx with exponential backoff for a day.
//!
//! Signature: `X-Berth-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
//! `X-Berth-Timestamp: <unix seconds>` (the time of this attempt). A receiver recomputes the
//! HMAC over the timestamp header, a dot and the raw body, compares in constant time, and
//! rejects a timestamp older than its tolerance (say 5 minutes) so that a captured request
//! cannot be replayed later; it de-duplicates on `X-Berth-Event-Id` (a retry of a delivery it
//! already took carries the same id). [`verify`] is that check.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use berth_store::{DeliveryRow, JobRow};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::webhooks::{secret_aad, DeliveryJob, HISTORY_KEPT, SECRET_PURPOSE};
use super::DELIVERY_JOB;
use crate::supervisor::{Restart, TaskResult};
use crate::Registry;

pub const EVENT_ID_HEADER: &str = "X-Berth-Event-Id";
pub const TIMESTAMP_HEADER: &str = "X-Berth-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Berth-Signature";

/// A claimed delivery is this node's for this long (an attempt is bounded by the timeout).
const LEASE_MILLIS: i64 = 60_000;
const CLAIM_BATCH: u32 = 4;
/// How often idle workers look for deliveries another node queued (this node's wake them).
const POLL: Duration = Duration::from_secs(5);

/// How deliveries are retried.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The first retry's delay; each next one doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// From the event's queueing: no retry is scheduled past this; the delivery is FAILED.
    pub give_up_after: Duration,
    /// One attempt's bound (connect, send, the answer's head).
    pub timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Delivery outcomes since start (the `result` label of /metrics: a closed set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub delivered: u64,
    /// Attempts that failed and were scheduled again.
    pub retried: u64,
    /// Deliveries given up on after the retry period.
    pub failed: u64,
    /// Events that could not be queued (the change itself stood).
    pub queue_failures: u64,
}

/// The event state inside the registry.
#[derive(Default)]
pub(crate) struct Events {
    wake: Arc<tokio::sync::Notify>,
    settings: OnceLock<DeliverySettings>,
    client: OnceLock<reqwest::Client>,
    stats: Mutex<DeliveryStats>,
}

impl Events {
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn note_queue_failure(&self) {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).queue_failures += 1;
    }

    fn note(&self, f: impl FnOnce(&mut DeliveryStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn settings(&self) -> DeliverySettings {
        self.settings.get().cloned().unwrap_or_default()
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        // No redirects: a signed event goes to the configured URL only.
        let client = reqwest::Client::builder()
            .timeout(self.settings().timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("berth-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {}", e.without_url()))?;
        Ok(self.client.get_or_init(|| client))
    }
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { unreachable!("HMAC takes keys of any length") };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A receiver's check: the signature matches (constant time) and the timestamp is within
/// `tolerance_secs` of `now_secs`.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], signature: &str, now_secs: i64, tolerance_secs: i64) -> bool {
    use subtle::ConstantTimeEq;
    let expected = sign(secret, timestamp, body);
    (now_secs - timestamp).abs() <= tolerance_secs && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

/// The delay before retry number `attempt` (1 = after the first failure): `initial` doubling,
/// at most `max`.
pub fn backoff_millis(initial: Duration, max: Duration, attempt: i64) -> i64 {
    let initial = initial.as_millis().min(i64::MAX as u128) as i64;
    let max = max.as_millis().min(i64::MAX as u128) as i64;
    initial.saturating_mul(1i64 << (attempt - 1).clamp(0, 40)).min(max)
}

/// What one attempt ended in.
enum Attempt {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

impl Registry {
    /// Starts `workers` delivery workers (once) under the registry's supervisor.
    pub fn start_webhook_delivery(self: &Arc<Self>, workers: usize, settings: DeliverySettings) {
        if self.events.settings.set(settings).is_err() {
            return;
        }
        for _ in 0..workers.max(1) {
            let registry = Arc::downgrade(self);
            self.supervisor.start("webhook_worker", Restart::OnFailure, move || webhook_worker(registry.clone()));
        }
    }

    pub fn webhook_stats(&self) -> DeliveryStats {
        self.events.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs every delivery due now on this task, until none is left due; how many attempts ran
    /// (tests and tools; servers run workers).
    pub async fn run_due_deliveries(&self) -> crate::error::Result<usize> {
        let mut ran = 0;
        loop {
            let now = self.now();
            let claimed = self.meta.claim_jobs(&[DELIVERY_JOB], &self.node_id, now, now + LEASE_MILLIS, 16).await?;
            if claimed.is_empty() {
                return Ok(ran);
            }
            for job in claimed {
                self.run_delivery_job(job).await;
                ran += 1;
            }
        }
    }

    async fn run_delivery_job(&self, job: JobRow) {
        let Ok(payload) = serde_json::from_str::<DeliveryJob>(&job.payload) else {
            let _ = self.meta.fail_job(job.id, &self.node_id, "unreadable webhook delivery", None).await;
            return;
        };
        let webhook = match self.meta.webhook(&payload.webhook).await {
            Ok(Some(w)) => w,
            Ok(None) => {
                // Removed since: nothing to deliver to.
                let _ = self.meta.complete_job(job.id, &self.node_id).await;
                return;
            }
            Err(e) => {
                tracing::warn!(webhook = %payload.webhook, error = %e, "reading a webhook; the delivery is retried after its lease");
                return;
            }
        };
        let outcome = match self.open_own_secret(SECRET_PURPOSE, &secret_aad(&webhook.account, &webhook.id), &webhook.sealed_secret) {
            Ok(secret) => self.post(&webhook.url, &secret, &payload).await,
            Err(_) => Attempt::Failed { status: None, error: "the webhook's secret does not open under this root key".into() },
        };
        if let Err(e) = self.finish_attempt(&job, &payload, outcome).await {
            // The lease ends on its own; the delivery is then claimed again.
            tracing::error!(webhook = %payload.webhook, event = %payload.event_id, error = %e, "recording a webhook delivery");
        }
    }

    async fn post(&self, url: &str, secret: &[u8], payload: &DeliveryJob) -> Attempt {
        let client = match self.events.client() {
            Ok(c) => c,
            Err(error) => return Attempt::Failed { status: None, error },
        };
        let timestamp = self.now().div_euclid(1000);
        let sent = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, &payload.event_id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign(secret, timestamp, payload.body.as_bytes()))
            .body(payload.body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => Attempt::Delivered(resp.status().as_u16()),
            Ok(resp) => Attempt::Failed { status: Some(resp.status().as_u16()), error: format!("HTTP {}", resp.status()) },
            // Without the URL: it may carry a token of the receiver's.
            Err(e) if e.is_timeout() => Attempt::Failed { status: None, error: "timed out".into() },
            Err(e) => Attempt::Failed { status: None, error: error_chain(&e.without_url()) },
        }
    }

    async fn finish_attempt(&self, job: &JobRow, payload: &DeliveryJob, outcome: Attempt) -> crate::error::Result<()> {
        let now = self.now();
        let settings = self.events.settings();
        let mut row = DeliveryRow {
            webhook_id: payload.webhook.clone(),
            event_id: payload.event_id.clone(),
            detail_type: payload.detail_type.clone(),
            attempt: job.attempts,
            at: now,
            status_code: None,
            error: None,
            outcome: String::new(),
        };
        match outcome {
            Attempt::Delivered(status) => {
                row.status_code = Some(i64::from(status));
                row.outcome = "delivered".into();
                self.meta.record_delivery(&row, HISTORY_KEPT).await?;
                self.meta.complete_job(job.id, &self.node_id).await?;
                self.events.note(|s| s.delivered += 1);
            }
            Attempt::Failed { status, error } => {
                let retry_at = now + backoff_millis(settings.initial_backoff, settings.max_backoff, job.attempts);
                let deadline = payload.queued_at.saturating_add(settings.give_up_after.as_millis().min(i64::MAX as u128) as i64);
                let retry_at = (retry_at <= deadline).then_some(retry_at);
                row.status_code = status.map(i64::from);
                row.outcome = if retry_at.is_some() { "retrying" } else { "failed" }.into();
                row.error = Some(error.clone());
                tracing::warn!(webhook = %payload.webhook, event = %payload.event_id, attempt = job.attempts, error = %error,
                    retry_in_ms = retry_at.map(|t| t - now), "webhook delivery failed");
                self.meta.record_delivery(&row, HISTORY_KEPT).await?;
                self.meta.fail_job(job.id, &self.node_id, &error, retry_at).await?;
                match retry_at {
                    Some(_) => self.events.note(|s| s.retried += 1),
                    None => self.events.note(|s| s.failed += 1),
                }
            }
        }
        Ok(())
    }
}

/// An error and its sources ("error sending request: connection refused"), which is what an
/// operator needs to see; reqwest's own text stops at the first level.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

async fn webhook_worker(registry: Weak<Registry>) -> TaskResult {
    loop {
        let Some(r) = registry.upgrade() else { return Ok(()) };
        let now = r.now();
        let claimed =
            r.meta.claim_jobs(&[DELIVERY_JOB], &r.node_id, now, now + LEASE_MILLIS, CLAIM_BATCH).await.map_err(|e| Box::new(e) as _)?;
        if claimed.is_empty() {
            let wake = r.events.wake.clone();
            // The next retry due may be sooner than the poll (tests use short backoffs).
            let poll = POLL.min(r.events.settings().initial_backoff.max(Duration::from_millis(50)));
            drop(r);
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        for job in claimed {
            r.run_delivery_job(job).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Known answer: HMAC-SHA256(key "secret", "1700000000.{}").
        let s = sign(b"secret", 1_700_000_000, b"{}");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64, "{s}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").expect("key");
        mac.update(b"1700000000.{}");
        assert_eq!(s, format!("v1={}", hex::encode(mac.finalize().into_bytes())));
        assert!(verify(b"secret", 1_700_000_000, b"{}", &s, 1_700_000_100, 300));
        assert!(!verify(b"secret", 1_700_000_000, b"{}", &s, 1_700_000_301, 300), "too old: a replay");
        assert!(!verify(b"other", 1_700_000_000, b"{}", &s, 1_700_000_000, 300), "another secret");
        assert!(!verify(b"secret", 1_700_000_001, b"{}", &s, 1_700_000_001, 300), "another timestamp");
        assert!(!verify(b"secret", 1_700_000_000, b"{ }", &s, 1_700_000_000, 300), "another body");
    }

    #[test]
    fn backoff_doubles_from_one_second_to_an_hour() {
        let (first, max) = (Duration::from_secs(1), Duration::from_secs(3600));
        let delays: Vec<i64> = (1..=14).map(|a| backoff_millis(first, max, a)).collect();
        assert_eq!(&delays[..6], &[1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
        assert_eq!(delays[11], 2_048_000);
        assert_eq!(delays[12], 3_600_000, "capped at an hour");
        assert_eq!(backoff_millis(first, max, 1000), 3_600_000, "no overflow");
        assert_eq!(backoff_millis(Duration::from_millis(20), max, 3), 80);
        // Tries within a day: the first, 12 doubling retries (~68 min in all), then 22 hourly.
        let (mut at, mut tries) = (0, 1);
        while at + backoff_millis(first, max, tries) <= 24 * 3_600_000 {
            at += backoff_millis(first, max, tries);
            tries += 1;
        }
        assert_eq!(tries, 35);
    }
}
