-- Schema v3: several berth nodes share one metadata store.
-- An upload session records where its blob store's cursor and its sha256 state
-- stand after every append, so any node can take the next request.
ALTER TABLE uploads ADD COLUMN len BIGINT NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN cursor BLOB NOT NULL DEFAULT x'';
ALTER TABLE uploads ADD COLUMN hash_state BLOB;

-- Background jobs that must run once across the cluster (gc, lifecycle) take a
-- named lease; `until` is when it lapses unless its holder renews it.
CREATE TABLE leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   BIGINT NOT NULL
);
