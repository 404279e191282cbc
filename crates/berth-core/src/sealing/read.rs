//! Reading sealed objects: the header first (which names the key), then the segments a read
//! needs, each authenticated before a byte of it is passed on.

use std::io;

use berth_crypto::segmented::{Decryptor, Header, MAX_HEADER_LEN};
use berth_store::{BlobRange, BlobReader, ByteStream, Digest};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::object_name;
use super::upload::cipher;
use crate::error::Result;
use crate::kms::blob_keys::sealing_failure;
use crate::Registry;

impl Registry {
    /// Opens `digest`'s object in `scope` (`plain_len` bytes of plaintext), whole or a range.
    /// None when the object is not stored. Fails before any byte when the scope's key cannot
    /// be used; a stored byte that was altered ends the body early with an error (the
    /// client's download fails), never with wrong bytes.
    pub(crate) async fn sealed_get(
        &self,
        scope: &str,
        digest: &Digest,
        plain_len: u64,
        range: Option<BlobRange>,
    ) -> Result<Option<BlobReader>> {
        let store = self.sealed_store()?;
        let name = object_name(scope, digest);
        let aad = digest.to_string().into_bytes();
        let label = digest.to_string();
        match range {
            None => {
                let Some(reader) = store.get(&name, None).await? else { return Ok(None) };
                let (header, rest, body) = read_header(reader.body, &label).await?;
                if reader.len != header.stored_len(plain_len) {
                    return Err(not_authentic(&label, "its stored size is not the size of its plaintext"));
                }
                let keys = self.open_blob_keys(&header).await?;
                let decryptor = Decryptor::new(&header, cipher(&header, &keys)?, &aad, plain_len, 0);
                let stored = futures::stream::once(async move { Ok::<_, io::Error>(rest) }).chain(body).boxed();
                let body = decrypting(stored, decryptor, 0, 0, plain_len, true, label).with_failure_noted(self.integrity.clone(), name);
                Ok(Some(BlobReader { len: plain_len, body: body.boxed() }))
            }
            Some(r) => {
                let Some(stored_len) = store.stat(&name).await? else { return Ok(None) };
                let head = BlobRange { start: 0, end_inclusive: stored_len.min(MAX_HEADER_LEN as u64).saturating_sub(1) };
                let Some(reader) = store.get(&name, Some(head)).await? else { return Ok(None) };
                let (header, _, _) = read_header(reader.body, &label).await?;
                if stored_len != header.stored_len(plain_len) {
                    return Err(not_authentic(&label, "its stored size is not the size of its plaintext"));
                }
                let keys = self.open_blob_keys(&header).await?;
                let end = r.end_inclusive + 1;
                let (span, first) = header.stored_range(r.start, end, plain_len);
                let span_range = BlobRange { start: span.start, end_inclusive: span.end - 1 };
                let Some(reader) = store.get(&name, Some(span_range)).await? else { return Ok(None) };
                let decryptor = Decryptor::new(&header, cipher(&header, &keys)?, &aad, plain_len, first);
                let skip = r.start - header.segment_start(first);
                let take = end - r.start;
                let finish = span.end == stored_len;
                let body =
                    decrypting(reader.body, decryptor, 0, skip, take, finish, label).with_failure_noted(self.integrity.clone(), name);
                Ok(Some(BlobReader { len: take, body: body.boxed() }))
            }
        }
    }
}

/// Notes an object whose read failed authentication (see `Integrity::sealed_object_failed`).
trait NoteFailure {
    fn with_failure_noted(self, integrity: std::sync::Arc<crate::integrity::Integrity>, name: Digest) -> ByteStream;
}

impl NoteFailure for ByteStream {
    fn with_failure_noted(self, integrity: std::sync::Arc<crate::integrity::Integrity>, name: Digest) -> ByteStream {
        self.inspect(move |item| {
            if matches!(item, Err(e) if e.kind() == io::ErrorKind::InvalidData) {
                integrity.sealed_object_failed(&name);
            }
        })
        .boxed()
    }
}

impl Registry {
    /// At start-up: the root key opens this registry's data. Looks for an object sealed under
    /// the registry-managed key (derived from the root key) and opens its data key; a node
    /// given another root key than the one the data was written with refuses to serve instead
    /// of failing every pull. Ok(false) when there is nothing to check yet.
    pub async fn check_root_key(&self) -> Result<bool> {
        let store = self.sealed_store()?;
        let mut walk = super::ObjectWalk::default();
        for _ in 0..4 {
            let page = self.next_objects(&mut walk).await?;
            if page.is_empty() {
                return Ok(false);
            }
            for object in page.iter().filter(|o| o.scope == "aes256") {
                let name = object_name(&object.scope, &object.digest);
                let Some(stored_len) = store.stat(&name).await? else { continue };
                let head = BlobRange { start: 0, end_inclusive: stored_len.min(MAX_HEADER_LEN as u64).saturating_sub(1) };
                let Some(reader) = store.get(&name, Some(head)).await? else { continue };
                let (header, _, _) = read_header(reader.body, &object.digest.to_string()).await?;
                self.open_blob_keys(&header).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn not_authentic(label: &str, why: &str) -> crate::RegistryError {
    tracing::error!(object = label, why, "an encrypted object failed authentication");
    sealing_failure(format!("the stored object of {label} failed authentication: {why}"))
}

/// Reads an object's header from the start of its stream; returns it, the bytes after it
/// that were already read, and the rest of the stream.
async fn read_header(body: ByteStream, label: &str) -> Result<(Header, Bytes, ByteStream)> {
    // Fused: a small object's stream may end here, and the rest is polled once more.
    let mut body = body.fuse();
    let mut buf = BytesMut::new();
    while buf.len() < MAX_HEADER_LEN {
        match body.next().await {
            Some(chunk) => {
                buf.extend_from_slice(&chunk.map_err(|e| berth_store::StoreError::io(format!("reading the object of {label}"), e))?)
            }
            None => break,
        }
    }
    let header = Header::parse(&buf).map_err(|e| not_authentic(label, &e.to_string()))?;
    let rest = buf.split_off(header.len as usize).freeze();
    Ok((header, rest, body.boxed()))
}

/// Decrypts stored bytes as they stream: drops `skip_stored` leading stored bytes, then
/// passes on plaintext from offset `skip` for `take` bytes; `finish` when the stream ends
/// at the object's end (the last segment is opened and checked as the last).
pub(crate) fn decrypting(
    stored: ByteStream,
    decryptor: Decryptor,
    skip_stored: u64,
    skip: u64,
    take: u64,
    finish: bool,
    label: String,
) -> ByteStream {
    struct State {
        stored: ByteStream,
        decryptor: Option<Decryptor>,
        skip_stored: u64,
        skip: u64,
        left: u64,
        finish: bool,
        label: String,
    }
    impl State {
        /// Trims plaintext to the requested window.
        fn window(&mut self, mut out: Vec<u8>) -> Option<Bytes> {
            let drop = self.skip.min(out.len() as u64) as usize;
            self.skip -= drop as u64;
            out.drain(..drop);
            out.truncate(self.left.min(out.len() as u64) as usize);
            self.left -= out.len() as u64;
            (!out.is_empty()).then(|| Bytes::from(out))
        }
        fn failed(&mut self, e: berth_crypto::CryptoError) -> io::Error {
            self.decryptor = None;
            tracing::error!(object = %self.label, error = %e, "an encrypted object failed authentication; the read ends here");
            io::Error::new(io::ErrorKind::InvalidData, format!("the stored object of {} failed authentication: {e}", self.label))
        }
    }
    let state = State { stored, decryptor: Some(decryptor), skip_stored, skip, left: take, finish, label };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.left == 0 {
                return None;
            }
            s.decryptor.as_ref()?;
            match s.stored.next().await {
                Some(Err(e)) => {
                    s.decryptor = None;
                    return Some((Err(e), s));
                }
                Some(Ok(mut chunk)) => {
                    let drop = s.skip_stored.min(chunk.len() as u64) as usize;
                    s.skip_stored -= drop as u64;
                    let chunk = chunk.split_off(drop);
                    let mut out = Vec::with_capacity(chunk.len());
                    let opened = s.decryptor.as_mut().map(|d| d.update(&chunk, &mut out));
                    if let Some(Err(e)) = opened {
                        let err = s.failed(e);
                        return Some((Err(err), s));
                    }
                    if let Some(b) = s.window(out) {
                        return Some((Ok(b), s));
                    }
                }
                None => {
                    let decryptor = s.decryptor.take()?;
                    if !s.finish {
                        return None;
                    }
                    let mut out = Vec::new();
                    if let Err(e) = decryptor.finish(&mut out) {
                        let err = s.failed(e);
                        return Some((Err(err), s));
                    }
                    return s.window(out).map(|b| (Ok(b), s));
                }
            }
        }
    })
    .boxed()
}
