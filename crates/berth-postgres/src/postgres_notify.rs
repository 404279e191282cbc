//! Cache invalidation across nodes: LISTEN on the channel schema v16's triggers NOTIFY.
//!
//! A notification arrives after the change it reports committed, so a node that drops its
//! cached tags on receipt never keeps a value older than the change for longer than delivery
//! takes. What cannot be vouched for is a silent gap: a connection that died (reported at once
//! when PostgreSQL or the network closes it) or one that stopped carrying anything without
//! closing (a partition). Against the latter every node NOTIFYs a heartbeat every
//! `HEARTBEAT`, through its ordinary pool; a listener that hears nothing at all, not even its
//! own heartbeat, for `SILENCE` gives up, so a partitioned node serves cached tags for at most
//! `SILENCE` after the last change it was told about.

use std::time::Duration;

use berth_store::{ChangeSink, StoreError};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;

use crate::db::DbContext;

/// Channel of schema v16's triggers.
const CHANNEL: &str = "berth_cache";
/// Payload of the heartbeat (the triggers send an empty one).
const HEARTBEAT_PAYLOAD: &str = "heartbeat";
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Longest silence a live listener can have: a few heartbeats, so one late under load (the
/// pool busy, the machine slow) costs nothing but a missed heartbeat does not go unnoticed.
pub(crate) const SILENCE: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens until the connection is lost or falls silent; returns the reason as an error.
pub(crate) async fn watch(pool: &PgPool, sink: &dyn ChangeSink) -> Result<(), StoreError> {
    // Its own connection, not one of the pool's: the listener holds it for good.
    let own = PgPoolOptions::new().max_connections(1).acquire_timeout(CONNECT_TIMEOUT).connect_lazy_with((*pool.connect_options()).clone());
    let mut listener = PgListener::connect_with(&own).await.ctx("connecting the cache listener")?;
    // A lost connection is reported, never silently replaced: notifications sent meanwhile are gone.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await.ctx("listening for cache invalidations")?;
    sink.listening();
    let heartbeat = async {
        let mut every = tokio::time::interval(HEARTBEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            // A failed heartbeat is only a missed one; the silence limit decides.
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(HEARTBEAT_PAYLOAD).execute(pool).await {
                tracing::debug!(error = %e, "cache heartbeat failed");
            }
        }
    };
    let listen = async {
        loop {
            // Dropping a wait that timed out drops the listener with it (we return), so no
            // half-read message is ever read on from.
            match tokio::time::timeout(SILENCE, listener.try_recv()).await {
                Err(_) => return Err(lost(format!("no notification, not even a heartbeat, for {} ms", SILENCE.as_millis()))),
                Ok(Ok(Some(n))) => {
                    if n.payload() != HEARTBEAT_PAYLOAD {
                        sink.tags_changed();
                    }
                }
                Ok(Ok(None)) => return Err(lost("the connection was closed".into())),
                Ok(Err(e)) => return Err(lost(format!("the connection failed: {e}"))),
            }
        }
    };
    tokio::select! {
        res = listen => res,
        () = heartbeat => Err(lost("the heartbeat stopped".into())),
    }
}

fn lost(detail: String) -> StoreError {
    StoreError::Unavailable { what: "the cache invalidation listener", detail }
}
