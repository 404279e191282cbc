-- Schema v11: ECR Public. One public registry per account (its alias, unique across accounts,
-- and its catalog display name), and each public repository's catalog data (the JSON of the
-- texts and lists, the logo's PNG bytes apart). Public repositories themselves are ordinary
-- `repositories` rows in the account's "@public" registry scope; a catalog row goes with its
-- repository (ON DELETE CASCADE: in the transaction that deletes the repository).
-- postgres_schema_v11.sql is the same tables with byte-order (COLLATE "C") text.
CREATE TABLE public_registries (
    account_id   TEXT PRIMARY KEY,
    alias        TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE TABLE public_repository_catalog (
    repository_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    catalog       TEXT NOT NULL,
    logo          BLOB,
    updated_at    BIGINT NOT NULL
);
