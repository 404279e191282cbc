//! `berth admin …`: accounts, users, access keys and their policies. Works
//! while berth is serving (it only writes identity rows, in transactions).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use berth_core::{Registry, RegistryConfig, SystemClock};
use serde_json::json;

use crate::config::DEFAULT_DATA_DIR;

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an account (a 12-digit registry id).
    CreateAccount(AccountArgs),
    /// Create a user with an access key; prints the key as JSON (the secret is shown only here).
    CreateUser(CreateUserArgs),
    /// Create another access key for an existing user; prints it as JSON.
    CreateAccessKey(UserArgs),
    /// Attach managed or custom policies to an existing user.
    AttachPolicy(AttachPolicyArgs),
    /// Set (or with --remove, remove) a user's web console password; the password is read from stdin.
    SetConsolePassword(ConsolePasswordArgs),
    /// Make a new registry-token signing key current (every node picks it up on its own); tokens
    /// signed with the previous key keep working, older keys are retired.
    RotateSigningKey(StoreArgs),
    /// Map a registry id (and optionally a region) to another registry, so replication rules
    /// can name it as a destination; the password or secret key is read from stdin.
    AddRemoteRegistry(crate::admin_remotes::AddRemoteArgs),
    /// List the remote registries (without their secrets).
    ListRemoteRegistries(crate::admin_remotes::RemoteStoreArgs),
    /// Forget a remote registry.
    RemoveRemoteRegistry(crate::admin_remotes::RemoveRemoteArgs),
    /// Send an account's events (ECR's EventBridge shapes) to a webhook; prints its id and,
    /// unless --secret-stdin, the generated signing secret (shown this once).
    AddWebhook(crate::admin_webhooks::AddWebhookArgs),
    /// List an account's webhooks with their last deliveries (never their secrets).
    ListWebhooks(crate::admin_webhooks::ListWebhooksArgs),
    /// Remove a webhook; deliveries still queued for it are dropped.
    RemoveWebhook(crate::admin_webhooks::RemoveWebhookArgs),
    /// Set an account's ECR Public registry alias (the `<alias>` of `<host>/<alias>/<name>`).
    SetPublicAlias(crate::admin_public::SetPublicAliasArgs),
}

#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
}

#[derive(clap::Args, Debug)]
pub struct ConsolePasswordArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// 12-digit account id of the user.
    #[arg(long, env = "BERTH_ACCOUNT_ID")]
    pub account: String,
    /// User name (as given to create-user).
    #[arg(long)]
    pub user: String,
    /// Read the password from standard input (the default; never pass it as an argument).
    #[arg(long)]
    pub password_stdin: bool,
    /// Remove the console password instead: the user can then sign in only with an access key.
    #[arg(long, conflicts_with = "password_stdin")]
    pub remove: bool,
}

#[derive(clap::Args, Debug)]
pub struct AccountArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    #[arg(long)]
    pub account: String,
}

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// arn:aws:iam::<account>:user/<name>
    #[arg(long)]
    pub user_arn: String,
}

#[derive(clap::Args, Debug)]
pub struct AttachPolicyArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    #[arg(long)]
    pub user_arn: String,
    #[command(flatten)]
    pub policies: PolicyArgs,
}

#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    /// Managed policy to attach: AmazonEC2ContainerRegistryFullAccess, …PowerUser, …ReadOnly
    /// (the `AmazonEC2ContainerRegistry` prefix may be left out). Repeatable.
    #[arg(long)]
    pub policy: Vec<String>,
    /// A JSON identity policy document to attach. Repeatable.
    #[arg(long)]
    pub policy_file: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct CreateUserArgs {
    #[arg(long, env = "BERTH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// 12-digit account id (created if new).
    #[arg(long, env = "BERTH_ACCOUNT_ID")]
    pub account: String,
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub policies: PolicyArgs,
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::CreateUser(args) => create_user(args).await,
        AdminCommand::CreateAccount(args) => {
            registry(&args.data_dir, &args.storage).await?.create_account(&args.account).await?;
            println!("{}", json!({ "account": args.account }));
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::CreateAccessKey(args) => {
            let (id, secret) = registry(&args.data_dir, &args.storage).await?.create_access_key(&args.user_arn).await?;
            println!("{}", json!({ "user_arn": args.user_arn, "access_key_id": id, "secret_access_key": secret }));
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::AttachPolicy(args) => {
            let policies = policy_documents(&args.policies)?;
            registry(&args.data_dir, &args.storage).await?.attach_policies(&args.user_arn, &policies).await?;
            println!("{}", json!({ "user_arn": args.user_arn, "attached": policies.iter().map(|(n, _)| n).collect::<Vec<_>>() }));
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::SetConsolePassword(args) => set_console_password(args).await,
        AdminCommand::RotateSigningKey(args) => {
            let kept = registry(&args.data_dir, &args.storage).await?.rotate_signing_key().await?;
            println!("{}", json!({ "signing_keys": kept }));
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::AddRemoteRegistry(args) => crate::admin_remotes::add(args).await,
        AdminCommand::ListRemoteRegistries(args) => crate::admin_remotes::list(args).await,
        AdminCommand::RemoveRemoteRegistry(args) => crate::admin_remotes::remove(args).await,
        AdminCommand::AddWebhook(args) => crate::admin_webhooks::add(args).await,
        AdminCommand::ListWebhooks(args) => crate::admin_webhooks::list(args).await,
        AdminCommand::RemoveWebhook(args) => crate::admin_webhooks::remove(args).await,
        AdminCommand::SetPublicAlias(args) => crate::admin_public::set_public_alias(args).await,
    }
}

/// A secret from the first line of stdin (piped, or typed at the terminal), without its
/// newline: never from an argument, which other users of the machine can see.
pub(crate) fn secret_from_stdin(what: &str, command: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("{what} (the input is shown; pipe it in to avoid that):");
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line).with_context(|| format!("reading the {what} from stdin"))?;
    let secret = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
    anyhow::ensure!(!secret.is_empty(), "no {what} on stdin (pipe it in, e.g. `printf %s \"$PW\" | berth admin {command} ...`)");
    Ok(secret)
}

async fn set_console_password(args: ConsolePasswordArgs) -> anyhow::Result<ExitCode> {
    let password = match args.remove {
        true => None,
        false => Some(secret_from_stdin(&format!("console password for {} in {}", args.user, args.account), "set-console-password")?),
    };
    let registry = registry(&args.data_dir, &args.storage).await?;
    registry.set_console_password(&args.account, &args.user, password.as_ref().map(|p| p.as_str())).await?;
    let arn = berth_core::auth::user_arn(&args.account, &args.user);
    println!("{}", json!({ "user_arn": arn, "console_password": if args.remove { "removed" } else { "set" } }));
    Ok(ExitCode::SUCCESS)
}

fn policy_documents(args: &PolicyArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut policies = Vec::new();
    for name in &args.policy {
        let full = if name.starts_with("AmazonEC2ContainerRegistry") { name.clone() } else { format!("AmazonEC2ContainerRegistry{name}") };
        let doc = berth_iam::policy::managed_policy(&full).with_context(|| format!("no managed policy named {name}"))?;
        policies.push((full, doc.to_string()));
    }
    for path in &args.policy_file {
        // The service checks IAM's limits on the document; a file far beyond them (IAM's
        // 131,072 characters of up to 4 bytes each) is refused before it is read into memory.
        let max = 4 * berth_iam::policy::MAX_IDENTITY_POLICY_CHARS as u64;
        let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
        anyhow::ensure!(len <= max, "{} is {len} bytes; a policy document is at most {max}", path.display());
        let doc = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("inline").to_string();
        policies.push((name, doc));
    }
    Ok(policies)
}

pub(crate) async fn open_registry(dir: &std::path::Path, storage: &crate::storage::StorageArgs) -> anyhow::Result<Registry> {
    registry(dir, storage).await
}

async fn registry(dir: &std::path::Path, storage: &crate::storage::StorageArgs) -> anyhow::Result<Registry> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (meta, blobs) = crate::storage::open(dir, storage).await?;
    Ok(Registry::new(meta, blobs, Arc::new(SystemClock), RegistryConfig::default()))
}

async fn create_user(args: CreateUserArgs) -> anyhow::Result<ExitCode> {
    let policies = policy_documents(&args.policies)?;
    let registry = registry(&args.data_dir, &args.storage).await?;
    let (arn, id, secret) = registry.create_user(&args.account, &args.name, &policies).await?;
    println!("{}", json!({ "user_arn": arn, "access_key_id": id, "secret_access_key": secret }));
    Ok(ExitCode::SUCCESS)
}
