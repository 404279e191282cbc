//! The node-local blob cache's figures (`--blob-cache-dir`) in /metrics, copied from its
//! totals at each scrape. Registered on every node, so dashboards need no special case: a node
//! without the cache reports zeros.

use berth_s3::LocalCacheCounts;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry as PromRegistry};

pub(crate) struct BlobCacheMetrics {
    /// Reads by result (`hit`: from this node's disk; `miss`: from the bucket).
    reads: IntCounterVec,
    fills: IntCounterVec,
    evictions: IntCounter,
    damaged: IntCounter,
    swept: IntCounter,
    bytes: IntGauge,
    max_bytes: IntGauge,
    /// Two scrapes at once would both add the same difference.
    updating: std::sync::Mutex<()>,
}

impl BlobCacheMetrics {
    pub(crate) fn new(registry: &PromRegistry) -> prometheus::Result<Self> {
        let m = BlobCacheMetrics {
            reads: IntCounterVec::new(
                Opts::new("berth_blob_cache_reads_total", "Blob reads on a node with --blob-cache-dir, by result (hit: from its disk, miss: from the bucket)"),
                &["result"],
            )?,
            fills: IntCounterVec::new(
                Opts::new(
                    "berth_blob_cache_fills_total",
                    "Copies into the node-local blob cache, by result (done, or dropped: client gone, disk behind, too many at once, disk error)",
                ),
                &["result"],
            )?,
            evictions: IntCounter::new("berth_blob_cache_evictions_total", "Copies removed to keep the node-local blob cache within its bound")?,
            damaged: IntCounter::new("berth_blob_cache_damaged_total", "Copies found damaged on the node's disk (removed; the bucket's copy was not touched)")?,
            swept: IntCounter::new(
                "berth_blob_cache_swept_total",
                "Copies removed because their blob left the bucket (deleted through another node; checked every 10 minutes)",
            )?,
            bytes: IntGauge::new("berth_blob_cache_bytes", "Bytes the node-local blob cache holds")?,
            max_bytes: IntGauge::new("berth_blob_cache_max_bytes", "The node-local blob cache's bound (0: no cache)")?,
            updating: std::sync::Mutex::new(()),
        };
        registry.register(Box::new(m.reads.clone()))?;
        registry.register(Box::new(m.fills.clone()))?;
        registry.register(Box::new(m.evictions.clone()))?;
        registry.register(Box::new(m.damaged.clone()))?;
        registry.register(Box::new(m.swept.clone()))?;
        registry.register(Box::new(m.bytes.clone()))?;
        registry.register(Box::new(m.max_bytes.clone()))?;
        Ok(m)
    }

    pub(crate) fn update(&self, now: LocalCacheCounts) {
        let _one_at_a_time = self.updating.lock().unwrap_or_else(|p| p.into_inner());
        // The cache's totals only grow; the counters catch up by the difference.
        for (counter, total) in [
            (self.reads.with_label_values(&["hit"]), now.hits),
            (self.reads.with_label_values(&["miss"]), now.misses),
            (self.fills.with_label_values(&["done"]), now.fills),
            (self.fills.with_label_values(&["dropped"]), now.fills_dropped),
            (self.evictions.clone(), now.evictions),
            (self.damaged.clone(), now.damaged),
            (self.swept.clone(), now.swept),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.bytes.set(i64::try_from(now.bytes).unwrap_or(i64::MAX));
        self.max_bytes.set(i64::try_from(now.max_bytes).unwrap_or(i64::MAX));
    }
}
