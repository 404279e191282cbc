//! ECR's `lastRecordedPullTime`, recorded on every manifest pull without a write per pull.
//!
//! A pull is noted in memory; a flush (every few seconds from `serve`, and before anything
//! that reads pull times: lifecycle evaluation, image listings) writes all pending pulls in
//! one transaction. A manifest pulled again within [`PULL_RESOLUTION_MILLIS`] of its last
//! recorded pull is not noted again (ECR documents its own pull time as approximate too), so
//! a hot tag costs one map lookup per GET, not one database write.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_store::{Digest, Millis, RepoKey};

/// Pulls closer together than this are recorded once.
pub const PULL_RESOLUTION_MILLIS: i64 = 60 * 1000;
/// Bound on remembered pull times; the map is cleared when it grows past this.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Default)]
pub(crate) struct PullLog {
    inner: Mutex<PullLogInner>,
}

#[derive(Default)]
struct PullLogInner {
    pending: HashMap<(RepoKey, Digest), Millis>,
    /// The last time noted per manifest (pending or flushed).
    noted: HashMap<(RepoKey, Digest), Millis>,
}

impl PullLog {
    pub(crate) fn note(&self, key: &RepoKey, digest: &Digest, now: Millis) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let id = (key.clone(), digest.clone());
        if let Some(last) = inner.noted.get(&id) {
            if now >= *last && now - *last < PULL_RESOLUTION_MILLIS {
                return;
            }
        }
        if inner.noted.len() >= MAX_REMEMBERED {
            inner.noted.clear();
        }
        inner.noted.insert(id.clone(), now);
        inner.pending.insert(id, now);
    }

    /// Takes everything not yet written.
    pub(crate) fn take(&self) -> Vec<(RepoKey, Digest, Millis)> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.pending.drain().map(|((k, d), at)| (k, d, at)).collect()
    }

    /// Puts pulls back after a failed write so the next flush retries them.
    pub(crate) fn restore(&self, pulls: Vec<(RepoKey, Digest, Millis)>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (k, d, at) in pulls {
            let slot = inner.pending.entry((k, d)).or_insert(at);
            *slot = (*slot).max(at);
        }
    }
}
