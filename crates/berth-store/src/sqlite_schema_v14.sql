-- Schema v14: Secrets Manager secrets (berth-core::secrets). One row per secret: its name
-- within the account and region, its ARN, and the service's JSON document (description, KMS
-- key, tags, versions with their values sealed by the key service: never plaintext here).
-- deletion_date is set while a deletion is scheduled. postgres_schema_v14.sql is the same
-- table with byte-order (COLLATE "C") text.
CREATE TABLE secrets (
    account_id    TEXT NOT NULL,
    region        TEXT NOT NULL,
    name          TEXT NOT NULL,
    arn           TEXT NOT NULL UNIQUE,
    doc           TEXT NOT NULL,
    deletion_date BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    revision      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);
