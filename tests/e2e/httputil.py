"""HTTP helpers for the berth end-to-end tests (OCI Distribution Spec v1.1).

Everything that talks to the server goes through `Registry` (or `raw_request`), and both
take their credentials from one place: `registry_authorization()`. berth, like ECR, requires
`Authorization: Basic base64(AWS:<token>)` on /v2/, where the token is the password
`aws ecr get-login-password` prints (GetAuthorizationToken, signed with the admin key the
conftest `Berth` starts the server with).
"""
import base64
import hashlib
import http.client
import json
import os
import re
import threading
import urllib.parse
import uuid

import requests

# --------------------------------------------------------------------------
# media types
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
OCI_EMPTY_BYTES = b"{}"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_LIMIT = 4 * 1024 * 1024

LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def digest_of(data: bytes, alg: str = "sha256") -> str:
    return sha512(data) if alg == "sha512" else sha256(data)


def blob_file(data_dir: str, digest: str, scope: str = "aes256") -> str:
    """Where the contract says a blob lives on disk: in clear under blobs/ (stored before
    encryption at rest, or with --aes256-by-storage) when it is there, else its encrypted object
    of `scope` under sealed/ (see berth-core's sealing)."""
    alg, hexpart = digest.split(":", 1)
    plain = os.path.join(data_dir, "blobs", alg, hexpart[:2], hexpart)
    if os.path.exists(plain):
        return plain
    return sealed_file(data_dir, digest, scope)


def assert_stored_encrypted(path: str, data: bytes):
    """The file is berth's encrypted object of `data`: its header, a 16-byte tag per 64 KiB
    segment, and none of the plaintext (checked for runs of 64 bytes at a few places)."""
    with open(path, "rb") as f:
        stored = f.read()
    assert stored[:4] == b"BRS2", f"{path} is not an encrypted object"
    segments = max(1, -(-len(data) // 65536))
    assert len(stored) > len(data) + 16 * segments, (len(stored), len(data))
    for at in range(0, max(1, len(data) - 64), max(1, len(data) // 7)):
        piece = data[at:at + 64]
        assert len(piece) < 64 or piece not in stored, f"plaintext at {at} found in {path}"


def sealed_file(data_dir: str, digest: str, scope: str = "aes256") -> str:
    """The file of a blob's encrypted object in `scope` ("aes256", "kms:<arn>", "dsse:<arn>")."""
    name = hashlib.sha256(f"berth sealed object v1\n{scope}\n{digest}".encode()).hexdigest()
    return os.path.join(data_dir, "sealed", "blobs", "sha256", name[:2], name)


def error_codes(resp) -> list:
    """The `code`s of an OCI error body ({"errors":[{code,message,detail}]}), [] if none."""
    try:
        body = resp.json()
    except ValueError:
        return []
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [e.get("code") for e in body["errors"] if isinstance(e, dict)]


def describe(resp) -> str:
    """A one-paragraph description of a response, for assertion messages."""
    req = resp.request
    body = resp.content[:600] if req.method != "HEAD" else b""
    hdrs = {k: v for k, v in resp.headers.items()}
    return f"{req.method} {req.url} -> {resp.status_code} headers={hdrs} body={body!r}"


def assert_status(resp, *statuses):
    assert resp.status_code in statuses, f"expected {statuses}: {describe(resp)}"


def assert_error(resp, status, *codes):
    """status may be an int or a tuple of ints; codes: at least one must be present."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert resp.status_code in statuses, f"expected status {statuses}: {describe(resp)}"
    if resp.request.method == "HEAD" or not codes:
        return
    got = error_codes(resp)
    assert got, f"expected an OCI error body with one of {codes}: {describe(resp)}"
    for e in resp.json()["errors"]:
        assert isinstance(e.get("code"), str) and re.fullmatch(r"[A-Z_]+", e["code"]), describe(resp)
        assert "message" not in e or isinstance(e["message"], str), describe(resp)
    assert any(c in codes for c in got), f"expected error code in {codes}, got {got}: {describe(resp)}"


def parse_range(value):
    """Upload `Range: 0-<end>` -> end (int)."""
    assert value is not None, "missing Range header"
    m = re.fullmatch(r"(?:bytes=)?0-(\d+)", value.strip())
    assert m, f"malformed Range header {value!r}"
    return int(m.group(1))


def next_link(resp):
    """Target of a `Link: <...>; rel="next"` header, or None."""
    link = resp.headers.get("Link")
    if not link:
        return None
    m = LINK_NEXT_RE.search(link)
    assert m, f"Link header without rel=next: {link!r}"
    return m.group(1)


_token_lock = threading.Lock()


def fetch_token(base_url, key=None, secret=None):
    """The registry password for `key` (default: the admin key), via GetAuthorizationToken."""
    import boto3
    from conftest import ADMIN_KEY, ADMIN_SECRET, REGION

    with _token_lock:  # boto3 sessions are not thread-safe; Pushers create Registries in threads
        client = boto3.session.Session().client(
            "ecr", endpoint_url=base_url, region_name=REGION,
            aws_access_key_id=key or ADMIN_KEY, aws_secret_access_key=secret or ADMIN_SECRET)
    data = client.get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS", data
    return password


def basic_auth(token):
    return "Basic " + base64.b64encode(f"AWS:{token}".encode()).decode()


def registry_authorization(base_url, token=None):
    """THE place that decides the `Authorization` header of /v2/ requests.

    BERTH_TEST_USER/BERTH_TEST_PASSWORD override it (Basic with those); otherwise
    Basic AWS:<token>, fetching the admin's token when none is given."""
    user = os.environ.get("BERTH_TEST_USER")
    if user:
        return "Basic " + base64.b64encode(f"{user}:{os.environ.get('BERTH_TEST_PASSWORD', '')}".encode()).decode()
    return basic_auth(token or fetch_token(base_url))


class Registry:
    """Thin wrapper over requests for one berth server.

    `token`: the registry password to send (tests pass `berth.token()`); when None the
    admin's token is fetched from the server; `token=False` sends no credentials."""

    def __init__(self, base_url, timeout=60, token=None):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.s = requests.Session()
        self._apply_auth(self.s, self.base, token)

    # The single place where credentials are attached.
    @staticmethod
    def _apply_auth(session, base_url, token=None):
        if token is False:
            return
        session.headers["Authorization"] = registry_authorization(base_url, token)

    def url(self, path_or_url):
        if path_or_url.startswith("http://") or path_or_url.startswith("https://"):
            return path_or_url
        return urllib.parse.urljoin(self.base + "/", path_or_url)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", self.timeout)
        kw.setdefault("allow_redirects", False)
        return self.s.request(method, self.url(path), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # ---- uploads -------------------------------------------------------
    @staticmethod
    def with_query(location, **params):
        """Append query params to an upload Location, keeping any it already has."""
        parts = urllib.parse.urlsplit(location)
        q = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        q += list(params.items())
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))

    def start_upload(self, name):
        r = self.post(f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"})
        assert_status(r, 202)
        assert r.headers.get("Location"), describe(r)
        return r

    def upload_blob(self, name, data, digest=None):
        """POST then PUT (monolithic). Returns the PUT response (asserted 201)."""
        digest = digest or sha256(data)
        loc = self.start_upload(name).headers["Location"]
        r = self.put(self.with_query(loc, digest=digest), data=data,
                     headers={"Content-Type": "application/octet-stream"})
        assert_status(r, 201)
        return r

    def upload_chunked(self, name, data, chunk=64 * 1024, digest=None):
        digest = digest or sha256(data)
        loc = self.start_upload(name).headers["Location"]
        off = 0
        while off < len(data):
            part = data[off:off + chunk]
            r = self.patch(loc, data=part, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{off}-{off + len(part) - 1}",
            })
            assert_status(r, 202)
            loc = r.headers["Location"]
            off += len(part)
        r = self.put(self.with_query(loc, digest=digest))
        assert_status(r, 201)
        return r

    def put_manifest(self, name, ref, body: bytes, media_type, expect=201):
        r = self.put(f"/v2/{name}/manifests/{ref}", data=body, headers={"Content-Type": media_type})
        if expect is not None:
            assert_status(r, expect)
        return r

    def push_image(self, name, tag="latest", nlayers=2, layer_size=1024, media_type=OCI_MANIFEST,
                   subject=None, artifact_type=None, annotations=None, config=None, config_type=None):
        """Push config + layers + manifest; returns dict(manifest=bytes, digest, blobs=[(digest,bytes)])."""
        docker = media_type == DOCKER_MANIFEST
        cfg = config if config is not None else json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
             "nonce": uuid.uuid4().hex}).encode()
        cfg_type = config_type or (DOCKER_CONFIG if docker else OCI_CONFIG)
        self.upload_blob(name, cfg)
        layers = []
        for _ in range(nlayers):
            data = os.urandom(layer_size)
            self.upload_blob(name, data)
            layers.append(data)
        m = {"schemaVersion": 2, "mediaType": media_type}
        if artifact_type:
            m["artifactType"] = artifact_type
        m["config"] = {"mediaType": cfg_type, "digest": sha256(cfg), "size": len(cfg)}
        m["layers"] = [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER, "digest": sha256(d), "size": len(d)}
                       for d in layers]
        if subject:
            m["subject"] = subject
        if annotations:
            m["annotations"] = annotations
        body = json.dumps(m, indent=1).encode()
        r = self.put_manifest(name, tag or sha256(body), body, media_type)
        return {"manifest": body, "digest": sha256(body), "media_type": media_type,
                "blobs": [(sha256(cfg), cfg)] + [(sha256(d), d) for d in layers], "response": r}


def descriptor(body: bytes, media_type, **extra):
    d = {"mediaType": media_type, "digest": sha256(body), "size": len(body)}
    d.update(extra)
    return d


def raw_request(addr, method, path, headers=None, body=None, timeout=30, token=None):
    """Send `path` byte-for-byte (no dot-segment normalisation, unlike requests/urllib3).

    Authenticated like `Registry` (token=False: anonymous; an explicit Authorization
    header wins). Returns (status, headers-dict-lowercased, body-bytes)."""
    headers = dict(headers or {})
    if token is not False and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = registry_authorization(f"http://{addr}", token)
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        elif method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("Content-Length", "0")
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()
