-- Schema v4: console sessions carry the epoch of their user they were issued in; sign-out and
-- a console password change move the epoch on, which ends every earlier session of the user.
ALTER TABLE users ADD COLUMN console_session_epoch BIGINT NOT NULL DEFAULT 0;
