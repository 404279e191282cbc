-- Schema v14: placeholder on the pull-through cache branch (the secrets store's v14 replaces
-- it at merge).
SELECT 1;
