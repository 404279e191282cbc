//! Reading sealed objects: the header first (which names the key), then the segments a read
//! needs, each authenticated before a byte of it is passed on.

use std::collections::VecDeque;
use std::io;

use berth_crypto::segmented::{Decryptor, Header, MAX_HEADER_LEN};
use berth_crypto::CryptoError;
use std::sync::Arc;

use berth_store::{BlobRange, BlobReader, BlobStore, ByteStream, Digest};
use bytes::{Buf, Bytes, BytesMut};
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
                let body = decrypting(stored, decryptor, 0, 0, plain_len, true, label).with_failure_noted(
                    self.integrity.clone(),
                    store.clone(),
                    name,
                );
                Ok(Some(BlobReader { len: plain_len, body: read_ahead(body) }))
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
                let body = decrypting(reader.body, decryptor, 0, skip, take, finish, label).with_failure_noted(
                    self.integrity.clone(),
                    store.clone(),
                    name,
                );
                Ok(Some(BlobReader { len: take, body: body.boxed() }))
            }
        }
    }
}

/// Opened segments queued ahead of the client (64 KiB each).
const READ_AHEAD: usize = 16;

/// Runs `body` on its own task, up to `READ_AHEAD` items ahead of its reader: the next segments
/// are read and opened on the other core while the current ones are sent. The task stops when
/// the reader goes away.
fn read_ahead(mut body: ByteStream) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        while let Some(item) = body.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

/// Notes an object whose read failed authentication (see `Integrity::sealed_object_failed`),
/// and drops the store's node-local copy of it (`BlobStore::forget_cached`): the copy may be
/// what was wrong, and the next read then goes to the store itself.
trait NoteFailure {
    fn with_failure_noted(
        self,
        integrity: std::sync::Arc<crate::integrity::Integrity>,
        store: Arc<dyn BlobStore>,
        name: Digest,
    ) -> ByteStream;
}

impl NoteFailure for ByteStream {
    fn with_failure_noted(
        self,
        integrity: std::sync::Arc<crate::integrity::Integrity>,
        store: Arc<dyn BlobStore>,
        name: Digest,
    ) -> ByteStream {
        self.inspect(move |item| {
            if matches!(item, Err(e) if e.kind() == io::ErrorKind::InvalidData) {
                integrity.sealed_object_failed(&name);
                let (store, name) = (store.clone(), name.clone());
                tokio::spawn(async move { store.forget_cached(&name).await });
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
        // The stored objects themselves, not a node's cached copy of them.
        berth_store::store_walk(self.check_root_key_stored()).await
    }

    async fn check_root_key_stored(&self) -> Result<bool> {
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
///
/// Each segment is opened where it lies in the chunk the store read (the plaintext handed on
/// is a slice of that chunk): only a segment split across two chunks is copied, once.
pub(crate) fn decrypting(
    stored: ByteStream,
    decryptor: Decryptor,
    skip_stored: u64,
    skip: u64,
    take: u64,
    finish: bool,
    label: String,
) -> ByteStream {
    let state = Opening {
        stored,
        decryptor: Some(decryptor),
        partial: BytesMut::new(),
        ready: VecDeque::new(),
        skip_stored,
        skip,
        left: take,
        finish,
        label,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            while let Some(plain) = s.ready.pop_front() {
                if let Some(b) = s.window(plain) {
                    return Some((Ok(b), s));
                }
            }
            if s.left == 0 {
                return None;
            }
            s.decryptor.as_ref()?;
            let opened = match s.stored.next().await {
                Some(Err(e)) => {
                    s.decryptor = None;
                    return Some((Err(e), s));
                }
                Some(Ok(chunk)) => {
                    let drop = s.skip_stored.min(chunk.len() as u64) as usize;
                    s.skip_stored -= drop as u64;
                    s.open_chunk(if drop == 0 { chunk } else { chunk.slice(drop..) })
                }
                None => s.open_end(),
            };
            if let Err(e) = opened {
                let err = s.failed(e);
                return Some((Err(err), s));
            }
        }
    })
    .boxed()
}

struct Opening {
    stored: ByteStream,
    decryptor: Option<Decryptor>,
    /// The stored bytes of a segment begun in an earlier chunk.
    partial: BytesMut,
    /// Opened plaintext not passed on yet.
    ready: VecDeque<Bytes>,
    skip_stored: u64,
    skip: u64,
    left: u64,
    finish: bool,
    label: String,
}

impl Opening {
    /// Trims plaintext to the requested window.
    fn window(&mut self, mut plain: Bytes) -> Option<Bytes> {
        let drop = self.skip.min(plain.len() as u64) as usize;
        self.skip -= drop as u64;
        plain.advance(drop);
        plain.truncate(self.left.min(plain.len() as u64) as usize);
        self.left -= plain.len() as u64;
        (!plain.is_empty()).then_some(plain)
    }

    fn failed(&mut self, e: CryptoError) -> io::Error {
        self.decryptor = None;
        tracing::error!(object = %self.label, error = %e, "an encrypted object failed authentication; the read ends here");
        io::Error::new(io::ErrorKind::InvalidData, format!("the stored object of {} failed authentication: {e}", self.label))
    }

    /// Opens `segment` (its whole stored bytes) in place and queues its plaintext.
    fn open(&mut self, mut segment: BytesMut) -> Result<(), CryptoError> {
        let Some(d) = self.decryptor.as_mut() else { return Ok(()) };
        let plain = d.open_in_place(&mut segment[..])?;
        segment.truncate(plain);
        self.ready.push_back(segment.freeze());
        Ok(())
    }

    /// Opens every segment `chunk` completes; keeps the start of the next one. The last
    /// segment waits for the end of the stored bytes, which delimits it.
    fn open_chunk(&mut self, chunk: Bytes) -> Result<(), CryptoError> {
        let Some(d) = self.decryptor.as_ref() else { return Ok(()) };
        let whole = d.stored_segment();
        // Unique (as the store's chunks are): opened in place. Shared: copied once.
        let mut chunk = chunk.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..]));
        if !self.partial.is_empty() {
            if self.next_is_last() {
                // Everything up to the end belongs to the last segment (too much fails it).
                self.partial.extend_from_slice(&chunk);
                return Ok(());
            }
            let need = (whole - self.partial.len()).min(chunk.len());
            self.partial.reserve(whole - self.partial.len());
            self.partial.extend_from_slice(&chunk.split_to(need));
            if self.partial.len() < whole {
                return Ok(());
            }
            let segment = std::mem::take(&mut self.partial);
            self.open(segment)?;
        }
        while chunk.len() >= whole && !self.next_is_last() {
            let segment = chunk.split_to(whole);
            self.open(segment)?;
        }
        if !chunk.is_empty() {
            self.partial = chunk;
        }
        Ok(())
    }

    fn next_is_last(&self) -> bool {
        self.decryptor.as_ref().is_some_and(Decryptor::next_is_last)
    }

    /// The stored bytes ended: the last segment is what is held (when the read reaches the
    /// object's end); nothing may be left over otherwise.
    fn open_end(&mut self) -> Result<(), CryptoError> {
        let held = std::mem::take(&mut self.partial);
        if self.finish {
            if !self.next_is_last() {
                return Err(CryptoError::NotAuthentic);
            }
            self.open(held)?;
        } else if !held.is_empty() {
            return Err(CryptoError::Malformed("the stored bytes end inside a segment"));
        }
        self.decryptor = None;
        Ok(())
    }
}
