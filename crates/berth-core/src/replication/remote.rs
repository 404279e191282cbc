//! Replication to another registry (another berth, Amazon ECR, distribution, any registry that
//! follows the distribution spec) over the OCI API with `berth-oci-client`: for each blob, an
//! existence check first, then a cross-repository mount from a repository of the remote this
//! node already sent it to, and only then a streamed upload (never buffered; a retry re-opens
//! the source); manifests children first; then the tags. The repository keeps its name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_oci_client::{ClientError, ClientOptions, Credentials, Endpoint, OciClient};
use berth_store::RefKind;
use futures::TryStreamExt;
use sha2::{Digest as _, Sha256};

use super::remotes::{RemoteAuth, RemoteRegistry};
use super::worker::Failure;
use crate::manifest;
use crate::names::Repo;
use crate::{Digest, Registry};

/// Clients kept per remote (their token caches make every later copy cheaper); remotes are
/// an operator's short list, this only bounds a list that keeps changing.
const MAX_CLIENTS: usize = 64;
/// Where this node last sent a blob, per remote: a later copy mounts from there.
const MAX_BLOB_LOCATIONS: u64 = 100_000;

/// Clients and known blob locations of remote registries.
pub(crate) struct RemoteClients {
    clients: Mutex<HashMap<String, Arc<OciClient>>>,
    blob_locations: moka::sync::Cache<(String, Digest), String>,
}

impl Default for RemoteClients {
    fn default() -> Self {
        RemoteClients { clients: Default::default(), blob_locations: moka::sync::Cache::new(MAX_BLOB_LOCATIONS) }
    }
}

/// Identifies a remote's configuration, secret included (hashed), so that a changed
/// configuration gets a new client.
fn fingerprint(remote: &RemoteRegistry) -> String {
    let (kind, user, secret) = match &remote.auth {
        RemoteAuth::Anonymous => ("anonymous", "", ""),
        RemoteAuth::Basic { username, password } => ("basic", username.as_str(), password.as_str()),
        RemoteAuth::Ecr { access_key_id, secret_access_key } => ("ecr", access_key_id.as_str(), secret_access_key.as_str()),
    };
    let secret = hex::encode(Sha256::digest(secret.as_bytes()));
    format!("{}\n{:?}\n{}\n{kind}\n{user}\n{secret}\n{}", remote.registry_id, remote.region, remote.url, remote.insecure)
}

fn client_failure(e: ClientError) -> Failure {
    if e.is_retryable() {
        Failure::Retry(format!("RemoteUnavailable: {e}"))
    } else {
        Failure::Permanent(format!("RemoteError: {e}"))
    }
}

impl Registry {
    fn remote_client(&self, remote: &RemoteRegistry, region: &str) -> Result<(String, Arc<OciClient>), Failure> {
        let key = fingerprint(remote);
        let mut clients = self.replicator.remotes.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok((key, c.clone()));
        }
        let base =
            url::Url::parse(&remote.url).map_err(|e| Failure::permanent(format!("InvalidParameter: remote URL {}: {e}", remote.url)))?;
        let credentials = match &remote.auth {
            RemoteAuth::Anonymous => Credentials::Anonymous,
            RemoteAuth::Basic { username, password } => Credentials::Basic { username: username.clone(), password: password.to_string() },
            RemoteAuth::Ecr { access_key_id, secret_access_key } => Credentials::Ecr {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.to_string(),
                region: remote.region.clone().unwrap_or_else(|| region.to_string()),
                api_endpoint: None,
            },
        };
        let options = ClientOptions { user_agent: format!("berth/{} (replication)", env!("CARGO_PKG_VERSION")), ..Default::default() };
        let client = OciClient::new(Endpoint { base, credentials, allow_insecure: remote.insecure }, options)
            .map_err(|e| Failure::permanent(format!("InvalidParameter: remote {}: {e}", remote.registry_id)))?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let client = Arc::new(client);
        clients.insert(key.clone(), client.clone());
        Ok((key, client))
    }

    pub(crate) async fn replicate_remote(
        &self,
        remote: &RemoteRegistry,
        region: &str,
        source: &Repo,
        digest: &Digest,
    ) -> Result<(), Failure> {
        let image = self.meta.get_image(source.key(), digest).await.map_err(Failure::retry)?.ok_or_else(|| {
            Failure::permanent(format!("ImageNotFound: the image {digest} was deleted from {source} before it was replicated"))
        })?;
        let (key, client) = self.remote_client(remote, region)?;
        let push = RemotePush { registry: self, client: &client, key: &key, source, name: source.name.as_str() };
        let top = push.manifest_tree(digest).await?;
        for tag in &image.tags {
            client.put_manifest(push.name, tag, &top.media_type, top.content.clone()).await.map_err(client_failure)?;
        }
        Ok(())
    }
}

/// One image's copy to one remote repository.
struct RemotePush<'a> {
    registry: &'a Registry,
    client: &'a OciClient,
    /// The remote's fingerprint (keys the blob locations).
    key: &'a str,
    source: &'a Repo,
    /// The repository at the remote: the source's name.
    name: &'a str,
}

impl RemotePush<'_> {
    /// Stores `digest` at the remote by digest, after its blobs and (for an index) the
    /// manifests it lists that the remote lacks; the manifest, for its tags.
    async fn manifest_tree(&self, digest: &Digest) -> Result<berth_store::ManifestRow, Failure> {
        let m = self.registry.meta.get_manifest_by_digest(self.source.key(), digest).await.map_err(Failure::retry)?.ok_or_else(|| {
            Failure::permanent(format!("ImageNotFound: manifest {digest} was deleted from {} before it was replicated", self.source))
        })?;
        let parsed = manifest::parse(&m.content, &m.media_type).map_err(Failure::from)?;
        for r in &parsed.references {
            match r.kind {
                RefKind::Blob => self.blob(&r.digest, r.size).await?,
                RefKind::Manifest => {
                    let present = self.client.head_manifest(self.name, &r.digest.to_string()).await.map_err(client_failure)?.is_some();
                    if !present {
                        Box::pin(self.manifest_tree(&r.digest)).await.map(drop)?;
                    }
                }
            }
        }
        self.client.put_manifest(self.name, &digest.to_string(), &m.media_type, m.content.clone()).await.map_err(client_failure)?;
        Ok(m)
    }

    async fn blob(&self, digest: &Digest, size: u64) -> Result<(), Failure> {
        let d = digest.to_string();
        if self.client.head_blob(self.name, &d).await.map_err(client_failure)?.is_some() {
            self.note_location(digest);
            return Ok(());
        }
        let known = self.registry.replicator.remotes.blob_locations.get(&(self.key.to_string(), digest.clone()));
        if let Some(from) = known.filter(|from| from != self.name) {
            // A mount the remote refuses (it lost the blob, or mounting is off) falls back to an upload.
            if self.client.mount_blob(self.name, &from, &d).await.map_err(client_failure)? {
                self.note_location(digest);
                return Ok(());
            }
        }
        let (registry, source) = (self.registry, self.source);
        let open = || async move {
            let (_, _, reader) = registry.read_blob(source, digest, None).await.map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(reader.body.map_err(std::io::Error::other))
        };
        self.client.push_blob(self.name, &d, size, open).await.map_err(client_failure)?;
        self.note_location(digest);
        Ok(())
    }

    fn note_location(&self, digest: &Digest) {
        self.registry.replicator.remotes.blob_locations.insert((self.key.to_string(), digest.clone()), self.name.to_string());
    }
}
