"""Graceful restarts and upgrades (issue 21): on SIGTERM /health answers 503 (draining) while the
listener still accepts, then the listener closes and a blob download already in flight finishes with
every byte; a push in flight (skopeo) finishes the layer it is sending while new work is refused
with 503; `berth serve` refuses a metadata schema newer than it understands, saying so.
"""
import hashlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import requests

import images
from conftest import Berth, berth_bin
from test_clients import Clients
from test_cluster import short_dirs  # noqa: F401 (fixture)

SIZE = 64 * 1024 * 1024


def refused(addr):
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return False
    except OSError:
        return True


def test_sigterm_drains_health_first_and_an_inflight_pull_finishes(tmp_path):
    b = Berth(str(tmp_path / "data"), extra_args=["--shutdown-drain-delay-seconds", "3", "--shutdown-grace-seconds", "60"]).start()
    auth = ("AWS", b.token())
    data = os.urandom(SIZE)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{b.url}/v2/drain/app/blobs/uploads/", auth=auth, timeout=30)
    assert r.status_code == 202, r.text
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else b.url + loc
    r = requests.put(loc, params={"digest": digest}, data=data, auth=auth, timeout=120,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert requests.get(b.url + "/health", timeout=10).text == "ok\n"

    pull = requests.get(f"{b.url}/v2/drain/app/blobs/{digest}", auth=auth, stream=True, timeout=120)
    assert pull.status_code == 200
    chunks = pull.iter_content(1024 * 1024)
    got = hashlib.sha256()
    first = next(chunks)
    got.update(first)
    received = len(first)

    b.proc.send_signal(signal.SIGTERM)
    # Draining: still accepting, health says so.
    deadline = time.monotonic() + 10
    while True:
        h = requests.get(b.url + "/health", timeout=5)
        if h.status_code == 503:
            break
        assert time.monotonic() < deadline, "health never turned 503 after SIGTERM"
        time.sleep(0.05)
    assert h.text == "draining\n"
    # Then the listener closes while the pull (64 MiB: far more than the socket buffers hold) is
    # still in flight.
    deadline = time.monotonic() + 15
    while not refused(b.addr):
        assert time.monotonic() < deadline, "the listener did not close after the drain delay"
        time.sleep(0.05)
    assert b.proc.poll() is None, "berth waits for the download in flight"
    for chunk in chunks:
        got.update(chunk)
        received += len(chunk)
    assert received == SIZE and "sha256:" + got.hexdigest() == digest
    assert b.proc.wait(timeout=30) == 0


def test_serve_refuses_a_schema_newer_than_it_understands(tmp_path):
    b = Berth(str(tmp_path / "data")).start()
    assert b.stop() == 0
    db = sqlite3.connect(os.path.join(b.data_dir, "berth.db"))
    (version,) = db.execute("PRAGMA user_version").fetchone()
    db.execute(f"PRAGMA user_version = {version + 1}")
    db.commit()
    db.close()
    p = subprocess.run([berth_bin(), "serve", "--listen", "127.0.0.1:0", "--data-dir", b.data_dir], capture_output=True,
                       text=True, env=b.env, timeout=60)
    assert p.returncode != 0 and "listening on" not in p.stdout
    assert f"schema version {version + 1} is newer than this berth ({version})" in p.stderr, p.stderr


def test_sigterm_lets_a_push_in_flight_finish_its_layer_and_refuses_new_work(tmp_path, short_dirs):  # noqa: F811
    b = Berth(str(tmp_path / "data"), extra_args=["--shutdown-drain-delay-seconds", "1", "--shutdown-grace-seconds", "60"]).start()
    try:
        layout = str(tmp_path / "layout")
        img = images.build_image(layout, "big", random_size=24 * 1024 * 1024, with_busybox=False)
        (layer,) = img.layer_digests
        # skopeo reads the layer from a FIFO, so the test decides when the upload may end.
        path = images.blob_path(layout, layer)
        data = open(path, "rb").read()
        os.remove(path)
        os.mkfifo(path)
        c = Clients(b, tmp_path / "client", short_dirs())
        push = subprocess.Popen(["skopeo", "copy", *c.access.skopeo_dest(), img.ref, c.docker_ref("drain/push", "v1")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=c.env)
        half = len(data) // 2
        fifo = open(path, "wb")
        # Written only once skopeo has taken the bytes (a pipe holds 64 KiB): the layer's upload is
        # open and half sent when this returns.
        fifo.write(data[:half])
        fifo.flush()

        b.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while requests.get(b.url + "/health", timeout=5).status_code != 503:
            assert time.monotonic() < deadline, "health never turned 503 after SIGTERM"
            time.sleep(0.05)
        # After the drain delay, new work is refused in the registry's error shape.
        auth = ("AWS", c.access.token)
        deadline = time.monotonic() + 15
        while True:
            r = requests.post(f"{b.url}/v2/drain/other/blobs/uploads/", auth=auth, timeout=10)
            if r.status_code == 503:
                break
            assert r.status_code == 202 and time.monotonic() < deadline, (r.status_code, r.text)
            time.sleep(0.05)
        assert r.json()["errors"][0]["code"] == "UNAVAILABLE" and r.headers["Connection"] == "close"
        assert b.proc.poll() is None, "berth waits for the upload in flight"

        # The rest of the layer: skopeo's PATCH and its PUT complete, its next request is refused.
        threading.Thread(target=lambda: (fifo.write(data[half:]), fifo.close()), daemon=True).start()
        out, err = push.communicate(timeout=120)
        assert push.returncode != 0 and "503" in err, err
        assert b.proc.wait(timeout=60) == 0

        b.start(listen=b.addr)  # the address the client logged in to
        head = requests.head(f"{b.url}/v2/drain/push/blobs/{layer}", auth=auth, timeout=30)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data), head.headers
        got = requests.get(f"{b.url}/v2/drain/push/blobs/{layer}", auth=auth, timeout=60)
        assert got.content == data
        # The retried push finds the layer there and sends only the rest.
        os.remove(path)
        with open(path, "wb") as f:
            f.write(data)
        retry = c.skopeo_copy(img.ref, c.docker_ref("drain/push", "v1"))
        metrics = requests.get(b.url + "/metrics", timeout=10).text
        sent = float(re.search(r"^berth_http_request_bytes_total (\S+)$", metrics, re.M).group(1))
        assert sent < len(data), f"the layer was sent again ({sent} bytes since the restart)\n{retry}"
        assert c.inspect_json("drain/push", "v1")["Digest"] == img.manifest_digest
    finally:
        b.stop()
