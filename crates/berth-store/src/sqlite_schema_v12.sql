-- Schema v12: the audit trail (CloudTrail's records). One row per recorded call, in the order
-- the trail was written (`seq`, one sequence across every node sharing the store), hash-chained:
-- `hash` = sha256(prev_hash || record), `record` being the exact JSON text hashed. The lookup
-- columns repeat what the record says (verify checks they agree). Resources are their own rows
-- so that a lookup by resource name or type is an index range. `audit_anchor` is where the
-- trail starts after retention pruned its oldest records (the last pruned record's seq and
-- hash); `audit_digests` holds each hour's signed digest (its last record and the chain hash
-- there). postgres_schema_v12.sql is the same tables with byte-order (COLLATE "C") text.
CREATE TABLE audit_events (
    seq            INTEGER PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    account_id     TEXT NOT NULL,
    event_time     BIGINT NOT NULL,
    event_name     TEXT NOT NULL,
    event_source   TEXT NOT NULL,
    username       TEXT NOT NULL,
    access_key_id  TEXT NOT NULL,
    read_only      INTEGER NOT NULL,
    record         TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_events_by_time ON audit_events (account_id, event_time, seq);
CREATE INDEX audit_events_by_name ON audit_events (account_id, event_name, event_time, seq);
CREATE INDEX audit_events_by_user ON audit_events (account_id, username, event_time, seq);
CREATE INDEX audit_events_by_source ON audit_events (account_id, event_source, event_time, seq);
CREATE INDEX audit_events_by_key ON audit_events (account_id, access_key_id, event_time, seq);
CREATE INDEX audit_events_by_read_only ON audit_events (account_id, read_only, event_time, seq);
CREATE INDEX audit_events_event_time ON audit_events (event_time);
CREATE TABLE audit_resources (
    seq            BIGINT NOT NULL REFERENCES audit_events(seq) ON DELETE CASCADE,
    account_id     TEXT NOT NULL,
    resource_name  TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    event_time     BIGINT NOT NULL,
    PRIMARY KEY (seq, resource_name)
);
CREATE INDEX audit_resources_by_name ON audit_resources (account_id, resource_name, event_time, seq);
CREATE INDEX audit_resources_by_type ON audit_resources (account_id, resource_type, event_time, seq);
CREATE TABLE audit_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TABLE audit_digests (
    hour_start   BIGINT PRIMARY KEY,
    last_seq     BIGINT NOT NULL,
    last_hash    TEXT NOT NULL,
    records      BIGINT NOT NULL,
    key_arn      TEXT NOT NULL,
    signature    TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
