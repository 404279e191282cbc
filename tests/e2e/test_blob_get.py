"""Blob GETs served from the page cache (the filesystem store's mapped reader): whole blobs and
ranges are byte-exact across its 2 MiB chunks, ranges answer 206/416 as RFC 9110 says, several
ranges in one header get the whole blob (200, which the spec allows), a blob that GC deletes
while it is being downloaded still arrives whole, and skopeo pulls images with their digests.

These servers run with `--aes256-by-storage`, so blobs are stored in clear (the mapped path);
encrypted blobs go through the sealed reader (test_encryption.py)."""
import hashlib
import http.client
import os
import subprocess

import pytest

from conftest import Berth
from httputil import Registry, assert_error, assert_status, basic_auth, blob_file, describe, sha256
from images import build_image, blob_path

MiB = 1024 * 1024
CLEAR = ["--aes256-by-storage"]


@pytest.fixture(scope="module")
def clear_berth(tmp_path_factory):
    b = Berth(str(tmp_path_factory.mktemp("blob-get") / "data"), extra_args=CLEAR).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def big(clear_berth):
    """A 5 MiB + 123 byte blob (three mapped chunks, the last one short), stored in clear."""
    reg = Registry(clear_berth.url)
    data = os.urandom(5 * MiB + 123)
    digest = sha256(data)
    reg.upload_blob("get/big", data)
    assert os.path.isfile(os.path.join(clear_berth.data_dir, "blobs", "sha256", digest[7:9], digest[7:])), \
        "the blob is not stored in clear: these tests would not exercise the mapped reader"
    return reg, digest, data


def test_whole_blob_is_byte_exact(big):
    reg, digest, data = big
    r = reg.get(f"/v2/get/big/blobs/{digest}")
    assert_status(r, 200)
    assert r.headers["Content-Length"] == str(len(data)), describe(r)
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.content == data


# (Range header, first byte, last byte) on a 5 MiB + 123 byte blob; chunks end at 2 and 4 MiB.
RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=1-4096", 1, 4096),
    ("bytes=4095-4097", 4095, 4097),
    ("bytes=2097151-2097152", 2 * MiB - 1, 2 * MiB),
    ("bytes=12345-4200000", 12345, 4200000),
    ("bytes=2097152-", 2 * MiB, 5 * MiB + 122),
    ("bytes=-1", 5 * MiB + 122, 5 * MiB + 122),
    ("bytes=-1000000", 5 * MiB + 123 - 1000000, 5 * MiB + 122),
    ("bytes=5242880-99999999", 5 * MiB, 5 * MiB + 122),
    ("bytes=0-", 0, 5 * MiB + 122),
]


@pytest.mark.parametrize("header,first,last", RANGES)
def test_range_is_byte_exact(big, header, first, last):
    reg, digest, data = big
    r = reg.get(f"/v2/get/big/blobs/{digest}", headers={"Range": header})
    assert_status(r, 206)
    assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}", describe(r)
    assert r.headers["Content-Length"] == str(last - first + 1), describe(r)
    assert r.content == data[first:last + 1], f"{header}: wrong bytes"


@pytest.mark.parametrize("header", ["bytes=5243003-", "bytes=99999999-", "bytes=10-5", "bytes=-0", "bytes=x-1"])
def test_unsatisfiable_range_is_416(big, header):
    reg, digest, data = big
    r = reg.get(f"/v2/get/big/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 416, f"{header}: {describe(r)}"
    assert r.headers.get("Content-Range") == f"bytes */{len(data)}", describe(r)


def test_several_ranges_get_the_whole_blob(big):
    """berth serves one range per request; a multi-range header is answered with the whole blob
    (200), which RFC 9110 allows a server that ignores Range to do."""
    reg, digest, data = big
    r = reg.get(f"/v2/get/big/blobs/{digest}", headers={"Range": "bytes=0-9,100-199"})
    assert_status(r, 200)
    assert "Content-Range" not in r.headers, describe(r)
    assert r.content == data


def test_a_range_of_a_missing_blob_is_blob_unknown(big):
    reg, _, _ = big
    missing = "sha256:" + "ab" * 32
    r = reg.get(f"/v2/get/big/blobs/{missing}", headers={"Range": "bytes=0-9"})
    assert_error(r, 404, "BLOB_UNKNOWN")


def test_a_blob_gc_deletes_mid_download_arrives_whole(tmp_path):
    """The download holds the file open; GC unlinks it (the only way berth removes a committed
    blob), and the rest of the bytes still arrive, matching the digest, and berth keeps serving."""
    b = Berth(str(tmp_path / "data"), extra_args=CLEAR).start()
    try:
        reg = Registry(b.url)
        data = os.urandom(48 * MiB)
        digest = sha256(data)
        reg.upload_blob("gc/mid", data)
        path = blob_file(b.data_dir, digest)
        assert path.startswith(os.path.join(b.data_dir, "blobs")), path
        conn = http.client.HTTPConnection(b.addr, timeout=60)
        conn.request("GET", f"/v2/gc/mid/blobs/{digest}", headers={"Authorization": basic_auth(b.token())})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        h = hashlib.sha256()
        first = resp.read(4 * MiB)  # berth is now blocked on the socket, the rest not yet sent
        h.update(first)
        # The blob is only linked (no manifest): unlinking it leaves it to GC, which removes it.
        assert_status(reg.delete(f"/v2/gc/mid/blobs/{digest}"), 202)
        r = reg.post("/_berth/gc?dry_run=false&grace_seconds=0", timeout=300)
        assert_status(r, 200)
        assert r.json()["blobs_deleted"] >= 1, r.text
        assert not os.path.exists(path), "GC did not remove the blob file"
        got = len(first)
        while chunk := resp.read(MiB):
            h.update(chunk)
            got += len(chunk)
        conn.close()
        assert got == len(data)
        assert "sha256:" + h.hexdigest() == digest, "the download changed when GC removed its blob"
        assert b.proc.poll() is None, "berth died"
        assert_error(reg.get(f"/v2/gc/mid/blobs/{digest}"), 404, "BLOB_UNKNOWN")
        small = os.urandom(1000)
        d2 = sha256(small)
        reg.upload_blob("gc/mid", small)
        assert reg.get(f"/v2/gc/mid/blobs/{d2}").content == small
    finally:
        b.stop()


def test_skopeo_pull_gets_the_pushed_digests(tmp_path, clear_berth):
    layout = str(tmp_path / "layout")
    # A layer of several chunks (random, so it does not compress below one).
    img = build_image(layout, "v1", random_size=6 * MiB, with_busybox=False)
    creds = f"AWS:{clear_berth.token()}"
    ref = f"docker://{clear_berth.addr}/get/skopeo:v1"

    def skopeo(*args):
        p = subprocess.run(["skopeo", *args], capture_output=True, text=True)
        assert p.returncode == 0, f"skopeo {' '.join(args)}\n{p.stderr[-3000:]}"
        return p

    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:v1", ref)
    out = str(tmp_path / "pulled")
    skopeo("copy", "--src-tls-verify=false", "--src-creds", creds, ref, f"oci:{out}:v1")
    for layer in img.layer_digests:
        pulled = open(blob_path(out, layer), "rb").read()
        assert sha256(pulled) == layer
        assert pulled == open(blob_path(layout, layer), "rb").read()
    # The layer went through the mapped reader: it is stored in clear.
    assert blob_file(clear_berth.data_dir, img.layer_digests[0]).startswith(os.path.join(clear_berth.data_dir, "blobs"))
    reg = Registry(clear_berth.url)
    r = reg.get(f"/v2/get/skopeo/blobs/{img.layer_digests[0]}", headers={"Range": "bytes=1000-2000999"})
    assert_status(r, 206)
    assert r.content == open(blob_path(layout, img.layer_digests[0]), "rb").read()[1000:2001000]
