"""Crash safety (kill -9 mid-push) and garbage collection (offline CLI and online endpoint)."""
import hashlib
import json
import os
import random
import re
import threading

import pytest
import requests

from httputil import (
    OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, OCI_INDEX, DOCKER_LIST, DOCKER_MANIFEST, Registry, assert_error,
    assert_status, blob_file, describe, descriptor, next_link, parse_range, sha256,
)

MiB = 1024 * 1024
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])


def _rand(n, seed):
    """Cheap deterministic pseudo-random bytes (os.urandom for 100+ MiB is slow-ish and unseeded)."""
    rnd = random.Random(seed)
    return rnd.randbytes(n)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
BLOB_PATH_RE = re.compile(r"(sha256)/([0-9a-f]{2})/([0-9a-f]{64})|(sha512)/([0-9a-f]{2})/([0-9a-f]{128})")


def check_blob_store(data_dir):
    """Every file under D/blobs is at <alg>/<hex[:2]>/<hex> and hashes to its name. Returns the digests."""
    root = os.path.join(data_dir, "blobs")
    bad, found = [], set()
    for dp, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dp, f)
            rel = os.path.relpath(path, root)
            m = BLOB_PATH_RE.fullmatch(rel)
            if not m:
                bad.append(f"unexpected file {rel}")
                continue
            alg = m.group(1) or m.group(4)
            prefix = m.group(2) or m.group(5)
            hexd = m.group(3) or m.group(6)
            if not hexd.startswith(prefix):
                bad.append(f"wrong fan-out dir {rel}")
            h = hashlib.new(alg)
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(MiB), b""):
                    h.update(block)
            if h.hexdigest() != hexd:
                bad.append(f"{rel} hashes to {h.hexdigest()}")
            found.add(f"{alg}:{hexd}")
    assert not bad, "blob store corrupt:\n" + "\n".join(bad)
    return found


def fsck(b):
    r = b.cli("fsck", "--data-dir", b.data_dir, check=False)
    assert r.returncode == 0, f"berth fsck exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def gc_cli(b, *extra):
    r = b.cli("gc", "--data-dir", b.data_dir, *extra, check=False)
    assert r.returncode == 0, f"berth gc {extra} exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    out = _last_json(r.stdout)
    for k in ("dry_run", "blobs_deleted", "bytes_reclaimed", "uploads_deleted"):
        assert k in out, f"gc output lacks {k}: {r.stdout}"
    return out


def _last_json(text):
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise AssertionError(f"no JSON in output: {text!r}")


def all_tags(reg):
    """[(repo, tag)] via _catalog + tags/list, following Link pagination."""
    repos, url = [], "/v2/_catalog?n=100"
    while url:
        r = reg.get(url)
        assert_status(r, 200)
        repos += r.json()["repositories"] or []
        url = next_link(r)
    out = []
    for name in repos:
        url = f"/v2/{name}/tags/list?n=100"
        while url:
            r = reg.get(url)
            if r.status_code == 404:  # listed (has blobs) but no manifests yet
                assert_error(r, 404, "NAME_UNKNOWN")
                break
            assert_status(r, 200)
            out += [(name, t) for t in (r.json()["tags"] or [])]
            url = next_link(r)
    return out


def verify_pull(reg, name, ref, expect_body=None, check_content=True):
    """GET the manifest, then HEAD (and optionally GET+hash) every blob/child it references."""
    r = reg.get(f"/v2/{name}/manifests/{ref}", headers={"Accept": ACCEPT})
    assert_status(r, 200)
    body = r.content
    assert r.headers.get("Docker-Content-Digest") == sha256(body), describe(r)
    if expect_body is not None:
        assert body == expect_body, f"{name}:{ref} bytes differ"
    m = json.loads(body)
    if "manifests" in m:
        for d in m["manifests"]:
            verify_pull(reg, name, d["digest"], check_content=check_content)
        return m
    for d in [m["config"]] + m.get("layers", []):
        h = reg.head(f"/v2/{name}/blobs/{d['digest']}")
        assert_status(h, 200)
        assert h.headers.get("Content-Length") == str(d["size"]), describe(h)
        if check_content:
            g = reg.get(f"/v2/{name}/blobs/{d['digest']}")
            assert_status(g, 200)
            assert sha256(g.content) == d["digest"]
    return m


def push_chunked(reg, name, data, chunk, on_progress=None):
    """Chunked upload; on_progress(location, acked_bytes) after each acknowledged PATCH."""
    loc = reg.start_upload(name).headers["Location"]
    off = 0
    while off < len(data):
        part = data[off:off + chunk]
        r = reg.patch(loc, data=part, headers={"Content-Type": "application/octet-stream",
                                               "Content-Range": f"{off}-{off + len(part) - 1}"})
        assert_status(r, 202)
        loc = r.headers["Location"]
        off += len(part)
        if on_progress:
            on_progress(loc, off)
    r = reg.put(reg.with_query(loc, digest=sha256(data)))
    assert_status(r, 201)
    return sha256(data)


def make_manifest(blobs):
    cfg, layers = blobs[0], blobs[1:]
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(cfg, OCI_CONFIG),
        "layers": [descriptor(d, OCI_LAYER) for d in layers],
    }).encode()


# --------------------------------------------------------------------------
# crash safety
# --------------------------------------------------------------------------
N_PUSHES = 20
N_COMPLETE_BEFORE_KILL = 6
N_PAUSERS = 6   # pushers that stop mid-upload (acknowledged partial data) until the kill
N_STREAMERS = 3  # pushers that, once done, keep a streamed PATCH in flight until the kill


class Pusher(threading.Thread):
    def __init__(self, idx, url, state):
        super().__init__(daemon=True)
        self.idx = idx
        self.reg = Registry(url, timeout=60)
        self.state = state
        self.name = f"crash/p{idx:02d}"
        rnd = random.Random(idx)
        nblobs = rnd.choice((2, 3))
        # first blob is the config (small JSON), then a few MiB of layers
        self.blobs = [json.dumps({"os": "linux", "pusher": idx}).encode()]
        self.blobs += [_rand(rnd.randint(2 * MiB, 4 * MiB), seed=idx * 100 + i) for i in range(nblobs)]
        self.manifest = make_manifest(self.blobs)
        self.pauser = idx >= N_PUSHES - N_PAUSERS
        self.streamer = idx < N_STREAMERS
        self.stream_data = _rand(8 * MiB, seed=10_000 + idx) if self.streamer else None
        self.done = False
        self.sessions = {}   # digest -> [location, acked_bytes]
        self.completed_blobs = set()
        self.error = None

    def stream_until_killed(self):
        """Keep a streamed (no Content-Range) PATCH on the wire so that the kill lands mid-request."""
        data = self.stream_data
        d = sha256(data)
        while not self.state["kill_started"].is_set():
            loc = self.reg.start_upload(self.name).headers["Location"]
            self.sessions[d] = [loc, 0]

            def gen():
                for i in range(0, len(data), 256 * 1024):
                    yield data[i:i + 256 * 1024]
            r = self.reg.patch(loc, data=gen(), headers={"Content-Type": "application/octet-stream"})
            assert_status(r, 202)
            self.sessions[d] = [r.headers["Location"], len(data)]
            r = self.reg.put(self.reg.with_query(r.headers["Location"], digest=d))
            assert_status(r, 201)
            self.sessions.pop(d, None)

    def run(self):
        st = self.state
        try:
            for bi, data in enumerate(self.blobs):
                d = sha256(data)
                paused = [False]

                def progress(loc, acked, d=d, bi=bi, paused=paused):
                    self.sessions[d] = [loc, acked]
                    # pausers stop after acknowledged data of their last blob, until the kill
                    if self.pauser and bi == len(self.blobs) - 1 and acked >= MiB and not paused[0]:
                        paused[0] = True
                        with st["lock"]:
                            st["paused"] += 1
                            if st["paused"] == N_PAUSERS:
                                st["pausers_ready"].set()
                        st["killed"].wait(timeout=300)

                push_chunked(self.reg, self.name, data, chunk=512 * 1024, on_progress=progress)
                self.sessions.pop(d, None)
                self.completed_blobs.add(d)
            r = self.reg.put_manifest(self.name, "v1", self.manifest, OCI_MANIFEST, expect=None)
            assert_status(r, 201)
            self.done = True
            with st["lock"]:
                st["completed"] += 1
                if st["completed"] >= N_COMPLETE_BEFORE_KILL:
                    st["enough_completed"].set()
            if self.streamer:
                self.stream_until_killed()
        except Exception as e:  # noqa: BLE001 - connection errors after the kill are expected
            if not st["kill_started"].is_set():
                self.error = e
            elif not isinstance(e, (requests.ConnectionError, requests.Timeout,
                                    requests.exceptions.ChunkedEncodingError, AssertionError)):
                self.error = e


def test_kill9_during_concurrent_pushes(fresh_berth):
    b = fresh_berth
    state = {"lock": threading.Lock(), "completed": 0, "paused": 0,
             "enough_completed": threading.Event(), "pausers_ready": threading.Event(),
             "killed": threading.Event(), "kill_started": threading.Event()}
    pushers = [Pusher(i, b.url, state) for i in range(N_PUSHES)]
    for p in pushers:
        p.start()
    assert state["enough_completed"].wait(timeout=300), "pushes did not complete"
    assert state["pausers_ready"].wait(timeout=300), "pausers never reached their pause point"
    state["kill_started"].set()
    b.kill9()
    state["killed"].set()
    for p in pushers:
        p.join(timeout=120)
        assert not p.is_alive(), f"pusher {p.idx} hung"
    errors = [(p.idx, repr(p.error)) for p in pushers if p.error]
    assert not errors, f"pushes failed before the kill: {errors}"
    completed = [p for p in pushers if p.done]
    interrupted = [p for p in pushers if not p.done]
    assert len(completed) >= N_COMPLETE_BEFORE_KILL
    assert len(interrupted) >= N_PAUSERS, "the kill did not interrupt anything"

    b.restart()
    reg = Registry(b.url)

    # 1. every file under D/blobs hashes to its name (nothing half-written is visible), and every
    # completed blob is stored, encrypted (its contents are checked by the pulls below and fsck)
    check_blob_store(b.data_dir)
    for p in completed:
        for data in p.blobs:
            assert os.path.isfile(blob_file(b.data_dir, sha256(data))), f"completed blob of {p.name} missing on disk"

    # 2. completed pushes are intact, byte for byte
    for p in completed:
        verify_pull(reg, p.name, "v1", expect_body=p.manifest)
        for data in p.blobs:
            g = reg.get(f"/v2/{p.name}/blobs/{sha256(data)}")
            assert_status(g, 200)
            assert g.content == data
    # blobs an interrupted pusher had finished (201) are durable too
    for p in interrupted:
        for data in p.blobs:
            if sha256(data) in p.completed_blobs:
                h = reg.head(f"/v2/{p.name}/blobs/{sha256(data)}")
                assert_status(h, 200)

    # 3. every tag's manifest pulls and its blobs HEAD 200
    tags = all_tags(reg)
    assert {(p.name, "v1") for p in completed} <= set(tags)
    for name, tag in tags:
        verify_pull(reg, name, tag, check_content=False)

    # 4. interrupted uploads either resume or are cleanly unknown
    resumed = unknown = 0
    for p in pushers:
        for d, (loc, acked) in list(p.sessions.items()):
            data = next(x for x in p.blobs + [p.stream_data] if x is not None and sha256(x) == d)
            st = reg.get(loc)
            if st.status_code == 404:
                assert_error(st, 404, "BLOB_UPLOAD_UNKNOWN")
                unknown += 1
                print(f"upload unknown after crash: {p.name} streamer={p.streamer} acked={acked}/{len(data)} "
                      f"blob_now_present={reg.head(f'/v2/{p.name}/blobs/{d}').status_code == 200}")
                continue
            assert_status(st, 204)
            end = parse_range(st.headers.get("Range"))
            size = end + 1
            loc = st.headers["Location"]
            if end == 0:
                # "0-0" is ambiguous (empty, or one byte); try from 0 and fall back to 1 on 416
                r = reg.patch(loc, data=data, headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"0-{len(data) - 1}"})
                if r.status_code == 416:
                    size = 1
                else:
                    assert_status(r, 202)
                    size = len(data)
                    loc = r.headers["Location"]
            assert size >= acked, (f"upload lost acknowledged data: server has {size} bytes, "
                                   f"{acked} were acknowledged with 202: {describe(st)}")
            assert size <= len(data), describe(st)
            if size < len(data):
                r = reg.patch(loc, data=data[size:], headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{size}-{len(data) - 1}"})
                assert_status(r, 202)
                loc = r.headers["Location"]
            r = reg.put(reg.with_query(loc, digest=d))
            assert_status(r, 201)
            resumed += 1
            g = reg.get(f"/v2/{p.name}/blobs/{d}")
            assert_status(g, 200)
            assert g.content == data
    for p in interrupted:
        # finish the push; the manifest must now be accepted
        for data in p.blobs:
            if reg.head(f"/v2/{p.name}/blobs/{sha256(data)}").status_code != 200:
                reg.upload_blob(p.name, data)
        reg.put_manifest(p.name, "v1", p.manifest, OCI_MANIFEST)
        verify_pull(reg, p.name, "v1", expect_body=p.manifest)
    print(f"crash test: completed={len(completed)} interrupted={len(interrupted)} "
          f"resumed={resumed} unknown={unknown}")

    # 5. fsck with the server stopped
    b.stop()
    fsck(b)
    check_blob_store(b.data_dir)


def test_fsck_detects_corruption(fresh_berth):
    """fsck must be non-zero if a blob does not hash to its name (guards against a no-op fsck)."""
    b = fresh_berth
    reg = Registry(b.url)
    img = reg.push_image("team/fsck", tag="v1", nlayers=1, layer_size=4096)
    b.stop()
    fsck(b)
    layer_digest = img["blobs"][1][0]
    path = blob_file(b.data_dir, layer_digest)
    with open(path, "r+b") as f:
        f.seek(10)
        f.write(b"CORRUPTED")
    r = b.cli("fsck", "--data-dir", b.data_dir, check=False)
    assert r.returncode != 0, f"fsck accepted a corrupt blob: {r.stdout} {r.stderr}"
    assert layer_digest.split(":")[1] in r.stdout, f"fsck report does not name the blob: {r.stdout}"
    _last_json(r.stdout)
    os.remove(path)
    r = b.cli("fsck", "--data-dir", b.data_dir, check=False)
    assert r.returncode != 0, f"fsck accepted a manifest with a missing blob: {r.stdout} {r.stderr}"


# --------------------------------------------------------------------------
# garbage collection
# --------------------------------------------------------------------------
def _gc_fixture(b):
    """An image (referenced), an orphan blob (pushed, never referenced) and an open upload session."""
    reg = Registry(b.url)
    img = reg.push_image("team/gc", tag="v1", nlayers=2, layer_size=50_000)
    orphan = os.urandom(123_456)
    reg.upload_blob("team/gc", orphan)
    loc = reg.start_upload("team/gc").headers["Location"]
    r = reg.patch(loc, data=b"partial", headers={"Content-Type": "application/octet-stream",
                                                 "Content-Range": "0-6"})
    assert_status(r, 202)
    return img, orphan, r.headers["Location"]


def _tree(data_dir):
    out = {}
    for dp, _, files in os.walk(os.path.join(data_dir, "blobs")):
        for f in files:
            p = os.path.join(dp, f)
            out[os.path.relpath(p, data_dir)] = os.path.getsize(p)
    return out


def test_gc_offline_dry_run_deletes_nothing(fresh_berth):
    b = fresh_berth
    img, orphan, upload_loc = _gc_fixture(b)
    b.stop()
    before = _tree(b.data_dir)
    out = gc_cli(b, "--dry-run", "--grace-seconds", "0")
    assert out["dry_run"] is True, out
    assert out["blobs_deleted"] >= 1, f"dry run should report the orphan: {out}"
    assert out["bytes_reclaimed"] >= len(orphan), out
    assert out["uploads_deleted"] >= 1, f"dry run should report the stale upload: {out}"
    assert _tree(b.data_dir) == before, "dry run changed the blob store"
    assert os.path.isfile(blob_file(b.data_dir, sha256(orphan)))
    b.start(listen=b.addr)
    reg = Registry(b.url)
    verify_pull(reg, "team/gc", "v1", expect_body=img["manifest"])
    assert_status(reg.head(f"/v2/team/gc/blobs/{sha256(orphan)}"), 200)
    st = reg.get(upload_loc)
    assert_status(st, 204)
    assert parse_range(st.headers.get("Range")) == 6


def test_gc_offline_deletes_unreferenced_keeps_referenced(fresh_berth):
    b = fresh_berth
    img, orphan, upload_loc = _gc_fixture(b)
    reg = Registry(b.url)
    # a second image sharing a layer with one that is then deleted: the shared layer must survive
    shared = img["blobs"][1][1]
    only_deleted = os.urandom(77_777)
    reg.upload_blob("team/gc2", img["blobs"][0][1])
    reg.upload_blob("team/gc2", shared)
    reg.upload_blob("team/gc2", only_deleted)
    doomed = make_manifest([img["blobs"][0][1], shared, only_deleted])
    reg.put_manifest("team/gc2", "doomed", doomed, OCI_MANIFEST)
    keep = make_manifest([img["blobs"][0][1], shared])
    reg.put_manifest("team/gc2", "keep", keep, OCI_MANIFEST)
    assert_status(reg.delete(f"/v2/team/gc2/manifests/{sha256(doomed)}"), 202)
    b.stop()

    out = gc_cli(b, "--grace-seconds", "0")
    assert out["dry_run"] is False, out
    assert out["blobs_deleted"] >= 2, out  # orphan + only_deleted
    assert out["bytes_reclaimed"] >= len(orphan) + len(only_deleted), out
    assert out["uploads_deleted"] >= 1, out
    assert not os.path.exists(blob_file(b.data_dir, sha256(orphan))), "orphan blob survived gc"
    assert not os.path.exists(blob_file(b.data_dir, sha256(only_deleted))), "blob of deleted manifest survived gc"
    for d, _ in img["blobs"]:
        assert os.path.isfile(blob_file(b.data_dir, d)), f"referenced blob {d} deleted by gc"
    check_blob_store(b.data_dir)
    fsck(b)
    # idempotent
    out2 = gc_cli(b, "--grace-seconds", "0")
    assert out2["blobs_deleted"] == 0 and out2["uploads_deleted"] == 0, out2

    b.start(listen=b.addr)
    reg = Registry(b.url)
    verify_pull(reg, "team/gc", "v1", expect_body=img["manifest"])
    verify_pull(reg, "team/gc2", "keep", expect_body=keep)
    assert_status(reg.head(f"/v2/team/gc/blobs/{sha256(orphan)}"), 404)
    assert_error(reg.get(f"/v2/team/gc/blobs/{sha256(orphan)}"), 404, "BLOB_UNKNOWN")
    assert_error(reg.get(upload_loc), 404, "BLOB_UPLOAD_UNKNOWN")
    # the registry still accepts the orphan again afterwards
    reg.upload_blob("team/gc", orphan)
    assert_status(reg.head(f"/v2/team/gc/blobs/{sha256(orphan)}"), 200)


def test_gc_offline_default_grace_keeps_fresh_blobs(fresh_berth):
    b = fresh_berth
    img, orphan, upload_loc = _gc_fixture(b)
    b.stop()
    out = gc_cli(b)
    assert out["blobs_deleted"] == 0, f"default grace must protect a blob pushed seconds ago: {out}"
    assert os.path.isfile(blob_file(b.data_dir, sha256(orphan)))


def _online_gc(reg, dry_run, grace=None):
    url = f"/_berth/gc?dry_run={'true' if dry_run else 'false'}"
    if grace is not None:
        url += f"&grace_seconds={grace}"
    r = reg.post(url, timeout=300)
    assert_status(r, 200)
    out = r.json()
    for k in ("dry_run", "blobs_deleted", "bytes_reclaimed", "uploads_deleted"):
        assert k in out, f"online gc output lacks {k}: {r.text}"
    assert out["dry_run"] is dry_run, out
    return out


def test_gc_online(fresh_berth):
    b = fresh_berth
    img, orphan, upload_loc = _gc_fixture(b)
    reg = Registry(b.url)
    out = _online_gc(reg, True, 0)
    assert out["blobs_deleted"] >= 1 and out["bytes_reclaimed"] >= len(orphan), out
    assert_status(reg.head(f"/v2/team/gc/blobs/{sha256(orphan)}"), 200)
    assert os.path.isfile(blob_file(b.data_dir, sha256(orphan)))
    out = _online_gc(reg, False, 0)
    assert out["blobs_deleted"] >= 1 and out["bytes_reclaimed"] >= len(orphan), out
    assert_status(reg.head(f"/v2/team/gc/blobs/{sha256(orphan)}"), 404)
    assert not os.path.exists(blob_file(b.data_dir, sha256(orphan)))
    verify_pull(reg, "team/gc", "v1", expect_body=img["manifest"])
    b.stop()
    fsck(b)


N_ONLINE_PUSHERS = 8
PUSHES_EACH = 4


def test_gc_online_during_concurrent_pushes(fresh_berth):
    """Online GC with the default grace must never delete a blob that is part of an in-flight push."""
    b = fresh_berth
    stop = threading.Event()
    results, errors = [], []
    lock = threading.Lock()
    progress = threading.Semaphore(0)

    def pusher(i):
        reg = Registry(b.url)
        name = f"live/p{i}"
        try:
            for k in range(PUSHES_EACH):
                blobs = [json.dumps({"p": i, "k": k}).encode()]
                blobs += [_rand(random.Random(i * 1000 + k).randint(200_000, 900_000), seed=i * 1000 + k * 10 + j)
                          for j in range(2)]
                for data in blobs:
                    push_chunked(reg, name, data, chunk=128 * 1024, on_progress=lambda *_: progress.release())
                body = make_manifest(blobs)
                r = reg.put_manifest(name, f"v{k}", body, OCI_MANIFEST, expect=None)
                assert_status(r, 201)
                with lock:
                    results.append((name, f"v{k}", body))
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append((name, repr(e)))

    threads = [threading.Thread(target=pusher, args=(i,), daemon=True) for i in range(N_ONLINE_PUSHERS)]
    for t in threads:
        t.start()
    reg = Registry(b.url)
    gc_runs = 0
    while any(t.is_alive() for t in threads):
        # wait for some upload progress, then collect (no sleeps)
        progress.acquire(timeout=30)
        _online_gc(reg, False)  # default grace
        gc_runs += 1
    for t in threads:
        t.join()
    print(f"online gc ran {gc_runs} times during {len(results)} pushes")
    assert not errors, f"pushes failed while online gc ran: {errors}"
    assert gc_runs >= 2, f"gc ran only {gc_runs} times during the pushes"
    assert len(results) == N_ONLINE_PUSHERS * PUSHES_EACH
    _online_gc(reg, False)
    for name, tag, body in results:
        verify_pull(reg, name, tag, expect_body=body)
    b.stop()
    fsck(b)
    check_blob_store(b.data_dir)


def test_gc_keeps_blobs_of_untagged_but_referenced_manifests(fresh_berth):
    """Blobs of index children and of referrers (both pushed by digest, untagged) are referenced."""
    from httputil import OCI_EMPTY, OCI_EMPTY_BYTES, OCI_EMPTY_DIGEST, sha512
    b = fresh_berth
    reg = Registry(b.url)
    name = "team/untagged"
    child = reg.push_image(name, tag=None, nlayers=1, layer_size=10_000)
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                      "manifests": [descriptor(child["manifest"], OCI_MANIFEST)]}).encode()
    reg.put_manifest(name, "multi", idx, OCI_INDEX)
    # an untagged referrer of the index, with a sha512-addressed layer
    reg.upload_blob(name, OCI_EMPTY_BYTES)
    sig = os.urandom(3000)
    reg.upload_blob(name, sig, digest=sha512(sig))
    ref = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
                      "config": {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2},
                      "layers": [{"mediaType": "application/octet-stream", "digest": sha512(sig), "size": len(sig)}],
                      "subject": descriptor(idx, OCI_INDEX)}).encode()
    reg.put_manifest(name, sha256(ref), ref, OCI_MANIFEST)
    out = _online_gc(reg, False, 0)
    assert out["blobs_deleted"] == 0, f"online gc deleted referenced blobs: {out}"
    verify_pull(reg, name, "multi", expect_body=idx)
    verify_pull(reg, name, sha256(ref), expect_body=ref, check_content=False)
    g = reg.get(f"/v2/{name}/blobs/{sha512(sig)}")
    assert_status(g, 200)
    assert g.content == sig
    b.stop()
    out = gc_cli(b, "--grace-seconds", "0")
    assert out["blobs_deleted"] == 0, f"offline gc deleted referenced blobs: {out}"
    for d, _ in child["blobs"]:
        assert os.path.isfile(blob_file(b.data_dir, d))
    assert os.path.isfile(blob_file(b.data_dir, sha512(sig)))
    assert os.path.isfile(blob_file(b.data_dir, OCI_EMPTY_DIGEST))
    fsck(b)
    b.start(listen=b.addr)
    reg = Registry(b.url)
    verify_pull(reg, name, "multi", expect_body=idx)
    mans = reg.get(f"/v2/{name}/referrers/{sha256(idx)}").json()["manifests"]
    assert [m["digest"] for m in mans] == [sha256(ref)]
