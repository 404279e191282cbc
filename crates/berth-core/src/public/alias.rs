//! The registry alias: one per account, unique across accounts, the path prefix of every
//! public repository URI (`<public host>/<alias>/<name>`).
//!
//! An account gets its public registry, with a default alias, the first time anything asks
//! for it (its first public repository, DescribeRegistries, `berth admin set-public-alias`),
//! as ECR Public assigns one with the first repository. The default is `b` + the first 10 hex
//! digits of SHA-256("berth public registry alias\n" + account): stable, so an account's URIs
//! never change by themselves, and opaque. Should another account hold that alias already
//! (set by hand), the digest is taken 4 digits longer until one is free.

use std::sync::LazyLock;

use berth_store::{PublicAliasOutcome, PublicRegistryRow};
use regex::Regex;
use sha2::{Digest as _, Sha256};

use crate::error::Result;
use crate::{Registry, RegistryError};

/// ECR Public's `RegistryAliasName`: 2-50 characters, anchored.
static ALIAS_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9]+(?:[._-][a-z0-9]+)*$").expect("valid regex"));

const MAX_DISPLAY_NAME: usize = 100;

/// The account's default alias, `hex_digits` long after the `b` (10 for the first choice).
pub fn default_alias(account: &str, hex_digits: usize) -> String {
    let digest = Sha256::digest(format!("berth public registry alias\n{account}").as_bytes());
    let hex = hex::encode(digest);
    format!("b{}", &hex[..hex_digits.min(hex.len())])
}

/// ECR Public's registryAliasName constraint, in its own words.
pub fn validate_alias(alias: &str) -> Result<()> {
    if (2..=50).contains(&alias.len()) && ALIAS_RE.is_match(alias) {
        return Ok(());
    }
    Err(RegistryError::invalid(format!(
        "Invalid parameter at 'registryAliasName' failed to satisfy constraint: 'must satisfy regular expression \
         '[a-z][a-z0-9]+(?:[._-][a-z0-9]+)*' and be 2-50 characters' ({:?})",
        alias.chars().take(60).collect::<String>()
    )))
}

impl Registry {
    /// The account's public registry, created with its default alias on first use.
    pub async fn public_registry(&self, account: &str) -> Result<PublicRegistryRow> {
        if let Some(row) = self.meta.public_registry(account).await? {
            return Ok(row);
        }
        self.meta.ensure_account(account, self.now()).await?;
        for digits in (10..=42).step_by(4) {
            let row = PublicRegistryRow {
                account: account.to_string(),
                alias: default_alias(account, digits),
                display_name: String::new(),
                created_at: self.now(),
            };
            match self.meta.create_public_registry(&row).await? {
                PublicAliasOutcome::Written => return Ok(row),
                // Another node created it meanwhile.
                PublicAliasOutcome::Exists => break,
                PublicAliasOutcome::AliasTaken => continue,
            }
        }
        self.meta.public_registry(account).await?.ok_or_else(|| {
            RegistryError::invalid(format!(
                "no free default registry alias for account {account}; set one with berth admin set-public-alias"
            ))
        })
    }

    /// The account's registry alias (its default until one is set).
    pub async fn public_alias(&self, account: &str) -> Result<String> {
        Ok(self.public_registry(account).await?.alias)
    }

    /// The account whose public registry has `alias`, if any (how /v2/ resolves
    /// `<alias>/<name>`). An account's default alias resolves once its registry exists, which
    /// it does before it has any public repository.
    pub async fn public_account_by_alias(&self, alias: &str) -> Result<Option<String>> {
        if validate_alias(alias).is_err() {
            return Ok(None);
        }
        Ok(self.meta.public_registry_by_alias(alias).await?.map(|r| r.account))
    }

    /// Sets the account's registry alias: ECR Public's pattern, and no other account's.
    /// Repository URIs change with it; the old alias no longer resolves.
    pub async fn set_public_alias(&self, account: &str, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        self.meta.ensure_account(account, self.now()).await?;
        let row = PublicRegistryRow {
            account: account.to_string(),
            alias: alias.to_string(),
            display_name: String::new(),
            created_at: self.now(),
        };
        match self.meta.set_public_alias(&row).await? {
            PublicAliasOutcome::Written | PublicAliasOutcome::Exists => Ok(()),
            PublicAliasOutcome::AliasTaken => {
                Err(RegistryError::invalid(format!("The registry alias {alias:?} is already in use by another registry")))
            }
        }
    }

    /// PutRegistryCatalogData's displayName (at most 100 characters; empty clears it).
    pub async fn set_public_display_name(&self, account: &str, display_name: &str) -> Result<PublicRegistryRow> {
        if display_name.chars().count() > MAX_DISPLAY_NAME {
            return Err(RegistryError::invalid(format!(
                "Invalid parameter at 'displayName' failed to satisfy constraint: 'Member must have length less than or equal to {MAX_DISPLAY_NAME}'"
            )));
        }
        let mut row = self.public_registry(account).await?;
        self.meta.set_public_display_name(account, display_name).await?;
        row.display_name = display_name.to_string();
        Ok(row)
    }
}
