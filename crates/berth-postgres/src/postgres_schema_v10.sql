-- Schema v10: replication (as sqlite_schema_v10.sql, with byte-order text so listings page as
-- on SQLite).
CREATE TABLE replication_configurations (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    config     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);
CREATE TABLE replication_statuses (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    digest        TEXT COLLATE "C" NOT NULL,
    dest_region   TEXT COLLATE "C" NOT NULL,
    dest_registry TEXT COLLATE "C" NOT NULL,
    status        TEXT NOT NULL,
    failure_code  TEXT,
    origin        TEXT,
    queued_at     BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name, digest, dest_region, dest_registry)
);
CREATE INDEX replication_statuses_origin ON replication_statuses (origin);
-- Backfills: images pushed before the rules, queued for them page by page (the cursor lets a
-- backfill resume after a restart); the statuses they queued carry their id as origin.
CREATE TABLE replication_backfills (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    id            TEXT COLLATE "C" NOT NULL,
    status        TEXT NOT NULL,
    request       TEXT NOT NULL,
    cursor_repo   TEXT,
    cursor_digest TEXT,
    images_queued BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, id)
);
CREATE TABLE remote_registries (
    registry_id   TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    url           TEXT NOT NULL,
    auth_kind     TEXT NOT NULL,
    username      TEXT NOT NULL,
    sealed_secret BYTEA,
    insecure      BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (registry_id, region)
);
