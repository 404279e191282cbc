-- Schema v14: Secrets Manager secrets (as sqlite_schema_v14.sql, with byte-order text).
CREATE TABLE secrets (
    account_id    TEXT COLLATE "C" NOT NULL,
    region        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    arn           TEXT COLLATE "C" NOT NULL UNIQUE,
    doc           TEXT NOT NULL,
    deletion_date BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    revision      BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, name)
);
