"""End-to-end tests of berth's Amazon ECR API and authentication.

What is checked is what ECR users do and look at: the user guide's flows with the real
`aws` CLI (v1) and boto3, `docker login` with `aws ecr get-login-password`, skopeo/podman
pushing and pulling with those credentials, and the AWS JSON 1.1 error types (`__type`)
botocore raises. Shapes and exception names follow botocore's model
botocore/data/ecr/2015-09-21/service-2.json (errors without an `httpStatusCode` are 400).

A missing client fails the test (it never skips).
"""
import base64
import datetime
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

import images
from conftest import ACCOUNT, ADMIN_KEY, ADMIN_SECRET, REGION, Berth
from httputil import (OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Registry, assert_error, assert_status,
                      basic_auth, describe, sha256)

OTHER_ACCOUNT = "210987654321"
TARGET = "AmazonEC2ContainerRegistry_V20150921"
MiB = 1024 * 1024
CMD_TIMEOUT = 300


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def require(tool):
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"client {tool!r} is not installed (run scripts/install-test-deps.sh); "
                    "ECR tests fail rather than skip when a client is missing")
    return path


def uniq(prefix="team/e"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def aws_error(fn, code, status=400, **kw):
    """Calls a boto3 operation that must fail with `code` (the __type botocore parsed)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as ei:
        fn(**kw)
    resp = ei.value.response
    assert resp["Error"]["Code"] == code, f"{fn.__name__}({kw}) -> {resp}"
    if status is not None:
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == status, f"{fn.__name__}({kw}) -> {resp}"
    return resp


def no_validation(berth, key=ADMIN_KEY, secret=ADMIN_SECRET):
    """A boto3 client that sends what it is given (botocore checks `min` constraints itself)."""
    import boto3
    from botocore.config import Config

    return boto3.client("ecr", endpoint_url=berth.url, region_name=REGION, aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=Config(parameter_validation=False, retries={"max_attempts": 1}))


def json_type(body: bytes) -> str:
    """The AWS JSON 1.1 error type, without any `namespace#` prefix."""
    data = json.loads(body)
    t = data.get("__type") or ""
    return t.rsplit("#", 1)[-1]


def json_message(body: bytes) -> str:
    data = json.loads(body)
    return data.get("message") or data.get("Message") or ""


def signed_request(berth, action, payload, key=ADMIN_KEY, secret=ADMIN_SECRET, skew=None):
    """POST / signed with botocore's SigV4Auth, with the signing clock moved by `skew`."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(payload).encode()
    req = AWSRequest(method="POST", url=berth.url + "/", data=body, headers={
        "X-Amz-Target": f"{TARGET}.{action}",
        "Content-Type": "application/x-amz-json-1.1",
    })
    signer = botocore.auth.SigV4Auth(Credentials(key, secret), "ecr", REGION)
    if skew is None:
        signer.add_auth(req)
    else:
        real = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: real() + skew
        try:
            signer.add_auth(req)
        finally:
            botocore.auth.get_current_datetime = real
    prepared = req.prepare()
    return requests.post(prepared.url, data=body, headers=dict(prepared.headers), timeout=30)


def ts(value) -> float:
    """A timestamp as the aws CLI v1 prints it (epoch number or ISO 8601) or as boto3 returns it."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def reg_for(berth, token=None):
    return Registry(berth.url, token=token or berth.token())


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def unmount_under(*dirs):
    """Unmount what podman left mounted under `dirs` (see test_clients.unmount_under)."""
    prefixes = tuple(os.path.realpath(d) + "/" for d in dirs)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    for mp in sorted((m for m in points if m.startswith(prefixes)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


class Aws:
    """The real aws CLI against berth, with no config or credentials file of its own."""

    def __init__(self, berth, home, key=ADMIN_KEY, secret=ADMIN_SECRET):
        require("aws")
        self.berth = berth
        self.home = str(home)
        os.makedirs(self.home, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=os.path.join(self.home, "no-such-config"),
            AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.home, "no-such-credentials"),
            HOME=self.home,
            DOCKER_CONFIG=os.path.join(self.home, ".docker"),
            XDG_RUNTIME_DIR=os.path.join(self.home, "xdg-run"),
            TMPDIR=os.path.join(self.home, "tmp"),
        )
        os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        os.makedirs(env["TMPDIR"], exist_ok=True)
        self.env = env

    def sh(self, cmd, check=True, input=None):
        p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                           env=self.env, timeout=CMD_TIMEOUT, input=input)
        if check:
            assert p.returncode == 0, f"$ {cmd}\nexit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}" \
                                      f"\n--- berth log ---\n{open(self.berth.log_path, errors='replace').read()[-3000:]}"
        return p

    def ecr(self, *args, check=True):
        cmd = ["aws", "--endpoint-url", self.berth.url, "--output", "json", "ecr", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=CMD_TIMEOUT)
        if check:
            assert p.returncode == 0, f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}"
            return json.loads(p.stdout) if p.stdout.strip() else {}
        return p

    def ecr_fails(self, code, *args):
        p = self.ecr(*args, check=False)
        assert p.returncode != 0 and f"({code})" in p.stderr, \
            f"aws ecr {' '.join(args)}: expected {code}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p


@pytest.fixture
def aws(berth, tmp_path):
    return Aws(berth, tmp_path / "aws-home")


@pytest.fixture
def short_dir():
    d = tempfile.mkdtemp(prefix="berth-ecr-", dir="/tmp")  # podman's runroot must be short
    yield d
    unmount_under(d)
    shutil.rmtree(d, ignore_errors=True)


def podman(aws, short, *args, check=True):
    require("podman")
    root = os.path.join(aws.home, "podman-root")
    cmd = ["podman", "--root", root, "--runroot", os.path.join(short, "run"), "--tmpdir",
           os.path.join(short, "tmp"), "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
           "--events-backend", "file", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=aws.env, timeout=CMD_TIMEOUT)
    if check:
        assert p.returncode == 0, f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def make_manifest(reg, repo, nlayers=1, size=512):
    """Uploads config + layers over /v2/ (no manifest); returns (manifest bytes, blobs)."""
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                      "nonce": uuid.uuid4().hex}).encode()
    reg.upload_blob(repo, cfg)
    layers = [os.urandom(size) for _ in range(nlayers)]
    for layer in layers:
        reg.upload_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
         "layers": [{"mediaType": OCI_LAYER, "digest": sha256(x), "size": len(x)} for x in layers]}
    return json.dumps(m).encode(), [cfg, *layers]


def manifest_digest_of(reg, repo, ref):
    r = reg.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
    assert_status(r, 200)
    return r.headers["Docker-Content-Digest"], r.content


# --------------------------------------------------------------------------------------------
# the user guide, verbatim, with the aws CLI, docker login, skopeo and podman
# --------------------------------------------------------------------------------------------

def test_user_guide_flow_with_aws_cli(berth, aws, tmp_path, short_dir):
    name = uniq("team/app")
    uri = f"{berth.addr}/{name}"

    # aws ecr create-repository --repository-name team/app --image-scanning-configuration
    #     scanOnPush=true --image-tag-mutability IMMUTABLE --region us-east-1
    t0 = time.time()
    created = aws.ecr("create-repository", "--repository-name", name, "--image-scanning-configuration",
                      "scanOnPush=true", "--image-tag-mutability", "IMMUTABLE", "--region", REGION)["repository"]
    assert created["repositoryName"] == name
    assert created["registryId"] == ACCOUNT
    assert created["repositoryArn"] == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}"
    assert created["repositoryUri"] == uri
    assert created["imageTagMutability"] == "IMMUTABLE"
    assert created["imageScanningConfiguration"] == {"scanOnPush": True}
    assert t0 - 5 <= ts(created["createdAt"]) <= time.time() + 5, created

    described = aws.ecr("describe-repositories", "--repository-names", name)["repositories"]
    assert len(described) == 1
    for k in ("repositoryName", "registryId", "repositoryArn", "repositoryUri", "imageTagMutability",
              "imageScanningConfiguration"):
        assert described[0][k] == created[k], (k, described[0], created)
    assert ts(described[0]["createdAt"]) == pytest.approx(ts(created["createdAt"]), abs=1)
    # without --repository-names the repository is listed too
    everything = aws.ecr("describe-repositories")["repositories"]
    assert name in [r["repositoryName"] for r in everything]

    # aws ecr get-login-password --region us-east-1 | docker login --username AWS --password-stdin URI
    require("docker")
    p = aws.sh(f"aws --endpoint-url {berth.url} ecr get-login-password --region {REGION}"
               f" | docker login --username AWS --password-stdin {berth.addr}")
    assert "Login Succeeded" in p.stdout, p.stdout + p.stderr
    with open(os.path.join(aws.env["DOCKER_CONFIG"], "config.json")) as f:
        assert berth.addr in json.load(f)["auths"]

    # skopeo and podman use that login (they read the docker config; nothing else has credentials)
    require("skopeo")
    layout = str(tmp_path / "layout")
    img = images.build_image(layout, "small")
    aws.sh(f"skopeo copy --dest-tls-verify=false {img.ref} docker://{uri}:latest")
    aws.sh(f"skopeo copy --dest-tls-verify=false {img.ref} docker://{uri}:v1")
    info = json.loads(aws.sh(f"skopeo inspect --tls-verify=false docker://{uri}:latest").stdout)
    assert info["Digest"] == img.manifest_digest
    assert info["Layers"] == img.layer_digests

    podman(aws, short_dir, "pull", "--tls-verify=false", f"{uri}:v1")
    got = podman(aws, short_dir, "image", "inspect", "--format", "{{.Digest}}", f"{uri}:v1").stdout.strip()
    assert got == img.manifest_digest
    podman(aws, short_dir, "tag", f"{uri}:v1", f"{uri}:podman")
    podman(aws, short_dir, "push", "--tls-verify=false", f"{uri}:podman")

    # without the login, the same pull is refused
    p = aws.sh(f"DOCKER_CONFIG={tmp_path}/empty HOME={tmp_path}/empty skopeo inspect --tls-verify=false "
               f"docker://{uri}:v1", check=False)
    assert p.returncode != 0, p.stdout
    assert "unauthorized" in p.stderr.lower() or "authentication required" in p.stderr.lower(), p.stderr

    # aws ecr list-images --repository-name team/app
    ids = aws.ecr("list-images", "--repository-name", name)["imageIds"]
    by_tag = {i.get("imageTag"): i["imageDigest"] for i in ids}
    assert by_tag["latest"] == by_tag["v1"] == img.manifest_digest, ids
    assert "podman" in by_tag, ids

    # aws ecr describe-images --repository-name team/app
    details = aws.ecr("describe-images", "--repository-name", name)["imageDetails"]
    mine = [d for d in details if d["imageDigest"] == img.manifest_digest]
    assert len(mine) == 1, details
    d = mine[0]
    assert sorted(d["imageTags"]) == ["latest", "v1"]
    assert d["registryId"] == ACCOUNT and d["repositoryName"] == name
    assert d["imageManifestMediaType"] == OCI_MANIFEST
    layer_sizes = sum(l["size"] for l in img.manifest["layers"])
    everything_size = layer_sizes + img.manifest["config"]["size"] + len(img.manifest_bytes)
    assert layer_sizes <= d["imageSizeInBytes"] <= everything_size, (d, layer_sizes, everything_size)
    assert t0 - 5 <= ts(d["imagePushedAt"]) <= time.time() + 5, d
    one = aws.ecr("describe-images", "--repository-name", name, "--image-ids", "imageTag=v1")["imageDetails"]
    assert [x["imageDigest"] for x in one] == [img.manifest_digest]

    # aws ecr batch-delete-image --repository-name team/app --image-ids imageTag=latest
    out = aws.ecr("batch-delete-image", "--repository-name", name, "--image-ids", "imageTag=latest")
    assert out["failures"] == [], out
    assert out["imageIds"] == [{"imageDigest": img.manifest_digest, "imageTag": "latest"}], out
    ids = aws.ecr("list-images", "--repository-name", name)["imageIds"]
    assert "latest" not in [i.get("imageTag") for i in ids]
    assert {"imageDigest": img.manifest_digest, "imageTag": "v1"} in ids  # only the tag went
    p = aws.sh(f"skopeo inspect --tls-verify=false docker://{uri}:latest", check=False)
    assert p.returncode != 0 and "manifest unknown" in p.stderr.lower(), p.stderr

    # aws ecr delete-repository: refused while images remain, then --force
    aws.ecr_fails("RepositoryNotEmptyException", "delete-repository", "--repository-name", name)
    assert aws.ecr("describe-repositories", "--repository-names", name)["repositories"]
    gone = aws.ecr("delete-repository", "--repository-name", name, "--force")["repository"]
    assert gone["repositoryName"] == name and gone["repositoryArn"] == created["repositoryArn"]
    aws.ecr_fails("RepositoryNotFoundException", "describe-repositories", "--repository-names", name)
    aws.ecr_fails("RepositoryNotFoundException", "list-images", "--repository-name", name)
    r = reg_for(berth).get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert_error(r, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def test_delete_empty_repository_without_force(berth, aws):
    name = uniq()
    aws.ecr("create-repository", "--repository-name", name)
    gone = aws.ecr("delete-repository", "--repository-name", name)["repository"]
    assert gone["repositoryName"] == name and gone["registryId"] == ACCOUNT
    aws.ecr_fails("RepositoryNotFoundException", "delete-repository", "--repository-name", name)


def test_get_login_password_and_authorization_token(berth, aws):
    token = aws.sh(f"aws --endpoint-url {berth.url} ecr get-login-password").stdout.strip()
    assert token and ":" not in token
    r = requests.get(berth.url + "/v2/", headers={"Authorization": basic_auth(token)}, timeout=30)
    assert_status(r, 200)

    t0 = time.time()
    data = berth.ecr().get_authorization_token()["authorizationData"]
    assert len(data) == 1
    user, password = base64.b64decode(data[0]["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS" and password
    # ECR's tokens last 12 hours
    assert ts(data[0]["expiresAt"]) - t0 == pytest.approx(12 * 3600, abs=120), data
    assert berth.addr in data[0]["proxyEndpoint"], data


# --------------------------------------------------------------------------------------------
# the same through boto3, with pagination
# --------------------------------------------------------------------------------------------

def _pages(call, key, page_size, **kw):
    pages, token = [], None
    while True:
        args = dict(kw, maxResults=page_size)
        if token:
            args["nextToken"] = token
        out = call(**args)
        pages.append(out[key])
        token = out.get("nextToken")
        if not token:
            return pages
        assert len(pages) < 100, "pagination does not end"


def test_boto3_repository_lifecycle(berth):
    ecr = berth.ecr()
    name = uniq("team/boto")
    repo = ecr.create_repository(repositoryName=name, imageTagMutability="MUTABLE",
                                 imageScanningConfiguration={"scanOnPush": False},
                                 tags=[{"Key": "team", "Value": "platform"}])["repository"]
    assert repo["repositoryUri"] == f"{berth.addr}/{name}"
    assert repo["imageTagMutability"] == "MUTABLE"
    arn = repo["repositoryArn"]
    assert arn == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}"

    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "platform"}]
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "env", "Value": "prod"}])
    tags = ecr.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "prod"), ("team", "platform")]
    ecr.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "env", "Value": "prod"}]

    out = ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE")
    assert out["imageTagMutability"] == "IMMUTABLE" and out["repositoryName"] == name
    out = ecr.put_image_scanning_configuration(repositoryName=name,
                                               imageScanningConfiguration={"scanOnPush": True})
    assert out["imageScanningConfiguration"] == {"scanOnPush": True}
    d = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert d["imageTagMutability"] == "IMMUTABLE" and d["imageScanningConfiguration"] == {"scanOnPush": True}

    reg = ecr.describe_registry()
    assert reg["registryId"] == ACCOUNT

    img = reg_for(berth).push_image(name, tag="v1")
    aws_error(ecr.delete_repository, "RepositoryNotEmptyException", repositoryName=name)
    ecr.delete_repository(repositoryName=name, force=True)
    aws_error(ecr.describe_repositories, "RepositoryNotFoundException", repositoryNames=[name])
    r = reg_for(berth).get(f"/v2/{name}/manifests/{img['digest']}")
    assert_error(r, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")


def test_boto3_pagination(fresh_berth):
    ecr = fresh_berth.ecr()
    names = sorted(uniq(f"team/p{i}-") for i in range(5))
    for n in names:
        ecr.create_repository(repositoryName=n)

    pages = _pages(ecr.describe_repositories, "repositories", 2)
    assert [len(p) for p in pages] == [2, 2, 1], pages
    listed = [r["repositoryName"] for p in pages for r in p]
    assert sorted(listed) == names, listed
    assert len(ecr.describe_repositories()["repositories"]) == 5
    paginated = [r["repositoryName"] for page in ecr.get_paginator("describe_repositories").paginate(
        PaginationConfig={"PageSize": 3}) for r in page["repositories"]]
    assert sorted(paginated) == names

    reg = reg_for(fresh_berth)
    repo = names[0]
    pushed = {}
    for i in range(5):
        pushed[f"t{i}"] = reg.push_image(repo, tag=f"t{i}", nlayers=1)["digest"]

    pages = _pages(ecr.list_images, "imageIds", 2, repositoryName=repo)
    assert [len(p) for p in pages] == [2, 2, 1], pages
    got = {i["imageTag"]: i["imageDigest"] for p in pages for i in p}
    assert got == pushed

    pages = _pages(ecr.describe_images, "imageDetails", 2, repositoryName=repo)
    assert [len(p) for p in pages] == [2, 2, 1], pages
    got = {d["imageTags"][0]: d["imageDigest"] for p in pages for d in p}
    assert got == pushed
    via_paginator = [d["imageDigest"] for page in ecr.get_paginator("describe_images").paginate(
        repositoryName=repo, PaginationConfig={"PageSize": 4}) for d in page["imageDetails"]]
    assert sorted(via_paginator) == sorted(pushed.values())

    # an untagged image shows up under tagStatus UNTAGGED only
    untagged = reg.push_image(repo, tag=None, nlayers=1)["digest"]
    un = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert un == [{"imageDigest": untagged}], un
    tagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert sorted(i["imageDigest"] for i in tagged) == sorted(pushed.values())


# --------------------------------------------------------------------------------------------
# SigV4 on the ECR API
# --------------------------------------------------------------------------------------------

def test_unsigned_request_is_refused(berth):
    r = requests.post(berth.url + "/", data=b"{}", timeout=30, headers={
        "X-Amz-Target": f"{TARGET}.DescribeRepositories", "Content-Type": "application/x-amz-json-1.1"})
    assert 400 <= r.status_code < 500, describe(r)
    assert json_type(r.content) in ("UnrecognizedClientException", "MissingAuthenticationTokenException"), \
        describe(r)


def test_wrong_secret_is_invalid_signature(berth):
    ecr = berth.ecr(ADMIN_KEY, ADMIN_SECRET[:-1] + ("x" if ADMIN_SECRET[-1] != "x" else "y"))
    aws_error(ecr.describe_repositories, "InvalidSignatureException", status=403)
    aws_error(ecr.get_authorization_token, "InvalidSignatureException", status=403)


def test_unknown_access_key_is_unrecognized(berth):
    ecr = berth.ecr("AKIAUNKNOWNKEY000000", ADMIN_SECRET)
    aws_error(ecr.describe_repositories, "UnrecognizedClientException", status=403)


def test_signature_time_window(berth):
    r = signed_request(berth, "DescribeRegistry", {}, skew=datetime.timedelta(minutes=-10))
    assert_status(r, 200)
    assert r.json()["registryId"] == ACCOUNT

    r = signed_request(berth, "DescribeRegistry", {}, skew=datetime.timedelta(minutes=-16))
    assert 400 <= r.status_code < 500, describe(r)
    assert json_type(r.content) == "InvalidSignatureException", describe(r)
    assert "Signature expired" in json_message(r.content), describe(r)

    r = signed_request(berth, "DescribeRegistry", {}, skew=datetime.timedelta(minutes=16))
    assert 400 <= r.status_code < 500, describe(r)
    assert json_type(r.content) == "InvalidSignatureException", describe(r)


def test_tampered_body_is_invalid_signature(berth):
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps({"repositoryNames": ["team/a"]}).encode()
    req = AWSRequest(method="POST", url=berth.url + "/", data=body, headers={
        "X-Amz-Target": f"{TARGET}.DescribeRepositories", "Content-Type": "application/x-amz-json-1.1"})
    botocore.auth.SigV4Auth(Credentials(ADMIN_KEY, ADMIN_SECRET), "ecr", REGION).add_auth(req)
    p = req.prepare()
    r = requests.post(p.url, data=body.replace(b"team/a", b"team/b"), headers=dict(p.headers), timeout=30)
    assert 400 <= r.status_code < 500 and json_type(r.content) == "InvalidSignatureException", describe(r)


# --------------------------------------------------------------------------------------------
# registry tokens on /v2/
# --------------------------------------------------------------------------------------------

def test_v2_requires_credentials(berth, repo):
    reg_for(berth).push_image(repo, tag="v1")
    for path in ("/v2/", f"/v2/{repo}/tags/list", f"/v2/{repo}/manifests/v1"):
        r = requests.get(berth.url + path, timeout=30)
        assert_status(r, 401)
        challenge = r.headers.get("WWW-Authenticate", "")
        assert challenge.startswith("Basic ") and 'realm="' in challenge, describe(r)
        assert 'service="ecr.amazonaws.com"' in challenge, describe(r)
    r = requests.post(f"{berth.url}/v2/{repo}/blobs/uploads/", timeout=30)
    assert_status(r, 401)
    r = requests.get(berth.url + "/v2/", headers={"Authorization": basic_auth(berth.token())}, timeout=30)
    assert_status(r, 200)


def test_forged_registry_tokens_are_refused(berth, fresh_berth, repo):
    reg_for(berth).push_image(repo, tag="v1")
    good = berth.token()
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    mid = len(good) // 2
    forged = [
        flipped,                                   # MAC changed
        good[:mid] + ("x" if good[mid] != "x" else "y") + good[mid + 1:],  # payload changed
        "not-a-token",
        "",
        fresh_berth.token(),                       # issued by another berth (same admin key)
    ]
    for tok in forged:
        for path in ("/v2/", f"/v2/{repo}/manifests/v1"):
            r = requests.get(berth.url + path, headers={"Authorization": basic_auth(tok)}, timeout=30)
            assert_status(r, 401)
    # a real token with another user name than AWS, a Bearer token, a SigV4 secret as password
    for hdr in ("Basic " + base64.b64encode(f"admin:{good}".encode()).decode(),
                f"Bearer {good}",
                basic_auth(ADMIN_SECRET)):
        r = requests.get(f"{berth.url}/v2/{repo}/manifests/v1", headers={"Authorization": hdr}, timeout=30)
        assert_status(r, 401)
    r = requests.get(f"{berth.url}/v2/{repo}/manifests/v1", headers={"Authorization": basic_auth(good),
                                                                   "Accept": OCI_MANIFEST}, timeout=30)
    assert_status(r, 200)


def _faketime_env(offset):
    require("faketime")
    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1")
    assert libs, "libfaketime.so.1 not found (apt-get install faketime)"
    return {"LD_PRELOAD": libs[0], "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_DONT_RESET": "1"}


def test_expired_registry_token_is_refused(tmp_path):
    """A token is valid for 12 hours: the same data dir served 11 hours later takes it, 13 hours
    later refuses it (the server's clock is moved with libfaketime)."""
    data = str(tmp_path / "data")
    b = Berth(data).start()
    try:
        reg = reg_for(b)
        reg.push_image("team/app", tag="v1")
        token = b.token()
    finally:
        b.stop()
    hdr = {"Authorization": basic_auth(token), "Accept": OCI_MANIFEST}
    for offset, expected in (("+11h", 200), ("+13h", 401)):
        fb = Berth(data, env=_faketime_env(offset)).start()
        try:
            r = requests.get(f"{fb.url}/v2/team/app/manifests/v1", headers=hdr, timeout=30)
            assert r.status_code == expected, f"server clock {offset}: {describe(r)}"
            if expected == 401:
                assert r.headers.get("WWW-Authenticate", "").startswith("Basic "), describe(r)
                r = requests.get(f"{fb.url}/v2/", headers=hdr, timeout=30)
                assert_status(r, 401)
        finally:
            fb.stop()


# --------------------------------------------------------------------------------------------
# IAM: managed policies, repository policies, cross-account
# --------------------------------------------------------------------------------------------

def test_readonly_user_can_pull_but_not_push(berth, repo):
    admin = reg_for(berth)
    img = admin.push_image(repo, tag="v1")
    key, secret = berth.create_user(uniq("ro-"), policy="AmazonEC2ContainerRegistryReadOnly")
    ro = Registry(berth.url, token=berth.token(key, secret))

    # pull
    r = ro.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert_status(r, 200)
    assert r.content == img["manifest"]
    for d, data in img["blobs"]:
        r = ro.get(f"/v2/{repo}/blobs/{d}")
        assert_status(r, 200)
        assert r.content == data
    r = ro.get(f"/v2/{repo}/tags/list")
    assert_status(r, 200)
    assert r.json()["tags"] == ["v1"]

    # push / delete: 403 DENIED
    assert_error(ro.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"}), 403, "DENIED")
    assert_error(ro.put(f"/v2/{repo}/manifests/v2", data=img["manifest"],
                        headers={"Content-Type": OCI_MANIFEST}), 403, "DENIED")
    assert_error(ro.delete(f"/v2/{repo}/manifests/{img['digest']}"), 403, "DENIED")
    r = ro.post(f"/v2/{uniq()}/blobs/uploads/", headers={"Content-Length": "0"})  # would create a repo
    assert_error(r, (403, 404), "DENIED", "NAME_UNKNOWN")
    assert manifest_digest_of(admin, repo, "v1")[0] == img["digest"]
    assert admin.get(f"/v2/{repo}/manifests/v2").status_code == 404

    # the same through the ECR API
    ecr = berth.ecr(key, secret)
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}],
                              acceptedMediaTypes=[OCI_MANIFEST])
    assert got["failures"] == [] and got["images"][0]["imageManifest"] == img["manifest"].decode()
    assert ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageDigest"] == img["digest"]
    aws_error(ecr.initiate_layer_upload, "AccessDeniedException", repositoryName=repo)
    aws_error(ecr.put_image, "AccessDeniedException", repositoryName=repo,
              imageManifest=img["manifest"].decode(), imageTag="v3")
    aws_error(ecr.batch_delete_image, "AccessDeniedException", repositoryName=repo,
              imageIds=[{"imageTag": "v1"}])
    aws_error(ecr.create_repository, "AccessDeniedException", repositoryName=uniq())
    aws_error(ecr.delete_repository, "AccessDeniedException", repositoryName=repo, force=True)
    assert [i["imageTag"] for i in berth.ecr().list_images(repositoryName=repo)["imageIds"]] == ["v1"]


def test_poweruser_pushes_to_existing_repositories_only(berth):
    """AmazonEC2ContainerRegistryPowerUser has the push actions but not ecr:CreateRepository."""
    key, secret = berth.create_user(uniq("pu-"), policy="AmazonEC2ContainerRegistryPowerUser")
    name = uniq()
    berth.ecr().create_repository(repositoryName=name)
    pu = Registry(berth.url, token=berth.token(key, secret))
    img = pu.push_image(name, tag="v1")
    assert manifest_digest_of(reg_for(berth), name, "v1")[0] == img["digest"]
    new = uniq()
    r = pu.post(f"/v2/{new}/blobs/uploads/", headers={"Content-Length": "0"})
    assert_error(r, (403, 404), "DENIED", "NAME_UNKNOWN")
    aws_error(berth.ecr().describe_repositories, "RepositoryNotFoundException", repositoryNames=[new])
    aws_error(berth.ecr(key, secret).create_repository, "AccessDeniedException", repositoryName=new)


def test_custom_policy_file(berth, tmp_path):
    allowed, other = uniq("team/allowed"), uniq("team/other")
    admin = reg_for(berth)
    admin.push_image(allowed, tag="v1")
    admin.push_image(other, tag="v1")
    pf = tmp_path / "policy.json"
    pf.write_text(policy(
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
         "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{allowed}"}))
    key, secret = berth.create_user(uniq("pf-"), policy_file=str(pf))
    reg = Registry(berth.url, token=berth.token(key, secret))
    assert_status(reg.get(f"/v2/{allowed}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
    assert_error(reg.get(f"/v2/{other}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 403, "DENIED")
    ecr = berth.ecr(key, secret)
    assert ecr.batch_get_image(repositoryName=allowed, imageIds=[{"imageTag": "v1"}])["images"]
    aws_error(ecr.batch_get_image, "AccessDeniedException", repositoryName=other, imageIds=[{"imageTag": "v1"}])
    from botocore.exceptions import ClientError
    try:
        visible = {r["repositoryName"] for r in ecr.describe_repositories()["repositories"]}
    except ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDeniedException", e.response
    else:
        # The session server is shared: another test's repository policy may grant every principal
        # of the account DescribeRepositories on its repository. Never these two.
        assert allowed not in visible and other not in visible, visible


def test_cross_account_pull_needs_repository_policy(berth):
    ecr = berth.ecr()
    name = uniq("team/shared")
    ecr.create_repository(repositoryName=name)
    img = reg_for(berth).push_image(name, tag="v1")
    key, secret = berth.create_user(uniq("x-"), policy="AmazonEC2ContainerRegistryFullAccess",
                                    account=OTHER_ACCOUNT)
    other = berth.ecr(key, secret)
    # their own registry is account 210987654321, and does not have the repository
    assert other.describe_registry()["registryId"] == OTHER_ACCOUNT
    aws_error(other.describe_repositories, "RepositoryNotFoundException", repositoryNames=[name])

    get = dict(registryId=ACCOUNT, repositoryName=name, imageIds=[{"imageTag": "v1"}],
               acceptedMediaTypes=[OCI_MANIFEST])
    aws_error(other.batch_get_image, "AccessDeniedException", **get)

    grant = {"Sid": "AllowPull", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}
    text = policy(grant)
    out = ecr.set_repository_policy(repositoryName=name, policyText=text)
    assert out["repositoryName"] == name and out["registryId"] == ACCOUNT
    assert json.loads(ecr.get_repository_policy(repositoryName=name)["policyText"]) == json.loads(text)

    got = other.batch_get_image(**get)
    assert got["failures"] == [], got
    assert got["images"][0]["imageManifest"] == img["manifest"].decode()
    assert got["images"][0]["imageId"]["imageDigest"] == img["digest"]
    assert got["images"][0]["registryId"] == ACCOUNT
    # only what was granted: not DescribeImages, not pushing
    aws_error(other.describe_images, "AccessDeniedException", registryId=ACCOUNT, repositoryName=name)
    aws_error(other.initiate_layer_upload, "AccessDeniedException", registryId=ACCOUNT, repositoryName=name)

    # an explicit Deny beats the Allow
    deny = {"Sid": "DenyPull", "Effect": "Deny",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}, "Action": "ecr:BatchGetImage"}
    ecr.set_repository_policy(repositoryName=name, policyText=policy(grant, deny))
    aws_error(other.batch_get_image, "AccessDeniedException", **get)

    # GetDownloadUrlForLayer is still granted; its URL (pre-signed, says botocore's model) works
    layer = img["blobs"][1]
    url = other.get_download_url_for_layer(registryId=ACCOUNT, repositoryName=name,
                                           layerDigest=layer[0])["downloadUrl"]
    assert _download(url, berth.token(key, secret)) == layer[1]

    ecr.delete_repository_policy(repositoryName=name)
    aws_error(ecr.get_repository_policy, "RepositoryPolicyNotFoundException", repositoryName=name)
    aws_error(other.batch_get_image, "AccessDeniedException", **get)


def test_repository_policy_deny_beats_identity_allow(berth):
    ecr = berth.ecr()
    name = uniq("team/deny")
    ecr.create_repository(repositoryName=name)
    reg_for(berth).push_image(name, tag="v1")
    uname = uniq("full-")
    key, secret = berth.create_user(uname, policy="AmazonEC2ContainerRegistryFullAccess")
    user = berth.ecr(key, secret)
    user_reg = Registry(berth.url, token=berth.token(key, secret))
    assert user.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])["images"]
    assert_status(user_reg.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)

    ecr.set_repository_policy(repositoryName=name, policyText=policy(
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{uname}"},
         "Action": ["ecr:BatchGetImage", "ecr:PutImage", "ecr:InitiateLayerUpload"]}))
    aws_error(user.batch_get_image, "AccessDeniedException", repositoryName=name, imageIds=[{"imageTag": "v1"}])
    assert_error(user_reg.get(f"/v2/{name}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 403, "DENIED")
    assert_error(user_reg.post(f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"}), 403, "DENIED")
    # what the Deny does not name is still allowed
    assert user.describe_images(repositoryName=name)["imageDetails"]


def test_malformed_repository_policy(berth):
    ecr = berth.ecr()
    name = uniq()
    ecr.create_repository(repositoryName=name)
    for text in ("{not json", json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Perhaps", "Principal": "*", "Action": "ecr:BatchGetImage"}]})):
        aws_error(ecr.set_repository_policy, "InvalidParameterException", repositoryName=name, policyText=text)
    aws_error(ecr.get_repository_policy, "RepositoryPolicyNotFoundException", repositoryName=name)
    aws_error(ecr.set_repository_policy, "RepositoryNotFoundException", repositoryName=uniq(),
              policyText=policy({"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}))


# --------------------------------------------------------------------------------------------
# tag immutability
# --------------------------------------------------------------------------------------------

def test_immutable_tags_via_v2_and_put_image(berth):
    ecr = berth.ecr()
    name = uniq("team/imm")
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    reg = reg_for(berth)
    first = reg.push_image(name, tag="v1")
    body, _ = make_manifest(reg, name)

    r = reg.put_manifest(name, "v1", body, OCI_MANIFEST, expect=None)
    assert_error(r, 400, "TAG_INVALID")
    assert manifest_digest_of(reg, name, "v1") == (first["digest"], first["manifest"])

    resp = aws_error(ecr.put_image, "ImageTagAlreadyExistsException", repositoryName=name,
                     imageManifest=body.decode(), imageManifestMediaType=OCI_MANIFEST, imageTag="v1")
    assert manifest_digest_of(reg, name, "v1")[0] == first["digest"], resp
    # the image itself may be pushed, by digest or under a new tag
    out = ecr.put_image(repositoryName=name, imageManifest=body.decode(), imageManifestMediaType=OCI_MANIFEST,
                        imageTag="v2")
    assert out["image"]["imageId"] == {"imageDigest": sha256(body), "imageTag": "v2"}
    assert manifest_digest_of(reg, name, "v2")[0] == sha256(body)


def test_immutable_with_exclusion_lets_latest_move(berth):
    ecr = berth.ecr()
    name = uniq("team/excl")
    ecr.create_repository(repositoryName=name)
    out = ecr.put_image_tag_mutability(
        repositoryName=name, imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "latest"}])
    assert out["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    d = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    assert d["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert d["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": "latest"}]

    reg = reg_for(berth)
    a = reg.push_image(name, tag="latest")
    reg.put_manifest(name, "v1", a["manifest"], OCI_MANIFEST)
    b = reg.push_image(name, tag="latest")  # asserts 201
    assert manifest_digest_of(reg, name, "latest")[0] == b["digest"]
    r = reg.put_manifest(name, "v1", b["manifest"], OCI_MANIFEST, expect=None)
    assert_error(r, 400, "TAG_INVALID")
    assert manifest_digest_of(reg, name, "v1")[0] == a["digest"]


# --------------------------------------------------------------------------------------------
# validation errors
# --------------------------------------------------------------------------------------------

def test_validation_errors(berth):
    ecr = no_validation(berth)
    aws_error(ecr.create_repository, "InvalidParameterException", repositoryName="Team/App")
    aws_error(ecr.create_repository, "InvalidParameterException", repositoryName="team//app")
    aws_error(ecr.create_repository, "InvalidParameterException", repositoryName="-team")

    name = uniq()
    ecr.create_repository(repositoryName=name)
    aws_error(ecr.create_repository, "RepositoryAlreadyExistsException", repositoryName=name)

    for bad in (0, 1001):
        aws_error(ecr.describe_repositories, "InvalidParameterException", maxResults=bad)
        aws_error(ecr.list_images, "InvalidParameterException", repositoryName=name, maxResults=bad)
        aws_error(ecr.describe_images, "InvalidParameterException", repositoryName=name, maxResults=bad)
    ids = [{"imageTag": f"t{i}"} for i in range(101)]
    aws_error(ecr.batch_get_image, "InvalidParameterException", repositoryName=name, imageIds=ids)
    aws_error(ecr.batch_delete_image, "InvalidParameterException", repositoryName=name, imageIds=ids)
    # 100 is the limit, not an error
    out = ecr.batch_get_image(repositoryName=name, imageIds=ids[:100])
    assert out["images"] == [] and len(out["failures"]) == 100

    missing = uniq()
    aws_error(ecr.describe_repositories, "RepositoryNotFoundException", repositoryNames=[missing])
    aws_error(ecr.list_images, "RepositoryNotFoundException", repositoryName=missing)
    aws_error(ecr.describe_images, "RepositoryNotFoundException", repositoryName=missing)
    aws_error(ecr.batch_get_image, "RepositoryNotFoundException", repositoryName=missing,
              imageIds=[{"imageTag": "v1"}])
    aws_error(ecr.delete_repository, "RepositoryNotFoundException", repositoryName=missing)
    aws_error(ecr.initiate_layer_upload, "RepositoryNotFoundException", repositoryName=missing)
    aws_error(ecr.put_image_tag_mutability, "RepositoryNotFoundException", repositoryName=missing,
              imageTagMutability="IMMUTABLE")

    out = ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "nope"}])
    assert out["imageIds"] == [], out
    assert len(out["failures"]) == 1, out
    assert out["failures"][0]["imageId"] == {"imageTag": "nope"}, out
    assert out["failures"][0]["failureCode"] in ("ImageNotFound", "ImageTagDoesNotMatchDigest"), out
    aws_error(ecr.describe_images, "ImageNotFoundException", repositoryName=name, imageIds=[{"imageTag": "nope"}])


# --------------------------------------------------------------------------------------------
# the layer upload API
# --------------------------------------------------------------------------------------------

def _upload_layer(ecr, name, data, part):
    up = ecr.initiate_layer_upload(repositoryName=name)
    assert isinstance(up["partSize"], int) and up["uploadId"], up
    off = 0
    while off < len(data):
        chunk = data[off:off + part]
        out = ecr.upload_layer_part(repositoryName=name, uploadId=up["uploadId"], partFirstByte=off,
                                    partLastByte=off + len(chunk) - 1, layerPartBlob=chunk)
        assert out["lastByteReceived"] == off + len(chunk) - 1, out
        assert out["uploadId"] == up["uploadId"] and out["repositoryName"] == name, out
        off += len(chunk)
    out = ecr.complete_layer_upload(repositoryName=name, uploadId=up["uploadId"], layerDigests=[sha256(data)])
    assert out["layerDigest"] == sha256(data) and out["repositoryName"] == name, out
    assert out["registryId"] == ACCOUNT
    return out


def _download(url, token):
    r = requests.get(url, timeout=60, allow_redirects=True)
    if r.status_code == 401:  # served by berth's /v2/: needs the registry credentials
        r = requests.get(url, timeout=60, headers={"Authorization": basic_auth(token)}, allow_redirects=True)
    assert_status(r, 200)
    return r.content


def test_layer_part_too_small(berth):
    from botocore.exceptions import ClientError

    ecr = berth.ecr()
    name = uniq()
    ecr.create_repository(repositoryName=name)
    data = os.urandom(2 * MiB)
    up = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    ecr.upload_layer_part(repositoryName=name, uploadId=up, partFirstByte=0, partLastByte=MiB - 1,
                          layerPartBlob=data[:MiB])
    # a 1 MiB part that was not the last: ECR refuses it (botocore lists LayerPartTooSmallException
    # under CompleteLayerUpload; a server may already refuse the part that follows it)
    try:
        ecr.upload_layer_part(repositoryName=name, uploadId=up, partFirstByte=MiB, partLastByte=2 * MiB - 1,
                              layerPartBlob=data[MiB:])
    except ClientError as e:
        assert e.response["Error"]["Code"] == "LayerPartTooSmallException", e.response
        return
    aws_error(ecr.complete_layer_upload, "LayerPartTooSmallException", repositoryName=name, uploadId=up,
              layerDigests=[sha256(data)])
    out = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[sha256(data)])
    assert not [l for l in out["layers"] if l["layerAvailability"] == "AVAILABLE"], out


def test_layer_upload_put_image_batch_get_image(berth):
    ecr = berth.ecr()
    name = uniq("team/api")
    ecr.create_repository(repositoryName=name)

    layer = os.urandom(5 * MiB + 12345)        # two parts: 5 MiB, then the rest
    _upload_layer(ecr, name, layer, 5 * MiB)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    _upload_layer(ecr, name, cfg, 5 * MiB)     # one part, which is also the last

    aws_error(ecr.complete_layer_upload, "UploadNotFoundException", repositoryName=name,
              uploadId=str(uuid.uuid4()), layerDigests=[sha256(cfg)])
    up = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    ecr.upload_layer_part(repositoryName=name, uploadId=up, partFirstByte=0, partLastByte=9,
                          layerPartBlob=b"0123456789")
    aws_error(ecr.complete_layer_upload, "InvalidLayerException", repositoryName=name, uploadId=up,
              layerDigests=[sha256(b"something else")])

    missing = sha256(os.urandom(16))
    out = ecr.batch_check_layer_availability(repositoryName=name,
                                             layerDigests=[sha256(layer), sha256(cfg), missing])
    avail = {l["layerDigest"]: l for l in out["layers"]}
    assert avail[sha256(layer)]["layerAvailability"] == "AVAILABLE", out
    assert avail[sha256(layer)]["layerSize"] == len(layer), out
    assert avail[sha256(cfg)]["layerAvailability"] == "AVAILABLE", out
    assert (missing in avail and avail[missing]["layerAvailability"] == "UNAVAILABLE") or \
        any(f["layerDigest"] == missing for f in out["failures"]), out

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }, indent=2)
    digest = sha256(manifest.encode())
    put = ecr.put_image(repositoryName=name, imageManifest=manifest, imageManifestMediaType=OCI_MANIFEST,
                        imageTag="v1")["image"]
    assert put["imageId"] == {"imageDigest": digest, "imageTag": "v1"}, put
    assert put["imageManifest"] == manifest and put["registryId"] == ACCOUNT, put

    got = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}, {"imageDigest": digest}],
                              acceptedMediaTypes=[OCI_MANIFEST])
    assert got["failures"] == [], got
    assert len(got["images"]) >= 1
    for image in got["images"]:
        assert image["imageManifest"] == manifest           # the same bytes
        assert image["imageId"]["imageDigest"] == digest
        assert image["imageManifestMediaType"] == OCI_MANIFEST
    # and /v2/ serves the same bytes
    reg = reg_for(berth)
    assert manifest_digest_of(reg, name, "v1") == (digest, manifest.encode())

    # a manifest whose layer was never uploaded
    ghost = json.loads(manifest)
    ghost["layers"][0]["digest"] = missing
    aws_error(ecr.put_image, "LayersNotFoundException", repositoryName=name, imageManifest=json.dumps(ghost),
              imageManifestMediaType=OCI_MANIFEST, imageTag="ghost")

    dl = ecr.get_download_url_for_layer(repositoryName=name, layerDigest=sha256(layer))
    assert dl["layerDigest"] == sha256(layer)
    assert _download(dl["downloadUrl"], berth.token()) == layer
    aws_error(ecr.get_download_url_for_layer, "LayersNotFoundException", repositoryName=name, layerDigest=missing)

    # the blob pushed through the ECR API is a /v2/ blob too
    r = reg.get(f"/v2/{name}/blobs/{sha256(layer)}")
    assert_status(r, 200)
    assert hashlib.sha256(r.content).hexdigest() == sha256(layer).split(":")[1]


def test_registry_policy(berth):
    ecr = berth.ecr()
    text = policy({"Sid": "Replicate", "Effect": "Allow",
                   "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
                   "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                   "Resource": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/*"})
    out = ecr.put_registry_policy(policyText=text)
    assert out["registryId"] == ACCOUNT and json.loads(out["policyText"]) == json.loads(text)
    got = ecr.get_registry_policy()
    assert got["registryId"] == ACCOUNT and json.loads(got["policyText"]) == json.loads(text)
    ecr.delete_registry_policy()
    aws_error(ecr.get_registry_policy, "RegistryPolicyNotFoundException")
    aws_error(ecr.put_registry_policy, "InvalidParameterException", policyText="{nope")


def test_list_images_pages_one_image_with_many_tags(berth):
    """ListImages pages by image id (digest, tag): one image with 5 tags → pages of 2, 2, 1."""
    import hashlib as _h
    import json as _j

    import requests as _r

    ecr = berth.ecr()
    name = f"team/manytags{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=name)
    cfg = b"{}"
    cfg_digest = "sha256:" + _h.sha256(cfg).hexdigest()
    r = _r.post(f"{berth.url}/v2/{name}/blobs/uploads/?digest={cfg_digest}", data=cfg, auth=("AWS", berth.token()), timeout=30)
    assert r.status_code == 201, r.text
    manifest = _j.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": 2},
                         "layers": []})
    for t in ["a", "b", "c", "d", "e"]:
        ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag=t)
    pages, token = [], None
    while True:
        kw = {"repositoryName": name, "maxResults": 2}
        if token:
            kw["nextToken"] = token
        out = ecr.list_images(**kw)
        pages.append([i["imageTag"] for i in out["imageIds"]])
        token = out.get("nextToken")
        if not token:
            break
    assert pages == [["a", "b"], ["c", "d"], ["e"]]
