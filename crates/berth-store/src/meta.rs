//! The metadata interface: rows, not rules. Every method is one transaction.
//!
//! One trait per concern, each in its own file, so a feature touches the one it needs;
//! `MetadataStore` is all of them, which is what the service holds (`Arc<dyn MetadataStore>`).

mod audit;
mod cluster;
mod content;
mod identity;
mod lifecycle;
mod public;
mod pull_through;
mod replication;
mod repos;
mod scans;
mod secrets;
mod settings;
mod templates;
mod webhooks;

pub use audit::*;
pub use cluster::*;
pub use content::*;
pub use identity::*;
pub use lifecycle::*;
pub use public::*;
pub use pull_through::*;
pub use replication::*;
pub use repos::*;
pub use scans::*;
pub use secrets::*;
pub use settings::*;
pub use templates::*;
pub use webhooks::*;

/// Milliseconds since the Unix epoch, as supplied by the service's clock.
pub type Millis = i64;

/// A repository's identity: the registry (account + region) and its name there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoKey {
    pub account: String,
    pub region: String,
    pub name: String,
}

/// Every concern of the metadata store: what a backend implements and the service holds.
pub trait MetadataStore:
    RepositoryStore
    + ContentStore
    + LifecycleStore
    + ScanStore
    + IdentityStore
    + ClusterStore
    + TemplateStore
    + SettingsStore
    + ReplicationStore
    + PublicStore
    + PullThroughStore
    + AuditStore
    + WebhookStore
    + SecretStore
    + crate::jobs::JobStore
    + crate::keys::KeyStore
    + 'static
{
}

impl<T> MetadataStore for T where
    T: RepositoryStore
        + ContentStore
        + LifecycleStore
        + ScanStore
        + IdentityStore
        + ClusterStore
        + TemplateStore
        + SettingsStore
        + ReplicationStore
        + PublicStore
        + PullThroughStore
        + PullThroughStore
        + AuditStore
        + WebhookStore
        + SecretStore
        + SecretStore
        + crate::jobs::JobStore
        + crate::keys::KeyStore
        + 'static
{
}
