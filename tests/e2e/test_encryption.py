"""Encryption at rest (issue 16, second part), seen by real clients: the aws CLI makes KMS keys and
KMS-encrypted repositories, skopeo pushes and pulls through them, and no run of a pushed blob's
bytes is left anywhere under the data directory (or in the bucket of a cluster). A disabled or
pending-deletion key stops its own repositories only (403 DENIED on /v2/, KmsException on the ECR
API) and they come back when it is enabled again; a changed stored byte is never served as an
intact blob; `berth encrypt` (offline and online) seals what was stored in clear.

Sealed objects live at <data-dir>/sealed/blobs/sha256/xx/<name>, name =
sha256("berth sealed object v1\\n" + scope + "\\n" + digest), scope "aes256" | "kms:<arn>" | "dsse:<arn>".
"""
import hashlib
import json
import os
import subprocess
import uuid

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

import images
from conftest import REGION, Berth
from httputil import Registry, assert_error, basic_auth, sha256
from test_cluster import Cluster, infra  # noqa: F401  (infra: the cluster test's PostgreSQL and s3s-fs)

MiB = 1024 * 1024
SEGMENT = 64 * 1024
RUN = 64  # the length of a plaintext run looked for on disk


# --- looking for plaintext on disk -----------------------------------------------------------

class Plaintexts:
    """64-byte windows of blobs' plaintext, looked for in every file under a directory.

    Windows are taken at every offset of small blobs and every 8th offset of large ones; files
    are read at every 7th offset. 7 and 8 being coprime, any copy of at least 120 contiguous
    bytes of a large blob (70 of a small one) lines up with a window somewhere, wherever it lies
    in the file and whatever offset of the blob it starts at. Windows mostly of one byte value
    (a tar header's zero padding) are left out: any file may hold those."""

    FILE_STEP = 7

    def __init__(self):
        self.windows = {}
        self.labels = []

    def add(self, label, data: bytes):
        assert len(data) >= RUN, f"{label} is shorter than a run"
        step = 1 if len(data) <= SEGMENT else 8
        for i in range(0, len(data) - RUN + 1, step):
            window = data[i:i + RUN]
            if max(window.count(c) for c in set(window)) <= 16:
                self.windows.setdefault(window, label)
        self.labels.append(label)
        return self

    def found_under(self, *roots):
        """[(path, offset, label)]: the first run of each (file, blob) found."""
        hits = []
        for root in roots:
            assert os.path.isdir(root), root
            for dirpath, _, files in os.walk(root):
                for f in files:
                    path = os.path.join(dirpath, f)
                    if not os.path.isfile(path):
                        continue
                    with open(path, "rb") as fh:
                        data = fh.read()
                    seen = set()
                    get = self.windows.get
                    for i in range(0, len(data) - RUN + 1, self.FILE_STEP):
                        label = get(data[i:i + RUN])
                        if label and label not in seen:
                            seen.add(label)
                            hits.append((path, i, label))
        return hits

    def assert_absent(self, *roots):
        hits = self.found_under(*roots)
        assert hits == [], f"plaintext runs found on disk: {hits[:10]}"


def image_plaintexts(img, pt=None):
    """The layer and the config blob of an images.py Image."""
    pt = pt or Plaintexts()
    for d in img.layer_digests:
        pt.add(f"layer {d}", images.read_blob(img.layout, d))
    pt.add(f"config {img.config_digest}", images.read_blob(img.layout, img.config_digest))
    return pt


def sealed_object(data_dir, scope, digest):
    name = hashlib.sha256(f"berth sealed object v1\n{scope}\n{digest}".encode()).hexdigest()
    return os.path.join(data_dir, "sealed", "blobs", "sha256", name[:2], name)


# --- clients -----------------------------------------------------------------------------------

def run(*cmd, check=True, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"$ {' '.join(cmd)}\nexit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def aws(b, home, service, *args, check=True):
    """The aws CLI against berth; returns (process, parsed JSON output or {})."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), AWS_ACCESS_KEY_ID=b.admin_key, AWS_SECRET_ACCESS_KEY=b.admin_secret,
               AWS_DEFAULT_REGION=REGION)
    p = run("aws", "--endpoint-url", b.url, service, *args, "--output", "json", check=check, env=env)
    return p, (json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {})


def kms(b):
    return boto3.client("kms", endpoint_url=b.url, region_name=REGION,
                        aws_access_key_id=b.admin_key, aws_secret_access_key=b.admin_secret)


def skopeo_copy(b, src, dst, check=True):
    creds = f"AWS:{b.token()}"
    return run("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds,
               "--dest-creds", creds, src, dst, check=check)


def push(b, img, repo, tag="v1", check=True):
    return skopeo_copy(b, img.ref, f"docker://{b.addr}/{repo}:{tag}", check=check)


def assert_pulls_intact(b, img, repo, out, tag="v1"):
    """skopeo pulls the image into a dir: layout; manifest, config and layers are the pushed bytes."""
    skopeo_copy(b, f"docker://{b.addr}/{repo}:{tag}", f"dir:{out}")
    assert open(os.path.join(out, "manifest.json"), "rb").read() == img.manifest_bytes
    for d in [img.config_digest, *img.layer_digests]:
        got = open(os.path.join(out, d.split(":")[1]), "rb").read()
        assert got == images.read_blob(img.layout, d), f"{d} pulled from {repo} differs"


def kms_key(b, home):
    """A new KMS key with an alias, made with the aws CLI: (key metadata, alias)."""
    _, created = aws(b, home, "kms", "create-key", "--description", "repository key")
    key = created["KeyMetadata"]
    alias = f"alias/repo-{uuid.uuid4().hex[:8]}"
    aws(b, home, "kms", "create-alias", "--alias-name", alias, "--target-key-id", key["KeyId"])
    return key, alias


def aws_repository(b, home, name, encryption, key, alias):
    """Creates a repository encrypted under `alias` with the aws CLI; the answer names the key's ARN."""
    _, made = aws(b, home, "ecr", "create-repository", "--repository-name", name,
                  "--encryption-configuration", f"encryptionType={encryption},kmsKey={alias}")
    assert made["repository"]["encryptionConfiguration"] == {"encryptionType": encryption, "kmsKey": key["Arn"]}


def assert_fsck(b, clean=True):
    """Stops berth and runs `berth fsck` on its data dir; returns the report."""
    b.stop()
    p = b.cli("fsck", "--data-dir", b.data_dir, check=False)
    assert (p.returncode == 0) == clean, p.stdout + p.stderr
    return json.loads(p.stdout)


def pushed_to_aes256_beside_kms(b, tmp_path, kms_key_id):
    """enc/src (AES256) holding a pushed image, and an empty enc/dst encrypted under `kms_key_id`."""
    ecr = b.ecr()
    ecr.create_repository(repositoryName="enc/src")
    ecr.create_repository(repositoryName="enc/dst", encryptionConfiguration={"encryptionType": "KMS", "kmsKey": kms_key_id})
    img = images.build_image(str(tmp_path / "layout"), "v1", random_size=MiB, with_busybox=False)
    push(b, img, "enc/src")
    return img


def kms_error(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["Error"]["Code"], r.get("kmsError"), r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def denied_message(resp):
    assert_error(resp, 403, "DENIED")
    return resp.json()["errors"][0]["message"]


# --- tests -------------------------------------------------------------------------------------

def test_aws_cli_kms_and_aes256_repositories_keep_no_plaintext_on_disk(fresh_berth, tmp_path):
    b = fresh_berth
    key, alias = kms_key(b, tmp_path)
    aws_repository(b, tmp_path, "enc/kms", "KMS", key, alias)
    _, described = aws(b, tmp_path, "ecr", "describe-repositories", "--repository-names", "enc/kms")
    assert described["repositories"][0]["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key["Arn"]}, \
        "the key's ARN, not the alias it was named by"
    _, made = aws(b, tmp_path, "ecr", "create-repository", "--repository-name", "enc/default")
    assert made["repository"]["encryptionConfiguration"] == {"encryptionType": "AES256"}

    layout = str(tmp_path / "layout")
    in_kms = images.build_image(layout, "kms", random_size=3 * MiB, with_busybox=False)
    in_aes = images.build_image(layout, "aes", random_size=2 * MiB, with_busybox=False)
    push(b, in_kms, "enc/kms")
    push(b, in_aes, "enc/default")

    layer = in_kms.layer_digests[0]
    obj = sealed_object(b.data_dir, f"kms:{key['Arn']}", layer)
    size = len(images.read_blob(layout, layer))
    assert os.path.getsize(obj) > size, "the layer is stored as an object under the repository's key"
    assert os.path.exists(sealed_object(b.data_dir, "aes256", in_aes.layer_digests[0]))
    assert [f for _, _, files in os.walk(os.path.join(b.data_dir, "blobs")) for f in files] == [], "nothing in clear"

    pt = image_plaintexts(in_kms)
    image_plaintexts(in_aes, pt)
    assert {h[2] for h in pt.found_under(layout)} == set(pt.labels), "the scan finds the blobs where they are in clear"
    pt.assert_absent(b.data_dir)

    assert_pulls_intact(b, in_kms, "enc/kms", str(tmp_path / "pulled-kms"))
    assert_pulls_intact(b, in_aes, "enc/default", str(tmp_path / "pulled-aes"))
    assert_fsck(b)
    pt.assert_absent(b.data_dir)  # nothing in clear in the database's files either, once checkpointed


def test_a_disabled_or_deleted_key_stops_its_repositories_only(fresh_berth, tmp_path):
    b = fresh_berth
    key, alias = kms_key(b, tmp_path)
    ecr = b.ecr()
    ecr.create_repository(repositoryName="enc/locked", encryptionConfiguration={"encryptionType": "KMS", "kmsKey": alias})
    ecr.create_repository(repositoryName="enc/open")
    layout = str(tmp_path / "layout")
    locked_img = images.build_image(layout, "locked", random_size=MiB, with_busybox=False)
    open_img = images.build_image(layout, "open", random_size=MiB, with_busybox=False)
    later = images.build_image(layout, "later", random_size=256 * 1024, with_busybox=False)
    push(b, locked_img, "enc/locked")
    push(b, open_img, "enc/open")
    reg = Registry(b.url, token=b.token())
    layer = locked_img.layer_digests[0]
    layer_bytes = images.read_blob(layout, layer)
    blob_url = f"/v2/enc/locked/blobs/{layer}"
    assert reg.get(blob_url).content == layer_bytes

    aws(b, tmp_path, "kms", "disable-key", "--key-id", alias)
    message = denied_message(reg.get(blob_url))
    assert key["Arn"] in message and "disabled" in message, message
    ranged = reg.get(blob_url, headers={"Range": "bytes=0-99"})
    assert "disabled" in denied_message(ranged)
    assert "disabled" in denied_message(reg.post("/v2/enc/locked/blobs/uploads/"))
    pushed = push(b, later, "enc/locked", tag="later", check=False)
    assert pushed.returncode != 0 and "denied" in pushed.stderr and "disabled" in pushed.stderr, pushed.stderr
    pulled = skopeo_copy(b, "docker://%s/enc/locked:v1" % b.addr, f"dir:{tmp_path}/refused", check=False)
    assert pulled.returncode != 0 and "403" in pulled.stderr, pulled.stderr  # skopeo shows no body for blob GETs

    # What ECR API callers see: metadata (manifests, layer availability) is not encrypted and
    # still answers; anything that writes or reads blob bytes names the key's problem.
    got = ecr.batch_get_image(repositoryName="enc/locked", imageIds=[{"imageTag": "v1"}])
    assert got["images"][0]["imageManifest"].encode() == locked_img.manifest_bytes
    code, why, msg, status = kms_error(ecr.initiate_layer_upload, repositoryName="enc/locked")
    assert (code, why, status) == ("KmsException", "DisabledException", 400) and key["Arn"] in msg, msg
    url = ecr.get_download_url_for_layer(repositoryName="enc/locked", layerDigest=layer)["downloadUrl"]
    r = requests.get(url, timeout=60)
    assert "disabled" in denied_message(r), "the download URL is refused while the key is disabled"

    # Other repositories (another key) work on.
    assert reg.get(f"/v2/enc/open/blobs/{open_img.layer_digests[0]}").status_code == 200
    assert_pulls_intact(b, open_img, "enc/open", str(tmp_path / "open-pulled"))
    push(b, later, "enc/open", tag="later")

    aws(b, tmp_path, "kms", "enable-key", "--key-id", key["KeyId"])
    assert reg.get(blob_url).content == layer_bytes
    assert requests.get(url, timeout=60).content == layer_bytes
    assert_pulls_intact(b, locked_img, "enc/locked", str(tmp_path / "pulled-after-enable"))
    push(b, later, "enc/locked", tag="later")

    aws(b, tmp_path, "kms", "schedule-key-deletion", "--key-id", key["KeyId"], "--pending-window-in-days", "7")
    message = denied_message(reg.get(blob_url))
    assert "pending deletion" in message, message
    pulled = skopeo_copy(b, "docker://%s/enc/locked:later" % b.addr, f"dir:{tmp_path}/refused2", check=False)
    assert pulled.returncode != 0 and "403" in pulled.stderr, pulled.stderr
    code, why, _, _ = kms_error(ecr.initiate_layer_upload, repositoryName="enc/locked")
    assert (code, why) == ("KmsException", "KMSInvalidStateException")
    assert reg.get(f"/v2/enc/open/blobs/{open_img.layer_digests[0]}").status_code == 200

    # A cancelled deletion leaves the key disabled (as AWS KMS does): still refused until enabled.
    aws(b, tmp_path, "kms", "cancel-key-deletion", "--key-id", key["KeyId"])
    assert "disabled" in denied_message(reg.get(blob_url))
    aws(b, tmp_path, "kms", "enable-key", "--key-id", key["KeyId"])
    assert_pulls_intact(b, later, "enc/locked", str(tmp_path / "pulled-after-cancel"), tag="later")


@pytest.mark.parametrize("encryption", ["AES256", "KMS", "KMS_DSSE"])
def test_range_reads_across_segment_boundaries(berth, repo, encryption):
    config = {"encryptionType": encryption}
    if encryption != "AES256":
        config["kmsKey"] = kms(berth).create_key()["KeyMetadata"]["Arn"]
    berth.ecr().create_repository(repositoryName=repo, encryptionConfiguration=config)
    reg = Registry(berth.url, token=berth.token())
    data = os.urandom(3 * SEGMENT + 1234)
    digest = sha256(data)
    reg.upload_chunked(repo, data, chunk=50_000)  # requests that end mid-segment
    n = len(data)
    cases = {
        "bytes=65530-65545": (65530, 65545),  # across the first boundary
        "bytes=0-0": (0, 0),
        "bytes=65536-131071": (65536, 131071),  # exactly one segment
        "bytes=131000-190000": (131000, 190000),  # across two boundaries
        f"bytes={3 * SEGMENT - 1}-{3 * SEGMENT}": (3 * SEGMENT - 1, 3 * SEGMENT),  # into the short last segment
        "bytes=-100": (n - 100, n - 1),  # a suffix
        f"bytes=-{SEGMENT + 10}": (n - SEGMENT - 10, n - 1),  # a suffix longer than the last segment
        "bytes=65540-": (65540, n - 1),  # to the end
        f"bytes={n - 1}-": (n - 1, n - 1),
        f"bytes=100-{n + 5000}": (100, n - 1),  # an end past the blob is cut to it
    }
    for header, (start, end) in cases.items():
        r = reg.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
        assert r.status_code == 206, (header, r.status_code, r.text[:300])
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{n}", (header, r.headers)
        assert int(r.headers["Content-Length"]) == end - start + 1, header
        assert r.content == data[start:end + 1], header
    r = reg.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={n}-"})
    assert r.status_code == 416, r.status_code
    assert reg.get(f"/v2/{repo}/blobs/{digest}").content == data


# A body cut short (fewer bytes than Content-Length), or the connection closed before any answer.
CUT_SHORT = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


def flip_a_byte(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))


def pushed_and_tampered(b, tmp_path):
    """An image pushed into an AES256 repository, then one byte in the middle of its layer's
    stored object flipped: (image, layer digest, layer bytes)."""
    b.ecr().create_repository(repositoryName="enc/tamper")
    layout = str(tmp_path / "layout")
    img = images.build_image(layout, "v1", random_size=2 * MiB, with_busybox=False)
    layer = img.layer_digests[0]
    original = images.read_blob(layout, layer)
    push(b, img, "enc/tamper")
    obj = sealed_object(b.data_dir, "aes256", layer)
    assert os.path.getsize(obj) > len(original)
    flip_a_byte(obj, os.path.getsize(obj) // 2)
    return img, layer, original


def test_a_changed_stored_byte_is_never_served_as_intact(fresh_berth, tmp_path):
    b = fresh_berth
    img, layer, original = pushed_and_tampered(b, tmp_path)

    # curl checks no digest: it must see a failed transfer, never a complete body.
    out = tmp_path / "curl.out"
    p = run("curl", "-sS", "-o", str(out), "-H", f"Authorization: {basic_auth(b.token())}",
            f"{b.url}/v2/enc/tamper/blobs/{layer}", check=False)
    assert p.returncode in (18, 56), f"curl should report a cut-short transfer, got {p.returncode}: {p.stderr}"
    # curl writes no file when not one byte arrived: a blob read in 2 MiB frames whose first frame
    # holds the altered segment is cut before its first byte (the frame is opened whole).
    got = out.read_bytes() if out.exists() else b""
    assert len(got) < len(original) and got == original[:len(got)], "what was sent is authentic, and short"
    reg = Registry(b.url, token=b.token())
    # Once a read found it altered, the blob answers as missing (as a corrupt clear blob does),
    # so clients push it again; no range of it is served.
    for headers in ({}, {"Range": "bytes=0-99"}):
        assert_error(reg.get(f"/v2/enc/tamper/blobs/{layer}", headers=headers), 404, "BLOB_UNKNOWN")
    assert reg.head(f"/v2/enc/tamper/blobs/{layer}").status_code == 404
    assert skopeo_copy(b, f"docker://{b.addr}/enc/tamper:v1", f"dir:{tmp_path}/bad", check=False).returncode != 0

    report = assert_fsck(b, clean=False)
    assert any(layer in pr and "authentication" in pr for pr in report["problems"]), report

    # Uploading the blob again writes a new object over the altered one.
    b.start(listen=b.addr)
    reg = Registry(b.url, token=b.token())
    r = reg.post(f"/v2/enc/tamper/blobs/uploads/?digest={layer}", data=original,
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert reg.get(f"/v2/enc/tamper/blobs/{layer}").content == original
    assert_pulls_intact(b, img, "enc/tamper", str(tmp_path / "pulled"))
    assert_fsck(b)


def test_a_push_of_the_image_restores_a_layer_that_failed_authentication(fresh_berth, tmp_path):
    """As with a corrupt clear blob (test_integrity.py): once a read found the stored object
    altered, the layer is reported missing, so a client pushing the image again uploads it."""
    b = fresh_berth
    img, layer, original = pushed_and_tampered(b, tmp_path)
    reg = Registry(b.url, token=b.token())
    with pytest.raises(CUT_SHORT):
        reg.get(f"/v2/enc/tamper/blobs/{layer}")

    check = b.ecr().batch_check_layer_availability(repositoryName="enc/tamper", layerDigests=[layer])
    assert [(f["layerDigest"], f["failureCode"]) for f in check["failures"]] == [(layer, "MissingLayerDigest")], check
    assert reg.head(f"/v2/enc/tamper/blobs/{layer}").status_code == 404
    push(b, img, "enc/tamper")
    assert reg.get(f"/v2/enc/tamper/blobs/{layer}").content == original
    assert_pulls_intact(b, img, "enc/tamper", str(tmp_path / "pulled"))


def test_berth_encrypt_offline_seals_a_clear_data_dir(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--aes256-by-storage"]).start()
    try:
        b.ecr().create_repository(repositoryName="enc/old")
        layout = str(tmp_path / "layout")
        img = images.build_image(layout, "v1", random_size=2 * MiB, with_busybox=False)
        push(b, img, "enc/old")
        b.stop()
        pt = image_plaintexts(img)
        clear = os.path.join(b.data_dir, "blobs")
        assert {h[2] for h in pt.found_under(clear)} == set(pt.labels), "stored in clear before `berth encrypt`"

        p = b.cli("encrypt", "--data-dir", b.data_dir, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        report = json.loads(p.stdout)
        assert (report["sealed"], report["clear_removed"], report["failed"]) == (2, 2, []), report
        assert report["bytes"] == sum(len(images.read_blob(layout, d)) for d in [img.config_digest, *img.layer_digests])
        pt.assert_absent(b.data_dir)
        assert os.path.exists(sealed_object(b.data_dir, "aes256", img.layer_digests[0]))
        again = json.loads(b.cli("encrypt", "--data-dir", b.data_dir).stdout)
        assert (again["sealed"], again["clear_removed"]) == (0, 0), again

        b.extra_args = []
        b.start(listen=b.addr)
        assert_pulls_intact(b, img, "enc/old", str(tmp_path / "pulled"))
        assert_fsck(b)
    finally:
        b.stop()


def test_berth_encrypt_online_seals_clear_blobs_of_every_key(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--aes256-by-storage"]).start()
    try:
        key = kms(b).create_key()["KeyMetadata"]["Arn"]
        img = pushed_to_aes256_beside_kms(b, tmp_path, key)
        layout = img.layout
        # The same layer mounted into a KMS repository is sealed there at once (another key).
        reg = Registry(b.url, token=b.token())
        layer = img.layer_digests[0]
        r = reg.post(f"/v2/enc/dst/blobs/uploads/?mount={layer}&from=enc/src")
        assert r.status_code == 201, r.text
        assert os.path.exists(sealed_object(b.data_dir, f"kms:{key}", layer))
        pt = image_plaintexts(img)
        assert {h[2] for h in pt.found_under(os.path.join(b.data_dir, "blobs"))} == set(pt.labels)

        b.extra_args = []
        b.restart()
        url = b.url + "/_berth/encrypt"
        assert requests.post(url, timeout=60).status_code == 401
        reader = b.token(*b.create_user("reader", policy="ReadOnly"))
        assert requests.post(url, headers={"Authorization": basic_auth(reader)}, timeout=60).status_code == 403
        r = requests.post(url, headers={"Authorization": basic_auth(b.token())}, timeout=300)
        assert r.status_code == 200, r.text
        report = r.json()
        assert (report["sealed"], report["clear_removed"], report["failed"]) == (2, 2, []), report
        pt.assert_absent(b.data_dir)
        assert_pulls_intact(b, img, "enc/src", str(tmp_path / "pulled"))
        assert Registry(b.url, token=b.token()).get(f"/v2/enc/dst/blobs/{layer}").content == images.read_blob(layout, layer)
        r = requests.post(url, headers={"Authorization": basic_auth(b.token())}, timeout=300)
        assert (r.json()["sealed"], r.json()["clear_removed"]) == (0, 0), r.text
        assert_fsck(b)
        pt.assert_absent(b.data_dir)
    finally:
        b.stop()


def test_kms_dsse_repository_round_trip(fresh_berth, tmp_path):
    b = fresh_berth
    key, alias = kms_key(b, tmp_path)
    aws_repository(b, tmp_path, "enc/dsse", "KMS_DSSE", key, alias)
    layout = str(tmp_path / "layout")
    img = images.build_image(layout, "v1", random_size=2 * MiB, with_busybox=False)
    push(b, img, "enc/dsse")
    layer = img.layer_digests[0]
    obj = sealed_object(b.data_dir, f"dsse:{key['Arn']}", layer)
    one_layer = sealed_object(b.data_dir, f"kms:{key['Arn']}", layer)
    assert os.path.getsize(obj) > len(images.read_blob(layout, layer)) and not os.path.exists(one_layer)
    image_plaintexts(img).assert_absent(b.data_dir)
    assert_pulls_intact(b, img, "enc/dsse", str(tmp_path / "pulled"))
    aws(b, tmp_path, "kms", "disable-key", "--key-id", alias)
    assert "disabled" in denied_message(Registry(b.url, token=b.token()).get(f"/v2/enc/dsse/blobs/{layer}"))


def test_a_mount_across_keys_is_resealed_under_the_target_key(fresh_berth, tmp_path):
    b = fresh_berth
    key, alias = kms_key(b, tmp_path)
    img = pushed_to_aes256_beside_kms(b, tmp_path, alias)
    layout = img.layout
    layer = img.layer_digests[0]
    data = images.read_blob(layout, layer)
    reg = Registry(b.url, token=b.token())
    r = reg.post(f"/v2/enc/dst/blobs/uploads/?mount={layer}&from=enc/src")
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == layer and r.headers["Location"].endswith(f"/v2/enc/dst/blobs/{layer}")
    assert os.path.exists(sealed_object(b.data_dir, f"kms:{key['Arn']}", layer)), "re-sealed under the target's key"
    assert reg.get(f"/v2/enc/dst/blobs/{layer}").content == data
    # The rest of the image by skopeo (the layer is there already), then a pull through the KMS repository.
    push(b, img, "enc/dst")
    assert_pulls_intact(b, img, "enc/dst", str(tmp_path / "pulled"))
    image_plaintexts(img).assert_absent(b.data_dir)

    aws(b, tmp_path, "kms", "disable-key", "--key-id", alias)
    assert "disabled" in denied_message(reg.get(f"/v2/enc/dst/blobs/{layer}"))
    assert reg.get(f"/v2/enc/src/blobs/{layer}").content == data, "the same digest under the registry's key"


def test_two_nodes_with_one_root_key_share_kms_encrypted_images(infra, tmp_path):
    root_key = os.urandom(32).hex()
    # Presigned redirects are on: they must never be given for sealed objects.
    c = Cluster(infra, tmp_path, env={"BERTH_ROOT_KEY": root_key, "BERTH_S3_PRESIGN_SECONDS": "300"})
    try:
        a, b = c.nodes
        key = kms(a).create_key()["KeyMetadata"]["Arn"]
        a.ecr().create_repository(repositoryName="enc/cluster",
                                  encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key})
        layout = str(tmp_path / "layout")
        img = images.build_image(layout, "v1", random_size=3 * MiB, with_busybox=False)
        push(a, img, "enc/cluster")
        assert_pulls_intact(b, img, "enc/cluster", str(tmp_path / "pulled-b"))
        reg_b = Registry(b.url, token=b.token())
        layer = img.layer_digests[0]
        data = images.read_blob(layout, layer)
        r = reg_b.get(f"/v2/enc/cluster/blobs/{layer}", headers={"Range": "bytes=65530-65545"})
        assert r.status_code == 206 and r.content == data[65530:65546]
        # Sealed blobs are streamed through berth, never redirected to the bucket in clear.
        r = reg_b.get(f"/v2/enc/cluster/blobs/{layer}")
        assert r.status_code == 200 and r.content == data, (r.status_code, r.headers)
        url = a.ecr().get_download_url_for_layer(repositoryName="enc/cluster", layerDigest=layer)["downloadUrl"]
        assert not url.startswith(c.s3.endpoint), url
        assert requests.get(url, timeout=60).content == data

        bucket = os.path.join(c.s3.dir, "root", c.s3.bucket, c.prefix)
        pt = image_plaintexts(img)
        pt.assert_absent(bucket, a.data_dir, b.data_dir)
        sealed = [f for _, _, files in os.walk(os.path.join(bucket, "sealed")) for f in files]
        assert len(sealed) >= 2, sealed
        assert not os.path.exists(os.path.join(a.data_dir, "root.key")), "the key came from BERTH_ROOT_KEY"

        # Disabled through a node, the key stops that node at once.
        kms(b).disable_key(KeyId=key)
        assert "disabled" in denied_message(reg_b.get(f"/v2/enc/cluster/blobs/{layer}"))
    finally:
        c.stop()



def test_a_node_given_another_root_key_refuses_to_start(fresh_berth):
    """Another root key than the data's would fail every pull: berth refuses to start, naming
    the root key, and starts again once given the right one."""
    b = fresh_berth
    Registry(b.url, token=b.token()).upload_blob("enc/rootkey", os.urandom(100_000))
    b.stop()
    key_file = os.path.join(b.data_dir, "root.key")
    with open(key_file, "rb") as f:
        right = f.read()
    with open(key_file, "wb") as f:
        f.write(os.urandom(32))
    with pytest.raises(RuntimeError):
        b.start()
    b.proc.wait(timeout=30)
    assert b.proc.returncode != 0
    with open(b.log_path, errors="replace") as f:
        log = f.read()
    assert "root key" in log and "does not open the data" in log, log[-2000:]
    with open(key_file, "wb") as f:
        f.write(right)
    b.start()
    assert Registry(b.url, token=b.token()).get("/v2/").status_code == 200
