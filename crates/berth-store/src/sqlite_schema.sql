-- berth metadata schema, version 1. Written to run unchanged (types aside)
-- on PostgreSQL: no SQLite-only constructs beyond INTEGER PRIMARY KEY.

-- ---- identity ----
CREATE TABLE accounts (
    account_id  TEXT PRIMARY KEY,          -- 12-digit registry id
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    arn         TEXT PRIMARY KEY,          -- arn:aws:iam::<account>:user/<name>
    account_id  TEXT NOT NULL REFERENCES accounts(account_id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE access_keys (
    access_key_id  TEXT PRIMARY KEY,
    secret         TEXT NOT NULL,
    user_arn       TEXT NOT NULL REFERENCES users(arn) ON DELETE CASCADE,
    active         INTEGER NOT NULL,
    created_at     BIGINT NOT NULL
);

-- Identity policies attached to users: managed (by name) or inline JSON.
CREATE TABLE user_policies (
    user_arn     TEXT NOT NULL REFERENCES users(arn) ON DELETE CASCADE,
    policy_name  TEXT NOT NULL,
    document     TEXT NOT NULL,
    PRIMARY KEY (user_arn, policy_name)
);

-- HMAC keys for registry tokens; the newest signs, all verify (rotation).
CREATE TABLE signing_keys (
    id          INTEGER PRIMARY KEY,
    secret      BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE registry_policies (
    account_id  TEXT NOT NULL,
    region      TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (account_id, region)
);

-- ---- repositories and content ----
CREATE TABLE repositories (
    id                    INTEGER PRIMARY KEY,
    account_id            TEXT NOT NULL,
    region                TEXT NOT NULL,
    name                  TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    tag_mutability        TEXT NOT NULL,   -- MUTABLE | IMMUTABLE | *_WITH_EXCLUSION
    tag_mutability_exclusions TEXT,        -- JSON array of ECR exclusion filters
    scan_on_push          INTEGER NOT NULL,
    encryption_type       TEXT NOT NULL,
    kms_key               TEXT,
    policy                TEXT,            -- repository policy JSON
    UNIQUE (account_id, region, name)
);

CREATE TABLE resource_tags (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag_key        TEXT NOT NULL,
    tag_value      TEXT NOT NULL,
    PRIMARY KEY (repository_id, tag_key)
);

-- Every blob the blob store holds, deduplicated across repositories and accounts.
CREATE TABLE blobs (
    digest        TEXT PRIMARY KEY,
    size          BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);

-- Which repositories may serve which blobs (access is per repository).
CREATE TABLE repository_blobs (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         TEXT NOT NULL REFERENCES blobs(digest),
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

CREATE TABLE manifests (
    repository_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest          TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    artifact_type   TEXT,
    subject         TEXT,
    annotations     TEXT,
    size            BIGINT NOT NULL,       -- bytes of the manifest itself
    image_size      BIGINT NOT NULL,       -- sum of what it references (ECR imageSizeInBytes)
    content         BLOB NOT NULL,
    pushed_at       BIGINT NOT NULL,
    last_pulled_at  BIGINT,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repository_id, subject);
CREATE INDEX manifests_pushed ON manifests(repository_id, pushed_at);

-- Blobs (kind 0) and child manifests (kind 1) a manifest references.
CREATE TABLE manifest_references (
    repository_id    INTEGER NOT NULL,
    manifest_digest  TEXT NOT NULL,
    child_digest     TEXT NOT NULL,
    kind             INTEGER NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, child_digest, kind),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_child ON manifest_references(child_digest, kind);

CREATE TABLE tags (
    repository_id    INTEGER NOT NULL,
    name             TEXT NOT NULL,
    manifest_digest  TEXT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_manifest ON tags(repository_id, manifest_digest, name);

CREATE TABLE uploads (
    id             TEXT PRIMARY KEY,
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    started_at     BIGINT NOT NULL
);
