//! The AWS JSON 1.1 call every JSON adapter runs (ECR Public, KMS, Secrets Manager): the body
//! read as JSON, checked against the API's botocore model, handed to the operation's handler,
//! and refused when the handler answered without authorizing anything. Adapters name only
//! what differs: their model, their constraint exception and their identity mapping.

use std::future::Future;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use berth_core::auth::Principal;
use berth_core::{Registry, RegistryError};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::AwsError;
use crate::operation::{Authorizer, Operation, OperationTable};
use crate::validate::Model;
use crate::Call;

/// What a JSON handler answers: the output shape, or the API's error.
pub type Output = Result<Value, AwsError>;

/// What a handler is given besides its input.
pub struct Ctx<'a> {
    pub registry: &'a Arc<Registry>,
    pub principal: &'a Principal,
    /// The Host the client called (repository URIs are built from it when no template is set).
    pub host: &'a str,
    /// The call's authorization: the operation's IAM action against what the handler names.
    pub auth: Authorizer<'a>,
}

/// A JSON handler: the checked input in, the output shape out.
pub type Handler = for<'a> fn(&'a Ctx<'a>, Value) -> BoxFuture<'a, Output>;

/// `json_operation!("kms", Encrypt => encrypt)`: the operation `Encrypt`, needing the IAM
/// action `kms:Encrypt`, whose handler gets the checked input read into its typed shape.
/// The adapter's `Handler` type (its context differs per API) is named where this expands.
#[macro_export]
macro_rules! json_operation {
    ($service:literal, $name:ident => $handler:path) => {
        $crate::operation::Operation::<Handler> {
            name: stringify!($name),
            iam_action: Some(concat!($service, ":", stringify!($name))),
            handler: |ctx, input| Box::pin(async move { $handler(ctx, $crate::json::typed(input)?).await }),
        }
    };
}

/// One JSON API: its operations, and how it refuses what the shared steps find wrong.
pub struct JsonApi {
    pub operations: &'static OperationTable<Handler>,
    pub model: Option<&'static Model>,
    /// The exception of a model constraint violation (`ValidationException`,
    /// `InvalidParameterException`).
    pub constraint_exception: &'static str,
    /// The API's answer to a refusal of the registry service (the fail-closed check).
    pub from_registry: fn(RegistryError) -> AwsError,
    /// The answer to an action the table does not have.
    pub unsupported: fn(&str) -> AwsError,
    /// The API's internal error (an output that could not be written).
    pub internal: fn(String) -> AwsError,
}

impl JsonApi {
    /// Answers an authenticated call: the operation looked up, run, and its answer written.
    pub async fn call(&self, call: &Call) -> Response {
        let Some(op) = self.operations.get(&call.action) else {
            return (self.unsupported)(&call.action).into_response();
        };
        let ctx = Ctx { registry: &call.registry, principal: &call.principal, host: &call.host, auth: call.authorizer(op) };
        crate::json_answer(self.run_operation(op, &ctx, &call.body).await, self.internal)
    }

    async fn run_operation(&self, op: &Operation<Handler>, ctx: &Ctx<'_>, body: &[u8]) -> Output {
        self.run(op.name, &ctx.auth, body, |input| (op.handler)(ctx, input)).await
    }

    /// Runs one call: input checked, the handler run, its authorization enforced.
    pub async fn run<F, Fut>(&self, operation: &str, auth: &Authorizer<'_>, body: &[u8], handle: F) -> Output
    where
        F: FnOnce(Value) -> Fut,
        Fut: Future<Output = Output>,
    {
        let input = input(body)?;
        if let Some(model) = self.model {
            let violations = model.check(operation, &input);
            if !violations.is_empty() {
                return Err(AwsError::from_violations(&violations, self.constraint_exception));
            }
        }
        let output = handle(input).await?;
        auth.ensure_decided().map_err(self.from_registry)?;
        Ok(output)
    }
}

/// The request body as JSON (`{}` when empty). serde's message could quote the body, which
/// may hold a secret: the caller is told only where reading failed.
pub fn input(body: &[u8]) -> Result<Value, AwsError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| {
        AwsError::new("SerializationException", format!("could not read the request as JSON (line {}, column {})", e.line(), e.column()))
    })
}

/// A checked input read into an operation's shape (moves the strings, copies nothing). The
/// model check already caught wrong types; serde's message is passed on only where it names a
/// member and never a value (`missing field`), since its other messages quote what was sent.
pub fn typed<T: DeserializeOwned>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(|e| {
        let message = e.to_string();
        let message = if message.starts_with("missing field") || message.starts_with("duplicate field") {
            message
        } else {
            "a member has the wrong type or value".to_string()
        };
        AwsError::new("SerializationException", format!("could not read the request: {message}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Shape {
        count: u32,
    }

    #[test]
    fn errors_never_quote_the_request() {
        let e = input(br#"{"SecretString": "hunter2"#).unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        let e = typed::<Shape>(serde_json::json!({"count": "hunter2"})).unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        let e = typed::<Shape>(serde_json::json!({"count": 1e12})).unwrap_err();
        assert!(!e.message.contains("1000000000000"), "{}", e.message);
        let e = typed::<Shape>(serde_json::json!({})).unwrap_err();
        assert!(e.message.contains("missing field `count`"), "{}", e.message);
        assert_eq!(input(b"").ok(), Some(serde_json::json!({})));
    }
}
