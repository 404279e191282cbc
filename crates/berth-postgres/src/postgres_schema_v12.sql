-- Schema v12: the audit trail (as sqlite_schema_v12.sql, with byte-order text and BOOLEAN read_only).
CREATE TABLE audit_events (
    seq            BIGINT PRIMARY KEY,
    event_id       TEXT COLLATE "C" NOT NULL UNIQUE,
    account_id     TEXT COLLATE "C" NOT NULL,
    event_time     BIGINT NOT NULL,
    event_name     TEXT NOT NULL,
    event_source   TEXT NOT NULL,
    username       TEXT NOT NULL,
    access_key_id  TEXT COLLATE "C" NOT NULL,
    read_only      BOOLEAN NOT NULL,
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
    account_id     TEXT COLLATE "C" NOT NULL,
    resource_name  TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    event_time     BIGINT NOT NULL,
    PRIMARY KEY (seq, resource_name)
);
CREATE INDEX audit_resources_by_name ON audit_resources (account_id, resource_name, event_time, seq);
CREATE INDEX audit_resources_by_type ON audit_resources (account_id, resource_type, event_time, seq);
CREATE TABLE audit_anchor (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
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
