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
}

impl StoreError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io { context: context.into(), source }
    }
}

pub(crate) trait DbContext<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> DbContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Db { context, source })
    }
}
