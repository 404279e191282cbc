-- Schema v7: a blob's bytes are stored once per encryption scope that holds them (an
-- "object"; see BlobObject). Every blob recorded before this version was stored in clear:
-- scope "". postgres_schema_v7.sql is the same table with byte-order (COLLATE "C") text.
CREATE TABLE blob_objects (
    digest     TEXT NOT NULL,
    scope      TEXT NOT NULL,
    stored_at  BIGINT NOT NULL,
    PRIMARY KEY (digest, scope)
);
INSERT INTO blob_objects (digest, scope, stored_at) SELECT digest, '', created_at FROM blobs;
