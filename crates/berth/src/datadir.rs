//! Opening a data directory: exclusive lock, stores, registry service.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use berth_core::{Registry, RegistryConfig, SystemClock};

/// An opened data directory. The lock is held for as long as this lives, so two berth
/// processes (a server and an offline `gc`, say) never write the same directory.
pub struct DataDir {
    pub registry: Arc<Registry>,
    _lock: File,
}

impl DataDir {
    pub async fn open(dir: &Path, storage: &crate::storage::StorageArgs, config: RegistryConfig) -> anyhow::Result<DataDir> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
        let lock_path = dir.join("berth.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "{} is in use by another berth process (a running `berth serve`?); stop it first, or use its online GC (POST /_berth/gc)",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("locking the data directory"),
        }
        let (meta, blobs) = crate::storage::open(dir, storage).await?;
        let registry = Registry::new(meta, blobs, Arc::new(SystemClock), config);
        Ok(DataDir { registry: Arc::new(registry), _lock: lock })
    }
}

/// Shows a generated admin key once and keeps it, readable by the owner only, under the data dir.
pub fn announce_admin_key(dir: &Path, account: &str, region: &str, id: &str, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("admin-credentials");
    let mut f = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "# berth admin of account {account}; use with aws --endpoint-url ... ecr\n[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\nregion = {region}")?;
    // Deliberately printed (not logged): shown once, on the terminal that started berth.
    eprintln!(
        "\nberth: created the admin access key for account {account} (saved to {}, mode 0600):\n  AWS_ACCESS_KEY_ID={id}\n  AWS_SECRET_ACCESS_KEY={secret}\n  AWS_DEFAULT_REGION={region}\n",
        path.display()
    );
    Ok(())
}
