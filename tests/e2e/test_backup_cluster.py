"""Backups of a cluster (issue 21): `berth backup --metadata postgres://… --blobs s3://…` while a
node serves, into the embedded backup format; incremental (only new objects copied); restored
into an embedded data directory and (from a backup in a bucket) into a fresh cluster
(PostgreSQL + bucket prefix), each
serving every image byte for byte, with policies and users; a restore into a database that
already holds a registry, or from a damaged backup, is refused and writes nothing.
"""
import json
import os
import re
import secrets
import time

import requests

from conftest import Berth
from httputil import OCI_INDEX, Registry
from test_migrate import ACCEPT, Destination, infra, populate, serves_app_images  # noqa: F401  (infra: the fixture)


def cluster_cli(dest, *args):
    p = Berth("unused", env=dest.env).cli(*args, check=False)
    return p


def check_serves(b, got):
    r = Registry(b.url, token=b.token())
    assert r.get("/v2/mig/app/tags/list").json()["tags"] == ["latest", "v1", "v2"]
    serves_app_images(r, got)
    m = r.get("/v2/mig/multi/manifests/v1", headers=ACCEPT)
    assert m.status_code == 200 and m.content == got["index"] and m.headers["Content-Type"] == OCI_INDEX
    refs = r.get(f"/v2/mig/app/referrers/{got['v1']['digest']}").json()["manifests"]
    assert [x["digest"] for x in refs] == [got["sbom"]["digest"]]
    ecr = b.ecr()
    assert json.loads(ecr.get_repository_policy(repositoryName="mig/app")["policyText"]) == json.loads(got["repo_policy"])
    assert json.loads(ecr.get_lifecycle_policy(repositoryName="mig/app")["lifecyclePolicyText"]) == json.loads(got["lifecycle"])
    key, secret = got["user"]
    names = sorted(x["repositoryName"] for x in b.ecr(key, secret).describe_repositories()["repositories"])
    assert {"mig/app", "mig/multi"} <= set(names)


def populated_cluster(infra, tmp_path, name):  # noqa: F811
    """A fresh cluster (database + bucket prefix), its root key and one node serving it."""
    root_key = secrets.token_hex(32)
    source = Destination(infra, tmp_path)
    node = source.node(name, root_key)
    # `berth admin` (populate's user) on the cluster, not on the node's own directory.
    node.env.update(BERTH_METADATA=source.db, BERTH_BLOBS=f"s3://{source.s3.bucket}/{source.prefix}",
                    BERTH_S3_ENDPOINT=source.s3.endpoint, BERTH_S3_PATH_STYLE="true")
    return root_key, source, node


def restored_into_data_dir(backup, tmp_path, root_key):
    """`berth restore` of the backup into a new data directory (fsck clean), started there."""
    restored = tmp_path / "restored"
    key_env = {"BERTH_ROOT_KEY": root_key}
    p = Berth("unused", env=key_env).cli("restore", "--from", str(backup), "--data-dir", str(restored), check=False)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["fsck"]["problems"] == []
    return Berth(str(restored), env=key_env).start()


def test_cluster_backup_restores_into_a_data_dir_and_into_a_new_cluster(infra, tmp_path):  # noqa: F811
    root_key, source, node = populated_cluster(infra, tmp_path, "a")
    bk = tmp_path / "backup"
    try:
        got = populate(node)
        # Taken while the node serves.
        p = cluster_cli(source, "backup", *source.args, "--to", str(bk))
        assert p.returncode == 0, p.stderr
        first = json.loads(p.stdout)
        assert first["objects"] == first["copied"] >= 9 and first["absent"] == [], first
        assert not first["root_key_included"] and "cluster nodes' root key" in p.stderr
        assert (bk / "berth.db").is_file() and (bk / "objects.tsv").is_file() and not (bk / "root.key").exists()
        # The database password never reaches the output.
        assert ":pw@" not in p.stderr + p.stdout

        # Incremental: one more image, only its objects are copied.
        r = Registry(node.url, token=node.token())
        extra = r.push_image("mig/later", "v1", nlayers=1, layer_size=32 * 1024)
        p = cluster_cli(source, "backup", *source.args, "--to", str(bk), "--max-rate-mib", "500")
        assert p.returncode == 0, p.stderr
        second = json.loads(p.stdout)
        assert second["copied"] == 2 and second["objects"] == first["objects"] + 2, second  # config + layer
        v = cluster_cli(source, "backup", "verify", "--from", str(bk))
        assert v.returncode == 0 and json.loads(v.stdout)["problems"] == [], v.stdout + v.stderr

        # Into a bucket: the cluster's --s3-* flags reach both buckets.
        in_bucket = f"s3://{source.s3.bucket}/backups-{source.prefix}"
        p = cluster_cli(source, "backup", *source.args, "--to", in_bucket)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["copied"] == second["objects"]
    finally:
        node.stop()

    key_env = {"BERTH_ROOT_KEY": root_key}
    # 1. Into an embedded data directory.
    b = restored_into_data_dir(bk, tmp_path, root_key)
    try:
        check_serves(b, got)
        m = Registry(b.url, token=b.token()).get("/v2/mig/later/manifests/v1", headers=ACCEPT)
        assert m.content == extra["manifest"]
    finally:
        b.stop()

    # 2. Into a new cluster: a fresh database and bucket prefix.
    target = Destination(infra, tmp_path)
    restore_env = dict(target.env, **key_env)
    p = Berth("unused", env=restore_env).cli("restore", "--from", in_bucket, *target.args, check=False)
    assert p.returncode == 0, p.stderr
    done = json.loads(p.stdout)
    assert done["fsck"]["problems"] == [] and done["fsck"]["sealed_checked"] >= 9, done["fsck"]
    assert done["copy"]["ok"] and all(t["matches"] for t in done["copy"]["tables"])
    assert ":pw@" not in p.stderr + p.stdout
    n = target.node("r", root_key)
    try:
        check_serves(n, got)
        # New pushes on the restored cluster get fresh ids and work.
        fresh = Registry(n.url, token=n.token()).push_image("mig/new", "v1", nlayers=1)
        assert Registry(n.url, token=n.token()).get("/v2/mig/new/manifests/v1", headers=ACCEPT).content == fresh["manifest"]
    finally:
        n.stop()

    # 3. Never over a registry: the same database again is refused, and nothing changes.
    before = target.sql("SELECT count(*) FROM manifests")
    p = Berth("unused", env=restore_env).cli("restore", "--from", str(bk), *target.args, check=False)
    assert p.returncode != 0 and "holds a registry already" in p.stderr, p.stderr
    assert target.sql("SELECT count(*) FROM manifests") == before

    # 4. A damaged backup writes nothing into an empty cluster.
    victim = next(q for q in sorted((bk / "sealed").rglob("*")) if q.is_file())
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    empty = Destination(infra, tmp_path)
    p = Berth("unused", env=dict(empty.env, **key_env)).cli("restore", "--from", str(bk), *empty.args, check=False)
    assert p.returncode != 0 and str(victim.relative_to(bk)) in p.stderr and "nothing was written" in p.stderr, p.stderr
    assert empty.sql("SELECT to_regclass('repositories') IS NULL") == "t"  # not even the schema


def backup_runs(node):
    text = requests.get(node.url + "/metrics", timeout=10).text
    return {r: int(n) for r, n in re.findall(r'^berth_backup_runs_total\{result="(\w+)"\} (\d+)$', text, re.M)}


def wait_for_run(node, result):
    deadline = time.time() + 120
    while (runs := backup_runs(node)).get(result, 0) < 1:
        assert runs.get("failure", 0) == 0, requests.get(node.url + "/_berth/status", auth=("AWS", node.token()), timeout=30).text
        assert time.time() < deadline, f"no scheduled backup ({result}) on {node.url}: {runs}"
        time.sleep(0.2)
    return runs


def test_scheduled_backups_in_a_cluster_are_taken_by_one_node(infra, tmp_path):  # noqa: F811
    root_key, source, writer = populated_cluster(infra, tmp_path, "w")
    # Every node started with the same flags and one directory they all mount.
    gens = tmp_path / "generations"
    sched = {"BERTH_BACKUP_DIR": str(gens), "BERTH_BACKUP_INTERVAL": "3600", "BERTH_BACKUP_KEEP": "2"}
    a = b = None
    try:
        got = populate(writer)
        a = source.node("a", root_key, extra_env=sched)
        runs_a = wait_for_run(a, "success")
        # A second node finds this period's backup taken (the lease) and takes none itself.
        b = source.node("b", root_key, extra_env=sched)
        runs_b = wait_for_run(b, "elsewhere")
        assert runs_b.get("success") == 0 and runs_b.get("failure") == 0, runs_b
        assert runs_a["success"] == 1 and runs_a.get("elsewhere") == 0, runs_a
        status = requests.get(b.url + "/_berth/status", auth=("AWS", b.token()), timeout=30).json()["backups"]
        assert status["taken_elsewhere"] >= 1 and status["succeeded"] == 0 and status["last_error"] is None, status
        status = requests.get(a.url + "/_berth/status", auth=("AWS", a.token()), timeout=30).json()["backups"]
        assert status["succeeded"] == 1 and status["last_generation"], status
    finally:
        for n in (writer, a, b):
            if n:
                n.stop()

    kept = [g for g in os.listdir(gens) if not g.startswith(".")]
    assert kept == [status["last_generation"]], os.listdir(gens)
    gen = gens / kept[0]
    manifest = json.loads((gen / "BACKUP.json").read_text())
    assert manifest["objects"] == manifest["copied"] >= 9 and manifest["absent"] == [], manifest
    assert not (gen / "root.key").exists()
    assert ":pw@" not in (gen / "BACKUP.json").read_text()
    r = restored_into_data_dir(gen, tmp_path, root_key)
    try:
        check_serves(r, got)
    finally:
        r.stop()


def test_cluster_backup_needs_both_stores(tmp_path):
    b = Berth(str(tmp_path / "data"))
    p = b.cli("backup", "--blobs", "s3://bucket/prefix", "--to", str(tmp_path / "bk"), check=False)
    assert p.returncode != 0 and "--metadata postgres://" in p.stderr, p.stderr
    p = b.cli("backup", "--data-dir", str(tmp_path / "nothing"), "--to", str(tmp_path / "bk"), check=False)
    assert p.returncode != 0 and "holds no berth.db" in p.stderr, p.stderr
    assert not (tmp_path / "bk").exists(), "nothing is written at the target"
