//! AWS KMS on `POST /` (`X-Amz-Target: TrentService.<Action>`, AWS JSON 1.1, SigV4 service
//! `kms`): the subset ECR users' tools call, on berth's key service (`berth_core::kms`).
//!
//! A thin adapter on the shared protocol layer: the operation table (`operations`) names each
//! action, the request is checked against botocore's KMS model, the handler calls the key
//! service, whose methods authorize the caller themselves (`kms:<Action>` on the key, with its
//! key policy), and `error.rs` maps the service's refusals onto KMS's exceptions.

mod error;
mod handlers;

use axum::response::Response;
use berth_aws::{AwsApi, Call, Protocol, Rejection};

const TARGET_PREFIX: &str = "TrentService.";
/// KMS requests are small: 4 KiB plaintexts, 6 KiB ciphertexts, 32 KiB key policies, base64'd.
const MAX_BODY: usize = 256 * 1024;

pub struct KmsApi;

#[async_trait::async_trait]
impl AwsApi for KmsApi {
    fn signing_name(&self) -> &'static str {
        "kms"
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
        error.into_validation_answer("KMS", error::from_registry)
    }
}
