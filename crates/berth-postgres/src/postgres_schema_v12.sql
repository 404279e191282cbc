-- Schema v12: placeholder on the events branch for the audit trail's migration (another
-- branch); dropped when the branches merge.
SELECT 1;
