-- Schema v7 (as sqlite_schema_v7.sql): a blob's bytes are stored once per encryption scope
-- that holds them; every blob recorded before this version was stored in clear (scope "").
CREATE TABLE blob_objects (
    digest     TEXT COLLATE "C" NOT NULL,
    scope      TEXT COLLATE "C" NOT NULL,
    stored_at  BIGINT NOT NULL,
    PRIMARY KEY (digest, scope)
);
INSERT INTO blob_objects (digest, scope, stored_at) SELECT digest, '', created_at FROM blobs;
