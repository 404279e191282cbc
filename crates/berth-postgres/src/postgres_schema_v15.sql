-- Schema v15: pull-through cache rules and tag check times (as sqlite_schema_v15.sql, with
-- byte-order text).
CREATE TABLE pull_through_rules (
    account_id        TEXT COLLATE "C" NOT NULL,
    region            TEXT COLLATE "C" NOT NULL,
    prefix            TEXT COLLATE "C" NOT NULL,
    upstream_url      TEXT NOT NULL,
    upstream_registry TEXT NOT NULL,
    upstream_prefix   TEXT NOT NULL,
    credential_arn    TEXT,
    custom_role_arn   TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, prefix)
);
CREATE TABLE pull_through_tags (
    account_id TEXT COLLATE "C" NOT NULL,
    region     TEXT COLLATE "C" NOT NULL,
    repository TEXT COLLATE "C" NOT NULL,
    tag        TEXT COLLATE "C" NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, repository, tag)
);
