//! Replication to another registry over the OCI distribution API.

use super::remotes::RemoteRegistry;
use super::worker::Failure;
use crate::names::Repo;
use crate::{Digest, Registry};

impl Registry {
    pub(crate) async fn replicate_remote(&self, remote: &RemoteRegistry, source: &Repo, digest: &Digest) -> Result<(), Failure> {
        Err(Failure::permanent(format!(
            "Unsupported: replication of {source}@{digest} to the remote registry {} ({}) is not available in this build",
            remote.registry_id, remote.url
        )))
    }
}
