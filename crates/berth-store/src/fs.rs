//! Blob storage on a local filesystem.
//!
//! Layout under the root (the one place it is written down):
//! ```text
//! <root>/
//!   blobs/
//!     sha256/<first two hex>/<hex>     committed blobs, read-only once renamed here
//!     sha512/<first two hex>/<hex>
//!   uploads/
//!     <session uuid>                   append-only data of an open upload session
//!   quarantine/
//!     sha256/<hex>                     a blob whose bytes no longer matched its digest
//!   sealed/                            the same layout again for encrypted objects (berth-core's
//!                                      sealing), named by sha256(scope, digest), not by their bytes
//! ```
//! A commit fsyncs the upload file, renames it into `blobs/…` and fsyncs the
//! directory, so a blob path exists only for complete, verified, durable
//! content. Session ids and digests are validated before they reach a path.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::fs::{self, File, OpenOptions};
use tokio_util::io::ReaderStream;

use crate::blob::{BlobRange, BlobReader, BlobStore, ByteStream, UploadCursor};
use crate::{Algorithm, Digest, StoreError};

const READ_CHUNK: usize = 256 * 1024;
const WRITE_QUEUE: usize = 32;
const WRITE_BUFFER: usize = 1024 * 1024;

pub struct FsBlobStore {
    root: PathBuf,
    /// Downloads come as buffers of their own (pread) rather than mapped page-cache frames:
    /// for objects their reader rewrites in place (see `namespace`).
    owned_frames: bool,
}

impl FsBlobStore {
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("blobs/sha512"), root.join("uploads")] {
            fs::create_dir_all(&dir).await.map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        }
        Ok(FsBlobStore { root, owned_frames: false })
    }

    /// The store at `root` without touching the disk: directories are made on first write.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        FsBlobStore { root: root.into(), owned_frames: false }
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs").join(digest.algorithm().name()).join(&hex[..2]).join(hex)
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        // Session ids are UUIDs minted by the service; anything else never reaches the disk.
        if id.len() != 36 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StoreError::UploadNotFound(id.to_string()));
        }
        Ok(self.root.join("uploads").join(id))
    }
}

async fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = File::open(dir).await.map_err(|e| StoreError::io(format!("opening {}", dir.display()), e))?;
    d.sync_all().await.map_err(|e| StoreError::io(format!("fsync {}", dir.display()), e))
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn create_upload(&self, id: &str) -> Result<UploadCursor, StoreError> {
        let path = self.upload_path(id)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let created = match options.open(&path).await {
            // A namespace store (`at`) makes its directories on first use.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = self.root.join("uploads");
                fs::create_dir_all(&dir).await.map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
                options.open(&path).await
            }
            other => other,
        };
        created.map_err(|e| StoreError::io(format!("creating upload {id}"), e))?;
        Ok(UploadCursor::default())
    }

    async fn upload_len(&self, id: &str, _cursor: &UploadCursor) -> Result<Option<u64>, StoreError> {
        let path = self.upload_path(id)?;
        let meta = not_found_is_none(fs::metadata(&path).await).map_err(|e| StoreError::io(format!("stat upload {id}"), e))?;
        Ok(meta.map(|m| m.len()))
    }

    async fn append_upload(&self, id: &str, cursor: &UploadCursor, mut data: ByteStream) -> Result<UploadCursor, StoreError> {
        let offset = cursor.len;
        let path = self.upload_path(id)?;
        // Writes run on a blocking thread fed through a small bounded channel: the network
        // side (and the caller's hashing) runs concurrently with the disk, memory stays bounded
        // (WRITE_QUEUE chunks), and there is no thread-pool hop per write as with tokio::fs.
        // The file is opened there too, so no blocking call runs on the async side; whether it
        // opened comes back first, before any data is taken from the client.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(WRITE_QUEUE);
        let (opened_tx, opened) = tokio::sync::oneshot::channel::<Result<(), StoreError>>();
        let upload = id.to_string();
        let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
            use std::io::{Seek, Write};
            let open = || -> Result<std::fs::File, StoreError> {
                let file = match std::fs::OpenOptions::new().write(true).open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::UploadNotFound(upload.clone())),
                    Err(e) => return Err(StoreError::io(format!("opening upload {upload}"), e)),
                };
                let current = file.metadata().map_err(|e| StoreError::io(format!("stat upload {upload}"), e))?.len();
                if current != offset {
                    return Err(StoreError::OffsetMismatch { requested: offset, current });
                }
                Ok(file)
            };
            let mut file = match open() {
                Ok(f) => {
                    let _ = opened_tx.send(Ok(()));
                    f
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    return Ok(offset);
                }
            };
            file.seek(SeekFrom::Start(offset))?;
            let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
            let mut written = offset;
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
            }
            out.flush()?;
            Ok(written)
        });
        match opened.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(StoreError::io(format!("opening upload {id}"), io::Error::other("the writer thread stopped"))),
        }
        let mut receive_error = None;
        while let Some(chunk) = data.next().await {
            match chunk {
                Ok(c) => {
                    if tx.send(c).await.is_err() {
                        break; // the writer stopped on an error; it is reported below
                    }
                }
                Err(e) => {
                    receive_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let written = writer.await.map_err(|e| StoreError::io(format!("writing upload {id}"), io::Error::other(e.to_string())))?;
        let written = written.map_err(|e| StoreError::io(format!("writing upload {id}"), e))?;
        match receive_error {
            // What arrived is intact on disk, so the client can resume from the reported offset.
            Some(e) => Err(StoreError::io(format!("receiving data for upload {id} (kept {written} bytes)"), e)),
            None => Ok(UploadCursor { len: written, state: Vec::new() }),
        }
    }

    async fn read_upload(&self, id: &str, _cursor: &UploadCursor) -> Result<Option<ByteStream>, StoreError> {
        let path = self.upload_path(id)?;
        let file = match File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::UploadNotFound(id.to_string())),
            Err(e) => return Err(StoreError::io(format!("opening upload {id}"), e)),
        };
        Ok(Some(ReaderStream::with_capacity(file, READ_CHUNK).boxed()))
    }

    async fn commit_upload(&self, id: &str, _cursor: &UploadCursor, digest: &Digest) -> Result<(), StoreError> {
        let src = self.upload_path(id)?;
        let file = match File::open(&src).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::UploadNotFound(id.to_string())),
            Err(e) => return Err(StoreError::io(format!("opening upload {id}"), e)),
        };
        file.sync_all().await.map_err(|e| StoreError::io(format!("fsync upload {id}"), e))?;
        drop(file);
        let dst = self.blob_path(digest);
        let parent = dst.parent().expect("blob path has a parent");
        fs::create_dir_all(parent).await.map_err(|e| StoreError::io(format!("creating {}", parent.display()), e))?;
        // Same content under the same name: replacing an existing blob is harmless,
        // and rename is atomic, so readers see the old or the new file, both complete.
        fs::rename(&src, &dst).await.map_err(|e| StoreError::io(format!("committing upload {id} as {digest}"), e))?;
        fsync_dir(parent).await?;
        fsync_dir(&self.root.join("uploads")).await
    }

    async fn delete_upload(&self, id: &str, _cursor: Option<&UploadCursor>) -> Result<(), StoreError> {
        let path = self.upload_path(id)?;
        not_found_is_none(fs::remove_file(&path).await).map_err(|e| StoreError::io(format!("removing upload {id}"), e))?;
        Ok(())
    }

    async fn list_uploads(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.root.join("uploads");
        let mut rd = match fs::read_dir(&dir).await {
            Ok(rd) => rd,
            // A namespace store that has not been written to yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("listing uploads", e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = rd.next_entry().await.map_err(|e| StoreError::io("listing uploads", e))? {
            if let Some(name) = entry.file_name().to_str() {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let meta =
            not_found_is_none(fs::metadata(self.blob_path(digest)).await).map_err(|e| StoreError::io(format!("stat blob {digest}"), e))?;
        Ok(meta.map(|m| m.len()))
    }

    async fn get(&self, digest: &Digest, range: Option<BlobRange>) -> Result<Option<BlobReader>, StoreError> {
        // The open and stat are the only blocking calls, made on the pool; the bytes then come
        // straight from the page cache (see fs_read for why, and for what keeps that safe).
        let path = self.blob_path(digest);
        let what = digest.to_string();
        let opened = tokio::task::spawn_blocking(move || -> Result<Option<(std::fs::File, u64)>, StoreError> {
            let Some(file) =
                not_found_is_none(std::fs::File::open(&path)).map_err(|e| StoreError::io(format!("opening blob {what}"), e))?
            else {
                return Ok(None);
            };
            let size = file.metadata().map_err(|e| StoreError::io(format!("stat blob {what}"), e))?.len();
            crate::fs_read::advise_sequential(&file);
            Ok(Some((file, size)))
        })
        .await
        .map_err(|e| StoreError::io(format!("opening blob {digest}"), io::Error::other(e.to_string())))??;
        let Some((file, size)) = opened else { return Ok(None) };
        let (start, len) = match range {
            Some(r) => (r.start, r.end_inclusive - r.start + 1),
            None => (0, size),
        };
        let body = match self.owned_frames {
            true => crate::fs_read::owned(file, size, start, len),
            false => crate::fs_read::mapped(file, size, start, len),
        };
        Ok(Some(BlobReader { len, body }))
    }

    async fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        let removed = not_found_is_none(fs::remove_file(self.blob_path(digest)).await)
            .map_err(|e| StoreError::io(format!("removing blob {digest}"), e))?;
        Ok(removed.is_some())
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool, StoreError> {
        let dir = self.root.join("quarantine").join(digest.algorithm().name());
        fs::create_dir_all(&dir).await.map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let src = self.blob_path(digest);
        let moved = not_found_is_none(fs::rename(&src, dir.join(digest.hex())).await)
            .map_err(|e| StoreError::io(format!("quarantining blob {digest}"), e))?;
        if moved.is_none() {
            return Ok(false);
        }
        fsync_dir(&dir).await?;
        if let Some(parent) = src.parent() {
            fsync_dir(parent).await?;
        }
        Ok(true)
    }

    async fn list_quarantined(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("quarantine").join(alg.name());
            let Some(mut files) = not_found_is_none(fs::read_dir(&dir).await).map_err(|e| StoreError::io("listing quarantine", e))? else {
                continue;
            };
            while let Some(f) = files.next_entry().await.map_err(|e| StoreError::io("listing quarantine", e))? {
                if let Some(Ok(d)) = f.file_name().to_str().map(|name| format!("{}:{name}", alg.name()).parse()) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    async fn list_blobs(&self) -> Result<Vec<Digest>, StoreError> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let base = self.root.join("blobs").join(alg.name());
            let mut shards = match fs::read_dir(&base).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("listing blobs", e)),
            };
            while let Some(shard) = shards.next_entry().await.map_err(|e| StoreError::io("listing blobs", e))? {
                let mut files = fs::read_dir(shard.path()).await.map_err(|e| StoreError::io("listing blobs", e))?;
                while let Some(f) = files.next_entry().await.map_err(|e| StoreError::io("listing blobs", e))? {
                    if let Some(name) = f.file_name().to_str() {
                        if let Ok(d) = format!("{}:{}", alg.name(), name).parse() {
                            out.push(d);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn namespace(&self, name: &str) -> Option<std::sync::Arc<dyn BlobStore>> {
        // A namespace holds encrypted objects, which are decrypted in place as they are read: a
        // mapped frame is shared and read-only, so each would be copied before decryption; a
        // pread into a buffer of its own is one copy and no page-table work.
        Some(std::sync::Arc::new(FsBlobStore { root: self.root.join(name), owned_frames: true }))
    }
}
