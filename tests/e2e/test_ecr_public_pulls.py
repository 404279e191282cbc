"""ECR Public on /v2/ (issue 18): the guide's flow with the aws CLI — create-repository with catalog
data, get-login-password, push with skopeo and podman to <host>/<alias>/<name> — then anonymous pulls
of the same image with skopeo, podman and containerd's ctr (digests equal); anonymous pushes, deletes
and private-repository reads refused; a private repository of the same name stays apart; the pull
quota answering 429 TOOMANYREQUESTS with Retry-After, then recovering.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

import images
from conftest import Berth
from test_addressing import Containerd, run
from test_encryption import aws, skopeo_copy

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def public_uri(b, home, name):
    _, registries = aws(b, home, "ecr-public", "describe-registries")
    alias = registries["registries"][0]["aliases"][0]["name"]
    return f"{b.addr}/{alias}/{name}", alias


def login_password(b, home):
    """`aws ecr-public get-login-password` (plain text, not JSON)."""
    from conftest import REGION
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), AWS_ACCESS_KEY_ID=b.admin_key, AWS_SECRET_ACCESS_KEY=b.admin_secret, AWS_DEFAULT_REGION=REGION)
    return run("aws", "--endpoint-url", b.url, "ecr-public", "get-login-password", env=env).stdout.strip()


def anonymous_env(home):
    """containers/image clients with no login at all (an empty auth file, no ~/.docker)."""
    os.makedirs(home, exist_ok=True)
    auth = os.path.join(home, "auth.json")
    with open(auth, "w") as f:
        json.dump({"auths": {}}, f)
    conf = os.path.join(home, "registries.conf")
    with open(conf, "w") as f:
        f.write("unqualified-search-registries = []\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REGISTRY_AUTH", "DOCKER_"))}
    env.update(HOME=str(home), REGISTRY_AUTH_FILE=auth, CONTAINERS_REGISTRIES_CONF=conf, TMPDIR=str(home))
    return env


def ctr_fetch(ref, blobs):
    """containerd's `ctr content fetch` without a login; every blob lands in its content store."""
    d = tempfile.mkdtemp(prefix="berth-pub-", dir="/tmp")
    c = Containerd(d)
    try:
        run("ctr", "-a", f"{d}/containerd.sock", "content", "fetch", "--plain-http", ref)
        for blob in blobs:
            assert c.has_blob(blob), blob
    finally:
        c.stop()
        subprocess.run(["umount", "-R", d], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def test_the_guides_public_repository_pulled_anonymously_by_skopeo_podman_and_ctr(fresh_berth, tmp_path):
    b, home = fresh_berth, tmp_path / "home"
    home.mkdir()
    _, made = aws(b, home, "ecr-public", "create-repository", "--repository-name", "demorepo",
                  "--catalog-data", "description=A demo,architectures=x86-64,operatingSystems=Linux")
    uri, alias = public_uri(b, home, "demorepo")
    assert made["repository"]["repositoryUri"] == uri
    password = login_password(b, home)

    img = images.build_image(str(tmp_path / "layout"), "v1", random_size=256 * 1024, with_busybox=False)
    run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{password}", img.ref, f"docker://{uri}:v1")
    digest = images.manifest_digest(img.layout, "v1")
    # podman pushes a second tag of it, logged in the guide's way.
    penv = anonymous_env(tmp_path / "podman-home")
    run("podman", "login", "--tls-verify=false", "--username", "AWS", "--password-stdin", b.addr, input=password, env=penv)
    run("podman", "pull", "--tls-verify=false", f"{uri}:v1", env=penv)
    run("podman", "push", "--tls-verify=false", f"{uri}:v1", f"docker://{uri}:v2", env=penv)

    # Anonymous pulls: no login anywhere.
    anon = anonymous_env(tmp_path / "anon")
    out = tmp_path / "anon-pull"
    run("skopeo", "copy", "--src-tls-verify=false", f"docker://{uri}:v1", f"dir:{out}", env=anon)
    assert open(out / "manifest.json", "rb").read() == img.manifest_bytes
    for d in [img.config_digest, *img.layer_digests]:
        assert open(out / d.split(":")[1], "rb").read() == images.read_blob(img.layout, d)
    inspected = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{uri}:v2", env=anon).stdout)
    pushed_by_podman = json.loads(run("skopeo", "inspect", "--tls-verify=false", "--creds", f"AWS:{password}",
                                      f"docker://{uri}:v2").stdout)
    assert inspected["Digest"] == pushed_by_podman["Digest"], "the anonymous and the logged-in pull see the same image"
    run("podman", "pull", "--tls-verify=false", f"{uri}:v1", env=anon)
    ids = run("podman", "image", "inspect", "--format", "{{.Digest}}", f"{uri}:v1", env=anon).stdout.strip()
    assert ids == digest
    ctr_fetch(f"{uri}:v1", [img.config_digest, *img.layer_digests])

    # Anonymous writes are refused; nothing changed.
    pushed = run("skopeo", "copy", "--dest-tls-verify=false", img.ref, f"docker://{uri}:evil", env=anon, check=False)
    assert pushed.returncode != 0
    r = requests.delete(f"{b.url}/v2/{alias}/demorepo/manifests/{digest}", timeout=10)
    assert r.status_code == 401
    r = requests.get(f"{b.url}/v2/{alias}/demorepo/tags/list", timeout=10)
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["v1", "v2"]

    # A private repository of the same name is another repository, and stays private.
    b.ecr().create_repository(repositoryName="demorepo")
    assert b.ecr().describe_images(repositoryName="demorepo")["imageDetails"] == []
    for path in ("/v2/demorepo/tags/list", f"/v2/demorepo/manifests/{digest}", "/v2/_catalog"):
        assert requests.get(b.url + path, timeout=10).status_code == 401, path
    r = requests.get(f"{b.url}/v2/_catalog", headers={"Authorization": "Basic Og=="}, timeout=10)
    assert r.status_code == 401


def test_the_anonymous_pull_quota_answers_429_with_retry_after_then_recovers(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--anonymous-pull-rate", "1", "--anonymous-pull-burst", "2"]).start()
    try:
        home = tmp_path / "home"
        home.mkdir()
        aws(b, home, "ecr-public", "create-repository", "--repository-name", "limited")
        uri, alias = public_uri(b, home, "limited")
        img = images.build_image(str(tmp_path / "layout"), "v1", random_size=1024, with_busybox=False)
        run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{login_password(b, home)}", img.ref,
            f"docker://{uri}:v1")
        url = f"{b.url}/v2/{alias}/limited/manifests/v1"
        hdr = {"Accept": OCI_MANIFEST}
        assert [requests.get(url, headers=hdr, timeout=10).status_code for _ in range(2)] == [200, 200]
        assert requests.head(url, headers=hdr, timeout=10).status_code == 200, "a HEAD is not an image pull"
        r = requests.get(url, headers=hdr, timeout=10)
        assert r.status_code == 429 and r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        wait = int(r.headers["Retry-After"])
        assert 1 <= wait <= 2
        # Authenticated pulls have their own, larger quota.
        token = b.token()
        assert requests.get(url, headers={**hdr, "Authorization": f"Basic {__import__('base64').b64encode(f'AWS:{token}'.encode()).decode()}"},
                            timeout=10).status_code == 200
        time.sleep(wait)  # the quota refills with time: waiting as long as Retry-After says is the client's part
        assert requests.get(url, headers=hdr, timeout=10).status_code == 200
    finally:
        b.stop()


def test_the_public_registry_host_offers_the_anonymous_bearer_token_flow(tmp_path):
    """On the `--public-registry-host` /v2/ answers ECR Public's challenge (Bearer, realm /token):
    docker, containerd and podman fetch an anonymous token there and pull with it; a logged-in
    client exchanges its login at the same realm and pushes."""
    b = Berth(str(tmp_path / "data"), extra_args=["--public-registry-host", "localhost"]).start()
    try:
        home = tmp_path / "home"
        home.mkdir()
        aws(b, home, "ecr-public", "create-repository", "--repository-name", "tokenflow")
        _, alias = public_uri(b, home, "tokenflow")
        port = b.addr.rsplit(":", 1)[1]
        public = f"localhost:{port}"
        uri = f"{public}/{alias}/tokenflow"
        img = images.build_image(str(tmp_path / "layout"), "v1", random_size=64 * 1024, with_busybox=False)
        digest = images.manifest_digest(img.layout, "v1")
        password = login_password(b, home)
        # A logged-in push through the public host: the client answers the Bearer challenge with
        # its login at the realm.
        run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{password}", img.ref, f"docker://{uri}:v1")

        base = f"http://{public}"
        ping = requests.get(f"{base}/v2/", timeout=10)
        assert ping.status_code == 401
        assert ping.headers["WWW-Authenticate"] == f'Bearer realm="{base}/token",service="{public}"'
        # The private host keeps ECR's Basic challenge.
        assert requests.get(f"{b.url}/v2/", timeout=10).headers["WWW-Authenticate"].startswith("Basic ")

        scope = {"service": public, "scope": f"repository:{alias}/tokenflow:pull"}
        token = requests.get(f"{base}/token", params=scope, timeout=10)
        assert token.status_code == 200
        anon = {"Authorization": f"Bearer {token.json()['token']}"}
        assert token.json()["token"] == token.json()["access_token"]
        assert requests.get(f"{base}/v2/", headers=anon, timeout=10).status_code == 200
        m = requests.get(f"{base}/v2/{alias}/tokenflow/manifests/v1", headers={**anon, "Accept": OCI_MANIFEST}, timeout=10)
        assert m.status_code == 200 and m.headers["Docker-Content-Digest"] == digest and m.content == img.manifest_bytes
        # The anonymous token grants what no credentials grant, nothing more.
        assert requests.get(f"{base}/v2/_catalog", headers=anon, timeout=10).status_code == 401
        r = requests.delete(f"{base}/v2/{alias}/tokenflow/manifests/{digest}", headers=anon, timeout=10)
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        r = requests.post(f"{base}/v2/{alias}/tokenflow/blobs/uploads/", headers=anon, timeout=10)
        assert r.status_code == 401
        # Wrong credentials at the realm are refused, not taken for anonymous.
        bad = requests.get(f"{base}/token", params=scope, auth=("AWS", "not-a-token"), timeout=10)
        assert bad.status_code == 401
        # A login exchanged at the realm works as a bearer token.
        good = requests.get(f"{base}/token", params=scope, auth=("AWS", password), timeout=10)
        assert good.status_code == 200
        tags = requests.get(f"{base}/v2/{alias}/tokenflow/tags/list", headers={"Authorization": f"Bearer {good.json()['token']}"},
                            timeout=10)
        assert tags.status_code == 200 and tags.json()["tags"] == ["v1"]

        # Real clients with no login follow the flow: skopeo, podman and containerd's ctr.
        env = anonymous_env(tmp_path / "anon")
        out = tmp_path / "pulled"
        run("skopeo", "copy", "--src-tls-verify=false", f"docker://{uri}:v1", f"dir:{out}", env=env)
        assert open(out / "manifest.json", "rb").read() == img.manifest_bytes
        run("podman", "pull", "--tls-verify=false", f"{uri}:v1", env=env)
        assert run("podman", "image", "inspect", "--format", "{{.Digest}}", f"{uri}:v1", env=env).stdout.strip() == digest
        ctr_fetch(f"{uri}:v1", [img.config_digest, *img.layer_digests])
        # An anonymous push through the public host is refused and changes nothing.
        pushed = run("skopeo", "copy", "--dest-tls-verify=false", img.ref, f"docker://{uri}:evil", env=env, check=False)
        assert pushed.returncode != 0
        assert requests.get(f"{base}/v2/{alias}/tokenflow/tags/list", headers=anon, timeout=10).json()["tags"] == ["v1"]
    finally:
        b.stop()
