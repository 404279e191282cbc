//! The data keys of stored blobs (see crate::sealing), made and opened on the registry's own
//! behalf: the caller was authorized for the ECR action on the repository, and the
//! repository's key serves every principal who may push or pull there (ECR uses the key
//! through a grant in the same way, not through the puller's own `kms:Decrypt`).
//!
//! A scope names its key: "aes256" is the registry-managed key (derived from the root key,
//! never a KMS key anyone can see or disable), "kms:<arn>" and "dsse:<arn>" a KMS key, whose
//! state (disabled, pending deletion, deleted) is checked on every use through a cache that
//! holds a key for at most [`KEY_CACHE_MILLIS`].

use std::collections::HashMap;
use std::sync::Mutex;

use berth_crypto::segmented::Header;
use berth_crypto::KEY_LEN;

use super::*;
use crate::RegistryError;

/// The registry-managed key's purpose, for deriving it from the root key.
pub(super) const REGISTRY_MANAGED_PURPOSE: &str = "berth registry-managed blob key v1";
const REGISTRY_MANAGED_AAD: &[u8] = b"berth blob data key";
/// How long a KMS key looked up for blobs is reused: a key disabled on another node of a
/// cluster stops pushes and pulls here within this time (at once on this node).
pub const KEY_CACHE_MILLIS: i64 = 1000;
/// At most this many keys are cached (keys are per account and region, and few).
const KEY_CACHE_ENTRIES: usize = 1024;

/// A blob's data keys, one per layer, ready for `SegmentCipher::new`.
pub type DataKeys = Vec<Zeroizing<[u8; KEY_LEN]>>;

/// Which key a scope names.
enum ScopeKey<'a> {
    RegistryManaged,
    Kms { arn: &'a str, layers: usize },
}

fn scope_key(scope: &str) -> Result<ScopeKey<'_>, RegistryError> {
    if scope == "aes256" {
        return Ok(ScopeKey::RegistryManaged);
    }
    if let Some(arn) = scope.strip_prefix("kms:") {
        return Ok(ScopeKey::Kms { arn, layers: 1 });
    }
    if let Some(arn) = scope.strip_prefix("dsse:") {
        return Ok(ScopeKey::Kms { arn, layers: 2 });
    }
    Err(sealing_failure(format!("unknown encryption scope {scope:?}")))
}

/// The encryption context a layer's data key is sealed with under a KMS key.
fn layer_context(layer: usize) -> [(String, String); 1] {
    [("berth:blob-layer".to_string(), (layer + 1).to_string())]
}

/// Recently used keys, by ARN, with when they were read (clock millis).
#[derive(Default)]
pub(crate) struct KeyCache(Mutex<HashMap<String, (i64, Key)>>);

impl KeyCache {
    fn get(&self, arn: &str, now: i64) -> Option<Key> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(arn).filter(|(at, _)| now - *at < KEY_CACHE_MILLIS && *at <= now).map(|(_, k)| k.clone())
    }

    fn put(&self, key: Key, now: i64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= KEY_CACHE_ENTRIES {
            map.retain(|_, (at, _)| now - *at < KEY_CACHE_MILLIS);
        }
        if map.len() < KEY_CACHE_ENTRIES {
            map.insert(key.doc.arn.clone(), (now, key));
        }
    }

    /// A key changed on this node: the next use reads it again.
    pub(crate) fn forget(&self, arn: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(arn);
    }
}

impl Registry {
    /// Fresh data keys for a new object in `scope`, and the object's header carrying them
    /// wrapped. Fails (KmsException / 403 DENIED) when the scope's key cannot be used.
    pub(crate) async fn new_blob_keys(&self, scope: &str) -> Result<(Header, DataKeys), RegistryError> {
        let svc = self.key_service().map_err(super::for_repository)?;
        match scope_key(scope)? {
            ScopeKey::RegistryManaged => {
                let data_key = berth_crypto::random_key();
                let wrapped = berth_crypto::seal(&svc.registry_managed, REGISTRY_MANAGED_AAD, data_key.as_ref());
                let header = Header::new(scope.as_bytes(), vec![wrapped]).map_err(crypto_internal)?;
                Ok((header, vec![data_key]))
            }
            ScopeKey::Kms { arn, layers } => {
                let key = self.blob_key(arn).await.map_err(super::for_repository)?;
                let mut keys = Vec::with_capacity(layers);
                let mut wrapped = Vec::with_capacity(layers);
                for layer in 0..layers {
                    let data_key = berth_crypto::random_key();
                    wrapped.push(self.seal_under(&key, data_key.as_ref(), &layer_context(layer)).map_err(super::for_repository)?);
                    keys.push(data_key);
                }
                let header = Header::new(scope.as_bytes(), wrapped).map_err(crypto_internal)?;
                Ok((header, keys))
            }
        }
    }

    /// The data keys of a stored object, from its header. Fails as `new_blob_keys` does when
    /// the key is disabled, pending deletion or deleted (then the data is gone for good).
    pub(crate) async fn open_blob_keys(&self, header: &Header) -> Result<DataKeys, RegistryError> {
        let scope = std::str::from_utf8(&header.key_ref).map_err(|_| sealing_failure("an encrypted object names no scope".into()))?;
        let svc = self.key_service().map_err(super::for_repository)?;
        let damaged = || sealing_failure(format!("the data key of an object under {scope} does not open"));
        match scope_key(scope)? {
            ScopeKey::RegistryManaged => {
                let [wrapped] = header.wrapped_keys.as_slice() else { return Err(damaged()) };
                let opened = berth_crypto::open(&svc.registry_managed, REGISTRY_MANAGED_AAD, wrapped).map_err(|_| {
                    sealing_failure(format!(
                        "the data key of an object under {scope} does not open: is this server's root key the one it was written with?"
                    ))
                })?;
                Ok(vec![to_key_bytes(&opened).ok_or_else(damaged)?])
            }
            ScopeKey::Kms { arn, layers } => {
                if header.wrapped_keys.len() != layers {
                    return Err(damaged());
                }
                let key = self.blob_key(arn).await.map_err(super::for_repository)?;
                usable_for_crypto(&key.doc).map_err(super::for_repository)?;
                let mut keys = Vec::with_capacity(layers);
                for (layer, wrapped) in header.wrapped_keys.iter().enumerate() {
                    let ct = ciphertext::Header::parse(wrapped).map_err(super::for_repository)?;
                    if ct.key_id != key.key_id {
                        return Err(damaged());
                    }
                    let material = key.doc.version(ct.version).ok_or_else(damaged)?;
                    let material = unwrap_material(&svc.root, &key.doc.arn, material).map_err(super::for_repository)?;
                    let opened = ciphertext::open(&material, &ct, wrapped, &layer_context(layer)).map_err(|_| damaged())?;
                    keys.push(to_key_bytes(&opened).ok_or_else(damaged)?);
                }
                Ok(keys)
            }
        }
    }

    /// Whether the scope's key can be used now (a push or pull checks before it starts).
    pub(crate) async fn check_scope_key(&self, scope: &str) -> Result<(), RegistryError> {
        if scope.is_empty() {
            return Ok(());
        }
        match scope_key(scope)? {
            ScopeKey::RegistryManaged => self.key_service().map(|_| ()).map_err(super::for_repository),
            ScopeKey::Kms { arn, .. } => {
                let key = self.blob_key(arn).await.map_err(super::for_repository)?;
                usable_for_crypto(&key.doc).map_err(super::for_repository)
            }
        }
    }

    /// Whether the scope's KMS key was deleted (its material destroyed at the end of its
    /// waiting period): its objects can never be opened again.
    pub(crate) async fn scope_key_destroyed(&self, scope: &str) -> Result<bool, RegistryError> {
        let ScopeKey::Kms { arn, .. } = scope_key(scope)? else { return Ok(false) };
        match self.kms_key_in(&self.config.default_registry, arn).await {
            Ok(_) => Ok(false),
            Err(KmsError::NotFound(_)) => Ok(true),
            Err(e) => Err(super::for_repository(e)),
        }
    }

    /// The KMS key a blob scope names, from the cache when it was read within the last second.
    async fn blob_key(&self, arn: &str) -> KmsResult<Key> {
        let svc = self.key_service()?;
        let now = self.now();
        if let Some(key) = svc.cache.get(arn, now) {
            return Ok(key);
        }
        let key = self.kms_key_in(&self.config.default_registry, arn).await?;
        svc.cache.put(key.clone(), now);
        Ok(key)
    }
}

fn to_key_bytes(opened: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    (opened.len() == KEY_LEN).then(|| {
        key.copy_from_slice(opened);
        key
    })
}

fn crypto_internal(e: berth_crypto::CryptoError) -> RegistryError {
    sealing_failure(format!("sealing a blob: {e}"))
}

/// A stored object or scope that cannot be what berth wrote: a server fault (500), never the
/// caller's.
pub(crate) fn sealing_failure(message: String) -> RegistryError {
    RegistryError::Store(berth_store::StoreError::io(message, std::io::Error::other("encrypted object")))
}
