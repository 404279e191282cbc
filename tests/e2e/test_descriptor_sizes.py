"""A descriptor's size must be its content's (OCI image-spec): a manifest declaring a layer of
2^63-1 bytes for a 10-byte blob is refused, on /v2/ and on PutImage; real clients still push."""
import json
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

import images
from httputil import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Registry, assert_error, assert_status, sha256

HUGE = 2**63 - 1


def image_manifest(cfg, layer, layer_size):
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": layer_size}],
    }).encode()


def test_a_lying_layer_size_is_refused_on_v2_and_put_image(berth, repo):
    reg = Registry(berth.url, token=berth.token())
    cfg, layer = b'{"architecture":"amd64","os":"linux"}', b"ten bytes!"
    reg.upload_blob(repo, cfg)
    reg.upload_blob(repo, layer)

    r = reg.put_manifest(repo, "huge", image_manifest(cfg, layer, HUGE), OCI_MANIFEST, expect=None)
    assert_error(r, 400, "MANIFEST_INVALID")
    message = r.json()["errors"][0]["message"]
    assert sha256(layer) in message and str(HUGE) in message and "10 bytes" in message, message
    assert_error(reg.get(f"/v2/{repo}/manifests/huge"), 404, "MANIFEST_UNKNOWN")

    ecr = berth.ecr()
    with pytest.raises(ClientError) as e:
        ecr.put_image(repositoryName=repo, imageManifest=image_manifest(cfg, layer, HUGE).decode(), imageTag="huge")
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidParameterException", err
    assert sha256(layer) in err["Message"] and str(HUGE) in err["Message"], err
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []

    # One byte off is as wrong; the true size is accepted and reported.
    assert_error(reg.put_manifest(repo, "v1", image_manifest(cfg, layer, 11), OCI_MANIFEST, expect=None), 400, "MANIFEST_INVALID")
    reg.put_manifest(repo, "v1", image_manifest(cfg, layer, len(layer)), OCI_MANIFEST)
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    assert detail["imageSizeInBytes"] < 1000, detail


def test_an_index_must_declare_its_childrens_lengths(berth, repo):
    reg = Registry(berth.url, token=berth.token())
    child = reg.push_image(repo, tag="child")

    def index(size):
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": child["digest"], "size": size,
             "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()

    r = reg.put_manifest(repo, "list", index(HUGE), OCI_INDEX, expect=None)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert child["digest"] in r.json()["errors"][0]["message"]
    with pytest.raises(ClientError) as e:
        berth.ecr().put_image(repositoryName=repo, imageManifest=index(len(child["manifest"]) + 1).decode(), imageTag="list")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    reg.put_manifest(repo, "list", index(len(child["manifest"])), OCI_INDEX)


def test_skopeo_still_pushes_images_and_indexes(berth, repo, tmp_path):
    if not shutil.which("skopeo"):
        pytest.fail("client 'skopeo' is not installed (run scripts/install-test-deps.sh)")
    layout = str(tmp_path / "layout")
    multi = images.build_multiarch(layout, "multi")
    dest = f"docker://{berth.addr}/{repo}:multi"
    p = subprocess.run(["skopeo", "copy", "--all", "--dest-tls-verify=false", "--dest-creds", f"AWS:{berth.token()}",
                        f"oci:{layout}:multi", dest], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    reg = Registry(berth.url, token=berth.token())
    r = reg.get(f"/v2/{repo}/manifests/multi", headers={"Accept": OCI_INDEX})
    assert_status(r, 200)
    assert r.headers["Docker-Content-Digest"] == multi.index_digest
    for c in multi.children:
        assert_status(reg.head(f"/v2/{repo}/manifests/{c.manifest_digest}", headers={"Accept": OCI_MANIFEST}), 200)
