-- Schema v8 is another branch's (repository creation templates); this placeholder keeps the
-- version sequence whole on the branch that adds v9 and is replaced by the real v8 at merge.
SELECT 1;
