-- Schema v6: the key service (KMS keys as service-owned JSON documents, material wrapped by
-- the root key inside them; aliases per account and region).
CREATE TABLE kms_keys (
    key_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    doc TEXT NOT NULL,
    revision BIGINT NOT NULL
);
CREATE INDEX kms_keys_by_scope ON kms_keys (account, region, key_id);
CREATE TABLE kms_aliases (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    alias TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (account, region, alias)
);
