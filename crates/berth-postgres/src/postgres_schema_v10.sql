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
    queued_at     BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name, digest, dest_region, dest_registry)
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
