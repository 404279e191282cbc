use thiserror::Error;

/// Failures of a storage backend. The registry service maps these to
/// protocol errors; the backend never decides what a client sees.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata database: {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("upload session {0} not found")]
    UploadNotFound(String),
    /// The caller asked to write at an offset that is not the current end.
    #[error("upload offset {requested} does not match current size {current}")]
    OffsetMismatch { requested: u64, current: u64 },
    #[error("metadata database schema version {found} is newer than this berth ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// A backend cannot be reached (database down, bucket unreachable): nothing was changed,
    /// and the request may be retried. `what` names the backend, `detail` says why (never a secret).
    #[error("{what} is unavailable: {detail}")]
    Unavailable { what: &'static str, detail: String },
}

/// What a full disk is called in `Unavailable`: the protocols say "<what> is unavailable".
pub const DISK_FULL: &str = "the data disk, which is full,";
/// What an unreachable metadata database is called in `Unavailable`.
pub const METADATA_DATABASE: &str = "the metadata database";
/// What an unreachable blob store (a bucket) is called in `Unavailable`.
pub const BLOB_STORAGE: &str = "blob storage";

impl StoreError {
    /// Which backend failed, as `berth_store_errors_total` labels it: `metadata` or `blobs` (an
    /// outage of the database or the blob store), `disk` (full), `other` (anything else: an
    /// internal storage error, a lost job lease, the cache listener).
    pub fn backend(&self) -> &'static str {
        match self {
            StoreError::Unavailable { what, .. } if *what == METADATA_DATABASE => "metadata",
            StoreError::Unavailable { what, .. } if *what == BLOB_STORAGE => "blobs",
            StoreError::Unavailable { what, .. } if *what == DISK_FULL => "disk",
            _ => "other",
        }
    }

    /// An I/O failure; a full disk (ENOSPC) is `Unavailable`: nothing was written, the client
    /// sees a 503 and may retry once space is freed.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        let context = context.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            return StoreError::Unavailable { what: DISK_FULL, detail: format!("{context}: {source}") };
        }
        StoreError::Io { context, source }
    }

    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Unavailable { what, .. } if *what == DISK_FULL)
    }
}

pub trait DbContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| db_error(context, source))
    }
}

/// A database error with what was being done; failures to reach the database at all become
/// `Unavailable` (clients see 503 and retry) rather than an internal error.
pub fn db_error(context: &'static str, source: sqlx::Error) -> StoreError {
    match source {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            StoreError::Unavailable { what: METADATA_DATABASE, detail: format!("{context}: {source}") }
        }
        // PostgreSQL going away or failing over: connection exceptions (class 08), shutdown
        // (57P01-57P03), a read-only standby answering for a demoted primary (25006), and a
        // statement cancelled at its deadline (57014, statement_timeout): the database is too
        // slow to answer now, which a retry may not meet.
        sqlx::Error::Database(ref db)
            if db.code().is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "57014" | "25006")) =>
        {
            StoreError::Unavailable { what: METADATA_DATABASE, detail: format!("{context}: {source}") }
        }
        // SQLITE_FULL: the database (or its WAL) could not grow. The transaction did not commit.
        sqlx::Error::Database(ref db) if db.code().is_some_and(|c| c == "13") => {
            StoreError::Unavailable { what: DISK_FULL, detail: format!("{context}: {source}") }
        }
        source => StoreError::Db { context, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_their_backend() {
        let outage = |what| StoreError::Unavailable { what, detail: "gone".into() };
        assert_eq!(outage(METADATA_DATABASE).backend(), "metadata");
        assert_eq!(outage(BLOB_STORAGE).backend(), "blobs");
        assert_eq!(StoreError::io("writing", std::io::Error::from_raw_os_error(28)).backend(), "disk");
        assert_eq!(StoreError::io("reading", std::io::Error::other("bad sector")).backend(), "other");
        assert_eq!(outage("this node's lease on the job").backend(), "other");
    }
}
