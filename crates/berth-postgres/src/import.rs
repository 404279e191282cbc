//! Copying an embedded install's SQLite metadata into PostgreSQL (`berth migrate`).
//!
//! The copy is generic over the schema: every table of the source, in `sqlite_master`
//! creation order (a table only references tables created before it, so parents land before
//! children), row by row, each value converted by the destination column's type as
//! PostgreSQL's `information_schema` reports it. The two schemas are the same tables and
//! columns at the same version (checked first); PostgreSQL has BOOLEAN where SQLite keeps
//! 0/1, BYTEA for BLOB and identity columns for `INTEGER PRIMARY KEY`.
//!
//! Resumable: rows go in with `ON CONFLICT DO NOTHING`, a batch per transaction, so a run
//! interrupted anywhere leaves whole batches behind and the next run inserts the rest. A row
//! that conflicts must be identical to the source row (it was copied by an earlier run);
//! anything else means the destination holds data of its own (a node was started on it) and
//! the import stops rather than silently keep the destination's row and attach the source's
//! children to it.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use berth_store::StoreError;
use sqlx::postgres::{PgArguments, PgConnectOptions};
use sqlx::query::{Query, QueryScalar};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Connection, PgConnection, Postgres, Row};

use crate::db::DbContext;
use crate::PostgresMetadataStore;

/// Tables whose rows are not copied, and why. Their source counts are still reported.
pub const NOT_COPIED: &[(&str, &str)] = &[
    (
        "uploads",
        "upload sessions in progress: their bytes are in the source's uploads/ directory and their cursor is the \
         filesystem's, which another blob store cannot continue; clients start those uploads again",
    ),
    ("leases", "claims of running berth processes on background jobs; none runs during a migration"),
];

/// A batch is committed after this many rows or this many bytes of values, whichever comes
/// first: large enough that commits are not the cost, small enough that manifests (up to a few
/// MiB each) do not pile up in memory.
const BATCH_ROWS: usize = 500;
const BATCH_BYTES: usize = 16 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: String,
    pub source_rows: u64,
    /// Rows this run inserted.
    pub inserted: u64,
    /// Rows an earlier run had already copied (identical in the destination).
    pub already_present: u64,
    /// Rows in the destination table afterwards.
    pub destination_rows: u64,
}

impl TableReport {
    pub fn matches(&self) -> bool {
        self.source_rows == self.destination_rows
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub schema_version: i64,
    /// Copied tables, in the order they were copied.
    pub tables: Vec<TableReport>,
    /// Tables of [`NOT_COPIED`] found in the source: name, source rows, why.
    pub not_copied: Vec<(String, u64, &'static str)>,
    /// Nothing was committed (`dry_run`): `inserted` counts what a real run would insert.
    pub dry_run: bool,
}

impl ImportReport {
    /// Every copied table holds as many rows as its source.
    pub fn matches(&self) -> bool {
        self.tables.iter().all(TableReport::matches)
    }
}

/// An embedded install's metadata database, opened read-only (a migration never changes its
/// source, not even by upgrading its schema).
pub struct SqliteSource {
    pool: SqlitePool,
}

impl SqliteSource {
    pub async fn open(path: &Path) -> Result<SqliteSource, StoreError> {
        if !path.is_file() {
            return Err(StoreError::io(
                format!("opening {}", path.display()),
                io::Error::new(io::ErrorKind::NotFound, "no such database (is this an embedded berth's data directory?)"),
            ));
        }
        let opts = SqliteConnectOptions::new().filename(path).read_only(true).create_if_missing(false);
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(opts).await.ctx("opening the source SQLite database")?;
        Ok(SqliteSource { pool })
    }

    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("PRAGMA user_version").fetch_one(&self.pool).await.ctx("reading the source schema version")
    }

    /// The source's tables in creation order (the order that respects foreign keys).
    pub async fn tables(&self) -> Result<Vec<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("listing the source tables")?;
        for n in &names {
            check_ident(n)?;
        }
        Ok(names)
    }

    pub async fn count(&self, table: &str) -> Result<u64, StoreError> {
        check_ident(table)?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| sql_err(format!("counting the source rows of {table}"), e))?;
        Ok(n as u64)
    }

    /// Rows a real import copies: every table but [`NOT_COPIED`].
    pub async fn rows_to_copy(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for t in self.tables().await? {
            if !is_not_copied(&t) {
                total += self.count(&t).await?;
            }
        }
        Ok(total)
    }

    /// Every blob stored in clear (digest text, size), in digest order: all of them in a
    /// source from before encryption at rest (no `blob_objects`), else those with a clear ("")
    /// object.
    pub async fn blobs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = if self.has_table("blob_objects").await? {
            "SELECT b.digest, b.size FROM blobs b WHERE EXISTS \
             (SELECT 1 FROM blob_objects o WHERE o.digest = b.digest AND o.scope = '') ORDER BY b.digest"
        } else {
            "SELECT digest, size FROM blobs ORDER BY digest"
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(&self.pool).await.ctx("listing the source blobs")?;
        Ok(rows.into_iter().map(|(d, s)| (d, s.max(0) as u64)).collect())
    }

    /// Every encrypted object (digest text, scope, plaintext size), in digest and scope order.
    pub async fn sealed_objects(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        if !self.has_table("blob_objects").await? {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT o.digest, o.scope, b.size FROM blob_objects o JOIN blobs b ON b.digest = o.digest \
             WHERE o.scope <> '' ORDER BY o.digest, o.scope",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("listing the source's encrypted objects")?;
        Ok(rows.into_iter().map(|(d, scope, s)| (d, scope, s.max(0) as u64)).collect())
    }

    async fn has_table(&self, table: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(table)
            .fetch_one(&self.pool)
            .await
            .ctx("reading the source tables")?;
        Ok(n > 0)
    }

    async fn columns(&self, table: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| sql_err(format!("reading the source columns of {table}"), e))?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("name").map_err(|e| sql_err(format!("reading the source columns of {table}"), e)))
            .collect()
    }
}

fn is_not_copied(table: &str) -> bool {
    NOT_COPIED.iter().any(|(t, _)| *t == table)
}

/// Copies every row of the SQLite database at `sqlite_path` into the PostgreSQL database at
/// `pg_url` (whose schema is created or brought up to date first, by the store's own
/// migrations). `progress(table, rows_done_in_table)` is called after each committed batch.
/// With `dry_run` everything runs inside one transaction that is rolled back, so the report
/// says exactly what a real run would insert.
pub async fn import_sqlite(
    sqlite_path: &Path,
    pg_url: &str,
    dry_run: bool,
    progress: impl Fn(&str, u64),
) -> Result<ImportReport, StoreError> {
    let source = SqliteSource::open(sqlite_path).await?;
    // The store's own migrations, under their advisory lock: the schema is the one nodes expect.
    drop(PostgresMetadataStore::connect(pg_url).await?);
    let mut conn = connect(pg_url).await?;

    let source_version = source.schema_version().await?;
    let dest_version: i64 = sqlx::query_scalar("SELECT version FROM berth_schema_version")
        .fetch_one(&mut conn)
        .await
        .ctx("reading the destination schema version")?;
    if source_version != dest_version {
        return Err(mismatch(format!(
            "the source database is at schema version {source_version} and the destination at {dest_version}; \
             open the source once with this berth (e.g. `berth fsck --data-dir DIR`) so it is upgraded, then migrate"
        )));
    }

    let mut report = ImportReport { schema_version: source_version, tables: Vec::new(), not_copied: Vec::new(), dry_run };
    if dry_run {
        let mut outer = conn.begin().await.ctx("starting the dry run")?;
        copy_tables(&source, &mut outer, &mut report, &progress).await?;
        outer.rollback().await.ctx("rolling back the dry run")?;
    } else {
        copy_tables(&source, &mut conn, &mut report, &progress).await?;
    }
    let _ = conn.close().await;
    Ok(report)
}

async fn copy_tables(
    source: &SqliteSource,
    conn: &mut PgConnection,
    report: &mut ImportReport,
    progress: &impl Fn(&str, u64),
) -> Result<(), StoreError> {
    let dry_run = report.dry_run;
    for table in source.tables().await? {
        if let Some((_, why)) = NOT_COPIED.iter().find(|(t, _)| *t == table) {
            let n = source.count(&table).await?;
            report.not_copied.push((table, n, why));
            continue;
        }
        let t = copy_table(source, conn, &table, dry_run, progress).await?;
        report.tables.push(t);
    }
    Ok(())
}

/// Whether the database at `pg_url` already holds a registry (a repository or a blob): a
/// restore goes only into an empty one.
pub async fn holds_registry(pg_url: &str) -> Result<bool, StoreError> {
    let mut conn = connect(pg_url).await?;
    let created: bool = sqlx::query_scalar("SELECT to_regclass('repositories') IS NOT NULL AND to_regclass('blobs') IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .ctx("looking for berth's tables")?;
    let holds = created
        && sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM repositories) OR EXISTS (SELECT 1 FROM blobs)")
            .fetch_one(&mut conn)
            .await
            .ctx("looking for repositories and blobs")?;
    let _ = conn.close().await;
    Ok(holds)
}

/// One connection of its own to the database at `pg_url` (a long transaction or a long copy
/// would hold a pooled one).
pub(crate) async fn connect(pg_url: &str) -> Result<PgConnection, StoreError> {
    // Reported without the URL: it carries the password.
    let opts = PgConnectOptions::from_str(pg_url).map_err(|_| StoreError::Db {
        context: "reading the PostgreSQL URL",
        source: sqlx::Error::Configuration("expected postgres://user:password@host:port/database".into()),
    })?;
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
        .await
        .map_err(|_| StoreError::Unavailable { what: "the metadata database", detail: "no answer from PostgreSQL within 5 s".into() })?
        .ctx("connecting to PostgreSQL")?;
    Ok(conn)
}

/// A destination column: its name, how source values convert to it, whether it is an identity.
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    identity: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float8,
    Text,
    Bytes,
}

impl Kind {
    fn of(data_type: &str) -> Option<Kind> {
        Some(match data_type {
            "boolean" => Kind::Bool,
            "smallint" => Kind::Int2,
            "integer" => Kind::Int4,
            "bigint" => Kind::Int8,
            "double precision" | "real" | "numeric" => Kind::Float8,
            "text" | "character varying" | "character" => Kind::Text,
            "bytea" => Kind::Bytes,
            _ => return None,
        })
    }
}

/// A source value, converted for its destination column.
#[derive(Debug, Clone)]
enum Value {
    Bool(Option<bool>),
    Int2(Option<i16>),
    Int4(Option<i32>),
    Int8(Option<i64>),
    Float8(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    fn size(&self) -> usize {
        match self {
            Value::Text(Some(s)) => s.len(),
            Value::Bytes(Some(b)) => b.len(),
            _ => 8,
        }
    }

    fn bind<'q>(self, q: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        match self {
            Value::Bool(v) => q.bind(v),
            Value::Int2(v) => q.bind(v),
            Value::Int4(v) => q.bind(v),
            Value::Int8(v) => q.bind(v),
            Value::Float8(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Bytes(v) => q.bind(v),
        }
    }

    fn bind_scalar<'q>(self, q: QueryScalar<'q, Postgres, bool, PgArguments>) -> QueryScalar<'q, Postgres, bool, PgArguments> {
        match self {
            Value::Bool(v) => q.bind(v),
            Value::Int2(v) => q.bind(v),
            Value::Int4(v) => q.bind(v),
            Value::Int8(v) => q.bind(v),
            Value::Float8(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Bytes(v) => q.bind(v),
        }
    }
}

/// Reads column `i` of a source row as the destination column wants it. SQLite is dynamically
/// typed, so a value of another storage class than the column's is reported, not guessed at.
fn convert(row: &SqliteRow, i: usize, col: &Column, table: &str) -> Result<Value, StoreError> {
    let bad = |e: sqlx::Error| sql_err(format!("reading {table}.{} from the source", col.name), e);
    let out_of_range = |v: i64| mismatch(format!("{table}.{}: source value {v} does not fit the destination column", col.name));
    Ok(match col.kind {
        Kind::Bool => Value::Bool(match row.try_get::<Option<i64>, _>(i).map_err(bad)? {
            None => None,
            Some(0) => Some(false),
            Some(1) => Some(true),
            Some(v) => return Err(out_of_range(v)),
        }),
        Kind::Int2 => Value::Int2(match row.try_get::<Option<i64>, _>(i).map_err(bad)? {
            None => None,
            Some(v) => Some(i16::try_from(v).map_err(|_| out_of_range(v))?),
        }),
        Kind::Int4 => Value::Int4(match row.try_get::<Option<i64>, _>(i).map_err(bad)? {
            None => None,
            Some(v) => Some(i32::try_from(v).map_err(|_| out_of_range(v))?),
        }),
        Kind::Int8 => Value::Int8(row.try_get(i).map_err(bad)?),
        Kind::Float8 => Value::Float8(row.try_get(i).map_err(bad)?),
        Kind::Text => Value::Text(row.try_get(i).map_err(bad)?),
        Kind::Bytes => Value::Bytes(row.try_get(i).map_err(bad)?),
    })
}

async fn copy_table(
    source: &SqliteSource,
    conn: &mut PgConnection,
    table: &str,
    dry_run: bool,
    progress: &impl Fn(&str, u64),
) -> Result<TableReport, StoreError> {
    let columns = postgres_columns(conn, table).await?;
    let source_columns: HashSet<String> = source.columns(table).await?.into_iter().collect();
    let dest_names: HashSet<String> = columns.iter().map(|c| c.name.clone()).collect();
    if source_columns != dest_names {
        let mut only_source: Vec<_> = source_columns.difference(&dest_names).cloned().collect();
        let mut only_dest: Vec<_> = dest_names.difference(&source_columns).cloned().collect();
        only_source.sort();
        only_dest.sort();
        return Err(mismatch(format!(
            "table {table} differs: columns only in the source {only_source:?}, only in the destination {only_dest:?}"
        )));
    }

    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    // Identity columns take the source's ids as they are: children refer to them.
    let overriding = if columns.iter().any(|c| c.identity) { " OVERRIDING SYSTEM VALUE" } else { "" };
    let insert =
        format!("INSERT INTO \"{table}\" ({}){overriding} VALUES ({}) ON CONFLICT DO NOTHING", names.join(", "), params.join(", "));
    let same: Vec<String> = names.iter().zip(&params).map(|(n, p)| format!("{n} IS NOT DISTINCT FROM {p}")).collect();
    let identical = format!("SELECT EXISTS (SELECT 1 FROM \"{table}\" WHERE {})", same.join(" AND "));
    // Pages by rowid rather than one long query: no read transaction stays open on the source
    // while PostgreSQL commits, and memory holds one batch.
    let select = format!(
        "SELECT {}, rowid AS berth_import_rowid FROM \"{table}\" WHERE rowid > ? ORDER BY rowid LIMIT {BATCH_ROWS}",
        names.join(", ")
    );

    let mut report = TableReport {
        table: table.to_string(),
        source_rows: source.count(table).await?,
        inserted: 0,
        already_present: 0,
        destination_rows: 0,
    };
    let mut after = i64::MIN;
    let mut done = 0u64;
    loop {
        let rows = sqlx::query(&select)
            .bind(after)
            .fetch_all(&source.pool)
            .await
            .map_err(|e| sql_err(format!("reading the source rows of {table}"), e))?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(columns.len()).map_err(|e| sql_err(format!("reading the source rows of {table}"), e))?;
        let mut batch: Vec<(i64, Vec<Value>)> = Vec::with_capacity(rows.len());
        let mut batch_bytes = 0usize;
        for row in &rows {
            let rowid: i64 = row.try_get(columns.len()).map_err(|e| sql_err(format!("reading the source rows of {table}"), e))?;
            let values = columns.iter().enumerate().map(|(i, c)| convert(row, i, c, table)).collect::<Result<Vec<_>, _>>()?;
            batch_bytes += values.iter().map(Value::size).sum::<usize>();
            batch.push((rowid, values));
            // Large manifests: commit before the batch grows past its byte budget.
            if batch_bytes >= BATCH_BYTES {
                done += batch.len() as u64;
                let (inserted, present) = insert_batch(conn, table, &insert, &identical, std::mem::take(&mut batch)).await?;
                report.inserted += inserted;
                report.already_present += present;
                batch_bytes = 0;
                progress(table, done);
            }
        }
        if !batch.is_empty() {
            done += batch.len() as u64;
            let (inserted, present) = insert_batch(conn, table, &insert, &identical, batch).await?;
            report.inserted += inserted;
            report.already_present += present;
            progress(table, done);
        }
        if rows.len() < BATCH_ROWS {
            break;
        }
    }

    // Sequences are not transactional (a dry run's rollback would not undo this), and ids
    // handed out next must not collide with the copied ones.
    if !dry_run {
        for c in columns.iter().filter(|c| c.identity) {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), m) FROM (SELECT max(\"{}\") AS m FROM \"{table}\") s WHERE m IS NOT NULL",
                c.name
            ))
            .bind(table)
            .bind(&c.name)
            .execute(&mut *conn)
            .await
            .map_err(|e| sql_err(format!("moving the identity sequence of {table}.{} past the copied ids", c.name), e))?;
        }
    }
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| sql_err(format!("counting the destination rows of {table}"), e))?;
    report.destination_rows = n as u64;
    Ok(report)
}

/// One transaction (a savepoint inside a dry run's transaction): inserted and already-present
/// counts. A conflicting row that is not identical to the source's aborts the whole batch.
async fn insert_batch(
    conn: &mut PgConnection,
    table: &str,
    insert: &str,
    identical: &str,
    batch: Vec<(i64, Vec<Value>)>,
) -> Result<(u64, u64), StoreError> {
    let mut tx = conn.begin().await.map_err(|e| sql_err(format!("starting a transaction for {table}"), e))?;
    let (mut inserted, mut present) = (0u64, 0u64);
    for (rowid, values) in batch {
        let mut q = sqlx::query(insert);
        for v in &values {
            q = v.clone().bind(q);
        }
        let done = q.execute(&mut *tx).await.map_err(|e| sql_err(format!("inserting row {rowid} of {table}"), e))?;
        if done.rows_affected() == 1 {
            inserted += 1;
            continue;
        }
        // Only a conflicting row (a re-run) pays for the comparison.
        let mut check = sqlx::query_scalar::<_, bool>(identical);
        for v in values {
            check = v.bind_scalar(check);
        }
        let same = check.fetch_one(&mut *tx).await.map_err(|e| sql_err(format!("comparing row {rowid} of {table}"), e))?;
        if !same {
            return Err(mismatch(format!(
                "row {rowid} of {table} conflicts with a different row already in the destination: it holds data that \
                 did not come from this source (was a berth node started on it?); migrate into a fresh database"
            )));
        }
        present += 1;
    }
    tx.commit().await.map_err(|e| sql_err(format!("committing rows of {table}"), e))?;
    Ok((inserted, present))
}

pub(crate) async fn postgres_columns(conn: &mut PgConnection, table: &str) -> Result<Vec<Column>, StoreError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_identity::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| sql_err(format!("reading the destination columns of {table}"), e))?;
    if rows.is_empty() {
        return Err(mismatch(format!("table {table} does not exist in the PostgreSQL database (not the same schema)")));
    }
    rows.into_iter()
        .map(|(name, data_type, identity)| {
            check_ident(&name)?;
            let kind = Kind::of(&data_type)
                .ok_or_else(|| mismatch(format!("{table}.{name}: destination type {data_type} is not one the import converts to")))?;
            Ok(Column { name, kind, identity: identity == "YES" })
        })
        .collect()
}

/// Names go into SQL text (they cannot be bound), so only plain identifiers are accepted.
pub(crate) fn check_ident(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(mismatch(format!("table or column name {name:?} is not a plain identifier")))
    }
}

pub(crate) fn mismatch(msg: String) -> StoreError {
    StoreError::io("importing metadata", io::Error::new(io::ErrorKind::InvalidData, msg))
}

/// A database error with a context naming the table (`StoreError::Db` only takes static text);
/// a database that cannot be reached stays `Unavailable`.
pub(crate) fn sql_err(context: String, e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
            StoreError::Unavailable { what: "the metadata database", detail: format!("{context}: {e}") }
        }
        e => StoreError::io(context, io::Error::other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_reach_sql() {
        assert!(check_ident("repository_blobs").is_ok());
        assert!(check_ident("a\"; DROP TABLE x; --").is_err());
        assert!(check_ident("1abc").is_err());
        assert!(check_ident("").is_err());
    }

    #[test]
    fn column_types_map() {
        assert!(matches!(Kind::of("boolean"), Some(Kind::Bool)));
        assert!(matches!(Kind::of("bytea"), Some(Kind::Bytes)));
        assert!(matches!(Kind::of("bigint"), Some(Kind::Int8)));
        assert!(Kind::of("jsonb").is_none());
    }
}
