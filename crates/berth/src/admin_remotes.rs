//! `berth admin add-remote-registry | list-remote-registries | remove-remote-registry`: the
//! remote registries replication destinations may name. Secrets are read from stdin (never
//! from arguments, which other users can see), sealed under the root key, and never printed.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_core::replication::{RemoteAuth, RemoteRegistry};
use serde_json::json;

use crate::config::DEFAULT_DATA_DIR;

#[derive(clap::Args, Debug)]
pub struct RemoteStoreArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// The root key file (default <data-dir>/root.key; BERTH_ROOT_KEY takes precedence).
    #[arg(long, env = "BERTH_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteAuthKind {
    /// No credentials (a registry open for pushes, rare).
    Anonymous,
    /// --username, and the password on stdin; Basic, or a Bearer token realm's exchange.
    Basic,
    /// Another berth or Amazon ECR: --username is an access key id, the secret access key on
    /// stdin; registry tokens come from its GetAuthorizationToken.
    Ecr,
}

#[derive(clap::Args, Debug)]
pub struct AddRemoteArgs {
    #[command(flatten)]
    pub store: RemoteStoreArgs,
    /// The registry id (12 digits) replication rules name as a destination's registryId.
    #[arg(long)]
    pub registry_id: String,
    /// Only destinations in this region go to this remote (default: every region).
    #[arg(long)]
    pub region: Option<String>,
    /// The remote registry, e.g. https://registry.example:5000.
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum, default_value = "basic")]
    pub auth: RemoteAuthKind,
    /// Basic user name, or the access key id with --auth ecr.
    #[arg(long, default_value = "")]
    pub username: String,
    /// Allow an http:// URL (credentials and images then cross the network in clear).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(clap::Args, Debug)]
pub struct RemoveRemoteArgs {
    #[command(flatten)]
    pub store: RemoteStoreArgs,
    #[arg(long)]
    pub registry_id: String,
    #[arg(long)]
    pub region: Option<String>,
}

pub(crate) async fn registry(args: &RemoteStoreArgs) -> anyhow::Result<berth_core::Registry> {
    let registry = crate::admin::open_registry(&args.data_dir, &args.storage).await?;
    // The key `serve` uses (created here when this runs before the first start, as serve would).
    let file = args.root_key_file.clone().unwrap_or_else(|| args.data_dir.join("root.key"));
    registry.install_key_service(crate::root_key::load(&file)?);
    Ok(registry)
}

pub async fn add(args: AddRemoteArgs) -> anyhow::Result<ExitCode> {
    let auth = match args.auth {
        RemoteAuthKind::Anonymous => RemoteAuth::Anonymous,
        RemoteAuthKind::Basic => {
            anyhow::ensure!(!args.username.is_empty(), "--auth basic needs --username");
            RemoteAuth::Basic {
                username: args.username.clone(),
                password: crate::admin::secret_from_stdin("password", "add-remote-registry")?,
            }
        }
        RemoteAuthKind::Ecr => {
            anyhow::ensure!(!args.username.is_empty(), "--auth ecr needs --username <access key id>");
            RemoteAuth::Ecr {
                access_key_id: args.username.clone(),
                secret_access_key: crate::admin::secret_from_stdin("secret access key", "add-remote-registry")?,
            }
        }
    };
    let remote = RemoteRegistry {
        registry_id: args.registry_id.clone(),
        region: args.region.clone(),
        url: args.url.clone(),
        auth,
        insecure: args.insecure,
    };
    registry(&args.store).await?.put_remote_registry(&remote).await?;
    println!(
        "{}",
        json!({ "registry_id": args.registry_id, "region": args.region, "url": remote.url.trim_end_matches('/'), "auth": format!("{:?}", args.auth).to_lowercase() })
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list(args: RemoteStoreArgs) -> anyhow::Result<ExitCode> {
    let remotes = crate::admin::open_registry(&args.data_dir, &args.storage).await?.list_remote_registries().await?;
    let out: Vec<_> = remotes
        .into_iter()
        .map(|(id, region, url, auth, username)| json!({ "registry_id": id, "region": region, "url": url, "auth": auth, "username": username }))
        .collect();
    println!("{}", json!({ "remote_registries": out }));
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(args: RemoveRemoteArgs) -> anyhow::Result<ExitCode> {
    let registry = crate::admin::open_registry(&args.store.data_dir, &args.store.storage).await?;
    let removed = registry.delete_remote_registry(&args.registry_id, args.region.as_deref()).await?;
    println!("{}", json!({ "registry_id": args.registry_id, "region": args.region, "removed": removed }));
    Ok(if removed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
