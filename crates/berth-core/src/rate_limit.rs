//! Request rate limits (ECR Public's pull quotas: anonymous pulls per source IP, authenticated
//! pulls per principal): one token bucket per key, refilled at `per_second` up to `burst`.
//!
//! Buckets live in memory, in a bounded cache (an unauthenticated client choosing source
//! addresses cannot make berth hold more than `MAX_KEYS` of them; an idle bucket is full again
//! anyway, so forgetting it after `IDLE` changes nothing). Each node limits on its own: in a
//! cluster of N nodes behind a load balancer a client may get up to N× the limit (the stated
//! tolerance; a shared counter would put a database write on every pull).

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keys tracked at once, per limiter.
const MAX_KEYS: u64 = 100_000;
/// A bucket untouched this long is dropped (it would be full by then at any useful rate).
const IDLE: Duration = Duration::from_secs(600);

/// A limit: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// None for a rate of 0 (no limit).
    pub fn new(per_second: f64, burst: f64) -> Option<Rate> {
        (per_second > 0.0).then_some(Rate { per_second, burst: burst.max(1.0) })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at_millis: i64,
}

/// One limit over many keys.
pub struct RateLimiter {
    rate: Rate,
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
}

impl RateLimiter {
    pub fn new(rate: Rate) -> RateLimiter {
        RateLimiter { rate, buckets: moka::sync::Cache::builder().max_capacity(MAX_KEYS).time_to_idle(IDLE).build() }
    }

    /// Takes one token for `key` at `now_millis`; Err(seconds until one is available) when the
    /// bucket is empty (nothing is taken then).
    pub fn take(&self, key: &str, now_millis: i64) -> Result<(), u64> {
        let burst = self.rate.burst;
        let bucket = self.buckets.get_with(key.to_string(), || Arc::new(Mutex::new(Bucket { tokens: burst, at_millis: now_millis })));
        let mut b = bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = (now_millis - b.at_millis).max(0) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * self.rate.per_second).min(burst);
        b.at_millis = now_millis.max(b.at_millis);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate.per_second).ceil().max(1.0) as u64)
        }
    }
}

impl crate::Registry {
    /// Spends one AWS API call of `principal`'s rate (`--api-rate-limit`); Throttled when spent.
    pub fn take_api_call(&self, principal: &crate::auth::Principal) -> Result<(), crate::RegistryError> {
        let Some(limiter) = &self.api_limiter else { return Ok(()) };
        limiter.take(&principal.arn, self.now()).map_err(|retry_after_secs| crate::RegistryError::Throttled {
            message: format!("Rate exceeded: {} is over its API request rate; retry in {retry_after_secs} s", principal.arn),
            retry_after_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let l = RateLimiter::new(Rate::new(2.0, 3.0).unwrap());
        let t = 1_000_000;
        for _ in 0..3 {
            assert_eq!(l.take("ip", t), Ok(()));
        }
        assert_eq!(l.take("ip", t), Err(1), "the burst is spent");
        assert_eq!(l.take("other", t), Ok(()), "per key");
        assert_eq!(l.take("ip", t + 500), Ok(()), "half a second later: one token at 2/s");
        assert_eq!(l.take("ip", t + 500), Err(1));
        assert_eq!(l.take("ip", t + 60_000), Ok(()));
        for _ in 0..2 {
            assert_eq!(l.take("ip", t + 60_000), Ok(()));
        }
        assert!(l.take("ip", t + 60_000).is_err(), "refilled to the burst, not beyond");
    }

    #[test]
    fn slow_rates_say_how_long_to_wait() {
        let l = RateLimiter::new(Rate::new(0.1, 1.0).unwrap());
        assert_eq!(l.take("k", 0), Ok(()));
        assert_eq!(l.take("k", 0), Err(10));
        assert_eq!(l.take("k", 5_000), Err(5));
        assert!(Rate::new(0.0, 5.0).is_none(), "0 means no limit");
    }
}
