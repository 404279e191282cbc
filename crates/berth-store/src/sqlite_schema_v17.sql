-- Schema v17: nothing for SQLite. PostgreSQL's v17 adds the triggers that tell the other
-- nodes' caches about tag changes; one SQLite database has one berth process, which
-- invalidates its own caches. Kept so both stores count versions alike.
SELECT 1;
