"""End-to-end tests: real registry clients against a real berth server.

Clients: skopeo, podman, buildah, the docker CLI (no engine: `docker manifest ...` only) and
the python `oras` SDK. Test images come from images.py (umoci-built OCI layouts with random
content, so every test works on blobs nobody pushed before).

Every client keeps its state in the test's tmp_path: HOME, DOCKER_CONFIG, REGISTRY_AUTH_FILE,
CONTAINERS_REGISTRIES_CONF and podman/buildah --root/--runroot all point there. (skopeo,
podman and buildah, running as root, still share containers/image's blob-info cache in
/var/lib/containers/cache; no flag moves it. Every test uses fresh random blobs, so no test
depends on what that cache holds.)

How the clients reach the registry (TLS / credentials) is decided in ONE place:
`RegistryAccess` below. When berth gains authentication, that class is what changes.

A missing client fails the test (it never skips): these tests are how we know berth works
with the clients users have.
"""
import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest
import requests

import images
from images import (MT_DOCKER_CONFIG, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX,
                    MT_OCI_MANIFEST, sha256_digest)

ALL_MANIFEST_TYPES = ", ".join([MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST])
CMD_TIMEOUT = 300


# --------------------------------------------------------------------------------------------
# Running clients
# --------------------------------------------------------------------------------------------

def require(tool):
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"client {tool!r} is not installed (run scripts/install-test-deps.sh); "
                    "client tests fail rather than skip when a client is missing")
    return path


class Result:
    def __init__(self, cmd, proc, seconds):
        self.cmd, self.rc, self.seconds = cmd, proc.returncode, seconds
        self.out, self.err = proc.stdout, proc.stderr

    def __str__(self):
        return (f"$ {' '.join(self.cmd)}\nexit {self.rc} after {self.seconds:.1f}s\n"
                f"--- stdout ---\n{self.out[-6000:]}\n--- stderr ---\n{self.err[-6000:]}")


class RegistryAccess:
    """The single place that knows how clients authenticate to / trust the registry.

    berth is plain HTTP (every client gets its "insecure registry" flag) and, like ECR,
    wants `AWS` / <registry token> credentials (the token is what `aws ecr get-login-password`
    prints). `login()` logs the clients in the way ECR's user guide does: `skopeo login` writes the
    tmp auth file that skopeo, podman and buildah are all given (--authfile), `docker login` writes
    DOCKER_CONFIG in the tmp home, and oras logs in with config_path in the tmp home (and its
    "basic" auth backend). Plain HTTP checks use `http_headers()`.
    """

    def __init__(self, addr, home, token):
        self.addr = addr
        self.token = token
        self.authfile = os.path.join(home, "auth.json")
        self.docker_config = os.path.join(home, ".docker")

    def login(self, env):
        os.makedirs(self.docker_config, exist_ok=True)
        if not os.path.exists(self.authfile):
            with open(self.authfile, "w") as f:
                json.dump({"auths": {}}, f)  # podman/buildah insist the file exists
        for cmd in (["skopeo", "login", "--tls-verify=false", "--authfile", self.authfile],
                    ["docker", "login"]):
            require(cmd[0])
            p = subprocess.run([*cmd, "-u", "AWS", "--password-stdin", self.addr], input=self.token,
                               capture_output=True, text=True, env=env, timeout=CMD_TIMEOUT)
            assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}): {p.stdout}\n{p.stderr}"
        with open(self.authfile) as f:
            assert self.addr in json.load(f)["auths"], "skopeo login wrote no credentials"
        with open(os.path.join(self.docker_config, "config.json")) as f:
            assert self.addr in json.load(f)["auths"], "docker login wrote no credentials"

    def http_headers(self):
        return {"Authorization": "Basic " + base64.b64encode(f"AWS:{self.token}".encode()).decode()}

    # skopeo: separate flags for the source and the destination side
    def skopeo_src(self):
        return ["--src-tls-verify=false", "--src-authfile", self.authfile]

    def skopeo_dest(self):
        return ["--dest-tls-verify=false", "--dest-authfile", self.authfile]

    def skopeo_one(self):  # inspect, list-tags, delete
        return ["--tls-verify=false", "--authfile", self.authfile]

    def containers_tool(self):  # podman / buildah push, pull, manifest add/push
        return ["--tls-verify=false", "--authfile", self.authfile]

    def docker_manifest(self):  # docker manifest inspect/create/push
        return ["--insecure"]

    def oras_client(self):
        import oras.client
        # The "basic" backend sends the login's credentials on every request; the default
        # "token" backend (a token from the realm first) is tested in test_oci_conformance.py.
        client = oras.client.OrasClient(hostname=self.addr, insecure=True, auth_backend="basic")
        client.login(username="AWS", password=self.token, hostname=self.addr,
                     config_path=self.oras_config_path())
        return client

    def oras_config_path(self):
        """Passed as config_path= so oras never reads or writes ~/.docker/config.json."""
        path = os.path.join(self.docker_config, "config.json")
        if not os.path.exists(path):
            with open(path, "w") as f:
                json.dump({"auths": {}}, f)
        return path


class Clients:
    """Runs real clients with all their state in `home` (a tmp dir)."""

    def __init__(self, berth, home, short):
        self.berth = berth
        self.short = short  # a short tmp dir (podman's runroot must be < 50 chars)
        self.R = berth.addr
        self.home = str(home)
        os.makedirs(os.path.join(self.home, "tmp"), exist_ok=True)
        self.access = RegistryAccess(self.R, self.home, berth.token())
        regconf = os.path.join(self.home, "registries.conf")
        with open(regconf, "w") as f:
            f.write("unqualified-search-registries = []\n")
        self.env = dict(
            os.environ,
            HOME=self.home,
            XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
            XDG_DATA_HOME=os.path.join(self.home, ".local", "share"),
            XDG_RUNTIME_DIR=os.path.join(self.home, "run-user"),
            TMPDIR=os.path.join(self.home, "tmp"),
            DOCKER_CONFIG=self.access.docker_config,
            REGISTRY_AUTH_FILE=self.access.authfile,
            CONTAINERS_REGISTRIES_CONF=regconf,
        )
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        self.access.login(self.env)

    def run(self, *cmd, check=True, timeout=CMD_TIMEOUT, input=None):
        cmd = [str(c) for c in cmd]
        require(cmd[0])
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=timeout,
                           input=input)
        r = Result(cmd, p, time.monotonic() - t0)
        if check and r.rc != 0:
            raise AssertionError(f"client command failed:\n{r}\n{self.server_log_tail()}")
        return r

    def server_log_tail(self):
        try:
            return "--- berth log (tail) ---\n" + open(self.berth.log_path, errors="replace").read()[-3000:]
        except OSError:
            return ""

    # --- skopeo -------------------------------------------------------------------------
    def docker_ref(self, repo, ref):
        sep = "@" if ref.startswith("sha256:") else ":"
        return f"docker://{self.R}/{repo}{sep}{ref}"

    def skopeo_copy(self, src, dest, *extra, check=True, timeout=CMD_TIMEOUT, debug=False):
        flags = []
        if src.startswith("docker://"):
            flags += self.access.skopeo_src()
        if dest.startswith("docker://"):
            flags += self.access.skopeo_dest()
        pre = ["--debug"] if debug else []
        return self.run("skopeo", *pre, "copy", *flags, *extra, src, dest, check=check, timeout=timeout)

    def skopeo_push(self, image, repo, tag, *extra):
        return self.skopeo_copy(image.ref, self.docker_ref(repo, tag), *extra)

    def skopeo_inspect(self, repo, ref, *extra, check=True):
        return self.run("skopeo", "inspect", *self.access.skopeo_one(), *extra,
                        self.docker_ref(repo, ref), check=check)

    def inspect_json(self, repo, ref, *extra):
        return json.loads(self.skopeo_inspect(repo, ref, *extra).out)

    def inspect_raw(self, repo, ref) -> bytes:
        # --raw prints the manifest bytes exactly as served; read them as bytes
        cmd = ["skopeo", "inspect", *self.access.skopeo_one(), "--raw", self.docker_ref(repo, ref)]
        require("skopeo")
        p = subprocess.run(cmd, capture_output=True, env=self.env, timeout=CMD_TIMEOUT)
        assert p.returncode == 0, f"{' '.join(cmd)} failed: {p.stderr.decode(errors='replace')}"
        return p.stdout

    def list_tags(self, repo):
        out = self.run("skopeo", "list-tags", *self.access.skopeo_one(), f"docker://{self.R}/{repo}").out
        data = json.loads(out)
        assert data["Repository"] == f"{self.R}/{repo}", data
        return data["Tags"]

    # --- podman / buildah ---------------------------------------------------------------
    def podman(self, store, *args, check=True, timeout=CMD_TIMEOUT):
        s = os.path.join(self.home, store)
        # podman refuses a --runroot longer than 50 characters: keep it under self.short
        run = os.path.join(self.short, store)
        return self.run("podman", "--root", f"{s}/root", "--runroot", f"{run}/run", "--tmpdir", f"{run}/tmp",
                        "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
                        "--events-backend", "file", *args, check=check, timeout=timeout)

    def buildah(self, store, *args, check=True, timeout=CMD_TIMEOUT):
        s = os.path.join(self.home, store)
        return self.run("buildah", "--root", f"{s}/root", "--runroot", f"{s}/run",
                        "--storage-driver", "overlay", *args, check=check, timeout=timeout)

    # --- docker CLI (no engine) ---------------------------------------------------------
    def docker(self, *args, check=True):
        return self.run("docker", *args, check=check)

    # --- plain HTTP, to check what the server stores --------------------------------------
    def get_manifest(self, repo, ref, accept=ALL_MANIFEST_TYPES, method="GET"):
        return requests.request(method, f"{self.berth.url}/v2/{repo}/manifests/{ref}",
                                headers={"Accept": accept, **self.access.http_headers()}, timeout=60)

    def get_blob(self, repo, digest, method="GET"):
        return requests.request(method, f"{self.berth.url}/v2/{repo}/blobs/{digest}",
                                headers=self.access.http_headers(), timeout=120)


def unmount_under(*dirs):
    """Unmount whatever podman/buildah left mounted under `dirs` (containers/storage bind-mounts
    <root>/overlay onto itself and only undoes that on a clean shutdown)."""
    prefixes = tuple(os.path.realpath(d) + "/" for d in dirs)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    for mp in sorted((m for m in points if m.startswith(prefixes)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


@pytest.fixture
def clients(berth, tmp_path):
    short = tempfile.mkdtemp(prefix="berth-e2e-", dir="/tmp")
    try:
        yield Clients(berth, tmp_path / "clients", short)
    finally:
        unmount_under(str(tmp_path), short)
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def layout(tmp_path):
    return str(tmp_path / "layout")


def assert_manifest_served(c, repo, ref, expected: bytes, media_type):
    """GET the manifest over HTTP: 200, exact bytes, digest header, Content-Type."""
    r = c.get_manifest(repo, ref)
    assert r.status_code == 200, f"GET /v2/{repo}/manifests/{ref}: {r.status_code} {r.text[:500]}"
    assert r.content == expected, f"GET /v2/{repo}/manifests/{ref} returned different bytes"
    assert r.headers.get("Docker-Content-Digest") == sha256_digest(expected), dict(r.headers)
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == media_type, dict(r.headers)
    h = c.get_manifest(repo, ref, method="HEAD")
    assert h.status_code == 200, f"HEAD /v2/{repo}/manifests/{ref}: {h.status_code}"
    assert h.headers.get("Docker-Content-Digest") == sha256_digest(expected), dict(h.headers)
    assert h.headers.get("Content-Length") == str(len(expected)), dict(h.headers)


def assert_blobs_served(c, repo, layout, digests):
    for d in digests:
        r = c.get_blob(repo, d)
        assert r.status_code == 200, f"GET /v2/{repo}/blobs/{d}: {r.status_code} {r.text[:300]}"
        assert sha256_digest(r.content) == d
        assert r.content == images.read_blob(layout, d)


def tar_member(layer_bytes: bytes, path: str) -> bytes:
    """The content of `path` inside a (gzip-compressed or plain) layer tarball."""
    data = gzip.decompress(layer_bytes) if layer_bytes[:2] == b"\x1f\x8b" else layer_bytes
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            if m.name.lstrip("./") == path.lstrip("/"):
                return tf.extractfile(m).read()
    raise AssertionError(f"{path} not found in layer")


# --------------------------------------------------------------------------------------------
# skopeo
# --------------------------------------------------------------------------------------------

def test_skopeo_copy_single_image_preserves_digest(clients, layout, repo):
    img = images.build_image(layout, "small")
    clients.skopeo_push(img, repo, "v1")

    info = clients.inspect_json(repo, "v1")
    assert info["Digest"] == img.manifest_digest
    assert info["Name"] == f"{clients.R}/{repo}"
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Layers"] == img.layer_digests

    # the registry serves the exact bytes umoci wrote (umoci omits `mediaType`, so berth
    # must have taken the type from the PUT's Content-Type)
    assert "mediaType" not in img.manifest
    assert_manifest_served(clients, repo, "v1", img.manifest_bytes, MT_OCI_MANIFEST)
    assert_manifest_served(clients, repo, img.manifest_digest, img.manifest_bytes, MT_OCI_MANIFEST)
    assert_blobs_served(clients, repo, layout, [img.config_digest, *img.layer_digests])


def test_skopeo_inspect_by_tag_and_digest_and_raw(clients, layout, repo):
    img = images.build_image(layout, "small")
    clients.skopeo_push(img, repo, "v1")

    by_tag = clients.inspect_json(repo, "v1")
    by_digest = clients.inspect_json(repo, img.manifest_digest)
    assert by_tag["Digest"] == by_digest["Digest"] == img.manifest_digest
    assert by_tag["Layers"] == by_digest["Layers"] == img.layer_digests
    assert by_digest["Labels"] == {"berth.test.tag": "small"}

    raw_tag = clients.inspect_raw(repo, "v1")
    raw_digest = clients.inspect_raw(repo, img.manifest_digest)
    assert raw_tag == img.manifest_bytes
    assert raw_digest == img.manifest_bytes
    assert sha256_digest(raw_tag) == img.manifest_digest

    # --config: the config blob, byte for byte
    cfg = clients.run("skopeo", "inspect", *clients.access.skopeo_one(), "--raw", "--config",
                      clients.docker_ref(repo, "v1")).out
    assert json.loads(cfg) == json.loads(images.read_blob(layout, img.config_digest))

    # an unknown tag is "manifest unknown", not a crash
    r = clients.skopeo_inspect(repo, "no-such-tag", check=False)
    assert r.rc != 0 and "manifest unknown" in r.err.lower(), str(r)
    assert clients.get_manifest(repo, "no-such-tag").status_code == 404


def test_skopeo_copy_multiarch_index_all(clients, layout, repo):
    multi = images.build_multiarch(layout, "multi")
    clients.skopeo_copy(multi.ref, clients.docker_ref(repo, "multi"), "--all")

    raw = clients.inspect_raw(repo, "multi")
    assert raw == multi.index_bytes
    assert sha256_digest(raw) == multi.index_digest
    assert_manifest_served(clients, repo, "multi", multi.index_bytes, MT_OCI_INDEX)

    index = json.loads(raw)
    assert [(m["platform"]["architecture"], m["digest"]) for m in index["manifests"]] == \
        [(c.architecture, c.manifest_digest) for c in multi.children]
    for child in multi.children:
        assert clients.inspect_raw(repo, child.manifest_digest) == child.manifest_bytes
        info = clients.inspect_json(repo, child.manifest_digest)
        assert info["Architecture"] == child.architecture
        assert_blobs_served(clients, repo, layout, [child.config_digest, *child.layer_digests])

    # a client on arm64 resolving the tag gets the arm64 child (skopeo reports the digest
    # of the index it resolved, and the child's config and layers)
    arm = clients.inspect_json(repo, "multi", "--override-arch", "arm64", "--override-os", "linux")
    assert arm["Digest"] == multi.index_digest
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == multi.children[1].layer_digests


def test_skopeo_copy_format_v2s2(clients, layout, repo):
    img = images.build_image(layout, "small")
    clients.skopeo_copy(img.ref, clients.docker_ref(repo, "v2s2"), "--format", "v2s2")

    raw = clients.inspect_raw(repo, "v2s2")
    m = json.loads(raw)
    assert m["mediaType"] == MT_DOCKER_MANIFEST
    assert m["config"]["mediaType"] == MT_DOCKER_CONFIG
    assert [l["digest"] for l in m["layers"]] == img.layer_digests  # gzip layers copied as-is
    info = clients.inspect_json(repo, "v2s2")
    assert info["Digest"] == sha256_digest(raw)
    assert_manifest_served(clients, repo, "v2s2", raw, MT_DOCKER_MANIFEST)
    assert_manifest_served(clients, repo, sha256_digest(raw), raw, MT_DOCKER_MANIFEST)
    cfg = clients.get_blob(repo, m["config"]["digest"])
    assert cfg.status_code == 200 and sha256_digest(cfg.content) == m["config"]["digest"]
    assert json.loads(cfg.content)["architecture"] == "amd64"


def test_skopeo_list_tags(clients, layout, repo):
    a = images.build_image(layout, "a")
    b = images.build_image(layout, "b")
    for tag in ("v1", "v1.1", "latest"):
        clients.skopeo_push(a, repo, tag)
    clients.skopeo_push(b, repo, "other")
    assert sorted(clients.list_tags(repo)) == sorted(["v1", "v1.1", "latest", "other"])
    assert clients.inspect_json(repo, "latest")["Digest"] == a.manifest_digest
    assert clients.inspect_json(repo, "other")["Digest"] == b.manifest_digest

    # re-pointing a tag moves it; the tag list does not grow
    clients.skopeo_push(b, repo, "latest")
    assert clients.inspect_json(repo, "latest")["Digest"] == b.manifest_digest
    assert sorted(clients.list_tags(repo)) == sorted(["v1", "v1.1", "latest", "other"])
    # distribution-spec: "the tags MUST be in lexical order"
    assert clients.list_tags(repo) == ["latest", "other", "v1", "v1.1"]


def test_skopeo_delete(clients, layout, repo):
    keep = images.build_image(layout, "keep")
    gone = images.build_image(layout, "gone")
    clients.skopeo_push(keep, repo, "keep")
    clients.skopeo_push(gone, repo, "gone")
    assert sorted(clients.list_tags(repo)) == ["gone", "keep"]

    clients.run("skopeo", "delete", *clients.access.skopeo_one(), clients.docker_ref(repo, "gone"))

    # skopeo deletes the manifest by digest: manifest and tag are gone
    assert clients.get_manifest(repo, gone.manifest_digest).status_code == 404
    assert clients.get_manifest(repo, gone.manifest_digest, method="HEAD").status_code == 404
    assert clients.get_manifest(repo, "gone").status_code == 404
    assert clients.list_tags(repo) == ["keep"]
    r = clients.skopeo_inspect(repo, "gone", check=False)
    assert r.rc != 0 and "manifest unknown" in r.err.lower(), str(r)
    # the other image is untouched
    assert clients.inspect_raw(repo, "keep") == keep.manifest_bytes
    # deleting it again: 404 MANIFEST_UNKNOWN
    r = requests.delete(f"{clients.berth.url}/v2/{repo}/manifests/{gone.manifest_digest}",
                        headers=clients.access.http_headers(), timeout=30)
    assert r.status_code == 404, (r.status_code, r.text)
    # and the image can be pushed again afterwards
    clients.skopeo_push(gone, repo, "gone")
    assert clients.inspect_raw(repo, "gone") == gone.manifest_bytes


def test_skopeo_sync_registry_to_dir(clients, layout, repo, tmp_path):
    a = images.build_image(layout, "a")
    b = images.build_image(layout, "b")
    clients.skopeo_push(a, repo, "one")
    clients.skopeo_push(b, repo, "two")

    out = tmp_path / "sync"
    clients.run("skopeo", "sync", *clients.access.skopeo_src(), "--src", "docker", "--dest", "dir",
                f"{clients.R}/{repo}", out)
    leaf = repo.rsplit("/", 1)[1]
    assert sorted(os.listdir(out)) == sorted([f"{leaf}:one", f"{leaf}:two"])
    for tag, img in (("one", a), ("two", b)):
        d = out / f"{leaf}:{tag}"
        assert (d / "manifest.json").read_bytes() == img.manifest_bytes
        for digest in [img.config_digest, *img.layer_digests]:
            assert (d / digest.split(":")[1]).read_bytes() == images.read_blob(layout, digest)


def test_skopeo_sync_registry_to_registry(clients, layout, repo):
    a = images.build_image(layout, "a")
    multi = images.build_multiarch(layout, "multi")
    clients.skopeo_push(a, repo, "one")
    clients.skopeo_copy(multi.ref, clients.docker_ref(repo, "multi"), "--all")

    mirror = f"{repo}-mirror"
    clients.run("skopeo", "sync", *clients.access.skopeo_src(), *clients.access.skopeo_dest(),
                "--all", "--preserve-digests", "--src", "docker", "--dest", "docker",
                f"{clients.R}/{repo}", f"{clients.R}/{mirror}")
    dest_repo = f"{mirror}/{repo.rsplit('/', 1)[1]}"
    assert sorted(clients.list_tags(dest_repo)) == ["multi", "one"]
    assert clients.inspect_raw(dest_repo, "one") == a.manifest_bytes
    assert clients.inspect_raw(dest_repo, "multi") == multi.index_bytes
    for child in multi.children:
        assert clients.inspect_raw(dest_repo, child.manifest_digest) == child.manifest_bytes
        assert_blobs_served(clients, dest_repo, layout, [child.config_digest, *child.layer_digests])


def test_skopeo_copy_between_repositories_mounts_blobs(clients, layout, repo, tmp_path):
    img = images.build_image(layout, "small")
    clients.skopeo_push(img, repo, "v1")
    dest = f"{repo}-copy"
    # skopeo only tries a mount for a blob its blob-info cache knows to be in the registry
    # with a known compression. A push does not reliably record that: containers/image
    # notes the compression only if its HTTP writer read the source stream to EOF before the
    # PATCH response arrived, a client-side race a fast registry loses now and then. A pull
    # records it deterministically, so pull first (as a user who pulled the image would have).
    pulled = tmp_path / "pulled"
    clients.skopeo_copy(clients.docker_ref(repo, "v1"), f"dir:{pulled}")
    assert (pulled / "manifest.json").read_bytes() == img.manifest_bytes

    r = clients.skopeo_copy(clients.docker_ref(repo, "v1"), clients.docker_ref(dest, "v1"), debug=True)

    assert clients.inspect_json(dest, "v1")["Digest"] == img.manifest_digest
    assert clients.inspect_raw(dest, "v1") == img.manifest_bytes
    assert_blobs_served(clients, dest, layout, [img.config_digest, *img.layer_digests])
    # skopeo asked for a cross-repository mount of the layer, and berth performed it
    # (201 Created; a 202 would make skopeo log "started an upload instead" and re-upload)
    log = r.err
    for layer in img.layer_digests:
        quoted = layer.replace(":", "%3A")
        assert re.search(rf"POST http://{re.escape(clients.R)}/v2/{re.escape(dest)}/blobs/uploads/\?"
                         rf"from={re.escape(repo.replace('/', '%2F'))}&mount={quoted}", log), \
            f"skopeo did not try to mount {layer}:\n{log[-4000:]}"
    assert log.count("... mount OK") == len(img.layer_digests), \
        f"berth did not honour the cross-repo mount (POST ?mount=&from=):\n{log[-4000:]}"
    assert "started an upload instead" not in log


# --------------------------------------------------------------------------------------------
# podman / buildah
# --------------------------------------------------------------------------------------------

def test_podman_pull_skopeo_pushed_image(clients, layout, repo):
    img = images.build_image(layout, "small")
    clients.skopeo_push(img, repo, "v1")
    ref = f"{clients.R}/{repo}:v1"

    image_id = clients.podman("store", "pull", *clients.access.containers_tool(), ref).out.strip().splitlines()[-1]
    assert "sha256:" + image_id == img.config_digest  # podman's image ID is the config digest
    info = json.loads(clients.podman("store", "image", "inspect", ref).out)[0]
    assert info["Id"] == image_id
    assert info["Digest"] == img.manifest_digest
    assert f"{clients.R}/{repo}@{img.manifest_digest}" in info["RepoDigests"]
    assert info["Architecture"] == "amd64"

    # pulling by digest gives the same image
    by_digest = f"{clients.R}/{repo}@{img.manifest_digest}"
    image_id2 = clients.podman("store2", "pull", *clients.access.containers_tool(), by_digest).out.strip().splitlines()[-1]
    assert image_id2 == image_id


def test_podman_push_and_pull(clients, layout, repo):
    img = images.build_image(layout, "small")
    # get the image into podman's (tmp) storage without a registry
    local_id = clients.podman("src", "pull", img.ref).out.strip().splitlines()[-1]
    assert "sha256:" + local_id == img.config_digest

    digestfile = os.path.join(clients.home, "push.digest")
    clients.podman("src", "push", *clients.access.containers_tool(), "--digestfile", digestfile,
                   local_id, f"docker://{clients.R}/{repo}:pushed")
    pushed = open(digestfile).read().strip()

    raw = clients.inspect_raw(repo, "pushed")
    assert sha256_digest(raw) == pushed
    m = json.loads(raw)
    assert m["config"]["digest"] == img.config_digest
    assert clients.inspect_json(repo, "pushed")["Digest"] == pushed
    assert clients.list_tags(repo) == ["pushed"]

    # pull into empty storage: same image ID, digest as pushed
    ref = f"{clients.R}/{repo}:pushed"
    pulled_id = clients.podman("dst", "pull", *clients.access.containers_tool(), ref).out.strip().splitlines()[-1]
    assert pulled_id == local_id
    info = json.loads(clients.podman("dst", "image", "inspect", ref).out)[0]
    assert info["Digest"] == pushed
    # the random payload made it through push and pull: compare the layer file to the original
    layer = clients.get_blob(repo, m["layers"][0]["digest"])
    assert layer.status_code == 200
    assert hashlib.sha256(tar_member(layer.content, img.random_file)).hexdigest() == img.random_digest.split(":")[1]


def _buildah_image(clients, store, name, arch, payload):
    c = clients.buildah(store, "from", "scratch").out.strip().splitlines()[-1]
    clients.buildah(store, "copy", c, payload, "/data/payload.bin")
    clients.buildah(store, "config", "--arch", arch, "--os", "linux", "--cmd", "/bin/sh", c)
    image_id = clients.buildah(store, "commit", "-q", c, name).out.strip().splitlines()[-1]
    clients.buildah(store, "rm", c)
    return image_id


def test_buildah_push(clients, repo, tmp_path):
    payload = tmp_path / "payload.bin"
    images.write_random_file(payload, 300 * 1024)
    image_id = _buildah_image(clients, "b", "localhost/bimg", "amd64", payload)

    digestfile = tmp_path / "digest"
    clients.buildah("b", "push", *clients.access.containers_tool(), "--digestfile", digestfile,
                    "localhost/bimg", f"docker://{clients.R}/{repo}:v1")
    pushed = digestfile.read_text().strip()

    raw = clients.inspect_raw(repo, "v1")
    assert sha256_digest(raw) == pushed
    m = json.loads(raw)
    assert m["config"]["digest"] == "sha256:" + image_id
    info = clients.inspect_json(repo, "v1")
    assert info["Digest"] == pushed and info["Architecture"] == "amd64"
    layer = clients.get_blob(repo, m["layers"][0]["digest"])
    assert layer.status_code == 200 and sha256_digest(layer.content) == m["layers"][0]["digest"]
    assert tar_member(layer.content, "/data/payload.bin") == payload.read_bytes()

    # buildah pull into an empty store: same image
    pulled = clients.buildah("b2", "pull", *clients.access.containers_tool(),
                             f"{clients.R}/{repo}:v1").out.strip().splitlines()[-1]
    assert pulled == image_id


def test_buildah_manifest_list_push_all(clients, repo, tmp_path):
    ids = {}
    for arch in ("amd64", "arm64"):
        payload = tmp_path / f"payload-{arch}.bin"
        images.write_random_file(payload, 32 * 1024)
        ids[arch] = _buildah_image(clients, "b", f"localhost/bimg-{arch}", arch, payload)

    clients.buildah("b", "manifest", "create", "localhost/blist")
    for arch in ("amd64", "arm64"):
        clients.buildah("b", "manifest", "add", "localhost/blist", f"containers-storage:localhost/bimg-{arch}")
    digestfile = tmp_path / "digest"
    clients.buildah("b", "manifest", "push", *clients.access.containers_tool(), "--all",
                    "--digestfile", digestfile, "localhost/blist", f"docker://{clients.R}/{repo}:list")
    pushed = digestfile.read_text().strip()

    raw = clients.inspect_raw(repo, "list")
    assert sha256_digest(raw) == pushed
    index = json.loads(raw)
    assert index["mediaType"] in (MT_OCI_INDEX, MT_DOCKER_LIST)
    assert_manifest_served(clients, repo, "list", raw, index["mediaType"])
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    for m in index["manifests"]:
        arch = m["platform"]["architecture"]
        child_raw = clients.inspect_raw(repo, m["digest"])
        assert sha256_digest(child_raw) == m["digest"] and len(child_raw) == m["size"]
        child = json.loads(child_raw)
        assert child["config"]["digest"] == "sha256:" + ids[arch]
        assert clients.inspect_json(repo, m["digest"])["Architecture"] == arch
        for blob in [child["config"]["digest"], *(l["digest"] for l in child["layers"])]:
            r = clients.get_blob(repo, blob, method="HEAD")
            assert r.status_code == 200, f"HEAD blob {blob}: {r.status_code}"
    # pushing the list pushed exactly one tag
    assert clients.list_tags(repo) == ["list"]


# --------------------------------------------------------------------------------------------
# docker CLI (no engine)
# --------------------------------------------------------------------------------------------

def test_docker_manifest_inspect(clients, layout, repo):
    multi = images.build_multiarch(layout, "multi")
    clients.skopeo_copy(multi.ref, clients.docker_ref(repo, "multi"), "--all")
    single = images.build_image(layout, "single")
    clients.skopeo_copy(single.ref, clients.docker_ref(repo, "v2s2"), "--format", "v2s2")

    out = clients.docker("manifest", "inspect", *clients.access.docker_manifest(), f"{clients.R}/{repo}:multi").out
    assert json.loads(out) == json.loads(multi.index_bytes)

    out = clients.docker("manifest", "inspect", *clients.access.docker_manifest(), f"{clients.R}/{repo}:v2s2").out
    m = json.loads(out)
    assert m["mediaType"] == MT_DOCKER_MANIFEST
    assert [l["digest"] for l in m["layers"]] == single.layer_digests

    # --verbose resolves the children of the index
    out = clients.docker("manifest", "inspect", *clients.access.docker_manifest(), "--verbose",
                         f"{clients.R}/{repo}:multi").out
    entries = json.loads(out)
    assert [e["Descriptor"]["digest"] for e in entries] == [c.manifest_digest for c in multi.children]
    assert [e["Descriptor"]["platform"]["architecture"] for e in entries] == ["amd64", "arm64"]

    r = clients.docker("manifest", "inspect", *clients.access.docker_manifest(),
                       f"{clients.R}/{repo}:absent", check=False)
    assert r.rc != 0 and "no such manifest" in (r.out + r.err).lower(), str(r)


def test_docker_manifest_create_annotate_push(clients, layout, repo):
    amd = images.build_image(layout, "amd", arch="amd64")
    arm = images.build_image(layout, "arm", arch="arm64")
    src_a, src_b = f"{repo}-a", f"{repo}-b"
    clients.skopeo_copy(amd.ref, clients.docker_ref(src_a, "v1"), "--format", "v2s2")
    clients.skopeo_push(arm, src_b, "v1")  # an OCI manifest, as umoci wrote it
    amd_v2s2 = clients.inspect_raw(src_a, "v1")

    R = clients.R
    lst, a_ref, b_ref = f"{R}/{repo}:list", f"{R}/{src_a}:v1", f"{R}/{src_b}:v1"
    ins = clients.access.docker_manifest()
    clients.docker("manifest", "create", *ins, lst, a_ref, b_ref)
    clients.docker("manifest", "annotate", lst, b_ref, "--os", "linux", "--arch", "arm64",
                   "--variant", "v8", "--os-features", "berthfeature")
    out = clients.docker("manifest", "push", *ins, "--purge", lst).out
    pushed = out.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", pushed), out

    raw = clients.inspect_raw(repo, "list")
    assert sha256_digest(raw) == pushed
    index = json.loads(raw)
    assert index["mediaType"] == MT_DOCKER_LIST
    assert_manifest_served(clients, repo, "list", raw, MT_DOCKER_LIST)
    by_arch = {m["platform"]["architecture"]: m for m in index["manifests"]}
    assert set(by_arch) == {"amd64", "arm64"}
    assert by_arch["amd64"]["digest"] == sha256_digest(amd_v2s2)
    assert by_arch["amd64"]["mediaType"] == MT_DOCKER_MANIFEST
    assert by_arch["arm64"]["digest"] == arm.manifest_digest
    assert by_arch["arm64"]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8",
                                            "os.features": ["berthfeature"]}

    # docker pushed the children into the list's repository (mounting their blobs)
    assert clients.inspect_raw(repo, arm.manifest_digest) == arm.manifest_bytes
    assert clients.inspect_raw(repo, by_arch["amd64"]["digest"]) == amd_v2s2
    assert_blobs_served(clients, repo, layout, [arm.config_digest, *arm.layer_digests, *amd.layer_digests])

    # the docker CLI reads back what it pushed; --purge removed the local list
    out = clients.docker("manifest", "inspect", *ins, lst).out
    assert json.loads(out) == index
    local_lists = os.path.join(clients.access.docker_config, "manifests")
    assert not os.path.exists(local_lists) or not os.listdir(local_lists)


# --------------------------------------------------------------------------------------------
# oras (python SDK)
# --------------------------------------------------------------------------------------------

def _oras_files(tmp_path, sizes):
    src = tmp_path / "artifact"
    src.mkdir()
    files = []
    for name, size in sizes.items():
        p = src / name
        images.write_random_file(p, size)
        files.append(str(p))
    return files


def _oras_roundtrip(clients, repo, tmp_path, tag, files, **push_kw):
    client = clients.access.oras_client()
    cfg = clients.access.oras_config_path()
    target = f"{clients.R}/{repo}:{tag}"
    resp = client.push(target=target, files=files, config_path=cfg, disable_path_validation=True,
                       quiet=True, **push_kw)
    assert resp.status_code == 201, (resp.status_code, resp.text)
    pushed = resp.headers.get("Docker-Content-Digest")

    r = clients.get_manifest(repo, tag)
    assert r.status_code == 200
    assert sha256_digest(r.content) == pushed
    manifest = r.json()
    titles = [l["annotations"]["org.opencontainers.image.title"] for l in manifest["layers"]]
    assert titles == [os.path.basename(f) for f in files]
    for f, l in zip(files, manifest["layers"]):
        assert l["digest"] == images.file_digest(f) and l["size"] == os.path.getsize(f)

    outdir = tmp_path / f"pulled-{tag}"
    pulled = client.pull(target=target, config_path=cfg, outdir=str(outdir))
    assert sorted(os.path.basename(p) for p in pulled) == sorted(os.path.basename(f) for f in files)
    for f in files:
        got = outdir / os.path.basename(f)
        assert got.read_bytes() == open(f, "rb").read(), f"{got} differs from what was pushed"
    return pushed, manifest


def test_oras_push_pull_monolithic(clients, repo, tmp_path):
    files = _oras_files(tmp_path, {"readme.txt": 100, "data.bin": 3 * 1024 * 1024 + 7, "empty.bin": 0})
    _oras_roundtrip(clients, repo, tmp_path, "mono", files, do_chunked=False)
    assert clients.access.oras_client().get_tags(f"{clients.R}/{repo}") == ["mono"]


def test_oras_push_pull_chunked(clients, repo, tmp_path):
    chunk = 1024 * 1024
    # big.bin spans 3 full chunks and a partial one; small.txt fits in one chunk
    files = _oras_files(tmp_path, {"big.bin": 3 * chunk + 12345, "small.txt": 777})
    _, manifest = _oras_roundtrip(clients, repo, tmp_path, "chunked", files,
                                  do_chunked=True, chunk_size=chunk)
    big = manifest["layers"][0]
    assert big["size"] > chunk
    r = clients.get_blob(repo, big["digest"])
    assert r.status_code == 200 and r.content == open(files[0], "rb").read()


def test_oras_get_tags_and_delete_tag(clients, repo, tmp_path):
    client = clients.access.oras_client()
    for tag in ("t1", "t2", "t3"):
        (tmp_path / tag).mkdir()
        files = _oras_files(tmp_path / tag, {f"{tag}.txt": 64})
        _oras_roundtrip(clients, repo, tmp_path / tag, tag, files)
    name = f"{clients.R}/{repo}"
    assert sorted(client.get_tags(name)) == ["t1", "t2", "t3"]
    # distribution-spec: tags in lexical order; `?n=2` returns the first two
    assert client.get_tags(name) == ["t1", "t2", "t3"]
    assert client.get_tags(name, N=2) == ["t1", "t2"]

    digest = clients.get_manifest(repo, "t2").headers["Docker-Content-Digest"]
    assert client.delete_tag(name, "t2") is True  # oras requires 202 Accepted from DELETE
    assert sorted(client.get_tags(name)) == ["t1", "t3"]
    assert clients.get_manifest(repo, "t2").status_code == 404
    assert clients.get_manifest(repo, digest).status_code == 404
    assert clients.get_manifest(repo, "t1").status_code == 200
    assert client.delete_tag(name, "t2") is False  # HEAD now 404s


# --------------------------------------------------------------------------------------------
# 200 MiB layer: throughput figures
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_skopeo_200mib_layer_push_pull(clients, layout, repo, tmp_path):
    size = 200 * 1024 * 1024
    img = images.build_image(layout, "big", random_size=size, with_busybox=False)
    layer_size = img.manifest["layers"][0]["size"]
    assert layer_size > size  # random content does not compress

    push = clients.skopeo_copy(img.ref, clients.docker_ref(repo, "big"), timeout=1800)
    assert clients.inspect_json(repo, "big")["Digest"] == img.manifest_digest
    r = clients.get_blob(repo, img.layer_digests[0], method="HEAD")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == layer_size

    out = tmp_path / "pulled"
    pull = clients.skopeo_copy(clients.docker_ref(repo, "big"), f"dir:{out}", timeout=1800)
    assert (out / "manifest.json").read_bytes() == img.manifest_bytes
    assert images.file_digest(out / img.layer_digests[0].split(":")[1]) == img.layer_digests[0]

    mb = layer_size / 1e6
    print(f"\n[200MiB] layer {layer_size} bytes ({mb:.1f} MB): "
          f"push {push.seconds:.2f}s = {mb / push.seconds:.1f} MB/s, "
          f"pull {pull.seconds:.2f}s = {mb / pull.seconds:.1f} MB/s (skopeo, loopback, incl. process start)")
