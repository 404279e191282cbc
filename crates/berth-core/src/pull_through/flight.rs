//! One upstream download per blob at a time (single flight), streamed to every client that asks
//! while it runs and stored while it streams.
//!
//! The leader task reads the upstream's stream (`OciClient::get_blob`, which hashes it once and
//! withholds the chunk that completes a blob that does not match its digest) and hands each chunk
//! to the clients through an in-memory window (`window.rs`: bounded, never waits for a client)
//! and to one writer, the store's upload, which writes it once without hashing it again
//! (`Registry::upload_verified_blob`) and commits only a complete, verified blob. The writer's
//! bounded queue is the only thing that slows the leader (the disk sets the pace, not the
//! clients). A client that falls out of the window, or joins late, reads the stored blob from
//! its offset once it is stored; a client that leaves does not stop the download.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use berth_oci_client::OciClient;
use berth_store::{Algorithm, ByteStream, Digest};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};

use super::window::{self, Fallback, Publisher, Window};
use crate::error::Result;
use crate::names::Repo;
use crate::{Registry, RegistryError};

/// Bytes of a download kept in memory for its clients (per blob being fetched).
const WINDOW: u64 = 32 * 1024 * 1024;
/// Chunks queued for the writer before the leader waits for the disk.
const WRITE_QUEUE: usize = 256;

pub(crate) struct Flight {
    registry: Arc<Registry>,
    repo: Repo,
    digest: Digest,
    window: watch::Receiver<Window>,
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

    /// Bytes held in memory for the clients of every download now, and bytes already let go.
    fn window_bytes(&self) -> (u64, u64) {
        self.lock().values().map(|f| f.window.borrow().bytes()).fold((0, 0), |(h, r), (fh, fr)| (h + fh, r + fr))
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
        let (publisher, rx) = window::window(WINDOW);
        let flight = Arc::new(Flight { registry: self.clone(), repo: repo.clone(), digest: digest.clone(), window: rx });
        flights.insert(key.clone(), flight.clone());
        drop(flights);
        let me = self.clone();
        let (repo, digest) = (repo.clone(), digest.clone());
        tokio::spawn(async move {
            let outcome = me.fly(&repo, &digest, &source, &publisher).await;
            if let Err(message) = &outcome {
                tracing::warn!(repository = %repo, %digest, upstream = %source.upstream, error = %message, "pull-through blob fetch failed");
            }
            publisher.stored(outcome);
            me.pull_through.flights.lock().remove(&key);
        });
        Ok(flight)
    }

    /// Bytes of blobs being pulled through held in memory for their clients (at most 32 MiB
    /// and a chunk per download), and bytes they let go (clients behind them read the stored
    /// blob), over every download now (for tests and metrics).
    pub fn pull_through_window_bytes(&self) -> (u64, u64) {
        self.pull_through.flights.window_bytes()
    }

    async fn fly(
        self: &Arc<Self>,
        repo: &Repo,
        digest: &Digest,
        source: &Source,
        publisher: &Publisher,
    ) -> std::result::Result<(), String> {
        let blob = source
            .client
            .get_blob(&source.repository, &digest.to_string())
            .await
            .map_err(|e| format!("upstream registry {} failed for blob {digest} of {}: {e}", source.upstream, source.repository))?;
        let size = blob.size;
        publisher.set_size(size);
        // The upstream stream checks sha256 digests itself; a blob under another algorithm is
        // hashed by the store, and its last chunk waits for that verdict.
        let checked_upstream = digest.algorithm() == Algorithm::Sha256;
        let (chunks, received) = mpsc::channel::<io::Result<Bytes>>(WRITE_QUEUE);
        let body: ByteStream = Box::pin(futures::stream::unfold(received, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
        let store = {
            let (me, repo, digest) = (self.clone(), repo.clone(), digest.clone());
            tokio::spawn(async move {
                if checked_upstream {
                    me.upload_verified_blob(&repo, &digest, size, body).await
                } else {
                    me.upload_blob(&repo, &digest, body).await.map(|_| ())
                }
            })
        };
        let mut stream = blob.stream;
        let mut received_bytes = 0u64;
        let mut held_back = None;
        while let Some(item) = stream.next().await {
            let chunk = match item {
                Ok(c) => c,
                Err(e) => {
                    let message = format!("upstream registry {} sent blob {digest} of {}: {e}", source.upstream, source.repository);
                    publisher.fail(message.clone());
                    let _ = chunks.send(Err(io::Error::new(e.kind(), message.clone()))).await;
                    drop(chunks);
                    let _ = store.await;
                    return Err(message);
                }
            };
            received_bytes += chunk.len() as u64;
            if !checked_upstream && received_bytes == size {
                held_back = Some(chunk.clone());
            } else {
                publisher.publish(chunk.clone());
            }
            // A writer that failed leaves the clients' copy intact; its error is reported below.
            let _ = chunks.send(Ok(chunk)).await;
        }
        drop(chunks);
        let stored = match store.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("storing blob {digest}: {e}")),
            Err(e) => Err(format!("storing blob {digest}: {e}")),
        };
        match (held_back, &stored) {
            (Some(last), Ok(())) => publisher.publish(last),
            (Some(_), Err(m)) => publisher.fail(m.clone()),
            (None, _) => {}
        }
        stored
    }
}

fn failed(message: &str) -> RegistryError {
    RegistryError::Upstream(message.to_string())
}

/// The blob's size once the upstream answered, and its bytes as they arrive.
pub(crate) async fn read(flight: Arc<Flight>) -> Result<(u64, ByteStream)> {
    let size = window::size(flight.window.clone()).await.map_err(|m| failed(&m))?;
    let rx = flight.window.clone();
    let (registry, repo, digest) = (flight.registry.clone(), flight.repo.clone(), flight.digest.clone());
    let fallback: Fallback = Arc::new(move |from: u64| {
        let (registry, repo, digest) = (registry.clone(), repo.clone(), digest.clone());
        async move { Ok(registry.read_blob(&repo, &digest, Some((Some(from), None))).await?.2.body) }.boxed()
    });
    Ok((size, window::read(rx, size, fallback, Box::new(flight))))
}

/// Waits until the flight stored the blob (or failed).
pub(crate) async fn stored(flight: &Flight) -> Result<()> {
    window::stored(flight.window.clone()).await.map_err(|m| failed(&m))
}
