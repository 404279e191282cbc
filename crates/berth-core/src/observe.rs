//! What the request log says about a call, set by the adapter that understood it.

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
}

/// The route a request took, as a low-cardinality label for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);
