"""`berth migrate`: an embedded install (SQLite + a data directory) copied into PostgreSQL + S3.

An embedded berth gets images (tags, an OCI index, a referrer), a repository policy, a
lifecycle policy and a user with an access key; it is stopped and migrated into a fresh
database and a fresh bucket prefix (PostgreSQL and s3s-fs as test_cluster.py starts them).
Resumability is shown deterministically: a second run copies nothing and inserts nothing, and
after one blob's pointer object is removed from the bucket a third run copies exactly that blob.
Two cluster nodes then serve everything from the copy, byte for byte. A corrupt source blob
makes migrate fail naming its digest, before any metadata is copied.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import boto3
import pytest

from conftest import Berth, berth_bin
from httputil import OCI_INDEX, OCI_MANIFEST, Registry, blob_file, descriptor, sha256
from test_cluster import Postgres, S3Server

MiB = 1024 * 1024
ACCEPT = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}


@pytest.fixture(scope="module")
def infra(tmp_path_factory):
    # Not under pytest's basetemp: run as root, the script runs PostgreSQL as `postgres`, which
    # cannot enter /tmp/pytest-of-root (mode 0700). The script hands this directory over to it.
    pg_dir = tempfile.mkdtemp(prefix="berth-migrate-pg-", dir="/tmp")
    pg = Postgres(pg_dir).start()
    s3 = S3Server(str(tmp_path_factory.mktemp("s3"))).start()
    yield pg, s3
    s3.stop()
    pg.stop()
    shutil.rmtree(pg_dir, ignore_errors=True)


class Destination:
    """A fresh database and bucket prefix, and how to migrate into them / run nodes on them."""

    def __init__(self, infra, tmp_path):
        self.pg, self.s3 = infra
        self.db = self.pg.new_database()
        self.prefix = "m" + uuid.uuid4().hex[:12]
        self.tmp = tmp_path
        self.env = dict(os.environ, BERTH_S3_ACCESS_KEY_ID=self.s3.access, BERTH_S3_SECRET_ACCESS_KEY=self.s3.secret)
        self.args = ["--metadata", self.db, "--blobs", f"s3://{self.s3.bucket}/{self.prefix}",
                     "--s3-endpoint", self.s3.endpoint, "--s3-path-style"]

    def migrate(self, source_dir, *extra):
        p = subprocess.run([berth_bin(), "migrate", "--from-data-dir", source_dir, *self.args, *extra],
                           capture_output=True, text=True, env=self.env, timeout=300)
        summary = None
        if p.stdout.strip():
            summary = json.loads(p.stdout)
        return p, summary

    def node(self, name, root_key=None, extra_env=None):
        env = {"BERTH_S3_ACCESS_KEY_ID": self.s3.access, "BERTH_S3_SECRET_ACCESS_KEY": self.s3.secret,
               "BERTH_GC_INTERVAL_SECONDS": "0", "BERTH_LIFECYCLE_INTERVAL_SECONDS": "0", **(extra_env or {})}
        if root_key:
            env["BERTH_ROOT_KEY"] = root_key
        return Berth(str(self.tmp / f"node-{name}"), extra_args=self.args, env=env).start()

    def s3_client(self):
        return boto3.client("s3", endpoint_url=self.s3.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.s3.access, aws_secret_access_key=self.s3.secret)

    def sql(self, query):
        return subprocess.run(["psql", self.db, "-tAc", query], capture_output=True, text=True, check=True).stdout.strip()


def rows(summary):
    return {t["table"]: t for t in summary["tables"]}


def populate(b):
    """Images, policies and a user in an embedded berth; returns what to look for afterwards."""
    r = Registry(b.url, token=b.token())
    v1 = r.push_image("mig/app", "v1", nlayers=2, layer_size=300 * 1024)
    r.put_manifest("mig/app", "latest", v1["manifest"], OCI_MANIFEST)
    # One layer above S3's 8 MiB part size, so the copy goes through a multipart upload.
    v2 = r.push_image("mig/app", "v2", nlayers=1, layer_size=9 * MiB + 123)
    amd = r.push_image("mig/multi", None, nlayers=1, layer_size=64 * 1024)
    arm = r.push_image("mig/multi", None, nlayers=1, layer_size=64 * 1024)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        descriptor(amd["manifest"], OCI_MANIFEST, platform={"architecture": "amd64", "os": "linux"}),
        descriptor(arm["manifest"], OCI_MANIFEST, platform={"architecture": "arm64", "os": "linux"}),
    ]}, indent=1).encode()
    r.put_manifest("mig/multi", "v1", index, OCI_INDEX)
    sbom = r.push_image("mig/app", None, nlayers=1, layer_size=2048, artifact_type="application/vnd.example.sbom",
                        subject=descriptor(v1["manifest"], OCI_MANIFEST))

    ecr = b.ecr()
    repo_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "pull", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{b.account}:root"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})
    ecr.set_repository_policy(repositoryName="mig/app", policyText=repo_policy)
    lifecycle = json.dumps({"rules": [{"rulePriority": 1, "description": "untagged after 30 days",
                                       "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                                     "countUnit": "days", "countNumber": 30},
                                       "action": {"type": "expire"}}]})
    ecr.put_lifecycle_policy(repositoryName="mig/app", lifecyclePolicyText=lifecycle)
    key, secret = b.create_user("migrated-reader", policy="AmazonEC2ContainerRegistryReadOnly")
    return {"v1": v1, "v2": v2, "amd": amd, "arm": arm, "index": index, "sbom": sbom, "repo_policy": repo_policy,
            "lifecycle": lifecycle, "user": (key, secret)}


def serves_app_images(reg, got):
    """Every tag and blob of populate()'s mig/app, byte for byte."""
    for tag, image in (("v1", got["v1"]), ("latest", got["v1"]), ("v2", got["v2"])):
        m = reg.get(f"/v2/mig/app/manifests/{tag}", headers=ACCEPT)
        assert m.status_code == 200 and m.content == image["manifest"], (tag, m.status_code)
    for digest, body in got["v1"]["blobs"] + got["v2"]["blobs"] + got["sbom"]["blobs"]:
        blob = reg.get(f"/v2/mig/app/blobs/{digest}")
        assert blob.status_code == 200 and blob.content == body, digest


def test_migrate_embedded_install_into_a_cluster(infra, tmp_path):
    src = Berth(str(tmp_path / "source")).start()
    dest = Destination(infra, tmp_path)
    try:
        got = populate(src)
        # A running berth holds the data directory's lock: nothing is copied from under it.
        p, _ = dest.migrate(src.data_dir)
        assert p.returncode != 0 and "in use" in p.stderr, p.stderr
    finally:
        src.stop()

    p, first = dest.migrate(src.data_dir)
    assert p.returncode == 0, p.stderr
    # Every blob was stored encrypted (AES256 under the registry-managed key): migrate copies the
    # ciphertext as it is, and the nodes open it with the source's root key.
    assert first["ok"] and first["blobs"]["source"] == 0
    sealed = first["encrypted_objects"]
    nblobs = sealed["source"]
    assert sealed["copied"] == nblobs >= 9 and sealed["failed"] == [] and sealed["skipped"] == 0
    assert "root key" in p.stderr
    t = rows(first)
    assert all(x["source_rows"] == x["destination_rows"] == x["inserted"] for x in t.values()), t
    assert t["repositories"]["source_rows"] == 2 and t["tags"]["source_rows"] == 4
    assert t["manifests"]["source_rows"] == 6 and t["access_keys"]["source_rows"] == 2
    # The database password never reaches the output.
    assert ":pw@" not in p.stderr + p.stdout

    # Again: everything is already there.
    p, second = dest.migrate(src.data_dir)
    assert p.returncode == 0, p.stderr
    assert second["encrypted_objects"]["copied"] == 0 and second["encrypted_objects"]["skipped"] == nblobs
    assert all(x["inserted"] == 0 and x["already_present"] == x["source_rows"] for x in second["tables"])

    # One object's pointer gone from the bucket (as if a run stopped just before writing it):
    # the next run copies that object only, and checks every destination object.
    lost = got["v1"]["blobs"][1][0]
    name = hashlib.sha256(b"berth sealed object v1\naes256\n" + lost.encode()).hexdigest()
    s3 = dest.s3_client()
    s3.delete_object(Bucket=dest.s3.bucket, Key=f"{dest.prefix}/sealed/blobs/sha256/{name}")
    p, third = dest.migrate(src.data_dir, "--verify")
    assert p.returncode == 0, p.stderr
    assert third["encrypted_objects"]["copied"] == 1 and third["encrypted_objects"]["skipped"] == nblobs - 1
    assert third["verify"] == {"rehashed": True, "problems": []}
    assert sum(x["inserted"] for x in third["tables"]) == 0

    # Two nodes on the copy, given the source's root key, serve everything, byte for byte.
    with open(os.path.join(src.data_dir, "root.key"), "rb") as f:
        root_key = f.read().hex()
    a, b = dest.node("a", root_key), dest.node("b", root_key)
    try:
        ra, rb = Registry(a.url, token=a.token()), Registry(b.url, token=b.token())
        assert rb.get("/v2/mig/app/tags/list").json()["tags"] == ["latest", "v1", "v2"]
        for reg in (ra, rb):
            serves_app_images(reg, got)
        m = ra.get("/v2/mig/multi/manifests/v1", headers=ACCEPT)
        assert m.status_code == 200 and m.content == got["index"]
        assert m.headers["Content-Type"] == OCI_INDEX
        for child in ("amd", "arm"):
            m = rb.get(f"/v2/mig/multi/manifests/{got[child]['digest']}", headers=ACCEPT)
            assert m.content == got[child]["manifest"]
        refs = rb.get(f"/v2/mig/app/referrers/{got['v1']['digest']}").json()["manifests"]
        assert [x["digest"] for x in refs] == [got["sbom"]["digest"]]
        assert refs[0]["artifactType"] == "application/vnd.example.sbom"

        ecr = b.ecr()
        assert json.loads(ecr.get_repository_policy(repositoryName="mig/app")["policyText"]) == json.loads(got["repo_policy"])
        assert json.loads(ecr.get_lifecycle_policy(repositoryName="mig/app")["lifecyclePolicyText"]) == json.loads(got["lifecycle"])

        # The migrated user's key signs ECR calls and fetches registry tokens, read-only as before.
        key, secret = got["user"]
        user_ecr = a.ecr(key, secret)
        names = sorted(x["repositoryName"] for x in user_ecr.describe_repositories()["repositories"])
        assert names == ["mig/app", "mig/multi"]
        ru = Registry(a.url, token=a.token(key, secret))
        assert ru.get("/v2/mig/app/manifests/v2", headers=ACCEPT).content == got["v2"]["manifest"]
        assert ru.post("/v2/mig/app/blobs/uploads/", headers={"Content-Length": "0"}).status_code in (401, 403)

        # New rows get ids past the copied ones (identity sequences moved), and new pushes work.
        fresh = rb.push_image("mig/new", "v1", nlayers=1)
        assert ra.get("/v2/mig/new/manifests/v1", headers=ACCEPT).content == fresh["manifest"]
        ids = dest.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM repositories")
        assert ids.split(",")[-1] == "3", ids
    finally:
        a.stop()
        b.stop()


def test_corrupt_source_blob_is_named_and_no_metadata_is_copied(infra, tmp_path):
    # Blobs stored in clear (AES256 left to the storage) are re-hashed on the way.
    src = Berth(str(tmp_path / "source"), extra_args=["--aes256-by-storage"]).start()
    try:
        image = Registry(src.url, token=src.token()).push_image("mig/bad", "v1", nlayers=2, layer_size=100 * 1024)
    finally:
        src.stop()
    bad_digest, bad_body = image["blobs"][1]
    path = blob_file(src.data_dir, bad_digest)
    with open(path, "r+b") as f:  # same length, one byte different: only the hash can tell
        f.write(bytes([bad_body[0] ^ 0xFF]))

    dest = Destination(infra, tmp_path)
    p, summary = dest.migrate(src.data_dir)
    assert p.returncode != 0
    assert bad_digest in p.stderr and bad_digest in p.stdout
    assert [f["digest"] for f in summary["blobs"]["failed"]] == [bad_digest]
    assert summary["blobs"]["copied"] == len(image["blobs"]) - 1
    # Metadata naming a blob the destination lacks is never written.
    assert dest.sql("SELECT count(*) FROM repositories") == "0"
    assert dest.sql("SELECT count(*) FROM manifests") == "0"
    s3 = dest.s3_client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=dest.s3.bucket, Prefix=f"{dest.prefix}/blobs/").get("Contents", [])]
    assert not any(k.endswith(bad_digest.split(":")[1]) for k in keys), keys


def test_destinations_that_are_not_a_cluster_are_refused(tmp_path):
    src = Berth(str(tmp_path / "source")).start()
    src.stop()
    for args, words in ((["--metadata", "sqlite", "--blobs", "s3://b/p"], "PostgreSQL only"),
                        (["--metadata", "postgres://u:secretpw@127.0.0.1:1/x", "--blobs", "fs"], "source itself"),
                        (["--metadata", "postgres://u:secretpw@127.0.0.1:1/x", "--blobs", f"file://{src.data_dir}"],
                         "source data directory")):
        p = subprocess.run([berth_bin(), "migrate", "--from-data-dir", src.data_dir, *args],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and words in p.stderr, (args, p.stderr)
        assert "secretpw" not in p.stderr
    p = subprocess.run([berth_bin(), "migrate", "--from-data-dir", str(tmp_path / "nothing"),
                        "--metadata", "postgres://u:pw@127.0.0.1:1/x", "--blobs", "s3://b/p"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "no berth.db" in p.stderr, p.stderr
