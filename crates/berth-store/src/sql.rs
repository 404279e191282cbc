//! SQL written once for both metadata backends (SQLite here, PostgreSQL in berth-postgres).
//!
//! The two schemas hold the same tables and columns, and sqlx-sqlite accepts PostgreSQL's `$n`
//! placeholders, so most statements are the same text on both. A statement is built as a
//! [`Stmt`] (text plus backend-neutral arguments) and run on a [`Conn`], which each backend's
//! connection implements; rows are read through [`Columns`]. The one thing the dialects
//! disagree on that shared statements need is row locking: [`Conn::FOR_UPDATE`] and
//! [`Conn::FOR_KEY_SHARE`] are empty on SQLite, whose single writer already serializes every
//! write transaction. Statements whose shape differs (array parameters, `GREATEST`, advisory
//! locks, upserts that re-check a locked row) and the transaction retry loop stay in each
//! backend.

use std::borrow::Cow;
use std::future::Future;
use std::str::FromStr;

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{PgConnection, Postgres, Row, Sqlite, SqliteConnection};

use crate::error::DbContext;
use crate::meta::{RepoKey, StorageClass};
use crate::{Digest, StoreError};

pub mod audit;
pub mod cluster;
pub mod content;
pub mod identity;
pub mod keys;
pub mod lifecycle;
pub mod objects;
pub mod public;
pub mod pull_through;
pub mod replication;
pub mod repos;
pub mod scans;
pub mod secrets;
pub mod settings;
pub mod templates;
pub mod webhooks;

/// A statement's argument, as both backends bind it.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Flag(bool),
    Bytes(Option<&'a [u8]>),
}

/// What may be bound to a shared statement.
pub trait IntoArg<'a> {
    fn into_arg(self) -> Arg<'a>;
}

impl<'a> IntoArg<'a> for &'a str {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Some(Cow::Borrowed(self)))
    }
}

impl<'a> IntoArg<'a> for &'a String {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Some(Cow::Borrowed(self)))
    }
}

impl<'a> IntoArg<'a> for String {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Some(Cow::Owned(self)))
    }
}

impl<'a> IntoArg<'a> for Option<&'a str> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(self.map(Cow::Borrowed))
    }
}

impl<'a> IntoArg<'a> for Option<String> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(self.map(Cow::Owned))
    }
}

impl<'a> IntoArg<'a> for &'a Option<String> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(self.as_deref().map(Cow::Borrowed))
    }
}

impl<'a> IntoArg<'a> for &Digest {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Some(Cow::Owned(self.to_string())))
    }
}

impl<'a> IntoArg<'a> for i64 {
    fn into_arg(self) -> Arg<'a> {
        Arg::Int(Some(self))
    }
}

impl<'a> IntoArg<'a> for Option<i64> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Int(self)
    }
}

impl<'a> IntoArg<'a> for bool {
    fn into_arg(self) -> Arg<'a> {
        Arg::Flag(self)
    }
}

impl<'a> IntoArg<'a> for &'a [u8] {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bytes(Some(self))
    }
}

impl<'a> IntoArg<'a> for Option<&'a [u8]> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bytes(self)
    }
}

/// A statement and its arguments, in `$n` order.
#[derive(Debug, Clone)]
pub struct Stmt<'a> {
    sql: Cow<'a, str>,
    args: Vec<Arg<'a>>,
}

pub fn stmt<'a>(sql: impl Into<Cow<'a, str>>) -> Stmt<'a> {
    Stmt { sql: sql.into(), args: Vec::new() }
}

impl<'a> Stmt<'a> {
    pub fn bind(mut self, value: impl IntoArg<'a>) -> Self {
        self.args.push(value.into_arg());
        self
    }

    /// Binds a repository key as three arguments (account, region, name).
    pub fn bind_key(self, key: &'a RepoKey) -> Self {
        self.bind(&key.account).bind(&key.region).bind(&key.name)
    }
}

/// A connection (or an open transaction, through `&mut *tx`) of one backend.
pub trait Conn: Send {
    type Row: Columns + Send;
    /// Row lock suffixes for a `SELECT`: empty where write transactions never run at once.
    const FOR_UPDATE: &'static str;
    const FOR_KEY_SHARE: &'static str;
    const FOR_NO_KEY_UPDATE: &'static str;
    /// An image's tags (`tags t` joined, grouped per manifest) as the column `tags`, which
    /// [`Columns::tag_list`] reads.
    const TAGS_AGG: &'static str;
    /// The substring position function, `(haystack, needle)`, 0 when absent.
    const INSTR: &'static str;
    /// An empty string that sorts as names do (byte order), for a union with a name column.
    const EMPTY_NAME: &'static str;
    /// A collation suffix that makes a computed text (not a column, whose collation the schema
    /// sets) compare and sort in byte order, as paging keys must.
    const BYTE_ORDER: &'static str;

    /// The text of a JSON document's top-level member `member` (NULL when absent); `member`
    /// is a fixed identifier of the caller's, never input.
    fn json_text(column: &str, member: &'static str) -> String;
    /// The `n`th (1-based) parameter of a statement that uses each parameter once, in order
    /// (a many-row `INSERT`). SQLite gets an anonymous `?`: sqlx looks a `$n` up by name, a
    /// scan of all of the statement's parameters each time, which made a 768-parameter
    /// `INSERT` spend more time binding than inserting.
    fn ordered_param(n: usize) -> String;

    /// Runs the statement; the number of rows it changed.
    fn exec(&mut self, s: Stmt<'_>) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
    fn all(&mut self, s: Stmt<'_>) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send;
    fn opt(&mut self, s: Stmt<'_>) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send;
    /// Locks a whole table until the transaction ends, against writers only (a check-then-insert
    /// that no other node may interleave); nothing where write transactions never run at once.
    fn lock_table(&mut self, table: &'static str) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// Makes the transaction just begun read one snapshot throughout (SQLite's WAL read
    /// transactions always do).
    fn read_snapshot(&mut self) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// A backend whose connections run shared statements.
pub trait Backend: sqlx::Database<Connection: Conn> {}

impl Backend for Sqlite {}
impl Backend for Postgres {}

/// Binds a statement's arguments for one backend.
macro_rules! binder {
    ($name:ident, $db:ty, $args:ty) => {
        fn $name<'q>(s: &'q Stmt<'_>) -> Query<'q, $db, $args> {
            let mut q = sqlx::query(&s.sql);
            for a in &s.args {
                q = match a {
                    Arg::Text(v) => q.bind(v.as_deref()),
                    Arg::Int(v) => q.bind(*v),
                    Arg::Flag(v) => q.bind(*v),
                    Arg::Bytes(v) => q.bind(*v),
                };
            }
            q
        }
    };
}

binder!(bind_sqlite, Sqlite, SqliteArguments<'q>);
binder!(bind_postgres, Postgres, PgArguments);

/// The three ways of running a statement, for a `Conn` impl.
macro_rules! runs_statements {
    ($bind:ident) => {
        async fn exec(&mut self, s: Stmt<'_>) -> Result<u64, sqlx::Error> {
            Ok($bind(&s).execute(self).await?.rows_affected())
        }

        async fn all(&mut self, s: Stmt<'_>) -> Result<Vec<Self::Row>, sqlx::Error> {
            $bind(&s).fetch_all(self).await
        }

        async fn opt(&mut self, s: Stmt<'_>) -> Result<Option<Self::Row>, sqlx::Error> {
            $bind(&s).fetch_optional(self).await
        }
    };
}

impl Conn for SqliteConnection {
    type Row = SqliteRow;
    const FOR_UPDATE: &'static str = "";
    const FOR_KEY_SHARE: &'static str = "";
    const FOR_NO_KEY_UPDATE: &'static str = "";
    const TAGS_AGG: &'static str = "group_concat(t.name, char(10)) AS tags";
    const INSTR: &'static str = "instr";
    const EMPTY_NAME: &'static str = "''";
    const BYTE_ORDER: &'static str = "";

    runs_statements!(bind_sqlite);

    fn json_text(column: &str, member: &'static str) -> String {
        format!("json_extract({column}, '$.{member}')")
    }

    fn ordered_param(_n: usize) -> String {
        "?".to_string()
    }

    async fn lock_table(&mut self, _table: &'static str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn read_snapshot(&mut self) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl Conn for PgConnection {
    type Row = PgRow;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_KEY_SHARE: &'static str = " FOR KEY SHARE";
    const FOR_NO_KEY_UPDATE: &'static str = " FOR NO KEY UPDATE";
    const TAGS_AGG: &'static str = "COALESCE(array_agg(t.name) FILTER (WHERE t.name IS NOT NULL), '{}') AS tags";
    const INSTR: &'static str = "strpos";
    const EMPTY_NAME: &'static str = "''::text COLLATE \"C\"";
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";

    runs_statements!(bind_postgres);

    fn json_text(column: &str, member: &'static str) -> String {
        format!("(({column})::jsonb ->> '{member}')")
    }

    fn ordered_param(n: usize) -> String {
        format!("${n}")
    }

    async fn lock_table(&mut self, table: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")).execute(self).await.map(drop)
    }

    async fn read_snapshot(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(self).await.map(drop)
    }
}

/// Reading columns the same way from either backend's rows.
pub trait Columns: Row {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A boolean: INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
    /// The `tags` column of `Conn::TAGS_AGG`, sorted (byte order; `expire_manifest` compares
    /// sorted lists).
    fn tag_list(&self) -> Result<Vec<String>, sqlx::Error>;

    /// Digests were validated on the way in; one that does not parse means corruption.
    fn digest(&self, col: &str) -> Result<Digest, sqlx::Error> {
        Digest::from_str(&self.text(col)?).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    /// A manifest's subject: unreadable ones read as none, as they always have.
    fn subject(&self, col: &str) -> Result<Option<Digest>, sqlx::Error> {
        Ok(self.opt_text(col)?.and_then(|s| s.parse().ok()))
    }

    fn size(&self, col: &str) -> Result<u64, sqlx::Error> {
        Ok(self.int(col)? as u64)
    }

    fn storage_class(&self) -> Result<StorageClass, sqlx::Error> {
        Ok(StorageClass::parse(&self.text("storage_class")?).unwrap_or_default())
    }

    /// A repository key from `account_id`, `region` and `name`.
    fn repo_key(&self) -> Result<RepoKey, sqlx::Error> {
        Ok(RepoKey { account: self.text("account_id")?, region: self.text("region")?, name: self.text("name")? })
    }
}

macro_rules! columns {
    ($row:ty, $flag:expr, $tags:expr) => {
        impl Columns for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
                $flag(self, col)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(col)
            }
            fn tag_list(&self) -> Result<Vec<String>, sqlx::Error> {
                let mut tags: Vec<String> = $tags(self)?;
                tags.sort();
                Ok(tags)
            }
        }
    };
}

columns!(SqliteRow, |r: &SqliteRow, col: &str| r.try_get::<i64, _>(col).map(|v| v != 0), |r: &SqliteRow| {
    let joined: Option<String> = r.try_get("tags")?;
    Ok::<_, sqlx::Error>(joined.map(|t| t.split('\n').map(str::to_string).collect()).unwrap_or_default())
});
columns!(PgRow, |r: &PgRow, col: &str| r.try_get::<bool, _>(col), |r: &PgRow| r.try_get::<Vec<String>, _>("tags"));

/// Decodes every row into `T` (a `FromRow` of both backends' rows).
pub fn decode_all<T, R>(rows: &[R], context: &'static str) -> Result<Vec<T>, StoreError>
where
    R: Columns,
    T: for<'r> sqlx::FromRow<'r, R>,
{
    rows.iter().map(|r| T::from_row(r).ctx(context)).collect()
}

/// Decodes an optional row into `T`.
pub fn decode_opt<T, R>(row: Option<R>, context: &'static str) -> Result<Option<T>, StoreError>
where
    R: Columns,
    T: for<'r> sqlx::FromRow<'r, R>,
{
    row.as_ref().map(|r| T::from_row(r).ctx(context)).transpose()
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    async fn memory() -> SqliteConnection {
        SqliteConnection::connect("sqlite::memory:").await.expect("in-memory SQLite")
    }

    /// The whole module rests on this: sqlx-sqlite binds `$n` to the n-th argument, as
    /// PostgreSQL does, not in order of appearance.
    #[tokio::test]
    async fn sqlite_binds_dollar_placeholders_by_number() {
        let mut conn = memory().await;
        let row = conn.opt(stmt("SELECT $2 AS a, $1 AS b, $2 AS c").bind(1i64).bind(2i64)).await.unwrap().expect("a row");
        assert_eq!((row.int("a").unwrap(), row.int("b").unwrap(), row.int("c").unwrap()), (2, 1, 2));
    }

    #[tokio::test]
    async fn sqlite_columns_read_flags_and_tag_lists() {
        let mut conn = memory().await;
        let row = conn
            .opt(stmt("SELECT $1 AS f, 'b' || char(10) || 'a' AS tags, CAST($2 AS TEXT) IS NULL AS none").bind(true).bind(None::<&str>))
            .await
            .unwrap()
            .expect("a row");
        assert!(row.flag("f").unwrap());
        assert!(row.flag("none").unwrap());
        assert_eq!(row.tag_list().unwrap(), vec!["a".to_string(), "b".to_string()]);
        let row = conn.opt(stmt("SELECT NULL AS tags")).await.unwrap().expect("a row");
        assert!(row.tag_list().unwrap().is_empty());
    }

    #[test]
    fn placeholders_number_from_the_first_free_one() {
        assert_eq!(scans::placeholders(2, 3), "$2, $3, $4");
        assert_eq!(scans::placeholders(1, 0), "");
    }
}
