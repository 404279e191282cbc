//! The shared metadata store suite (`berth_store::testsuite`) on PostgreSQL: a fresh database
//! per test on the server named by BERTH_TEST_POSTGRES_URL (see
//! scripts/postgres-test-server.sh); without that variable these tests fail. Then what only a
//! shared database has.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_postgres::PostgresMetadataStore;
use berth_store::testsuite::{Backend, Fixture, Store};
use berth_store::*;
use sqlx::Connection;

const ENV: &str = "BERTH_TEST_POSTGRES_URL";

fn server_url() -> String {
    std::env::var(ENV).unwrap_or_else(|_| {
        panic!(
            "{ENV} is not set: the PostgreSQL cases of this suite need a server. Start a throwaway one with \
             `eval \"$(scripts/postgres-test-server.sh start /tmp/berth-pg)\"` (stop it with \
             `scripts/postgres-test-server.sh stop /tmp/berth-pg`)"
        )
    })
}

/// The server URL with another database name.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let rest = base.strip_prefix("postgres://").or_else(|| base.strip_prefix("postgresql://")).expect("postgres:// URL");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("postgres://{authority}/{db}{query}")
}

struct Postgres {
    url: String,
}

#[async_trait(?Send)]
impl Backend for Postgres {
    async fn reopen(&self) -> Store {
        Arc::new(PostgresMetadataStore::connect(&self.url).await.expect("reconnect postgres"))
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn execute(&self, sql: &str) {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.expect("connect postgres");
        sqlx::raw_sql(sql).execute(&mut conn).await.expect("run SQL");
        conn.close().await.expect("close postgres");
    }
}

/// A store on a fresh database, and that database's URL.
async fn postgres_with_url() -> (Fixture, String) {
    let url = server_url();
    let db = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect to the test server");
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.expect("create test database");
    admin.close().await.expect("close admin connection");
    let url = with_database(&url, &db);
    let store = PostgresMetadataStore::connect(&url).await.expect("connect postgres store");
    (Fixture { store: Arc::new(store), backend: Box::new(Postgres { url: url.clone() }) }, url)
}

async fn postgres() -> Fixture {
    postgres_with_url().await.0
}

berth_store::metadata_suite!(postgres());

fn key(name: &str) -> RepoKey {
    RepoKey { account: "123456789012".into(), region: "us-east-1".into(), name: name.into() }
}

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

/// Restarts find the schema current and record its version once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_version_recorded_once() {
    let (f, url) = postgres_with_url().await;
    drop(f.reopen().await);
    drop(f.reopen().await);
    {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let version: i64 = sqlx::query_scalar("SELECT version FROM berth_schema_version").fetch_one(&mut conn).await.unwrap();
        assert_eq!(version, berth_postgres::SCHEMA_VERSION);
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM berth_schema_version").fetch_one(&mut conn).await.unwrap();
        assert_eq!(rows, 1);
    }
}

/// A database written by the version before blob objects: its blobs were stored in clear, so
/// each becomes a clear ("") object, and its links are left for `berth encrypt` to seal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v7_makes_every_existing_blob_a_clear_object() {
    let server = server_url();
    let db = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
    let url = with_database(&server, &db);
    {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in [
            include_str!("../src/postgres_schema.sql"),
            include_str!("../src/postgres_schema_v2.sql"),
            include_str!("../src/postgres_schema_v3.sql"),
            include_str!("../src/postgres_schema_v4.sql"),
            include_str!("../src/postgres_schema_v5.sql"),
            berth_store::sql::keys::SCHEMA_V6,
            "CREATE TABLE berth_schema_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), version BIGINT NOT NULL); \
             INSERT INTO berth_schema_version (one, version) VALUES (TRUE, 6)",
        ] {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        sqlx::raw_sql(&berth_store::testsuite::v6_rows()).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    let store: Store = Arc::new(PostgresMetadataStore::connect(&url).await.unwrap());
    berth_store::testsuite::v6_rows_after_v7(&store).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM berth_schema_version").fetch_one(&mut conn).await.unwrap();
    assert_eq!(version, berth_postgres::SCHEMA_VERSION, "and on to the current version");
}

/// `berth migrate` carries the objects as they are: sealed ones with their scope, clear ones too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_carries_blob_objects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let kms = key("kms");
    let layer = d("layer");
    {
        let source = SqliteMetadataStore::open(&path).await.unwrap();
        let settings = RepositorySettings {
            encryption_type: EncryptionType::Kms,
            kms_key: Some("arn:aws:kms:us-east-1:123456789012:key/k".into()),
            ..RepositorySettings::ecr_defaults()
        };
        source.create_repository(&kms, &settings, &[], 1).await.unwrap().expect("new");
        source.link_blob(&kms, &layer, 42, 5).await.unwrap();
        source.record_blob_object(&layer, "", 3).await.unwrap();
    }
    let (f, url) = postgres_with_url().await;
    let report = berth_postgres::import::import_sqlite(&path, &url, false, |_, _| {}).await.unwrap();
    assert!(report.matches(), "{report:?}");
    let copied = report.tables.iter().find(|t| t.table == "blob_objects").expect("blob_objects copied");
    assert_eq!((copied.source_rows, copied.inserted), (2, 2));
    let expected = vec![
        BlobObject { digest: layer.clone(), scope: String::new(), size: 42 },
        BlobObject { digest: layer.clone(), scope: "kms:arn:aws:kms:us-east-1:123456789012:key/k".into(), size: 42 },
    ];
    assert_eq!(f.store.blob_objects(&layer).await.unwrap(), expected);
    assert_eq!(f.store.repository_blob_object(&kms, &layer).await.unwrap().map(|o| (o.size, o.sealed)), Some((42, true)));
}

/// What only a shared database has: schema checks on connect, concurrent migrations, blob locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_only() {
    let (f, url) = postgres_with_url().await;
    let url = &url;
    let store = &f.store;
    assert!(store.is_shared());

    // Blob locks exclude each other across nodes, until the guard drops.
    let other = f.second_node().await;
    let guard = store.lock_blob(&d("x")).await.unwrap().expect("a shared store locks");
    let waiting = tokio::spawn(async move {
        let g = other.lock_blob(&d("x")).await.unwrap();
        drop(g);
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the second lock waits");
    let unrelated = store.lock_blob(&d("y")).await.unwrap();
    drop(unrelated);
    drop(guard);
    tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("released on drop").unwrap();

    // Two nodes starting on an empty database at once both migrate it without error.
    let server = server_url();
    let db = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
    let fresh = with_database(&server, &db);
    let (a, b, c) = tokio::join!(
        PostgresMetadataStore::connect(&fresh),
        PostgresMetadataStore::connect(&fresh),
        PostgresMetadataStore::connect(&fresh)
    );
    let (a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a.get_repository(&key("none")).await.unwrap().is_none());

    // A newer schema is refused.
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("UPDATE berth_schema_version SET version = 99").execute(&mut conn).await.unwrap();
    match PostgresMetadataStore::connect(url).await {
        Err(StoreError::SchemaTooNew { found, supported }) => assert_eq!((found, supported), (99, berth_postgres::SCHEMA_VERSION)),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }

    // An unreachable server fails fast and clearly, without the password in the message.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = std::time::Instant::now();
    let err = match PostgresMetadataStore::connect(&format!("postgres://berth:s3cr3t@127.0.0.1:{port}/x")).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected to nothing"),
    };
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(err.contains("connecting to PostgreSQL"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
    let err = match PostgresMetadataStore::connect("postgres://berth:s3cr3t@127.0.0.1:notaport/x").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted a bad URL"),
    };
    assert!(!err.contains("s3cr3t"), "{err}");
}

/// What `watch_changes` was told.
#[derive(Default)]
struct Recorder {
    listening: std::sync::atomic::AtomicUsize,
    changes: std::sync::atomic::AtomicUsize,
}

impl ChangeSink for Recorder {
    fn listening(&self) {
        self.listening.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn tags_changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Polls a condition (not a timing assumption: the deadline is only a safety net).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(std::time::Instant::now() < end, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A change to tags committed by anyone reaches the listener; heartbeats are not changes; a
/// killed listening connection ends the watch with an error (the caller then distrusts its cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_changes_reports_tag_changes_and_a_lost_connection() {
    use std::sync::atomic::Ordering::SeqCst;
    let (f, url) = postgres_with_url().await;
    let sink = Arc::new(Recorder::default());
    let (store, s) = (f.store.clone(), sink.clone());
    let watching = tokio::spawn(async move { store.watch_changes(&*s).await });
    eventually("the store listens", || sink.listening.load(SeqCst) == 1).await;

    // Written outside the store, as another process would; a statement on tags notifies at its
    // commit even when it changes no row.
    f.backend.execute("DELETE FROM tags WHERE repository_id = -1").await;
    eventually("the change is reported", || sink.changes.load(SeqCst) == 1).await;
    // A transaction that rolls back says nothing (the next change is the second reported).
    f.backend.execute("BEGIN; DELETE FROM tags WHERE repository_id = -2; ROLLBACK").await;
    f.backend.execute("DELETE FROM tags WHERE repository_id = -3").await;
    eventually("the second change is reported", || sink.changes.load(SeqCst) == 2).await;
    assert!(!watching.is_finished());

    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN \"berth_cache\"'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "one listening connection");
    let outcome = tokio::time::timeout(Duration::from_secs(20), watching).await.expect("the watch ends").unwrap();
    assert!(matches!(outcome, Err(StoreError::Unavailable { .. })), "{outcome:?}");
    assert_eq!(sink.changes.load(SeqCst), 2);
}
