-- Schema v9: ECR account settings (a row only once PutAccountSetting set one; absent names
-- read as ECR's defaults) and pull-time update exclusions, per registry (account + region).
-- postgres_schema_v9.sql is the same tables with byte-order (COLLATE "C") text.
CREATE TABLE account_settings (
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);
CREATE TABLE pull_time_exclusions (
    account_id    TEXT NOT NULL,
    region        TEXT NOT NULL,
    principal_arn TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, principal_arn)
);
