//! The root key `berth serve` wraps every KMS key under: `BERTH_ROOT_KEY` (64 hex digits) when
//! set, else the key file, created on first start.

use std::path::Path;

use anyhow::Context;
use berth_crypto::RootKey;

pub fn load(file: &Path) -> anyhow::Result<RootKey> {
    if let Ok(hex) = std::env::var("BERTH_ROOT_KEY") {
        return RootKey::from_hex(&hex).context("reading BERTH_ROOT_KEY");
    }
    let (key, created) = RootKey::load_or_create(file).context("loading the root key")?;
    if created {
        // Said once, loudly: losing this file loses every encrypted byte.
        tracing::warn!(path = %file.display(), "created a new root key; back it up with the data (without it, encrypted data cannot be read)");
    }
    Ok(key)
}
