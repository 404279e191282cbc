-- Schema v8: repository creation templates (ECR's CreateRepositoryCreationTemplate), one per
-- registry and prefix (a repository-name prefix or ROOT). resource_tags and
-- tag_mutability_exclusions are JSON the service writes; applied_for is ECR's RCTAppliedFor
-- values joined by commas. postgres_schema_v8.sql is the same table with byte-order text.
CREATE TABLE repository_creation_templates (
    account_id                 TEXT NOT NULL,
    region                     TEXT NOT NULL,
    prefix                     TEXT NOT NULL,
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
