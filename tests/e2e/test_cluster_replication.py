"""Replication (issue 17) in a cluster: two berth nodes on one PostgreSQL database and one
S3-compatible bucket (test_cluster.py's `infra` and `Cluster`).

- Images pushed through both nodes under a rule to two other regions of the account become
  COMPLETE, the copies pull with the pushed digests through the other node, and every copy was
  made once: the nodes' `berth_replication_completed_total` add up to images × destinations.
- A copy to a remote registry that is down waits between retries as a pending job; the node that
  pushed it is stopped in such a wait, the remote comes up, and the other node finishes the copy.
"""
import json
import os
import re
import subprocess
import time

import requests

import images
from conftest import berth_bin
from test_cluster import Cluster, free_port, infra  # noqa: F401  (infra: the cluster test's PostgreSQL and s3s-fs)
from test_encryption import push

DEADLINE = 90
REMOTE_ID = "111111111111"
WEST = ("us-west-2", "123456789012")
EU = ("eu-west-1", "123456789012")


def statuses(node, repo, tag):
    got = node.ecr().describe_image_replication_status(repositoryName=repo, imageId={"imageTag": tag})
    return {(s["region"], s["registryId"]): (s["status"], s.get("failureCode")) for s in got["replicationStatuses"]}


def settled(node, repo, tag, deadline_s=DEADLINE):
    """Polls (through `node`) until no destination of repo:tag is IN_PROGRESS."""
    end = time.monotonic() + deadline_s
    while True:
        got = statuses(node, repo, tag)
        if got and all(status != "IN_PROGRESS" for status, _ in got.values()):
            return got
        assert time.monotonic() < end, f"replication of {repo}:{tag} still in progress after {deadline_s} s: {got}"
        time.sleep(0.1)


def manifest_at(node, path, media_type):
    """GET a manifest through a node's /v2/ with the admin's registry token: (status, digest header, body)."""
    r = requests.get(f"{node.url}/v2/{path}", auth=("AWS", node.token()), headers={"Accept": media_type}, timeout=30)
    return r.status_code, r.headers.get("Docker-Content-Digest"), r.content


def metric_by_destination(text, name):
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf'^{name}{{destination="([^"]+)"}} (\S+)$', text, re.M)}


def replication_totals(nodes, name):
    """`name` by destination, summed over the nodes' /metrics."""
    total = {}
    for n in nodes:
        for dest, v in metric_by_destination(requests.get(f"{n.url}/metrics", timeout=10).text, name).items():
            total[dest] = total.get(dest, 0) + v
    return total


def psql(cluster, sql):
    p = subprocess.run(["psql", cluster.db, "-At", "-F", "|", "-c", sql], capture_output=True, text=True, check=True)
    return [line.split("|") for line in p.stdout.splitlines() if line]


def configure(node, rules):
    got = node.ecr().put_replication_configuration(replicationConfiguration={"rules": rules})
    assert got["replicationConfiguration"]["rules"] == rules


def test_each_copy_is_made_once_by_one_of_the_nodes(infra, tmp_path):  # noqa: F811
    cluster = Cluster(infra, tmp_path)
    try:
        a, b = cluster.nodes
        rules = [{"destinations": [{"region": WEST[0], "registryId": WEST[1]}, {"region": EU[0], "registryId": EU[1]}],
                  "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]}]
        configure(a, rules)
        assert b.ecr().describe_registry()["replicationConfiguration"] == {"rules": rules}, "one configuration for the cluster"

        # Pushed through both nodes, so that both nodes' workers are woken with work to claim.
        pushed = {}
        for i in range(6):
            tag = f"v{i}"
            img = images.build_image(str(tmp_path / f"layout{i}"), tag, random_size=256 * 1024, with_busybox=False)
            push(a if i % 2 == 0 else b, img, "prod/app", tag=tag)
            pushed[tag] = img
        # And one to a repository no rule matches: nothing is queued for it.
        other = images.build_image(str(tmp_path / "other"), "v1", random_size=64 * 1024, with_busybox=False)
        push(a, other, "dev/app")

        for tag, img in pushed.items():
            assert settled(b, "prod/app", tag) == {WEST: ("COMPLETE", None), EU: ("COMPLETE", None)}
            want = images.manifest_digest(img.layout, tag)
            for region, account in (WEST, EU):
                # The copy pulls through the node that did not receive the push, too.
                for node in (a, b):
                    path = f"{account}/{region}/prod/app/manifests/{tag}"
                    status, digest, body = manifest_at(node, path, images.descriptor(img.layout, tag)["mediaType"])
                    assert (status, digest, body) == (200, want, img.manifest_bytes), (node.url, region, tag)
        assert statuses(a, "dev/app", "v1") == {}

        completed = replication_totals(cluster.nodes, "berth_replication_completed_total")
        assert completed == {f"{WEST[0]}/{WEST[1]}": 6, f"{EU[0]}/{EU[1]}": 6}, completed
        failed = replication_totals(cluster.nodes, "berth_replication_failed_total")
        assert sum(failed.values()) == 0, failed
        assert psql(cluster, "SELECT count(*) FROM jobs WHERE kind = 'replicate'") == [["0"]], "finished jobs leave the outbox"
        west = a.ecr(region=WEST[0]).describe_images(repositoryName="prod/app")["imageDetails"]
        assert sorted(t for d in west for t in d["imageTags"]) == sorted(pushed)
    finally:
        cluster.stop()


def add_remote(node, cluster, *args):
    """`berth admin add-remote-registry` on the cluster's database (the nodes' root key from their env)."""
    storage = ["--metadata", cluster.db, "--blobs", f"s3://{cluster.s3.bucket}/{cluster.prefix}",
               "--s3-endpoint", cluster.s3.endpoint, "--s3-path-style"]
    p = subprocess.run([berth_bin(), "admin", "add-remote-registry", "--data-dir", node.data_dir, *storage, *args],
                       input="", capture_output=True, text=True, env=node.env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def pending_retry(cluster, margin_ms, deadline_s=DEADLINE):
    """Waits until the replicate job is pending (between retries) with at least `margin_ms` before
    it is due again, so no node can claim it for that long; returns (attempts, last_error)."""
    end = time.monotonic() + deadline_s
    while True:
        rows = psql(cluster, "SELECT status, run_after, attempts, coalesce(last_error, '') FROM jobs WHERE kind = 'replicate'")
        assert len(rows) == 1, rows
        status, run_after, attempts, error = rows[0]
        if status == "pending" and int(attempts) >= 1 and int(run_after) - time.time() * 1000 >= margin_ms:
            return int(attempts), error
        assert time.monotonic() < end, f"the job was never pending with {margin_ms} ms to wait: {rows}"
        time.sleep(0.05)


def start_distribution(tmp_path, port):
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'dist'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    dist = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                return dist
        except requests.ConnectionError:
            pass
        assert dist.poll() is None and time.monotonic() < end, "docker-registry did not start"
        time.sleep(0.05)


def test_a_copy_waiting_to_retry_on_a_stopped_node_is_finished_by_the_other(infra, tmp_path):  # noqa: F811
    cluster = Cluster(infra, tmp_path)
    dist = None
    try:
        a, b = cluster.nodes
        port = free_port()  # nothing listens there yet: the remote is down
        add_remote(a, cluster, "--registry-id", REMOTE_ID, "--url", f"http://127.0.0.1:{port}", "--insecure", "--auth", "anonymous")
        configure(a, [{"destinations": [{"region": "us-east-1", "registryId": REMOTE_ID}],
                       "repositoryFilters": [{"filter": "edge", "filterType": "PREFIX_MATCH"}]}])
        img = images.build_image(str(tmp_path / "layout"), "v1", random_size=512 * 1024, with_busybox=False)
        push(a, img, "edge/app")

        # The copy fails (connection refused) and waits with backoff; stop A while it waits:
        # no node holds it then, so nothing depends on a lease running out.
        attempts, error = pending_retry(cluster, margin_ms=2500)
        assert "RemoteUnavailable" in error, error
        assert statuses(b, "edge/app", "v1") == {("us-east-1", REMOTE_ID): ("IN_PROGRESS", None)}
        assert a.stop() == 0
        dist = start_distribution(tmp_path, port)

        assert settled(b, "edge/app", "v1") == {("us-east-1", REMOTE_ID): ("COMPLETE", None)}
        r = requests.get(f"http://127.0.0.1:{port}/v2/edge/app/manifests/v1",
                         headers={"Accept": images.descriptor(img.layout, "v1")["mediaType"]}, timeout=10)
        assert (r.status_code, r.headers["Docker-Content-Digest"], r.content) == \
            (200, images.manifest_digest(img.layout, "v1"), img.manifest_bytes)
        for d in [img.config_digest, *img.layer_digests]:
            blob = requests.get(f"http://127.0.0.1:{port}/v2/edge/app/blobs/{d}", timeout=30)
            assert blob.status_code == 200 and blob.content == images.read_blob(img.layout, d), d
        done_by_b = metric_by_destination(requests.get(f"{b.url}/metrics", timeout=10).text, "berth_replication_completed_total")
        assert done_by_b == {f"us-east-1/{REMOTE_ID}": 1}, done_by_b
        assert psql(cluster, "SELECT count(*) FROM jobs WHERE kind = 'replicate'") == [["0"]]
        assert attempts >= 1
    finally:
        if dist:
            dist.terminate()
            dist.wait(timeout=30)
        cluster.stop()
