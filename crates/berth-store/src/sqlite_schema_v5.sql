-- Schema v5: the durable job outbox (see jobs.rs). One row per (kind, key) while the job waits,
-- runs or has been given up on; a finished job is deleted.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    key          TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL,
    run_after    BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    holder       TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    UNIQUE (kind, key)
);
CREATE INDEX jobs_due ON jobs (status, run_after);
CREATE INDEX jobs_holder ON jobs (holder) WHERE holder IS NOT NULL;
