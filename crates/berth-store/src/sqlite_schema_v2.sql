-- Schema v2: console passwords, lifecycle policies and the archive storage class,
-- lifecycle previews, image scans and registry scanning configuration.

-- PHC string (argon2id) of the user's console password; NULL = no console password.
ALTER TABLE users ADD COLUMN console_password TEXT;

ALTER TABLE repositories ADD COLUMN lifecycle_policy TEXT;
ALTER TABLE repositories ADD COLUMN lifecycle_policy_updated_at BIGINT;
ALTER TABLE repositories ADD COLUMN lifecycle_evaluated_at BIGINT;

-- 'STANDARD' or 'ARCHIVE' (ECR's imageStatus ACTIVE / ARCHIVED).
ALTER TABLE manifests ADD COLUMN storage_class TEXT NOT NULL DEFAULT 'STANDARD';
ALTER TABLE manifests ADD COLUMN archived_at BIGINT;
ALTER TABLE manifests ADD COLUMN last_activated_at BIGINT;

-- The last lifecycle policy preview of a repository (ECR keeps one per repository).
CREATE TABLE lifecycle_previews (
    repository_id  INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy         TEXT NOT NULL,
    status         TEXT NOT NULL,          -- IN_PROGRESS | COMPLETE | FAILED
    result         TEXT,                   -- JSON, written when complete
    started_at     BIGINT NOT NULL
);

-- One scan per image (the latest); findings as JSON.
CREATE TABLE image_scans (
    repository_id   INTEGER NOT NULL,
    digest          TEXT NOT NULL,
    status          TEXT NOT NULL,         -- IN_PROGRESS | COMPLETE | FAILED
    description     TEXT,
    started_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    vulndb_version  TEXT,
    findings        TEXT,
    PRIMARY KEY (repository_id, digest),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);

CREATE TABLE registry_scanning (
    account_id  TEXT NOT NULL,
    region      TEXT NOT NULL,
    config      TEXT NOT NULL,             -- JSON {scanType, rules}
    PRIMARY KEY (account_id, region)
);
