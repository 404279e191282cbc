-- Schema v2 (as sqlite_schema_v2.sql): console passwords, lifecycle policies and
-- the archive storage class, lifecycle previews, image scans, registry scanning.

ALTER TABLE users ADD COLUMN console_password TEXT;

ALTER TABLE repositories ADD COLUMN lifecycle_policy TEXT;
ALTER TABLE repositories ADD COLUMN lifecycle_policy_updated_at BIGINT;
ALTER TABLE repositories ADD COLUMN lifecycle_evaluated_at BIGINT;

-- 'STANDARD' or 'ARCHIVE' (ECR's imageStatus ACTIVE / ARCHIVED).
ALTER TABLE manifests ADD COLUMN storage_class TEXT NOT NULL DEFAULT 'STANDARD';
ALTER TABLE manifests ADD COLUMN archived_at BIGINT;
ALTER TABLE manifests ADD COLUMN last_activated_at BIGINT;

CREATE TABLE lifecycle_previews (
    repository_id  BIGINT PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy         TEXT NOT NULL,
    status         TEXT NOT NULL,
    result         TEXT,
    started_at     BIGINT NOT NULL
);

CREATE TABLE image_scans (
    repository_id   BIGINT NOT NULL,
    digest          TEXT COLLATE "C" NOT NULL,
    status          TEXT NOT NULL,
    description     TEXT,
    started_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    vulndb_version  TEXT,
    findings        TEXT,
    PRIMARY KEY (repository_id, digest),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);

CREATE TABLE registry_scanning (
    account_id  TEXT COLLATE "C" NOT NULL,
    region      TEXT COLLATE "C" NOT NULL,
    config      TEXT NOT NULL,
    PRIMARY KEY (account_id, region)
);
