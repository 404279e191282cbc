//! What the request log and the audit trail say about a call, set by the adapter that
//! understood it.

/// Attached to a response (as an extension) by the adapter that handled the request: the
/// action it was (`ecr:PutImage`, `sts:GetCallerIdentity`) and the principal that made it.
#[derive(Debug, Clone, Default)]
pub struct CallFacts {
    pub action: String,
    /// The caller's ARN, once authenticated.
    pub principal: Option<String>,
    /// The resources the call was authorized against (ARNs; `*` for registry-wide actions),
    /// recorded by the authorization itself, for the audit record.
    pub resources: Vec<String>,
    /// The caller's account and access key id (the audit record's userIdentity).
    pub account: Option<String>,
    pub access_key_id: Option<String>,
    /// The region the call addressed.
    pub region: Option<String>,
    /// Small JSON the adapter chose for the audit record (names, tags, digests; never a
    /// secret, token, password or key material).
    pub request_parameters: Option<serde_json::Value>,
    pub response_elements: Option<serde_json::Value>,
    /// A console action (CloudTrail's `"sessionCredentialFromConsole": "true"`).
    pub from_console: bool,
}

impl CallFacts {
    /// The authenticated caller.
    pub fn caller(&mut self, principal: &crate::auth::Principal) {
        self.principal = Some(principal.arn.clone());
        self.account = Some(principal.account.clone()).filter(|a| !a.is_empty());
        self.access_key_id = Some(principal.access_key_id.clone()).filter(|k| !k.is_empty());
        if principal.region.is_some() {
            self.region = principal.region.clone();
        }
    }

    /// Adds one request parameter (an object is started if there is none).
    pub fn param(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        let params = self.request_parameters.get_or_insert_with(|| serde_json::json!({}));
        if let Some(map) = params.as_object_mut() {
            map.insert(name.to_string(), value.into());
        }
    }
}

/// Attached to an error response by the adapter's error mapping: the code the API answered
/// (an exception name, `AccessDenied`) and its message, for the audit record.
#[derive(Debug, Clone)]
pub struct CallError {
    pub code: String,
    pub message: String,
    /// The storage backend whose failure the call answered (`StoreError::backend`), for
    /// `berth_store_errors_total`; None for every other refusal.
    pub store: Option<&'static str>,
}

impl CallError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> CallError {
        CallError { code: code.into(), message: message.into(), store: None }
    }

    pub fn with_store(self, store: Option<&'static str>) -> CallError {
        CallError { store, ..self }
    }
}

/// The route a request took, as a low-cardinality label for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);
