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

/// For offline commands that read encrypted blobs: installs the root key a server of this
/// data directory uses (`BERTH_ROOT_KEY`, else `file`, else `<data-dir>/root.key`), never
/// creating one: a new key would open nothing.
pub fn install_existing(registry: &berth_core::Registry, data_dir: &Path, file: Option<&Path>) -> anyhow::Result<()> {
    if let Ok(hex) = std::env::var("BERTH_ROOT_KEY") {
        registry.install_key_service(RootKey::from_hex(&hex).context("reading BERTH_ROOT_KEY")?);
        return Ok(());
    }
    let path = file.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join("root.key"));
    if !path.exists() {
        anyhow::bail!(
            "no root key at {} (and BERTH_ROOT_KEY is not set): encrypted blobs cannot be opened without the key the server uses",
            path.display()
        );
    }
    let (key, _) = RootKey::load_or_create(&path).context("loading the root key")?;
    registry.install_key_service(key);
    Ok(())
}
