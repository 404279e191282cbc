//! Webhook delivery figures in /metrics, copied from the service's totals at each scrape. The
//! only label is the outcome, a closed set: never a URL or an account (receivers' addresses
//! may carry tokens, and accounts would grow the series).

use berth_core::Registry;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry as PromRegistry};

pub(crate) struct WebhookMetrics {
    deliveries: IntCounterVec,
    queue_depth: IntGauge,
    /// Two scrapes at once would both add the same difference.
    updating: tokio::sync::Mutex<()>,
}

impl WebhookMetrics {
    pub(crate) fn new(registry: &PromRegistry) -> prometheus::Result<Self> {
        let m = WebhookMetrics {
            deliveries: IntCounterVec::new(
                Opts::new(
                    "berth_webhook_deliveries_total",
                    "Webhook delivery attempts by result: delivered (2xx), retried (failed, scheduled again), failed \
                     (given up after the retry period), queue_failed (an event that could not be queued)",
                ),
                &["result"],
            )?,
            queue_depth: IntGauge::new("berth_webhook_queue_depth", "Webhook deliveries waiting or in flight (not given up)")?,
            updating: tokio::sync::Mutex::new(()),
        };
        registry.register(Box::new(m.deliveries.clone()))?;
        registry.register(Box::new(m.queue_depth.clone()))?;
        Ok(m)
    }

    pub(crate) async fn update(&self, registry: &Registry) {
        let _one_at_a_time = self.updating.lock().await;
        let stats = registry.webhook_stats();
        // The service's totals only grow; the counters catch up by the difference.
        for (result, total) in
            [("delivered", stats.delivered), ("retried", stats.retried), ("failed", stats.failed), ("queue_failed", stats.queue_failures)]
        {
            let c = self.deliveries.with_label_values(&[result]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        if let Ok(counts) = registry.job_counts().await {
            let depth: u64 = counts
                .iter()
                .filter(|(kind, status, _)| kind == berth_core::events::DELIVERY_JOB && *status != berth_store::JobStatus::Failed)
                .map(|(_, _, n)| n)
                .sum();
            self.queue_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }
}
