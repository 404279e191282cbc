-- Schema v16: cluster-wide cache invalidation. Every node LISTENs on berth_cache; a change to
-- what a node may cache for a manifest GET by tag (a tag created, moved or deleted, directly
-- or by a cascade; a manifest archived or restored) NOTIFYs it, delivered at commit. Triggers
-- rather than the application's own NOTIFY, so that no writer (another node, `berth admin`,
-- an import) can change these rows without telling the caches. The payload is empty: nodes
-- drop every cached tag (a finer key would need the repository's name, which a cascade from
-- a repository delete can no longer read).
CREATE FUNCTION berth_notify_cache() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('berth_cache', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tags_notify_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tags
    FOR EACH STATEMENT EXECUTE FUNCTION berth_notify_cache();

-- Pull times (last_pulled_at) change on every flush and are not cached: only the storage class.
CREATE TRIGGER manifests_notify_cache
    AFTER UPDATE OF storage_class ON manifests
    FOR EACH ROW WHEN (OLD.storage_class IS DISTINCT FROM NEW.storage_class)
    EXECUTE FUNCTION berth_notify_cache();
