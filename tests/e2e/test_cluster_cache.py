"""berth as a cluster: manifests by tag are cached on each node and kept right across nodes.

Each node LISTENs for the NOTIFY that PostgreSQL's triggers send when a tag changes, and drops
its cached tags on each one; while it is not listening it caches nothing. These tests move a
tag through node A and read it through node B, which has it cached: B must see the move
promptly (polled with a deadline), also when B's listening connection was killed in between
(a notification sent while B was not listening is gone, so B must have dropped its cache).
"""
import subprocess
import time

from httputil import Registry, error_codes, sha256
from test_cluster import cluster, infra  # noqa: F401  (fixtures)

OCI = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# Ample on a loaded 2-core machine; a node that does not drop its cache serves the old digest
# for minutes (the cache's backstop TTL), so the deadline still tells the two apart.
DEADLINE_S = 20


def psql(url, sql):
    return subprocess.run(["psql", url, "-At", "-c", sql], capture_output=True, text=True, check=True).stdout.split()


def listener_pids(c):
    """The backends of the nodes' cache listeners (their last statement is the LISTEN)."""
    db = c.db.rsplit("/", 1)[1]
    return psql(c.pg.admin_url, "SELECT pid FROM pg_stat_activity "
                f"WHERE datname = '{db}' AND query = 'LISTEN \"berth_cache\"'")


def wait_until(what, check):
    end = time.monotonic() + DEADLINE_S
    last = None
    while time.monotonic() < end:
        last = check()
        if last is True:
            return
        time.sleep(0.02)  # polling for a state, not ordering events
    raise AssertionError(f"not within {DEADLINE_S} s: {what} (last: {last})")


def tag_digest(reg, repo, tag):
    r = reg.get(f"/v2/{repo}/manifests/{tag}", headers=OCI)
    if r.status_code == 404:
        assert error_codes(r) == ["MANIFEST_UNKNOWN"], r.text
        return None
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == sha256(r.content)
    return sha256(r.content)


def sees(reg, repo, tag, digest):
    return lambda: tag_digest(reg, repo, tag) == digest or tag_digest(reg, repo, tag)


def steady(reg, repo, tag, digest, reads=25):
    for _ in range(reads):
        assert tag_digest(reg, repo, tag) == digest


def listening_registries(c):
    """Clients of both nodes, once both listen for cache invalidations."""
    wait_until("both nodes listen for cache invalidations", lambda: len(listener_pids(c)) == 2 or listener_pids(c))
    return [Registry(n.url, token=n.token()) for n in c.nodes]


def test_tag_moved_on_one_node_is_seen_on_the_other(cluster):  # noqa: F811
    ra, rb = listening_registries(cluster)
    repo = "cache/app"
    one = ra.push_image(repo, "t", nlayers=1)
    steady(rb, repo, "t", one["digest"])  # now cached on B

    two = ra.push_image(repo, "t", nlayers=1)
    wait_until("B serves the tag moved on A", sees(rb, repo, "t", two["digest"]))
    steady(rb, repo, "t", two["digest"])

    # Back by a manifest PUT of the first image under the tag, then a tag delete.
    ra.put_manifest(repo, "t", one["manifest"], OCI_MANIFEST)
    wait_until("B serves the retag", sees(rb, repo, "t", one["digest"]))
    assert ra.delete(f"/v2/{repo}/manifests/t").status_code == 202
    wait_until("B forgets the deleted tag", sees(rb, repo, "t", None))

    # And the other way round: a move on B reaches A's cache.
    ra.put_manifest(repo, "t", two["manifest"], OCI_MANIFEST)
    wait_until("A serves its own move", sees(ra, repo, "t", two["digest"]))
    rb.put_manifest(repo, "t", one["manifest"], OCI_MANIFEST)
    wait_until("A serves the tag moved on B", sees(ra, repo, "t", one["digest"]))
    steady(ra, repo, "t", one["digest"])


def test_cache_stays_right_when_the_listening_connection_is_killed(cluster):  # noqa: F811
    ra, rb = listening_registries(cluster)
    repo = "cache/killed"
    one = ra.push_image(repo, "t", nlayers=1)
    two = ra.push_image(repo, "u", nlayers=1)
    steady(rb, repo, "t", one["digest"])

    for round_ in range(2):
        before = listener_pids(cluster)
        killed = psql(cluster.pg.admin_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE pid IN ({','.join(before)})")
        assert killed == ["t", "t"], killed
        # Moved at once, while B may not listen: its notification may never reach B.
        target = two if round_ == 0 else one
        ra.put_manifest(repo, "t", target["manifest"], OCI_MANIFEST)
        wait_until("B serves the tag moved while its listener was down", sees(rb, repo, "t", target["digest"]))
        wait_until("both nodes listen again",
                   lambda: (len(listener_pids(cluster)) == 2 and not set(listener_pids(cluster)) & set(before))
                   or listener_pids(cluster))
        steady(rb, repo, "t", target["digest"])

    # Listening again, B's cache follows moves as before.
    ra.put_manifest(repo, "t", two["manifest"], OCI_MANIFEST)
    wait_until("B serves a move after the listener came back", sees(rb, repo, "t", two["digest"]))
    steady(rb, repo, "t", two["digest"])


def test_a_node_serves_tags_from_its_cache_until_it_is_told(cluster):  # noqa: F811
    """The cache is really used: with the trigger off, a move on A never reaches B, which keeps
    serving what it cached (a node that read the database every time would see the move)."""
    ra, rb = listening_registries(cluster)
    repo = "cache/used"
    one = ra.push_image(repo, "t", nlayers=1)
    two = ra.push_image(repo, "u", nlayers=1)
    steady(rb, repo, "t", one["digest"])  # cached on B
    psql(cluster.db, "ALTER TABLE tags DISABLE TRIGGER tags_notify_cache")
    try:
        ra.put_manifest(repo, "t", two["manifest"], OCI_MANIFEST)
        assert tag_digest(ra, repo, "t") == two["digest"], "A serves its own move"
        steady(rb, repo, "t", one["digest"])  # B was not told
    finally:
        psql(cluster.db, "ALTER TABLE tags ENABLE TRIGGER tags_notify_cache")
    # Told again (the trigger back on), B follows the next move.
    ra.put_manifest(repo, "t", one["manifest"], OCI_MANIFEST)
    ra.put_manifest(repo, "t", two["manifest"], OCI_MANIFEST)
    wait_until("B serves the move once notified", sees(rb, repo, "t", two["digest"]))
