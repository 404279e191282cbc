"""berth as a cluster: two stateless nodes sharing PostgreSQL and an S3-compatible bucket.

The module starts its own PostgreSQL (scripts/postgres-test-server.sh) and its own s3s-fs
(installed by scripts/install-test-deps.sh) so that it can take each away from running nodes
and give it back. Each test gets a fresh database and a fresh bucket prefix, and two nodes on
them: pushes through one are pulled through the other, uploads move between nodes, a node is
killed mid-upload, and outages answer 503 in each protocol's own error shape.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import images
from conftest import ROOT, Berth
from httputil import Registry, error_codes, sha256
from test_clients import Clients, unmount_under

SCRIPTS = os.path.join(ROOT, "scripts")
MiB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, log, deadline_s=30):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {open(log).read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling readiness, not ordering events
    raise RuntimeError(f"nothing listening on {port}: {open(log).read()[-2000:]}")


class Postgres:
    """A PostgreSQL cluster of the module's own; stop/start keep its port."""

    def __init__(self, d):
        self.dir = d

    def start(self):
        out = subprocess.run([f"{SCRIPTS}/postgres-test-server.sh", "start", self.dir],
                             capture_output=True, text=True, check=True).stdout
        self.admin_url = re.search(r"BERTH_TEST_POSTGRES_URL=(\S+)", out).group(1)
        return self

    def stop(self):
        subprocess.run([f"{SCRIPTS}/postgres-test-server.sh", "stop", self.dir], capture_output=True, check=True)

    def new_database(self):
        name = "c" + uuid.uuid4().hex
        subprocess.run(["psql", self.admin_url, "-q", "-c", f"CREATE DATABASE {name}"],
                       capture_output=True, check=True)
        return self.admin_url.rsplit("/", 1)[0] + "/" + name


class S3Server:
    """s3s-fs over a directory; stop/start keep its port and its data."""

    bucket = "berth-cluster"

    def __init__(self, d):
        self.dir = d
        self.port = free_port()
        self.access = "cluster" + uuid.uuid4().hex[:8]
        self.secret = uuid.uuid4().hex
        self.proc = None
        os.makedirs(os.path.join(d, "root", self.bucket), exist_ok=True)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        exe = shutil.which("s3s-fs")
        assert exe, "s3s-fs is not installed (scripts/install-test-deps.sh installs it)"
        log = os.path.join(self.dir, "s3s.log")
        self.proc = subprocess.Popen(
            [exe, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", self.access,
             "--secret-key", self.secret, os.path.join(self.dir, "root")],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, log)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def infra(tmp_path_factory):
    # PostgreSQL runs as the postgres user, who cannot enter pytest's 0700 directories.
    pg_dir = tempfile.mkdtemp(prefix="berth-cluster-pg-", dir="/tmp")
    pg = Postgres(pg_dir).start()
    s3 = S3Server(str(tmp_path_factory.mktemp("s3"))).start()
    yield pg, s3
    s3.stop()
    pg.stop()
    shutil.rmtree(pg_dir, ignore_errors=True)


class Cluster:
    """One database and bucket prefix shared by nodes named `names` (started at once); `node()`
    starts another, with this build or another `binary` (tests/e2e/test_upgrade.py)."""

    def __init__(self, infra, tmp_path, env=None, names=("a", "b"), node_args=()):
        self.pg, self.s3 = infra
        self.db = self.pg.new_database()
        self.prefix = "p" + uuid.uuid4().hex[:12]
        self.tmp = tmp_path
        self.args = ["--metadata", self.db, "--blobs", f"s3://{self.s3.bucket}/{self.prefix}",
                     "--s3-endpoint", self.s3.endpoint, "--s3-path-style", *node_args]
        self.env = {
            "BERTH_S3_ACCESS_KEY_ID": self.s3.access,
            "BERTH_S3_SECRET_ACCESS_KEY": self.s3.secret,
            # Every node of a cluster is given the same root key (blobs are encrypted under it).
            "BERTH_ROOT_KEY": os.urandom(32).hex(),
            "BERTH_GC_INTERVAL_SECONDS": "0",
            "BERTH_LIFECYCLE_INTERVAL_SECONDS": "0",
            **(env or {}),
        }
        self.nodes = []
        for name in names:
            self.node(name)

    def node(self, name, binary=None):
        n = Berth(str(self.tmp / f"node-{name}"), extra_args=self.args, env=self.env, binary=binary).start()
        self.nodes.append(n)
        return n

    def stop(self):
        for n in self.nodes:
            n.stop()


@pytest.fixture
def cluster(infra, tmp_path):
    c = Cluster(infra, tmp_path)
    yield c
    c.stop()


@pytest.fixture
def short_dirs():
    made = []

    def make():
        d = tempfile.mkdtemp(prefix="berth-cl-", dir="/tmp")
        made.append(d)
        return d
    yield make
    for d in made:
        unmount_under(d)
        shutil.rmtree(d, ignore_errors=True)


def runs_per_node(logs, job):
    """How many times each node's log says it ran the scheduled `job` while both nodes served.

    Runs after the first node began shutting down are not counted: that node releases its lease
    at shutdown, so the other node rightly takes the job over in the moment before it is stopped
    too. (Text log lines start with an ISO timestamp, which compares as a string.)"""
    stops = [line.split()[0] for log in logs for line in log.splitlines() if "shutting down" in line]
    first_stop = min(stops) if stops else "9999"
    return [sum(1 for line in log.splitlines()
                if "running the periodic job on this node" in line and f"job={job}" in line.replace('"', "")
                and line.split()[0] < first_stop)
            for log in logs]


def ecr_no_retry(node):
    return boto3.client("ecr", endpoint_url=node.url, region_name=node.region,
                        aws_access_key_id=node.admin_key, aws_secret_access_key=node.admin_secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def test_push_through_one_node_pull_through_the_other(cluster, tmp_path, short_dirs):
    a, b = cluster.nodes
    layout = str(tmp_path / "layout")
    one = images.build_image(layout, "one", random_size=3 * MiB, with_busybox=False)
    two = images.build_image(layout, "two", random_size=64 * 1024, with_busybox=False)
    via_a = Clients(a, tmp_path / "ca", short_dirs())
    via_b = Clients(b, tmp_path / "cb", short_dirs())
    repo = "cluster/app"

    via_a.skopeo_copy(one.ref, via_a.docker_ref(repo, "latest"))
    assert via_b.inspect_json(repo, "latest")["Digest"] == one.manifest_digest
    out = tmp_path / "pulled"
    via_b.skopeo_copy(via_b.docker_ref(repo, "latest"), f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == one.manifest_bytes
    assert images.file_digest(out / one.layer_digests[0].split(":")[1]) == one.layer_digests[0]

    # A tag moved through B is what A serves next, with no delay.
    via_b.skopeo_copy(two.ref, via_b.docker_ref(repo, "latest"))
    assert via_a.inspect_json(repo, "latest")["Digest"] == two.manifest_digest
    via_a.skopeo_copy(one.ref, via_a.docker_ref(repo, "latest"))
    assert via_b.inspect_json(repo, "latest")["Digest"] == one.manifest_digest

    # A registry token issued by one node verifies on the other (keys live in the database).
    r = Registry(b.url, token=a.token()).get(f"/v2/{repo}/manifests/latest",
                                              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 200 and r.content == one.manifest_bytes


def test_upload_killed_on_one_node_finishes_on_the_other(cluster):
    a, b = cluster.nodes
    token = a.token()
    data = os.urandom(13 * MiB)  # parts of 8 MiB: one full part, then a tail kept in the bucket
    first, second = data[:7 * MiB], data[7 * MiB:]
    ra, rb = Registry(a.url, token=token), Registry(b.url, token=token)
    loc = ra.start_upload("cluster/kill").headers["Location"]
    r = ra.patch(loc, data=first, headers={"Content-Type": "application/octet-stream",
                                            "Content-Range": f"0-{len(first) - 1}"})
    assert r.status_code == 202, r.text
    a.kill9()

    r = rb.get(loc)
    assert r.status_code == 204 and r.headers["Range"] == f"0-{len(first) - 1}", (r.status_code, r.headers)
    r = rb.patch(loc, data=second, headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": f"{len(first)}-{len(data) - 1}"})
    assert r.status_code == 202, r.text
    r = rb.put(rb.with_query(r.headers["Location"], digest=sha256(data)))
    assert r.status_code == 201, r.text
    got = rb.get(f"/v2/cluster/kill/blobs/{sha256(data)}")
    assert got.status_code == 200 and got.content == data

    a.start()  # back on a new port, same database and bucket
    assert Registry(a.url, token=token).get(f"/v2/cluster/kill/blobs/{sha256(data)}").content == data


def test_a_node_restart_loses_nothing(cluster):
    a, b = cluster.nodes
    ra = Registry(a.url, token=a.token())
    pushed = ra.push_image("cluster/restart", "v1", nlayers=2, layer_size=200 * 1024)
    loc = ra.start_upload("cluster/restart").headers["Location"]
    part = os.urandom(100 * 1024)
    assert ra.patch(loc, data=part, headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": f"0-{len(part) - 1}"}).status_code == 202
    for n in (a, b):
        n.restart()
    for n in (a, b):
        r = Registry(n.url, token=n.token())
        m = r.get("/v2/cluster/restart/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert m.status_code == 200 and m.content == pushed["manifest"]
        for digest, body in pushed["blobs"]:
            assert r.get(f"/v2/cluster/restart/blobs/{digest}").content == body
    # The open upload survived both restarts and finishes on the other node.
    rb = Registry(b.url, token=b.token())
    r = rb.put(rb.with_query(loc, digest=sha256(part)))
    assert r.status_code == 201, r.text


def store_errors(node):
    """berth_store_errors_total by (backend, operation)."""
    text = Registry(node.url).get("/metrics").text
    found = re.findall(r'^berth_store_errors_total\{backend="(\w+)",operation="(\w+)"\} (\d+)$', text, re.M)
    return {(backend, op): int(n) for backend, op, n in found}


def counted(before, after):
    """The store errors a node counted between two readings (nonzero only)."""
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def test_database_outage_is_503_then_recovers(cluster, infra):
    pg, _ = infra
    a, b = cluster.nodes
    ra = Registry(a.url, token=a.token())
    pushed = ra.push_image("cluster/dbdown", "v1", nlayers=1)
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    errors_a, errors_b = store_errors(a), store_errors(b)
    pg.stop()
    try:
        r = ra.get("/v2/cluster/dbdown/manifests/v1", headers=accept)
        assert r.status_code == 503 and error_codes(r) == ["UNAVAILABLE"], (r.status_code, r.text)
        assert "metadata database" in r.json()["errors"][0]["message"]
        r = ra.put("/v2/cluster/dbdown/manifests/v2", data=pushed["manifest"],
                   headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status_code == 503, r.text
        with pytest.raises(ClientError) as e:
            ecr_no_retry(b).describe_repositories()
        assert e.value.response["Error"]["Code"] == "ServiceUnavailableException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    finally:
        pg.start()
    # Counted by the backend each refusal named, OCI and ECR alike.
    assert counted(errors_a, store_errors(a)) == {("metadata", "read"): 1, ("metadata", "write"): 1}
    # DescribeRepositories is a POST; botocore's retries max_attempts 1 means one retry: two calls.
    assert counted(errors_b, store_errors(b)) == {("metadata", "write"): 2}
    r = ra.get("/v2/cluster/dbdown/manifests/v1", headers=accept)
    assert r.status_code == 200 and r.content == pushed["manifest"]
    # The push refused during the outage left nothing behind.
    tags = Registry(b.url, token=b.token()).get("/v2/cluster/dbdown/tags/list").json()["tags"]
    assert tags == ["v1"]
    names = [x["repositoryName"] for x in ecr_no_retry(b).describe_repositories()["repositories"]]
    assert names == ["cluster/dbdown"]


def test_bucket_outage_is_503_then_recovers(cluster, infra):
    _, s3 = infra
    a, b = cluster.nodes
    ra = Registry(a.url, token=a.token())
    pushed = ra.push_image("cluster/s3down", "v1", nlayers=1, layer_size=300 * 1024)
    layer_digest, layer = pushed["blobs"][-1]
    errors = store_errors(a)
    s3.stop()
    try:
        r = ra.get(f"/v2/cluster/s3down/blobs/{layer_digest}")
        assert r.status_code == 503 and error_codes(r) == ["UNAVAILABLE"], (r.status_code, r.text)
        data = os.urandom(1000)
        r = ra.post("/v2/cluster/s3down/blobs/uploads/", params={"digest": sha256(data)}, data=data,
                    headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 503, r.text
        # Metadata is still served: only bytes need the bucket.
        m = ra.get("/v2/cluster/s3down/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert m.status_code == 200
    finally:
        s3.start()
    assert counted(errors, store_errors(a)) == {("blobs", "read"): 1, ("blobs", "write"): 1}
    rb = Registry(b.url, token=b.token())
    assert rb.get(f"/v2/cluster/s3down/blobs/{layer_digest}").content == layer
    # The upload refused during the outage is not visible.
    assert rb.head(f"/v2/cluster/s3down/blobs/{sha256(data)}").status_code == 404


def blob_cache_figures(node):
    """berth_blob_cache_* series as {name{labels}: value}."""
    text = Registry(node.url).get("/metrics").text
    return {k: int(float(v)) for k, v in re.findall(r"^(berth_blob_cache_\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


def cluster_with_a_cached_node(infra, tmp_path):
    """Node A without a blob cache, node B with one (1 GiB) in tmp_path/cache-b."""
    c = Cluster(infra, tmp_path, names=("a",))
    (a,) = c.nodes
    cache_dir = tmp_path / "cache-b"
    try:
        b = Berth(str(tmp_path / "node-b"), extra_args=[*c.args, "--blob-cache-dir", str(cache_dir), "--blob-cache-gib", "1"],
                  env=c.env).start()
    except BaseException:
        c.stop()
        raise
    c.nodes.append(b)
    return c, a, b, cache_dir


def test_a_node_with_a_blob_cache_serves_pulls_from_its_disk_even_with_the_bucket_down(infra, tmp_path, short_dirs):
    c, a, b, cache_dir = cluster_with_a_cached_node(infra, tmp_path)
    try:
        layout = str(tmp_path / "layout")
        image = images.build_image(layout, "cached", random_size=3 * MiB, with_busybox=False)
        via_a = Clients(a, tmp_path / "ca", short_dirs())
        via_b = Clients(b, tmp_path / "cb", short_dirs())
        repo = "cluster/cached"
        via_a.skopeo_copy(image.ref, via_a.docker_ref(repo, "v1"))
        blobs = [image.config_digest, *image.layer_digests]

        # First pull through B: from the bucket, copied to B's disk as it streams.
        first = tmp_path / "first"
        via_b.skopeo_copy(via_b.docker_ref(repo, "v1"), f"dir:{first}")
        assert (first / "manifest.json").read_bytes() == image.manifest_bytes
        deadline = time.monotonic() + 60
        while blob_cache_figures(b).get('berth_blob_cache_fills_total{result="done"}', 0) < len(blobs):
            assert time.monotonic() < deadline, blob_cache_figures(b)
            time.sleep(0.1)  # polling for the copies' outcome, not ordering events
        figures = blob_cache_figures(b)
        assert figures['berth_blob_cache_reads_total{result="miss"}'] == len(blobs), figures
        assert figures['berth_blob_cache_reads_total{result="hit"}'] == 0, figures
        assert figures["berth_blob_cache_max_bytes"] == 1 << 30
        assert 3 * MiB < figures["berth_blob_cache_bytes"] < 4 * MiB, figures
        # The copies are the bucket's objects: encrypted, never the layer in clear.
        layer = (first / image.layer_digests[0].split(":")[1]).read_bytes()
        copies = [p.read_bytes() for p in cache_dir.iterdir() if p.name != ".lock"]
        assert len(copies) == len(blobs) and all(layer[4096:8192] not in copy for copy in copies)

        # The bucket goes down: B serves the image from its disk, A (no cache) cannot.
        infra[1].stop()
        try:
            second = tmp_path / "second"
            via_b.skopeo_copy(via_b.docker_ref(repo, "v1"), f"dir:{second}")
            for d in blobs:
                assert images.file_digest(second / d.split(":")[1]) == d
            r = Registry(a.url, token=a.token()).get(f"/v2/{repo}/blobs/{image.layer_digests[0]}")
            assert r.status_code == 503 and error_codes(r) == ["UNAVAILABLE"], (r.status_code, r.text)
        finally:
            infra[1].start()
        figures = blob_cache_figures(b)
        assert figures['berth_blob_cache_reads_total{result="hit"}'] == len(blobs), figures
        assert figures['berth_blob_cache_reads_total{result="miss"}'] == len(blobs), figures
        # Nodes without the cache report the same series, at zero.
        assert blob_cache_figures(a)["berth_blob_cache_max_bytes"] == 0
    finally:
        c.stop()


def test_a_blob_deleted_through_one_node_leaves_the_other_nodes_blob_cache(infra, tmp_path, short_dirs):
    """B keeps copies of what it served; an image deleted and collected through A leaves B's disk
    at B's next sweep (at start-up here; every 10 minutes while running), the others stay."""
    c, a, b, cache_dir = cluster_with_a_cached_node(infra, tmp_path)
    try:
        via_a = Clients(a, tmp_path / "ca", short_dirs())
        via_b = Clients(b, tmp_path / "cb", short_dirs())
        kept = images.build_image(str(tmp_path / "kept"), "kept", random_size=2 * MiB, with_busybox=False)
        gone = images.build_image(str(tmp_path / "gone"), "gone", random_size=3 * MiB, with_busybox=False)
        for image, repo in ((kept, "cluster/kept"), (gone, "cluster/gone")):
            via_a.skopeo_copy(image.ref, via_a.docker_ref(repo, "v1"))
            via_b.skopeo_copy(via_b.docker_ref(repo, "v1"), f"dir:{tmp_path / ('pulled-' + repo.split('/')[1])}")
        kept_blobs = [kept.config_digest, *kept.layer_digests]
        gone_blobs = [gone.config_digest, *gone.layer_digests]
        deadline = time.monotonic() + 60
        while blob_cache_figures(b).get('berth_blob_cache_fills_total{result="done"}', 0) < len(kept_blobs) + len(gone_blobs):
            assert time.monotonic() < deadline, blob_cache_figures(b)
            time.sleep(0.1)  # polling for the copies' outcome, not ordering events
        copies = lambda: sorted(p.name for p in cache_dir.iterdir() if p.name.endswith(".blob"))  # noqa: E731
        before = copies()
        assert len(before) == len(kept_blobs) + len(gone_blobs)

        ra = Registry(a.url, token=a.token())
        r = ra.delete(f"/v2/cluster/gone/manifests/{gone.manifest_digest}")
        assert r.status_code == 202, (r.status_code, r.text)
        r = ra.post("/_berth/gc?grace_seconds=0", timeout=300)
        assert r.status_code == 200, (r.status_code, r.text)
        for d in gone_blobs:
            assert ra.get(f"/v2/cluster/gone/blobs/{d}").status_code == 404

        b.restart()
        deadline = time.monotonic() + 60
        while blob_cache_figures(b).get("berth_blob_cache_swept_total", 0) < len(gone_blobs):
            assert time.monotonic() < deadline, blob_cache_figures(b)
            time.sleep(0.1)  # polling for the start-up sweep's outcome, not ordering events
        figures = blob_cache_figures(b)
        assert figures["berth_blob_cache_swept_total"] == len(gone_blobs), figures
        deadline = time.monotonic() + 30
        while len(copies()) != len(kept_blobs):
            assert time.monotonic() < deadline, copies()
            time.sleep(0.1)  # the removed copies are unlinked on the blocking pool
        assert set(copies()) < set(before)
        # What stays is still served from B's disk.
        again = tmp_path / "again"
        via_b.skopeo_copy(via_b.docker_ref("cluster/kept", "v1"), f"dir:{again}")
        for d in kept_blobs:
            assert images.file_digest(again / d.split(":")[1]) == d
        assert blob_cache_figures(b)['berth_blob_cache_reads_total{result="hit"}'] == len(kept_blobs)
    finally:
        c.stop()


def test_scheduled_gc_on_two_nodes_collects_each_blob_once(infra, tmp_path):
    c = Cluster(infra, tmp_path, env={"BERTH_GC_INTERVAL_SECONDS": "1", "BERTH_GC_GRACE_SECONDS": "0"})
    try:
        a, b = c.nodes
        ra = Registry(a.url, token=a.token())
        garbage = os.urandom(4096)
        ra.upload_blob("cluster/gc", garbage)
        rb = Registry(b.url, token=b.token())
        deadline = time.monotonic() + 60
        while rb.get(f"/v2/cluster/gc/blobs/{sha256(garbage)}").status_code == 200:
            assert time.monotonic() < deadline, "the scheduled collector never removed the blob"
            time.sleep(0.2)  # polling for the schedule's outcome, not ordering events
    finally:
        c.stop()
    logs = [open(n.log_path, errors="replace").read() for n in c.nodes]
    collected = sum(log.count(f"collected blob {sha256(garbage)}") for log in logs)
    assert collected == 1, logs
    # Both nodes ticked every second; one of them ran every collection (the lease). Without it
    # both would run, which the count above cannot tell (a collected blob is gone for both).
    assert runs_per_node(logs, "gc").count(0) == 1, runs_per_node(logs, "gc")


def test_scheduled_lifecycle_on_two_nodes_expires_each_image_once(infra, tmp_path):
    import json
    c = Cluster(infra, tmp_path, env={"BERTH_LIFECYCLE_INTERVAL_SECONDS": "1"})
    try:
        a, b = c.nodes
        ra = Registry(a.url, token=a.token())
        old = ra.push_image("cluster/lc", "v1", nlayers=1)
        new = ra.push_image("cluster/lc", "v2", nlayers=1)
        policy = {"rules": [{"rulePriority": 1, "description": "keep the newest v* image",
                             "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"],
                                           "countType": "imageCountMoreThan", "countNumber": 1},
                             "action": {"type": "expire"}}]}
        ecr = ecr_no_retry(b)
        ecr.put_lifecycle_policy(repositoryName="cluster/lc", lifecyclePolicyText=json.dumps(policy))
        deadline = time.monotonic() + 60
        while True:
            digests = {d["imageDigest"] for d in ecr.describe_images(repositoryName="cluster/lc")["imageDetails"]}
            if old["digest"] not in digests:
                break
            assert time.monotonic() < deadline, "the scheduled lifecycle run never expired the old image"
            time.sleep(0.2)  # polling for the schedule's outcome, not ordering events
        assert digests == {new["digest"]}
    finally:
        c.stop()
    logs = [open(n.log_path, errors="replace").read() for n in c.nodes]
    applied = [line for log in logs for line in log.splitlines()
               if "lifecycle policy applied" in line and old["digest"] in line]
    assert len(applied) == 1, applied
    assert runs_per_node(logs, "lifecycle").count(0) == 1, runs_per_node(logs, "lifecycle")


def test_presigned_downloads_redirect_to_the_bucket(infra, tmp_path, short_dirs):
    import requests
    # Blobs in clear (AES256 left to the bucket's own encryption) are redirected to the bucket;
    # an encrypted one never is: the bucket holds ciphertext only berth can open.
    c = Cluster(infra, tmp_path, env={"BERTH_S3_PRESIGN_SECONDS": "300", "BERTH_AES256_BY_STORAGE": "true"})
    try:
        a, b = c.nodes
        ra = Registry(a.url, token=a.token())
        key = boto3.client("kms", endpoint_url=a.url, region_name=a.region, aws_access_key_id=a.admin_key,
                           aws_secret_access_key=a.admin_secret).create_key()["KeyMetadata"]["Arn"]
        a.ecr().create_repository(repositoryName="cluster/sealed",
                                  encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key})
        sealed = ra.push_image("cluster/sealed", "v1", nlayers=1, layer_size=MiB)
        sealed_digest, sealed_body = sealed["blobs"][-1]
        r = Registry(b.url, token=b.token()).get(f"/v2/cluster/sealed/blobs/{sealed_digest}")
        assert r.status_code == 200 and r.content == sealed_body, r.status_code
        url = ecr_no_retry(a).get_download_url_for_layer(repositoryName="cluster/sealed", layerDigest=sealed_digest)["downloadUrl"]
        assert not url.startswith(c.s3.endpoint), url

        pushed = ra.push_image("cluster/presign", "v1", nlayers=1, layer_size=2 * MiB)
        digest, body = pushed["blobs"][-1]
        r = Registry(b.url, token=b.token()).get(f"/v2/cluster/presign/blobs/{digest}")
        assert r.status_code == 307, (r.status_code, r.text)
        assert r.headers["Docker-Content-Digest"] == digest
        direct = requests.get(r.headers["Location"], timeout=60)  # no berth credentials: the URL is signed
        assert direct.status_code == 200 and direct.content == body
        # Range requests still stream through berth.
        part = Registry(b.url, token=b.token()).get(f"/v2/cluster/presign/blobs/{digest}", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == body[:100]
        url = ecr_no_retry(a).get_download_url_for_layer(repositoryName="cluster/presign", layerDigest=digest)["downloadUrl"]
        assert url.startswith(c.s3.endpoint) and requests.get(url, timeout=60).content == body
        # A real client follows the redirect.
        via_b = Clients(b, tmp_path / "cb", short_dirs())
        out = tmp_path / "pulled"
        via_b.skopeo_copy(via_b.docker_ref("cluster/presign", "v1"), f"dir:{out}")
        assert (out / digest.split(":")[1]).read_bytes() == body
    finally:
        c.stop()
