//! Metadata in an embedded SQLite database (WAL, synchronous=FULL).
//!
//! Writes go through a pool of one connection, so write transactions never
//! contend with each other inside the process (no SQLITE_BUSY on lock
//! upgrade); reads use a separate pool and see the last committed state.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::error::DbContext;
use crate::StoreError;

mod audit;
mod cluster;
mod content;
mod identity;
mod keys;
mod lifecycle;
mod public;
mod pull_through;
mod replication;
mod repos;
mod scans;
mod secrets;
mod settings;
mod templates;
mod webhooks;

/// The schema this build writes (and the newest it reads).
pub const SCHEMA_VERSION: i64 = 16;
const SCHEMA_V1: &str = include_str!("sqlite_schema.sql");
const SCHEMA_V2: &str = include_str!("sqlite_schema_v2.sql");
const SCHEMA_V3: &str = include_str!("sqlite_schema_v3.sql");
const SCHEMA_V4: &str = include_str!("sqlite_schema_v4.sql");
const SCHEMA_V5: &str = include_str!("sqlite_schema_v5.sql");
const SCHEMA_V6: &str = crate::sql::keys::SCHEMA_V6;
/// Not shared with PostgreSQL: there the columns compare in byte order (`COLLATE "C"`), a
/// collation SQLite does not know (its BINARY default already is byte order).
const SCHEMA_V7: &str = include_str!("sqlite_schema_v7.sql");
const SCHEMA_V8: &str = include_str!("sqlite_schema_v8.sql");
const SCHEMA_V9: &str = include_str!("sqlite_schema_v9.sql");
const SCHEMA_V10: &str = include_str!("sqlite_schema_v10.sql");
const SCHEMA_V11: &str = include_str!("sqlite_schema_v11.sql");
const SCHEMA_V12: &str = include_str!("sqlite_schema_v12.sql");
const SCHEMA_V13: &str = include_str!("sqlite_schema_v13.sql");
const SCHEMA_V14: &str = include_str!("sqlite_schema_v14.sql");
const SCHEMA_V15: &str = include_str!("sqlite_schema_v15.sql");
const SCHEMA_V16: &str = include_str!("sqlite_schema_v16.sql");

pub struct SqliteMetadataStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

impl SqliteMetadataStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // A multi-row INSERT keeps a statement journal (to undo a half-done statement):
            // in memory, not a temporary file per statement.
            .pragma("temp_store", "memory")
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        // Whether the writer connection may serve the next write, checked whenever it is released. A COMMIT that failed (a full disk,
        // an I/O error) can leave SQLite inside the transaction, or roll it back behind sqlx's back so
        // that sqlx's own depth counter stays raised; either way the next "transaction" would be a
        // savepoint inside one that never commits, and every write after it would be acknowledged and
        // lost. Such a connection is closed (SQLite rolls back on close) and the pool opens a new one.
        // The probe is a deferred BEGIN/ROLLBACK pair, which touches no page of the database.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(120))
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection as _;
                    // Runs after any rollback that dropping a transaction queued.
                    if sqlx::Executor::execute(&mut *conn, "BEGIN").await.is_err() {
                        tracing::warn!("closing the database writer connection: SQLite is still inside a transaction");
                        return Ok(false);
                    }
                    sqlx::Executor::execute(&mut *conn, "ROLLBACK").await?;
                    if conn.is_in_transaction() {
                        tracing::warn!("closing the database writer connection: its transaction count is out of step");
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect_with(opts.clone())
            .await
            .ctx("opening database for writing")?;
        Self::migrate(&writer).await?;
        let reader =
            SqlitePoolOptions::new().max_connections(8).connect_with(opts.read_only(true)).await.ctx("opening database for reading")?;
        Ok(SqliteMetadataStore { writer, reader })
    }

    /// Writes a consistent copy of the whole database as of one instant to `path`, which must
    /// not exist (SQLite's `VACUUM INTO`: one read transaction, so writers carry on meanwhile;
    /// the copy is compact and complete, with no WAL beside it).
    pub async fn snapshot_into(&self, path: &Path) -> Result<(), StoreError> {
        let target = path.to_str().ok_or_else(|| {
            StoreError::io(path.display().to_string(), std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a UTF-8 path"))
        })?;
        sqlx::query("VACUUM INTO ?").bind(target).execute(&self.reader).await.ctx("writing a snapshot of the database")?;
        Ok(())
    }

    /// Opens a database another process may be writing (a serving berth's), to read it and
    /// take snapshots of it: read-only, no migration, never a writer beside the server's.
    pub async fn open_live_read_only(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new().filename(path).read_only(true).busy_timeout(Duration::from_secs(30));
        Self::read_only(opts).await
    }

    /// Opens a snapshot (`snapshot_into`'s output) to read it, changing nothing: no journal mode
    /// switch, no migration, no `-wal` file beside it.
    pub async fn open_snapshot(path: &Path) -> Result<Self, StoreError> {
        Self::read_only(SqliteConnectOptions::new().filename(path).read_only(true).immutable(true)).await
    }

    async fn read_only(opts: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(opts).await.ctx("opening a database to read")?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&pool).await.ctx("reading schema version")?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
        }
        Ok(SqliteMetadataStore { writer: pool.clone(), reader: pool })
    }

    /// Closes the connections (a snapshot opened to be read is then a single file again).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
        let mut tx = pool.begin().await.ctx("starting migration")?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await.ctx("reading schema version")?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
        }
        // Up to date: write nothing. A `berth admin` command opening the database beside a
        // serving berth must not need the write lock (a deferred transaction that writes after
        // the server committed fails at once with "database is locked", whatever the timeout).
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        if version < 1 {
            sqlx::raw_sql(SCHEMA_V1).execute(&mut *tx).await.ctx("creating schema v1")?;
        }
        if version < 2 {
            sqlx::raw_sql(SCHEMA_V2).execute(&mut *tx).await.ctx("migrating to schema v2")?;
        }
        if version < 3 {
            sqlx::raw_sql(SCHEMA_V3).execute(&mut *tx).await.ctx("migrating to schema v3")?;
        }
        if version < 4 {
            sqlx::raw_sql(SCHEMA_V4).execute(&mut *tx).await.ctx("migrating to schema v4")?;
        }
        if version < 5 {
            sqlx::raw_sql(SCHEMA_V5).execute(&mut *tx).await.ctx("migrating to schema v5")?;
        }
        if version < 6 {
            sqlx::raw_sql(SCHEMA_V6).execute(&mut *tx).await.ctx("migrating to schema v6")?;
        }
        if version < 7 {
            sqlx::raw_sql(SCHEMA_V7).execute(&mut *tx).await.ctx("migrating to schema v7")?;
        }
        if version < 8 {
            sqlx::raw_sql(SCHEMA_V8).execute(&mut *tx).await.ctx("migrating to schema v8")?;
        }
        if version < 9 {
            sqlx::raw_sql(SCHEMA_V9).execute(&mut *tx).await.ctx("migrating to schema v9")?;
        }
        if version < 10 {
            sqlx::raw_sql(SCHEMA_V10).execute(&mut *tx).await.ctx("migrating to schema v10")?;
        }
        if version < 11 {
            sqlx::raw_sql(SCHEMA_V11).execute(&mut *tx).await.ctx("migrating to schema v11")?;
        }
        if version < 12 {
            sqlx::raw_sql(SCHEMA_V12).execute(&mut *tx).await.ctx("migrating to schema v12")?;
        }
        if version < 13 {
            sqlx::raw_sql(SCHEMA_V13).execute(&mut *tx).await.ctx("migrating to schema v13")?;
        }
        if version < 14 {
            sqlx::raw_sql(SCHEMA_V14).execute(&mut *tx).await.ctx("migrating to schema v14")?;
        }
        if version < 15 {
            sqlx::raw_sql(SCHEMA_V15).execute(&mut *tx).await.ctx("migrating to schema v15")?;
        }
        if version < 16 {
            sqlx::raw_sql(SCHEMA_V16).execute(&mut *tx).await.ctx("migrating to schema v16")?;
        }
        sqlx::raw_sql(&format!("PRAGMA user_version = {SCHEMA_VERSION}")).execute(&mut *tx).await.ctx("recording schema version")?;
        tx.commit().await.ctx("committing migration")
    }
}
