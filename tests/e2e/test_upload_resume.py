"""Chunked uploads across a crash: what berth promises for an acknowledged PATCH.

berth's promise: a PATCH answered 202 survives `kill -9` of berth. After the restart the session
reports (GET, Range) at least every acknowledged byte, the client continues from there, and the
finished blob has the right digest and bytes. (A session is only ever "unknown" afterwards if it was
committed or swept; test_crash_gc.py covers crashes landing mid-request under concurrent pushes.)
"""
import random

from httputil import Registry, assert_error, assert_status, parse_range, sha256

MiB = 1024 * 1024
OCTET = {"Content-Type": "application/octet-stream"}


def _patch(reg, loc, data, start):
    r = reg.patch(loc, data=data, headers={**OCTET, "Content-Range": f"{start}-{start + len(data) - 1}"})
    assert_status(r, 202)
    assert parse_range(r.headers["Range"]) == start + len(data) - 1
    return r.headers["Location"]


def test_a_chunked_upload_resumes_after_kill9_at_the_acknowledged_offset(fresh_berth, repo):
    b = fresh_berth
    reg = Registry(b.url)
    data = random.Random(22).randbytes(7 * MiB + 12_345)
    chunk = 2 * MiB + 1  # not a multiple of the hash's 64-byte block: a partial block is carried over
    loc = reg.start_upload(repo).headers["Location"]
    acked = 0
    for _ in range(3):
        loc = _patch(reg, loc, data[acked:acked + chunk], acked)
        acked += chunk
    b.kill9()
    b.restart()
    reg = Registry(b.url)
    st = reg.get(loc)
    assert_status(st, 204)
    assert parse_range(st.headers["Range"]) + 1 == acked, st.headers
    loc = st.headers["Location"]
    # The next PATCH must start exactly there: anything else is refused and changes nothing.
    r = reg.patch(loc, data=b"x", headers={**OCTET, "Content-Range": f"{acked + 1}-{acked + 1}"})
    assert_status(r, 416)
    loc = _patch(reg, loc, data[acked:acked + chunk], acked)
    acked += chunk
    # A second crash between PATCHes, then the rest in the closing PUT.
    b.kill9()
    b.restart()
    reg = Registry(b.url)
    r = reg.put(reg.with_query(loc, digest=sha256(data)), data=data[acked:], headers=OCTET)
    assert_status(r, 201)
    g = reg.get(f"/v2/{repo}/blobs/{sha256(data)}")
    assert_status(g, 200)
    assert g.content == data


def test_a_wrong_digest_after_a_restart_is_refused_and_the_session_ends(fresh_berth, repo):
    b = fresh_berth
    reg = Registry(b.url)
    data = random.Random(23).randbytes(3 * MiB + 7)
    loc = _patch(reg, reg.start_upload(repo).headers["Location"], data, 0)
    b.kill9()
    b.restart()
    reg = Registry(b.url)
    wrong = sha256(data + b"!")
    assert_error(reg.put(reg.with_query(loc, digest=wrong)), 400, "DIGEST_INVALID")
    assert reg.head(f"/v2/{repo}/blobs/{wrong}").status_code == 404
    assert_error(reg.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
