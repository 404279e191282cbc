//! The shared metadata store suite (`berth_store::testsuite`) on SQLite, in a temp dir.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use berth_store::testsuite::{Backend, Fixture, Store};
use berth_store::SqliteMetadataStore;

struct Sqlite {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

#[async_trait(?Send)]
impl Backend for Sqlite {
    async fn reopen(&self) -> Store {
        Arc::new(SqliteMetadataStore::open(&self.path).await.expect("reopen sqlite"))
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn execute(&self, sql: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.path.display())).await.expect("connect sqlite");
        sqlx::raw_sql(sql).execute(&mut conn).await.expect("run SQL");
        conn.close().await.expect("close sqlite");
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("meta.db");
    let store = SqliteMetadataStore::open(&path).await.expect("open sqlite");
    Fixture { store: Arc::new(store), backend: Box::new(Sqlite { path, _dir: dir }) }
}

berth_store::metadata_suite!(sqlite());

/// A database of the version before blob objects (schema v6) is brought to v7: see
/// `berth_store::testsuite::v6_rows_after_v7`.
#[tokio::test]
async fn v7_makes_every_existing_blob_a_clear_object() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("meta.db");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        for sql in [
            include_str!("../src/sqlite_schema.sql"),
            include_str!("../src/sqlite_schema_v2.sql"),
            include_str!("../src/sqlite_schema_v3.sql"),
            include_str!("../src/sqlite_schema_v4.sql"),
            include_str!("../src/sqlite_schema_v5.sql"),
            berth_store::sql::keys::SCHEMA_V6,
            "PRAGMA user_version = 6",
        ] {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        sqlx::raw_sql(&berth_store::testsuite::v6_rows()).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    let store: Store = Arc::new(SqliteMetadataStore::open(&path).await.unwrap());
    berth_store::testsuite::v6_rows_after_v7(&store).await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut conn).await.unwrap();
    assert_eq!(version, 11, "and on to the current version");
}
