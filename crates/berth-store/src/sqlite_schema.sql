-- berth metadata schema, version 1. Written to run unchanged (types aside)
-- on PostgreSQL: no SQLite-only constructs beyond INTEGER PRIMARY KEY.
CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Every blob the blob store holds, deduplicated across repositories.
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
    size            BIGINT NOT NULL,
    content         BLOB NOT NULL,
    pushed_at       BIGINT NOT NULL,
    last_pulled_at  BIGINT,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repository_id, subject);

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
CREATE INDEX tags_manifest ON tags(repository_id, manifest_digest);

CREATE TABLE uploads (
    id             TEXT PRIMARY KEY,
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    started_at     BIGINT NOT NULL
);
