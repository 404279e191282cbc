//! Amazon ECR Public on `POST /` (`X-Amz-Target: SpencerFrontendService.<Action>`, AWS JSON
//! 1.1, SigV4 service `ecr-public`): every account's public registry
//! (`berth_core::public`), served by the same server as the private one.
//!
//! A thin adapter on the shared protocol layer, like berth-ecr and berth-kms: the operation
//! table (`handlers::operations`: name, IAM action `ecr-public:<Action>`, handler), the
//! request checked against botocore's `ecr-public` model, the handler naming its resources to
//! the call's `Authorizer`, then the private registry's service calls on the public scope;
//! `error.rs` maps refusals onto the model's exceptions. ECR Public answers in us-east-1
//! only: a call signed for another region is UnsupportedCommandException, as the model says.

mod error;
mod handlers;

use axum::response::{IntoResponse, Response};
use berth_aws::error::AwsError;
use berth_aws::{AwsApi, Call, Protocol, Rejection};
use berth_core::public::PUBLIC_API_REGION;

pub use error::Exception;

const TARGET_PREFIX: &str = "SpencerFrontendService.";
/// UploadLayerPart carries base64 parts (the model's 20 MiB part, encoded, plus JSON).
const MAX_LAYER_PART_BODY: usize = 32 * 1024 * 1024;
/// Every other input is small: a 4 MiB manifest JSON-escaped, or a 512 kB logo in base64.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The ECR Public API, for `berth_aws::router`.
pub struct EcrPublicApi;

#[async_trait::async_trait]
impl AwsApi for EcrPublicApi {
    fn signing_name(&self) -> &'static str {
        "ecr-public"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Json { target_prefix: TARGET_PREFIX }
    }

    fn max_body(&self, action: &str) -> usize {
        if action == "UploadLayerPart" {
            MAX_LAYER_PART_BODY
        } else {
            MAX_BODY
        }
    }

    async fn call(&self, call: Call) -> Response {
        if let Some(region) = call.principal.region.as_deref().filter(|r| *r != PUBLIC_API_REGION) {
            let message = format!("The action isn't supported in this Region ({region}): ECR Public answers in {PUBLIC_API_REGION} only");
            return Exception::UnsupportedCommand.error(message).into_response();
        }
        handlers::api().call(&call).await
    }

    fn reject(&self, error: Rejection, _request_id: &str) -> Response {
        let error = match error {
            Rejection::Registry(e) => error::from_registry(e),
            Rejection::UnknownOperation(target) => AwsError::new("UnknownOperationException", format!("unknown operation {target:?}")),
            Rejection::BodyTooLarge { limit } => {
                error::invalid(format!("the request body is larger than this action accepts ({limit} bytes)"))
            }
            Rejection::BodyUnreadable(e) => error::invalid(format!("request body could not be read: {e}")),
        };
        error.into_response()
    }
}
