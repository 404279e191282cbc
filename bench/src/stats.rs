//! Latency histograms (microseconds) and resident-memory sampling.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant figures; new_with_bounds only fails on invalid bounds.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_micros().clamp(1, u64::MAX as u128) as u64);
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// p50, p99, max and mean in milliseconds, plus the count.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
        "mean_ms": (h.mean()).round() / 1000.0,
    })
}

fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text.lines().find(|l| l.starts_with(field)).with_context(|| format!("{field} not in {path}"))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().with_context(|| format!("parsing {line:?}"))
}

/// Samples `VmRSS` of a process every 10 ms on a thread, after resetting its `VmHWM`
/// (`echo 5 > /proc/PID/clear_refs`), so that the peak is the peak of this interval.
pub struct RssSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    hwm_reset: bool,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Result<RssSampler> {
        let initial = status_kb(pid, "VmRSS:")?;
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(initial));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(kb) = status_kb(pid, "VmRSS:") {
                    p.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Ok(RssSampler { pid, stop, peak, hwm_reset, thread: Some(thread) })
    }

    /// Stops sampling; returns JSON with the sampled peak and (when it could be reset) `VmHWM`, in kB.
    pub fn finish(mut self) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let sampled = self.peak.load(Ordering::Relaxed);
        let hwm = if self.hwm_reset { status_kb(self.pid, "VmHWM:").ok() } else { None };
        let after = status_kb(self.pid, "VmRSS:").ok();
        json!({
            "pid": self.pid,
            "rss_peak_kb": sampled.max(hwm.unwrap_or(0)),
            "rss_sampled_peak_kb": sampled,
            "vmhwm_kb": hwm,
            "rss_after_kb": after,
        })
    }
}
