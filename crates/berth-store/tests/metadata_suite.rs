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
