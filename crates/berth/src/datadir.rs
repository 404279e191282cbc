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
        let busy = format!(
            "{} is in use by another berth process (a running `berth serve`?); stop it first, or use its online GC (POST /_berth/gc)",
            dir.display()
        );
        let lock = lock_dir(dir, "berth.lock", &busy)?;
        let (meta, blobs) = crate::storage::open(dir, storage).await?;
        let registry = Registry::new(meta, blobs, Arc::new(SystemClock), config);
        let node_id = stable_node_id(dir, registry.node_id())?;
        Ok(DataDir { registry: Arc::new(registry.with_node_id(node_id)), _lock: lock })
    }
}

/// Takes the exclusive lock file `name` in `dir` (held while the returned file lives); `busy`
/// is the error when another process holds it.
pub fn lock_dir(dir: &Path, name: &str, busy: &str) -> anyhow::Result<File> {
    let path = dir.join(name);
    let file =
        File::options().create(true).truncate(false).write(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!("{busy}"),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// This node's id, kept in the data directory (`node-id`, written with `fresh` the first time),
/// so a restarted server takes back the jobs its previous process held and no others.
fn stable_node_id(dir: &Path, fresh: &str) -> anyhow::Result<String> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    // Written aside and renamed: a crash never leaves an empty or half-written id.
    let temp = dir.join("node-id.tmp");
    std::fs::write(&temp, format!("{fresh}\n")).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(fresh.to_string())
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
