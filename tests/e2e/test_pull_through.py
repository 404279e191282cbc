"""Pull-through cache (issue 20) with real clients: CNCF distribution started by the test as an
anonymous upstream (images pushed into it with skopeo), rules made with the aws CLI, skopeo and
podman pulling through berth and getting the upstream's digests; the upstream stopped → cached
tags and digests still pull, an uncached one fails fast with an error naming the upstream;
concurrent pulls of one uncached image → distribution's access log shows each blob fetched once;
a tag moved upstream is seen after the refresh interval; the rule actions' refusals.
"""
import concurrent.futures
import json
import os
import re
import socket
import subprocess
import time
import uuid

import boto3
import pytest
import requests

import images
from conftest import REGION, Berth
from test_encryption import aws

REFRESH_SECONDS = 4
DEADLINE = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Distribution:
    """docker-registry on a free port, its access log (stderr) captured."""

    def __init__(self, d, htpasswd=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.addr = f"127.0.0.1:{self.port}"
        self.config = os.path.join(d, "registry.yml")
        auth = f"auth:\n  htpasswd:\n    realm: upstream\n    path: {htpasswd}\n" if htpasswd else ""
        with open(self.config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {d}/dist\n"
                    f"http:\n  addr: {self.addr}\n{auth}")
        self.log_path = os.path.join(d, "registry.log")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config], stdout=self.log, stderr=self.log)
        end = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/v2/", timeout=2).status_code in (200, 401):
                    return
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None and time.monotonic() < end, "docker-registry did not start"
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def push(self, img, repo, tag, creds=None):
        auth = ["--dest-creds", creds] if creds else []
        run("skopeo", "copy", "--dest-tls-verify=false", *auth, img.ref, f"docker://{self.addr}/{repo}:{tag}")

    def blob_gets(self, repo):
        """Successful blob GETs of `repo` in the access log, by digest."""
        counts = {}
        pattern = re.compile(rf'"GET /v2/{re.escape(repo)}/blobs/(sha256:[0-9a-f]{{64}}) HTTP/[0-9.]+" 200')
        for line in open(self.log_path, errors="replace"):
            m = pattern.search(line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts


def tar_image(layout, tag, layer_sizes, arch="amd64"):
    """An image of complete gzipped tar layers (one random file each) written with Python's
    tarfile into an OCI layout, so runtimes that unpack layers (containerd) accept them (umoci's
    are truncated); random content makes every digest unique. Returns images.Image."""
    import gzip
    import shutil
    import tarfile

    images.init_layout(layout)
    index_path = os.path.join(layout, "index.json")
    index = images.read_index(layout)
    if index.get("manifests") is None:  # umoci init writes null
        index["manifests"] = []
        with open(index_path, "w") as f:
            json.dump(index, f)
    layers, diff_ids = [], []
    for i, size in enumerate(layer_sizes):
        # gzip (level 1: the content is random anyway): skopeo pushes compressed layers as they
        # are, so the upstream holds exactly these digests.
        tar_path = os.path.join(layout, f".layer-{tag}-{i}.tar")
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tf:
            info = tarfile.TarInfo(f"data/layer{i}.bin")
            info.size = size
            with open("/dev/urandom", "rb") as rnd:
                tf.addfile(info, _Limited(rnd, size))
        diff_ids.append(images.file_digest(tar_path))
        gz_path = tar_path + ".gz"
        with open(tar_path, "rb") as src, gzip.GzipFile(gz_path, "wb", compresslevel=1, mtime=0) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.remove(tar_path)
        digest = images.file_digest(gz_path)
        target = images.blob_path(layout, digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(gz_path, target)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest,
                       "size": os.path.getsize(target)})
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"berth test {uuid.uuid4()}"}]}).encode()
    config_digest = images.write_blob(layout, config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": images.MT_OCI_MANIFEST,
                           "config": {"mediaType": images.MT_OCI_CONFIG, "digest": config_digest, "size": len(config)},
                           "layers": layers}).encode()
    digest = images.write_blob(layout, manifest)
    images.add_ref(layout, {"mediaType": images.MT_OCI_MANIFEST, "digest": digest, "size": len(manifest)}, tag)
    return images.Image(layout=layout, tag=tag, manifest_digest=digest, config_digest=config_digest,
                        layer_digests=[l["digest"] for l in layers], architecture=arch)


class _Limited:
    """The first `n` bytes of a file object (tarfile reads a member's body through it)."""

    def __init__(self, f, n):
        self.f, self.left = f, n

    def read(self, size=-1):
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data


def run(*cmd, check=True, **kw):
    p = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check:
        assert p.returncode == 0, f"{cmd}: {p.stderr}"
    return p


@pytest.fixture
def upstream(tmp_path):
    d = Distribution(str(tmp_path))
    yield d
    d.stop()


@pytest.fixture
def cache(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--allow-insecure-upstreams", "--pull-through-refresh-seconds",
                                                   str(REFRESH_SECONDS)]).start()
    yield b
    b.stop()


def aws_home(tmp_path):
    """A HOME for the aws CLI. v1 fetches an http(s):// parameter's URL and sends the page instead
    (`cli_follow_urlparam`), which would turn the upstream URL into distribution's empty root page."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text("[default]\ncli_follow_urlparam = false\n")
    return home


def add_rule(b, home, prefix, url, **extra):
    args = ["create-pull-through-cache-rule", "--ecr-repository-prefix", prefix, "--upstream-registry-url", url]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return aws(b, home, "ecr", *args, check=False)


def error_code(p):
    m = re.search(r"\((\w+)\) when calling", p.stderr)
    return m.group(1) if m else p.stderr


def skopeo_digest(b, ref, check=True):
    p = run("skopeo", "inspect", "--tls-verify=false", "--creds", f"AWS:{b.token()}", f"docker://{ref}", check=check)
    return json.loads(p.stdout)["Digest"] if p.returncode == 0 else p


def pull_to_dir(b, ref, out, check=True):
    return run("skopeo", "copy", "--src-tls-verify=false", "--src-creds", f"AWS:{b.token()}", f"docker://{ref}",
               f"dir:{out}", check=check)


def test_rule_actions_and_their_refusals_with_the_aws_cli(cache, berth, upstream, tmp_path):
    home = aws_home(tmp_path)
    p, made = add_rule(cache, home, "dist", upstream.url)
    assert p.returncode == 0, p.stderr
    assert made["ecrRepositoryPrefix"] == "dist" and made["upstreamRegistryUrl"] == upstream.url
    assert made["registryId"] == cache.account and made["upstreamRepositoryPrefix"] == "ROOT"
    _, described = aws(cache, home, "ecr", "describe-pull-through-cache-rules")
    assert [r["ecrRepositoryPrefix"] for r in described["pullThroughCacheRules"]] == ["dist"]
    _, valid = aws(cache, home, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "dist")
    assert valid["isValid"] is True, valid

    assert error_code(add_rule(cache, home, "dist/", upstream.url)[0]) == "PullThroughCacheRuleAlreadyExistsException"
    # (the CLI itself refuses lengths outside 2-30; these reach berth)
    for bad in ["AB", "Bad/Prefix", "ab//cd", "ab-"]:
        assert error_code(add_rule(cache, home, bad, upstream.url)[0]) == "InvalidParameterException", bad
    assert error_code(add_rule(cache, home, "hub", "registry-1.docker.io", upstream_registry="dockerhub")[0]) \
        == "InvalidParameterException"
    arn = f"arn:aws:secretsmanager:us-east-1:{cache.account}:secret:ecr-pullthroughcache/dist-creds-AbCdEf"
    assert error_code(add_rule(cache, home, "priv", upstream.url, credential_arn=arn)[0]) == "SecretNotFoundException"
    # The session berth was started without --allow-insecure-upstreams.
    assert error_code(add_rule(berth, home, "plain", upstream.url)[0]) == "UnsupportedUpstreamRegistryException"
    for action in ["delete-pull-through-cache-rule", "validate-pull-through-cache-rule"]:
        p, _ = aws(cache, home, "ecr", action, "--ecr-repository-prefix", "nope", check=False)
        assert error_code(p) == "PullThroughCacheRuleNotFoundException", action

    # A rule whose upstream is down validates as invalid, naming it.
    dead = f"http://127.0.0.1:{free_port()}"
    assert add_rule(cache, home, "dead", dead)[0].returncode == 0
    _, invalid = aws(cache, home, "ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", "dead")
    assert invalid["isValid"] is False and dead.split("//")[1] in invalid["failure"], invalid
    _, deleted = aws(cache, home, "ecr", "delete-pull-through-cache-rule", "--ecr-repository-prefix", "dead")
    assert deleted["upstreamRegistryUrl"] == dead


def test_skopeo_and_podman_pull_through_and_the_cache_serves_while_the_upstream_is_down(cache, upstream, tmp_path):
    home = aws_home(tmp_path)
    img = images.build_image(str(tmp_path / "oci"), "v1", random_size=256 * 1024)
    other = images.build_image(str(tmp_path / "oci"), "v2", random_size=64 * 1024)
    upstream.push(img, "team/app", "v1")
    upstream.push(other, "team/app", "v2")
    assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0
    upstream_digest = requests.head(f"{upstream.url}/v2/team/app/manifests/v1",
                                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).headers["Docker-Content-Digest"]
    assert upstream_digest == img.manifest_digest

    ref = f"{cache.addr}/dist/team/app:v1"
    pull_to_dir(cache, ref, str(tmp_path / "pulled"))
    assert open(tmp_path / "pulled" / "manifest.json", "rb").read() == img.manifest_bytes
    for d in [img.config_digest, *img.layer_digests]:
        assert open(tmp_path / "pulled" / d.split(":")[1], "rb").read() == images.read_blob(img.layout, d)
    assert skopeo_digest(cache, ref) == upstream_digest

    # podman pulls it too (a fresh client store: every blob read again from berth).
    short = f"/tmp/ptc-{os.getpid()}"
    os.makedirs(short, exist_ok=True)
    podman = ["podman", "--root", str(tmp_path / "podman" / "root"), "--runroot", f"{short}/run", "--tmpdir",
              f"{short}/tmp", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    run(*podman, "pull", "--tls-verify=false", "--creds", f"AWS:{cache.token()}", ref)
    got = run(*podman, "image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
    assert got == upstream_digest

    # The cache repository is an ordinary repository holding the image.
    ecr = cache.ecr()
    wait_for_image(ecr, "dist/team/app", "v1")
    assert ecr.describe_repositories(repositoryNames=["dist/team/app"])["repositories"][0]["repositoryName"] == "dist/team/app"

    upstream.stop()
    started = time.monotonic()
    assert skopeo_digest(cache, ref) == upstream_digest, "cached tag while the upstream is down"
    assert skopeo_digest(cache, f"{cache.addr}/dist/team/app@{upstream_digest}") == upstream_digest
    pull_to_dir(cache, ref, str(tmp_path / "again"))
    p = pull_to_dir(cache, f"{cache.addr}/dist/team/app:v2", str(tmp_path / "uncached"), check=False)
    # skopeo shows the status only; the answer's message (below) names the upstream.
    assert p.returncode != 0 and "502" in p.stderr, p.stderr
    assert time.monotonic() - started < 30, "no hang"
    r = requests.get(f"{cache.url}/v2/dist/team/app/manifests/v2", auth=("AWS", cache.token()), timeout=30,
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 502 and upstream.addr in r.json()["errors"][0]["message"], r.text


def wait_for_image(ecr, repo, tag):
    end = time.monotonic() + DEADLINE
    while True:
        try:
            return ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])["imageDetails"][0]
        except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException):
            assert time.monotonic() < end, f"{repo}:{tag} was not cached in time"
            time.sleep(0.1)


def test_concurrent_pulls_of_an_uncached_image_fetch_each_blob_once(cache, upstream, tmp_path):
    home = aws_home(tmp_path)
    img = images.build_image(str(tmp_path / "oci"), "big", random_size=24 * 1024 * 1024)
    upstream.push(img, "team/big", "v1")
    assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0
    before = upstream.blob_gets("team/big")

    def pull(i):
        return pull_to_dir(cache, f"{cache.addr}/dist/team/big:v1", str(tmp_path / f"p{i}"), check=False)

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(pull, range(12)))
    for p in results:
        assert p.returncode == 0, p.stderr
    for i in range(12):
        for d in [img.config_digest, *img.layer_digests]:
            assert open(tmp_path / f"p{i}" / d.split(":")[1], "rb").read() == images.read_blob(img.layout, d)
    wait_for_image(cache.ecr(), "dist/team/big", "v1")
    gets = upstream.blob_gets("team/big")
    for d in [img.config_digest, *img.layer_digests]:
        assert gets.get(d, 0) - before.get(d, 0) == 1, (d, gets)


def test_a_tag_moved_upstream_is_seen_after_the_refresh_interval(cache, upstream, tmp_path):
    home = aws_home(tmp_path)
    first = images.build_image(str(tmp_path / "oci"), "one", random_size=8 * 1024)
    second = images.build_image(str(tmp_path / "oci"), "two", random_size=8 * 1024)
    upstream.push(first, "team/moving", "latest")
    assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0
    ref = f"{cache.addr}/dist/team/moving:latest"
    pull_to_dir(cache, ref, str(tmp_path / "first"))
    moved_at = time.monotonic()
    upstream.push(second, "team/moving", "latest")
    seen = skopeo_digest(cache, ref)
    if time.monotonic() - moved_at < REFRESH_SECONDS:
        assert seen == first.manifest_digest, "served from the cache within the interval"
    end = time.monotonic() + DEADLINE
    while seen != second.manifest_digest:
        assert time.monotonic() < end, "the moved tag was not seen"
        time.sleep(0.2)
        seen = skopeo_digest(cache, ref)
    assert time.monotonic() - moved_at >= REFRESH_SECONDS - 1
    pull_to_dir(cache, ref, str(tmp_path / "second"))
    assert open(tmp_path / "second" / "manifest.json", "rb").read() == second.manifest_bytes


def test_containerd_pulls_through(cache, upstream, tmp_path):
    """`ctr content fetch` through the cache: containerd verifies every blob's digest."""
    import tempfile
    from test_addressing import Containerd
    home = aws_home(tmp_path)
    img = images.build_image(str(tmp_path / "oci"), "ctr", random_size=128 * 1024)
    upstream.push(img, "team/ctr", "v1")
    assert add_rule(cache, home, "dist", upstream.url)[0].returncode == 0
    c = Containerd(tempfile.mkdtemp(prefix="berth-ctrd-", dir="/tmp"))
    try:
        c.fetch(f"{cache.addr}/dist/team/ctr:v1", cache.token())
        for d in [img.manifest_digest, img.config_digest, *img.layer_digests]:
            assert c.has_blob(d), d
    finally:
        c.stop()


def secrets(b):
    return boto3.client("secretsmanager", endpoint_url=b.url, region_name=REGION,
                        aws_access_key_id=b.admin_key, aws_secret_access_key=b.admin_secret)


def test_upstream_credentials_from_a_secret_htpasswd_distribution_and_a_second_berth(cache, tmp_path):
    """Credentials held in a Secrets Manager secret (ECR's `ecr-pullthroughcache/…` with
    {"username", "accessToken"}): distribution behind htpasswd, and another berth (ECR private,
    a registry token as the access token). Without the secret the upstream refuses berth."""
    import bcrypt

    home = aws_home(tmp_path)
    password = f"pw-{uuid.uuid4().hex}"
    auth_dir = tmp_path / "auth"
    auth_dir.mkdir()
    (auth_dir / "htpasswd").write_text(f"puller:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    private = Distribution(str(auth_dir), htpasswd=str(auth_dir / "htpasswd"))
    try:
        img = images.build_image(str(tmp_path / "oci"), "v1", random_size=128 * 1024)
        private.push(img, "team/app", "v1", creds=f"puller:{password}")
        secret_arn = secrets(cache).create_secret(
            Name="ecr-pullthroughcache/private", SecretString=json.dumps({"username": "puller", "accessToken": password}))["ARN"]

        # Without credentials the upstream answers 401: a clear failure, nothing cached.
        assert add_rule(cache, home, "anon", private.url)[0].returncode == 0
        p = pull_to_dir(cache, f"{cache.addr}/anon/team/app:v1", str(tmp_path / "refused"), check=False)
        assert p.returncode != 0
        if "anon/team/app" in {r["repositoryName"] for r in cache.ecr().describe_repositories()["repositories"]}:
            assert cache.ecr().list_images(repositoryName="anon/team/app")["imageIds"] == []

        p, made = add_rule(cache, home, "private", private.url, credential_arn=secret_arn)
        assert p.returncode == 0, p.stderr
        assert made["credentialArn"] == secret_arn
        ref = f"{cache.addr}/private/team/app:v1"
        pull_to_dir(cache, ref, str(tmp_path / "pulled"))
        assert open(tmp_path / "pulled" / "manifest.json", "rb").read() == img.manifest_bytes
        for d in [img.config_digest, *img.layer_digests]:
            assert open(tmp_path / "pulled" / d.split(":")[1], "rb").read() == images.read_blob(img.layout, d)
        assert skopeo_digest(cache, ref) == img.manifest_digest
    finally:
        private.stop()

    # A second berth as the upstream (ECR private): its registry token in the secret.
    up = Berth(str(tmp_path / "upstream-berth")).start()
    try:
        img2 = images.build_image(str(tmp_path / "oci2"), "v1", random_size=96 * 1024)
        run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"AWS:{up.token()}", img2.ref,
            f"docker://{up.addr}/team/svc:v1")
        arn2 = secrets(cache).create_secret(
            Name="ecr-pullthroughcache/berth", SecretString=json.dumps({"username": "AWS", "accessToken": up.token()}))["ARN"]
        p, _ = add_rule(cache, home, "ecrup", up.url, credential_arn=arn2)
        assert p.returncode == 0, p.stderr
        assert skopeo_digest(cache, f"{cache.addr}/ecrup/team/svc:v1") == img2.manifest_digest
        wait_for_image(cache.ecr(), "ecrup/team/svc", "v1")
    finally:
        up.stop()


def tar_index(layout, tag, arches, layer_size=64 * 1024):
    """An OCI index tagged `tag` over one tar_image per architecture (children tagged tag-arch)."""
    children = [tar_image(layout, f"{tag}-{a}", [layer_size], arch=a) for a in arches]
    index = json.dumps({"schemaVersion": 2, "mediaType": images.MT_OCI_INDEX, "manifests": [
        {"mediaType": images.MT_OCI_MANIFEST, "digest": c.manifest_digest, "size": len(c.manifest_bytes),
         "platform": {"architecture": c.architecture, "os": "linux"}} for c in children]}).encode()
    digest = images.write_blob(layout, index)
    images.add_ref(layout, {"mediaType": images.MT_OCI_INDEX, "digest": digest, "size": len(index)}, tag)
    return images.MultiArch(layout=layout, tag=tag, index_digest=digest, children=children)
