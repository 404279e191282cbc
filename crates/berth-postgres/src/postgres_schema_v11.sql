-- Schema v11: ECR Public registries (alias, display name) and public repositories' catalog
-- data (as sqlite_schema_v11.sql, with byte-order text).
CREATE TABLE public_registries (
    account_id   TEXT COLLATE "C" PRIMARY KEY,
    alias        TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE TABLE public_repository_catalog (
    repository_id BIGINT PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    catalog       TEXT NOT NULL,
    logo          BYTEA,
    updated_at    BIGINT NOT NULL
);
