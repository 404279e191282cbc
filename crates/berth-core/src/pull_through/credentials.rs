//! Upstream credentials of a rule: the one place a `credentialArn` is resolved.

use crate::error::Result;
use crate::Registry;

use crate::secrets::PullThroughCredentials;

/// The secret's credentials (ECR's `{"username", "accessToken"}` in a Secrets Manager secret
/// named `ecr-pullthroughcache/…`), read as the service reads them (no caller authorization,
/// like ECR's service-linked role); `None` when the account has no such secret or it is
/// scheduled for deletion.
pub(crate) async fn lookup(registry: &Registry, account: &str, credential_arn: &str) -> Result<Option<PullThroughCredentials>> {
    registry.pull_through_credentials(account, credential_arn).await
}
