"""A blob whose stored bytes changed (one flipped byte) is never served as intact, even to a client
that does not check digests (curl): the download is cut short, the blob is quarantined and answered
BLOB_UNKNOWN saying why, counted in /metrics, reported by `berth fsck`, found by a scrub pass,
and restored by pushing the image again (skopeo).

These are blobs stored in clear: written before encryption at rest, or with AES256 left to the
storage (`--aes256-by-storage`), which these servers run with. Encrypted blobs authenticate every
64 KiB segment as they are read instead (test_encryption.py)."""
import json
import os
import subprocess

import requests

from conftest import Berth
from httputil import Registry, assert_error, basic_auth, blob_file, sha256
from images import build_image, file_digest, blob_path

MiB = 1024 * 1024


def run(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def flip_a_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x01]))


def metric(b, name):
    for line in requests.get(b.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def skopeo_copy(b, src, dst, check=True):
    creds = f"AWS:{b.token()}"
    return run("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds,
               "--dest-creds", creds, src, dst, check=check)


CLEAR = ["--aes256-by-storage"]


def test_a_corrupt_layer_is_never_served_as_intact_and_a_push_restores_it(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=CLEAR).start()
    try:
        layout = str(tmp_path / "layout")
        # Incompressible, so the layer spans several read chunks.
        img = build_image(layout, "v1", random_size=2 * MiB, with_busybox=False)
        layer = img.layer_digests[0]
        original = open(blob_path(layout, layer), "rb").read()
        b.ecr().create_repository(repositoryName="team/app")
        uri = f"docker://{b.addr}/team/app:v1"
        skopeo_copy(b, img.ref, uri)

        b.stop()
        flip_a_byte(blob_file(b.data_dir, layer))
        b.start(listen=b.addr)
        url = f"{b.url}/v2/team/app/blobs/{layer}"

        # curl does not verify digests: it must see a failed transfer, never a complete blob.
        out = tmp_path / "curl.out"
        p = run("curl", "-sS", "-o", str(out), "-H", f"Authorization: {basic_auth(b.token())}", url, check=False)
        assert p.returncode == 18, f"curl should report a partial transfer (18), got {p.returncode}: {p.stderr}"
        assert os.path.getsize(out) < len(original)

        # Quarantined from now on: GET and HEAD say BLOB_UNKNOWN, with the reason.
        reg = Registry(b.url, token=b.token())
        r = reg.get(f"/v2/team/app/blobs/{layer}")
        assert_error(r, 404, "BLOB_UNKNOWN")
        assert "quarantined" in r.json()["errors"][0]["message"]
        assert reg.head(f"/v2/team/app/blobs/{layer}").status_code == 404
        # ECR's own layer check says it is missing, so clients upload it again.
        check = b.ecr().batch_check_layer_availability(repositoryName="team/app", layerDigests=[layer])
        assert check["layers"] == [], check
        assert [(f["layerDigest"], f["failureCode"]) for f in check["failures"]] == [(layer, "MissingLayerDigest")], check
        # A verifying client fails cleanly too.
        assert skopeo_copy(b, uri, f"oci:{tmp_path}/pulled:v1", check=False).returncode != 0
        assert metric(b, "berth_blobs_corrupt_total") == 1
        assert metric(b, "berth_blobs_quarantined") == 1

        # fsck names it; the corrupt bytes are kept for inspection.
        b.stop()
        p = b.cli("fsck", "--data-dir", b.data_dir, check=False)
        assert p.returncode == 2, p.stdout + p.stderr
        report = json.loads(p.stdout)
        assert report["quarantined"] == [layer], report
        assert any(layer in pr and "quarantined" in pr for pr in report["problems"]), report
        kept = os.path.join(b.data_dir, "quarantine", "sha256", layer.split(":")[1])
        assert sha256(open(kept, "rb").read()) != layer

        # After a restart it is still quarantined; pushing the image again restores it.
        b.start(listen=b.addr)
        assert reg.head(f"/v2/team/app/blobs/{layer}").status_code == 404
        skopeo_copy(b, img.ref, uri)
        r = reg.get(f"/v2/team/app/blobs/{layer}")
        assert r.status_code == 200 and r.content == original
        skopeo_copy(b, uri, f"oci:{tmp_path}/pulled:v1")
        assert file_digest(blob_path(str(tmp_path / "pulled"), layer)) == layer
        assert metric(b, "berth_blobs_quarantined") == 0
        b.stop()
        p = b.cli("fsck", "--data-dir", b.data_dir, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        b.stop()


def test_a_scrub_pass_finds_bytes_that_changed_under_a_running_berth(tmp_path, repo):
    b = Berth(str(tmp_path / "data"), extra_args=CLEAR).start()
    try:
        scrub_finds_changed_bytes(b, repo)
    finally:
        b.stop()


def scrub_finds_changed_bytes(b, repo):
    reg = Registry(b.url, token=b.token())
    data = os.urandom(MiB)
    digest = sha256(data)
    reg.upload_blob(repo, data)
    fine = reg.upload_blob(repo, b"fine").headers["Docker-Content-Digest"]
    flip_a_byte(blob_file(b.data_dir, digest))

    assert requests.post(b.url + "/_berth/scrub", timeout=60).status_code == 401
    r = requests.post(b.url + "/_berth/scrub", headers={"Authorization": basic_auth(b.token())}, timeout=120)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["corrupt"] == [digest], report
    assert report["blobs_checked"] >= 2
    assert_error(reg.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert reg.get(f"/v2/{repo}/blobs/{fine}").content == b"fine"
    assert metric(b, "berth_scrub_blobs_total") >= 2
