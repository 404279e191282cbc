-- Schema v9: ECR account settings (a row only once PutAccountSetting set one; absent names
-- read as ECR's defaults) and pull-time update exclusions, per registry (account + region).
-- (as sqlite_schema_v9.sql, with byte-order text so listings page as on SQLite).
CREATE TABLE account_settings (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    value      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account_id, region, name)
);
CREATE TABLE pull_time_exclusions (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    principal_arn TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, principal_arn)
);
