//! Every store call has a deadline: a primary that stops answering (packets vanish, sockets stay
//! open) makes calls fail as `Unavailable` instead of hanging until TCP gives up, a statement the
//! server cancels at its `statement_timeout` is `Unavailable` too, and the store recovers by
//! itself once the server answers again. Needs BERTH_TEST_POSTGRES_URL (see metadata_suite.rs).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use berth_postgres::PostgresMetadataStore;
use berth_store::meta::RepoKey;
use berth_store::{MetadataStore, RepositoryStore, StoreError};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

mod common;
use common::settings;

/// The deadline the store gets here: short, so a black hole is noticed quickly.
const DEADLINE: Duration = Duration::from_secs(1);
/// Only a guard against a hang; nothing waits for it.
const HANG: Duration = Duration::from_secs(60);

fn server_url() -> String {
    std::env::var("BERTH_TEST_POSTGRES_URL").expect("BERTH_TEST_POSTGRES_URL (scripts/postgres-test-server.sh start DIR)")
}

/// (host:port, the URL with `authority` and `db` in place of the server's).
fn split_url(url: &str) -> (String, impl Fn(&str, &str) -> String) {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")).expect("postgres:// URL");
    let (userinfo_host, _) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, host) = userinfo_host.rsplit_once('@').map_or(("", userinfo_host), |(u, h)| (u, h));
    let userinfo = userinfo.to_string();
    (host.to_string(), move |authority: &str, db: &str| format!("postgres://{userinfo}@{authority}/{db}"))
}

/// A TCP proxy that can stop forwarding without closing anything: a black-holed primary.
struct Proxy {
    addr: String,
    forwarding: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let (forwarding, _) = watch::channel(true);
        let switch = forwarding.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, switch.subscribe()));
                tokio::spawn(pump(sr, cw, switch.subscribe()));
            }
        });
        Proxy { addr, forwarding }
    }

    fn black_hole(&self) {
        self.forwarding.send_replace(false);
    }

    fn restore(&self) {
        self.forwarding.send_replace(true);
    }
}

/// Copies bytes while forwarding is on; while it is off, reads nothing and writes nothing, so
/// both peers' sockets stay open and silent.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mut on: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if on.wait_for(|on| *on).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just before the switch went off are held back too.
        if on.wait_for(|on| *on).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A fresh database on the test server; returns its name.
async fn fresh_database(admin_url: &str) -> String {
    let db = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url).await.expect("connect to the test server");
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.expect("create test database");
    admin.close().await.expect("close admin connection");
    db
}

fn key(name: &str) -> RepoKey {
    RepoKey { account: "123456789012".into(), region: "us-east-1".into(), name: name.into() }
}

/// The call returned (rather than hanging) and said Unavailable.
async fn assert_unavailable<T: std::fmt::Debug>(call: impl Future<Output = Result<T, StoreError>>, what: &str) -> String {
    let result = tokio::time::timeout(HANG, call).await.unwrap_or_else(|_| panic!("{what}: the call hung past its deadline"));
    match result {
        Err(StoreError::Unavailable { what: backend, detail }) => {
            assert_eq!(backend, "the metadata database");
            detail
        }
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_black_holed_primary_fails_calls_within_the_deadline_and_they_recover_when_it_answers() {
    let url = server_url();
    let (upstream, with) = split_url(&url);
    let db = fresh_database(&url).await;
    let proxy = Proxy::start(upstream).await;
    let store: Arc<dyn MetadataStore> =
        Arc::new(PostgresMetadataStore::connect_with_deadline(&with(&proxy.addr, &db), DEADLINE).await.expect("connect through the proxy"));
    let settings = settings();
    store.create_repository(&key("before"), &settings, &[], 1).await.expect("create before the outage").expect("created");

    proxy.black_hole();
    // A read on a pooled connection, a write transaction, and more calls than the pool has idle
    // connections: each one gives up at its deadline.
    assert_unavailable(store.get_repository(&key("before")), "read").await;
    assert_unavailable(store.create_repository(&key("during"), &settings, &[], 2), "write").await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get_repository(&key("before")).await })
        })
        .collect();
    for call in calls {
        assert_unavailable(async { call.await.expect("the call's task") }, "concurrent read").await;
    }

    proxy.restore();
    // No restart: the next calls find working connections (drained or new ones).
    let found = tokio::time::timeout(HANG, store.get_repository(&key("before"))).await.expect("no hang").expect("read after recovery");
    assert_eq!(found.map(|r| r.key.name), Some("before".to_string()));
    let created = tokio::time::timeout(HANG, store.create_repository(&key("after"), &settings, &[], 3)).await.expect("no hang");
    assert!(created.expect("write after recovery").is_some());
    // The write that met its deadline during the outage never committed (its BEGIN went unanswered).
    assert!(store.get_repository(&key("during")).await.expect("read").is_none());
}

#[tokio::test]
async fn a_query_in_flight_when_the_primary_goes_silent_fails_at_the_client_deadline() {
    // Long enough that the server's own statement_timeout cannot answer before the proxy goes
    // silent (that happens as soon as the query is seen waiting, milliseconds in).
    const IN_FLIGHT_DEADLINE: Duration = Duration::from_secs(3);
    let url = server_url();
    let (upstream, with) = split_url(&url);
    let db = fresh_database(&url).await;
    let proxy = Proxy::start(upstream.clone()).await;
    let store = Arc::new(
        PostgresMetadataStore::connect_with_deadline(&with(&proxy.addr, &db), IN_FLIGHT_DEADLINE).await.expect("connect through the proxy"),
    );
    store.create_repository(&key("r"), &settings(), &[], 1).await.expect("create").expect("created");

    // The store's read reaches the server and waits there on a lock another session holds...
    let mut blocker = sqlx::PgConnection::connect(&with(&upstream, &db)).await.expect("blocker connects");
    let mut tx = blocker.begin().await.expect("begin");
    sqlx::query("LOCK TABLE repositories IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await.expect("lock");
    let reader = store.clone();
    let read = tokio::spawn(async move { reader.get_repository(&key("r")).await });
    tokio::time::timeout(HANG, async {
        loop {
            let waiting: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'repositories'::regclass")
                    .fetch_one(&mut *tx)
                    .await
                    .expect("reading pg_locks");
            if waiting > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the store's read reaches the server");
    // ...then the network drops everything: whatever the server answers never arrives.
    proxy.black_hole();
    tx.rollback().await.expect("release the table");
    let detail = assert_unavailable(async { read.await.expect("the read's task") }, "read in flight").await;
    assert!(detail.contains("no answer from PostgreSQL"), "the client-side deadline ended it: {detail}");

    proxy.restore();
    let row = tokio::time::timeout(HANG, store.get_repository(&key("r"))).await.expect("no hang").expect("read after recovery");
    assert_eq!(row.map(|r| r.key.name), Some("r".to_string()));
}

#[tokio::test]
async fn a_statement_the_server_cancels_at_its_timeout_is_unavailable_and_the_connection_stays_usable() {
    let url = server_url();
    let (upstream, with) = split_url(&url);
    let db = fresh_database(&url).await;
    let store_url = with(&upstream, &db);
    let store = PostgresMetadataStore::connect_with_deadline(&store_url, DEADLINE).await.expect("connect");
    store.create_repository(&key("r"), &settings(), &[], 1).await.expect("create").expect("created");

    // Another session holds the table: the store's read waits until the server cancels it.
    let mut blocker = sqlx::PgConnection::connect(&store_url).await.expect("blocker connects");
    let mut tx = blocker.begin().await.expect("begin");
    sqlx::query("LOCK TABLE repositories IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await.expect("lock");
    let detail = assert_unavailable(store.get_repository(&key("r")), "blocked read").await;
    assert!(detail.contains("statement timeout"), "the server's statement_timeout cancelled it: {detail}");
    tx.rollback().await.expect("release the table");

    let row = store.get_repository(&key("r")).await.expect("read once the table is free");
    assert_eq!(row.map(|r| r.key.name), Some("r".to_string()));
}
