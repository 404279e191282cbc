//! Storage for berth: the two narrow interfaces the registry service writes
//! through, and their embedded backends.
//!
//! - [`BlobStore`] holds bytes: upload sessions (append-only temp objects)
//!   and content-addressed blobs that appear only when committed.
//! - [`MetadataStore`] holds rows: repositories, blob links, manifests, tags,
//!   upload sessions. Every change the service makes is one call, and every
//!   call is one transaction.
//!
//! Neither interface holds a registry rule; those live in `berth-core`.
//!
//! [`sql`] holds the statements both SQL backends run (this crate's SQLite store
//! and berth-postgres), written once.

pub mod blob;
pub mod digest;
pub mod error;
pub mod fs;
mod fs_read;
pub mod jobs;
pub mod keys;
pub mod meta;
pub mod sql;
pub mod sqlite;
mod sqlite_jobs;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod writeback;

pub use blob::{in_store_walk, store_walk, BlobRange, BlobReader, BlobStore, ByteStream, UploadCursor};
pub use digest::{Algorithm, Digest, DigestError, DigestHasher};
pub use error::StoreError;
pub use fs::FsBlobStore;
pub use jobs::{JobRow, JobStatus, JobStore};
pub use keys::{AliasRow, KeyRow, KeyStore};
pub use meta::*;
pub use sqlite::{SqliteMetadataStore, SCHEMA_VERSION as SQLITE_SCHEMA_VERSION};
