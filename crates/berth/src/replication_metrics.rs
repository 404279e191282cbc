//! Replication figures in /metrics, copied from the service's totals at each scrape. The
//! destination label comes from replication rules, which only an authorized principal sets
//! (at most 25 destinations per registry), so clients cannot grow the series.

use berth_core::replication::ReplicationStats;
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry as PromRegistry};

pub(crate) struct ReplicationMetrics {
    completed: IntCounterVec,
    failed: IntCounterVec,
    lag_sum_ms: IntCounterVec,
    last_lag_ms: IntGaugeVec,
    queue_failures: IntCounter,
    /// Two scrapes at once would both add the same difference.
    updating: std::sync::Mutex<()>,
}

impl ReplicationMetrics {
    pub(crate) fn new(registry: &PromRegistry) -> prometheus::Result<Self> {
        let by_destination = &["destination"];
        let m = ReplicationMetrics {
            completed: IntCounterVec::new(
                Opts::new("berth_replication_completed_total", "Images replicated (COMPLETE), by destination region/registry id"),
                by_destination,
            )?,
            failed: IntCounterVec::new(
                Opts::new("berth_replication_failed_total", "Image replications given up on (FAILED), by destination"),
                by_destination,
            )?,
            lag_sum_ms: IntCounterVec::new(
                Opts::new(
                    "berth_replication_lag_milliseconds_sum",
                    "Sum of push-to-COMPLETE times (divide by berth_replication_completed_total for the mean lag)",
                ),
                by_destination,
            )?,
            last_lag_ms: IntGaugeVec::new(
                Opts::new("berth_replication_last_lag_milliseconds", "Push-to-COMPLETE time of the latest replicated image"),
                by_destination,
            )?,
            queue_failures: IntCounter::new(
                "berth_replication_queue_failures_total",
                "Pushes whose replication could not be queued (the push itself succeeded)",
            )?,
            updating: std::sync::Mutex::new(()),
        };
        registry.register(Box::new(m.completed.clone()))?;
        registry.register(Box::new(m.failed.clone()))?;
        registry.register(Box::new(m.lag_sum_ms.clone()))?;
        registry.register(Box::new(m.last_lag_ms.clone()))?;
        registry.register(Box::new(m.queue_failures.clone()))?;
        Ok(m)
    }

    pub(crate) fn update(&self, stats: ReplicationStats) {
        let _one_at_a_time = self.updating.lock().unwrap_or_else(|p| p.into_inner());
        // The service's totals only grow; the counters catch up by the difference.
        for (destination, t) in stats.destinations {
            let label = [destination.as_str()];
            for (counter, total) in [(&self.completed, t.completed), (&self.failed, t.failed), (&self.lag_sum_ms, t.lag_millis_sum)] {
                let c = counter.with_label_values(&label);
                c.inc_by(total.saturating_sub(c.get()));
            }
            self.last_lag_ms.with_label_values(&label).set(i64::try_from(t.last_lag_millis).unwrap_or(i64::MAX));
        }
        self.queue_failures.inc_by(stats.queue_failures.saturating_sub(self.queue_failures.get()));
    }
}
