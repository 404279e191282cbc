//! TEMPORARY stand-in for the ECR Public module (the `public` helper's branch replaces this
//! file at merge): the scope public repositories live in and the alias lookup.

use crate::error::Result;
use crate::Registry;

pub const PUBLIC_REGION: &str = "@public";

impl Registry {
    pub async fn public_account_by_alias(&self, _alias: &str) -> Result<Option<String>> {
        Ok(None)
    }
}
