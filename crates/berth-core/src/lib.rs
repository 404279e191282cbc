//! The registry service: every rule of berth lives here once, independent
//! of HTTP and of storage. Adapters (`berth-oci`, later `berth-ecr`) parse
//! requests, call [`Registry`], and map [`RegistryError`] to their protocol.

pub mod account_settings;
pub mod addressing;
pub mod audit;
pub mod auth;
mod cache;
mod cache_feed;
pub mod clock;
mod cluster;
pub mod console_auth;
pub mod download_urls;
pub mod error;
pub mod events;
pub mod fsck;
pub mod gc;
pub mod hash_state;
pub mod images;
pub mod immutability;
pub mod integrity;
pub mod kms;
pub mod lifecycle;
mod locks;
pub mod manifest;
pub mod names;
pub mod observe;
pub mod operations;
pub mod public;
pub mod public_access;
pub mod pull_through;
mod pulls;
pub mod rate_limit;
mod registry;
pub mod replication;
pub mod repositories;
pub mod scanning;
mod sealing;
pub mod secrets;
pub mod supervisor;
pub mod templates;
mod uploads;

pub use berth_store::{BlobRange, BlobReader, ByteStream as BlobStream, Digest, DigestError};
pub use clock::{Clock, SystemClock};
pub use cluster::{JobLease, LEASE_LOST};
pub use error::{Invalid, MissingImage, Param, PullThroughRefusal, RegistryError};
pub use gc::{GcOptions, GcReport};
pub use integrity::{BlobCheck, IntegrityCounts, ScrubOptions, ScrubReport};
pub use manifest::{media_types, MAX_MANIFEST_BYTES};
pub use names::{Reference, RegistryRef, Repo, RepositoryName, Tag};
pub use pulls::PULL_RESOLUTION_MILLIS;
pub use registry::*;
pub use sealing::{object_name as sealed_object_name, EncryptProgress, EncryptReport};
pub use secrets::PullThroughCredentials;
pub use uploads::UploadStatus;
