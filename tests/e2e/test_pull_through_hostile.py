"""Pull-through cache against a hostile upstream (issue 20): a small Python registry the test
controls answers garbage, a manifest of the wrong media type, manifest and blob bytes that do not
match their digests, and 429s. berth answers a clear OCI error naming the upstream, caches
nothing (describe-images shows nothing), makes no retry storm (the fake upstream counts its
requests), and a retry after the upstream is fixed works.
"""
import concurrent.futures
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import images
from test_pull_through import (DEADLINE, add_rule, aws_home, cache, free_port, pull_to_dir,  # noqa: F401 (fixtures)
                               skopeo_digest, wait_for_image)

ACCEPT = ", ".join([images.MT_OCI_MANIFEST, images.MT_OCI_INDEX, images.MT_DOCKER_MANIFEST, images.MT_DOCKER_LIST])


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """A registry API over dicts. `manifests[(repo, ref)] = (body, content_type, digest_header)`,
    `blobs[digest] = body`; `status` answers every /v2/<name>/… request with that status instead
    (Retry-After `retry_after`). Counts requests by (method, path)."""

    def __init__(self):
        self.manifests, self.blobs, self.requests = {}, {}, {}
        self.status, self.retry_after = None, None
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                with fake.lock:
                    key = (self.command, self.path)
                    fake.requests[key] = fake.requests.get(key, 0) + 1
                    status, retry_after = fake.status, fake.retry_after
                if self.path == "/v2/":
                    return self.answer(200, b"{}", [("Content-Type", "application/json")])
                if status:
                    headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
                    err = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()
                    return self.answer(status, err, headers + [("Content-Type", "application/json")])
                parts = self.path[len("/v2/"):].split("/")
                if len(parts) >= 3 and parts[-2] == "manifests":
                    found = fake.manifests.get(("/".join(parts[:-2]), parts[-1]))
                    if found:
                        body, ct, header = found
                        return self.answer(200, body, [("Content-Type", ct), ("Docker-Content-Digest", header)])
                if len(parts) >= 3 and parts[-2] == "blobs" and parts[-1] in fake.blobs:
                    return self.answer(200, fake.blobs[parts[-1]], [("Content-Type", "application/octet-stream"),
                                                                     ("Docker-Content-Digest", parts[-1])])
                err = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}).encode()
                return self.answer(404, err, [("Content-Type", "application/json")])

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"http://{self.addr}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, method, fragment):
        with self.lock:
            return sum(n for (m, p), n in self.requests.items() if m == method and fragment in p)

    def put_image(self, repo, tag, img):
        """Serves an images.Image (its exact bytes) under repo:tag and by digest."""
        body = img.manifest_bytes
        for ref in (tag, img.manifest_digest):
            self.manifests[(repo, ref)] = (body, images.MT_OCI_MANIFEST, img.manifest_digest)
        for d in [img.config_digest, *img.layer_digests]:
            self.blobs[d] = images.read_blob(img.layout, d)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = FakeRegistry()
    yield f
    f.stop()


def v2_get(b, path, token=None):
    return requests.get(f"{b.url}/v2/{path}", auth=("AWS", token or b.token()), headers={"Accept": ACCEPT}, timeout=60)


def cached_images(b, repo):
    """The images berth holds in `repo` (none when the repository does not exist)."""
    ecr = b.ecr()
    try:
        return ecr.describe_images(repositoryName=repo)["imageDetails"]
    except ecr.exceptions.RepositoryNotFoundException:
        return []


def assert_upstream_error(r, fake, *words):
    assert r.status_code == 502, (r.status_code, r.text)
    message = r.json()["errors"][0]["message"]
    assert fake.addr in message, message
    for w in words:
        assert w in message, message


def pull_after_the_fix(cache, fake, repo, img, out):
    """The upstream serves `img` correctly now: a pull through the `bad` rule works and caches it."""
    fake.put_image(repo, "v1", img)
    pull_to_dir(cache, f"{cache.addr}/bad/{repo}:v1", str(out))
    assert wait_for_image(cache.ecr(), f"bad/{repo}", "v1")["imageDigest"] == img.manifest_digest


def test_garbage_and_wrong_media_type_and_mismatched_manifests_cache_nothing(cache, fake, tmp_path):
    home = aws_home(tmp_path)
    assert add_rule(cache, home, "bad", fake.url)[0].returncode == 0
    img = images.build_image(str(tmp_path / "oci"), "v1", random_size=32 * 1024)
    good = img.manifest_bytes

    # Not JSON (its digest header matches, so only the content is wrong).
    garbage = b"<html><body>rate limit page</body></html>"
    fake.manifests[("team/app", "v1")] = (garbage, images.MT_OCI_MANIFEST, digest_of(garbage))
    assert_upstream_error(v2_get(cache, "bad/team/app/manifests/v1"), fake, "team/app")

    # A manifest whose body says one media type and whose Content-Type says another.
    typed = json.dumps(dict(img.manifest, mediaType=images.MT_OCI_MANIFEST)).encode()
    fake.manifests[("team/app", "v1")] = (typed, "text/html", digest_of(typed))
    assert_upstream_error(v2_get(cache, "bad/team/app/manifests/v1"), fake)

    # By tag: the bytes do not hash to the upstream's Docker-Content-Digest.
    other = digest_of(b"something else")
    fake.manifests[("team/app", "v1")] = (good, images.MT_OCI_MANIFEST, other)
    assert_upstream_error(v2_get(cache, "bad/team/app/manifests/v1"), fake, "digest")

    # By digest: the upstream sends another manifest's bytes.
    fake.manifests[("team/app", img.manifest_digest)] = (garbage, images.MT_OCI_MANIFEST, img.manifest_digest)
    assert_upstream_error(v2_get(cache, f"bad/team/app/manifests/{img.manifest_digest}"), fake, "digest")

    # skopeo sees the failure too, and nothing was cached by any of it.
    p = pull_to_dir(cache, f"{cache.addr}/bad/team/app:v1", str(tmp_path / "refused"), check=False)
    assert p.returncode != 0
    assert cached_images(cache, "bad/team/app") == []

    # The upstream fixed: the same pulls work and get the upstream's digest.
    pull_after_the_fix(cache, fake, "team/app", img, tmp_path / "pulled")
    assert open(tmp_path / "pulled" / "manifest.json", "rb").read() == good
    assert skopeo_digest(cache, f"{cache.addr}/bad/team/app@{img.manifest_digest}") == img.manifest_digest


def test_a_blob_whose_bytes_do_not_match_its_digest_is_never_cached(cache, fake, tmp_path):
    home = aws_home(tmp_path)
    assert add_rule(cache, home, "bad", fake.url)[0].returncode == 0
    img = images.build_image(str(tmp_path / "oci"), "v1", random_size=256 * 1024)
    fake.put_image("team/blob", "v1", img)
    layer = img.layer_digests[0]
    real = fake.blobs[layer]
    fake.blobs[layer] = bytes(b ^ 0xFF for b in real[:64]) + real[64:]  # same length, other bytes

    p = pull_to_dir(cache, f"{cache.addr}/bad/team/blob:v1", str(tmp_path / "refused"), check=False)
    assert p.returncode != 0, "a client must not receive a corrupt layer as good"
    # Nothing became visible: no image, and the layer is not a stored blob.
    assert cached_images(cache, "bad/team/blob") == []
    checked = cache.ecr().batch_check_layer_availability(repositoryName="bad/team/blob", layerDigests=[layer])
    assert [l["layerAvailability"] for l in checked["layers"]] in ([], ["UNAVAILABLE"]), checked

    pull_after_the_fix(cache, fake, "team/blob", img, tmp_path / "pulled")
    assert open(tmp_path / "pulled" / layer.split(":")[1], "rb").read() == real


def test_an_upstream_answering_429_gets_no_retry_storm(cache, fake, tmp_path):
    home = aws_home(tmp_path)
    assert add_rule(cache, home, "slow", fake.url)[0].returncode == 0
    img = images.build_image(str(tmp_path / "oci"), "v1", random_size=16 * 1024)
    fake.put_image("team/limited", "v1", img)
    fake.status, fake.retry_after = 429, 1

    # 20 clients at once, then more for another tag: each answered with an error naming the
    # upstream, while the upstream sees one fetch's few attempts only.
    token = cache.token()

    def get(path):
        started = time.monotonic()
        return v2_get(cache, path, token), time.monotonic() - started

    paths = ["slow/team/limited/manifests/v1"] * 20 + ["slow/team/limited/manifests/v2"] * 5
    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(get, paths))
    for r, seconds in answers:
        assert_upstream_error(r, fake)
        assert seconds < 30, "answered, never hung"
    # One flight per (repository, reference), each at most the client's 3 attempts.
    for tag in ("v1", "v2"):
        assert fake.count("GET", f"/manifests/{tag}") + fake.count("HEAD", f"/manifests/{tag}") <= 3, fake.requests
    assert fake.count("GET", "/manifests/v1") >= 1
    manifest_requests = fake.count("GET", "/manifests/") + fake.count("HEAD", "/manifests/")
    assert cached_images(cache, "slow/team/limited") == []

    # A pull right after the storm is answered from the pause, without asking the upstream.
    r = v2_get(cache, "slow/team/limited/manifests/v1", token)
    assert_upstream_error(r, fake, "unavailable")
    assert fake.count("GET", "/manifests/") + fake.count("HEAD", "/manifests/") == manifest_requests

    # The upstream recovers: once the pause is over, the pull works.
    fake.status = None
    end = time.monotonic() + DEADLINE
    while (r := v2_get(cache, "slow/team/limited/manifests/v1", token)).status_code != 200:
        assert r.status_code == 502 and time.monotonic() < end, r.text
        time.sleep(0.5)
    assert r.content == img.manifest_bytes
    assert r.headers["Docker-Content-Digest"] == img.manifest_digest
