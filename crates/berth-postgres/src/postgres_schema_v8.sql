-- Schema v8 (as sqlite_schema_v8.sql): repository creation templates, one per registry and
-- prefix; prefix compares in byte order (COLLATE "C"), as SQLite's BINARY does, so pages
-- of DescribeRepositoryCreationTemplates are in the same order on both backends.
CREATE TABLE repository_creation_templates (
    account_id                 TEXT NOT NULL,
    region                     TEXT NOT NULL,
    prefix                     TEXT COLLATE "C" NOT NULL,
    description                TEXT,
    encryption_type            TEXT NOT NULL,
    kms_key                    TEXT,
    resource_tags              TEXT NOT NULL,
    tag_mutability             TEXT NOT NULL,
    tag_mutability_exclusions  TEXT,
    repository_policy          TEXT,
    lifecycle_policy           TEXT,
    applied_for                TEXT NOT NULL,
    custom_role_arn            TEXT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    PRIMARY KEY (account_id, region, prefix)
);
