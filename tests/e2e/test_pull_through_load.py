"""Pull-through cache under a crowd (issue 20): 20 skopeo processes pull one uncached 200 MiB
image through berth at once; every client gets the upstream's digests and distribution's access
log shows each blob fetched from the upstream once. Outputs are verified and deleted as each
client finishes, so the disk holds at most the copies still in flight.
"""
import hashlib
import shutil
import subprocess
import time

from test_pull_through import (add_rule, aws_home, cache, tar_image, upstream,  # noqa: F401 (fixtures)
                               wait_for_image)

CLIENTS = 20
LAYERS = [50 * 1024 * 1024] * 4  # 200 MiB of incompressible layers
PULL_TIMEOUT = 900


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def test_twenty_concurrent_pulls_of_an_uncached_200_mib_image_fetch_each_blob_once(cache, upstream, tmp_path):
    home = aws_home(tmp_path)
    img = tar_image(str(tmp_path / "oci"), "big", LAYERS)
    upstream.push(img, "team/huge", "v1")
    manifest_bytes = img.manifest_bytes
    shutil.rmtree(tmp_path / "oci")
    assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0
    before = upstream.blob_gets("team/huge")
    wanted = [img.config_digest, *img.layer_digests]

    token = cache.token()
    ref = f"docker://{cache.addr}/dist/team/huge:v1"
    procs = {}
    for i in range(CLIENTS):
        out = tmp_path / f"pull{i}"
        procs[i] = (out, subprocess.Popen(
            ["skopeo", "copy", "--src-tls-verify=false", "--src-creds", f"AWS:{token}", ref, f"dir:{out}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))

    end = time.monotonic() + PULL_TIMEOUT
    while procs:
        # Check whichever finished first (a poll with a deadline, not a timing guess).
        done = [i for i, (_, p) in procs.items() if p.poll() is not None]
        if not done:
            assert time.monotonic() < end, f"{len(procs)} pulls still running after {PULL_TIMEOUT} s"
            time.sleep(0.2)
            continue
        for i in done:
            out, p = procs.pop(i)
            assert p.returncode == 0, f"client {i}: {p.stderr.read()}"
            assert open(out / "manifest.json", "rb").read() == manifest_bytes, f"client {i}"
            for d in wanted:
                assert file_sha256(out / d.split(":")[1]) == d, f"client {i} got wrong bytes for {d}"
            shutil.rmtree(out)

    wait_for_image(cache.ecr(), "dist/team/huge", "v1")
    gets = upstream.blob_gets("team/huge")
    for d in wanted:
        assert gets.get(d, 0) - before.get(d, 0) == 1, (d, gets)
    detail = cache.ecr().describe_images(repositoryName="dist/team/huge", imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    assert detail["imageDigest"] == img.manifest_digest
    assert detail["imageSizeInBytes"] >= sum(LAYERS)
