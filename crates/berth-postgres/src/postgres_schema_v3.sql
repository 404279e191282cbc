-- Schema v3 (as sqlite_schema_v3.sql): upload sessions carry the blob store's
-- cursor and the sha256 state so any node can take the next request; named
-- leases for background jobs that run once across the cluster.
ALTER TABLE uploads ADD COLUMN len BIGINT NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN cursor BYTEA NOT NULL DEFAULT '\x'::bytea;
ALTER TABLE uploads ADD COLUMN hash_state BYTEA;

CREATE TABLE leases (
    name    TEXT COLLATE "C" PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   BIGINT NOT NULL
);
