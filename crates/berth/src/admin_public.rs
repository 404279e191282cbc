//! `berth admin set-public-alias`: an account's ECR Public registry alias (the path prefix of
//! its public repository URIs; `berth_core::public` describes the default).

use std::process::ExitCode;

use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct SetPublicAliasArgs {
    #[command(flatten)]
    pub store: crate::admin::StoreArgs,
    /// The account (12 digits).
    #[arg(long)]
    pub account: String,
    /// ECR Public's registry alias: 2-50 characters, [a-z][a-z0-9]+(?:[._-][a-z0-9]+)*, no other account's.
    #[arg(long)]
    pub alias: String,
}

pub async fn set_public_alias(args: SetPublicAliasArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(berth_core::addressing::is_account_id(&args.account), "--account must be a 12-digit account id");
    let registry = crate::admin::open_registry(&args.store.data_dir, &args.store.storage).await?;
    registry.set_public_alias(&args.account, &args.alias).await?;
    println!("{}", json!({ "account": args.account, "alias": args.alias }));
    Ok(ExitCode::SUCCESS)
}
