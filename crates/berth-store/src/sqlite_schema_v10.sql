-- Schema v10: replication. A registry's (account + region) replication configuration as
-- PutReplicationConfiguration stored it (JSON); each image's replication status per
-- destination (ECR's DescribeImageReplicationStatus), written with the outbox job that does
-- the work, in one transaction; and the remote registries destinations may name
-- (`berth admin add-remote-registry`), their credentials sealed by the key service.
-- postgres_schema_v10.sql is the same tables with byte-order (COLLATE "C") text.
CREATE TABLE replication_configurations (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    config     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region)
);
CREATE TABLE replication_statuses (
    account_id    TEXT NOT NULL,
    region        TEXT NOT NULL,
    name          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    dest_region   TEXT NOT NULL,
    dest_registry TEXT NOT NULL,
    status        TEXT NOT NULL,
    failure_code  TEXT,
    queued_at     BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name, digest, dest_region, dest_registry)
);
CREATE TABLE remote_registries (
    registry_id   TEXT NOT NULL,
    region        TEXT NOT NULL,
    url           TEXT NOT NULL,
    auth_kind     TEXT NOT NULL,
    username      TEXT NOT NULL,
    sealed_secret BLOB,
    insecure      INTEGER NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (registry_id, region)
);
