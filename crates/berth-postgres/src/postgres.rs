//! The store itself: connecting, migrations, and the `MetadataStore` impl, which
//! delegates each method to the file of its concern.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use berth_store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::db::DbContext;

/// The schema this build writes (and the newest it reads).
pub const SCHEMA_VERSION: i64 = 16;
const SCHEMA: [(i64, &str, &str); 16] = [
    (1, include_str!("postgres_schema.sql"), "creating schema v1"),
    (2, include_str!("postgres_schema_v2.sql"), "migrating to schema v2"),
    (3, include_str!("postgres_schema_v3.sql"), "migrating to schema v3"),
    (4, include_str!("postgres_schema_v4.sql"), "migrating to schema v4"),
    (5, include_str!("postgres_schema_v5.sql"), "migrating to schema v5"),
    (6, berth_store::sql::keys::SCHEMA_V6, "migrating to schema v6"),
    (7, include_str!("postgres_schema_v7.sql"), "migrating to schema v7"),
    (8, include_str!("postgres_schema_v8.sql"), "migrating to schema v8"),
    (9, include_str!("postgres_schema_v9.sql"), "migrating to schema v9"),
    (10, include_str!("postgres_schema_v10.sql"), "migrating to schema v10"),
    (11, include_str!("postgres_schema_v11.sql"), "migrating to schema v11"),
    (12, include_str!("postgres_schema_v12.sql"), "migrating to schema v12"),
    (13, include_str!("postgres_schema_v13.sql"), "migrating to schema v13"),
    (14, include_str!("postgres_schema_v14.sql"), "migrating to schema v14"),
    (15, include_str!("postgres_schema_v15.sql"), "migrating to schema v15"),
    (16, include_str!("postgres_schema_v16.sql"), "migrating to schema v16"),
];
/// Advisory lock key (two-int form, so it never meets a blob lock's bigint key) serializing
/// migrations of nodes that start at the same time.
const MIGRATION_LOCK: (i32, i32) = (0x6265_7274, 1); // "bert", 1

/// How long one store call may take (and, on the server, one statement) when the operator does
/// not say: a primary that stops answering turns into 503s after this long, not after TCP gives up.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// Requests fail after this long without a connection instead of queueing forever behind an
/// unreachable database (or sooner, when the query deadline is shorter).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 16;
/// Blob locks hold a connection for a whole commit (fsync + rename + link): they get their own
/// pool so that lock holders can never starve the queries they still have to run, and a longer
/// wait, since a holder releases as soon as its commit is done.
const LOCK_CONNECTIONS: u32 = 16;
const LOCK_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Taking a blob lock waits for the holder's commit (an S3 multipart completion can take a
/// while), so it gets this many query deadlines.
const LOCK_WAIT_FACTOR: u32 = 4;
/// The call's deadline runs this much longer than the server's `statement_timeout`: a server
/// that still answers cancels the statement itself (57014) and the connection stays usable;
/// only a server that does not answer at all meets the client-side deadline.
const CLIENT_MARGIN: Duration = Duration::from_secs(1);

pub struct PostgresMetadataStore {
    pub(crate) pool: PgPool,
    pub(crate) locks: PgPool,
    deadline: Duration,
    lock_deadline: Duration,
}

/// What a call that met its deadline reports: the database is unavailable (503), not broken.
fn timed_out(context: &'static str, after: Duration) -> StoreError {
    StoreError::Unavailable {
        what: berth_store::error::METADATA_DATABASE,
        detail: format!("{context}: no answer from PostgreSQL within {} ms", after.as_millis()),
    }
}

/// A pool whose connections carry the server-side deadlines and are closed, not reused, when
/// they do not answer on release: sqlx pings each connection it gets back (which drains what an
/// abandoned query left behind), but without a timeout, so against a black-holed server the
/// ping would hold the pool slot until TCP gives up.
fn pool(opts: PgConnectOptions, size: u32, acquire: Duration, statement: Duration, idle_in_transaction: Option<Duration>) -> PgPool {
    let settings = format!(
        "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
        statement.as_millis(),
        idle_in_transaction.map_or(0, |d| d.as_millis()),
    );
    let ping_within = statement;
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire)
        .idle_timeout(Duration::from_secs(300))
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                // Two statements: the simple-query protocol, which `&str` executes with.
                sqlx::Executor::execute(conn, settings.as_str()).await?;
                Ok(())
            })
        })
        .after_release(move |conn, _| {
            Box::pin(async move {
                match tokio::time::timeout(ping_within, conn.ping()).await {
                    Ok(answer) => answer.map(|()| true),
                    // An error closes the connection without another word to the server.
                    Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "PostgreSQL did not answer a released connection's ping; closing it",
                    ))),
                }
            })
        })
        .connect_lazy_with(opts)
}

impl PostgresMetadataStore {
    /// `connect_with_deadline` with the default deadline.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_deadline(url, DEFAULT_QUERY_TIMEOUT).await
    }

    /// Connects (once, to report a wrong address or password right away), brings the schema up
    /// to date, then serves from lazily filled pools. The URL's password never appears in errors
    /// or logs: a malformed URL is reported without its text.
    ///
    /// Every store call then has `deadline`: the server cancels a statement running longer
    /// (`statement_timeout`) and ends a session idle inside a transaction that long, and the
    /// call itself gives up shortly after; either is `StoreError::Unavailable`.
    pub async fn connect_with_deadline(url: &str, deadline: Duration) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::Db {
            context: "reading the PostgreSQL URL",
            source: sqlx::Error::Configuration("expected postgres://user:password@host:port/database".into()),
        })?;
        let deadline = deadline.max(Duration::from_millis(1));
        let connect_within = ACQUIRE_TIMEOUT.max(deadline);
        let mut conn = tokio::time::timeout(connect_within, opts.connect())
            .await
            .map_err(|_| timed_out("connecting to PostgreSQL", connect_within))?
            .ctx("connecting to PostgreSQL")?;
        migrate(&mut conn).await?;
        // Best effort: the migration is committed whatever happens to this connection now.
        let _ = conn.close().await;
        tracing::info!(host = opts.get_host(), port = opts.get_port(), database = ?opts.get_database(), deadline_ms = deadline.as_millis(), "PostgreSQL metadata store ready");
        let lock_wait = deadline.saturating_mul(LOCK_WAIT_FACTOR);
        // Lock holders sit idle inside their transaction on purpose (the commit runs meanwhile),
        // so only the query pool ends idle transactions.
        let pool = pool(opts.clone(), MAX_CONNECTIONS, ACQUIRE_TIMEOUT.min(deadline), deadline, Some(deadline));
        let locks = pool_for_locks(opts, lock_wait);
        Ok(PostgresMetadataStore { pool, locks, deadline: deadline + CLIENT_MARGIN, lock_deadline: lock_wait + CLIENT_MARGIN })
    }

    /// One store call within the query deadline.
    pub(crate) async fn timed<T>(&self, context: &'static str, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        within(self.deadline, context, call).await
    }

    /// Taking a blob lock, which may wait for another node's commit.
    pub(crate) async fn timed_lock<T>(
        &self,
        context: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.lock_deadline, context, call).await
    }
}

fn pool_for_locks(opts: PgConnectOptions, lock_wait: Duration) -> PgPool {
    pool(opts, LOCK_CONNECTIONS, LOCK_ACQUIRE_TIMEOUT.min(lock_wait), lock_wait, None)
}

/// Dropping a call that met its deadline drops its connection mid-query; the pool's release
/// check (see `pool`) then either drains it or closes it, so it never serves another call in an
/// unknown state.
async fn within<T>(deadline: Duration, context: &'static str, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(context, deadline)),
    }
}

async fn migrate(conn: &mut PgConnection) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.ctx("starting migration")?;
    // Held until commit: a second node starting now waits here, then finds the schema current.
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(MIGRATION_LOCK.0)
        .bind(MIGRATION_LOCK.1)
        .execute(&mut *tx)
        .await
        .ctx("locking for migration")?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS berth_schema_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .ctx("creating schema version table")?;
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM berth_schema_version").fetch_optional(&mut *tx).await.ctx("reading schema version")?;
    let version = version.unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found: version, supported: SCHEMA_VERSION });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for (v, sql, context) in SCHEMA {
        if version < v {
            sqlx::raw_sql(sql).execute(&mut *tx).await.ctx(context)?;
        }
    }
    sqlx::query(
        "INSERT INTO berth_schema_version (one, version) VALUES (TRUE, $1) ON CONFLICT (one) DO UPDATE SET version = excluded.version",
    )
    .bind(SCHEMA_VERSION)
    .execute(&mut *tx)
    .await
    .ctx("recording schema version")?;
    tx.commit().await.ctx("committing migration")
}
