//! `berth admin add-webhook | list-webhooks | remove-webhook`: where an account's events go.
//! The signing secret is generated and printed once, or read from stdin (`--secret-stdin`;
//! never from an argument, which other users can see); it is stored sealed under the root key
//! and never listed.

use std::process::ExitCode;

use berth_core::events::NewWebhook;
use serde_json::json;

use crate::admin_remotes::RemoteStoreArgs;

#[derive(clap::Args, Debug)]
pub struct AddWebhookArgs {
    #[command(flatten)]
    pub store: RemoteStoreArgs,
    /// The account (12 digits) whose events go to the webhook.
    #[arg(long)]
    pub account: String,
    /// The receiver, http:// or https:// (loopback allowed).
    #[arg(long)]
    pub url: String,
    /// Only events of this detail-type ("ECR Image Action", "ECR Image Scan", "ECR Lifecycle
    /// Policy Action", "ECR Replication Action", "ECR Pull Through Cache Action"); repeatable;
    /// default: every one.
    #[arg(long = "detail-type")]
    pub detail_types: Vec<String>,
    /// Read the signing secret from stdin instead of generating one.
    #[arg(long)]
    pub secret_stdin: bool,
}

#[derive(clap::Args, Debug)]
pub struct ListWebhooksArgs {
    #[command(flatten)]
    pub store: RemoteStoreArgs,
    #[arg(long)]
    pub account: String,
    /// Delivery attempts shown per webhook, newest first.
    #[arg(long, default_value_t = 10)]
    pub deliveries: u32,
}

#[derive(clap::Args, Debug)]
pub struct RemoveWebhookArgs {
    #[command(flatten)]
    pub store: RemoteStoreArgs,
    #[arg(long)]
    pub account: String,
    /// The id add-webhook printed.
    #[arg(long)]
    pub id: String,
}

pub async fn add(args: AddWebhookArgs) -> anyhow::Result<ExitCode> {
    let secret = match args.secret_stdin {
        true => Some(crate::admin::secret_from_stdin("webhook secret", "add-webhook")?),
        false => None,
    };
    let registry = crate::admin_remotes::registry(&args.store).await?;
    let new = NewWebhook { account: args.account, url: args.url, detail_types: args.detail_types, secret };
    let (hook, generated) = registry.add_webhook(new).await?;
    let mut out = json!({ "id": hook.id, "account": hook.account, "url": hook.url, "detail_types": hook.detail_types });
    if let Some(secret) = generated {
        // Printed this once: berth keeps it sealed and never shows it again.
        out["secret"] = json!(secret.as_str());
    }
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

pub async fn list(args: ListWebhooksArgs) -> anyhow::Result<ExitCode> {
    let registry = crate::admin::open_registry(&args.store.data_dir, &args.store.storage).await?;
    let mut out = Vec::new();
    for hook in registry.list_webhooks(&args.account).await? {
        let deliveries = registry.webhook_deliveries(&args.account, &hook.id, args.deliveries).await?;
        let mut entry = serde_json::to_value(&hook)?;
        entry["deliveries"] = serde_json::to_value(&deliveries)?;
        out.push(entry);
    }
    println!("{}", json!({ "webhooks": out }));
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(args: RemoveWebhookArgs) -> anyhow::Result<ExitCode> {
    let registry = crate::admin::open_registry(&args.store.data_dir, &args.store.storage).await?;
    let removed = registry.remove_webhook(&args.account, &args.id).await?;
    println!("{}", json!({ "id": args.id, "removed": removed }));
    Ok(if removed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
