"""Conformance tests for berth's OCI Distribution Spec v1.1 HTTP API.

Quotes in docstrings are from opencontainers/distribution-spec spec.md (v1.1).
Names like `team/tXXXXXXXXXX` come from the `repo` fixture (conftest.py).
"""
import hashlib
import json
import os
import re
import urllib.parse
import uuid

import requests

import pytest

from httputil import (
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, MANIFEST_LIMIT, OCI_CONFIG, OCI_EMPTY,
    OCI_EMPTY_BYTES, OCI_EMPTY_DIGEST, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Registry, assert_error,
    assert_status, assert_stored_encrypted, blob_file, describe, descriptor, error_codes, next_link, parse_range, raw_request,
    sha256, sha512,
)


@pytest.fixture
def reg(berth):
    return Registry(berth.url, token=berth.token())


def _upload_uuid_in_location(r):
    uid = r.headers.get("Docker-Upload-UUID")
    assert uid, f"missing Docker-Upload-UUID: {describe(r)}"
    assert uid in r.headers["Location"], f"Docker-Upload-UUID not in Location: {describe(r)}"
    return uid


def _assert_blob(reg, name, data, digest=None):
    digest = digest or sha256(data)
    h = reg.head(f"/v2/{name}/blobs/{digest}")
    assert_status(h, 200)
    assert h.headers.get("Content-Length") == str(len(data)), describe(h)
    assert h.headers.get("Docker-Content-Digest") == digest, describe(h)
    g = reg.get(f"/v2/{name}/blobs/{digest}")
    assert_status(g, 200)
    assert g.content == data, f"blob body differs for {digest}"
    assert g.headers.get("Docker-Content-Digest") == digest, describe(g)
    assert g.headers.get("Content-Length") == str(len(data)), describe(g)


# ==========================================================================
# base
# ==========================================================================
def test_v2_base(reg):
    """end-1 `GET /v2/` -> 200; "the "Docker-Distribution-API-Version" header SHOULD be set to "registry/2.0"."""
    r = reg.get("/v2/")
    assert_status(r, 200)
    assert r.headers.get("Docker-Distribution-Api-Version") == "registry/2.0", describe(r)
    r = reg.get("/v2")
    assert r.status_code in (200, 301, 308, 404), describe(r)


def test_error_body_shape(reg, repo):
    r = reg.get(f"/v2/{repo}/manifests/latest")
    assert_error(r, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")
    assert r.headers.get("Content-Type", "").startswith("application/json"), describe(r)
    for e in r.json()["errors"]:
        assert set(e) <= {"code", "message", "detail"}, describe(r)


# ==========================================================================
# blobs
# ==========================================================================
def test_blob_post_put_head_get(reg, repo):
    data = os.urandom(3000)
    d = sha256(data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert_status(r, 202)
    assert r.headers.get("Location"), describe(r)
    _upload_uuid_in_location(r)
    r = reg.put(reg.with_query(r.headers["Location"], digest=d), data=data,
                headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 201)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Docker-Content-Digest") == d, describe(r)
    # "<blob-location> being a pullable blob URL"
    g = reg.get(r.headers["Location"])
    assert_status(g, 200)
    assert g.content == data
    _assert_blob(reg, repo, data)
    h = reg.head(f"/v2/{repo}/blobs/{d}")
    assert h.content == b""


def test_blob_single_post_monolithic(reg, repo):
    data = os.urandom(5000)
    d = sha256(data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/?digest={d}", data=data,
                 headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 201)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Docker-Content-Digest") == d, describe(r)
    _assert_blob(reg, repo, data)


def test_blob_single_post_digest_mismatch(reg, repo):
    data = os.urandom(100)
    wrong = sha256(b"something else")
    r = reg.post(f"/v2/{repo}/blobs/uploads/?digest={wrong}", data=data,
                 headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "DIGEST_INVALID")
    assert_status(reg.head(f"/v2/{repo}/blobs/{wrong}"), 404)
    assert_status(reg.head(f"/v2/{repo}/blobs/{sha256(data)}"), 404)


def test_blob_range_requests(reg, repo):
    """"A registry SHOULD support the `Range` request header in accordance with RFC 9110"."""
    data = os.urandom(1000)
    d = sha256(data)
    reg.upload_blob(repo, data)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=10-19"})
    assert_status(r, 206)
    assert r.content == data[10:20]
    assert r.headers.get("Content-Range") == "bytes 10-19/1000", describe(r)
    assert r.headers.get("Content-Length") == "10", describe(r)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=990-"})
    assert_status(r, 206)
    assert r.content == data[990:]
    assert r.headers.get("Content-Range") == "bytes 990-999/1000", describe(r)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=-5"})
    assert_status(r, 206)
    assert r.content == data[-5:]
    assert r.headers.get("Content-Range") == "bytes 995-999/1000", describe(r)
    # last-byte-pos past the end is clamped (RFC 9110 14.1.2)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=900-5000"})
    assert_status(r, 206)
    assert r.content == data[900:]
    # unsatisfiable: first-byte-pos >= length -> 416 with Content-Range: bytes */len
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=1000-1010"})
    assert_status(r, 416)
    assert r.headers.get("Content-Range") == "bytes */1000", describe(r)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": "bytes=5000-"})
    assert_status(r, 416)


def test_blob_delete(reg, repo):
    """"Upon success, the registry MUST respond with code `202 Accepted`. If the blob is not found, a `404`"."""
    data = os.urandom(200)
    d = sha256(data)
    reg.upload_blob(repo, data)
    r = reg.delete(f"/v2/{repo}/blobs/{d}")
    assert_status(r, 202)
    assert_status(reg.head(f"/v2/{repo}/blobs/{d}"), 404)
    assert_error(reg.get(f"/v2/{repo}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    assert_error(reg.delete(f"/v2/{repo}/blobs/{d}"), 404, "BLOB_UNKNOWN")


def test_blob_unknown(reg, repo):
    reg.upload_blob(repo, os.urandom(10))  # make the repository exist
    d = sha256(os.urandom(16))
    r = reg.head(f"/v2/{repo}/blobs/{d}")
    assert_status(r, 404)
    assert r.content == b""
    assert_error(reg.get(f"/v2/{repo}/blobs/{d}"), 404, "BLOB_UNKNOWN")


def test_blob_not_visible_in_other_repo(reg, repo):
    """Blobs are deduplicated on disk, but a repository only sees what was pushed/mounted into it."""
    other = repo + "-other"
    data = os.urandom(512)
    d = sha256(data)
    reg.upload_blob(repo, data)
    reg.upload_blob(other, os.urandom(8))  # other exists, but never received `data`
    assert_status(reg.head(f"/v2/{other}/blobs/{d}"), 404)
    assert_error(reg.get(f"/v2/{other}/blobs/{d}"), 404, "BLOB_UNKNOWN")
    # a repository that does not exist at all
    assert_status(reg.head(f"/v2/{repo}-nope/blobs/{d}"), 404)
    assert_error(reg.get(f"/v2/{repo}-nope/blobs/{d}"), 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


def test_blob_delete_is_per_repo(reg, repo):
    """Deleting a deduplicated blob from one repository must not remove it from another."""
    other = repo + "-b"
    data = os.urandom(700)
    d = sha256(data)
    reg.upload_blob(repo, data)
    reg.upload_blob(other, data)
    assert_status(reg.delete(f"/v2/{repo}/blobs/{d}"), 202)
    assert_status(reg.head(f"/v2/{repo}/blobs/{d}"), 404)
    _assert_blob(reg, other, data)


# ==========================================================================
# uploads
# ==========================================================================
def test_mount_from_repo_that_has_blob(reg, repo):
    src = repo + "-src"
    data = os.urandom(900)
    d = sha256(data)
    reg.upload_blob(src, data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/?mount={d}&from={src}")
    assert_status(r, 201)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Docker-Content-Digest") == d, describe(r)
    _assert_blob(reg, repo, data)


def test_mount_missing_blob_starts_session(reg, repo):
    """"if a registry ... is unable to mount the requested blob, it SHOULD return a `202`"."""
    src = repo + "-src"
    reg.upload_blob(src, os.urandom(50))
    data = os.urandom(300)
    d = sha256(data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/?mount={d}&from={src}")
    assert_status(r, 202)
    assert r.headers.get("Location"), describe(r)
    _upload_uuid_in_location(r)
    r = reg.put(reg.with_query(r.headers["Location"], digest=d), data=data,
                headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 201)
    _assert_blob(reg, repo, data)


def test_mount_does_not_leak_blob_from_unrelated_repo(reg, repo):
    """The blob exists on disk (pushed to repo A), but `from=` names repo B which lacks it."""
    a, b = repo + "-a", repo + "-b"
    data = os.urandom(333)
    d = sha256(data)
    reg.upload_blob(a, data)
    reg.upload_blob(b, os.urandom(5))
    r = reg.post(f"/v2/{repo}/blobs/uploads/?mount={d}&from={b}")
    assert r.status_code in (202, 404) and r.status_code != 201, describe(r)
    assert_status(reg.head(f"/v2/{repo}/blobs/{d}"), 404)


def _streamed(data, piece=7000):
    def gen():
        for i in range(0, len(data), piece):
            yield data[i:i + piece]
    return gen()


def test_upload_patch_streamed(reg, repo):
    """Stream-mode PATCH (no Content-Range, chunked transfer encoding)."""
    data = os.urandom(150_000)
    d = sha256(data)
    r = reg.start_upload(repo)
    loc = r.headers["Location"]
    r = reg.patch(loc, data=_streamed(data[:100_000]), headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 202)
    assert r.headers.get("Location"), describe(r)
    assert parse_range(r.headers.get("Range")) == 99_999, describe(r)
    _upload_uuid_in_location(r)
    loc = r.headers["Location"]
    r = reg.patch(loc, data=_streamed(data[100_000:]), headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 202)
    assert parse_range(r.headers.get("Range")) == len(data) - 1, describe(r)
    r = reg.put(reg.with_query(r.headers["Location"], digest=d))
    assert_status(r, 201)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Docker-Content-Digest") == d, describe(r)
    _assert_blob(reg, repo, data)


def test_upload_chunked_with_content_range_and_status(reg, repo):
    data = os.urandom(10_000)
    d = sha256(data)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.get(loc)
    assert_status(r, 204)
    assert r.headers.get("Location"), describe(r)
    for start in range(0, len(data), 3000):
        part = data[start:start + 3000]
        end = start + len(part) - 1
        r = reg.patch(loc, data=part, headers={"Content-Type": "application/octet-stream",
                                               "Content-Range": f"{start}-{end}"})
        assert_status(r, 202)
        assert r.headers.get("Location"), describe(r)
        assert parse_range(r.headers.get("Range")) == end, describe(r)
        loc = r.headers["Location"]
        # "The response to an active upload <location> MUST be a 204 ... Location ... Range: 0-<end-of-range>"
        s = reg.get(loc)
        assert_status(s, 204)
        assert s.headers.get("Location"), describe(s)
        assert parse_range(s.headers.get("Range")) == end, describe(s)
        _upload_uuid_in_location(s)
    r = reg.put(reg.with_query(loc, digest=d))
    assert_status(r, 201)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Docker-Content-Digest") == d, describe(r)
    _assert_blob(reg, repo, data)


def test_upload_put_with_final_chunk(reg, repo):
    """"The final chunk MAY be uploaded using a PATCH request or it MAY be uploaded in the closing PUT"."""
    data = os.urandom(8000)
    d = sha256(data)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=data[:5000], headers={"Content-Type": "application/octet-stream",
                                                  "Content-Range": "0-4999"})
    assert_status(r, 202)
    r = reg.put(reg.with_query(r.headers["Location"], digest=d), data=data[5000:],
                headers={"Content-Type": "application/octet-stream", "Content-Range": "5000-7999"})
    assert_status(r, 201)
    assert r.headers.get("Location"), describe(r)
    assert r.headers.get("Docker-Content-Digest") == d, describe(r)
    _assert_blob(reg, repo, data)
    # and without Content-Range on the PUT
    data2 = os.urandom(4000)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=data2[:1000], headers={"Content-Type": "application/octet-stream",
                                                   "Content-Range": "0-999"})
    assert_status(r, 202)
    r = reg.put(reg.with_query(r.headers["Location"], digest=sha256(data2)), data=data2[1000:],
                headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 201)
    _assert_blob(reg, repo, data2)


@pytest.mark.parametrize("bad_range", ["2000-2999", "500-1499", "0-999", "999-1998", "1001-1100"])
def test_upload_out_of_order_or_overlapping_chunk_416(reg, repo, bad_range):
    """"If a chunk is uploaded out of order, the registry MUST respond with a `416`"."""
    data = os.urandom(3000)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=data[:1000], headers={"Content-Type": "application/octet-stream",
                                                  "Content-Range": "0-999"})
    assert_status(r, 202)
    loc = r.headers["Location"]
    s, e = (int(x) for x in bad_range.split("-"))
    r = reg.patch(loc, data=os.urandom(e - s + 1), headers={"Content-Type": "application/octet-stream",
                                                            "Content-Range": bad_range})
    assert_status(r, 416)
    st = reg.get(loc)
    assert_status(st, 204)
    assert parse_range(st.headers.get("Range")) == 999, f"rejected chunk changed the upload: {describe(st)}"
    # the session is still usable from the right offset
    r = reg.patch(st.headers["Location"], data=data[1000:], headers={
        "Content-Type": "application/octet-stream", "Content-Range": "1000-2999"})
    assert_status(r, 202)
    r = reg.put(reg.with_query(r.headers["Location"], digest=sha256(data)))
    assert_status(r, 201)
    _assert_blob(reg, repo, data)


def test_upload_first_chunk_must_start_at_zero(reg, repo):
    """"The first chunk's range MUST begin with `0`"."""
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=b"x" * 10, headers={"Content-Type": "application/octet-stream",
                                                "Content-Range": "5-14"})
    assert_status(r, 416)


@pytest.mark.parametrize("bad", ["abc", "0-", "-9", "0-x", "9-0", "0-9-10", "0--9"])
def test_upload_malformed_content_range_400(reg, repo, bad):
    """Content-Range "MUST match the following regular expression: ^[0-9]+-[0-9]+$"."""
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=b"y" * 10, headers={"Content-Type": "application/octet-stream",
                                                "Content-Range": bad})
    assert r.status_code < 500, describe(r)
    assert_status(r, 400)
    st = reg.get(loc)
    assert_status(st, 204)
    rng = st.headers.get("Range")
    assert rng in (None, "0-0", "0--1", "bytes=0-0"), f"malformed chunk was stored: {describe(st)}"


def test_upload_content_range_length_mismatch(reg, repo):
    """Content-Range says 100 bytes but the body carries 50."""
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=b"z" * 50, headers={"Content-Type": "application/octet-stream",
                                                "Content-Range": "0-99"})
    assert r.status_code in (400, 416), describe(r)
    st = reg.get(loc)
    assert_status(st, 204)
    assert st.headers.get("Range") in (None, "0-0", "0--1", "bytes=0-0"), describe(st)


def test_upload_put_final_chunk_wrong_range_416(reg, repo):
    data = os.urandom(100)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=data[:50], headers={"Content-Type": "application/octet-stream", "Content-Range": "0-49"})
    assert_status(r, 202)
    loc = r.headers["Location"]
    r = reg.put(reg.with_query(loc, digest=sha256(data)), data=data[50:],
                headers={"Content-Type": "application/octet-stream", "Content-Range": "60-109"})
    assert_status(r, 416)
    assert_status(reg.head(f"/v2/{repo}/blobs/{sha256(data)}"), 404)


def test_upload_large_streamed(reg, repo):
    """64 MiB in one streamed PATCH, then ranged reads near the end."""
    chunk = os.urandom(1024 * 1024)
    data_len = 64 * len(chunk)
    h = hashlib.sha256()
    for _ in range(64):
        h.update(chunk)
    d = "sha256:" + h.hexdigest()

    def gen():
        for _ in range(64):
            yield chunk
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=gen(), headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 202)
    assert parse_range(r.headers.get("Range")) == data_len - 1
    r = reg.put(reg.with_query(r.headers["Location"], digest=d))
    assert_status(r, 201)
    hd = reg.head(f"/v2/{repo}/blobs/{d}")
    assert hd.headers.get("Content-Length") == str(data_len), describe(hd)
    r = reg.get(f"/v2/{repo}/blobs/{d}", headers={"Range": f"bytes={data_len - 10}-"})
    assert_status(r, 206)
    assert r.content == chunk[-10:]
    r = reg.get(f"/v2/{repo}/blobs/{d}", stream=True)
    h2 = hashlib.sha256()
    for block in r.iter_content(1 << 20):
        h2.update(block)
    assert "sha256:" + h2.hexdigest() == d


def test_concurrent_uploads_of_same_blob(reg, berth, repo):
    """"If process A and B upload the same layer at the same time, both operations will proceed"."""
    import threading
    data = os.urandom(3 * 1024 * 1024)
    d = sha256(data)
    results = []

    def up(i):
        try:
            r = Registry(berth.url)
            r.upload_chunked(f"{repo}/c{i % 3}", data, chunk=256 * 1024)
            results.append(("ok", i))
        except Exception as e:  # noqa: BLE001
            results.append((repr(e), i))
    ts = [threading.Thread(target=up, args=(i,)) for i in range(9)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(x[0] == "ok" for x in results), results
    for i in range(3):
        _assert_blob(reg, f"{repo}/c{i}", data)
    assert_stored_encrypted(blob_file(berth.data_dir, d), data)


def _early_reject_then_reuse(addr, method, path, headers, body):
    """Send headers, read the (early) response before sending the body, then send the body and a
    follow-up request on the same connection. Returns (first-response-head, follow-up-status-line or error)."""
    import socket
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                c = sock.recv(65536)
                if not c:
                    break
                buf += c
        except socket.timeout:
            pass  # the server waits for the body first: that is fine
        sock.sendall(body)
        if b"\r\n\r\n" not in buf:
            while b"\r\n\r\n" not in buf:
                c = sock.recv(65536)
                if not c:
                    break
                buf += c
        first = buf.split(b"\r\n\r\n")[0].decode(errors="replace")
        # drain the first response body
        m = re.search(r"(?im)^content-length:\s*(\d+)", first)
        rest = buf.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in buf else b""
        need = int(m.group(1)) if m else 0
        while len(rest) < need:
            c = sock.recv(65536)
            if not c:
                break
            rest += c
        try:
            auth = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() == "authorization")
            sock.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n".encode())
            nxt = sock.recv(65536)
            follow = nxt.split(b"\r\n")[0].decode(errors="replace") if nxt else "EOF (connection closed)"
        except OSError as e:
            follow = f"error {e!r}"
        return first, follow
    finally:
        sock.close()


@pytest.mark.parametrize("case", ["out_of_order_416", "malformed_range_400", "unknown_upload_404"])
def test_early_error_keeps_connection_usable_or_says_close(reg, berth, repo, case):
    """A server that answers before reading the request body and then drops the connection must say
    `Connection: close` (RFC 9112 9.6); otherwise keep-alive clients reuse a dead connection and the
    next request fails (Go's net/http does not retry a PATCH/PUT on a dead connection)."""
    body = b"B" * 64 * 1024
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=b"A" * 10, headers={"Content-Type": "application/octet-stream", "Content-Range": "0-9"})
    assert_status(r, 202)
    path = urllib.parse.urlsplit(reg.url(r.headers["Location"]))
    path = path.path + (("?" + path.query) if path.query else "")
    hdrs = {"Content-Type": "application/octet-stream", "Authorization": reg.s.headers["Authorization"]}
    if case == "out_of_order_416":
        hdrs["Content-Range"] = f"0-{len(body) - 1}"
    elif case == "malformed_range_400":
        hdrs["Content-Range"] = "abc"
    else:
        path = f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"
        hdrs["Content-Range"] = f"0-{len(body) - 1}"
    first, follow = _early_reject_then_reuse(berth.addr, "PATCH", path, hdrs, body)
    assert first.split()[1] in ("400", "404", "416"), first
    says_close = re.search(r"(?im)^connection:\s*close", first) is not None
    assert says_close or follow.startswith("HTTP/1.1 200"), (
        f"server answered {first.splitlines()[0]!r} without `Connection: close`, then the follow-up request "
        f"on the same keep-alive connection got: {follow}")


def test_upload_digest_mismatch(reg, repo):
    data = os.urandom(2048)
    wrong = sha256(b"not the data")
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=data, headers={"Content-Type": "application/octet-stream",
                                           "Content-Range": f"0-{len(data) - 1}"})
    assert_status(r, 202)
    r = reg.put(reg.with_query(r.headers["Location"], digest=wrong))
    assert_error(r, 400, "DIGEST_INVALID")
    assert_status(reg.head(f"/v2/{repo}/blobs/{wrong}"), 404)
    assert_status(reg.head(f"/v2/{repo}/blobs/{sha256(data)}"), 404)


def test_upload_monolithic_put_digest_mismatch_not_stored(reg, berth, repo):
    data = os.urandom(4096)
    wrong = sha256(b"nope" + data)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.put(reg.with_query(loc, digest=wrong), data=data, headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "DIGEST_INVALID")
    assert not os.path.exists(blob_file(berth.data_dir, wrong))
    assert_status(reg.head(f"/v2/{repo}/blobs/{wrong}"), 404)


@pytest.mark.parametrize("bad", [
    "sha256:xyz",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:",
    "sha256",
    "md5:" + "0" * 32,
    ":" + "a" * 64,
])
def test_upload_put_malformed_digest(reg, repo, bad):
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.put(reg.with_query(loc, digest=bad), data=b"hello", headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "DIGEST_INVALID", "UNSUPPORTED")


def test_upload_put_without_digest(reg, repo):
    """"The closing `PUT` request MUST include the `<digest>` of the whole blob"."""
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.put(loc, data=b"hello", headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID")


def test_upload_cancel(reg, repo):
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.patch(loc, data=b"abc", headers={"Content-Type": "application/octet-stream", "Content-Range": "0-2"})
    assert_status(r, 202)
    loc = r.headers["Location"]
    r = reg.delete(loc)
    assert_status(r, 204)
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.patch(loc, data=b"d", headers={"Content-Type": "application/octet-stream",
                                                   "Content-Range": "3-3"}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.put(reg.with_query(loc, digest=sha256(b"abc"))), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_unknown_id(reg, repo):
    reg.upload_blob(repo, os.urandom(4))  # repo exists
    loc = f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}"
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.patch(loc, data=b"x", headers={"Content-Type": "application/octet-stream"}),
                 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.put(reg.with_query(loc, digest=sha256(b"x")), data=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    # a non-UUID id (and one that looks like a path) must be a clean 4xx, never 5xx
    for bogus in ("not-a-uuid", "..", "%2e%2e", "0" * 300):
        r = reg.get(f"/v2/{repo}/blobs/uploads/{bogus}")
        assert r.status_code in (400, 404), describe(r)


def test_upload_session_bound_to_repo(reg, repo):
    other = repo + "-x"
    reg.upload_blob(other, os.urandom(4))
    r = reg.start_upload(repo)
    uid = _upload_uuid_in_location(r)
    assert_error(reg.get(f"/v2/{other}/blobs/uploads/{uid}"), 404, "BLOB_UPLOAD_UNKNOWN")
    data = b"hijack"
    assert_error(reg.put(f"/v2/{other}/blobs/uploads/{uid}?digest={sha256(data)}", data=data),
                 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_session_closed_after_put(reg, repo):
    data = os.urandom(100)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.put(reg.with_query(loc, digest=sha256(data)), data=data,
                headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 201)
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(reg.patch(loc, data=b"more", headers={"Content-Type": "application/octet-stream"}),
                 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_zero_length_blob(reg, repo):
    d = sha256(b"")
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.put(reg.with_query(loc, digest=d))
    assert_status(r, 201)
    _assert_blob(reg, repo, b"")


def test_sha512_blobs(reg, berth, repo):
    data = os.urandom(4321)
    d = sha512(data)
    r = reg.post(f"/v2/{repo}/blobs/uploads/?digest={d}", data=data,
                 headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 201)
    assert r.headers.get("Docker-Content-Digest") == d, describe(r)
    _assert_blob(reg, repo, data, d)
    path = blob_file(berth.data_dir, d)
    assert os.path.isfile(path), f"sha512 blob not at {path}"
    assert_stored_encrypted(path, data)
    # chunked, sha512
    data2 = os.urandom(9000)
    reg.upload_chunked(repo, data2, chunk=4000, digest=sha512(data2))
    _assert_blob(reg, repo, data2, sha512(data2))
    r = reg.get(f"/v2/{repo}/blobs/{sha512(data2)}", headers={"Range": "bytes=0-9"})
    assert_status(r, 206)
    assert r.content == data2[:10]
    # mismatch
    loc = reg.start_upload(repo).headers["Location"]
    wrong = sha512(b"other")
    r = reg.put(reg.with_query(loc, digest=wrong), data=data2, headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "DIGEST_INVALID")
    assert_status(reg.head(f"/v2/{repo}/blobs/{wrong}"), 404)
    # malformed sha512 (sha256-length hex)
    loc = reg.start_upload(repo).headers["Location"]
    r = reg.put(reg.with_query(loc, digest="sha512:" + "a" * 64), data=b"x")
    assert_error(r, 400, "DIGEST_INVALID")


def test_blob_file_layout(reg, berth, repo):
    data = os.urandom(1234)
    d = sha256(data)
    reg.upload_blob(repo, data)
    path = blob_file(berth.data_dir, d)
    assert os.path.isfile(path), f"blob not at {path}"
    assert_stored_encrypted(path, data)


def test_upload_session_survives_restart(fresh_berth):
    reg = Registry(fresh_berth.url)
    name = "team/resume"
    data = os.urandom(300_000)
    d = sha256(data)
    loc = reg.start_upload(name).headers["Location"]
    r = reg.patch(loc, data=data[:100_000], headers={"Content-Type": "application/octet-stream",
                                                     "Content-Range": "0-99999"})
    assert_status(r, 202)
    loc = r.headers["Location"]
    r = reg.patch(loc, data=_streamed(data[100_000:120_000]), headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 202)
    loc = r.headers["Location"]
    fresh_berth.restart()
    reg = Registry(fresh_berth.url)
    st = reg.get(loc)
    assert_status(st, 204)
    end = parse_range(st.headers.get("Range"))
    assert end == 119_999, describe(st)
    loc = st.headers["Location"]
    r = reg.patch(loc, data=data[120_000:200_000], headers={"Content-Type": "application/octet-stream",
                                                            "Content-Range": "120000-199999"})
    assert_status(r, 202)
    assert parse_range(r.headers.get("Range")) == 199_999
    r = reg.put(reg.with_query(r.headers["Location"], digest=d), data=data[200_000:],
                headers={"Content-Type": "application/octet-stream"})
    assert_status(r, 201)
    _assert_blob(reg, name, data)
    # also survives a second restart once complete
    fresh_berth.restart()
    _assert_blob(Registry(fresh_berth.url), name, data)


# ==========================================================================
# manifests
# ==========================================================================
def _check_manifest(reg, name, ref, body, media_type):
    d = sha256(body)
    g = reg.get(f"/v2/{name}/manifests/{ref}", headers={"Accept": ", ".join(
        [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, media_type])})
    assert_status(g, 200)
    assert g.content == body, f"manifest bytes differ for {name}:{ref}"
    assert g.headers.get("Docker-Content-Digest") == d, describe(g)
    assert g.headers.get("Content-Type", "").split(";")[0].strip() == media_type, describe(g)
    assert g.headers.get("Content-Length") == str(len(body)), describe(g)
    h = reg.head(f"/v2/{name}/manifests/{ref}", headers={"Accept": media_type})
    assert_status(h, 200)
    assert h.headers.get("Docker-Content-Digest") == d, describe(h)
    assert h.headers.get("Content-Length") == str(len(body)), describe(h)
    assert h.headers.get("Content-Type", "").split(";")[0].strip() == media_type, describe(h)


def _check_put(reg, name, ref, r, body):
    assert_status(r, 201)
    assert r.headers.get("Docker-Content-Digest") == sha256(body), describe(r)
    loc = r.headers.get("Location")
    assert loc, describe(r)
    g = reg.get(loc, headers={"Accept": ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])})
    assert_status(g, 200)
    assert g.content == body


def test_oci_manifest_by_tag_and_digest(reg, repo):
    img = reg.push_image(repo, tag="v1")
    _check_put(reg, repo, "v1", img["response"], img["manifest"])
    _check_manifest(reg, repo, "v1", img["manifest"], OCI_MANIFEST)
    _check_manifest(reg, repo, img["digest"], img["manifest"], OCI_MANIFEST)
    for d, data in img["blobs"]:
        _assert_blob(reg, repo, data, d)
    # PUT by digest
    img2 = reg.push_image(repo, tag=None)
    _check_put(reg, repo, img2["digest"], img2["response"], img2["manifest"])
    _check_manifest(reg, repo, img2["digest"], img2["manifest"], OCI_MANIFEST)
    tags = reg.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert tags == ["v1"]


def test_oci_index(reg, repo):
    a = reg.push_image(repo, tag=None)
    b = reg.push_image(repo, tag=None)
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(descriptor(a["manifest"], OCI_MANIFEST), platform={"architecture": "amd64", "os": "linux"}),
        dict(descriptor(b["manifest"], OCI_MANIFEST), platform={"architecture": "arm64", "os": "linux"}),
    ]}
    body = json.dumps(idx).encode()
    r = reg.put_manifest(repo, "multi", body, OCI_INDEX)
    _check_put(reg, repo, "multi", r, body)
    _check_manifest(reg, repo, "multi", body, OCI_INDEX)
    _check_manifest(reg, repo, sha256(body), body, OCI_INDEX)


def test_docker_schema2_manifest_and_list(reg, repo):
    a = reg.push_image(repo, tag="amd64", media_type=DOCKER_MANIFEST)
    _check_put(reg, repo, "amd64", a["response"], a["manifest"])
    _check_manifest(reg, repo, "amd64", a["manifest"], DOCKER_MANIFEST)
    b = reg.push_image(repo, tag=None, media_type=DOCKER_MANIFEST)
    lst = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        dict(descriptor(a["manifest"], DOCKER_MANIFEST), platform={"architecture": "amd64", "os": "linux"}),
        dict(descriptor(b["manifest"], DOCKER_MANIFEST), platform={"architecture": "arm64", "os": "linux"}),
    ]}
    body = json.dumps(lst, indent=3).encode()
    r = reg.put_manifest(repo, "latest", body, DOCKER_LIST)
    _check_put(reg, repo, "latest", r, body)
    _check_manifest(reg, repo, "latest", body, DOCKER_LIST)
    _check_manifest(reg, repo, sha256(body), body, DOCKER_LIST)


def test_artifact_manifest_with_empty_config(reg, repo):
    assert sha256(OCI_EMPTY_BYTES) == OCI_EMPTY_DIGEST
    reg.upload_blob(repo, OCI_EMPTY_BYTES)
    layer = b'{"sbom": true}'
    reg.upload_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom.v1",
         "config": {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2},
         "layers": [{"mediaType": "application/spdx+json", "digest": sha256(layer), "size": len(layer)}],
         "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}}
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, "sbom", body, OCI_MANIFEST)
    _check_put(reg, repo, "sbom", r, body)
    _check_manifest(reg, repo, "sbom", body, OCI_MANIFEST)
    _assert_blob(reg, repo, OCI_EMPTY_BYTES, OCI_EMPTY_DIGEST)


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, OCI_INDEX])
def test_manifest_without_media_type_uses_content_type(reg, repo, media_type):
    if media_type == OCI_MANIFEST:
        img = reg.push_image(repo, tag=None)
        cfg_d, cfg = img["blobs"][0]
        m = {"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": cfg_d, "size": len(cfg)},
             "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": len(b)} for d, b in img["blobs"][1:]]}
    else:
        img = reg.push_image(repo, tag=None)
        m = {"schemaVersion": 2, "manifests": [descriptor(img["manifest"], OCI_MANIFEST)]}
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, "nomt", body, media_type)
    _check_put(reg, repo, "nomt", r, body)
    _check_manifest(reg, repo, "nomt", body, media_type)


def test_manifest_exact_bytes(reg, repo):
    """"The registry MUST store the manifest in the exact byte representation provided by the client"."""
    img = reg.push_image(repo, tag=None)
    cfg_d, cfg = img["blobs"][0]
    l_d, l = img["blobs"][1]
    body = ('\n\n  {   "schemaVersion" :2,\t"mediaType":"%s" ,\r\n'
            '"config":{"size":%d,"digest":"%s","mediaType":"%s"},\n'
            '      "layers":[ {"mediaType":"%s","size":%d,  "digest":"%s"} ],'
            '"annotations":{"x":"caf\\u00e9 \u2603","z":"1","a":"2"}  }\n\n\t ' % (
                OCI_MANIFEST, len(cfg), cfg_d, OCI_CONFIG, OCI_LAYER, len(l), l_d)).encode("utf-8")
    json.loads(body)
    r = reg.put_manifest(repo, "ws", body, OCI_MANIFEST)
    _check_put(reg, repo, "ws", r, body)
    _check_manifest(reg, repo, "ws", body, OCI_MANIFEST)
    _check_manifest(reg, repo, sha256(body), body, OCI_MANIFEST)


def test_manifest_tag_overwrite(reg, repo):
    a = reg.push_image(repo, tag="t")
    b = reg.push_image(repo, tag="t")
    _check_manifest(reg, repo, "t", b["manifest"], OCI_MANIFEST)
    _check_manifest(reg, repo, a["digest"], a["manifest"], OCI_MANIFEST)
    # re-putting identical bytes is idempotent
    r = reg.put_manifest(repo, "t", b["manifest"], OCI_MANIFEST)
    assert r.headers.get("Docker-Content-Digest") == b["digest"]


def test_manifest_not_visible_in_other_repo(reg, repo):
    """Identical manifest bytes are deduplicated, but only visible where they were pushed."""
    other = repo + "-m"
    img = reg.push_image(repo, tag="v1")
    reg.push_image(other, tag="x")
    assert_error(reg.get(f"/v2/{other}/manifests/{img['digest']}"), 404, "MANIFEST_UNKNOWN")
    assert_status(reg.head(f"/v2/{other}/manifests/{img['digest']}"), 404)
    # push the same bytes into `other` (with its blobs), then delete from `repo`: `other` keeps it
    for d, data in img["blobs"]:
        reg.upload_blob(other, data)
    reg.put_manifest(other, "same", img["manifest"], OCI_MANIFEST)
    assert_status(reg.delete(f"/v2/{repo}/manifests/{img['digest']}"), 202)
    _check_manifest(reg, other, "same", img["manifest"], OCI_MANIFEST)
    _check_manifest(reg, other, img["digest"], img["manifest"], OCI_MANIFEST)
    assert_status(reg.get(f"/v2/{repo}/manifests/v1"), 404)


def test_manifest_missing_blob(reg, repo):
    """"When a manifest is rejected for this reason, it MUST result in one or more MANIFEST_BLOB_UNKNOWN errors"."""
    cfg = b'{"os":"linux"}'
    reg.upload_blob(repo, cfg)
    missing = os.urandom(64)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(cfg, OCI_CONFIG),
         "layers": [descriptor(missing, OCI_LAYER)]}
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, "broken", body, OCI_MANIFEST, expect=None)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_status(reg.get(f"/v2/{repo}/manifests/broken"), 404)
    assert_status(reg.get(f"/v2/{repo}/manifests/{sha256(body)}"), 404)
    # missing config
    layer = os.urandom(32)
    reg.upload_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(b'{"missing":1}', OCI_CONFIG),
         "layers": [descriptor(layer, OCI_LAYER)]}
    r = reg.put_manifest(repo, "broken2", json.dumps(m).encode(), OCI_MANIFEST, expect=None)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_blob_from_other_repo_is_unknown(reg, repo):
    """A layer that exists only in another repository is unknown to this one."""
    other = repo + "-o"
    layer = os.urandom(99)
    reg.upload_blob(other, layer)
    cfg = b'{"os":"linux","n":2}'
    reg.upload_blob(repo, cfg)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(cfg, OCI_CONFIG),
         "layers": [descriptor(layer, OCI_LAYER)]}
    r = reg.put_manifest(repo, "x", json.dumps(m).encode(), OCI_MANIFEST, expect=None)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_index_missing_child(reg, repo):
    a = reg.push_image(repo, tag=None)
    ghost = b'{"schemaVersion":2,"ghost":true}'
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX,
           "manifests": [descriptor(a["manifest"], OCI_MANIFEST), descriptor(ghost, OCI_MANIFEST)]}
    r = reg.put_manifest(repo, "idx", json.dumps(idx).encode(), OCI_INDEX, expect=None)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_status(reg.get(f"/v2/{repo}/manifests/idx"), 404)


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'"str"',
                                  b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}',
                                  b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
                                  b'"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}'])
def test_manifest_invalid(reg, repo, body):
    reg.upload_blob(repo, b"seed")
    r = reg.put_manifest(repo, "bad", body, OCI_MANIFEST, expect=None)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_status(reg.get(f"/v2/{repo}/manifests/bad"), 404)


def test_manifest_unknown_media_type(reg, repo):
    img = reg.push_image(repo, tag=None)
    m = json.loads(img["manifest"])
    del m["mediaType"]
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, "weird", body, "application/x-not-a-manifest", expect=None)
    assert_error(r, 400, "MANIFEST_INVALID", "UNSUPPORTED")
    m["mediaType"] = "application/x-not-a-manifest"
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, "weird", body, "application/x-not-a-manifest", expect=None)
    assert_error(r, 400, "MANIFEST_INVALID", "UNSUPPORTED")
    assert_status(reg.get(f"/v2/{repo}/manifests/weird"), 404)


def _big_manifest(reg, repo, size):
    cfg = b'{"os":"linux","big":1}'
    reg.upload_blob(repo, cfg)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(cfg, OCI_CONFIG),
         "layers": [], "annotations": {"pad": ""}}
    base = len(json.dumps(m).encode())
    m["annotations"]["pad"] = "p" * (size - base)
    body = json.dumps(m).encode()
    assert len(body) == size
    return body


def test_manifest_oversize_refused(reg, repo):
    """"A registry that enforces this limit SHOULD respond ... with a response code `413 Payload Too Large`"."""
    body = _big_manifest(reg, repo, MANIFEST_LIMIT + 1)
    r = reg.put_manifest(repo, "huge", body, OCI_MANIFEST, expect=None)
    assert 400 <= r.status_code < 500, describe(r)
    if error_codes(r):
        assert_error(r, r.status_code, "SIZE_INVALID", "MANIFEST_INVALID")
    assert_status(reg.get(f"/v2/{repo}/manifests/huge"), 404)
    assert_status(reg.get(f"/v2/{repo}/manifests/{sha256(body)}"), 404)


def test_manifest_oversize_status_413(reg, repo):
    body = _big_manifest(reg, repo, MANIFEST_LIMIT + 4096)
    r = reg.put_manifest(repo, "huge", body, OCI_MANIFEST, expect=None)
    assert_status(r, 413)


def test_manifest_just_under_limit_accepted(reg, repo):
    """"Client and registry implementations SHOULD expect to be able to support manifest pushes of at least 4 megabytes"."""
    body = _big_manifest(reg, repo, MANIFEST_LIMIT - 64)
    r = reg.put_manifest(repo, "big", body, OCI_MANIFEST)
    _check_manifest(reg, repo, "big", body, OCI_MANIFEST)


def test_manifest_put_by_wrong_digest(reg, repo):
    img = reg.push_image(repo, tag=None)
    m = json.loads(img["manifest"])
    m["annotations"] = {"v": "2"}
    body = json.dumps(m).encode()
    wrong = img["digest"]  # digest of a *different* manifest
    r = reg.put_manifest(repo, wrong, body, OCI_MANIFEST, expect=None)
    assert_error(r, 400, "DIGEST_INVALID")
    # neither the new body nor an overwritten digest mapping
    assert_status(reg.get(f"/v2/{repo}/manifests/{sha256(body)}"), 404)
    _check_manifest(reg, repo, wrong, img["manifest"], OCI_MANIFEST)
    r = reg.put_manifest(repo, sha512(body + b" "), body, OCI_MANIFEST, expect=None)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_status(reg.get(f"/v2/{repo}/manifests/{sha512(body)}"), 404)


def test_manifest_put_by_sha512_digest(reg, repo):
    img = reg.push_image(repo, tag=None)
    m = json.loads(img["manifest"])
    m["annotations"] = {"alg": "sha512"}
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, sha512(body), body, OCI_MANIFEST)
    assert r.headers.get("Docker-Content-Digest") == sha512(body), describe(r)
    g = reg.get(f"/v2/{repo}/manifests/{sha512(body)}", headers={"Accept": OCI_MANIFEST})
    assert_status(g, 200)
    assert g.content == body


def test_manifest_delete_by_tag(reg, repo):
    img = reg.push_image(repo, tag="a")
    reg.put_manifest(repo, "b", img["manifest"], OCI_MANIFEST)
    r = reg.delete(f"/v2/{repo}/manifests/a")
    assert_status(r, 202)
    assert_error(reg.get(f"/v2/{repo}/manifests/a"), 404, "MANIFEST_UNKNOWN")
    _check_manifest(reg, repo, "b", img["manifest"], OCI_MANIFEST)
    _check_manifest(reg, repo, img["digest"], img["manifest"], OCI_MANIFEST)
    assert reg.get(f"/v2/{repo}/tags/list").json()["tags"] == ["b"]
    assert_error(reg.delete(f"/v2/{repo}/manifests/a"), 404, "MANIFEST_UNKNOWN")


def test_manifest_delete_by_digest(reg, repo):
    img = reg.push_image(repo, tag="a")
    reg.put_manifest(repo, "b", img["manifest"], OCI_MANIFEST)
    keep = reg.push_image(repo, tag="keep")
    r = reg.delete(f"/v2/{repo}/manifests/{img['digest']}")
    assert_status(r, 202)
    # "Once deleted, a GET to /v2/<name>/manifests/<digest> and any tag pointing to that digest will return a 404"
    assert_error(reg.get(f"/v2/{repo}/manifests/{img['digest']}"), 404, "MANIFEST_UNKNOWN")
    assert_status(reg.head(f"/v2/{repo}/manifests/{img['digest']}"), 404)
    assert_error(reg.get(f"/v2/{repo}/manifests/a"), 404, "MANIFEST_UNKNOWN")
    assert_error(reg.get(f"/v2/{repo}/manifests/b"), 404, "MANIFEST_UNKNOWN")
    assert reg.get(f"/v2/{repo}/tags/list").json()["tags"] == ["keep"]
    _check_manifest(reg, repo, "keep", keep["manifest"], OCI_MANIFEST)
    assert_error(reg.delete(f"/v2/{repo}/manifests/{img['digest']}"), 404, "MANIFEST_UNKNOWN")


def test_manifest_unknown(reg, repo):
    reg.push_image(repo, tag="exists")
    assert_error(reg.get(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
    assert_status(reg.head(f"/v2/{repo}/manifests/nope"), 404)
    assert_error(reg.get(f"/v2/{repo}/manifests/{sha256(b'nothing')}"), 404, "MANIFEST_UNKNOWN")


def test_unknown_repository(reg, repo):
    assert_error(reg.get(f"/v2/{repo}/manifests/latest"), 404, "NAME_UNKNOWN")
    assert_status(reg.head(f"/v2/{repo}/manifests/latest"), 404)
    assert_error(reg.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(reg.delete(f"/v2/{repo}/manifests/{sha256(b'x')}"), 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")
    # a repository that was never pushed must not appear in the catalog just because we asked
    cat = reg.get(f"/v2/_catalog?last={urllib.parse.quote(repo[:-1], safe='')}&n=50").json()["repositories"]
    assert repo not in cat


@pytest.mark.parametrize("tag", ["-dash", ".dot", "a" * 129, "t:x", "t@x"])
def test_invalid_tag(reg, repo, tag):
    """Tags "MUST match `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`"."""
    img = reg.push_image(repo, tag=None)
    r = reg.put_manifest(repo, urllib.parse.quote(tag, safe=""), img["manifest"], OCI_MANIFEST, expect=None)
    assert 400 <= r.status_code < 500, describe(r)


def test_max_length_tag_accepted(reg, repo):
    img = reg.push_image(repo, tag=None)
    tag = "_" + "A.b-9" * 25 + "xx"
    assert len(tag) == 128
    reg.put_manifest(repo, tag, img["manifest"], OCI_MANIFEST)
    _check_manifest(reg, repo, tag, img["manifest"], OCI_MANIFEST)


# ==========================================================================
# referrers
# ==========================================================================
def _push_referrer(reg, repo, subject, artifact_type=None, annotations=None, config_type=OCI_EMPTY,
                   index=False, tag=None):
    if index:
        child = reg.push_image(repo, tag=None)
        m = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(child["manifest"], OCI_MANIFEST)],
             "subject": subject}
        if artifact_type:
            m["artifactType"] = artifact_type
        if annotations:
            m["annotations"] = annotations
        body = json.dumps(m).encode()
        r = reg.put_manifest(repo, tag or sha256(body), body, OCI_INDEX)
        return body, r
    reg.upload_blob(repo, OCI_EMPTY_BYTES)
    layer = os.urandom(40)
    reg.upload_blob(repo, layer)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        m["artifactType"] = artifact_type
    if config_type == OCI_EMPTY:
        m["config"] = {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2}
    else:
        cfg = json.dumps({"t": config_type, "n": uuid.uuid4().hex}).encode()
        reg.upload_blob(repo, cfg)
        m["config"] = descriptor(cfg, config_type)
    m["layers"] = [descriptor(layer, "application/octet-stream")]
    m["subject"] = subject
    if annotations:
        m["annotations"] = annotations
    body = json.dumps(m).encode()
    r = reg.put_manifest(repo, tag or sha256(body), body, OCI_MANIFEST)
    return body, r


def _referrers(reg, repo, digest, artifact_type=None):
    url = f"/v2/{repo}/referrers/{digest}"
    if artifact_type:
        url += "?artifactType=" + urllib.parse.quote(artifact_type, safe="")
    r = reg.get(url)
    assert_status(r, 200)
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == OCI_INDEX, describe(r)
    body = r.json()
    assert body.get("schemaVersion") == 2, describe(r)
    assert body.get("mediaType") == OCI_INDEX, describe(r)
    assert isinstance(body.get("manifests"), list), describe(r)
    mans = list(body["manifests"])
    while next_link(r):  # follow pagination if any
        r = reg.get(next_link(r))
        assert_status(r, 200)
        mans += r.json()["manifests"]
    return r, mans


def test_referrers(reg, repo):
    subj = reg.push_image(repo, tag="app")
    sd = descriptor(subj["manifest"], OCI_MANIFEST)
    sbom, r1 = _push_referrer(reg, repo, sd, "application/vnd.example.sbom.v1",
                              {"org.example.sbom.format": "json", "org.opencontainers.image.created": "2024"})
    # "a registry implementation that supports the referrers API MUST respond with the response header
    # `OCI-Subject: <subject digest>`"
    assert r1.headers.get("OCI-Subject") == subj["digest"], describe(r1)
    sig, r2 = _push_referrer(reg, repo, sd, "application/vnd.example.signature.v1", {"sig": "abcd"})
    assert r2.headers.get("OCI-Subject") == subj["digest"], describe(r2)
    # no artifactType: must be reported as the config mediaType
    noat, r3 = _push_referrer(reg, repo, sd, None, {"k": "v"}, config_type="application/vnd.example.cfg.v1+json")
    assert r3.headers.get("OCI-Subject") == subj["digest"], describe(r3)
    # an index with a subject and no artifactType: artifactType "MUST be omitted"
    idx, r4 = _push_referrer(reg, repo, sd, None, {"i": "1"}, index=True)
    assert r4.headers.get("OCI-Subject") in (None, subj["digest"]), describe(r4)
    # a manifest without subject is not a referrer
    unrelated = reg.push_image(repo, tag="other")

    r, mans = _referrers(reg, repo, subj["digest"])
    assert "OCI-Filters-Applied" not in r.headers, describe(r)
    by = {m["digest"]: m for m in mans}
    assert set(by) == {sha256(sbom), sha256(sig), sha256(noat), sha256(idx)}, mans
    want = {"mediaType": OCI_MANIFEST, "digest": sha256(sbom), "size": len(sbom),
            "artifactType": "application/vnd.example.sbom.v1",
            "annotations": {"org.example.sbom.format": "json", "org.opencontainers.image.created": "2024"}}
    assert {k: by[sha256(sbom)].get(k) for k in want} == want, by[sha256(sbom)]
    assert by[sha256(sig)]["artifactType"] == "application/vnd.example.signature.v1"
    assert by[sha256(sig)]["annotations"] == {"sig": "abcd"}
    assert by[sha256(noat)]["artifactType"] == "application/vnd.example.cfg.v1+json"
    assert by[sha256(noat)]["annotations"] == {"k": "v"}
    assert by[sha256(idx)]["mediaType"] == OCI_INDEX
    assert by[sha256(idx)]["size"] == len(idx)
    assert "artifactType" not in by[sha256(idx)], by[sha256(idx)]
    assert by[sha256(idx)]["annotations"] == {"i": "1"}
    assert unrelated["digest"] not in by

    # filtering
    r, mans = _referrers(reg, repo, subj["digest"], "application/vnd.example.sbom.v1")
    assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)
    assert [m["digest"] for m in mans] == [sha256(sbom)]
    r, mans = _referrers(reg, repo, subj["digest"], "application/vnd.example.none")
    assert r.headers.get("OCI-Filters-Applied") == "artifactType", describe(r)
    assert mans == []

    # deleting a referrer removes it from the list
    assert_status(reg.delete(f"/v2/{repo}/manifests/{sha256(sig)}"), 202)
    _, mans = _referrers(reg, repo, subj["digest"])
    assert sha256(sig) not in {m["digest"] for m in mans}
    # deleting the subject: the referrers API still answers 200 (never 404)
    assert_status(reg.delete(f"/v2/{repo}/manifests/{subj['digest']}"), 202)
    r = reg.get(f"/v2/{repo}/referrers/{subj['digest']}")
    assert_status(r, 200)


def test_referrers_empty(reg, repo):
    img = reg.push_image(repo, tag="x")
    r, mans = _referrers(reg, repo, img["digest"])
    assert mans == []
    # an unknown digest in a known repo: still 200 + empty ("MUST NOT return a 404")
    r, mans = _referrers(reg, repo, sha256(b"never pushed"))
    assert mans == []


def test_referrers_subject_pushed_later(reg, repo):
    """"A registry MUST initially accept an otherwise valid manifest with a `subject` field that references
    a manifest that does not exist in the repository"."""
    ghost = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","later":1}'
    sd = descriptor(ghost, OCI_MANIFEST)
    body, r = _push_referrer(reg, repo, sd, "application/vnd.example.sig")
    assert_status(r, 201)
    assert r.headers.get("OCI-Subject") == sha256(ghost), describe(r)
    _, mans = _referrers(reg, repo, sha256(ghost))
    assert [m["digest"] for m in mans] == [sha256(body)]


def test_referrers_repo_scoped(reg, repo):
    subj = reg.push_image(repo, tag="s")
    other = repo + "-ref"
    reg.upload_blob(other, b"x")
    body, _ = _push_referrer(reg, other, descriptor(subj["manifest"], OCI_MANIFEST), "application/vnd.example.x")
    _, mans = _referrers(reg, repo, subj["digest"])
    assert mans == []


@pytest.mark.parametrize("bad", ["sha256:xyz", "notadigest", "sha256:" + "A" * 64])
def test_referrers_bad_digest(reg, repo, bad):
    """"If the request is invalid, such as a `<digest>` with an invalid syntax, a `400 Bad Request` MUST be returned"."""
    reg.push_image(repo, tag="x")
    r = reg.get(f"/v2/{repo}/referrers/{bad}")
    assert_status(r, 400)


# ==========================================================================
# tags/list and _catalog
# ==========================================================================
TAGS = ["v1", "v10", "v2", "alpha", "beta", "latest", "1.0", "1.0-rc", "1.0_x", "z"]


def _collect(reg, first_url, key):
    seen, url, pages = [], first_url, 0
    while url:
        r = reg.get(url)
        assert_status(r, 200)
        seen += r.json()[key] or []
        nxt = next_link(r)
        if nxt:
            assert key == "tags" and "/tags/list?" in nxt or key == "repositories" and "/v2/_catalog?" in nxt, nxt
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(nxt).query)
            assert "n" in q and "last" in q, f"Link lacks n/last: {nxt}"
            assert q["last"][0] == seen[-1], f"Link last={q['last']} but page ended with {seen[-1]}"
        url = nxt
        pages += 1
        assert pages < 1000
    return seen, pages


def test_tags_list_order_and_pagination(reg, repo):
    img = reg.push_image(repo, tag=None)
    for t in TAGS:
        reg.put_manifest(repo, t, img["manifest"], OCI_MANIFEST)
    expected = sorted(TAGS)
    r = reg.get(f"/v2/{repo}/tags/list")
    assert_status(r, 200)
    assert r.json() == {"name": repo, "tags": expected}
    assert "Link" not in r.headers

    # n=3 -> first 3, Link to the next page
    r = reg.get(f"/v2/{repo}/tags/list?n=3")
    assert_status(r, 200)
    assert r.json()["tags"] == expected[:3]
    nxt = next_link(r)
    assert nxt is not None, f"expected a Link header: {describe(r)}"
    assert re.fullmatch(r"/v2/%s/tags/list\?(n=3&last=%s|last=%s&n=3)" % (
        re.escape(repo), re.escape(urllib.parse.quote(expected[2])), re.escape(urllib.parse.quote(expected[2]))),
        nxt), nxt
    assert re.fullmatch(r'<[^>]+>; rel="next"', r.headers["Link"]), r.headers["Link"]

    for n in (1, 3, 4, 10, 11):
        got, pages = _collect(reg, f"/v2/{repo}/tags/list?n={n}", "tags")
        assert got == expected, (n, got)

    # last (with and without n)
    r = reg.get(f"/v2/{repo}/tags/list?n=2&last={expected[4]}")
    assert r.json()["tags"] == expected[5:7]
    r = reg.get(f"/v2/{repo}/tags/list?last={expected[4]}")
    assert_status(r, 200)
    assert r.json()["tags"][:2] == expected[5:7]
    # last not itself a tag: starts after it lexically
    r = reg.get(f"/v2/{repo}/tags/list?n=100&last=b")
    assert r.json()["tags"] == [t for t in expected if t > "b"]
    # n > total
    r = reg.get(f"/v2/{repo}/tags/list?n=1000")
    assert r.json()["tags"] == expected
    assert "Link" not in r.headers, describe(r)
    # last beyond end
    r = reg.get(f"/v2/{repo}/tags/list?n=5&last=zzzz")
    assert_status(r, 200)
    assert r.json()["tags"] in ([], None)
    assert "Link" not in r.headers, describe(r)
    r = reg.get(f"/v2/{repo}/tags/list?n=5&last={expected[-1]}")
    assert r.json()["tags"] in ([], None)
    assert "Link" not in r.headers


def test_tags_list_n_zero(reg, repo):
    """"When `n` is zero, this endpoint MUST return an empty list, and MUST NOT include a `Link` header"."""
    img = reg.push_image(repo, tag="a")
    reg.put_manifest(repo, "b", img["manifest"], OCI_MANIFEST)
    r = reg.get(f"/v2/{repo}/tags/list?n=0")
    assert_status(r, 200)
    assert r.json()["tags"] in ([], None)
    assert "Link" not in r.headers, describe(r)


def test_tags_list_exact_page_no_dangling_link(reg, repo):
    img = reg.push_image(repo, tag=None)
    for t in ("a", "b", "c", "d"):
        reg.put_manifest(repo, t, img["manifest"], OCI_MANIFEST)
    got, pages = _collect(reg, f"/v2/{repo}/tags/list?n=2", "tags")
    assert got == ["a", "b", "c", "d"]


def test_tags_list_bad_n(reg, repo):
    reg.push_image(repo, tag="a")
    for bad in ("abc", "-1"):
        r = reg.get(f"/v2/{repo}/tags/list?n={bad}")
        assert r.status_code in (200, 400), describe(r)


def test_catalog(reg, repo):
    names = [f"{repo}/c", f"{repo}/a", f"{repo}/b", f"{repo}/a/deep"]
    for n in names:
        reg.upload_blob(n, b"blob for " + n.encode())
        reg.push_image(n, tag="t", nlayers=0)
    mine = sorted(names)
    r = reg.get("/v2/_catalog")
    assert_status(r, 200)
    full = r.json()["repositories"]
    nxt = next_link(r)
    if nxt:  # server may page by default; then walk it
        full, _ = _collect(reg, "/v2/_catalog", "repositories")
    assert full == sorted(full), "catalog not in lexical order"
    assert len(full) == len(set(full))
    assert [x for x in full if x.startswith(repo + "/")] == mine

    # paging from just before our names
    start = repo + "/"
    r = reg.get(f"/v2/_catalog?n=2&last={urllib.parse.quote(start, safe='')}")
    assert_status(r, 200)
    assert r.json()["repositories"] == mine[:2]
    nxt = next_link(r)
    assert nxt and nxt.startswith("/v2/_catalog?"), describe(r)
    assert re.fullmatch(r'<[^>]+>; rel="next"', r.headers["Link"]), r.headers["Link"]
    r = reg.get(nxt)
    assert r.json()["repositories"] == mine[2:4]

    got, pages = _collect(reg, "/v2/_catalog?n=3", "repositories")
    assert got == full
    assert pages >= len(full) // 3

    r = reg.get("/v2/_catalog?n=0")
    assert_status(r, 200)
    assert r.json()["repositories"] in ([], None)
    assert "Link" not in r.headers

    r = reg.get("/v2/_catalog?n=10&last=zzzzzzzz")
    assert_status(r, 200)
    assert r.json()["repositories"] in ([], None)
    assert "Link" not in r.headers


# ==========================================================================
# names
# ==========================================================================
def test_nested_name(reg, repo):
    name = f"{repo}/app/api"
    img = reg.push_image(name, tag="1.0")
    _check_manifest(reg, name, "1.0", img["manifest"], OCI_MANIFEST)
    assert reg.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["1.0"]}
    # the parent path is not a repository
    assert_error(reg.get(f"/v2/{repo}/app/tags/list"), 404, "NAME_UNKNOWN")


def test_name_components(reg, repo):
    for suffix in ("a.b", "a_b", "a__b", "a--b", "a-b-c", "0x"):
        name = f"{repo}/{suffix}"
        r = reg.post(f"/v2/{name}/blobs/uploads/")
        assert_status(r, 202)


ROUTABLE_INVALID = [
    "Team/App",
    "team/App",
    "a",                               # berth (ECR-style) minimum length is 2
    "team/" + "a" * 252,               # 257 chars
    "team/-app",
    "team/app-",
    "team/a..b",
    "team/.app",
    "team/a___b",
]


@pytest.mark.parametrize("name", ROUTABLE_INVALID)
def test_invalid_names(reg, name, berth):
    for method, path in (("POST", f"/v2/{name}/blobs/uploads/"),
                         ("GET", f"/v2/{name}/manifests/latest"),
                         ("GET", f"/v2/{name}/tags/list"),
                         ("HEAD", f"/v2/{name}/blobs/{sha256(b'x')}")):
        r = reg.request(method, path)
        if method == "HEAD":
            assert_status(r, 400)
        else:
            assert_error(r, 400, "NAME_INVALID")
    r = reg.put(f"/v2/{name}/manifests/latest", data=b"{}", headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "NAME_INVALID")


def test_name_length_boundary(reg, repo):
    name = (repo + "/" + "n" * 256)[:256]
    assert len(name) == 256
    assert_status(reg.post(f"/v2/{name}/blobs/uploads/"), 202)


UNROUTABLE = [
    "/v2/a//b/blobs/uploads/",
    "/v2/team/app/blobs/uploads//",
    "/v2/team/app//blobs/uploads/",
    "/v2/team/app/../../etc/blobs/uploads/",
    "/v2/../../etc/blobs/uploads/",
    "/v2/%2e%2e/%2e%2e/etc/blobs/uploads/",
    "/v2/team/%2e%2e/%2e%2e/%2e%2e/tmp/blobs/uploads/",
    "/v2/team/..%2f..%2f..%2ftmp/blobs/uploads/",
    "/v2/team%2f..%2f..%2ftmp/blobs/uploads/",
    "/v2/./team/blobs/uploads/",
    "/v2/team/./app/blobs/uploads/",
    "/v2/team%00/blobs/uploads/",
]


def _snapshot(root):
    out = set()
    for dp, dn, fn in os.walk(root):
        for f in fn + dn:
            out.add(os.path.relpath(os.path.join(dp, f), root))
    return out


@pytest.mark.parametrize("path", UNROUTABLE)
def test_unroutable_and_traversal_names_upload(fresh_berth, path):
    parent = os.path.dirname(fresh_berth.data_dir)
    before = _snapshot(parent)
    status, hdrs, body = raw_request(fresh_berth.addr, "POST", path)
    assert status in (400, 404, 405), f"POST {path} -> {status} {hdrs} {body[:300]!r}"
    if status == 400:
        assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID", body
    data = b"traversal!"
    d = sha256(data)
    status, hdrs, body = raw_request(fresh_berth.addr, "POST", path + f"?digest={d}", body=data)
    assert status in (400, 404, 405), f"POST {path}?digest -> {status} {body[:300]!r}"
    after = _snapshot(parent)
    new = {p for p in after - before if not p.startswith(os.path.basename(fresh_berth.data_dir))}
    assert not new, f"files created outside the data dir: {new}"
    assert not os.path.exists("/etc/blobs") and not os.path.exists("/tmp/blobs")


TRAVERSAL_GETS = [
    "/v2/../../etc/blobs/sha256:" + "0" * 64,
    "/v2/../../../../etc/passwd",
    "/v2/%2e%2e/%2e%2e/etc/blobs/sha256:" + "0" * 64,
    "/v2/team/app/blobs/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/v2/team/app/blobs/sha256:..%2f..%2f..%2fberth.db",
    "/v2/team/app/blobs/sha256:../../../berth.db",
    "/v2/team/app/manifests/..%2f..%2fberth.db",
    "/v2/team/app/manifests/../../../berth.db",
    "/v2/team/app/blobs/uploads/..%2f..%2f..%2fberth.db",
    "/v2/team/app/referrers/..%2f..%2fberth.db",
    "/v2/%2e%2e/tags/list",
    "/v2/team/%2e%2e/tags/list",
]


@pytest.mark.parametrize("path", TRAVERSAL_GETS)
def test_traversal_get(fresh_berth, path):
    # seed something so that a successful traversal would have something to read
    Registry(fresh_berth.url).push_image("team/app", tag="latest")
    for method in ("GET", "HEAD", "DELETE"):
        status, hdrs, body = raw_request(fresh_berth.addr, method, path)
        assert status in (400, 404, 405), f"{method} {path} -> {status} {hdrs} {body[:300]!r}"
        assert b"SQLite format" not in body and b"root:" not in body
    assert os.path.exists(os.path.join(fresh_berth.data_dir, "berth.db"))
    reg = Registry(fresh_berth.url)
    assert_status(reg.get("/v2/team/app/manifests/latest"), 200)


# ==========================================================================
# digests
# ==========================================================================
BAD_DIGESTS = [
    "sha256:xyz",
    "md5:" + "d41d8cd98f00b204e9800998ecf8427e",
    "sha256:" + "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    "sha256:" + "a" * 65,
    "sha256:" + "g" * 64,
    "sha512:" + "a" * 64,
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_bad_digest_blob_endpoints(reg, repo, bad):
    reg.upload_blob(repo, b"")  # the empty blob, whose sha256 is the uppercased one above
    r = reg.get(f"/v2/{repo}/blobs/{bad}")
    assert_error(r, 400, "DIGEST_INVALID", "UNSUPPORTED")
    assert_status(reg.head(f"/v2/{repo}/blobs/{bad}"), 400)
    assert_error(reg.delete(f"/v2/{repo}/blobs/{bad}"), 400, "DIGEST_INVALID", "UNSUPPORTED")
    r = reg.post(f"/v2/{repo}/blobs/uploads/?digest={urllib.parse.quote(bad, safe=':')}", data=b"abc",
                 headers={"Content-Type": "application/octet-stream"})
    assert_error(r, 400, "DIGEST_INVALID", "UNSUPPORTED")


@pytest.mark.parametrize("bad", BAD_DIGESTS[:3])
def test_bad_digest_manifest_reference(reg, repo, bad):
    img = reg.push_image(repo, tag="x")
    r = reg.get(f"/v2/{repo}/manifests/{bad}")
    assert 400 <= r.status_code < 500, describe(r)
    assert r.status_code in (400, 404), describe(r)
    r = reg.put_manifest(repo, bad, img["manifest"], OCI_MANIFEST, expect=None)
    assert_error(r, 400, "DIGEST_INVALID", "UNSUPPORTED", "TAG_INVALID", "MANIFEST_INVALID")


def test_operator_gc_requires_an_authorized_principal(berth):
    """POST /_berth/gc is not open: no credentials → 401, a ReadOnly user → 403 DENIED."""
    r = requests.post(berth.url + "/_berth/gc?dry_run=true", timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    key, secret = berth.create_user(f"gcreader{uuid.uuid4().hex[:6]}", policy="ReadOnly")
    token = berth.token(key, secret)
    r = requests.post(berth.url + "/_berth/gc?dry_run=true", auth=("AWS", token), timeout=30)
    assert r.status_code == 403, r.text
    assert r.json()["errors"][0]["code"] == "DENIED"
    r = requests.post(berth.url + "/_berth/gc?dry_run=true", auth=("AWS", berth.token()), timeout=300)
    assert r.status_code == 200 and r.json()["dry_run"] is True, r.text
