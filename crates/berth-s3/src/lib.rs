//! Blob storage in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage), so that several
//! stateless berth nodes can share one bucket.
//!
//! Layout under `<prefix>/` (the one place it is written down):
//! ```text
//! <prefix>/
//!   uploads/<session id>/
//!     session                  marker: the session exists; JSON {"multipart": <S3 upload id>?}
//!     tail-<len>-<nonce>       bytes past the last full part, as of a cursor of length <len>
//!   data/<session id>          the blob's bytes: target of the session's multipart upload
//!                              (or a single PUT for a blob smaller than one part)
//!   blobs/<alg>/<hex>          pointer: JSON {"data": "data/<session id>", "size": <bytes>}
//!   quarantine/<alg>/<hex>     the pointer of a blob whose bytes stopped matching its digest
//! ```
//!
//! Why this shape:
//! - S3 has no rename, and the digest is known only after the last byte, so the bytes cannot
//!   be written under their content address. A server-side copy would double the I/O of every
//!   push. Instead the data stays at a key named by the session, and a small pointer object at
//!   the content address is written last: nothing is visible under a digest before its data is
//!   complete, and the pointer's PUT is the atomic commit.
//! - Uploads are S3 multipart uploads driven through [`object_store::multipart::MultipartStore`]
//!   so that the upload id and the part ETags can live in [`UploadCursor::state`](berth_store::UploadCursor::state). The service
//!   records the cursor after each append, so any node can continue a session.
//! - Parts must be at least 5 MiB (except the last), but an append can be any size. The bytes
//!   that do not fill a part yet are a `tail-…` object. Each append writes a *new* tail (named
//!   by length and a nonce) and only then removes the old one, so a failed append leaves the
//!   previous cursor fully usable, and two nodes racing on one session cannot overwrite each
//!   other's tail.
//! - An append keeps up to 4 parts in flight and reads no further while 4 are out, so memory
//!   per append is at most (4 + 1) × part size. Its cursor names the parts only once all
//!   are acknowledged (in order); a failed append waits out its requests and changes nothing.
//! - The cursor is authoritative: parts cannot be read back or listed portably, so the size
//!   and the parts come from the cursor; the `session` marker only says the session still
//!   exists. The marker also remembers the multipart upload id so that an orphaned session
//!   (found by listing, without a cursor) can still have its parts aborted.
//! - Pointers are immutable while they exist, so reads cache them (bounded); a cached pointer
//!   whose data has gone is dropped and read once more. `delete` removes the pointer first,
//!   then the data, so a reader never follows a pointer to half-deleted state for long.
//!
//! - A data object no pointer names (a commit that failed after completing it, two commits of
//!   one digest racing) is removed by `sweep_orphans` once it is older than the GC's grace
//!   and its session marker is gone.
//!
//! Bucket housekeeping worth configuring: an "abort incomplete multipart uploads after N days"
//! lifecycle rule catches parts of sessions that were never committed nor swept.

mod coalesce;
mod config;
mod local_cache;
mod store;

pub use config::{S3Config, DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE};
pub use local_cache::{HeldCopies, LocalCache, LocalCacheCounts};
pub use store::{bucket_client, S3BlobStore};
