"""Every registry (account x region) on one host: the repositoryUri berth returns reaches that
repository with the README's login, for skopeo, podman and containerd, and a push never lands in
another registry than the one its URI names (crates/berth-core/src/addressing.rs).

  default registry (BERTH_ACCOUNT_ID, BERTH_REGION):  HOST/<name>
  any other:                                          HOST/<account>/<region>/<name>
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

import images
from conftest import ACCOUNT, REGION, Berth

OTHER = "210987654321"
CMD_TIMEOUT = 300


def require(tool):
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"client {tool!r} is not installed (run scripts/install-test-deps.sh)")
    return path


def run(*cmd, env=None, check=True, input=None):
    cmd = [str(c) for c in cmd]
    require(cmd[0])
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=CMD_TIMEOUT, input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


class Identity:
    """One user's clients, logged in the README's way: get-login-password | login HOST."""

    def __init__(self, berth, home, short, key, secret, region):
        self.berth, self.key, self.secret = berth, key, secret
        self.home, self.short = str(home), short
        os.makedirs(os.path.join(self.home, "tmp"), exist_ok=True)
        self.authfile = os.path.join(self.home, "auth.json")
        with open(self.authfile, "w") as f:
            json.dump({"auths": {}}, f)
        regconf = os.path.join(self.home, "registries.conf")
        with open(regconf, "w") as f:
            f.write("unqualified-search-registries = []\n")
        self.env = dict(os.environ, HOME=self.home, TMPDIR=os.path.join(self.home, "tmp"),
                        REGISTRY_AUTH_FILE=self.authfile, CONTAINERS_REGISTRIES_CONF=regconf,
                        AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=region)
        self.env.pop("AWS_SHARED_CREDENTIALS_FILE", None)
        # The README's login: the aws CLI prints the password, the client reads it from stdin.
        self.password = run("aws", "--endpoint-url", berth.url, "ecr", "get-login-password",
                            "--region", region, env=self.env).stdout.strip()
        run("skopeo", "login", "--tls-verify=false", "--authfile", self.authfile, "-u", "AWS",
            "--password-stdin", berth.addr, env=self.env, input=self.password)

    def ecr(self, region):
        return self.berth.ecr(self.key, self.secret, region=region)

    def skopeo_push(self, image, uri, check=True):
        return run("skopeo", "copy", "--dest-tls-verify=false", "--dest-authfile", self.authfile,
                   image.ref, f"docker://{uri}", env=self.env, check=check)

    def skopeo_raw(self, uri, check=True):
        return run("skopeo", "inspect", "--tls-verify=false", "--authfile", self.authfile, "--raw",
                   f"docker://{uri}", env=self.env, check=check)

    def podman(self, *args, check=True):
        root = os.path.join(self.home, "podman")
        return run("podman", "--root", f"{root}/root", "--runroot", f"{self.short}/run", "--tmpdir",
                   f"{self.short}/tmp", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                   "--events-backend", "file", *args, env=self.env, check=check)

    def podman_pull(self, uri, check=True):
        return self.podman("pull", "--tls-verify=false", "--authfile", self.authfile, uri, check=check)


class Containerd:
    """A private containerd daemon (../shared/CLIENTS.md), driven with ctr."""

    def __init__(self, d):
        self.d = d
        cfg = os.path.join(d, "config.toml")
        plugins = ", ".join(f'"io.containerd.snapshotter.v1.{s}"' for s in ("overlayfs", "btrfs", "zfs", "devmapper", "aufs"))
        with open(cfg, "w") as f:
            f.write(f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
                    f'disabled_plugins = ["io.containerd.grpc.v1.cri", {plugins}]\n'
                    f'[grpc]\n  address = "{d}/containerd.sock"\n[ttrpc]\n  address = "{d}/containerd.sock.ttrpc"\n'
                    f'[debug]\n  address = "{d}/debug.sock"\n'
                    '[plugins."io.containerd.service.v1.diff-service"]\n  default = ["walking"]\n')
        require("containerd")
        self.log = open(os.path.join(d, "containerd.log"), "wb")
        self.proc = subprocess.Popen(["containerd", "--config", cfg], stdout=self.log, stderr=self.log)
        # Ready when ctr can talk to it: poll with a deadline (readiness, not a timing guess).
        deadline = time.monotonic() + 60
        while run("ctr", "-a", f"{d}/containerd.sock", "version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("containerd did not start: " + open(os.path.join(d, "containerd.log")).read()[-3000:])
            time.sleep(0.1)

    def fetch(self, uri, password, check=True):
        """`ctr content fetch`: every blob of the image, digests verified, no unpacking."""
        return run("ctr", "-a", f"{self.d}/containerd.sock", "content", "fetch", "--plain-http",
                   "--user", f"AWS:{password}", uri, check=check)

    def has_blob(self, digest):
        out = run("ctr", "-a", f"{self.d}/containerd.sock", "content", "ls", "-q").stdout.split()
        return digest in out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    b = Berth(str(tmp_path_factory.mktemp("addressing") / "data")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def ctr(tmp_path_factory):
    d = tempfile.mkdtemp(prefix="berth-ctrd-", dir="/tmp")
    c = Containerd(d)
    yield c
    c.stop()
    subprocess.run(["umount", "-R", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def short():
    d = tempfile.mkdtemp(prefix="berth-a-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def other_user(server):
    key, secret = server.create_user(uniq("ops"), policy="AmazonEC2ContainerRegistryFullAccess", account=OTHER)
    return key, secret


def expected_uri(server, account, region, name):
    if (account, region) == (ACCOUNT, REGION):
        return f"{server.addr}/{name}"
    return f"{server.addr}/{account}/{region}/{name}"


def repo_digests(ecr, name):
    try:
        return {d["imageDigest"] for d in ecr.describe_images(repositoryName=name)["imageDetails"]}
    except ClientError as e:
        assert e.response["Error"]["Code"] == "RepositoryNotFoundException", e.response
        return None


def test_every_region_and_account_is_reached_by_its_uri(server, ctr, tmp_path, short):
    """Two accounts x two regions, the same repository name in all four registries: each URI that
    create-repository returns takes skopeo's push, and skopeo, podman and containerd pull exactly
    that registry's image from it; the other three registries are untouched."""
    okey, osecret = other_user(server)
    users = {ACCOUNT: (server.admin_key, server.admin_secret), OTHER: (okey, osecret)}
    name = uniq("team/app")
    cells = [(ACCOUNT, "us-east-1"), (ACCOUNT, "us-west-2"), (OTHER, "us-east-1"), (OTHER, "eu-central-1")]
    pushed = {}
    for i, (account, region) in enumerate(cells):
        key, secret = users[account]
        who = Identity(server, tmp_path / f"id{i}", os.path.join(short, str(i)), key, secret, region)
        ecr = who.ecr(region)
        repo = ecr.create_repository(repositoryName=name)["repository"]
        assert repo["registryId"] == account
        assert repo["repositoryArn"] == f"arn:aws:ecr:{region}:{account}:repository/{name}"
        uri = repo["repositoryUri"]
        assert uri == expected_uri(server, account, region, name)
        # describe-repositories gives the same URI
        assert ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"] == uri

        img = images.build_image(str(tmp_path / f"layout{i}"), "v1")
        who.skopeo_push(img, f"{uri}:v1")
        pushed[(account, region)] = img.manifest_digest
        # the push landed in this registry and nowhere else
        assert repo_digests(ecr, name) == {img.manifest_digest}
        assert images.sha256_digest(who.skopeo_raw(f"{uri}:v1").stdout.encode()) == img.manifest_digest

        who.podman_pull(f"{uri}:v1")
        pulled = json.loads(who.podman("image", "inspect", f"{uri}:v1").stdout)[0]
        assert pulled["Digest"] == img.manifest_digest

        ctr.fetch(f"{uri}:v1", who.password)
        assert ctr.has_blob(img.manifest_digest) and all(ctr.has_blob(d) for d in img.layer_digests)

    # Each registry holds exactly its own image (nothing landed in a neighbour).
    for account, region in cells:
        key, secret = users[account]
        ecr = server.ecr(key, secret, region=region)
        assert repo_digests(ecr, name) == {pushed[(account, region)]}, (account, region)
    assert len(set(pushed.values())) == 4


def test_cross_account_pull_by_uri_with_repository_policy(server, ctr, tmp_path, short):
    """Account B pulls account A's us-west-2 image by the URI A was given, once A's repository
    policy allows it, with skopeo, podman and containerd; before that, every client is refused."""
    okey, osecret = other_user(server)
    name = uniq("shared/base")
    owner = server.ecr(region="us-west-2")
    uri = owner.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    assert uri == f"{server.addr}/{ACCOUNT}/us-west-2/{name}"
    admin = Identity(server, tmp_path / "owner", os.path.join(short, "o"), server.admin_key, server.admin_secret, "us-west-2")
    img = images.build_image(str(tmp_path / "layout"), "v1")
    admin.skopeo_push(img, f"{uri}:v1")

    puller = Identity(server, tmp_path / "puller", os.path.join(short, "p"), okey, osecret, "eu-central-1")
    denied = puller.skopeo_raw(f"{uri}:v1", check=False)
    assert denied.returncode != 0 and ("denied" in denied.stderr.lower() or "403" in denied.stderr), denied.stderr
    assert puller.podman_pull(f"{uri}:v1", check=False).returncode != 0
    assert ctr.fetch(f"{uri}:v1", puller.password, check=False).returncode != 0

    grant = {"Version": "2012-10-17", "Statement": [{
        "Sid": "PullFromOther", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]}]}
    owner.set_repository_policy(repositoryName=name, policyText=json.dumps(grant))

    raw = puller.skopeo_raw(f"{uri}:v1").stdout.encode()
    assert images.sha256_digest(raw) == img.manifest_digest
    puller.podman_pull(f"{uri}:v1")
    assert json.loads(puller.podman("image", "inspect", f"{uri}:v1").stdout)[0]["Digest"] == img.manifest_digest
    ctr.fetch(f"{uri}:v1", puller.password)
    assert all(ctr.has_blob(d) for d in img.layer_digests)
    # Pull permission is not push permission: B's push to A's repository is refused.
    other_img = images.build_image(str(tmp_path / "layout2"), "v2")
    refused = puller.skopeo_push(other_img, f"{uri}:v2", check=False)
    assert refused.returncode != 0
    assert repo_digests(owner, name) == {img.manifest_digest}


def test_push_to_another_accounts_plain_host_never_lands_elsewhere(server, tmp_path, short):
    """The plain host is the default account's registry: another account's user pushing there is
    refused (403), and nothing is created in either registry -- in particular not in the user's own."""
    okey, osecret = other_user(server)
    who = Identity(server, tmp_path / "b", short, okey, osecret, "us-east-1")
    name = uniq("team/stray")
    img = images.build_image(str(tmp_path / "layout"), "v1")
    r = who.skopeo_push(img, f"{server.addr}/{name}:v1", check=False)
    assert r.returncode != 0 and ("denied" in r.stderr.lower() or "403" in r.stderr), r.stderr
    assert repo_digests(server.ecr(), name) is None
    assert repo_digests(who.ecr("us-east-1"), name) is None
    # Pushed to its own URI (create on push), it lands in account B, us-east-1.
    own = f"{server.addr}/{OTHER}/us-east-1/{name}"
    who.skopeo_push(img, f"{own}:v1")
    assert repo_digests(who.ecr("us-east-1"), name) == {img.manifest_digest}
    assert repo_digests(server.ecr(), name) is None


def test_long_form_reaches_the_default_registry_and_lookalike_names(server, tmp_path, short):
    """`HOST/<default account>/<default region>/name` is the default registry too; a repository whose
    own name starts like an address gets the long-form URI, which reaches it."""
    who = Identity(server, tmp_path / "a", short, server.admin_key, server.admin_secret, REGION)
    ecr = server.ecr()
    name = uniq("team/plain")
    assert ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"] == f"{server.addr}/{name}"
    img = images.build_image(str(tmp_path / "layout"), "v1")
    who.skopeo_push(img, f"{server.addr}/{ACCOUNT}/{REGION}/{name}:v1")
    assert repo_digests(ecr, name) == {img.manifest_digest}

    lookalike = f"{OTHER}/us-west-2/{uniq('x')}"
    uri = ecr.create_repository(repositoryName=lookalike)["repository"]["repositoryUri"]
    assert uri == f"{server.addr}/{ACCOUNT}/{REGION}/{lookalike}"
    img2 = images.build_image(str(tmp_path / "layout2"), "v1")
    who.skopeo_push(img2, f"{uri}:v1")
    assert repo_digests(ecr, lookalike) == {img2.manifest_digest}
    assert repo_digests(server.ecr(region="us-west-2"), lookalike.split("/", 2)[2]) is None


def test_upload_locations_keep_the_address(server):
    """A blob upload started under the long form is continued (Location) under the same address."""
    ecr = server.ecr(region="ap-south-1")
    name = uniq("team/loc")
    ecr.create_repository(repositoryName=name)
    auth = {"Authorization": "Basic " + base64.b64encode(f"AWS:{server.token()}".encode()).decode()}
    path = f"{ACCOUNT}/ap-south-1/{name}"
    r = requests.post(f"{server.url}/v2/{path}/blobs/uploads/", headers=auth, timeout=30)
    assert r.status_code == 202, r.text
    assert r.headers["Location"].startswith(f"/v2/{path}/blobs/uploads/"), r.headers["Location"]
    data = os.urandom(1000)
    digest = images.sha256_digest(data)
    r = requests.put(f"{server.url}{r.headers['Location']}?digest={digest}", data=data, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/{path}/blobs/{digest}"
    out = ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[digest])
    assert out["layers"][0]["layerAvailability"] == "AVAILABLE"
    # the same digest is not in the default registry's repository of that name
    assert requests.head(f"{server.url}/v2/{name}/blobs/{digest}", headers=auth, timeout=30).status_code == 404
