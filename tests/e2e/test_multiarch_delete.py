"""Deleting images never breaks a multi-arch image.

A multi-arch index is pushed with `skopeo copy --all`; its platform images are then deleted the
ways users delete images: boto3 BatchDeleteImage of the untagged images (the usual cleanup),
`skopeo delete` and a raw `DELETE /v2/<name>/manifests/<digest>` of a platform, and the web
console's delete. Each is refused, naming the index (ECR's ImageReferencedByManifestList on the
ECR API; 400 UNSUPPORTED on /v2/), and after each every platform of the index still pulls.
Deleting the index together with its children in one BatchDeleteImage works.
"""
import html
import json
import os
import re
import shutil
import subprocess

import pytest
import requests

import images
from httputil import OCI_INDEX, OCI_MANIFEST, assert_error, assert_status, basic_auth

TIMEOUT = 300


def require(tool):
    if not shutil.which(tool):
        pytest.fail(f"client {tool!r} is not installed (run scripts/install-test-deps.sh)")


class Skopeo:
    """skopeo with its own auth file, logged in as ECR's guide says (AWS / registry token)."""

    def __init__(self, berth, home):
        require("skopeo")
        self.addr = berth.addr
        os.makedirs(home, exist_ok=True)
        self.authfile = os.path.join(home, "auth.json")
        with open(self.authfile, "w") as f:
            json.dump({"auths": {}}, f)
        self.env = dict(os.environ, HOME=str(home), REGISTRY_AUTH_FILE=self.authfile)
        self.run("login", "--tls-verify=false", "--authfile", self.authfile, "-u", "AWS", "--password-stdin",
                 self.addr, input=berth.token())

    def run(self, *args, check=True, input=None):
        p = subprocess.run(["skopeo", *args], capture_output=True, text=True, env=self.env, input=input,
                           timeout=TIMEOUT)
        if check:
            assert p.returncode == 0, f"skopeo {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        return p

    def ref(self, repo, ref):
        sep = "@" if ref.startswith("sha256:") else ":"
        return f"docker://{self.addr}/{repo}{sep}{ref}"

    def push_all(self, src, repo, tag):
        self.run("copy", "--all", "--dest-tls-verify=false", "--dest-authfile", self.authfile, src, self.ref(repo, tag))

    def raw(self, repo, ref):
        return self.run("inspect", "--raw", "--tls-verify=false", "--authfile", self.authfile, self.ref(repo, ref)).stdout

    def delete(self, repo, ref):
        return self.run("delete", "--tls-verify=false", "--authfile", self.authfile, self.ref(repo, ref), check=False)


def assert_every_platform_pulls(sk, repo, multi, dest):
    """The index and each platform by digest, byte for byte, and a full `skopeo copy --all` pull."""
    index = json.loads(sk.raw(repo, multi.tag))
    assert index["mediaType"] == OCI_INDEX
    listed = [m["digest"] for m in index["manifests"]]
    assert listed == [c.manifest_digest for c in multi.children]
    for child in multi.children:
        assert sk.raw(repo, child.manifest_digest).encode() == child.manifest_bytes
    if os.path.exists(dest):
        shutil.rmtree(dest)
    sk.run("copy", "--all", "--src-tls-verify=false", "--src-authfile", sk.authfile, sk.ref(repo, multi.tag),
           f"oci:{dest}:pulled")
    pulled = json.loads(images.manifest_bytes(dest, "pulled"))
    assert [m["digest"] for m in pulled["manifests"]] == listed
    for child in multi.children:
        # Every platform's blobs arrived (read_blob checks each digest).
        m = json.loads(images.read_blob(dest, child.manifest_digest))
        for layer in m["layers"]:
            images.read_blob(dest, layer["digest"])


def console_session(berth):
    """Signs in to the console with the admin access key; returns (requests session, csrf token)."""
    s = requests.Session()
    r = s.post(f"{berth.url}/console/signin", data={"method": "key", "access_key_id": berth.admin_key,
                                                    "secret_access_key": berth.admin_secret},
               allow_redirects=False, timeout=30)
    assert r.status_code == 303, r.text[:500]
    page = s.get(f"{berth.url}/console/repositories", timeout=30)
    assert_status(page, 200)
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m, "no CSRF token on the repositories page"
    return s, html.unescape(m.group(1))


def test_deleting_a_platform_of_a_multi_arch_image_is_refused_everywhere(berth, tmp_path, repo):
    ecr = berth.ecr()
    ecr.create_repository(repositoryName=repo)
    sk = Skopeo(berth, tmp_path / "home")
    multi = images.build_multiarch(str(tmp_path / "layout"), "multi")
    sk.push_all(multi.ref, repo, "multi")
    pulled = str(tmp_path / "pulled")
    children = [c.manifest_digest for c in multi.children]
    assert_every_platform_pulls(sk, repo, multi, pulled)

    # 1. The usual cleanup: list the untagged images (the platforms) and batch-delete them.
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert sorted(i["imageDigest"] for i in untagged) == sorted(children)
    out = ecr.batch_delete_image(repositoryName=repo, imageIds=untagged)
    assert out["imageIds"] == []
    assert sorted(f["imageId"]["imageDigest"] for f in out["failures"]) == sorted(children)
    for f in out["failures"]:
        assert f["failureCode"] == "ImageReferencedByManifestList", f
        assert f["failureReason"].startswith("Requested image referenced by manifest list"), f
        assert multi.index_digest in f["failureReason"], f
    assert_every_platform_pulls(sk, repo, multi, pulled)

    # 2. skopeo delete of a platform by digest fails; so does a raw DELETE, naming the index.
    p = sk.delete(repo, children[0])
    assert p.returncode != 0, p.stdout
    r = requests.delete(f"{berth.url}/v2/{repo}/manifests/{children[1]}",
                        headers={"Authorization": basic_auth(berth.token())}, timeout=30)
    assert_error(r, 400, "UNSUPPORTED")
    message = r.json()["errors"][0]["message"]
    assert multi.index_digest in message and children[1] in message, message
    assert_every_platform_pulls(sk, repo, multi, pulled)

    # A tag on a platform image can be deleted: the tag goes, the platform stays.
    ecr.put_image(repositoryName=repo, imageManifest=multi.children[0].manifest_bytes.decode(),
                  imageManifestMediaType=OCI_MANIFEST, imageTag="amd64-only")
    r = requests.delete(f"{berth.url}/v2/{repo}/manifests/amd64-only",
                        headers={"Authorization": basic_auth(berth.token())}, timeout=30)
    assert_status(r, 202)
    tags = {t for d in ecr.describe_images(repositoryName=repo)["imageDetails"] for t in d.get("imageTags", [])}
    assert tags == {"multi"}
    assert_every_platform_pulls(sk, repo, multi, pulled)

    # 3. The console: the confirm page warns and names the index; the delete is refused naming it.
    s, csrf = console_session(berth)
    url = f"{berth.url}/console/repo/{repo}/-/images/delete"
    r = s.post(url, data={"csrf": csrf, "image": children[0]}, allow_redirects=False, timeout=30)
    assert_status(r, 200)
    assert "listed-by" in r.text and multi.index_digest in r.text, r.text[-2000:]
    r = s.post(url, data={"csrf": csrf, "image": children[0], "confirm": "yes"}, allow_redirects=False, timeout=30)
    assert_status(r, 400)
    assert "ImageReferencedByManifestList" in r.text and multi.index_digest in r.text, r.text[-2000:]
    assert_every_platform_pulls(sk, repo, multi, pulled)

    # 4. The index in the same request (listed last): everything goes, in one call.
    ids = untagged + [{"imageDigest": multi.index_digest}]
    out = ecr.batch_delete_image(repositoryName=repo, imageIds=ids)
    assert out["failures"] == [], out
    assert sorted({i["imageDigest"] for i in out["imageIds"]}) == sorted(children + [multi.index_digest])
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []
    r = requests.get(f"{berth.url}/v2/{repo}/manifests/multi",
                     headers={"Authorization": basic_auth(berth.token()), "Accept": OCI_INDEX}, timeout=30)
    assert_error(r, 404, "MANIFEST_UNKNOWN")
