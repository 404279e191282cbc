-- Schema v13: webhooks (berth-core::events). An account's webhooks (the URL, the detail-types
-- each receives, one a line, "" for all, and the HMAC secret sealed under the root key) and
-- each webhook's newest delivery attempts (bounded by the service). The deliveries themselves
-- are `webhook_delivery` jobs of the outbox (schema v5).
-- postgres_schema_v13.sql is the same tables with byte-order (COLLATE "C") text.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    url             TEXT NOT NULL,
    detail_types    TEXT NOT NULL,
    sealed_secret   BLOB NOT NULL,
    created_at      BIGINT NOT NULL,
    last_error      TEXT,
    last_error_at   BIGINT,
    last_success_at BIGINT
);
CREATE INDEX webhooks_account ON webhooks (account_id, created_at);
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    webhook_id  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    detail_type TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    outcome     TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
