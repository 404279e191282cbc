//! Operation tables and the authorization of one call.
//!
//! Each API lists its operations once: the wire name, the IAM action a caller needs, and the
//! handler. The handler never names its IAM action: it names what the call acts on through
//! the call's [`Authorizer`], which asks the registry service (the one permission decision)
//! with the table's action and records every resource it was asked about, so the request log
//! and, later, the audit record of every call are assembled in one place. A handler that
//! answers without having authorized anything is refused by [`Authorizer::ensure_decided`]:
//! forgetting an authorization fails closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_core::auth::{Principal, Resource};
use berth_core::{Registry, RegistryError};

/// One operation of an API.
pub struct Operation<H> {
    /// The wire name (`X-Amz-Target` suffix or Query `Action`).
    pub name: &'static str,
    /// The IAM action a caller needs (`ecr:PutImage`); `None` for calls any authenticated
    /// caller may make, as AWS has them (`sts:GetCallerIdentity` needs no permission).
    pub iam_action: Option<&'static str>,
    pub handler: H,
}

/// An API's operations by wire name.
pub struct OperationTable<H> {
    by_name: HashMap<&'static str, Operation<H>>,
}

impl<H> OperationTable<H> {
    pub fn new(operations: impl IntoIterator<Item = Operation<H>>) -> Self {
        OperationTable { by_name: operations.into_iter().map(|op| (op.name, op)).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&Operation<H>> {
        self.by_name.get(name)
    }

    /// The wire names, sorted (for docs and tests).
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.by_name.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// The IAM action of every operation that needs one (what a policy may name).
    pub fn iam_actions(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.values().filter_map(|op| op.iam_action)
    }
}

/// What the authorization of one call decided, for the request log and the audit record.
#[derive(Debug, Default)]
pub struct CallRecord {
    /// The ARNs the call was authorized against (`*` for registry-wide actions).
    resources: Mutex<Vec<String>>,
    decided: AtomicBool,
}

impl CallRecord {
    pub fn resources(&self) -> Vec<String> {
        self.resources.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn note(&self, resource: &Resource<'_>) {
        self.note_arn(resource.arn());
    }

    fn note_arn(&self, arn: String) {
        if let Ok(mut r) = self.resources.lock() {
            // A batch over one repository asks once per item; the record names it once.
            if !r.contains(&arn) && r.len() < MAX_RECORDED_RESOURCES {
                r.push(arn);
            }
        }
        self.decided.store(true, Ordering::Release);
    }
}

/// A call names at most this many resources in its record (DescribeRepositories asks up to 100).
const MAX_RECORDED_RESOURCES: usize = 100;

/// The authorization of one call: the operation's IAM action, the caller, and the record.
pub struct Authorizer<'a> {
    registry: &'a Registry,
    principal: &'a Principal,
    action: Option<&'static str>,
    record: Arc<CallRecord>,
}

impl<'a> Authorizer<'a> {
    pub fn new(registry: &'a Registry, principal: &'a Principal, action: Option<&'static str>, record: Arc<CallRecord>) -> Self {
        Authorizer { registry, principal, action, record }
    }

    /// The operation's IAM action, for service calls that authorize per item themselves.
    pub fn action(&self) -> Option<&'static str> {
        self.action
    }

    /// May the caller perform this call's action on `resource`? Denied is an error.
    pub async fn allow(&self, resource: Resource<'_>) -> Result<(), RegistryError> {
        match self.action {
            Some(action) => self.allow_also(action, resource).await,
            None => {
                self.record.note(&resource);
                Ok(())
            }
        }
    }

    /// A second action the call needs on `resource` (CreateRepository with tags also needs
    /// `ecr:TagResource`, as in AWS).
    pub async fn allow_also(&self, action: &str, resource: Resource<'_>) -> Result<(), RegistryError> {
        self.record.note(&resource);
        self.registry.authorize(self.principal, action, resource).await
    }

    /// The call's action was decided by the service itself, item by item (a listing that
    /// shows only what the caller may see): recorded against `resource`, the listing's scope.
    pub fn decided_by_service(&self, resource: Resource<'_>) {
        self.record.note(&resource);
    }

    /// The service authorized the call itself (its methods that take the principal do) on
    /// the resource `arn` names: recorded, as `allow` records.
    pub fn decided_by_service_on(&self, arn: &str) {
        self.record.note_arn(arn.to_string());
    }

    /// Fails closed when a handler answered without any authorization (a handler bug): the
    /// caller is denied rather than served.
    pub fn ensure_decided(&self) -> Result<(), RegistryError> {
        if self.action.is_none() || self.record.decided.load(Ordering::Acquire) {
            Ok(())
        } else {
            // Default deny: the caller is refused, and the log says why.
            Err(RegistryError::Denied(format!(
                "berth refused {}: the operation did not authorize its caller",
                self.action.unwrap_or_default()
            )))
        }
    }
}
