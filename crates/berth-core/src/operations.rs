//! What operators watch (`/metrics`, `/_berth/status`): whether the backends answer, and how old
//! the token signing key is.

use berth_store::Digest;

use crate::error::Result;
use crate::Registry;

/// Whether each backend answered a cheap probe just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendHealth {
    pub metadata: bool,
    pub blobs: bool,
}

impl Registry {
    /// One cheap call to each backend (a count on the metadata store, a stat of one digest on
    /// the blob store): an outage shows up here even when no client is calling.
    pub async fn probe_backends(&self) -> BackendHealth {
        let metadata = self.meta.count_uploads().await.is_ok();
        let blobs = self.blobs.stat(&Digest::sha256_of(b"")).await.is_ok();
        BackendHealth { metadata, blobs }
    }

    /// Unix milliseconds at which the key new tokens are signed with was created (None before
    /// the first start); a rotation policy alerts on its age.
    pub async fn signing_key_created_millis(&self) -> Result<Option<i64>> {
        Ok(self.meta.current_signing_key_created().await?)
    }
}
