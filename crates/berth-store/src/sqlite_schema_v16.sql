-- Schema v16: nothing for SQLite. PostgreSQL's v16 adds the triggers that tell the other
-- nodes' caches about tag changes; one SQLite database has one berth process, which
-- invalidates its own caches. Kept so both stores count versions alike.
SELECT 1;
