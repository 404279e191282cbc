-- Schema v15: pull-through cache rules (berth-core::pull_through), keyed by registry and
-- repository prefix, and when each cached tag was last found current upstream (the refresh rule).
-- postgres_schema_v15.sql is the same tables with byte-order (COLLATE "C") text.
CREATE TABLE pull_through_rules (
    account_id        TEXT NOT NULL,
    region            TEXT NOT NULL,
    prefix            TEXT NOT NULL,
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
    account_id TEXT NOT NULL,
    region     TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, repository, tag)
);
