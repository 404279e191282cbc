//! Sealed upload sessions: the object's header first, then each request's full segments as
//! they stream, the last segment (bound to the digest) at commit.

use std::io;
use std::sync::{Arc, Mutex};

use berth_crypto::segmented::{Encryptor, Header, SegmentCipher};
use berth_store::{ByteStream, Digest, UploadCursor};
use bytes::Bytes;
use futures::StreamExt;
use zeroize::Zeroizing;

use super::{object_name, SealedCursor};
use crate::error::Result;
use crate::kms::blob_keys::{sealing_failure, DataKeys};
use crate::Registry;

/// What the encrypting stream shares with the request that feeds it.
struct Feed {
    encryptor: Option<Encryptor>,
    consumed: u64,
}

pub(crate) fn cipher(header: &Header, keys: &DataKeys) -> Result<SegmentCipher> {
    let refs: Vec<&[u8; berth_crypto::KEY_LEN]> = keys.iter().map(|k| &**k).collect();
    SegmentCipher::new(header, &refs).map_err(|e| sealing_failure(format!("opening an encrypted object: {e}")))
}

fn once(bytes: Vec<u8>) -> ByteStream {
    futures::stream::once(async move { Ok::<_, io::Error>(Bytes::from(bytes)) }).boxed()
}

impl Registry {
    /// Starts the stored object of a new upload session in `scope`: fresh data keys, the
    /// header written. Fails with the key's error when the scope's key cannot be used.
    /// Scope "" is an upload in clear into the plain store (AES256 left to the storage).
    pub(crate) async fn sealed_create_upload(&self, id: &str, scope: &str) -> Result<UploadCursor> {
        if scope.is_empty() {
            return Ok(self.blobs.create_upload(id).await?);
        }
        let store = self.sealed_store()?;
        let (header, _keys) = self.new_blob_keys(scope).await?;
        let encoded = header.encode();
        let inner = store.create_upload(id).await?;
        let inner = store.append_upload(id, &inner, once(encoded.clone())).await?;
        let state = SealedCursor { scope: scope.to_string(), header: encoded, index: 0, sealed_tail: Vec::new(), inner };
        Ok(UploadCursor { len: 0, state: state.encode() })
    }

    /// The session's size in plaintext bytes, or None when it cannot go on: its data is gone,
    /// it was begun before encryption at rest, or its stored object holds bytes its record
    /// does not (a write that failed midway); the client then starts the upload again.
    pub(crate) async fn sealed_upload_len(&self, id: &str, cursor: &UploadCursor) -> Result<Option<u64>> {
        let Some(state) = SealedCursor::decode(&cursor.state) else { return Ok(self.blobs.upload_len(id, cursor).await?) };
        let stored = self.sealed_store()?.upload_len(id, &state.inner).await?;
        Ok(stored.filter(|s| *s == state.inner.len).map(|_| cursor.len))
    }

    /// The session's header and data keys (the key's state is checked here).
    async fn session_keys(&self, state: &SealedCursor) -> Result<(Header, DataKeys)> {
        let header = Header::parse(&state.header).map_err(|e| sealing_failure(format!("an upload's header: {e}")))?;
        let keys = self.open_blob_keys(&header).await?;
        Ok((header, keys))
    }

    fn resume_encryptor(
        &self,
        id: &str,
        cursor: &UploadCursor,
        state: &SealedCursor,
        header: &Header,
        keys: &DataKeys,
    ) -> Result<Encryptor> {
        let tail = if state.sealed_tail.is_empty() {
            Zeroizing::new(Vec::new())
        } else {
            berth_crypto::open(&keys[0], &SealedCursor::tail_aad(id, state.index, cursor.len), &state.sealed_tail)
                .map_err(|_| sealing_failure(format!("upload {id}: its held-back bytes do not open")))?
        };
        Ok(Encryptor::resume(cipher(header, keys)?, state.index, tail.to_vec()))
    }

    /// Encrypts `data` onto the session's object. Bytes that arrived before the client's
    /// stream broke are kept (as the filesystem store keeps them), so the session resumes from
    /// the offset it reports.
    pub(crate) async fn sealed_append(&self, id: &str, cursor: &UploadCursor, data: ByteStream) -> Result<UploadCursor> {
        let Some(state) = SealedCursor::decode(&cursor.state) else { return Ok(self.blobs.append_upload(id, cursor, data).await?) };
        let store = self.sealed_store()?;
        let (header, keys) = self.session_keys(&state).await?;
        let encryptor = self.resume_encryptor(id, cursor, &state, &header, &keys)?;
        let feed = Arc::new(Mutex::new(Feed { encryptor: Some(encryptor), consumed: 0 }));
        let sealed_body = encrypting(data, feed.clone(), id.to_string());
        let inner = store.append_upload(id, &state.inner, sealed_body).await?;
        let mut feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        let encryptor = feed.encryptor.take().ok_or_else(|| sealing_failure(format!("upload {id}: encryption stopped")))?;
        let len = cursor.len + feed.consumed;
        let (index, tail) = encryptor.state();
        let sealed_tail =
            if tail.is_empty() { Vec::new() } else { berth_crypto::seal(&keys[0], &SealedCursor::tail_aad(id, index, len), tail) };
        let next = SealedCursor { index, sealed_tail, inner, ..state };
        Ok(UploadCursor { len, state: next.encode() })
    }

    /// Seals the last segment (bound to `digest`) and makes the object visible as the
    /// scope's object of `digest`. Returns the scope.
    pub(crate) async fn sealed_commit(&self, id: &str, cursor: &UploadCursor, digest: &Digest) -> Result<String> {
        let Some(state) = SealedCursor::decode(&cursor.state) else {
            self.blobs.commit_upload(id, cursor, digest).await?;
            return Ok(String::new());
        };
        let store = self.sealed_store()?;
        let (header, keys) = self.session_keys(&state).await?;
        let encryptor = self.resume_encryptor(id, cursor, &state, &header, &keys)?;
        let mut last = Vec::new();
        encryptor.finish(digest.to_string().as_bytes(), &mut last).map_err(|e| sealing_failure(format!("upload {id}: {e}")))?;
        let inner = store.append_upload(id, &state.inner, once(last)).await?;
        let name = object_name(&state.scope, digest);
        store.commit_upload(id, &inner, &name).await?;
        // Written afresh: an object of this name that failed authentication is whole again.
        self.integrity.mark_verified(&name);
        Ok(state.scope)
    }

    /// Reads back the plaintext a session holds so far (to rebuild a lost hash), or None when
    /// the store cannot read an upload back.
    pub(crate) async fn sealed_read_upload(&self, id: &str, cursor: &UploadCursor) -> Result<Option<ByteStream>> {
        let Some(state) = SealedCursor::decode(&cursor.state) else { return Ok(self.blobs.read_upload(id, cursor).await?) };
        let (header, keys) = self.session_keys(&state).await?;
        let Some(stored) = self.sealed_store()?.read_upload(id, &state.inner).await? else { return Ok(None) };
        let tail = self.resume_encryptor(id, cursor, &state, &header, &keys)?.state().1.to_vec();
        // Every sealed segment of an open session is a middle one: pretend one more follows.
        let plain_len = header.segment_start(state.index as u64 + 1);
        let decryptor = berth_crypto::segmented::Decryptor::new(&header, cipher(&header, &keys)?, b"", plain_len, 0);
        let body = super::read::decrypting(stored, decryptor, header.len, 0, u64::MAX, false, id.to_string());
        Ok(Some(body.chain(once(tail)).boxed()))
    }

    /// Removes a session's stored object, wherever it is (a session begun before encryption
    /// at rest has its data in the plain store).
    pub(crate) async fn delete_upload_data(&self, id: &str, cursor: Option<&UploadCursor>) -> Result<()> {
        match cursor.and_then(|c| SealedCursor::decode(&c.state)) {
            Some(state) => self.sealed_store()?.delete_upload(id, Some(&state.inner)).await?,
            None => {
                if let Ok(store) = self.sealed_store() {
                    store.delete_upload(id, None).await?;
                }
                self.blobs.delete_upload(id, cursor).await?;
            }
        }
        Ok(())
    }

    /// Session ids with stored data in either store (for sweeping orphans).
    pub(crate) async fn list_upload_data(&self) -> Result<Vec<String>> {
        let mut ids = self.blobs.list_uploads().await?;
        if let Ok(store) = self.sealed_store() {
            ids.extend(store.list_uploads().await?);
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// The request's plaintext, encrypted segment by segment as it arrives. A broken client
/// stream ends the body (what arrived is kept); the feed counts the bytes taken.
fn encrypting(data: ByteStream, feed: Arc<Mutex<Feed>>, id: String) -> ByteStream {
    futures::stream::unfold((data, feed, id), |(mut data, feed, id)| async move {
        loop {
            match data.next().await {
                None => return None,
                Some(Err(e)) => {
                    tracing::debug!(upload = %id, error = %e, "the client's stream broke; keeping what arrived");
                    return None;
                }
                Some(Ok(chunk)) => {
                    let mut out = Vec::with_capacity(chunk.len() + 64);
                    let sealed = {
                        let mut f = feed.lock().unwrap_or_else(|p| p.into_inner());
                        f.consumed += chunk.len() as u64;
                        match f.encryptor.as_mut() {
                            Some(e) => e.update(&chunk, &mut out),
                            None => return None,
                        }
                    };
                    if let Err(e) = sealed {
                        return Some((Err(io::Error::other(format!("encrypting upload {id}: {e}"))), (data, feed, id)));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), (data, feed, id)));
                    }
                }
            }
        }
    })
    .boxed()
}
