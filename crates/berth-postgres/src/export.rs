//! Copying a cluster's PostgreSQL metadata into an SQLite database file (`berth backup` of a
//! cluster): the reverse of [`crate::import`], so a cluster's backup has the embedded
//! default's format (a `berth.db` beside the objects). It restores into a data directory as it
//! is, or into a fresh PostgreSQL + bucket through the import.
//!
//! Consistent: every table is read in one `REPEATABLE READ, READ ONLY` transaction, so the file
//! holds the database as of one instant while the nodes go on writing. Generic over the schema
//! as the import is: the SQLite schema at the same version is created by the SQLite store's own
//! migrations, then every table but [`NOT_COPIED`] is filled column by column, each value
//! converted by PostgreSQL's type for the column (BOOLEAN becomes 0/1, BYTEA a BLOB). The file
//! is written aside and renamed into place only when whole.

use std::path::Path;

use berth_store::{SqliteMetadataStore, StoreError};
use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, Row, SqliteConnection};

use crate::db::DbContext;
use crate::import::{check_ident, connect, postgres_columns, sql_err, Column, Kind, NOT_COPIED};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub schema_version: i64,
    /// Rows written per table, in the order they were written.
    pub tables: Vec<(String, u64)>,
}

/// A value as SQLite stores it.
enum SqliteValue {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

/// Writes the PostgreSQL metadata at `pg_url` into a new SQLite database at `path` (which must
/// not exist yet). `progress(table, rows)` is called after each table.
///
/// Runs on a blocking thread of its own: a long batch job, and one whose future the compiler
/// cannot prove `Send` through sqlx's higher-ranked executor bounds (rust-lang/rust#102211), so
/// it is driven there with `block_on` rather than spawned.
pub async fn export_to_sqlite(
    pg_url: &str,
    path: &Path,
    progress: impl Fn(&str, u64) + Send + 'static,
) -> Result<ExportReport, StoreError> {
    let (pg_url, path) = (pg_url.to_string(), path.to_path_buf());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(export(&pg_url, &path, progress)))
        .await
        .map_err(|e| StoreError::io("exporting metadata", std::io::Error::other(e)))?
}

async fn export(pg_url: &str, path: &Path, progress: impl Fn(&str, u64)) -> Result<ExportReport, StoreError> {
    if path.exists() {
        return Err(mismatch(format!("{} already exists: an export writes a new database", path.display())));
    }
    let partial = path.with_extension("partial");
    remove_database_files(&partial)?;
    let result = export_into(pg_url, &partial, &progress).await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = remove_database_files(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, path).map_err(|e| StoreError::io(format!("renaming {} into place", partial.display()), e))?;
    Ok(report)
}

async fn export_into(pg_url: &str, partial: &Path, progress: &impl Fn(&str, u64)) -> Result<ExportReport, StoreError> {
    // The schema (tables, indexes, triggers, user_version) as the SQLite store creates it.
    SqliteMetadataStore::open(partial).await?.close().await;
    let opts =
        SqliteConnectOptions::new().filename(partial).foreign_keys(false).journal_mode(SqliteJournalMode::Wal).pragma("synchronous", "OFF");
    let mut out = SqliteConnection::connect_with(&opts).await.ctx("opening the SQLite database being written")?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut out).await.ctx("reading the SQLite schema version")?;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
            .fetch_all(&mut out)
            .await
            .ctx("listing the SQLite tables")?;

    let mut pg = connect(pg_url).await?;
    let mut snapshot = pg.begin().await.ctx("starting the snapshot transaction")?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await
        .ctx("making the snapshot transaction repeatable-read")?;
    let pg_version: i64 =
        sqlx::query_scalar("SELECT version FROM berth_schema_version").fetch_one(&mut *snapshot).await.ctx("reading the schema version")?;
    if pg_version != version {
        return Err(mismatch(format!(
            "the cluster's database is at schema version {pg_version}, this berth writes version {version}: back it up with the berth release the nodes run"
        )));
    }

    let mut report = ExportReport { schema_version: version, tables: Vec::new() };
    let mut tx = out.begin().await.ctx("starting the SQLite transaction")?;
    for table in tables {
        check_ident(&table)?;
        if NOT_COPIED.iter().any(|(t, _)| *t == table) {
            continue;
        }
        let columns = postgres_columns(&mut snapshot, &table).await?;
        check_same_columns(&mut tx, &table, &columns).await?;
        // Nothing the schema's creation may have put there stays beside the copied rows.
        sqlx::query(&format!("DELETE FROM \"{table}\"")).execute(&mut *tx).await.map_err(|e| sql_err(format!("emptying {table}"), e))?;
        let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
        let params: Vec<&str> = columns.iter().map(|_| "?").collect();
        let insert = format!("INSERT INTO \"{table}\" ({}) VALUES ({})", names.join(", "), params.join(", "));
        let select = format!("SELECT {} FROM \"{table}\"", names.join(", "));
        let mut rows = sqlx::query(&select).fetch(&mut *snapshot);
        let mut n = 0u64;
        while let Some(row) = rows.try_next().await.map_err(|e| sql_err(format!("reading the rows of {table}"), e))? {
            let mut q = sqlx::query(&insert);
            for (i, col) in columns.iter().enumerate() {
                q = match read(&row, i, col, &table)? {
                    SqliteValue::Int(v) => q.bind(v),
                    SqliteValue::Real(v) => q.bind(v),
                    SqliteValue::Text(v) => q.bind(v),
                    SqliteValue::Blob(v) => q.bind(v),
                };
            }
            q.execute(&mut *tx).await.map_err(|e| sql_err(format!("writing a row of {table}"), e))?;
            n += 1;
        }
        drop(rows);
        progress(&table, n);
        report.tables.push((table, n));
    }
    // The snapshot satisfied every foreign key; checked again, cheaply, in the copy.
    let broken: Vec<(String,)> =
        sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check").fetch_all(&mut *tx).await.ctx("checking foreign keys")?;
    if let Some((table,)) = broken.first() {
        return Err(mismatch(format!("{} row(s) of the copy break a foreign key (first in {table})", broken.len())));
    }
    tx.commit().await.ctx("committing the SQLite copy")?;
    snapshot.rollback().await.ctx("ending the snapshot transaction")?;
    let _ = pg.close().await;
    // One self-contained file: the WAL folded in and switched off, then synced.
    sqlx::query("PRAGMA journal_mode = DELETE").execute(&mut out).await.ctx("folding the WAL into the database")?;
    out.close().await.ctx("closing the SQLite copy")?;
    std::fs::File::open(partial).and_then(|f| f.sync_all()).map_err(|e| StoreError::io(format!("syncing {}", partial.display()), e))?;
    Ok(report)
}

async fn check_same_columns(out: &mut SqliteConnection, table: &str, columns: &[Column]) -> Result<(), StoreError> {
    let mut sqlite: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .fetch_all(&mut *out)
        .await
        .map_err(|e| sql_err(format!("reading the SQLite columns of {table}"), e))?;
    let mut pg: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    sqlite.sort();
    pg.sort();
    if sqlite != pg {
        return Err(mismatch(format!("table {table} differs: PostgreSQL has columns {pg:?}, SQLite {sqlite:?}")));
    }
    Ok(())
}

/// Column `i` of a PostgreSQL row as SQLite stores it.
fn read(row: &PgRow, i: usize, col: &Column, table: &str) -> Result<SqliteValue, StoreError> {
    let bad = |e: sqlx::Error| sql_err(format!("reading {table}.{}", col.name), e);
    Ok(match col.kind {
        Kind::Bool => SqliteValue::Int(row.try_get::<Option<bool>, _>(i).map_err(bad)?.map(i64::from)),
        Kind::Int2 => SqliteValue::Int(row.try_get::<Option<i16>, _>(i).map_err(bad)?.map(i64::from)),
        Kind::Int4 => SqliteValue::Int(row.try_get::<Option<i32>, _>(i).map_err(bad)?.map(i64::from)),
        Kind::Int8 => SqliteValue::Int(row.try_get::<Option<i64>, _>(i).map_err(bad)?),
        Kind::Float8 => SqliteValue::Real(row.try_get(i).map_err(bad)?),
        Kind::Text => SqliteValue::Text(row.try_get(i).map_err(bad)?),
        Kind::Bytes => SqliteValue::Blob(row.try_get(i).map_err(bad)?),
    })
}

fn mismatch(msg: String) -> StoreError {
    StoreError::io("exporting metadata", std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

fn remove_database_files(path: &Path) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = format!("{}{suffix}", path.display());
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(format!("removing {p}"), e)),
        }
    }
    Ok(())
}
