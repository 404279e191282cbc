-- Schema v4 (as sqlite_schema_v4.sql): console sessions carry the epoch of their user they
-- were issued in; sign-out and a console password change move it on.
ALTER TABLE users ADD COLUMN console_session_epoch BIGINT NOT NULL DEFAULT 0;
