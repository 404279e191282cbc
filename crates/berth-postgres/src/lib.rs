//! PostgreSQL metadata store: the same rows and the same behaviour as
//! `berth_store::SqliteMetadataStore`, for several berth nodes sharing one
//! database.
//!
//! Concurrency: SQLite serializes every write through its single writer; here
//! several nodes run transactions at once. Write transactions run at READ
//! COMMITTED and take row locks (`FOR UPDATE`, `FOR KEY SHARE`) on exactly the
//! rows whose state a decision rests on, before re-reading that state in a new
//! statement (which, at READ COMMITTED, sees everything committed by then).
//! This was chosen over SERIALIZABLE: SSI's predicate locks are page-grained,
//! so small hot indexes (tags, repository_blobs) would abort unrelated
//! concurrent pushes and turn ordinary load into retries. Deadlocks between
//! lock orders (rare: an index push racing an expiry of two of its children)
//! are retried a few times (see `db::retrying`). The statements, and the locks
//! each method takes, are shared with SQLite and written beside each function of
//! `berth_store::sql`; this crate adds the dialect's retry, deadlines, advisory locks
//! and migrations.

mod db;
pub mod export;
pub mod import;
mod postgres;
mod postgres_audit;
mod postgres_cluster;
mod postgres_content;
mod postgres_identity;
mod postgres_jobs;
mod postgres_keys;
mod postgres_lifecycle;
mod postgres_notify;
mod postgres_public;
mod postgres_pull_through;
mod postgres_replication;
mod postgres_repos;
mod postgres_scans;
mod postgres_secrets;
mod postgres_settings;
mod postgres_templates;
mod postgres_webhooks;

pub use postgres::{PostgresMetadataStore, DEFAULT_QUERY_TIMEOUT, SCHEMA_VERSION};
