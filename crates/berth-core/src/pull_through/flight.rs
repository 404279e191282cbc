//! One upstream download per blob at a time (single flight), streamed to every client that asks
//! while it runs and stored while it streams.
//!
//! The leader task reads the upstream's digest-checked stream (`OciClient::get_blob`) and writes
//! each chunk to a spool file and into an ordinary upload (`Registry::upload_blob`, which hashes
//! again and commits only a matching digest). Clients read the spool file as it grows, following
//! a watch of the bytes written, so the first byte waits for the first chunk only, memory does not
//! grow with the blob, and a client that leaves does not stop the download. The spool file lives
//! as long as the flight is referenced (a client still reading, the table), then is removed.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_oci_client::OciClient;
use berth_store::{ByteStream, Digest};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::error::Result;
use crate::names::Repo;
use crate::{Registry, RegistryError};

const READ_CHUNK: u64 = 256 * 1024;

#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// Known once the upstream answered.
    size: Option<u64>,
    written: u64,
    /// Every byte arrived and matched the digest.
    verified: bool,
    /// `Ok`: the blob is stored in the repository; `Err`: the flight failed (the message says why).
    done: Option<std::result::Result<(), String>>,
}

pub(crate) struct Flight {
    path: PathBuf,
    progress: watch::Receiver<Progress>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<String, Arc<Flight>>>);

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many blobs are being fetched now (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

fn flight_key(repo: &Repo, digest: &Digest) -> String {
    let k = repo.key();
    format!("{}\n{}\n{}\n{digest}", k.account, k.region, k.name)
}

/// Where a fetch goes: the client of the rule's upstream and the repository there.
pub(crate) struct Source {
    pub client: Arc<OciClient>,
    pub repository: String,
    pub upstream: String,
}

impl Registry {
    /// The running flight of this blob into this repository, or a new one.
    pub(crate) fn blob_flight(self: &Arc<Self>, repo: &Repo, digest: &Digest, source: Source) -> Result<Arc<Flight>> {
        let key = flight_key(repo, digest);
        let mut flights = self.pull_through.flights.lock();
        if let Some(f) = flights.get(&key) {
            return Ok(f.clone());
        }
        let dir = self.config.pull_through_spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("berth-pull-through-{}", uuid::Uuid::new_v4()));
        let file = std::fs::File::create(&path).map_err(|e| berth_store::StoreError::io(path.display().to_string(), e))?;
        let (tx, rx) = watch::channel(Progress::default());
        let flight = Arc::new(Flight { path, progress: rx });
        flights.insert(key.clone(), flight.clone());
        drop(flights);
        let me = self.clone();
        let (repo, digest) = (repo.clone(), digest.clone());
        let held = flight.clone();
        tokio::spawn(async move {
            let outcome = me.fly(&repo, &digest, &source, tokio::fs::File::from_std(file), &tx).await;
            if let Err(message) = &outcome {
                tracing::warn!(repository = %repo, %digest, upstream = %source.upstream, error = %message, "pull-through blob fetch failed");
            }
            tx.send_modify(|p| p.done = Some(outcome));
            me.pull_through.flights.lock().remove(&key);
            drop(held);
        });
        Ok(flight)
    }

    async fn fly(
        self: &Arc<Self>,
        repo: &Repo,
        digest: &Digest,
        source: &Source,
        mut file: tokio::fs::File,
        tx: &watch::Sender<Progress>,
    ) -> std::result::Result<(), String> {
        let blob = source
            .client
            .get_blob(&source.repository, &digest.to_string())
            .await
            .map_err(|e| format!("upstream registry {} failed for blob {digest} of {}: {e}", source.upstream, source.repository))?;
        tx.send_modify(|p| p.size = Some(blob.size));
        let (chunks, received) = mpsc::channel::<io::Result<Bytes>>(32);
        let body: ByteStream = Box::pin(futures::stream::unfold(received, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
        let store = {
            let (me, repo, digest) = (self.clone(), repo.clone(), digest.clone());
            tokio::spawn(async move { me.upload_blob(&repo, &digest, body).await })
        };
        let mut stream = blob.stream;
        let mut written = 0u64;
        while let Some(item) = stream.next().await {
            let chunk = match item {
                Ok(c) => c,
                Err(e) => {
                    let message = format!("upstream registry {} sent blob {digest} of {}: {e}", source.upstream, source.repository);
                    let _ = chunks.send(Err(io::Error::new(e.kind(), message.clone()))).await;
                    drop(chunks);
                    let _ = store.await;
                    return Err(message);
                }
            };
            let spooled = async {
                file.write_all(&chunk).await?;
                file.flush().await
            };
            spooled.await.map_err(|e| format!("spooling blob {digest}: {e}"))?;
            written += chunk.len() as u64;
            tx.send_modify(|p| p.written = written);
            // A failed store leaves the clients' copy intact; its error is reported below.
            let _ = chunks.send(Ok(chunk)).await;
        }
        tx.send_modify(|p| p.verified = true);
        drop(chunks);
        match store.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("storing blob {digest}: {e}")),
            Err(e) => Err(format!("storing blob {digest}: {e}")),
        }
    }
}

fn failed(message: &str) -> RegistryError {
    RegistryError::Upstream(message.to_string())
}

/// The blob's size once the upstream answered, and its bytes as they arrive.
pub(crate) async fn read(flight: Arc<Flight>) -> Result<(u64, ByteStream)> {
    let mut rx = flight.progress.clone();
    let size = loop {
        let p = rx.borrow_and_update().clone();
        if let Some(s) = p.size {
            break s;
        }
        if let Some(Err(m)) = &p.done {
            return Err(failed(m));
        }
        if rx.changed().await.is_err() {
            return Err(failed("the upstream fetch ended without an answer"));
        }
    };
    let file = tokio::fs::File::open(&flight.path).await.map_err(|e| berth_store::StoreError::io(flight.path.display().to_string(), e))?;
    let state = Reader { _flight: flight, file, pos: 0, size, rx, closed: false, finished: false };
    Ok((size, Box::pin(futures::stream::unfold(state, Reader::next))))
}

/// Waits until the flight stored the blob (or failed).
pub(crate) async fn stored(flight: &Flight) -> Result<()> {
    let mut rx = flight.progress.clone();
    loop {
        match rx.borrow_and_update().done.clone() {
            Some(Ok(())) => return Ok(()),
            Some(Err(m)) => return Err(failed(&m)),
            None => {}
        }
        if rx.changed().await.is_err() {
            return Err(failed("the upstream fetch ended"));
        }
    }
}

struct Reader {
    /// Keeps the spool file until this client has read it.
    _flight: Arc<Flight>,
    file: tokio::fs::File,
    pos: u64,
    size: u64,
    rx: watch::Receiver<Progress>,
    closed: bool,
    finished: bool,
}

impl Reader {
    async fn next(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if self.finished {
            return None;
        }
        loop {
            let p = self.rx.borrow_and_update().clone();
            if self.pos < p.written {
                let n = (p.written - self.pos).min(READ_CHUNK) as usize;
                let mut buf = vec![0u8; n];
                return match self.file.read_exact(&mut buf).await {
                    Ok(_) => {
                        self.pos += n as u64;
                        Some((Ok(Bytes::from(buf)), self))
                    }
                    Err(e) => {
                        self.finished = true;
                        Some((Err(e), self))
                    }
                };
            }
            if p.verified && self.pos >= self.size {
                return None;
            }
            let failure = match &p.done {
                Some(Err(m)) => Some(m.clone()),
                _ if self.closed => Some("the upstream fetch ended early".to_string()),
                _ => None,
            };
            if let Some(m) = failure {
                self.finished = true;
                return Some((Err(io::Error::other(m)), self));
            }
            if self.rx.changed().await.is_err() {
                self.closed = true;
            }
        }
    }
}
