//! The pull-through cache's upstream credentials: a secret in ECR's format, read by berth
//! acting as the service (as ECR reads it through its service-linked role).

use super::*;

/// An upstream registry's credentials, as ECR's pull-through cache keeps them in a secret
/// (`{"username": …, "accessToken": …}`). `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct PullThroughCredentials {
    pub username: String,
    pub access_token: String,
}

impl std::fmt::Debug for PullThroughCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullThroughCredentials").field("username", &self.username).field("access_token", &"<redacted>").finish()
    }
}

impl Registry {
    /// The credentials the secret `credential_arn` (a complete or partial ARN, or a name in
    /// the default region) of `account` holds in its AWSCURRENT version, read as the service:
    /// no caller is authorized, and a customer managed key's policy is not consulted, as for
    /// ECR's service-linked role.
    ///
    /// `Ok(None)`: no such secret in `account`, or it is scheduled for deletion. An error: the
    /// current value is not a JSON object with string fields `username` and `accessToken`
    /// (`RegistryError::Validation`, naming the secret, never its value), the key service
    /// cannot open it (`RegistryError::Kms`), or a store failure.
    pub async fn pull_through_credentials(
        &self,
        account: &str,
        credential_arn: &str,
    ) -> crate::error::Result<Option<PullThroughCredentials>> {
        let scope = RegistryRef { account: account.to_string(), region: self.config.default_registry.region.clone() };
        let found = self.find_secret(&scope, credential_arn).await.map_err(to_registry)?;
        let Some(s) = found.filter(|s| s.row.account == account && !s.scheduled_for_deletion()) else { return Ok(None) };
        let v = ops::pick_version(&s.doc, None, None).map_err(to_registry)?;
        let value = self.open_value(None, &s.row.arn, v).await.map_err(to_registry)?;
        let malformed = || {
            crate::RegistryError::Validation(format!(
                "the secret {} does not hold pull-through cache credentials: its value must be a JSON object with string fields \"username\" and \"accessToken\"",
                s.row.arn
            ))
        };
        // Parsed to a Value first: serde's typed errors would quote the offending value.
        let json: serde_json::Value = serde_json::from_slice(match &value {
            SecretValue::String(text) => text.as_bytes(),
            SecretValue::Binary(bytes) => bytes.as_slice(),
        })
        .map_err(|_| malformed())?;
        let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_string);
        match (field("username"), field("accessToken")) {
            (Some(username), Some(access_token)) => Ok(Some(PullThroughCredentials { username, access_token })),
            _ => Err(malformed()),
        }
    }
}

/// The service's refusals as the registry's errors (for the pull-through cache).
fn to_registry(e: SecretsError) -> crate::RegistryError {
    match e {
        SecretsError::Registry(inner) => inner,
        SecretsError::Decryption(message) | SecretsError::Encryption(message) => {
            crate::RegistryError::Kms { message, kms_error: "KMSInvalidStateException" }
        }
        SecretsError::NotFound(message) => crate::RegistryError::Validation(message),
        other => crate::RegistryError::Store(berth_store::StoreError::io(other.to_string(), std::io::Error::other("secret"))),
    }
}
