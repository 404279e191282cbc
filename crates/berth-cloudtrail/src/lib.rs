//! AWS CloudTrail on `POST /` (`X-Amz-Target:
//! com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Action>`, AWS JSON 1.1, SigV4
//! service `cloudtrail`): LookupEvents over berth's audit trail (`berth_core::audit`).
//!
//! A thin adapter on the shared protocol layer, as berth-kms is: the operation table names
//! the action and its IAM action (`cloudtrail:LookupEvents`), the handler names the caller's
//! registry to the call's Authorizer, reads the caller's account's records from the service
//! and shapes CloudTrail's output; the input checks answer CloudTrail's exceptions.

mod lookup;

use axum::response::{IntoResponse, Response};
use berth_aws::error::AwsError;
use berth_aws::operation::{Authorizer, Operation, OperationTable};
use berth_aws::{AwsApi, Call, Protocol, Rejection};
use berth_core::RegistryError;
use http::StatusCode;

const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";
/// LookupEvents requests are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

pub struct CloudTrailApi;

fn operations() -> &'static OperationTable<()> {
    static TABLE: std::sync::OnceLock<OperationTable<()>> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| OperationTable::new([Operation { name: "LookupEvents", iam_action: Some("cloudtrail:LookupEvents"), handler: () }]))
}

#[async_trait::async_trait]
impl AwsApi for CloudTrailApi {
    fn signing_name(&self) -> &'static str {
        "cloudtrail"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Json { target_prefix: TARGET_PREFIX }
    }

    fn max_body(&self, _action: &str) -> usize {
        MAX_BODY
    }

    async fn call(&self, call: Call) -> Response {
        let Some(op) = operations().get(&call.action) else {
            let message = format!("berth's audit trail does not implement the CloudTrail action {} yet", call.action);
            return AwsError::new("UnsupportedOperationException", message).into_response();
        };
        let auth = Authorizer::new(&call.registry, &call.principal, op.iam_action, call.record.clone());
        let result = lookup::lookup_events(&call.registry, &call.principal, &auth, &call.body).await;
        berth_aws::json_answer(result, |e| AwsError::new("CloudTrailException", e).with_status(StatusCode::INTERNAL_SERVER_ERROR))
    }

    fn reject(&self, error: Rejection, _request_id: &str) -> Response {
        let error = match error {
            Rejection::Registry(e) => from_registry(e),
            Rejection::UnknownOperation(target) => AwsError::new("UnknownOperationException", format!("unknown operation {target:?}")),
            Rejection::BodyTooLarge { limit } => {
                AwsError::new("ValidationException", format!("the request body is larger than CloudTrail accepts ({limit} bytes)"))
            }
            Rejection::BodyUnreadable(e) => AwsError::new("ValidationException", format!("request body could not be read: {e}")),
        };
        error.into_response()
    }
}

pub(crate) fn from_registry(e: RegistryError) -> AwsError {
    match e {
        RegistryError::Unauthenticated(f) => AwsError::from_auth(&f),
        RegistryError::Denied(m) => AwsError::new("AccessDeniedException", m),
        RegistryError::Throttled { message, .. } => AwsError::throttled(message),
        RegistryError::Store(e) => AwsError::from_store(&e, "ServiceUnavailableException", "CloudTrailException"),
        other => AwsError::new("InvalidParameterException", other.to_string()),
    }
}
