"""A full disk never costs an acknowledged write: berth's data dir on a small tmpfs is filled by a
push and by another program; every write is refused with a clear 503 while reads keep working, the
upload that filled the disk is dropped so berth recovers by itself, nothing written after the
failure is lost, and a restart finds exactly what was acknowledged."""
import json
import os
import re
import subprocess
import uuid

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Berth
from images import sha256_digest

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def small_disk(tmp_path):
    d = tmp_path / "disk"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(d)], capture_output=True, text=True)
    assert p.returncode == 0, f"mounting a tmpfs needs root: {p.stderr}"
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def ecr_once(b):
    """boto3 without retries: every refusal is seen as it is."""
    return boto3.client("ecr", endpoint_url=b.url, region_name=b.region, aws_access_key_id=b.admin_key,
                        aws_secret_access_key=b.admin_secret, config=Config(retries={"max_attempts": 1, "mode": "standard"}))


class Pusher:
    def __init__(self, b):
        self.b, self.auth = b, ("AWS", b.token())

    def blob(self, repo, data):
        d = sha256_digest(data)
        return requests.post(f"{self.b.url}/v2/{repo}/blobs/uploads/?digest={d}", data=data, auth=self.auth, timeout=60), d

    def image(self, repo, tag):
        """A tiny image; returns (status of the manifest PUT, manifest digest)."""
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex}).encode()
        layer = os.urandom(2048)
        for data in (cfg, layer):
            r, _ = self.blob(repo, data)
            if r.status_code != 201:
                return r, None
        m = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(cfg), "size": len(cfg)},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(layer), "size": len(layer)}]}).encode()
        r = requests.put(f"{self.b.url}/v2/{repo}/manifests/{tag}", data=m, auth=self.auth,
                         headers={"Content-Type": MT_OCI_MANIFEST}, timeout=60)
        return r, sha256_digest(m)

    def get_manifest(self, repo, ref):
        return requests.get(f"{self.b.url}/v2/{repo}/manifests/{ref}", auth=self.auth, headers={"Accept": MT_OCI_MANIFEST}, timeout=60)


def assert_disk_full_503(r):
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()["errors"][0]
    assert body["code"] == "UNAVAILABLE" and "full" in body["message"], body


def test_full_disk_refuses_writes_keeps_reads_and_loses_nothing(small_disk):
    # The data dir is the small disk itself; the server log (data dir + ".log") stays outside it.
    b = Berth(str(small_disk)).start()
    acknowledged = {}  # repository -> {tag: digest}
    refused_repos = []
    try:
        ecr, push = ecr_once(b), Pusher(b)
        ecr.create_repository(repositoryName="team/before")
        r, d = push.image("team/before", "v1")
        assert r.status_code == 201
        acknowledged["team/before"] = {"v1": d}

        # 1. A chunked push fills the disk: the chunk that does not fit is a clear 503, and the
        #    upload is dropped at once, so the space is back without an operator.
        start = requests.post(f"{b.url}/v2/team/big/blobs/uploads/", auth=push.auth, timeout=60)
        assert start.status_code == 202
        loc, last = start.headers["Location"], None
        for _ in range(100):
            last = requests.patch(b.url + loc, data=os.urandom(1 << 20), auth=push.auth, timeout=60)
            if last.status_code != 202:
                break
            loc = last.headers["Location"]
        assert_disk_full_503(last)
        assert free_bytes(small_disk) > 40 << 20, "the upload that filled the disk was not removed"
        assert requests.get(b.url + loc, auth=push.auth, timeout=60).status_code == 404  # BLOB_UPLOAD_UNKNOWN
        r, d = push.image("team/after-upload", "v1")
        assert r.status_code == 201, r.text
        acknowledged["team/after-upload"] = {"v1": d}

        # 2. Another program fills the disk: every write is refused (nothing acknowledged),
        #    every read still answers.
        filler = small_disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
        assert free_bytes(small_disk) < 1 << 20
        # A small metadata write may still fit in space SQLite's files already hold (a WAL reset
        # by a checkpoint is written over, not grown): then it is acknowledged and must survive
        # like any other. One that needs space is refused, the same way every time.
        for attempt in range(3):
            name = f"team/refused-{attempt}"
            try:
                ecr.create_repository(repositoryName=name)
                acknowledged[name] = {}
                continue
            except ClientError as e:
                err = e.response
            assert err["ResponseMetadata"]["HTTPStatusCode"] == 503, err
            assert err["Error"]["Code"] == "ServiceUnavailableException" and "full" in err["Error"]["Message"], err
            refused_repos.append(name)
        if refused_repos:
            # The failed COMMITs left the single writer connection out of step; it was replaced.
            assert "closing the database writer connection" in open(b.log_path, errors="replace").read()
        r, _ = push.image("team/before", "v2")
        assert r.status_code == 503, (r.status_code, r.text)
        # What an operator's alert reads (ops/prometheus: BerthStoreErrors): the refusals counted.
        metrics = requests.get(f"{b.url}/metrics", timeout=30).text
        m = re.search(r'^berth_store_errors_total\{backend="disk",operation="write"\} (\d+)$', metrics, re.M)
        assert m and int(m.group(1)) >= 1, "the full disk's refusals are not in berth_store_errors_total"
        assert push.get_manifest("team/before", "v1").status_code == 200
        names = {x["repositoryName"] for x in ecr.describe_repositories()["repositories"]}
        assert {"team/before", "team/after-upload"} <= names and not names & set(refused_repos)
        assert {n for n in acknowledged if n.startswith("team/refused-")} <= names

        # 3. Space returns: writes work again at once, no restart, and they are committed.
        filler.unlink()
        ecr.create_repository(repositoryName="team/recovered")
        r, d = push.image("team/recovered", "v1")
        assert r.status_code == 201, r.text
        acknowledged["team/recovered"] = {"v1": d}
        names = {x["repositoryName"] for x in ecr.describe_repositories()["repositories"]}
        assert "team/recovered" in names
    finally:
        b.stop()

    # 4. After a restart, exactly what was acknowledged is there.
    b.start()
    try:
        ecr, push = ecr_once(b), Pusher(b)
        names = {x["repositoryName"] for x in ecr.describe_repositories()["repositories"]}
        for repo, tags in acknowledged.items():
            assert repo in names, (repo, names)
            for tag, digest in tags.items():
                r = push.get_manifest(repo, tag)
                assert r.status_code == 200 and sha256_digest(r.content) == digest, (repo, tag, r.status_code)
        assert not names & set(refused_repos), names
        assert push.get_manifest("team/before", "v2").status_code == 404
    finally:
        b.stop()
    out = b.cli("fsck", "--data-dir", b.data_dir, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
