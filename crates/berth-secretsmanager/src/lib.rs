//! AWS Secrets Manager on `POST /` (`X-Amz-Target: secretsmanager.<Action>`, AWS JSON 1.1,
//! SigV4 service `secretsmanager`): the subset ECR's pull-through cache needs (its upstream
//! credentials are a secret named `ecr-pullthroughcache/…`), on `berth_core::secrets`.
//!
//! A thin adapter on the shared protocol layer, as berth-kms is: the operation table names each
//! action, the request is checked against botocore's Secrets Manager model, the handler calls
//! the service, whose methods authorize the caller themselves (`secretsmanager:<Action>` on the
//! secret's ARN, and a customer managed key's `kms:GenerateDataKey` / `kms:Decrypt`), and
//! `error.rs` maps the service's refusals onto Secrets Manager's exceptions. A value appears
//! only in GetSecretValue's answer: never in an error, and the protocol layer leaves request
//! fields named like secrets out of the audit record.

mod error;
mod handlers;

use axum::response::Response;
use berth_aws::{AwsApi, Call, Protocol, Rejection};

const TARGET_PREFIX: &str = "secretsmanager.";
/// A value is at most 64 KiB (base64'd for SecretBinary), plus the other members.
const MAX_BODY: usize = 256 * 1024;

pub struct SecretsManagerApi;

#[async_trait::async_trait]
impl AwsApi for SecretsManagerApi {
    fn signing_name(&self) -> &'static str {
        "secretsmanager"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Json { target_prefix: TARGET_PREFIX }
    }

    fn max_body(&self, _action: &str) -> usize {
        MAX_BODY
    }

    async fn call(&self, call: Call) -> Response {
        handlers::api().call(&call).await
    }

    fn reject(&self, error: Rejection, _request_id: &str) -> Response {
        error.into_validation_answer("Secrets Manager", error::from_registry)
    }
}
