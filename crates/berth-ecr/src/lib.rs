//! The Amazon ECR JSON 1.1 adapter: `POST /` with
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Action>`.
//!
//! The shared AWS protocol layer (`berth-aws`) selects this API, reads the body and verifies
//! SigV4; here each call is looked up in the operation table (`actions::operations`: name,
//! IAM action, handler), parsed into its action's input shape (botocore's ECR model),
//! authorized as the table's action against the resources the handler names (the call's
//! `Authorizer`, failing closed if a handler names none), and answered in AWS JSON 1.1;
//! every failure becomes an AWS `__type` exception in `error.rs`.

mod actions;
mod error;
mod lifecycle_actions;
mod pull_through_actions;
mod replication_actions;
mod scan_actions;
mod settings_actions;
mod shapes;
mod template_actions;

use axum::response::{IntoResponse, Response};
use berth_aws::operation::Authorizer;
use berth_aws::{AwsApi, Call, Protocol, Rejection};

pub use error::EcrError;

const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// UploadLayerPart carries base64 parts; allow generous parts plus JSON overhead.
const MAX_LAYER_PART_BODY: usize = 64 * 1024 * 1024;
/// Every other action's input is small (the largest is a 4 MiB manifest in PutImage, JSON-escaped).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The ECR API, for `berth_aws::router`.
pub struct EcrApi;

#[async_trait::async_trait]
impl AwsApi for EcrApi {
    fn signing_name(&self) -> &'static str {
        "ecr"
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
        let Some(op) = actions::operations().get(&call.action) else {
            let message = format!("berth does not implement the ECR action {} yet", call.action);
            return EcrError::new("UnknownOperationException", message).into_response();
        };
        let auth = Authorizer::new(&call.registry, &call.principal, op.iam_action, call.record.clone());
        let ctx = actions::Ctx { registry: &call.registry, principal: &call.principal, host: &call.host, auth };
        berth_aws::json_answer(actions::run(&ctx, op, &call.body).await, EcrError::server)
    }

    fn reject(&self, error: Rejection, _request_id: &str) -> Response {
        let error = match error {
            Rejection::Registry(e) => EcrError::from(e),
            Rejection::UnknownOperation(target) => EcrError::new("UnknownOperationException", format!("unknown operation {target:?}")),
            Rejection::BodyTooLarge { limit } => {
                EcrError::new("ValidationException", format!("the request body is larger than this action accepts ({limit} bytes)"))
            }
            Rejection::BodyUnreadable(e) => EcrError::new("ValidationException", format!("request body could not be read: {e}")),
        };
        error.into_response()
    }
}

#[cfg(test)]
mod tests;
